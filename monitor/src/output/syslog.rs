//! The syslog output: RFC 5424 messages to the local socket (`/dev/log` by default), or to a
//! remote server over UDP (one message per datagram, RFC 5426) or TCP (octet-counting framing,
//! RFC 6587). The severity is the alert's Falco priority, mapped as Falco maps it.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpStream, UdpSocket, UnixDatagram};

use super::{DeliveryError, Format, OutputError};
use crate::alert::Alert;
use crate::config::{SyslogFormat, SyslogOutputConfig, SyslogProtocol};

const APP_NAME: &str = "monitor";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Formats one RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.
/// The timestamp keeps microseconds, the most RFC 5424 allows.
pub fn format_rfc5424(facility: u8, alert: &Alert, pid: u32, msg: &str) -> String {
    let pri = u32::from(facility) * 8 + u32::from(alert.priority.syslog_severity());
    let ts = alert.time_rfc3339();
    // `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` -> `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`
    let ts = match ts.split_once('.') {
        Some((secs, frac)) => format!("{secs}.{}Z", frac.get(..6).unwrap_or("000000")),
        None => ts,
    };
    let host = header_field(&alert.hostname, 255);
    format!("<{pri}>1 {ts} {host} {APP_NAME} {pid} alert - {msg}")
}

/// Formats one message in the BSD format (RFC 3164) as glibc's `syslog()` writes it: local
/// time without a year, then `monitor[PID]:`; remote messages also carry the host name.
pub fn format_rfc3164(facility: u8, alert: &Alert, pid: u32, msg: &str, with_host: bool) -> String {
    let pri = u32::from(facility) * 8 + u32::from(alert.priority.syslog_severity());
    let ts = bsd_timestamp((alert.time_ns / 1_000_000_000) as i64);
    if with_host {
        let host = header_field(&alert.hostname, 255);
        format!("<{pri}>{ts} {host} {APP_NAME}[{pid}]: {msg}")
    } else {
        format!("<{pri}>{ts} {APP_NAME}[{pid}]: {msg}")
    }
}

/// `Mmm dd hh:mm:ss` in local time (the day space-padded), as RFC 3164 has it.
fn bsd_timestamp(secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return "Jan  1 00:00:00".to_string();
    }
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// A header field: printable US-ASCII without spaces, at most `max` characters, `-` if empty.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

enum Transport {
    Local {
        path: PathBuf,
        sock: Option<UnixDatagram>,
    },
    Udp {
        address: String,
        sock: Option<UdpSocket>,
    },
    Tcp {
        address: String,
        stream: Option<BufWriter<TcpStream>>,
    },
}

pub struct SyslogSink {
    transport: Transport,
    facility: u8,
    syslog_format: SyslogFormat,
    format: Format,
    pid: u32,
}

impl SyslogSink {
    /// Connects lazily: a syslog daemon that is not up yet is not an error at start-up, only
    /// each alert that cannot be delivered is (and counted).
    pub fn new(cfg: &SyslogOutputConfig, format: Format) -> Result<Self, OutputError> {
        let facility = cfg.facility_code().ok_or_else(|| OutputError::Setup {
            key: "syslog_output.facility",
            reason: format!("unknown facility '{}'", cfg.facility),
        })?;
        let transport = match &cfg.remote {
            None => Transport::Local {
                path: cfg.socket.clone(),
                sock: None,
            },
            Some(r) if r.protocol == SyslogProtocol::Udp => Transport::Udp {
                address: r.address.clone(),
                sock: None,
            },
            Some(r) => Transport::Tcp {
                address: r.address.clone(),
                stream: None,
            },
        };
        Ok(SyslogSink {
            transport,
            facility,
            syslog_format: cfg.format,
            format,
            pid: std::process::id(),
        })
    }

    pub async fn deliver(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        let text = self.format.render(alert);
        let msg = match self.syslog_format {
            SyslogFormat::Rfc5424 => format_rfc5424(self.facility, alert, self.pid, &text),
            SyslogFormat::Rfc3164 => {
                let remote = !matches!(self.transport, Transport::Local { .. });
                format_rfc3164(self.facility, alert, self.pid, &text, remote)
            }
        };
        // One retry on a fresh connection: the daemon may have restarted since the last alert.
        match self.send_once(&msg).await {
            Ok(()) => Ok(()),
            Err(_) => {
                self.disconnect();
                self.send_once(&msg)
                    .await
                    .inspect_err(|_| self.disconnect())
            }
        }
    }

    fn disconnect(&mut self) {
        match &mut self.transport {
            Transport::Local { sock, .. } => *sock = None,
            Transport::Udp { sock, .. } => *sock = None,
            Transport::Tcp { stream, .. } => *stream = None,
        }
    }

    async fn send_once(&mut self, msg: &str) -> Result<(), DeliveryError> {
        match &mut self.transport {
            Transport::Local { path, sock } => {
                let s = match sock {
                    Some(s) => s,
                    None => {
                        let s = UnixDatagram::unbound()?;
                        s.connect(&*path).map_err(|e| {
                            DeliveryError::Other(format!("syslog socket {}: {e}", path.display()))
                        })?;
                        sock.insert(s)
                    }
                };
                s.send(msg.as_bytes()).await?;
            }
            Transport::Udp { address, sock } => {
                let s = match sock {
                    Some(s) => s,
                    None => sock.insert(connect_udp(address).await?),
                };
                s.send(msg.as_bytes()).await?;
            }
            Transport::Tcp { address, stream } => {
                let s =
                    match stream {
                        Some(s) => s,
                        None => {
                            let tcp = tokio::time::timeout(
                                CONNECT_TIMEOUT,
                                TcpStream::connect(&*address),
                            )
                            .await
                            .map_err(|_| {
                                DeliveryError::Other(format!("syslog {address}: connect timed out"))
                            })?
                            .map_err(|e| DeliveryError::Other(format!("syslog {address}: {e}")))?;
                            tcp.set_nodelay(true)?;
                            stream.insert(BufWriter::new(tcp))
                        }
                    };
                // RFC 6587 octet counting: `LEN SP MSG`, LEN counting bytes.
                let frame = format!("{} {msg}", msg.len());
                s.write_all(frame.as_bytes()).await?;
                s.flush().await?;
            }
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), DeliveryError> {
        if let Transport::Tcp {
            stream: Some(s), ..
        } = &mut self.transport
        {
            s.flush().await?;
        }
        Ok(())
    }
}

async fn connect_udp(address: &str) -> Result<UdpSocket, DeliveryError> {
    let addr = tokio::net::lookup_host(address)
        .await
        .map_err(|e| DeliveryError::Other(format!("syslog {address}: {e}")))?
        .next()
        .ok_or_else(|| DeliveryError::Other(format!("syslog {address}: no address")))?;
    let local = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(addr).await?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Priority;
    use std::sync::Arc;

    #[test]
    fn rfc5424_header() {
        let a = Alert {
            time_ns: 1_709_210_096_123_456_789,
            rule: Arc::from("r"),
            priority: Priority::Critical,
            output: "x".into(),
            output_fields: Default::default(),
            tags: vec![],
            source: "syscall",
            hostname: Arc::from("node 1"),
            enforcement: None,
        };
        // local3 (19) * 8 + critical (2) = 154
        assert_eq!(
            format_rfc5424(19, &a, 42, "hello"),
            "<154>1 2024-02-29T12:34:56.123456Z node1 monitor 42 alert - hello"
        );
        assert_eq!(header_field("", 10), "-");
        let bsd = format_rfc3164(19, &a, 42, "hello", false);
        assert!(bsd.starts_with("<154>Feb "), "{bsd}");
        assert!(bsd.ends_with(" monitor[42]: hello"), "{bsd}");
        assert_eq!(bsd.len(), "<154>Feb 29 12:34:56 monitor[42]: hello".len());
        assert!(format_rfc3164(19, &a, 42, "hello", true).contains(" node1 monitor[42]: "));
    }
}
