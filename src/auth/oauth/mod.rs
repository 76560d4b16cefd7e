//! OAuth 2.1 resource-server pieces (MCP authorization, revision 2025-11-25).
//!
//! What lives here, free of any HTTP routing, one file per concern:
//! - `config`: [`OAuthConfig`], the `[oauth]` settings, and their checks;
//! - this file: [`TokenValidator`], which checks a bearer token either as a
//!   JWT against the authorization server's JWKS (`jwt`, `jwks`) or through
//!   RFC 7662 introspection (`introspect`; for opaque tokens, e.g. tsidp's),
//!   and answers the caller's scopes ([`TokenInfo`], [`TokenError`] in `token`);
//! - `metadata`: [`protected_resource_metadata`] (RFC 9728);
//! - `challenge`: [`www_authenticate`] (RFC 6750 / RFC 9728 challenge) and
//!   [`bearer_from_header`];
//! - `connector` + `client`: how the JWKS and introspection endpoints are
//!   reached.
//!
//! Tokens are never forwarded anywhere: a token is only (a) verified locally
//! against public keys from the JWKS, or (b) sent to the configured
//! introspection endpoint, whose job is exactly to answer about it. It is
//! never passed on to tools, upstream APIs or logs, never appears in an error
//! message, and the introspection cache keys entries by the token's SHA-256,
//! never by the token itself (MCP spec: no token passthrough).
//!
//! Outbound HTTP (JWKS, introspection) is HTTP/1.1 over a caller-supplied
//! [`Connector`] (the server dials over the tailnet; [`TcpConnector`] dials
//! ordinary hosts), plain for `http://` and rustls (aws-lc-rs, webpki roots)
//! for `https://`. Every fetch is bounded in time (`timeout_secs`) and size
//! ([`MAX_RESPONSE_BYTES`]); redirects are not followed.

mod challenge;
mod client;
mod config;
mod connector;
mod introspect;
mod jwks;
mod jwt;
mod metadata;
#[cfg(test)]
mod testkit;
mod token;

pub use challenge::{bearer_from_header, www_authenticate};
pub use client::MAX_RESPONSE_BYTES;
pub use config::OAuthConfig;
pub use connector::{AsyncIo, ConnectFuture, Connector, TcpConnector};
pub use introspect::{INTROSPECTION_CACHE_MAX_ENTRIES, MAX_CONCURRENT_INTROSPECTIONS};
pub use jwks::{JWKS_MIN_REFETCH_INTERVAL, MAX_JWKS_KEYS};
pub use metadata::protected_resource_metadata;
pub use token::{MAX_TOKEN_BYTES, TokenError, TokenInfo};

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_rustls::rustls::RootCertStore;

use client::HttpClient;
use introspect::IntrospectionSource;
use jwks::JwksSource;
use token::{check_token_syntax, looks_like_jwt};

/// Checks bearer tokens. Cheap to share behind an `Arc`; all caches inside
/// are bounded.
pub struct TokenValidator {
    audiences: Vec<String>,
    issuer: Option<String>,
    leeway_secs: u64,
    http: HttpClient,
    jwks: Option<JwksSource>,
    introspection: Option<IntrospectionSource>,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidator")
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("jwks", &self.jwks.as_ref().map(|j| &j.url))
            .field("introspection", &self.introspection.as_ref().map(|i| &i.url))
            .finish_non_exhaustive()
    }
}

impl TokenValidator {
    /// Checks `cfg` (as [`OAuthConfig::validate`] does for an enabled one)
    /// and builds a validator whose fetches go through `connector`, with
    /// the webpki (Mozilla) roots for `https://`.
    pub fn new(cfg: OAuthConfig, connector: Arc<dyn Connector>) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(cfg, connector, roots)
    }

    fn with_roots(cfg: OAuthConfig, connector: Arc<dyn Connector>, roots: RootCertStore) -> Result<Self, String> {
        OAuthConfig { enabled: true, ..cfg.clone() }.validate()?;
        let audiences = cfg.effective_audiences();
        if audiences.iter().any(String::is_empty) {
            return Err("oauth: resource (or audiences) must be set".into());
        }
        // Pin jsonwebtoken's crypto backend explicitly: if another crate in
        // the build also enabled its `rust_crypto` feature, its automatic
        // choice would panic. An Err means one is installed already.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER);
        let http = HttpClient::new(connector, roots, Duration::from_secs(cfg.timeout_secs))?;
        let jwks = match &cfg.jwks_url {
            Some(url) => Some(JwksSource::new(url, Duration::from_secs(cfg.jwks_cache_secs))?),
            None => None,
        };
        let introspection = match &cfg.introspection_url {
            Some(url) => Some(IntrospectionSource::new(url, &cfg)?),
            None => None,
        };
        Ok(Self { audiences, issuer: cfg.issuer.clone(), leeway_secs: cfg.leeway_secs, http, jwks, introspection })
    }

    /// Validates a bearer token (as taken by [`bearer_from_header`]).
    ///
    /// With only a JWKS configured the token must be a JWT; with only an
    /// introspection endpoint it is always introspected; with both, a
    /// JWT-shaped token is checked against the JWKS and anything else is
    /// introspected.
    pub async fn validate(&self, bearer_token: &str) -> Result<TokenInfo, TokenError> {
        check_token_syntax(bearer_token)?;
        match (&self.jwks, &self.introspection) {
            (Some(jwks), Some(intro)) => {
                if looks_like_jwt(bearer_token) {
                    self.validate_jwt(jwks, bearer_token).await
                } else {
                    self.introspect(intro, bearer_token).await
                }
            }
            (Some(jwks), None) => self.validate_jwt(jwks, bearer_token).await,
            (None, Some(intro)) => self.introspect(intro, bearer_token).await,
            (None, None) => Err(TokenError::Unavailable("no token validation configured".into())),
        }
    }

    fn check_audience(&self, audience: &[String]) -> Result<(), TokenError> {
        if audience.is_empty() {
            return Err(TokenError::WrongAudience("token has no audience".into()));
        }
        if audience.iter().any(|a| self.audiences.contains(a)) {
            return Ok(());
        }
        Err(TokenError::WrongAudience(format!("token is for {}, not this resource", summarize(audience))))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// At most three values, each cut to 64 characters, for messages.
fn summarize(values: &[String]) -> String {
    let mut out: Vec<String> = values
        .iter()
        .take(3)
        .map(|v| {
            let cut: String = v.chars().take(64).collect();
            format!("{cut:?}")
        })
        .collect();
    if values.len() > 3 {
        out.push("…".into());
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    use super::testkit::*;

    #[tokio::test]
    async fn both_sources_route_by_token_shape() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::ed("ed-1");
        idp.set_keys(&[key.jwk(true)]);
        idp.answer("opaque", active(json!({})));
        let v =
            validator(OAuthConfig { introspection_url: Some(format!("http://{addr}/introspect")), ..jwt_cfg(addr) });
        v.validate(&key.token(&claims(json!({})))).await.expect("jwt");
        assert_eq!((idp.jwks_hits(), idp.introspect_hits()), (1, 0));
        v.validate("opaque").await.expect("opaque");
        assert_eq!((idp.jwks_hits(), idp.introspect_hits()), (1, 1));
        // JWT-shaped but unsigned: judged as a JWT, refused, not introspected.
        let none = jwt(&json!({"alg": "none"}), &claims(json!({})), |_| Vec::new());
        assert!(is_invalid(&v.validate(&none).await));
        assert_eq!(idp.introspect_hits(), 1);
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused_without_any_fetch() {
        let (addr, idp) = start_idp().await;
        let v =
            validator(OAuthConfig { introspection_url: Some(format!("http://{addr}/introspect")), ..jwt_cfg(addr) });
        for bad in ["", "has space", "quote\"", "uni©ode", &"a".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(is_invalid(&v.validate(bad).await), "{bad:?}");
        }
        assert_eq!((idp.jwks_hits(), idp.introspect_hits()), (0, 0));
    }
}
