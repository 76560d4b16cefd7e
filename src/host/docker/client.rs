//! The shared Docker client: connects on first use, negotiates the API
//! version, puts a time limit on every call, maps bollard's errors to tool
//! errors, and after a daemon hang fails fast for [`HUNG_BACKOFF`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::models as m;
use bollard::query_parameters as qp;
use serde_json::{Value, json};

use super::config::{DockerConfig, Endpoint, HINT_DOWN};
use super::limits::{CLIENT_TIMEOUT_SECS, HEALTH_TIMEOUT, HUNG_BACKOFF, SPINE_MARGIN_SECS};
use super::redact::redact_line;
use super::refs::container_ref;
use crate::mcp::contract::{ErrorCategory, ToolError};

/// The shared Docker client. Cheap to clone; connects on first use,
/// forgets the connection when the daemon stops answering and reconnects
/// on the next call.
#[derive(Clone)]
pub struct Docker {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: DockerConfig,
    conn: Mutex<Option<Conn>>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Until when calls fail fast after a timeout.
    hung_until: Mutex<Option<Instant>>,
    /// The last CPU reading per container (`container_stats` one-shot).
    readings: super::cpu::Readings,
    /// Init PIDs (or recent misses) per container (`container_stats` from cgroups).
    cgroup_pids: super::cgroup::Pids,
}

#[derive(Clone)]
pub(super) struct Conn {
    pub(super) api: bollard::Docker,
    pub(super) endpoint: Endpoint,
    pub(super) engine_version: String,
    pub(super) api_version: String,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docker").field("cfg", &self.inner.cfg).finish_non_exhaustive()
    }
}

pub(super) fn unavailable(message: impl Into<String>) -> ToolError {
    ToolError::unavailable(message, HINT_DOWN)
}

impl Docker {
    /// Stores the config; connects on first use.
    pub fn new(cfg: &DockerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                hung_until: Mutex::new(None),
                readings: super::cpu::Readings::default(),
                cgroup_pids: super::cgroup::Pids::default(),
            }),
        }
    }

    pub(super) fn readings(&self) -> &super::cpu::Readings {
        &self.inner.readings
    }

    pub(super) fn cgroup_pids(&self) -> &super::cgroup::Pids {
        &self.inner.cgroup_pids
    }

    pub(super) fn cfg(&self) -> &DockerConfig {
        &self.inner.cfg
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg().timeout_secs)
    }

    /// Docker state for `/readyz`; never fails, bounded by [`HEALTH_TIMEOUT`].
    pub async fn health(&self) -> Value {
        let limit = HEALTH_TIMEOUT.min(self.timeout());
        let probe = async {
            let c = self.conn().await?;
            self.run(&c, limit, c.api.ping()).await?;
            Ok::<_, ToolError>(c)
        };
        match tokio::time::timeout(limit, probe).await {
            Ok(Ok(c)) => json!({ "status": "ok", "version": c.engine_version, "api_version": c.api_version }),
            Ok(Err(e)) => json!({ "status": "unavailable", "error": e.message }),
            Err(_) => {
                json!({ "status": "unavailable", "error": format!("no answer within {} ms", limit.as_millis()) })
            }
        }
    }

    fn cached(&self) -> Option<Conn> {
        self.inner.conn.lock().ok().and_then(|g| g.clone())
    }

    pub(super) fn forget(&self) {
        if let Ok(mut g) = self.inner.conn.lock() {
            *g = None;
        }
    }

    fn hung(&self) -> bool {
        self.inner.hung_until.lock().ok().and_then(|g| *g).is_some_and(|t| Instant::now() < t)
    }

    pub(super) fn set_hung(&self, on: bool) {
        if let Ok(mut g) = self.inner.hung_until.lock() {
            *g = on.then(|| Instant::now() + HUNG_BACKOFF);
        }
    }

    /// The shared connection, made (and the API version negotiated) if
    /// there is none.
    pub(super) async fn conn(&self) -> Result<Conn, ToolError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        if self.hung() {
            return Err(unavailable("the Docker daemon did not answer recently"));
        }
        let limit = self.timeout();
        let attempt = async {
            let _one = self.inner.connecting.lock().await;
            if let Some(c) = self.cached() {
                return Ok(c);
            }
            let endpoint = self.cfg().resolve()?;
            let api = match &endpoint {
                Endpoint::Unix(p) => bollard::Docker::connect_with_unix(
                    &p.to_string_lossy(),
                    CLIENT_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                ),
                Endpoint::Tcp(a) => bollard::Docker::connect_with_http(
                    &format!("tcp://{a}"),
                    CLIENT_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                ),
            }
            .map_err(|e| match e {
                BollardError::SocketNotFoundError(_) => unavailable("the Docker socket does not exist"),
                e => unavailable(format!("cannot connect to the Docker daemon: {}", short(&e))),
            })?;
            let api = api
                .negotiate_version()
                .await
                .map_err(|e| unavailable(format!("the Docker daemon does not answer: {}", short(&e))))?;
            let v = api
                .version()
                .await
                .map_err(|e| unavailable(format!("the Docker daemon does not answer: {}", short(&e))))?;
            let c = Conn {
                api,
                engine_version: v.version.unwrap_or_default(),
                api_version: v.api_version.unwrap_or_default(),
                endpoint,
            };
            tracing::info!(endpoint = %c.endpoint.display(), version = %c.engine_version, api = %c.api_version, "connected to Docker");
            if let Ok(mut g) = self.inner.conn.lock() {
                *g = Some(c.clone());
            }
            Ok(c)
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => {
                if r.is_ok() {
                    self.set_hung(false);
                }
                r
            }
            Err(_) => {
                self.set_hung(true);
                Err(unavailable(format!("the Docker daemon did not answer within {} s", limit.as_secs())))
            }
        }
    }

    /// One Docker call with a time limit, its error mapped to a ToolError.
    pub(super) async fn run<T>(
        &self,
        c: &Conn,
        limit: Duration,
        fut: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, ToolError> {
        match tokio::time::timeout(limit, fut).await {
            Err(_) => {
                self.set_hung(true);
                self.forget();
                Err(unavailable(format!("the Docker daemon did not answer within {} s", limit.as_secs())))
            }
            Ok(Err(e)) => Err(self.classify(c, e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Maps a bollard error; transport failures drop the connection so the
    /// next call reconnects.
    pub(super) fn classify(&self, _c: &Conn, e: BollardError) -> ToolError {
        match e {
            BollardError::DockerResponseServerError { status_code, message } => {
                let message = redact_line(message.trim());
                match status_code {
                    404 => ToolError::not_found(message, "list what exists with container_list or image_list"),
                    409 | 304 => ToolError::new(ErrorCategory::Conflict, message, "check the current state first"),
                    400 => ToolError::invalid_input(message, "fix the arguments"),
                    401 | 403 => ToolError::permission_denied(message, "the Docker daemon refused the request"),
                    _ => ToolError::unavailable(
                        format!("Docker failed: {message}"),
                        "retry later; the daemon's log has the details",
                    ),
                }
            }
            BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. } => {
                ToolError::internal(format!("unexpected answer from Docker: {}", short(&e)))
            }
            BollardError::DockerStreamError { error } => {
                ToolError::unavailable(format!("Docker failed: {}", redact_line(&error)), "retry later")
            }
            other => {
                self.forget();
                unavailable(format!("lost the connection to the Docker daemon: {}", short(&other)))
            }
        }
    }

    /// The time left for a long operation inside the spine's per-tool limit.
    pub(super) fn budget(spine_limit_secs: u64) -> Duration {
        Duration::from_secs(spine_limit_secs.saturating_sub(SPINE_MARGIN_SECS).max(1))
    }

    /// A raw GET returning JSON (used for `/system/df`, whose shape changed
    /// across API versions in ways the typed models do not cover).
    pub(super) async fn raw_get(&self, c: &Conn, path: &str) -> Result<Value, ToolError> {
        use http_body_util::BodyExt;
        let uri = format!("/v{}{}", c.api_version, path);
        let fetch = async {
            let req = hyper::Request::get(&uri)
                .header("host", "docker")
                .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                .map_err(|e| e.to_string())?;
            let resp = match &c.endpoint {
                Endpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await.map_err(|e| e.to_string())?;
                    send(s, req).await?
                }
                Endpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a).await.map_err(|e| e.to_string())?;
                    send(s, req).await?
                }
            };
            let status = resp.status();
            let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            if !status.is_success() {
                return Err(format!("status {status}"));
            }
            serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
        };
        async fn send<S>(
            s: S,
            req: hyper::Request<http_body_util::Empty<hyper::body::Bytes>>,
        ) -> Result<hyper::Response<hyper::body::Incoming>, String>
        where
            S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            tx.send_request(req).await.map_err(|e| e.to_string())
        }
        match tokio::time::timeout(self.timeout(), fetch).await {
            Err(_) => Err(unavailable(format!("Docker did not answer {path} within {} s", self.timeout().as_secs()))),
            Ok(Err(e)) => Err(ToolError::unavailable(format!("Docker {path} failed: {e}"), "retry later")),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Inspects a container (validated reference).
    pub(super) async fn inspect(&self, c: &Conn, container: &str) -> Result<m::ContainerInspectResponse, ToolError> {
        let name = container_ref(container)?;
        self.run(c, self.timeout(), c.api.inspect_container(&name, None::<qp::InspectContainerOptions>)).await.map_err(
            |e| {
                if e.category == ErrorCategory::NotFound {
                    ToolError::not_found(
                        format!("no container {name:?}"),
                        "list containers with container_list (all=true)",
                    )
                } else {
                    e
                }
            },
        )
    }
}

/// First line of an error, without the noise of nested sources.
fn short(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    let s = s.lines().next().unwrap_or_default();
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_socket_is_unavailable_at_once() {
        let d = Docker::new(&DockerConfig {
            host: Some("unix:///nonexistent/tailops-test/docker.sock".into()),
            ..Default::default()
        });
        let t0 = Instant::now();
        let e = d.conn().await.err().expect("no daemon there");
        assert_eq!(e.category, ErrorCategory::Unavailable);
        assert!(!e.message.contains("/nonexistent"), "no internal paths in messages: {}", e.message);
        // At once, not after the 10 s default timeout (a bound with room
        // for a loaded box, well under the timeout it tells apart).
        assert!(t0.elapsed() < Duration::from_secs(5));
        let h = d.health().await;
        assert_eq!(h["status"], "unavailable", "{h}");
    }
}
