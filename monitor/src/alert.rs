//! An alert: what the rule engine hands to the outputs. Plain data, already rendered, so that
//! an output never needs the event or the rules.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

/// Falco's priorities, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

impl Priority {
    /// Falco's spelling, as it appears in alerts (`Warning`, `Informational`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }

    /// Syslog severity (RFC 5424): emergency 0 ... debug 7, as Falco maps them.
    pub fn syslog_severity(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The priority names did not include the given one.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown priority '{0}' (expected one of emergency, alert, critical, error, warning, notice, informational, info, debug)"
)]
pub struct UnknownPriority(pub String);

impl FromStr for Priority {
    type Err = UnknownPriority;

    /// Case-insensitive, as Falco's loader is; `info` is `informational`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" => Priority::Warning,
            "notice" => Priority::Notice,
            "informational" | "info" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => return Err(UnknownPriority(s.to_string())),
        })
    }
}

/// What an enforcing rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Only alert (the default).
    Alert,
    /// Kill the task in the kernel at syscall entry.
    Kill,
}

/// What was done about a matching enforcing rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Enforcement {
    pub action: Action,
    /// True when the kernel stopped the action; false in dry-run ("would kill") or when the
    /// rule is alert-only.
    pub enforced: bool,
    pub dry_run: bool,
}

/// One alert.
#[derive(Clone, Debug)]
pub struct Alert {
    /// Nanoseconds since the Unix epoch (the event's time).
    pub time_ns: u64,
    pub rule: Arc<str>,
    pub priority: Priority,
    /// The rule's `output` with its fields filled in (without Falco's time and priority
    /// prefix, which `to_text` and `to_json` add).
    pub output: String,
    /// Every field named in the rule's output, with its value (`null` when missing).
    pub output_fields: BTreeMap<String, serde_json::Value>,
    pub tags: Vec<String>,
    /// The event source: always `syscall` here.
    pub source: &'static str,
    pub hostname: Arc<str>,
    /// Present for rules with an action other than alert.
    pub enforcement: Option<Enforcement>,
}

impl Alert {
    /// Falco's time format: RFC 3339 with nanoseconds, UTC (`2024-05-01T12:00:00.123456789Z`).
    pub fn time_rfc3339(&self) -> String {
        format_rfc3339_nanos(self.time_ns)
    }

    /// The alert as Falco's JSON output prints it (plus `enforcement` when present), one line.
    /// `include_output` follows Falco's `json_include_output_property`; `include_tags` its
    /// `json_include_tags_property`.
    pub fn to_json(&self, include_output: bool, include_tags: bool) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("hostname".into(), self.hostname.as_ref().into());
        if include_output {
            m.insert(
                "output".into(),
                format!(
                    "{}: {} {}",
                    self.time_text(),
                    self.priority.as_str(),
                    self.output
                )
                .into(),
            );
        }
        m.insert(
            "output_fields".into(),
            serde_json::Value::Object(
                self.output_fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        );
        m.insert("priority".into(), self.priority.as_str().into());
        m.insert("rule".into(), self.rule.as_ref().into());
        m.insert("source".into(), self.source.into());
        if include_tags {
            m.insert("tags".into(), self.tags.clone().into());
        }
        m.insert("time".into(), self.time_rfc3339().into());
        if let Some(e) = &self.enforcement {
            m.insert(
                "enforcement".into(),
                serde_json::to_value(e).unwrap_or(serde_json::Value::Null),
            );
        }
        serde_json::Value::Object(m)
    }

    /// Falco's text line: `HH:MM:SS.nnnnnnnnn: Priority output`.
    pub fn to_text(&self) -> String {
        let mut line = format!(
            "{}: {} {}",
            self.time_text(),
            self.priority.as_str(),
            self.output
        );
        if let Some(e) = &self.enforcement
            && e.action == Action::Kill
        {
            line.push_str(if e.enforced {
                " (enforced: killed)"
            } else {
                " (not enforced: would kill)"
            });
        }
        line
    }

    /// Falco's time in text output (`time_format_iso_8601: false`): `HH:MM:SS.nnnnnnnnn`, UTC.
    fn time_text(&self) -> String {
        let secs = self.time_ns / 1_000_000_000;
        let nanos = self.time_ns % 1_000_000_000;
        let (h, mi, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        format!("{h:02}:{mi:02}:{s:02}.{nanos:09}")
    }
}

/// RFC 3339 UTC timestamp with nanoseconds for `ns` since the Unix epoch.
pub fn format_rfc3339_nanos(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let nanos = ns % 1_000_000_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        // 2024-02-29T12:34:56.000000123Z (a leap day)
        assert_eq!(
            format_rfc3339_nanos(1_709_210_096_000_000_123),
            "2024-02-29T12:34:56.000000123Z"
        );
    }

    #[test]
    fn priorities_parse_like_falco() {
        assert_eq!("WARNING".parse::<Priority>().ok(), Some(Priority::Warning));
        assert_eq!(
            "info".parse::<Priority>().ok(),
            Some(Priority::Informational)
        );
        assert!("loud".parse::<Priority>().is_err());
        assert!(Priority::Critical < Priority::Notice);
    }
}
