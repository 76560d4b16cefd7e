//! The HTTP side: the axum router and its middleware, and the loop that
//! serves it. Transport only: it knows no tool (the MCP handler is built by
//! the caller's factory) and decides nothing itself — admission is the
//! spine's (`mcp::Spine::admit`), rendered here as HTTP statuses.
//!
//! Middleware order, outermost first:
//! 1. connection info (remote addr; set by the accept loop, [`serve`], which
//!    also bounds connections: per-peer cap, first-byte, body and idle deadlines),
//! 2. [`identify`]: Host check ([`hosts`]), then WhoIs once per connection →
//!    [`Caller`](crate::auth::caller::Caller) (deny by default: an unidentifiable peer gets 403),
//! 3. [`gate`] (on `/mcp` only): repeated-denial block, OAuth token,
//!    session binding and cap, body cap, the admission of `tools/call`
//!    (429 with Retry-After, 403 step-up),
//! 4. rmcp's `StreamableHttpService` (Origin/Host validation on, sessions
//!    reaped when idle) → the MCP handler.
//!
//! Beside `/mcp`: [`probes`] (`/whoami`, `/healthz`, `/readyz`) and the
//! RFC 9728 metadata ([`oauth`]), the MCP Server Card ([`card`], tailnet only).

pub mod card;
pub mod gate;
pub mod hosts;
pub mod identify;
pub mod oauth;
pub mod probes;
pub mod serve;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::mcp::Spine;
use crate::tailnet::Node;

pub use gate::SessionOwners;
pub use hosts::allowed_hosts;
pub use oauth::OAuthGate;
pub use serve::{Accept, ConnCounters, ConnCounts, serve};

/// Where callers' identities come from.
pub enum IdentitySource {
    /// The tailnet: WhoIs on the node.
    Tailnet(Node),
    /// A fixed local principal (dev-listen), from config `[local]`.
    Local,
}

/// The names and port this server is reached by (MagicDNS names and
/// tailnet IPs, or loopback in dev mode): the Host and Origin allow-lists.
pub struct Endpoint<'a> {
    pub names: &'a [String],
    pub port: u16,
}

/// The tool domains' readiness (`{"docker": {...}, …}`) for `/readyz`.
pub type DomainHealth = Arc<dyn Fn() -> BoxFuture<'static, serde_json::Map<String, Value>> + Send + Sync>;

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
    pub domain_health: DomainHealth,
}

/// Builds the router. `names` are the hostnames and IPs this server is
/// reached by (MagicDNS names and tailnet IPs, or loopback in dev mode).
///
/// `make_server` builds the MCP handler for each session (or stateless
/// request); it must be cheap (share what it can). `domain_health` reports
/// the tool domains' readiness for `/readyz`. `extra` holds routes served
/// beside `/mcp` behind the same identity middleware (`/metrics`, `/sd`);
/// they authorize themselves. `stopping` fires when a graceful stop begins:
/// listen-only streams (`GET /mcp`) end then, while calls in flight run to
/// their end; `sessions_stop` closes every MCP session once the HTTP side
/// has drained (the composition root cancels it after `serve` returns).
#[allow(clippy::too_many_arguments)]
pub fn router<S, F>(
    spine: Arc<Spine>,
    identity: IdentitySource,
    oauth: Option<Arc<OAuthGate>>,
    endpoint: Endpoint<'_>,
    make_server: F,
    domain_health: DomainHealth,
    stopping: CancellationToken,
    sessions_stop: CancellationToken,
    extra: Router<AppState>,
) -> Router
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let Endpoint { names, port } = endpoint;
    let limits = &spine.cfg.limits;
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(Duration::from_secs(limits.session_idle_secs));
    manager.session_config.completed_cache_ttl = Duration::from_secs(limits.session_resume_secs);
    let manager = Arc::new(manager);
    let hosts = hosts::allowed_hosts(names, port);
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts.clone())
        .with_allowed_origins(hosts::allowed_origins(names, port))
        .enforce_origin_validation()
        .with_max_request_body_bytes(limits.max_request_body_bytes)
        .with_cancellation_token(sessions_stop.child_token());
    let mcp = StreamableHttpService::new(move || Ok(make_server()), manager.clone(), mcp_config);
    let state = AppState {
        oauth,
        spine,
        identity: Arc::new(identity),
        sessions: Arc::new(SessionOwners::default()),
        session_manager: manager,
        allowed_hosts: Arc::new(hosts),
        domain_health,
    };
    Router::new()
        .route_service("/mcp", mcp)
        .route_layer(middleware::from_fn_with_state(stopping, end_listen_streams_on_stop))
        .route_layer(middleware::from_fn_with_state(state.clone(), gate::mcp_gate))
        .route("/whoami", get(probes::whoami))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/.well-known/oauth-protected-resource", get(oauth::resource_metadata))
        .route("/.well-known/oauth-protected-resource/mcp", get(oauth::resource_metadata))
        .route("/.well-known/mcp/server-card.json", get(card::server_card))
        .merge(extra)
        .layer(middleware::from_fn_with_state(state.clone(), identify::identify))
        .with_state(state)
}

/// One JSON error shape for HTTP-level refusals.
pub fn error(status: StatusCode, category: &str, message: &str, hint: &str) -> Response {
    (status, Json(json!({ "error": { "category": category, "message": message, "hint": hint } }))).into_response()
}

/// A JSON-RPC error response (for refusals of MCP messages before rmcp).
pub(crate) fn rpc_error(status: StatusCode, id: Value, code: i32, message: &str, data: Value) -> Response {
    (status, Json(json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message, "data": data } })))
        .into_response()
}

/// A graceful stop lets every call in flight finish (its POST response
/// stream ends with the result), but a listen-only `GET /mcp` stream never
/// ends by itself and would hold the stop for the whole grace period: such
/// a stream ends when `stopping` fires (the client reconnects, to this node
/// when it is back or to another one serving the same Service).
async fn end_listen_streams_on_stop(
    axum::extract::State(stopping): axum::extract::State<CancellationToken>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let listen_only = req.method() == axum::http::Method::GET;
    let resp = next.run(req).await;
    if !listen_only {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let stream = futures::StreamExt::take_until(body.into_data_stream(), stopping.cancelled_owned());
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}
