//! Real receivers for end-to-end tests of the outputs of the `monitor` binary: a webhook
//! receiver (HTTP/1.1 on 127.0.0.1, in a thread of the test) and a real rsyslogd started by
//! hand on a unix socket, UDP and TCP ports of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Says whether a need of a test is met; when not, fails under CI=true and skips (saying why)
/// elsewhere.
pub fn need(what: &str, met: bool) -> bool {
    if met {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test needs {what}, which is missing (CI=true, so this is a failure)");
    }
    eprintln!("SKIPPED: this test needs {what}, which is missing");
    false
}

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request the webhook receiver got.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that answers 200 to every request and records it.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl HttpReceiver {
    pub fn start() -> Result<HttpReceiver> {
        Self::start_on(0, Duration::ZERO)
    }

    /// As [`HttpReceiver::start`], on a given port (0: any), answering each request only after
    /// `delay` (a slow server; the request is recorded when it arrives).
    pub fn start_on(port: u16, delay: Duration) -> Result<HttpReceiver> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("bind 127.0.0.1:{port}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let reqs = reqs.clone();
                        std::thread::spawn(move || {
                            let _ = serve_connection(conn, &reqs, delay);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(HttpReceiver {
            addr,
            requests,
            stop,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until `n` requests have arrived or the timeout passes; returns what arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let until = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if r.len() >= n || Instant::now() >= until {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Serves keep-alive requests on one connection until the client closes it.
fn serve_connection(conn: TcpStream, reqs: &Mutex<Vec<Request>>, delay: Duration) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            bail!("bad request line {line:?}");
        };
        let (method, path) = (method.to_string(), path.to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        if let Ok(mut r) = reqs.lock() {
            r.push(Request {
                method,
                path,
                headers,
                body,
            });
        }
        std::thread::sleep(delay);
        writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        writer.flush()?;
    }
}

/// A real rsyslogd listening on a unix socket, UDP and TCP on 127.0.0.1, writing every
/// message as `input|facility|severity|hostname|app|procid|msgid|msg` lines to a file.
pub struct Rsyslog {
    child: Child,
    pub dir: TempDir,
    pub socket: PathBuf,
    pub udp_port: u16,
    pub tcp_port: u16,
    pub out: PathBuf,
}

fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Rsyslog {
    /// `Ok(None)` (after saying why) when rsyslogd is not installed and CI is not set.
    pub fn start() -> Result<Option<Rsyslog>> {
        let present = Command::new("rsyslogd")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !need("rsyslogd (Debian package rsyslog)", present) {
            return Ok(None);
        }
        let dir = TempDir::new("rsyslog")?;
        let d = dir.path().to_path_buf();
        let socket = d.join("log.sock");
        let out = d.join("out.log");
        let (udp_port, tcp_port) = (free_udp_port()?, free_tcp_port()?);
        let conf = format!(
            r#"global(workDirectory="{dir}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" UseSpecialParser="off" ParseHostname="on" RateLimit.Interval="0")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
template(name="t" type="string" string="%inputname%|%syslogfacility%|%syslogseverity%|%hostname%|%app-name%|%procid%|%msgid%|%msg%\n")
*.* action(type="omfile" file="{out}" template="t")
"#,
            dir = d.display(),
            socket = socket.display(),
            out = out.display(),
        );
        let conf_path = d.join("rsyslog.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .spawn()
            .context("spawn rsyslogd")?;
        let r = Rsyslog {
            child,
            dir,
            socket,
            udp_port,
            tcp_port,
            out,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while !(r.socket.exists() && TcpStream::connect(("127.0.0.1", r.tcp_port)).is_ok()) {
            if Instant::now() > until {
                bail!("rsyslogd did not start within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(r))
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until `n` lines from `input` (`imuxsock`, `imudp`, `imtcp`) are written.
    pub fn wait_for(&self, input: &str, n: usize, timeout: Duration) -> Vec<String> {
        let prefix = format!("{input}|");
        let until = Instant::now() + timeout;
        loop {
            let got: Vec<String> = self
                .lines()
                .into_iter()
                .filter(|l| l.starts_with(&prefix))
                .collect();
            if got.len() >= n || Instant::now() >= until {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn http_receiver_records_keep_alive_requests() {
        let rx = HttpReceiver::start().unwrap();
        let mut c = TcpStream::connect(rx.addr).unwrap();
        for body in ["{\"a\":1}", "{\"a\":2}"] {
            write!(
                c,
                "POST /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer t0k\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        }
        let got = rx.wait_for(2, Duration::from_secs(5));
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].json().unwrap()["a"], 2);
        assert_eq!(got[0].header("Authorization"), Some("Bearer t0k"));
        assert_eq!(
            (got[0].method.as_str(), got[0].path.as_str()),
            ("POST", "/x")
        );
    }

    #[test]
    fn rsyslog_receives_on_its_socket() {
        let Some(rs) = Rsyslog::start().unwrap() else {
            return;
        };
        let s = UnixDatagram::unbound().unwrap();
        s.connect(&rs.socket).unwrap();
        s.send(b"<13>1 2024-01-01T00:00:00.000000Z h app 1 id - hello")
            .unwrap();
        let got = rs.wait_for("imuxsock", 1, Duration::from_secs(10));
        assert_eq!(got, vec!["imuxsock|1|5|h|app|1|id|hello".to_string()]);
    }
}
