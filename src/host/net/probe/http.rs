//! `http_check`: one HTTP(S) request (GET or HEAD) with its timing split
//! (DNS, connect, TLS, first byte, total), status, headers (redacted) and
//! body size (capped). Redirects are followed only when asked, at most
//! [`MAX_REDIRECTS`], and every hop goes through the target policy again
//! (name and every resolved address) and connects to the checked address.
//! hyper's client connection over our own stream: no pool, no resolver of
//! its own, so nothing can dial an address the policy did not see.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio_util::either::Either;

use super::tls::{self, TlsInfo};
use super::{Prober, Via, ms};
use crate::host::net::target::{Host, parse_host};
use crate::mcp::{ErrorCategory, ToolError};

/// Most redirects followed (when asked).
pub const MAX_REDIRECTS: u32 = 10;
/// Longest URL accepted (also for a `Location` followed).
pub const MAX_URL_LEN: usize = 2048;
/// Most response body bytes read per hop (the rest is not read).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most headers reported per hop, and longest header value reported.
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_VALUE_LEN: usize = 1024;
/// Most bytes of the body shown (`body_preview`, redacted).
pub const MAX_BODY_PREVIEW: usize = 512;

/// One request/response.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Hop {
    pub url: String,
    /// The address connected to (checked by the target policy).
    pub address: String,
    pub via: Via,
    pub status: u16,
    /// `HTTP/1.1`.
    pub version: String,
    pub dns_ms: f64,
    pub connect_ms: f64,
    pub tls_ms: Option<f64>,
    /// From sending the request to the response head.
    pub first_byte_ms: f64,
    /// From the start of this hop to the end of its body (or the cap).
    pub total_ms: f64,
    /// Response headers (first 64; secret-looking values redacted).
    pub headers: Vec<(String, String)>,
    pub headers_truncated: bool,
    /// Body bytes read (at most 1 MiB; HEAD: 0).
    pub body_bytes: usize,
    /// The body was longer than the cap.
    pub body_truncated: bool,
    /// The start of the body as text (512 bytes, redacted).
    pub body_preview: String,
    /// The TLS handshake (https).
    pub tls: Option<TlsInfo>,
}

/// What `http_check` found.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct HttpCheckOutput {
    /// The final status.
    pub status: u16,
    pub final_url: String,
    /// Redirects followed.
    pub redirects: u32,
    /// A redirect was answered but not followed (follow_redirects off or
    /// the limit reached): its `Location`.
    pub unfollowed_location: Option<String>,
    /// Every hop, first request first.
    pub hops: Vec<Hop>,
    pub total_ms: f64,
}

/// One `http_check`.
pub struct HttpCheck {
    pub url: String,
    pub head: bool,
    pub follow_redirects: bool,
    pub max_redirects: u32,
    pub timeout: Duration,
}

/// A parsed http(s) URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: Host,
    pub port: u16,
    /// Path and query.
    pub path: String,
}

impl Target {
    fn authority(&self) -> String {
        let h = match &self.host {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            h => h.to_string(),
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default { h } else { format!("{h}:{}", self.port) }
    }
    pub fn url(&self) -> String {
        format!("{}://{}{}", if self.https { "https" } else { "http" }, self.authority(), self.path)
    }
}

/// Parses an `http://` or `https://` URL (no credentials in it).
pub fn parse_url(url: &str) -> Result<Target, ToolError> {
    let bad = |why: &str| {
        ToolError::invalid_input(
            format!("url {:?} is not usable: {why}", url.chars().take(100).collect::<String>()),
            "give an absolute http:// or https:// URL such as https://example.com/health",
        )
    };
    if url.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("the scheme must be http or https")),
    };
    let auth = uri.authority().ok_or_else(|| bad("no host"))?;
    if auth.as_str().contains('@') {
        return Err(bad("credentials in the URL are not accepted"));
    }
    let host = parse_host(auth.host())?;
    let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
    if port == 0 {
        return Err(bad("port 0"));
    }
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let path = if path.is_empty() { "/".into() } else { path };
    Ok(Target { https, host, port, path })
}

/// Where a `Location` points, relative to `base`.
pub fn resolve_location(base: &Target, location: &str) -> Result<Target, ToolError> {
    // `scheme:` (RFC 3986: a letter, then letters, digits, + - .) makes
    // it absolute; parse_url refuses schemes other than http(s).
    let scheme_len = location.find(':').filter(|&i| {
        let s = &location[..i];
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if scheme_len.is_some() {
        return parse_url(location);
    }
    if let Some(rest) = location.strip_prefix("//") {
        return parse_url(&format!("{}://{rest}", if base.https { "https" } else { "http" }));
    }
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = base.path.split('?').next().unwrap_or("/");
        let dir = &dir[..dir.rfind('/').map(|i| i + 1).unwrap_or(0)];
        format!("{dir}{location}")
    };
    parse_url(&format!("{}://{}{path}", if base.https { "https" } else { "http" }, base.authority()))
}

fn failed(what: &str, e: impl std::fmt::Display) -> ToolError {
    ToolError::unavailable(format!("{what}: {e}"), "the server closed the connection or does not speak HTTP/1.1")
}

impl Prober {
    pub async fn http_check(&self, q: HttpCheck) -> Result<HttpCheckOutput, ToolError> {
        let start = Instant::now();
        let mut target = parse_url(&q.url)?;
        let mut hops = Vec::new();
        let mut unfollowed = None;
        loop {
            let n = hops.len();
            let hop = self.one_hop(&target, q.head, q.timeout).await.map_err(|mut e| {
                if n > 0 {
                    e.message = format!("redirect {n} ({}): {}", target.url(), e.message);
                }
                e
            })?;
            let location = hop.1;
            hops.push(hop.0);
            let Some(location) = location else { break };
            let redirects = u32::try_from(n).unwrap_or(u32::MAX);
            if !q.follow_redirects || redirects >= q.max_redirects {
                unfollowed = Some(location);
                break;
            }
            target = resolve_location(&target, &location)?;
        }
        let last = hops.last().ok_or_else(|| ToolError::internal("no hop"))?;
        Ok(HttpCheckOutput {
            status: last.status,
            final_url: last.url.clone(),
            redirects: u32::try_from(hops.len().saturating_sub(1)).unwrap_or(u32::MAX),
            unfollowed_location: unfollowed,
            total_ms: ms(start.elapsed()),
            hops,
        })
    }

    /// One request: resolve + check, connect to the checked address, TLS,
    /// request, head, capped body. Returns the hop and a redirect's
    /// `Location`.
    async fn one_hop(&self, t: &Target, head: bool, timeout: Duration) -> Result<(Hop, Option<String>), ToolError> {
        let t0 = Instant::now();
        let resolved = self.resolve(&t.host, timeout).await?;
        let ip = *resolved.addrs.first().ok_or_else(|| ToolError::internal("no resolved address"))?;
        let t1 = Instant::now();
        let (stream, via) = self.connect(ip, t.port, timeout).await.map_err(|e| e.to_error())?;
        let connect_ms = ms(t1.elapsed());
        let (io, tls_ms, tls_info) = if t.https {
            let t2 = Instant::now();
            let (s, info) =
                tls::handshake(stream, tls::server_name(&t.host.to_string())?, self.roots(), &[b"http/1.1"], timeout)
                    .await?;
            (Either::Right(s), Some(ms(t2.elapsed())), Some(info))
        } else {
            (Either::Left(stream), None, None)
        };
        let step = |what: &'static str| {
            move |_| {
                ToolError::new(
                    ErrorCategory::Timeout,
                    format!("{what} did not finish within {} ms", timeout.as_millis()),
                    "the server is slow or silent; raise timeout_ms",
                )
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| failed("HTTP handshake", e))?;
        let driver = tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(if head { hyper::Method::HEAD } else { hyper::Method::GET })
            .uri(t.path.as_str())
            .header(hyper::header::HOST, t.authority())
            .header(hyper::header::USER_AGENT, concat!("tailops-http-check/", env!("CARGO_PKG_VERSION")))
            .header(hyper::header::ACCEPT, "*/*")
            .body(Empty::new())
            .map_err(|e| ToolError::invalid_input(format!("cannot build the request: {e}"), "check the URL"))?;
        let t3 = Instant::now();
        let resp = tokio::time::timeout(timeout, sender.send_request(req))
            .await
            .map_err(step("the response head"))?
            .map_err(|e| failed("HTTP request", e))?;
        let first_byte_ms = ms(t3.elapsed());
        let status = resp.status().as_u16();
        let version = format!("{:?}", resp.version());
        let all: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes());
                (k.as_str().to_string(), v.chars().take(MAX_HEADER_VALUE_LEN).collect())
            })
            .collect();
        let headers_truncated = all.len() > MAX_HEADERS;
        let headers = all
            .into_iter()
            .take(MAX_HEADERS)
            .map(|(k, v)| {
                let v = if crate::redact::is_secret_name(&k) || k == "set-cookie" {
                    crate::redact::REDACTED.to_string()
                } else {
                    crate::redact::redact_line(&v)
                };
                (k, v)
            })
            .collect();
        let location = if (300..400).contains(&status) {
            resp.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string)
        } else {
            None
        };
        let mut body = resp.into_body();
        let mut body_bytes = 0usize;
        let mut body_truncated = false;
        let mut preview = Vec::new();
        if !head {
            let read = async {
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| failed("reading the body", e))?;
                    if let Some(data) = frame.data_ref() {
                        let room = MAX_BODY_BYTES.saturating_sub(body_bytes);
                        if data.len() > room {
                            body_bytes = MAX_BODY_BYTES;
                            body_truncated = true;
                            let p = MAX_BODY_PREVIEW.saturating_sub(preview.len()).min(room);
                            preview.extend_from_slice(&data[..p]);
                            break;
                        }
                        let p = MAX_BODY_PREVIEW.saturating_sub(preview.len()).min(data.len());
                        preview.extend_from_slice(&data[..p]);
                        body_bytes += data.len();
                    }
                }
                Ok::<_, ToolError>(())
            };
            tokio::time::timeout(timeout, read).await.map_err(step("reading the body"))??;
        }
        driver.abort();
        let hop = Hop {
            url: t.url(),
            address: ip.to_string(),
            via,
            status,
            version,
            dns_ms: ms(resolved.elapsed),
            connect_ms,
            tls_ms,
            first_byte_ms,
            total_ms: ms(t0.elapsed()),
            headers,
            headers_truncated,
            body_bytes,
            body_truncated,
            body_preview: crate::redact::redact_text(&String::from_utf8_lossy(&preview), false),
            tls: tls_info,
        };
        Ok((hop, location))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://Example.com:8443/a/b?q=1").unwrap();
        assert_eq!((t.https, t.port, t.path.as_str()), (true, 8443, "/a/b?q=1"));
        assert_eq!(t.url(), "https://example.com:8443/a/b?q=1");
        assert_eq!(parse_url("http://[::1]/").unwrap().url(), "http://[::1]/");
        assert_eq!(parse_url("http://127.0.0.1").unwrap().path, "/");
        for bad in ["ftp://x/", "http://u:p@x/", "/relative", "http://", "http://x:0/", "http://a..b/"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("http://x/{}", "a".repeat(MAX_URL_LEN - 9))).is_ok());
        assert!(parse_url(&format!("http://x/{}", "a".repeat(MAX_URL_LEN - 8))).is_err());
    }

    #[test]
    fn locations() {
        let base = parse_url("http://a.test:8080/x/y?z").unwrap();
        assert_eq!(resolve_location(&base, "/p").unwrap().url(), "http://a.test:8080/p");
        assert_eq!(resolve_location(&base, "q").unwrap().url(), "http://a.test:8080/x/q");
        assert_eq!(resolve_location(&base, "//b.test/r").unwrap().url(), "http://b.test/r");
        assert_eq!(resolve_location(&base, "https://c.test/").unwrap().url(), "https://c.test/");
        assert!(resolve_location(&base, "gopher://c.test/").is_err());
        assert!(resolve_location(&base, "file:/etc/passwd").is_err());
        assert_eq!(resolve_location(&base, "a:b/").ok().map(|t| t.url()), None);
        assert_eq!(resolve_location(&base, "./a:b").unwrap().url(), "http://a.test:8080/x/./a:b");
    }
}
