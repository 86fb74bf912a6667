//! The small HTTP server for Prometheus (`/metrics`) and Kubernetes probes (`/healthz`,
//! `/readyz`), shaped by Falco's `webserver` settings and bound to loopback by default.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::WebserverConfig;
use crate::metrics::{CONTENT_TYPE, Metrics};

/// Whether the daemon is ready: set once the probes are attached and the rules loaded, so that
/// Kubernetes does not count a node as watched before it is.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("webserver: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The running server; dropping it leaves the server running until the runtime ends, calling
/// [`WebServer::shutdown`] stops it.
#[derive(Debug)]
pub struct WebServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl WebServer {
    /// The address actually bound (useful with `listen_port: 0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Health,
}

/// Binds the listener now (so that a port in use is reported at start-up) and serves in a task.
/// Returns `Ok(None)` when `webserver.enabled` is false.
pub async fn serve(
    cfg: &WebserverConfig,
    metrics: Arc<Metrics>,
    health: Health,
) -> Result<Option<WebServer>, WebError> {
    if !cfg.enabled {
        return Ok(None);
    }
    let addr = SocketAddr::new(cfg.listen_address, cfg.listen_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    let mut app = Router::new()
        .route(&cfg.k8s_healthz_endpoint, get(healthz))
        .route("/readyz", get(readyz));
    if cfg.prometheus_metrics_enabled {
        app = app.route("/metrics", get(metrics_page));
    }
    let app = app.with_state(AppState { metrics, health });
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        });
        if let Err(e) = server.await {
            tracing::error!("webserver on {addr} stopped: {e}");
        }
    });
    tracing::info!("webserver listening on http://{addr}");
    Ok(Some(WebServer {
        addr,
        stop: Some(stop_tx),
        task,
    }))
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_page(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], s.metrics.encode())
}
