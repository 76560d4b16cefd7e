//! The `[oauth]` settings and their checks.

use std::fmt;

use hyper::Uri;
use serde::Deserialize;

use super::client::HttpTarget;

/// Upper bounds for the numeric settings (sanity, not policy).
const MAX_LEEWAY_SECS: u64 = 600;
const MAX_TIMEOUT_SECS: u64 = 120;
const MAX_CACHE_SECS: u64 = 86_400;

/// The `[oauth]` settings.
#[derive(Clone, Deserialize, PartialEq)]
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
            HttpTarget::parse(u).map_err(|e| format!("oauth.jwks_url: {e}"))?;
        }
        if let Some(u) = &self.introspection_url {
            HttpTarget::parse(u).map_err(|e| format!("oauth.introspection_url: {e}"))?;
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
}
