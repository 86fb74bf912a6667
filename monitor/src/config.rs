//! The daemon's configuration: one YAML file shaped like Falco's `falco.yaml` (where a setting
//! means what a Falco setting means it has Falco's name and shape, so that a Falco user can
//! carry their file over), plus `-o key=value` overrides from the command line.
//!
//! Sections owned by other stages (`container`, `enforcement`, `capture`, ...) are kept as raw
//! YAML and handed back through [`Config::section`], so that each stage owns its own schema.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

use crate::alert::Priority;

/// Where the daemon looks for its configuration when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/monitor/monitor.yaml";

/// Why a configuration could not be used. Every variant names the file or key at fault, so
/// that the message alone tells the user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}: the top level must be a mapping of keys to values")]
    NotAMapping { path: PathBuf },
    #[error("bad override '{arg}': {reason}")]
    Override { arg: String, reason: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Falco's `rule_matching`: stop at the first matching rule of an event, or alert for all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMatching {
    #[default]
    First,
    All,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StdoutOutputConfig {
    pub enabled: bool,
}

impl Default for StdoutOutputConfig {
    fn default() -> Self {
        StdoutOutputConfig { enabled: true }
    }
}

/// Falco's `file_output`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FileOutputConfig {
    pub enabled: bool,
    /// Keep the file open between alerts (reopened on reload, for logrotate); when false the
    /// file is opened and closed for every alert, as Falco does.
    pub keep_alive: bool,
    pub filename: PathBuf,
}

impl Default for FileOutputConfig {
    fn default() -> Self {
        FileOutputConfig {
            enabled: false,
            keep_alive: false,
            filename: PathBuf::from("./events.txt"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    #[default]
    Udp,
    Tcp,
}

/// A remote syslog server (our addition to Falco's `syslog_output`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]

pub struct SyslogRemoteConfig {
    /// `host:port`.
    pub address: String,
    #[serde(default)]
    pub protocol: SyslogProtocol,
}

/// The syslog message format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// `<PRI>1 TIMESTAMP HOST monitor PID alert - MSG`.
    #[default]
    Rfc5424,
    /// The BSD format glibc's `syslog()` writes (`<PRI>Mmm dd hh:mm:ss monitor[PID]: MSG`),
    /// for local sockets whose reader does not parse RFC 5424 (e.g. journald).
    Rfc3164,
}

/// Falco's `syslog_output`, plus where to send: the local socket, or a remote server when
/// `remote` is set (only there, so that messages are not stored twice).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SyslogOutputConfig {
    pub enabled: bool,
    pub socket: PathBuf,
    pub remote: Option<SyslogRemoteConfig>,
    /// Syslog facility by name (`user`, `daemon`, `local0`...).
    pub facility: String,
    pub format: SyslogFormat,
}

impl Default for SyslogOutputConfig {
    fn default() -> Self {
        SyslogOutputConfig {
            enabled: false,
            socket: PathBuf::from("/dev/log"),
            remote: None,
            facility: "user".into(),
            format: SyslogFormat::Rfc5424,
        }
    }
}

impl SyslogOutputConfig {
    /// The facility's RFC 5424 code; `None` for an unknown name.
    pub fn facility_code(&self) -> Option<u8> {
        facility_code(&self.facility)
    }
}

/// RFC 5424 facility codes by their usual names.
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// Falco's `http_output`, plus headers, a bearer token, a timeout and retries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HttpOutputConfig {
    pub enabled: bool,
    pub url: String,
    pub user_agent: String,
    /// Accept any server certificate (Falco's name; for tests only).
    pub insecure: bool,
    /// A PEM file of CA certificates trusted in addition to the built-in web roots (`""`,
    /// Falco's default, means none).
    #[serde(deserialize_with = "empty_is_none")]
    pub ca_cert: Option<PathBuf>,
    pub headers: BTreeMap<String, String>,
    /// Read a bearer token from this file (e.g. a projected service-account token).
    #[serde(deserialize_with = "empty_is_none")]
    pub token_file: Option<PathBuf>,
    /// Read a bearer token from this environment variable.
    #[serde(deserialize_with = "empty_is_none")]
    pub token_env: Option<String>,
    /// Time allowed for one request, connection included.
    pub timeout_ms: u64,
    /// Retries of one alert after a failure that may pass (connection refused, timeout,
    /// 5xx, 408, 429) before it is counted as failed.
    pub max_retries: u32,
    /// First wait before a retry; doubled each time up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for HttpOutputConfig {
    fn default() -> Self {
        HttpOutputConfig {
            enabled: false,
            url: String::new(),
            user_agent: concat!("monitor/", env!("CARGO_PKG_VERSION")).into(),
            insecure: false,
            ca_cert: None,
            headers: BTreeMap::new(),
            token_file: None,
            token_env: None,
            timeout_ms: 5_000,
            max_retries: 10,
            backoff_ms: 100,
            max_backoff_ms: 5_000,
        }
    }
}

/// Falco's `outputs` rate limiter (a token bucket per rule here). `rate: 0` turns it off.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Tokens gained per second.
    pub rate: f64,
    /// Most tokens a bucket holds: how many alerts of one rule may pass in a burst.
    pub max_burst: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate: 0.0,
            max_burst: 1000,
        }
    }
}

/// Default bound of each output's queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;

/// Falco's `outputs_queue`. Falco's `capacity: 0` means unbounded; here every queue is bounded,
/// so 0 means the default.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct OutputsQueueConfig {
    pub capacity: usize,
}

impl Default for OutputsQueueConfig {
    fn default() -> Self {
        OutputsQueueConfig {
            capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

/// Falco's `webserver`, bound to loopback unless told otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WebserverConfig {
    pub enabled: bool,
    pub listen_address: IpAddr,
    pub listen_port: u16,
    pub prometheus_metrics_enabled: bool,
    pub k8s_healthz_endpoint: String,
    /// Falco's HTTPS switch; not supported here, so `true` is refused rather than ignored.
    pub ssl_enabled: bool,
}

impl Default for WebserverConfig {
    fn default() -> Self {
        WebserverConfig {
            enabled: true,
            listen_address: IpAddr::from([127, 0, 0, 1]),
            listen_port: 8765,
            prometheus_metrics_enabled: true,
            k8s_healthz_endpoint: "/healthz".into(),
            ssl_enabled: false,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(alias = "rules_file", deserialize_with = "one_or_many")]
    pub rules_files: Vec<PathBuf>,
    /// Minimum priority of the rules that are loaded.
    #[serde(deserialize_with = "priority")]
    pub priority: Priority,
    pub json_output: bool,
    pub json_include_output_property: bool,
    pub json_include_tags_property: bool,
    pub buffered_outputs: bool,
    pub rule_matching: RuleMatching,
    pub stdout_output: StdoutOutputConfig,
    pub file_output: FileOutputConfig,
    pub syslog_output: SyslogOutputConfig,
    pub http_output: HttpOutputConfig,
    pub outputs: RateLimitConfig,
    pub outputs_queue: OutputsQueueConfig,
    pub webserver: WebserverConfig,
    // Sections owned by other stages: accepted here, read through `section`.
    pub container: Option<Value>,
    pub enforcement: Option<Value>,
    pub capture: Option<Value>,
    /// Falco's `append_output` (see `crate::append_output`).
    pub append_output: Option<Value>,
    /// The merged document (file plus overrides), for `section`.
    #[serde(skip)]
    raw: Value,
    /// The file it came from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules_files: vec![PathBuf::from("/etc/monitor/rules.d")],
            priority: Priority::Debug,
            json_output: false,
            json_include_output_property: true,
            json_include_tags_property: true,
            buffered_outputs: false,
            rule_matching: RuleMatching::First,
            stdout_output: StdoutOutputConfig::default(),
            file_output: FileOutputConfig::default(),
            syslog_output: SyslogOutputConfig::default(),
            http_output: HttpOutputConfig::default(),
            outputs: RateLimitConfig::default(),
            outputs_queue: OutputsQueueConfig::default(),
            webserver: WebserverConfig::default(),
            container: None,
            enforcement: None,
            capture: None,
            append_output: None,
            raw: Value::Mapping(Default::default()),
            source: None,
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(p)) => Ok(vec![p]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected a path or a list of paths",
        )),
    }
}

/// Falco writes "no file" as an empty string (`ca_cert: ""`).
fn empty_is_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()).map(T::from))
}

fn priority<'de, D: Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
    let s = String::deserialize(d)?;
    Priority::from_str(&s).map_err(serde::de::Error::custom)
}

impl Config {
    /// Reads the file at `path` (or [`DEFAULT_CONFIG_PATH`] if it exists, or the built-in
    /// defaults), applies the `-o key=value` overrides in order, and checks every value.
    /// Returns the configuration and warnings (unknown keys, settings adjusted) for the log.
    pub fn load(
        path: Option<&Path>,
        overrides: &[String],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let (mut doc, source) = match path {
            Some(p) => (read_yaml(p)?, Some(p.to_path_buf())),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                let p = Path::new(DEFAULT_CONFIG_PATH);
                (read_yaml(p)?, Some(p.to_path_buf()))
            }
            None => (Value::Mapping(Default::default()), None),
        };
        for arg in overrides {
            apply_override(&mut doc, arg)?;
        }
        let (mut cfg, warnings) = Self::from_value(doc)?;
        cfg.source = source;
        Ok((cfg, warnings))
    }

    /// Parses a YAML document (for tests and `config check` of text).
    pub fn from_yaml_str(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let doc = parse_yaml(text, Path::new("<string>"))?;
        Self::from_value(doc)
    }

    fn from_value(doc: Value) -> Result<(Config, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let mut unknown = Vec::new();
        let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let de = serde_ignored::Deserializer::new(doc.clone(), &mut on_unknown);
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::invalid(
                if key == "." {
                    "<top level>".into()
                } else {
                    key
                },
                e.into_inner().to_string(),
            )
        })?;
        for key in unknown {
            warnings.push(format!("{key}: unknown setting, ignored"));
        }
        cfg.raw = doc;
        cfg.validate(&mut warnings)?;
        Ok((cfg, warnings))
    }

    /// Checks what the types alone cannot: values that must agree, URLs, names.
    fn validate(&mut self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        if self.outputs_queue.capacity == 0 {
            warnings.push(format!(
                "outputs_queue.capacity: 0 (unbounded in Falco) is not supported, every queue is bounded; using {DEFAULT_QUEUE_CAPACITY}"
            ));
            self.outputs_queue.capacity = DEFAULT_QUEUE_CAPACITY;
        }
        if !self.outputs.rate.is_finite() || self.outputs.rate < 0.0 {
            return Err(ConfigError::invalid(
                "outputs.rate",
                format!(
                    "must be a number of alerts per second >= 0 (0 turns rate limiting off), got {}",
                    self.outputs.rate
                ),
            ));
        }
        if self.outputs.rate > 0.0 && self.outputs.max_burst == 0 {
            return Err(ConfigError::invalid(
                "outputs.max_burst",
                "must be at least 1 when outputs.rate is set, or no alert would ever pass",
            ));
        }
        if self.file_output.enabled && self.file_output.filename.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "file_output.filename",
                "required when file_output.enabled is true",
            ));
        }
        let sys = &self.syslog_output;
        if sys.facility_code().is_none() {
            return Err(ConfigError::invalid(
                "syslog_output.facility",
                format!(
                    "unknown facility '{}' (expected kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp or local0..local7)",
                    sys.facility
                ),
            ));
        }
        if let Some(remote) = &sys.remote {
            check_host_port(&remote.address)
                .map_err(|r| ConfigError::invalid("syslog_output.remote.address", r))?;
        }
        self.validate_http()?;
        let ws = &self.webserver;
        if ws.enabled && ws.ssl_enabled {
            return Err(ConfigError::invalid(
                "webserver.ssl_enabled",
                "HTTPS is not supported by this webserver; serve it on loopback or behind a proxy",
            ));
        }
        if !ws.k8s_healthz_endpoint.starts_with('/') {
            return Err(ConfigError::invalid(
                "webserver.k8s_healthz_endpoint",
                format!(
                    "must be a path starting with '/', got '{}'",
                    ws.k8s_healthz_endpoint
                ),
            ));
        }
        if ws.enabled
            && ws.prometheus_metrics_enabled
            && (ws.k8s_healthz_endpoint == "/metrics" || ws.k8s_healthz_endpoint == "/readyz")
        {
            return Err(ConfigError::invalid(
                "webserver.k8s_healthz_endpoint",
                "must differ from /metrics and /readyz",
            ));
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let http = &self.http_output;
        if !http.enabled {
            return Ok(());
        }
        if http.url.is_empty() {
            return Err(ConfigError::invalid(
                "http_output.url",
                "required when http_output.enabled is true",
            ));
        }
        let url = reqwest::Url::parse(&http.url)
            .map_err(|e| ConfigError::invalid("http_output.url", format!("'{}': {e}", http.url)))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ConfigError::invalid(
                "http_output.url",
                format!("scheme must be http or https, got '{}'", url.scheme()),
            ));
        }
        for (name, value) in &http.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                ConfigError::invalid(
                    format!("http_output.headers.{name}"),
                    format!("bad header name: {e}"),
                )
            })?;
            reqwest::header::HeaderValue::from_str(value).map_err(|e| {
                ConfigError::invalid(
                    format!("http_output.headers.{name}"),
                    format!("bad header value: {e}"),
                )
            })?;
        }
        if http.token_file.is_some() && http.token_env.is_some() {
            return Err(ConfigError::invalid(
                "http_output.token_file",
                "set token_file or token_env, not both",
            ));
        }
        if http.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "http_output.timeout_ms",
                "must be at least 1",
            ));
        }
        if http.backoff_ms > http.max_backoff_ms {
            return Err(ConfigError::invalid(
                "http_output.backoff_ms",
                format!(
                    "must not exceed http_output.max_backoff_ms ({})",
                    http.max_backoff_ms
                ),
            ));
        }
        Ok(())
    }

    /// Deserializes the section `key` (e.g. `container`) into the stage's own type; `None`
    /// when the section is absent. Errors name the key inside the section.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(v) = self.raw.get(key) else {
            return Ok(None);
        };
        serde_path_to_error::deserialize(v.clone())
            .map(Some)
            .map_err(|e| {
                let inner = e.path().to_string();
                let full = if inner == "." {
                    key.to_string()
                } else {
                    format!("{key}.{inner}")
                };
                ConfigError::invalid(full, e.into_inner().to_string())
            })
    }

    /// The merged document (file and overrides), as read.
    pub fn raw(&self) -> &Value {
        &self.raw
    }
}

fn check_host_port(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("expected host:port, got '{s}'"));
    };
    if host.trim_matches(['[', ']']).is_empty() {
        return Err(format!("missing host in '{s}'"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("bad port '{port}' in '{s}'"))?;
    Ok(())
}

fn read_yaml(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_yaml(&text, path)
}

fn parse_yaml(text: &str, path: &Path) -> Result<Value, ConfigError> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    match doc {
        Value::Null => Ok(Value::Mapping(Default::default())),
        Value::Mapping(_) => Ok(doc),
        _ => Err(ConfigError::NotAMapping {
            path: path.to_path_buf(),
        }),
    }
}

/// Applies one `-o key=value`: `key` is a dotted path into nested maps (created as needed),
/// `value` a YAML scalar or flow collection (`true`, `5`, `[a, b]`, `{x: 1}`); a value that is
/// not valid YAML is taken as a string. `key[]=value` appends to a list, as Falco's `-o` does.
pub fn apply_override(doc: &mut Value, arg: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::Override {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE"))?;
    let (key, append) = match key.strip_suffix("[]") {
        Some(k) => (k, true),
        None => (key, false),
    };
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad("the key must be dotted names, like http_output.url"));
    }
    let parsed: Value =
        serde_yaml::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    let parsed = if parsed.is_null() && value.is_empty() {
        Value::String(String::new())
    } else {
        parsed
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = doc;
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Mapping(m) => m,
            Value::Null => {
                *node = Value::Mapping(Default::default());
                match node {
                    Value::Mapping(m) => m,
                    _ => unreachable!("just made a mapping"),
                }
            }
            _ => {
                return Err(bad(&format!("'{}' is not a mapping", parts[..i].join("."))));
            }
        };
        let k = Value::String((*part).to_string());
        if i + 1 == parts.len() {
            if append {
                let entry = map.entry(k).or_insert_with(|| Value::Sequence(Vec::new()));
                match entry {
                    Value::Sequence(seq) => seq.push(parsed),
                    Value::Null => *entry = Value::Sequence(vec![parsed]),
                    other => {
                        let old = std::mem::take(other);
                        *other = Value::Sequence(vec![old, parsed]);
                    }
                }
            } else {
                map.insert(k, parsed);
            }
            return Ok(());
        }
        node = map.entry(k).or_insert(Value::Null);
    }
    Ok(())
}

/// `monitor config ...` subcommands (the CLI embeds this enum).
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Read the configuration, apply overrides, check every value, and print warnings.
    Check {
        /// Configuration file (YAML); /etc/monitor/monitor.yaml by default.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Override a configuration key: `-o json_output=true`.
        #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
    },
}

/// What `monitor config check` found in a configuration that loads.
#[derive(Debug)]
pub struct CheckReport {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        let src = self
            .config
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".into());
        let c = &self.config;
        let mut outputs = Vec::new();
        if c.stdout_output.enabled {
            outputs.push("stdout".to_string());
        }
        if c.file_output.enabled {
            outputs.push(format!("file ({})", c.file_output.filename.display()));
        }
        if c.syslog_output.enabled {
            outputs.push(match &c.syslog_output.remote {
                Some(r) => format!("syslog ({:?} {})", r.protocol, r.address),
                None => format!("syslog ({})", c.syslog_output.socket.display()),
            });
        }
        if c.http_output.enabled {
            outputs.push(format!("http ({})", c.http_output.url));
        }
        writeln!(f, "configuration OK: {src}")?;
        writeln!(
            f,
            "outputs: {}",
            if outputs.is_empty() {
                "none".into()
            } else {
                outputs.join(", ")
            }
        )
    }
}

/// `monitor config check`: loads the configuration as `run` would, and also checks that the
/// files it names can be read, so that a mistake shows before a deployment, not at it.
pub fn check(path: Option<&Path>, overrides: &[String]) -> Result<CheckReport, ConfigError> {
    let (config, mut warnings) = Config::load(path, overrides)?;
    crate::append_output::entries(&config)?;
    config.section::<crate::probe::CaptureConfig>("capture")?;
    for (i, p) in config.rules_files.iter().enumerate() {
        if !p.exists() {
            warnings.push(format!("rules_files[{i}]: {} does not exist", p.display()));
        }
    }
    let http = &config.http_output;
    if http.enabled {
        if let Some(ca) = &http.ca_cert {
            std::fs::read(ca).map_err(|e| {
                ConfigError::invalid("http_output.ca_cert", format!("{}: {e}", ca.display()))
            })?;
        }
        if let Some(tf) = &http.token_file {
            std::fs::read(tf).map_err(|e| {
                ConfigError::invalid("http_output.token_file", format!("{}: {e}", tf.display()))
            })?;
        }
        if let Some(var) = &http.token_env
            && std::env::var_os(var).is_none()
        {
            return Err(ConfigError::invalid(
                "http_output.token_env",
                format!("environment variable {var} is not set"),
            ));
        }
    }
    if config.file_output.enabled
        && let Some(dir) = config.file_output.filename.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(ConfigError::invalid(
            "file_output.filename",
            format!("directory {} does not exist", dir.display()),
        ));
    }
    Ok(CheckReport { config, warnings })
}

/// Runs a `monitor config ...` command: prints the report, exit 0; or the error, exit 1.
pub fn run_command(cmd: ConfigCommand) -> std::process::ExitCode {
    match cmd {
        ConfigCommand::Check { config, options } => match check(config.as_deref(), &options) {
            Ok(report) => {
                print!("{report}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("monitor: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        Config::from_yaml_str(text)
    }

    #[test]
    fn empty_document_gives_falco_like_defaults() {
        let (c, w) = load("").unwrap();
        assert!(w.is_empty());
        assert!(c.stdout_output.enabled);
        assert!(!c.json_output);
        assert!(c.json_include_output_property && c.json_include_tags_property);
        assert_eq!(c.priority, Priority::Debug);
        assert_eq!(c.webserver.listen_address.to_string(), "127.0.0.1");
        assert_eq!(c.outputs_queue.capacity, DEFAULT_QUEUE_CAPACITY);
        assert_eq!(c.rule_matching, RuleMatching::First);
    }

    #[test]
    fn falco_names_and_shapes_are_read() {
        let (c, w) = load(
            r#"
rules_file: /etc/falco/falco_rules.yaml
priority: warning
json_output: true
json_include_output_property: false
file_output: {enabled: true, keep_alive: true, filename: /var/log/monitor/events.json}
syslog_output: {enabled: true, facility: local3, remote: {address: "127.0.0.1:514", protocol: tcp}}
http_output: {enabled: true, url: "https://sidekick:2801/", headers: {X-Env: prod}, token_env: TOKEN}
outputs: {rate: 2.5, max_burst: 10}
rule_matching: all
webserver: {listen_port: 9000}
"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c.rules_files,
            vec![PathBuf::from("/etc/falco/falco_rules.yaml")]
        );
        assert_eq!(c.priority, Priority::Warning);
        assert!(c.json_output && !c.json_include_output_property);
        assert!(c.file_output.keep_alive);
        assert_eq!(c.syslog_output.facility_code(), Some(19));
        assert_eq!(
            c.syslog_output.remote.as_ref().map(|r| r.protocol),
            Some(SyslogProtocol::Tcp)
        );
        assert_eq!(
            c.http_output.headers.get("X-Env").map(String::as_str),
            Some("prod")
        );
        assert_eq!(c.outputs.rate, 2.5);
        assert_eq!(c.rule_matching, RuleMatching::All);
        assert_eq!(c.webserver.listen_port, 9000);
    }

    #[test]
    fn unknown_keys_warn_with_their_path() {
        let (_, w) = load("log_level: info\nhttp_output: {enabled: false, mtls: true}\n").unwrap();
        assert!(w.iter().any(|m| m.starts_with("log_level:")), "{w:?}");
        assert!(
            w.iter().any(|m| m.starts_with("http_output.mtls:")),
            "{w:?}"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = load("http_output: {timeout_ms: soon}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("http_output.timeout_ms:"), "{e}");
        let e = load("priority: loud").unwrap_err().to_string();
        assert!(e.starts_with("priority:") && e.contains("loud"), "{e}");
        let e = load("webserver: {listen_address: nowhere}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("webserver.listen_address:"), "{e}");
        let e = load("syslog_output: {facility: local9}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("syslog_output.facility:"), "{e}");
        let e = load("http_output: {enabled: true, url: 'ftp://x/'}")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("http_output.url:") && e.contains("ftp"),
            "{e}"
        );
        let e = load("http_output: {enabled: true}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("http_output.url:"), "{e}");
        let e = load("syslog_output: {remote: {address: 'localhost', protocol: tcp}}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("syslog_output.remote.address:"), "{e}");
        let e = load("syslog_output: {remote: {address: 'h:1', protocol: sctp}}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("syslog_output.remote.protocol:"), "{e}");
        let e = load("outputs: {rate: -1}").unwrap_err().to_string();
        assert!(e.starts_with("outputs.rate:"), "{e}");
        let e = load("rule_matching: some").unwrap_err().to_string();
        assert!(e.starts_with("rule_matching:"), "{e}");
        let e = load("http_output: {enabled: true, url: 'http://x/', headers: {'Bad Name': v}}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("http_output.headers.Bad Name:"), "{e}");
    }

    #[test]
    fn a_falco_shaped_file_loads_with_warnings_only() {
        let (c, w) = load(
            r#"
rules_file:
  - /etc/falco/falco_rules.yaml
  - /etc/falco/rules.d
load_plugins: []
watch_config_files: true
time_format_iso_8601: false
priority: debug
json_output: false
outputs: {rate: 0, max_burst: 1000}
outputs_queue: {capacity: 0}
syslog_output: {enabled: true}
file_output: {enabled: false, keep_alive: false, filename: ./events.txt}
http_output:
  enabled: true
  url: http://some.url
  user_agent: "falcosecurity/falco"
  insecure: false
  ca_cert: ""
  ca_bundle: ""
  mtls: false
  echo: false
webserver: {enabled: true, threadiness: 0, listen_port: 8765, k8s_healthz_endpoint: /healthz, ssl_enabled: false}
log_level: info
"#,
        )
        .unwrap();
        assert_eq!(c.rules_files.len(), 2);
        assert_eq!(c.http_output.ca_cert, None);
        assert!(c.syslog_output.enabled);
        for key in [
            "load_plugins",
            "watch_config_files",
            "time_format_iso_8601",
            "http_output.ca_bundle",
            "http_output.mtls",
            "webserver.threadiness",
            "log_level",
            "outputs_queue.capacity",
        ] {
            assert!(w.iter().any(|m| m.starts_with(key)), "{key}: {w:?}");
        }
        let e = load("webserver: {ssl_enabled: true}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("webserver.ssl_enabled:"), "{e}");
    }

    #[test]
    fn zero_capacity_is_bounded_with_a_warning() {
        let (c, w) = load("outputs_queue: {capacity: 0}").unwrap();
        assert_eq!(c.outputs_queue.capacity, DEFAULT_QUEUE_CAPACITY);
        assert!(w.iter().any(|m| m.starts_with("outputs_queue.capacity")));
    }

    #[test]
    fn overrides_reach_nested_keys_as_yaml_scalars() {
        let mut doc = serde_yaml::from_str::<Value>("http_output: {enabled: false}").unwrap();
        apply_override(&mut doc, "http_output.url=http://127.0.0.1:1/x?a=b").unwrap();
        apply_override(&mut doc, "http_output.enabled=true").unwrap();
        apply_override(&mut doc, "outputs_queue.capacity=5").unwrap();
        apply_override(&mut doc, "rules_files[]=/a.yaml").unwrap();
        apply_override(&mut doc, "rules_files[]=/b.yaml").unwrap();
        apply_override(&mut doc, "container.runtimes=[docker, containerd]").unwrap();
        let (c, w) = Config::from_value(doc).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert!(c.http_output.enabled);
        assert_eq!(c.http_output.url, "http://127.0.0.1:1/x?a=b");
        assert_eq!(c.outputs_queue.capacity, 5);
        assert_eq!(
            c.rules_files,
            vec![PathBuf::from("/a.yaml"), PathBuf::from("/b.yaml")]
        );
        let runtimes: Option<BTreeMap<String, Vec<String>>> = c.section("container").unwrap();
        assert_eq!(runtimes.unwrap()["runtimes"], vec!["docker", "containerd"]);
    }

    #[test]
    fn bad_overrides_are_refused() {
        let mut doc = Value::Mapping(Default::default());
        assert!(apply_override(&mut doc, "json_output").is_err());
        assert!(apply_override(&mut doc, "a..b=1").is_err());
        apply_override(&mut doc, "json_output=true").unwrap();
        let e = apply_override(&mut doc, "json_output.x=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'json_output' is not a mapping"), "{e}");
        // A value of the wrong type is caught when the document is read, naming the key.
        apply_override(&mut doc, "webserver.listen_port=http").unwrap();
        let e = Config::from_value(doc).unwrap_err().to_string();
        assert!(e.starts_with("webserver.listen_port:"), "{e}");
    }

    #[test]
    fn config_check_names_a_bad_syscall_hook() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.yaml");
        std::fs::write(&f, "rules_files: []\ncapture:\n  syscall_hook: kprobes\n").unwrap();
        let e = check(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("capture.syscall_hook"), "{e}");
        assert!(e.contains("kprobes"), "{e}");
        let ok = check(Some(&f), &["capture.syscall_hook=raw_sys_exit".to_string()]).unwrap();
        let c: crate::probe::CaptureConfig = ok.config.section("capture").unwrap().unwrap();
        assert_eq!(c.syscall_hook, crate::probe::SyscallHook::RawSysExit);
    }

    #[test]
    fn sections_of_other_stages_come_back_typed() {
        #[derive(Deserialize, Debug)]
        struct Enforcement {
            dry_run: bool,
        }
        let (c, w) = load("enforcement: {dry_run: true}\n").unwrap();
        assert!(w.is_empty());
        let e: Enforcement = c.section("enforcement").unwrap().unwrap();
        assert!(e.dry_run);
        assert!(c.section::<Enforcement>("capture").unwrap().is_none());
        let (c, _) = load("enforcement: {dry_run: maybe}\n").unwrap();
        let err = c
            .section::<Enforcement>("enforcement")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("enforcement.dry_run:"), "{err}");
    }

    #[test]
    fn load_reads_files_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("monitor.yaml");
        std::fs::write(&p, "json_output: true\n").unwrap();
        let (c, _) = Config::load(Some(&p), &["json_output=false".into()]).unwrap();
        assert!(!c.json_output);
        assert_eq!(c.source.as_deref(), Some(p.as_path()));
        let e = Config::load(Some(&dir.path().join("nope.yaml")), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        std::fs::write(&p, "json_output: [\n").unwrap();
        let e = Config::load(Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("not valid YAML"), "{e}");
        std::fs::write(&p, "- a\n- b\n").unwrap();
        assert!(matches!(
            Config::load(Some(&p), &[]).unwrap_err(),
            ConfigError::NotAMapping { .. }
        ));
    }

    #[test]
    fn config_check_subcommand_parses() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: ConfigCommand,
        }
        let cli = Cli::try_parse_from(["config", "check", "-c", "/x.yaml", "-o", "a.b=1"]).unwrap();
        let ConfigCommand::Check { config, options } = cli.cmd;
        assert_eq!(config.as_deref(), Some(Path::new("/x.yaml")));
        assert_eq!(options, vec!["a.b=1".to_string()]);
    }

    #[test]
    fn check_finds_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("monitor.yaml");
        std::fs::write(
            &p,
            format!(
                "rules_files: [{}]\nhttp_output: {{enabled: true, url: 'http://127.0.0.1:9/', token_file: {}}}\n",
                dir.path().join("rules.yaml").display(),
                dir.path().join("token").display()
            ),
        )
        .unwrap();
        let e = check(Some(&p), &[]).unwrap_err().to_string();
        assert!(e.starts_with("http_output.token_file:"), "{e}");
        std::fs::write(dir.path().join("token"), "secret").unwrap();
        let r = check(Some(&p), &[]).unwrap();
        assert!(r.warnings.iter().any(|w| w.starts_with("rules_files[0]")));
        let text = r.to_string();
        assert!(text.contains("configuration OK") && text.contains("http (http://127.0.0.1:9/)"));
    }
}
