//! `--https`: the plain-HTTP listener answers only a redirect to the HTTPS
//! origin, and HTTPS responses carry HSTS.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `Strict-Transport-Security` on every HTTPS response: one year. Browsers
/// then refuse plain HTTP to this name; MCP clients ignore it.
pub const HSTS: &str = "max-age=31536000";

/// Request extension: the request came over TLS (set by the server on the
/// HTTPS listeners' router, never by a client), for URLs built per request.
#[derive(Clone, Copy, Debug)]
pub struct Https;

/// Adds HSTS to every response.
pub async fn hsts(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    resp
}

/// The router of the plain-HTTP listener under `--https`: every request is
/// answered 308 to `https://HOST/same/path?query`, for a Host this server
/// answers to (`names`, lowercased, without port); any other Host is a 403
/// (no open redirect).
pub fn redirect_router(names: &[String]) -> Router {
    let names: Arc<Vec<String>> = Arc::new(names.iter().map(|n| super::hosts::url_host(n)).collect());
    Router::new().fallback(redirect).with_state(names)
}

async fn redirect(State(names): State<Arc<Vec<String>>>, req: Request) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
    let Some(host) = host else {
        return super::error(StatusCode::BAD_REQUEST, "invalid_input", "no Host header", "send a Host header");
    };
    // Drop a port (`name:80`, `[v6]:80`); keep a bracketed IPv6 whole.
    let bare = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host.as_str(),
    };
    if !names.iter().any(|n| n == bare) {
        return super::error(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "unexpected Host header",
            "address this server by its MagicDNS name or tailnet IP",
        );
    }
    let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = format!("https://{bare}{path}");
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => super::error(StatusCode::BAD_REQUEST, "invalid_input", "unusable request target", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn names() -> Vec<String> {
        vec!["ops.tail.test".into(), "ops".into(), "100.64.0.1".into(), "fd7a::1".into()]
    }

    async fn get_with_host(app: Router, host: &str, target: &str) -> Response {
        let req = Request::builder().uri(target).header(header::HOST, host).body(Body::empty()).expect("request");
        app.oneshot(req).await.expect("infallible")
    }

    #[tokio::test]
    async fn plain_http_redirects_to_https_with_the_same_path() {
        for (host, target, want) in [
            ("ops.tail.test", "/mcp", "https://ops.tail.test/mcp"),
            ("OPS.tail.test:80", "/whoami?x=1", "https://ops.tail.test/whoami?x=1"),
            ("100.64.0.1:80", "/", "https://100.64.0.1/"),
            ("[fd7a::1]:80", "/healthz", "https://[fd7a::1]/healthz"),
            ("[fd7a::1]", "/a/b", "https://[fd7a::1]/a/b"),
        ] {
            let resp = get_with_host(redirect_router(&names()), host, target).await;
            assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT, "{host}{target}");
            assert_eq!(resp.headers()[header::LOCATION], want);
        }
    }

    #[tokio::test]
    async fn redirect_refuses_a_foreign_host() {
        for host in ["evil.example", "evil.example:80", "ops.tail.test.evil.example"] {
            let resp = get_with_host(redirect_router(&names()), host, "/mcp").await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{host}");
            assert!(resp.headers().get(header::LOCATION).is_none());
        }
        let req = Request::builder().uri("/mcp").body(Body::empty()).expect("request");
        let resp = redirect_router(&names()).oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn https_responses_carry_hsts() {
        let app = Router::new().route("/x", get(|| async { "ok" })).layer(axum::middleware::from_fn(hsts));
        let resp = get_with_host(app.clone(), "ops.tail.test", "/x").await;
        assert_eq!(resp.headers()[header::STRICT_TRANSPORT_SECURITY], HSTS);
        let resp = get_with_host(app, "ops.tail.test", "/missing").await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::STRICT_TRANSPORT_SECURITY], HSTS);
    }
}
