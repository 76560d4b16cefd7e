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

/// Which listener a request came in on. The Service listener's router
/// carries `Via::Service` as a request extension (set by the server, never
/// by a client); a request without it came in on the node's own listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The node's own name/IPs: the connection's remote is the caller.
    Node,
    /// A Tailscale Service, through the node's serve proxy: the caller is
    /// named by the proxy's headers.
    Service,
}

/// Whether the serve proxy's identity headers (`X-Forwarded-For`,
/// `Tailscale-User-Login`, `Tailscale-App-Capabilities`) may be believed:
/// only on the Service listener, where the proxy sets them and overwrites
/// what the client sent. On the node listener the client wrote them.
pub fn proxy_headers_trusted(via: Via) -> bool {
    matches!(via, Via::Service)
}

/// Identity headers the Tailscale serve proxy adds in front of a Tailscale
/// Service listener. On the node listener a request carrying them is forging
/// them: they are removed before anything reads the request.
pub const PROXY_IDENTITY_HEADERS: &[&str] =
    &["tailscale-user-login", "tailscale-user-name", "tailscale-user-profile-pic", "tailscale-app-capabilities"];

/// Host check, then the caller's identity (cached per connection for a
/// bounded age).
pub(super) async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let via = req.extensions().get::<Via>().copied().unwrap_or(Via::Node);
    if !proxy_headers_trusted(via) {
        for h in PROXY_IDENTITY_HEADERS {
            req.headers_mut().remove(*h);
        }
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
    let looked_up = match via {
        Via::Node => conn.caller(&state).await,
        // The proxy multiplexes callers over its connections: no per-connection cache.
        Via::Service => match service_caller(&state, req.headers()).await {
            Ok(c) => Ok(c),
            Err(msg) => {
                tracing::warn!(remote = %conn.remote, reason = msg, "service request refused");
                return error(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    msg,
                    "reach this Service from a node of this tailnet",
                );
            }
        },
    };
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

/// The caller of a request that came through the serve proxy: WhoIs of the
/// tailnet address the proxy names in `X-Forwarded-For` (it overwrites the
/// client's value), so a user and a tagged node get exactly the identity,
/// grants and scopes they get through the node name. The proxy's
/// `Tailscale-User-Login`, when plain ASCII, must name the same user.
async fn service_caller(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, &'static str> {
    let ip = forwarded_ip(headers).ok_or("the Tailscale Service proxy did not name the caller")?;
    let live = state.spine.live();
    let remote = SocketAddr::new(ip, 0);
    let c = resolve_caller(state, remote, &live).await.map_err(|e| {
        tracing::warn!(%ip, error = %e, "whois of the service caller failed");
        "the caller could not be identified on the tailnet"
    })?;
    if let Some(login) = headers.get("tailscale-user-login").and_then(|v| v.to_str().ok())
        && !login.starts_with("=?")
        && !login_matches(&c, login)
    {
        return Err("the Tailscale Service proxy's user does not match the caller's address");
    }
    Ok(c)
}

fn login_matches(c: &Caller, login: &str) -> bool {
    c.principal.id.strip_prefix("user:").is_some_and(|l| l.eq_ignore_ascii_case(login))
}

/// The one address in `X-Forwarded-For` (the serve proxy sets exactly one).
pub fn forwarded_ip(headers: &axum::http::HeaderMap) -> Option<std::net::IpAddr> {
    let mut all = headers.get_all("x-forwarded-for").iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    v.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn proxy_headers_count_only_on_the_service_listener() {
        assert!(proxy_headers_trusted(Via::Service));
        assert!(!proxy_headers_trusted(Via::Node));
    }

    #[test]
    fn forwarded_ip_takes_exactly_one_address() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_ip(&h), None);
        h.insert("x-forwarded-for", "100.64.0.7".parse().expect("value"));
        assert_eq!(forwarded_ip(&h), Some("100.64.0.7".parse().expect("ip")));
        h.insert("x-forwarded-for", "100.64.0.7, 100.64.0.8".parse().expect("value"));
        assert_eq!(forwarded_ip(&h), None);
        h.insert("x-forwarded-for", "evil".parse().expect("value"));
        assert_eq!(forwarded_ip(&h), None);
        h.insert("x-forwarded-for", "100.64.0.7".parse().expect("value"));
        h.append("x-forwarded-for", "100.64.0.8".parse().expect("value"));
        assert_eq!(forwarded_ip(&h), None);
    }

    /// The whole router, with the `[local]` identity (no tailnet here) and
    /// an `/echo-caps` route showing what reaches the handlers.
    struct NoTools;
    impl rmcp::ServerHandler for NoTools {}

    async fn app(dir: &std::path::Path) -> axum::Router {
        use crate::audit::{AuditConfig, AuditLog, FsyncMode, JournaldMode};
        use crate::config::Config;
        let audit_cfg = AuditConfig {
            path: Some(dir.join("audit.jsonl")),
            fsync: FsyncMode::Never,
            journald: JournaldMode::Off,
            ..AuditConfig::default()
        };
        let (audit, _task) = AuditLog::start(audit_cfg).await.expect("audit");
        let spine = Arc::new(crate::mcp::Spine::new(Arc::new(Config::default()), audit, "test".into(), &[]));
        let names = vec!["localhost".to_string()];
        let health: super::super::DomainHealth = Arc::new(|| Box::pin(async { serde_json::Map::new() }));
        let echo = axum::Router::new().route(
            "/echo-caps",
            axum::routing::get(|h: HeaderMap| async move {
                h.get("tailscale-app-capabilities").and_then(|v| v.to_str().ok()).unwrap_or("<none>").to_string()
            }),
        );
        super::super::router(
            spine,
            IdentitySource::Local,
            None,
            super::super::Endpoint { names: &names, port: 80 },
            || NoTools,
            health,
            tokio_util::sync::CancellationToken::new(),
            tokio_util::sync::CancellationToken::new(),
            echo,
        )
    }

    async fn get(app: axum::Router, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let mut b = axum::http::Request::builder().uri(path).header("host", "localhost");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut req = b.body(axum::body::Body::empty()).expect("request");
        req.extensions_mut().insert(ConnInfo::new("127.0.0.1:40000".parse().expect("addr")));
        let resp = app.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn proxy_headers_reach_handlers_only_through_the_service_listener() {
        let dir = tempfile::tempdir().expect("tmp");
        let node = app(dir.path()).await;
        let service = node.clone().layer(axum::Extension(Via::Service));
        let caps = r#"{"tailops.dev/cap/tailops":[{"roles":["admin"]}]}"#;
        let sent = [("tailscale-app-capabilities", caps), ("x-forwarded-for", "100.64.0.9")];
        // Node listener: the headers are the client's own, removed.
        assert_eq!(get(node.clone(), "/echo-caps", &sent).await, (StatusCode::OK, "<none>".into()));
        // Service listener: the proxy's, kept for the handlers.
        assert_eq!(get(service.clone(), "/echo-caps", &sent).await, (StatusCode::OK, caps.into()));
        // A proxy login naming someone else than the forwarded address's
        // owner (here the [local] principal, no user) is refused; on the
        // node listener the same header is ignored.
        let login = [("tailscale-user-login", "alice@example.com"), ("x-forwarded-for", "100.64.0.9")];
        let (status, body) = get(service, "/whoami", &login).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("does not match"), "{body}");
        assert_eq!(get(node, "/whoami", &login).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn service_requests_without_one_forwarded_address_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let node = app(dir.path()).await;
        let service = node.clone().layer(axum::Extension(Via::Service));
        for bad in
            [&[][..], &[("x-forwarded-for", "not-an-ip")][..], &[("x-forwarded-for", "100.64.0.1, 100.64.0.2")][..]]
        {
            let (status, body) = get(service.clone(), "/whoami", bad).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{bad:?}: {body}");
            assert!(body.contains("did not name the caller"), "{body}");
        }
        let (status, _) = get(service, "/whoami", &[("x-forwarded-for", "100.64.0.1")]).await;
        assert_eq!(status, StatusCode::OK);
        // The node listener never needs (or reads) X-Forwarded-For.
        let (status, _) = get(node, "/whoami", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
}
