//! The `[oauth]` settings and their checks.

use std::fmt;
use std::net::IpAddr;

use hyper::Uri;
use serde::Deserialize;

use super::client::HttpTarget;
use crate::tailnet;

/// Upper bounds for the numeric settings (sanity, not policy).
const MAX_LEEWAY_SECS: u64 = 600;
const MAX_TIMEOUT_SECS: u64 = 120;
const MAX_CACHE_SECS: u64 = 86_400;

/// The `[oauth]` settings.
#[derive(Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// Require a bearer token on the MCP endpoint (default false).
    pub enabled: bool,
    /// Canonical resource URI of the MCP endpoint (RFC 8707), e.g.
    /// `https://ops.example.ts.net/mcp`. Filled from the node name when empty.
    pub resource: String,
    /// Issuer URLs listed in the RFC 9728 metadata.
    pub authorization_servers: Vec<String>,
    /// Expected `iss` of JWTs (and of introspection answers that carry one).
    pub issuer: Option<String>,
    /// JWKS URL: validate JWT access tokens locally.
    pub jwks_url: Option<String>,
    /// RFC 7662 introspection endpoint, for opaque tokens.
    pub introspection_url: Option<String>,
    pub introspection_client_id: Option<String>,
    /// Never serialized (so never printed by `tailops config`).
    #[serde(skip_serializing)]
    pub introspection_client_secret: Option<String>,
    /// Accepted `aud` values; empty means `[resource]`.
    pub audiences: Vec<String>,
    pub jwks_cache_secs: u64,
    /// Positive introspection results are cached this long (bounded by the
    /// token's `exp`); 0 disables the cache.
    pub introspection_cache_secs: u64,
    /// Allowed clock skew for `exp`/`nbf`.
    pub leeway_secs: u64,
    /// Bound on each outbound HTTP fetch (connect, TLS, request, body).
    pub timeout_secs: u64,
    /// Listed in the metadata.
    pub scopes_supported: Vec<String>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            resource: String::new(),
            authorization_servers: Vec::new(),
            issuer: None,
            jwks_url: None,
            introspection_url: None,
            introspection_client_id: None,
            introspection_client_secret: None,
            audiences: Vec::new(),
            jwks_cache_secs: 300,
            introspection_cache_secs: 30,
            leeway_secs: 30,
            timeout_secs: 5,
            scopes_supported: Vec::new(),
        }
    }
}

// Hand-written so the client secret never reaches a log through `{:?}`.
impl fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("enabled", &self.enabled)
            .field("resource", &self.resource)
            .field("authorization_servers", &self.authorization_servers)
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks_url)
            .field("introspection_url", &self.introspection_url)
            .field("introspection_client_id", &self.introspection_client_id)
            .field("introspection_client_secret", &self.introspection_client_secret.as_ref().map(|_| "[redacted]"))
            .field("audiences", &self.audiences)
            .field("jwks_cache_secs", &self.jwks_cache_secs)
            .field("introspection_cache_secs", &self.introspection_cache_secs)
            .field("leeway_secs", &self.leeway_secs)
            .field("timeout_secs", &self.timeout_secs)
            .field("scopes_supported", &self.scopes_supported)
            .finish()
    }
}

impl OAuthConfig {
    /// Checks the settings; a disabled config is always fine. An empty
    /// `resource` is allowed here (the server fills it from the node name),
    /// but [`TokenValidator::new`] needs it (or `audiences`).
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.jwks_url.is_none() && self.introspection_url.is_none() {
            return Err("oauth: enabled needs jwks_url or introspection_url".into());
        }
        if let Some(u) = &self.jwks_url {
            let target = HttpTarget::parse(u).map_err(|e| format!("oauth.jwks_url: {e}"))?;
            check_cleartext(
                "oauth.jwks_url",
                u,
                &target,
                "the signing keys could be swapped in transit and forged tokens accepted",
            )?;
        }
        if let Some(u) = &self.introspection_url {
            let target = HttpTarget::parse(u).map_err(|e| format!("oauth.introspection_url: {e}"))?;
            check_cleartext(
                "oauth.introspection_url",
                u,
                &target,
                "bearer tokens and the client secret would cross the network in cleartext",
            )?;
        }
        if self.introspection_client_secret.is_some() && self.introspection_client_id.is_none() {
            return Err("oauth: introspection_client_secret is set but introspection_client_id is not".into());
        }
        if !self.resource.is_empty() {
            check_absolute_url(&self.resource).map_err(|e| format!("oauth.resource: {e}"))?;
        }
        for s in &self.authorization_servers {
            check_absolute_url(s).map_err(|e| format!("oauth.authorization_servers: {e}"))?;
        }
        if self.authorization_servers.is_empty() && self.issuer.is_none() {
            return Err("oauth: authorization_servers (or issuer) must name at least one authorization server".into());
        }
        if self.audiences.iter().any(|a| a.is_empty()) {
            return Err("oauth.audiences: empty audience".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return Err(format!("oauth.timeout_secs must be 1..={MAX_TIMEOUT_SECS}"));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(format!("oauth.leeway_secs must be at most {MAX_LEEWAY_SECS}"));
        }
        if self.jwks_cache_secs == 0 || self.jwks_cache_secs > MAX_CACHE_SECS {
            return Err(format!("oauth.jwks_cache_secs must be 1..={MAX_CACHE_SECS}"));
        }
        if self.introspection_cache_secs > MAX_CACHE_SECS {
            return Err(format!("oauth.introspection_cache_secs must be at most {MAX_CACHE_SECS}"));
        }
        Ok(())
    }

    /// The `aud` values a token must name (at least one of).
    pub fn effective_audiences(&self) -> Vec<String> {
        if self.audiences.is_empty() { vec![self.resource.clone()] } else { self.audiences.clone() }
    }
}

/// Plain `http://` to the authorization server is refused unless the path
/// never leaves this host or runs inside the tailnet (which WireGuard
/// encrypts): see [`cleartext_ok`]. `risk` says what would be exposed.
fn check_cleartext(key: &str, url: &str, target: &HttpTarget, risk: &str) -> Result<(), String> {
    if target.https || cleartext_ok(&target.host) {
        return Ok(());
    }
    Err(format!(
        "{key} = {url:?} is plain http:// to {host:?}, which is neither loopback (127.0.0.0/8, ::1, localhost) \
         nor on the tailnet (100.64.0.0/10, fd7a:115c:a1e0::/48, *.ts.net): {risk}. Use https://",
        host = target.host,
    ))
}

/// Hosts a plain `http://` fetch may go to: loopback (127.0.0.0/8, ::1,
/// `localhost`), tailnet addresses ([`tailnet::is_tailnet_ip`], the rule the
/// tailnet dialer uses) and Tailscale MagicDNS names (`*.ts.net`). The
/// config does not know this node's own MagicDNS suffix (that comes from the
/// node once it is up), so names under a custom (e.g. headscale) suffix must
/// use a tailnet address or https.
fn cleartext_ok(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.to_canonical().is_loopback() || tailnet::is_tailnet_ip(ip);
    }
    host.trim_end_matches('.').eq_ignore_ascii_case("localhost") || tailnet::is_magicdns_name(host)
}

fn check_absolute_url(s: &str) -> Result<(), String> {
    let uri: Uri = s.parse().map_err(|_| format!("{s:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{s:?} must be an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if s.contains('#') {
        return Err(format!("{s:?} must not have a fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use crate::auth::oauth::{TcpConnector, TokenValidator};

    #[test]
    fn config_defaults_parse_and_validation() {
        let cfg: OAuthConfig = toml::from_str("").expect("empty config");
        assert_eq!(cfg, OAuthConfig::default());
        assert!(!cfg.enabled);
        assert_eq!(
            (cfg.jwks_cache_secs, cfg.introspection_cache_secs, cfg.leeway_secs, cfg.timeout_secs),
            (300, 30, 30, 5)
        );
        assert!(cfg.validate().is_ok(), "disabled config is fine");
        assert!(toml::from_str::<OAuthConfig>("bogus = 1").is_err());

        let cfg: OAuthConfig = toml::from_str(
            r#"
            enabled = true
            resource = "https://ops.example.ts.net/mcp"
            authorization_servers = ["https://idp.example.ts.net"]
            introspection_url = "https://idp.example.ts.net/introspect"
            introspection_client_id = "id"
            introspection_client_secret = "hunter2"
            scopes_supported = ["files:read"]
            "#,
        )
        .expect("config");
        cfg.validate().expect("valid");
        assert!(!format!("{cfg:?}").contains("hunter2"));

        let bad = |f: fn(&mut OAuthConfig)| {
            let mut c = cfg.clone();
            f(&mut c);
            c.validate().expect_err("should be refused")
        };
        assert!(bad(|c| c.introspection_url = None).contains("jwks_url or introspection_url"));
        assert!(bad(|c| c.introspection_url = Some("ftp://x/y".into())).contains("introspection_url"));
        assert!(bad(|c| c.introspection_url = Some("not a url".into())).contains("introspection_url"));
        assert!(bad(|c| c.jwks_url = Some("https://user:pw@idp/jwks".into())).contains("credentials"));
        assert!(bad(|c| c.resource = "/mcp".into()).contains("resource"));
        assert!(bad(|c| c.authorization_servers = vec!["nope".into()]).contains("authorization_servers"));
        assert!(bad(|c| c.authorization_servers.clear()).contains("authorization server"));
        assert!(bad(|c| c.timeout_secs = 0).contains("timeout_secs"));
        assert!(bad(|c| c.leeway_secs = 100_000).contains("leeway_secs"));
        assert!(bad(|c| c.introspection_client_id = None).contains("client_id"));

        // The validator also needs a resource (or audiences).
        let mut c = cfg.clone();
        c.resource.clear();
        assert!(TokenValidator::new(c.clone(), Arc::new(TcpConnector)).is_err());
        c.audiences = vec!["tailops".into()];
        assert!(TokenValidator::new(c, Arc::new(TcpConnector)).is_ok());
        // …and a source, even when `enabled` is false.
        let mut c = cfg.clone();
        c.enabled = false;
        c.introspection_url = None;
        assert!(TokenValidator::new(c, Arc::new(TcpConnector)).is_err());
    }

    #[test]
    fn plain_http_only_to_loopback_or_tailnet_hosts() {
        let base = OAuthConfig {
            enabled: true,
            resource: "https://ops.example.ts.net/mcp".into(),
            authorization_servers: vec!["https://idp.example.ts.net".into()],
            ..OAuthConfig::default()
        };
        let with = |key: &str, url: &str| {
            let mut c = base.clone();
            if key == "jwks_url" {
                c.jwks_url = Some(url.into());
            } else {
                c.introspection_url = Some(url.into());
            }
            c
        };
        let allowed = [
            "http://127.0.0.1/x",
            "http://127.255.255.254:8080/x",
            "http://[::1]:9000/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://localhost:8080/x",
            "http://LocalHost./x",
            "http://100.64.0.1/x",
            "http://100.127.255.255/x",
            "http://[fd7a:115c:a1e0::53]/x",
            "http://idp.example.ts.net/x",
            "http://IDP.Example.TS.NET./x",
            "https://10.0.0.1/x",
            "https://100.128.0.1/x",
            "https://example.com/x",
        ];
        let refused = [
            "http://100.128.0.1/x",
            "http://100.63.255.255/x",
            "http://10.0.0.1/x",
            "http://192.168.1.10:8080/x",
            "http://example.com/x",
            "http://[fd7a:115c:a1e1::1]/x",
            "http://[2001:db8::1]/x",
            "http://ts.net.example.com/x",
            "http://evil-ts.net/x",
            "http://localhost.example.com/x",
            "http://idp/x",
        ];
        for key in ["jwks_url", "introspection_url"] {
            for url in allowed {
                with(key, url).validate().unwrap_or_else(|e| panic!("{key} = {url}: {e}"));
            }
            for url in refused {
                let e = with(key, url).validate().expect_err(url);
                // Names the key, the value and the fix.
                assert!(e.starts_with(&format!("oauth.{key} = {url:?} ")), "{e}");
                assert!(e.ends_with("Use https://"), "{e}");
            }
        }
        let e = with("introspection_url", "http://10.0.0.1/introspect").validate().expect_err("refused");
        assert!(e.contains("client secret") && e.contains("cleartext"), "{e}");
        // The same check runs when the validator is built at start.
        let r = TokenValidator::new(with("jwks_url", "http://example.com/jwks"), Arc::new(TcpConnector));
        assert!(r.is_err_and(|e| e.contains("oauth.jwks_url")));
        TokenValidator::new(with("jwks_url", "http://127.0.0.1:1/jwks"), Arc::new(TcpConnector)).expect("loopback");
    }
}
