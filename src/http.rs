//! The HTTP side: the axum router and the loop that serves it on a tailnet
//! listener.
//!
//! Middleware order (outermost first): connection info (remote addr, set by
//! the accept loop) → identity (WhoIs, once per connection) → handlers.
//! Nothing here knows about any tool domain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::identity::Principal;
use crate::config::Limits;
use crate::tailnet::{Listener, Node};

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub node: Node,
    pub limits: Limits,
    pub started: Instant,
}

/// Per-connection facts, inserted into every request by the accept loop.
/// The identity is looked up once per connection and cached: a tailnet
/// connection cannot change hands.
#[derive(Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    identity: Arc<OnceCell<Arc<Principal>>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/healthz", get(healthz))
        .layer(middleware::from_fn_with_state(state.clone(), identify))
        .with_state(state)
}

/// Resolves the caller's tailnet identity (WhoIs) and stores the
/// [`Principal`] in the request. A peer the node cannot identify gets 403:
/// deny by default.
async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(conn) = req.extensions().get::<ConnInfo>().cloned() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "request without connection info",
            "",
        );
    };
    let timeout = Duration::from_secs(state.limits.whois_timeout_secs);
    let looked_up = conn
        .identity
        .get_or_try_init(|| async {
            let peer = state.node.whois(conn.remote, timeout).await?;
            Ok::<_, crate::tailnet::Error>(Arc::new(Principal::from_peer(peer, conn.remote)))
        })
        .await;
    match looked_up {
        Ok(p) => {
            req.extensions_mut().insert(p.clone());
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

/// One JSON error shape for HTTP-level refusals.
pub fn error(status: StatusCode, category: &str, message: &str, hint: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "category": category, "message": message, "hint": hint } })),
    )
        .into_response()
}

/// `GET /whoami`: the caller's identity as the tailnet reports it.
async fn whoami(axum::Extension(p): axum::Extension<Arc<Principal>>) -> Json<Principal> {
    Json((*p).clone())
}

/// `GET /healthz`: liveness. The node is up if we can answer at all.
async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "node": state.node.info().dns_name,
    }))
}

/// Serves `app` on `listener` until `shutdown` fires, then lets in-flight
/// requests finish for at most `limits.shutdown_grace_secs`.
///
/// At most `limits.max_connections` connections are served at once; the
/// next accept waits for a slot, so excess connections queue in the
/// listener instead of exhausting fds.
pub async fn serve(listener: Listener, app: Router, limits: &Limits, shutdown: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs));
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
                tracing::warn!("tailnet listener closed; no longer accepting");
                break;
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                accept_errors += 1;
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(accept_errors.min(20))))
                    .await;
                continue;
            }
        };
        let info = ConnInfo {
            remote,
            identity: Arc::new(OnceCell::new()),
        };
        let svc = app
            .clone()
            .map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(info.clone());
                req
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "connections still open after the grace period; dropping them"
        );
    }
}
