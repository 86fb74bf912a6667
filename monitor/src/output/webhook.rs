//! The webhook output (Falco's `http_output`): one POST of the alert's Falco JSON per alert,
//! the body Falcosidekick reads. HTTPS through rustls with the web's root CAs plus an optional
//! CA file; a bearer token from a file (re-read per request, so rotated service-account
//! tokens are picked up) or from an environment variable; retries with exponential backoff
//! for failures that may pass.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, StatusCode, Url};

use super::{DeliveryError, Format, OutputError};
use crate::alert::Alert;
use crate::config::HttpOutputConfig;
use crate::metrics::OutputMetrics;

enum Token {
    None,
    Fixed(String),
    File { path: PathBuf, last: String },
}

pub struct WebhookSink {
    client: Client,
    url: Url,
    token: Token,
    format: Format,
    max_retries: u32,
    backoff: Duration,
    max_backoff: Duration,
}

fn setup(key: &'static str, reason: impl Into<String>) -> OutputError {
    OutputError::Setup {
        key,
        reason: reason.into(),
    }
}

fn read_token(path: &PathBuf) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

impl WebhookSink {
    pub fn new(cfg: &HttpOutputConfig, format: Format) -> Result<Self, OutputError> {
        let url = Url::parse(&cfg.url).map_err(|e| setup("http_output.url", e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| setup("http_output.headers", format!("{name}: {e}")))?;
            let v = HeaderValue::from_str(value)
                .map_err(|e| setup("http_output.headers", format!("{name}: {e}")))?;
            headers.insert(n, v);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut builder = Client::builder()
            .user_agent(cfg.user_agent.clone())
            .default_headers(headers)
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms))
            .danger_accept_invalid_certs(cfg.insecure);
        if let Some(ca) = &cfg.ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| setup("http_output.ca_cert", format!("{}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup("http_output.ca_cert", format!("{}: {e}", ca.display())))?;
            if certs.is_empty() {
                return Err(setup(
                    "http_output.ca_cert",
                    format!("{}: no PEM certificate in it", ca.display()),
                ));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| setup("http_output", format!("cannot build the HTTP client: {e}")))?;
        let token = match (&cfg.token_file, &cfg.token_env) {
            (Some(path), _) => {
                let last = read_token(path).map_err(|e| {
                    setup("http_output.token_file", format!("{}: {e}", path.display()))
                })?;
                Token::File {
                    path: path.clone(),
                    last,
                }
            }
            (None, Some(var)) => Token::Fixed(std::env::var(var).map_err(|_| {
                setup(
                    "http_output.token_env",
                    format!("environment variable {var} is not set (or not UTF-8)"),
                )
            })?),
            (None, None) => Token::None,
        };
        Ok(WebhookSink {
            client,
            url,
            token,
            format,
            max_retries: cfg.max_retries,
            backoff: Duration::from_millis(cfg.backoff_ms),
            max_backoff: Duration::from_millis(cfg.max_backoff_ms),
        })
    }

    fn bearer(&mut self) -> Option<String> {
        match &mut self.token {
            Token::None => None,
            Token::Fixed(t) => Some(t.clone()),
            Token::File { path, last } => {
                // Keep the last good token if the file is briefly missing during a rotation.
                if let Ok(t) = read_token(path) {
                    *last = t;
                }
                Some(last.clone())
            }
        }
    }

    pub async fn deliver(&mut self, alert: &Alert, m: &OutputMetrics) -> Result<(), DeliveryError> {
        let body = alert
            .to_json(self.format.include_output, self.format.include_tags)
            .to_string();
        let mut wait = self.backoff;
        let mut attempt = 0u32;
        loop {
            let mut req = self.client.post(self.url.clone()).body(body.clone());
            if let Some(t) = self.bearer() {
                req = req.header(AUTHORIZATION, format!("Bearer {t}"));
            }
            let error = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => {
                    let status = resp.status();
                    let e = DeliveryError::Other(format!("{}: HTTP {status}", self.url));
                    if !retryable(status) {
                        return Err(e);
                    }
                    e
                }
                Err(e) => DeliveryError::Other(format!("{}: {}", self.url, error_chain(&e))),
            };
            if attempt >= self.max_retries {
                return Err(error);
            }
            attempt += 1;
            m.retries.inc();
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.max_backoff);
        }
    }
}

/// Failures that may pass: the server is overloaded, restarting, or asks us to wait.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// reqwest's top-level message hides the cause ("error sending request"); the chain says it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}
