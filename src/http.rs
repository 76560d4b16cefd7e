//! The HTTP side: the axum router, its middleware, and the loop that serves
//! it on a listener (the tailnet's, or loopback TCP in dev mode).
//!
//! Middleware order, outermost first:
//! 1. connection info (remote addr; set by the accept loop),
//! 2. `identify`: Host check, then WhoIs once per connection → [`Caller`]
//!    (deny by default: an unidentifiable peer gets 403),
//! 3. `mcp_gate` (on `/mcp` only): repeated-denial block, session binding
//!    and per-principal session cap, request body cap, rate limit (429 with
//!    Retry-After) and OAuth step-up for `tools/call`,
//! 4. rmcp's `StreamableHttpService` (Origin/Host validation on, sessions
//!    reaped when idle) → `mcp.rs`.
//!
//! Nothing here knows about any tool domain.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::audit::{self, Event};
use crate::auth::caller::Caller;
use crate::auth::identity::Principal;
use crate::auth::oauth::{
    Connector, OAuthConfig, TokenValidator, bearer_from_header, protected_resource_metadata, www_authenticate,
};
use crate::auth::policy::{Access, Decision};
use crate::auth::ratelimit::Refusal;
use crate::auth::scopes::Scope;
use crate::config::{Config, Limits};
use crate::mcp::{RATE_LIMITED_CODE, RateChecked, Spine, TailopsServer, decision_event};
use crate::tailnet::{Listener, Node};

/// Where callers' identities come from.
pub enum IdentitySource {
    /// The tailnet: WhoIs on the node.
    Tailnet(Node),
    /// A fixed local principal (dev-listen), from config `[local]`.
    Local,
}

/// The OAuth resource-server part, when enabled.
pub struct OAuthGate {
    pub validator: TokenValidator,
    pub cfg: OAuthConfig,
    /// URL of our RFC 9728 metadata, for `WWW-Authenticate`.
    pub metadata_url: String,
}

impl OAuthGate {
    /// `resource` must already be filled in.
    pub fn new(cfg: OAuthConfig, connector: Arc<dyn Connector>) -> Result<Self, String> {
        let origin = match cfg.resource.find("://").map(|i| i + 3) {
            Some(start) => {
                let end = cfg.resource[start..].find('/').map(|e| start + e).unwrap_or(cfg.resource.len());
                cfg.resource[..end].to_string()
            }
            None => return Err(format!("oauth.resource {:?} is not a URL", cfg.resource)),
        };
        let metadata_url = format!("{origin}/.well-known/oauth-protected-resource/mcp");
        let validator = TokenValidator::new(cfg.clone(), connector)?;
        Ok(Self { validator, cfg, metadata_url })
    }

    fn challenge(
        &self,
        status: StatusCode,
        scope: Option<&str>,
        error: Option<(&str, &str)>,
        message: &str,
    ) -> Response {
        let mut r = rpc_error(status, Value::Null, -32001, message, Value::Null);
        if let Ok(h) = HeaderValue::from_str(&www_authenticate(&self.metadata_url, scope, error)) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, h);
        }
        r
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub oauth: Option<Arc<OAuthGate>>,
    pub spine: Arc<Spine>,
    pub identity: Arc<IdentitySource>,
    pub sessions: Arc<SessionOwners>,
    pub session_manager: Arc<LocalSessionManager>,
    /// Host header values accepted (DNS-rebinding defence), lowercased.
    pub allowed_hosts: Arc<Vec<String>>,
}

/// Per-connection facts, inserted into every request by the accept loop.
/// The identity is looked up once per connection and cached: a tailnet
/// connection cannot change hands.
#[derive(Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    caller: Arc<OnceCell<Caller>>,
}

/// Which principal created each MCP session: a session id presented by
/// anyone else is answered 404, as if it did not exist.
#[derive(Default)]
pub struct SessionOwners {
    owners: Mutex<HashMap<String, String>>,
}

impl SessionOwners {
    fn owner(&self, sid: &str) -> Option<String> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).get(sid).cloned()
    }
    fn insert(&self, sid: String, principal: String) {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).insert(sid, principal);
    }
    fn remove(&self, sid: &str) {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).remove(sid);
    }
    /// Live sessions of `principal`; forgets sessions rmcp has reaped.
    async fn live_count(&self, principal: &str, manager: &LocalSessionManager) -> usize {
        let live: std::collections::HashSet<String> =
            manager.sessions.read().await.keys().map(|k| k.to_string()).collect();
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.retain(|sid, _| live.contains(sid));
        owners.values().filter(|p| p.as_str() == principal).count()
    }
}

/// A lowercased host name or IP as it appears in a URL authority (IPv6 in
/// brackets).
fn url_host(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.contains(':') && !n.starts_with('[') { format!("[{n}]") } else { n }
}

/// Host values (with and without port) under which this server is reached.
pub fn allowed_hosts(names: &[String], port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        let n = n.to_ascii_lowercase();
        let bracketed = url_host(&n);
        out.push(format!("{bracketed}:{port}"));
        if port == 80 {
            out.push(bracketed.clone());
        }
        out.push(n);
    }
    out.sort();
    out.dedup();
    out
}

/// Origins a browser on the tailnet may send (scheme + host + port).
fn allowed_origins(names: &[String], port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        let host = url_host(n);
        out.push(format!("http://{host}:{port}"));
        out.push(format!("https://{host}:443"));
    }
    out
}

/// Builds the router. `names` are the hostnames and IPs this server is
/// reached by (MagicDNS names and tailnet IPs, or loopback in dev mode).
pub fn router(
    spine: Arc<Spine>,
    identity: IdentitySource,
    oauth: Option<Arc<OAuthGate>>,
    names: &[String],
    port: u16,
    shutdown: CancellationToken,
) -> Router {
    let limits = &spine.cfg.limits;
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(Duration::from_secs(limits.session_idle_secs));
    let manager = Arc::new(manager);
    let hosts = allowed_hosts(names, port);
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts.clone())
        .with_allowed_origins(allowed_origins(names, port))
        .enforce_origin_validation()
        .with_max_request_body_bytes(limits.max_request_body_bytes)
        .with_cancellation_token(shutdown.child_token());
    let factory_spine = spine.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(TailopsServer::new(factory_spine.clone(), None)),
        manager.clone(),
        mcp_config,
    );
    let state = AppState {
        oauth,
        spine,
        identity: Arc::new(identity),
        sessions: Arc::new(SessionOwners::default()),
        session_manager: manager,
        allowed_hosts: Arc::new(hosts),
    };
    Router::new()
        .route_service("/mcp", mcp)
        .route_layer(middleware::from_fn_with_state(state.clone(), mcp_gate))
        .route("/whoami", get(whoami))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/oauth-protected-resource", get(resource_metadata))
        .route("/.well-known/oauth-protected-resource/mcp", get(resource_metadata))
        .layer(middleware::from_fn_with_state(state.clone(), identify))
        .with_state(state)
}

/// One JSON error shape for HTTP-level refusals.
pub fn error(status: StatusCode, category: &str, message: &str, hint: &str) -> Response {
    (status, Json(json!({ "error": { "category": category, "message": message, "hint": hint } }))).into_response()
}

/// A JSON-RPC error response (for refusals of MCP messages before rmcp).
fn rpc_error(status: StatusCode, id: Value, code: i32, message: &str, data: Value) -> Response {
    (status, Json(json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message, "data": data } })))
        .into_response()
}

async fn resolve_caller(state: &AppState, remote: SocketAddr) -> Result<Caller, crate::tailnet::Error> {
    let cfg = &state.spine.cfg;
    match &*state.identity {
        IdentitySource::Tailnet(node) => {
            let peer = node.whois(remote, Duration::from_secs(cfg.limits.whois_timeout_secs)).await?;
            let principal = Principal::from_peer(peer, remote);
            let access = Access::resolve(&principal, &cfg.capability, &cfg.policy);
            Ok(Caller::new(Arc::new(principal), Arc::new(access)))
        }
        IdentitySource::Local => Ok(local_caller(cfg, remote)),
    }
}

/// The fixed principal of local modes (dev-listen, stdio).
pub fn local_caller(cfg: &Config, source: SocketAddr) -> Caller {
    let l = &cfg.local;
    let principal = Principal {
        id: format!("local:{}", l.name),
        login_name: l.name.clone(),
        display_name: l.name.clone(),
        tags: Vec::new(),
        node_name: "local".into(),
        node_id: String::new(),
        source,
        capabilities: Default::default(),
    };
    let access = Access::fixed(&l.roles, &l.scopes, "config [local]");
    Caller::new(Arc::new(principal), Arc::new(access))
}

/// Host check, then the caller's identity (cached per connection).
async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_ascii_lowercase()));
    if !host.as_ref().is_some_and(|h| state.allowed_hosts.contains(h)) {
        return error(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "unexpected Host header",
            "address this server by its MagicDNS name or tailnet IP",
        );
    }
    let Some(conn) = req.extensions().get::<ConnInfo>().cloned() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "request without connection info", "");
    };
    let looked_up = conn.caller.get_or_try_init(|| resolve_caller(&state, conn.remote)).await;
    match looked_up {
        Ok(c) => {
            req.extensions_mut().insert(c.clone());
            next.run(req).await
        }
        Err(e) => {
            tracing::warn!(remote = %conn.remote, error = %e, "whois failed; refusing request");
            error(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "the caller could not be identified on the tailnet",
                "connect from a node of this tailnet",
            )
        }
    }
}

fn session_header(req: &Request) -> Option<String> {
    req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn retry_after(resp: &mut Response, d: Duration) {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// RFC 9728 metadata (404 when OAuth is off).
async fn resource_metadata(State(state): State<AppState>) -> Response {
    match &state.oauth {
        Some(o) => Json(protected_resource_metadata(&o.cfg)).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "OAuth is not enabled on this server", ""),
    }
}

/// Gate in front of rmcp for `/mcp`.
async fn mcp_gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(mut caller) = req.extensions().get::<Caller>().cloned() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "request without a caller", "");
    };
    let spine = &state.spine;
    let pid = caller.principal.id.clone();
    if let Some(wait) = spine.limiter.blocked_for(&pid) {
        let mut r = rpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            Value::Null,
            RATE_LIMITED_CODE,
            "temporarily blocked after repeated authorization failures",
            json!({ "retry_after_secs": wait.as_secs() }),
        );
        retry_after(&mut r, wait);
        return r;
    }

    // OAuth (optional): a valid bearer token for this resource narrows the
    // identity's scopes to the token's. Tokens are never forwarded.
    if let Some(o) = &state.oauth {
        let token = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_from_header);
        let held: Vec<&str> = caller.access.scopes.keys().map(|s| s.as_str()).collect();
        let held = held.join(" ");
        let Some(token) = token else {
            return o.challenge(
                StatusCode::UNAUTHORIZED,
                Some(&held),
                None,
                "authorization required: send a bearer token",
            );
        };
        match o.validator.validate(token).await {
            Ok(info) => {
                let scopes: std::collections::BTreeSet<Scope> =
                    info.scopes.iter().filter_map(|s| s.parse().ok()).collect();
                caller.token_scopes = Some(Arc::new(scopes));
                req.extensions_mut().insert(caller.clone());
            }
            Err(e) if e.http_status() == 503 => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the token cannot be validated right now",
                    "the authorization server is unreachable; retry later",
                );
            }
            Err(e) => {
                spine.note_denial(&caller, None);
                let desc = e.to_string();
                return o.challenge(
                    StatusCode::UNAUTHORIZED,
                    Some(&held),
                    Some((e.oauth_error_code(), desc.as_str())),
                    "invalid token",
                );
            }
        }
    }

    // Sessions belong to the principal that created them.
    let sid = session_header(&req);
    if let Some(sid) = &sid
        && let Some(owner) = state.sessions.owner(sid)
        && owner != pid
    {
        tracing::warn!(principal = %pid, "MCP session id of another principal presented; refused");
        let _ = spine.audit_event(
            &caller,
            None,
            Event {
                kind: audit::kind::ANOMALY.into(),
                decision: Some("deny".into()),
                detail: Some(json!({ "event": "session_of_other_principal" })),
                ..Default::default()
            },
        );
        spine.note_denial(&caller, None);
        return rpc_error(StatusCode::NOT_FOUND, Value::Null, -32001, "Session not found", Value::Null);
    }
    let is_delete = req.method() == Method::DELETE;
    if req.method() != Method::POST {
        let resp = next.run(req).await;
        if is_delete
            && resp.status().is_success()
            && let Some(sid) = &sid
        {
            state.sessions.remove(sid);
        }
        return resp;
    }

    // POST: look at the JSON-RPC message (bounded) before rmcp does.
    let (mut parts, body) = req.into_parts();
    let limit = spine.cfg.limits.max_request_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_input",
                &format!("request body over {limit} bytes"),
                "send smaller requests (limits.max_request_body_bytes)",
            );
        }
    };
    let msg: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let method = msg.get("method").and_then(Value::as_str).unwrap_or_default();
    let id = msg.get("id").cloned().unwrap_or(Value::Null);

    if method == "initialize" && sid.is_none() {
        let cap = spine.cfg.limits.max_sessions_per_principal;
        if state.sessions.live_count(&pid, &state.session_manager).await >= cap {
            return rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                id,
                RATE_LIMITED_CODE,
                &format!(
                    "too many open sessions ({cap}) for this principal; close one (DELETE) or wait for idle ones to expire"
                ),
                json!({ "max_sessions_per_principal": cap }),
            );
        }
    }

    if method == "tools/call" {
        let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or_default();
        if let Some(spec) = spine.spec(name) {
            let decision = caller.check(spec.name, spec.scope);
            if let Decision::StepUp(scope) = decision
                && let Some(o) = &state.oauth
            {
                let ev = Event {
                    detail: Some(json!({ "required_scope": scope.as_str() })),
                    ..decision_event(name, "step_up", Some("refused"))
                };
                let _ = spine.audit_event(&caller, sid.clone(), ev);
                // Ask for the scopes already granted plus the missing one.
                let mut want: Vec<String> =
                    caller.token_scopes.iter().flat_map(|t| t.iter().map(|s| s.to_string())).collect();
                want.push(scope.to_string());
                let desc = format!("the token lacks scope {scope}");
                let mut r = o.challenge(
                    StatusCode::FORBIDDEN,
                    Some(&want.join(" ")),
                    Some(("insufficient_scope", desc.as_str())),
                    &format!("insufficient_scope: {desc}"),
                );
                *r.body_mut() = Body::from(
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32003, "message": format!("insufficient_scope: {desc}"), "data": {"required_scope": scope.as_str()}}})
                        .to_string(),
                );
                return r;
            }
            if decision == Decision::Allow {
                match spine.limiter.check(&pid, spec.writes) {
                    Ok(()) => {
                        parts.extensions.insert(RateChecked);
                    }
                    Err(refusal) => {
                        let ev = decision_event(name, "rate_limited", Some("refused"));
                        let _ = spine.audit_event(&caller, sid.clone(), ev);
                        let wait = refusal.retry_after();
                        let what = match refusal {
                            Refusal::Blocked { .. } => "temporarily blocked after repeated authorization failures",
                            Refusal::RateLimited { .. } => "rate limit exceeded",
                        };
                        let mut r = rpc_error(
                            StatusCode::TOO_MANY_REQUESTS,
                            id,
                            RATE_LIMITED_CODE,
                            what,
                            json!({ "retry_after_secs": wait.as_secs_f64().ceil() }),
                        );
                        retry_after(&mut r, wait);
                        return r;
                    }
                }
            }
        }
    }

    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    if sid.is_none()
        && let Some(new_sid) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok())
    {
        state.sessions.insert(new_sid.to_string(), pid);
    }
    resp
}

/// `GET /whoami`: the caller's identity as the tailnet reports it.
async fn whoami(axum::Extension(c): axum::Extension<Caller>) -> Json<Principal> {
    Json((*c.principal).clone())
}

/// `GET /healthz`: liveness. The process answers, so it is alive.
async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.spine.started.elapsed().as_secs(),
        "node": state.spine.node_name,
    }))
}

/// `GET /readyz`: readiness and degradations. 200 while tools can be
/// served (also "degraded": reads work, writes are refused); 503 when the
/// node is not connected.
async fn readyz(State(state): State<AppState>) -> Response {
    let audit_ok = state.spine.audit.is_healthy();
    let audit = if audit_ok {
        json!({ "status": "ok" })
    } else {
        json!({ "status": "failing", "error": state.spine.audit.last_error(), "effect": "writing tools refused" })
    };
    let (tailnet_ok, tailnet) = match &*state.identity {
        IdentitySource::Tailnet(node) => match node.status(Duration::from_secs(2)).await {
            Ok(st) if st.backend_state == "Running" => (true, json!({ "status": "ok", "state": st.backend_state })),
            Ok(st) => (false, json!({ "status": "failing", "state": st.backend_state })),
            Err(e) => (false, json!({ "status": "failing", "error": e.to_string() })),
        },
        IdentitySource::Local => (true, json!({ "status": "not_used", "mode": "local" })),
    };
    // Docker is reported, never fatal: other domains keep working without it.
    let docker = state.spine.docker.health().await;
    let status = match (tailnet_ok, audit_ok) {
        (false, _) => "unavailable",
        (true, false) => "degraded",
        (true, true) => "ok",
    };
    let code = if tailnet_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "status": status, "checks": { "tailnet": tailnet, "audit": audit, "docker": docker } })))
        .into_response()
}

/// Something that yields connections with the peer's address.
pub trait Accept: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Accept for Listener {
    type Io = tokio::net::UnixStream;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, SocketAddr)>> + Send {
        Listener::accept(self)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, SocketAddr)> {
        let (s, a) = tokio::net::TcpListener::accept(self).await?;
        // Small SSE writes stall ~40 ms without it (Nagle + delayed ACK).
        s.set_nodelay(true)?;
        Ok((s, a))
    }
}

/// Serves `app` on `listener` until `shutdown` fires, then lets in-flight
/// requests finish for at most `limits.shutdown_grace_secs`.
///
/// At most `limits.max_connections` connections are served at once; the
/// next accept waits for a slot, so excess connections queue in the
/// listener instead of exhausting fds.
pub async fn serve<L: Accept>(listener: L, app: Router, limits: &Limits, shutdown: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_errors = 0u32;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, remote) = match accepted {
            Ok(c) => {
                accept_errors = 0;
                c
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::warn!("listener closed; no longer accepting");
                break;
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                accept_errors += 1;
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(accept_errors.min(20)))).await;
                continue;
            }
        };
        let info = ConnInfo { remote, caller: Arc::new(OnceCell::new()) };
        let svc = app.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(info.clone());
            req
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the grace period; dropping them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_cover_names_ips_and_ports() {
        let h = allowed_hosts(&["ops.tailnet.test".into(), "100.64.0.1".into(), "fd7a::1".into()], 80);
        assert!(h.contains(&"ops.tailnet.test".to_string()));
        assert!(h.contains(&"ops.tailnet.test:80".to_string()));
        assert!(h.contains(&"[fd7a::1]".to_string()));
        let h = allowed_hosts(&["127.0.0.1".into()], 8080);
        assert!(h.contains(&"127.0.0.1:8080".to_string()));
        assert!(!h.contains(&"127.0.0.1:80".to_string()));
    }
}
