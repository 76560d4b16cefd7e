//! Who is calling: the Host check, then the caller's identity from the
//! tailnet (WhoIs on the connection's remote address, cached per
//! connection) or the fixed `[local]` principal. Deny by default: a peer
//! that cannot be identified gets 403.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Mutex;

use super::{AppState, IdentitySource, error};
use crate::auth::caller::Caller;
use crate::auth::identity::Principal;
use crate::auth::policy::Access;

/// Per-connection facts, inserted into every request by the accept loop.
/// The identity is looked up once and cached for the connection — a
/// tailnet connection cannot change hands — but only for
/// `limits.identity_ttl_secs`: a grant revoked in the ACLs stops working on
/// a kept-alive connection within that bound.
#[derive(Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// The caller, when it was looked up, and the reload generation then.
    caller: Arc<Mutex<Option<(Caller, Instant, u64)>>>,
}

impl ConnInfo {
    pub fn new(remote: SocketAddr) -> Self {
        Self { remote, caller: Arc::new(Mutex::new(None)) }
    }

    /// The cached caller if younger than `ttl`, else a fresh lookup.
    async fn caller(&self, state: &AppState) -> Result<Caller, crate::tailnet::Error> {
        let ttl = Duration::from_secs(state.spine.cfg.limits.identity_ttl_secs);
        let live = state.spine.live();
        // Held across the lookup: concurrent requests on one connection
        // (HTTP/2) wait for one WhoIs instead of each sending their own.
        let mut cached = self.caller.lock().await;
        if let Some((c, at, generation)) = cached.as_ref()
            && at.elapsed() < ttl
            && *generation == live.generation
        {
            return Ok(c.clone());
        }
        let c = resolve_caller(state, self.remote, &live).await?;
        *cached = Some((c.clone(), Instant::now(), live.generation));
        Ok(c)
    }
}

async fn resolve_caller(
    state: &AppState,
    remote: SocketAddr,
    live: &crate::mcp::spine::Live,
) -> Result<Caller, crate::tailnet::Error> {
    let cfg = &state.spine.cfg;
    match &*state.identity {
        IdentitySource::Tailnet(node) => {
            let peer = node.whois(remote, Duration::from_secs(cfg.limits.whois_timeout_secs)).await?;
            let principal = Principal::from_peer(peer, remote);
            let access = Access::resolve(&principal, &live.capability, &live.policy);
            Ok(Caller::new(Arc::new(principal), Arc::new(access)))
        }
        IdentitySource::Local => Ok(Caller::local(&live.local, remote)),
    }
}

/// Identity headers the Tailscale serve proxy adds in front of a Tailscale
/// Service listener. No listener of ours is such a service listener (the
/// caller is always WhoIs of the connection), so a request carrying them
/// is forging them: they are removed before anything reads the request.
pub const PROXY_IDENTITY_HEADERS: &[&str] =
    &["tailscale-user-login", "tailscale-user-name", "tailscale-user-profile-pic", "tailscale-app-capabilities"];

/// Host check, then the caller's identity (cached per connection for a
/// bounded age).
pub(super) async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    for h in PROXY_IDENTITY_HEADERS {
        req.headers_mut().remove(*h);
    }
    // RFC 9112 §3.2: a request with more than one Host is a 400.
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return error(StatusCode::BAD_REQUEST, "invalid_input", "more than one Host header", "send one Host header");
    }
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
    let looked_up = conn.caller(&state).await;
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
