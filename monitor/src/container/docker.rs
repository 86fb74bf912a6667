//! Docker Engine API client over its unix socket, and the mapping of `GET /containers/{id}/json`
//! to `ContainerInfo` with Falco's field meanings. Podman's Docker-compatible socket answers
//! the same calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::UnixStream;

use super::image::ImageRef;
use super::k8s::K8sLabels;
use super::{ContainerInfo, ContainerRuntime, Mount};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {socket} failed: {source}")]
    Http {
        socket: PathBuf,
        source: hyper::Error,
    },
    #[error("{socket} did not answer within {timeout:?}")]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("{socket} answered {status} to {path}: {body}")]
    Status {
        socket: PathBuf,
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error("malformed JSON from {socket} for {path}: {source}")]
    Json {
        socket: PathBuf,
        path: String,
        source: serde_json::Error,
    },
    #[error("bad request {path}: {source}")]
    Request {
        path: String,
        source: hyper::http::Error,
    },
}

impl DockerError {
    /// True when the engine itself cannot be reached (as opposed to answering an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            DockerError::Connect { .. } | DockerError::Http { .. } | DockerError::Timeout { .. }
        )
    }
}

/// One Engine API endpoint. Each call opens its own connection: calls are rare (one per new
/// container), and a fresh connection never inherits a broken one.
#[derive(Clone, Debug)]
pub struct DockerClient {
    socket: PathBuf,
    timeout: Duration,
}

impl DockerClient {
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> DockerClient {
        DockerClient {
            socket: socket.into(),
            timeout,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn send(&self, path: &str) -> Result<Response<Incoming>, DockerError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| DockerError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
        let http_err = |source| DockerError::Http {
            socket: self.socket.clone(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_err)?;
        tokio::spawn(async move {
            // The connection ends with its response body, or with an I/O error that the
            // request's own future reports.
            let _ = conn.await;
        });
        let req = Request::get(path)
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|source| DockerError::Request {
                path: path.to_string(),
                source,
            })?;
        sender.send_request(req).await.map_err(http_err)
    }

    /// GET returning the status and the whole body, all within the timeout.
    async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), DockerError> {
        let exchange = async {
            let resp = self.send(path).await?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|source| DockerError::Http {
                    socket: self.socket.clone(),
                    source,
                })?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| DockerError::Timeout {
                socket: self.socket.clone(),
                timeout: self.timeout,
            })?
    }

    /// GET of a JSON document; `None` on 404.
    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
    ) -> Result<Option<T>, DockerError> {
        let (status, body) = self.get(path).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(DockerError::Status {
                socket: self.socket.clone(),
                path: path.to_string(),
                status,
                body: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|source| DockerError::Json {
                socket: self.socket.clone(),
                path: path.to_string(),
                source,
            })
    }

    pub async fn ping(&self) -> Result<(), DockerError> {
        let (status, body) = self.get("/_ping").await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(DockerError::Status {
                socket: self.socket.clone(),
                path: "/_ping".into(),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        }
    }

    pub async fn inspect_container(&self, id: &str) -> Result<Option<ContainerJson>, DockerError> {
        if !is_safe_ref(id) {
            return Ok(None);
        }
        self.get_json(&format!("/containers/{id}/json")).await
    }

    pub async fn inspect_image(&self, image: &str) -> Result<Option<ImageJson>, DockerError> {
        if !is_safe_ref(image) {
            return Ok(None);
        }
        self.get_json(&format!("/images/{image}/json")).await
    }

    /// Containers carrying all of `labels` (`key=value`), stopped ones included.
    pub async fn containers_with_labels(
        &self,
        labels: &[String],
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let filters = serde_json::json!({ "label": labels }).to_string();
        let path = format!(
            "/containers/json?all=1&filters={}",
            percent_encode(&filters)
        );
        Ok(self.get_json(&path).await?.unwrap_or_default())
    }

    /// Opens the container event stream (`GET /events`, destroy and rename only). It has no
    /// timeout: it stays open for as long as the engine runs.
    pub async fn events(&self) -> Result<EventStream, DockerError> {
        let filters = r#"{"type":["container"],"event":["destroy","rename"]}"#;
        let path = format!("/events?filters={}", percent_encode(filters));
        let resp = tokio::time::timeout(self.timeout, self.send(&path))
            .await
            .map_err(|_| DockerError::Timeout {
                socket: self.socket.clone(),
                timeout: self.timeout,
            })??;
        if !resp.status().is_success() {
            return Err(DockerError::Status {
                socket: self.socket.clone(),
                path,
                status: resp.status(),
                body: String::new(),
            });
        }
        Ok(EventStream {
            socket: self.socket.clone(),
            body: resp.into_body(),
            buf: BytesMut::new(),
        })
    }
}

/// Ids and image references go into the URL path: anything beyond these characters cannot be
/// one, and is not sent.
fn is_safe_ref(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/' | b'@')
        })
        && !s.contains("..")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /events`: newline-separated JSON objects, in chunks that need not end at an object's
/// end.
pub struct EventStream {
    socket: PathBuf,
    body: Incoming,
    buf: BytesMut,
}

impl EventStream {
    /// The next event; `Ok(None)` when the engine closed the stream.
    pub async fn next(&mut self) -> Result<Option<DockerEvent>, DockerError> {
        loop {
            if let Some(event) = self.take_event()? {
                return Ok(Some(event));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(source)) => {
                    return Err(DockerError::Http {
                        socket: self.socket.clone(),
                        source,
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    fn take_event(&mut self) -> Result<Option<DockerEvent>, DockerError> {
        let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<DockerEvent>();
        let result = stream.next();
        let consumed = stream.byte_offset();
        match result {
            None => {
                self.buf.clear();
                Ok(None)
            }
            Some(Ok(event)) => {
                let _ = self.buf.split_to(consumed);
                Ok(Some(event))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(source)) => {
                self.buf.clear();
                Err(DockerError::Json {
                    socket: self.socket.clone(),
                    path: "/events".into(),
                    source,
                })
            }
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct DockerEvent {
    #[serde(rename = "Type", default)]
    pub kind: String,
    #[serde(rename = "Action", default)]
    pub action: String,
    #[serde(rename = "Actor", default)]
    pub actor: EventActor,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EventActor {
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// The parts of `GET /containers/{id}/json` that the monitor uses.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerJson {
    pub id: String,
    pub created: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    pub config: Option<ContainerConfigJson>,
    pub host_config: Option<HostConfigJson>,
    pub mounts: Option<Vec<MountJson>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfigJson {
    pub image: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfigJson {
    pub privileged: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountJson {
    pub source: String,
    pub destination: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

/// The parts of `GET /images/{name}/json` that the monitor uses.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageJson {
    pub id: String,
    pub repo_tags: Option<Vec<String>>,
    pub repo_digests: Option<Vec<String>>,
}

/// An entry of `GET /containers/json`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    pub labels: Option<BTreeMap<String, String>>,
}

/// Fills a `ContainerInfo` the way Falco's Docker engine does:
/// - `container.image` is the image as the container was created from (`Config.Image`); a
///   container made from a bare image id shows the image's first tag instead;
/// - `image.repository`/`image.tag` split that reference, the tag defaulting to `latest`
///   when none is written (as `docker run redis` means `redis:latest`);
/// - `image.digest` is the reference's own `@sha256:...`, else the image's repo digest for
///   the same repository (images made by `docker import` have none);
/// - `start_ts` is the creation time (`Created`), in nanoseconds.
pub fn to_info(
    runtime: ContainerRuntime,
    c: &ContainerJson,
    image: Option<&ImageJson>,
    k8s_rule: &K8sLabels,
) -> ContainerInfo {
    let mut info = ContainerInfo::id_only(&c.id, runtime);
    info.name = c
        .name
        .as_deref()
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty());
    let config_image = c.config.as_ref().and_then(|cfg| cfg.image.clone());
    let image_name = match config_image {
        Some(name) if !name.starts_with("sha256:") => Some(name),
        other => image
            .and_then(|i| i.repo_tags.as_ref())
            .and_then(|tags| tags.first().cloned())
            .or(other),
    };
    if let Some(name) = image_name.as_deref().filter(|n| !n.starts_with("sha256:")) {
        let r = ImageRef::parse(name);
        info.image_repository = Some(r.repository.clone());
        info.image_tag = Some(r.tag.clone().unwrap_or_else(|| "latest".to_string()));
        info.image_digest = r.digest.clone().or_else(|| {
            image
                .and_then(|i| i.repo_digests.as_ref())
                .and_then(|digests| {
                    digests
                        .iter()
                        .find(|d| ImageRef::parse(d).repository == r.repository)
                        .or_else(|| digests.first())
                })
                .and_then(|d| ImageRef::parse(d).digest)
        });
    }
    info.image = image_name;
    info.image_id = c
        .image
        .as_deref()
        .map(|i| i.trim_start_matches("sha256:").to_string());
    info.privileged = c.host_config.as_ref().and_then(|h| h.privileged);
    info.start_ts = c.created.as_deref().and_then(parse_rfc3339_ns);
    info.mounts = c
        .mounts
        .iter()
        .flatten()
        .map(|m| Mount {
            source: m.source.clone(),
            dest: m.destination.clone(),
            mode: m.mode.clone(),
            rw: m.rw,
            propagation: m.propagation.clone(),
        })
        .collect();
    info.labels = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.labels.clone())
        .unwrap_or_default();
    info.k8s = k8s_rule.from_labels(&info.labels);
    info.metadata_complete = true;
    info
}

/// Nanoseconds since the epoch of an RFC 3339 time (`2026-11-23T13:26:56.987821449Z`).
pub fn parse_rfc3339_ns(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_json_maps_to_falco_fields() {
        let json = r#"{
            "Id": "25da11e8804d1e420055e6b5b1c535bcfe790fa67809ef8db9e201990c7ce540",
            "Created": "2026-11-23T13:26:56.987821449Z",
            "Name": "/web",
            "Image": "sha256:2a0d56948e711ccb4aa7eb8db45b1f821c4dd9461aee5d27278821c40f0d62a2",
            "Config": {"Image": "docker.io/library/redis:7", "Labels": {"io.kubernetes.pod.name": "p", "io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.uid": "u", "a": "b"}},
            "HostConfig": {"Privileged": true},
            "Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "Mode": "ro", "RW": false, "Propagation": "rprivate"}]
        }"#;
        let c: ContainerJson = serde_json::from_str(json).unwrap();
        let image = ImageJson {
            id: String::new(),
            repo_tags: Some(vec!["redis:7".into()]),
            repo_digests: Some(vec![
                "other/x@sha256:00".into(),
                "docker.io/library/redis@sha256:abcd".into(),
            ]),
        };
        let info = to_info(
            ContainerRuntime::Docker,
            &c,
            Some(&image),
            &K8sLabels::default(),
        );
        assert_eq!(info.id, "25da11e8804d");
        assert_eq!(info.name.as_deref(), Some("web"));
        assert_eq!(info.image.as_deref(), Some("docker.io/library/redis:7"));
        assert_eq!(
            info.image_repository.as_deref(),
            Some("docker.io/library/redis")
        );
        assert_eq!(info.image_tag.as_deref(), Some("7"));
        assert_eq!(info.image_digest.as_deref(), Some("sha256:abcd"));
        assert_eq!(
            info.image_id.as_deref(),
            Some("2a0d56948e711ccb4aa7eb8db45b1f821c4dd9461aee5d27278821c40f0d62a2")
        );
        assert_eq!(info.privileged, Some(true));
        assert_eq!(info.start_ts, Some(1_795_440_416_987_821_449));
        assert_eq!(info.mounts.len(), 1);
        assert!(!info.mounts[0].rw);
        assert_eq!(info.labels.get("a").map(String::as_str), Some("b"));
        let k8s = info.k8s.clone().unwrap_or_default();
        assert_eq!(
            (
                k8s.pod_name.as_str(),
                k8s.ns_name.as_str(),
                k8s.pod_uid.as_str()
            ),
            ("p", "ns", "u")
        );
        assert!(info.metadata_complete);
    }

    #[test]
    fn null_and_missing_fields_are_not_errors() {
        let c: ContainerJson = serde_json::from_str(
            r#"{"Id": "abc", "Config": {"Image": "sha256:ff", "Labels": null}, "Mounts": null}"#,
        )
        .unwrap();
        let info = to_info(ContainerRuntime::Docker, &c, None, &K8sLabels::default());
        assert_eq!(info.image.as_deref(), Some("sha256:ff"));
        assert_eq!(info.image_repository, None);
        assert!(info.labels.is_empty());
        assert_eq!(info.k8s, None);
        let untagged: ContainerJson =
            serde_json::from_str(r#"{"Id": "abc", "Config": {"Image": "localhost:5000/app"}}"#)
                .unwrap();
        let info = to_info(
            ContainerRuntime::Docker,
            &untagged,
            None,
            &K8sLabels::default(),
        );
        assert_eq!(info.image_repository.as_deref(), Some("localhost:5000/app"));
        assert_eq!(info.image_tag.as_deref(), Some("latest"));
    }

    #[test]
    fn only_plain_references_reach_the_url() {
        assert!(is_safe_ref("25da11e8804d"));
        assert!(is_safe_ref("docker.io/library/redis:7"));
        assert!(!is_safe_ref("../../_ping"));
        assert!(!is_safe_ref("a?b"));
        assert!(!is_safe_ref(""));
        assert_eq!(
            percent_encode(r#"{"a":["b=c"]}"#),
            "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D"
        );
    }
}
