//! Real receivers for the output tests: an HTTP(S) server on 127.0.0.1 in the test process,
//! and a real rsyslogd started by hand on a socket and ports of its own.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

pub use e2e::metric;
pub use e2e::receivers::Rsyslog;
use monitor::alert::{Alert, Priority};

pub fn alert(rule: &str, n: u64) -> Alert {
    let mut fields = BTreeMap::new();
    fields.insert("proc.name".to_string(), serde_json::json!("bash"));
    fields.insert("n".to_string(), serde_json::json!(n));
    Alert {
        time_ns: 1_700_000_000_000_000_000 + n,
        rule: Arc::from(rule),
        priority: Priority::Warning,
        output: format!("alert number {n} (proc.name=bash)"),
        output_fields: fields,
        tags: vec!["test".into(), "ops".into()],
        source: "syscall",
        hostname: Arc::from("test-host"),
        enforcement: None,
    }
}

/// Wait until `done` holds for `series` in the metrics, at most `limit`; panics with the
/// metrics page when it never does. For a test that must not go on before a worker has
/// reached some point (tried, failed...).
pub async fn wait_metric(
    metrics: &monitor::metrics::Metrics,
    series: &str,
    done: impl Fn(Option<f64>) -> bool,
    limit: Duration,
) {
    let until = Instant::now() + limit;
    while !done(metric(&metrics.encode(), series)) {
        assert!(
            Instant::now() < until,
            "{series} never got there in {limit:?}:\n{}",
            metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The lines of a file output's file; none while it does not exist yet.
pub fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Read `read` until it gives at least `n` lines, at most `limit`, and return what it gave
/// last; the caller asserts on the count so a shortfall shows what did arrive.
async fn poll_lines(n: usize, limit: Duration, read: impl Fn() -> Vec<String>) -> Vec<String> {
    let until = Instant::now() + limit;
    loop {
        let l = read();
        if l.len() >= n || Instant::now() >= until {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the file holds at least `n` lines, at most `limit` (see `poll_lines`).
pub async fn wait_lines(path: &std::path::Path, n: usize, limit: Duration) -> Vec<String> {
    poll_lines(n, limit, || lines(path)).await
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

#[derive(Default)]
pub struct Inbox {
    pub received: Mutex<Vec<Received>>,
    notify: Notify,
    delay: Duration,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !inbox.delay.is_zero() {
        tokio::time::sleep(inbox.delay).await;
    }
    let Ok(body) = serde_json::from_slice(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    inbox
        .received
        .lock()
        .unwrap()
        .push(Received { headers, body });
    inbox.notify.notify_waiters();
    StatusCode::OK
}

/// A webhook receiver: records each POST's headers and JSON body.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    pub inbox: Arc<Inbox>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl HttpReceiver {
    pub async fn start(delay: Duration) -> HttpReceiver {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), delay).await
    }

    pub async fn start_on(addr: SocketAddr, delay: Duration) -> HttpReceiver {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        Self::serve(listener, delay)
    }

    fn serve<L>(listener: L, delay: Duration) -> HttpReceiver
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let addr = listener.local_addr().expect("local addr");
        let inbox = Arc::new(Inbox {
            delay,
            ..Default::default()
        });
        let app = Router::new()
            .route("/alerts", post(receive))
            .with_state(inbox.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        HttpReceiver {
            addr,
            inbox,
            stop: Some(stop),
            task,
        }
    }

    /// Serves HTTPS with the given certificate chain and key.
    pub async fn start_tls(cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> HttpReceiver {
        use tokio_rustls::rustls;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server certificate");
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        Self::serve(listener, Duration::ZERO)
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/alerts", self.addr)
    }

    pub fn count(&self) -> usize {
        self.inbox.received.lock().unwrap().len()
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived (or the timeout), and returns all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let until = Instant::now() + timeout;
        loop {
            let notified = self.inbox.notify.notified();
            if self.count() >= n || Instant::now() >= until {
                return self.received();
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            // A client that rejects our certificate fails here; wait for the next one.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A private CA and a server certificate for 127.0.0.1 and localhost signed by it.
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert: rcgen::Certificate,
    pub server_key: rcgen::KeyPair,
}

pub fn make_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "monitor test CA");
    let ca_key = KeyPair::generate().expect("ca key");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = params
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");
    TestPki {
        ca_pem: ca.pem(),
        server_cert,
        server_key,
    }
}

/// A real rsyslogd listening on a unix socket, UDP and TCP on 127.0.0.1, writing every
/// message it gets as `input|facility|severity|hostname|app|procid|msgid|msg` lines.
/// Starts the end-to-end tests' rsyslogd (`e2e::receivers::Rsyslog`); `None` (after saying
/// why) when rsyslogd is not installed and CI is not set.
pub fn start_rsyslog() -> Option<Rsyslog> {
    Rsyslog::start().expect("start rsyslogd")
}

/// Waits, without blocking the runtime, until `n` lines from `input` (imuxsock, imudp, imtcp)
/// are written by `rs`.
pub async fn syslog_lines(rs: &Rsyslog, input: &str, n: usize, timeout: Duration) -> Vec<String> {
    let prefix = format!("{input}|");
    poll_lines(n, timeout, || {
        rs.lines()
            .into_iter()
            .filter(|l| l.starts_with(&prefix))
            .collect()
    })
    .await
}
