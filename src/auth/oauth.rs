//! OAuth 2.1 resource-server pieces (MCP authorization, revision 2025-11-25).
//!
//! What lives here, free of any HTTP routing:
//! - [`OAuthConfig`], the `[oauth]` settings;
//! - [`TokenValidator`], which checks a bearer token either as a JWT against
//!   the authorization server's JWKS or through RFC 7662 introspection (for
//!   opaque tokens, e.g. tsidp's), and answers the caller's scopes;
//! - [`protected_resource_metadata`] (RFC 9728), [`www_authenticate`]
//!   (RFC 6750 / RFC 9728 challenge) and [`bearer_from_header`].
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

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Largest JWKS or introspection response body read (1 MiB).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Most positive introspection results kept in the cache at once.
pub const INTROSPECTION_CACHE_MAX_ENTRIES: usize = 10_000;
/// A token whose `kid` is not in the cached JWKS triggers a JWKS refetch at
/// most this often (so unknown-`kid` tokens can't make us an amplifier); a
/// failed JWKS fetch is not retried sooner either.
pub const JWKS_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Longest bearer token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most keys taken from one JWKS document (the rest are ignored).
pub const MAX_JWKS_KEYS: usize = 64;
/// Most introspection requests in flight at once.
pub const MAX_CONCURRENT_INTROSPECTIONS: usize = 32;
/// Upper bounds for the numeric settings (sanity, not policy).
const MAX_LEEWAY_SECS: u64 = 600;
const MAX_TIMEOUT_SECS: u64 = 120;
const MAX_CACHE_SECS: u64 = 86_400;
/// JWS algorithms accepted; the key's own algorithm must match the token's.
const ACCEPTED_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

// ---------------------------------------------------------------------------
// Configuration

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

// ---------------------------------------------------------------------------
// Results and errors

/// What a valid token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// `sub`.
    pub subject: Option<String>,
    /// `client_id` (JWT: else `azp`).
    pub client_id: Option<String>,
    pub scopes: BTreeSet<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: Option<u64>,
    pub audience: Vec<String>,
}

impl TokenInfo {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// Why a token was not accepted. Messages never contain the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// 401 `invalid_token`.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// 401 `invalid_token`.
    #[error("token expired")]
    Expired,
    /// 401 `invalid_token`: the token was issued for another resource.
    #[error("token audience mismatch: {0}")]
    WrongAudience(String),
    /// 503: the JWKS or introspection endpoint could not be used.
    #[error("authorization server unavailable: {0}")]
    Unavailable(String),
}

impl TokenError {
    /// The OAuth `error` code for the `WWW-Authenticate` challenge.
    pub fn oauth_error_code(&self) -> &'static str {
        match self {
            TokenError::Unavailable(_) => "temporarily_unavailable",
            _ => "invalid_token",
        }
    }

    /// The HTTP status to answer with: 401, or 503 for `Unavailable`.
    pub fn http_status(&self) -> u16 {
        match self {
            TokenError::Unavailable(_) => 503,
            _ => 401,
        }
    }
}

// ---------------------------------------------------------------------------
// Byte streams

/// A byte stream an HTTP/1.1 exchange can run over.
pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncIo for T {}

/// The future a [`Connector`] returns (the same type as
/// `futures::future::BoxFuture<'static, _>`).
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn AsyncIo>>> + Send>>;

/// How to open a byte stream to `host:port` (host without IPv6 brackets).
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, host: &str, port: u16) -> ConnectFuture;
}

/// Dials with tokio's `TcpStream` (system resolver), TCP_NODELAY set.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, host: &str, port: u16) -> ConnectFuture {
        let host = host.to_owned();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn AsyncIo>)
        })
    }
}

// ---------------------------------------------------------------------------
// Header helpers

/// The token of an `Authorization: Bearer <token>` header value (scheme
/// case-insensitive); `None` for other schemes and for empty tokens or
/// tokens containing whitespace.
pub fn bearer_from_header(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return None;
    }
    Some(token)
}

/// A `WWW-Authenticate` value: `Bearer resource_metadata="…"` plus optional
/// `scope="…"` and `error="…", error_description="…"`. Values are quoted
/// and escaped; control and non-ASCII characters become `?`, so the result
/// is always a valid header value.
pub fn www_authenticate(resource_metadata_url: &str, scope: Option<&str>, error: Option<(&str, &str)>) -> String {
    let mut out = String::from("Bearer resource_metadata=");
    push_quoted(&mut out, resource_metadata_url);
    if let Some(scope) = scope {
        out.push_str(", scope=");
        push_quoted(&mut out, scope);
    }
    if let Some((code, description)) = error {
        out.push_str(", error=");
        push_quoted(&mut out, code);
        if !description.is_empty() {
            out.push_str(", error_description=");
            push_quoted(&mut out, description);
        }
    }
    out
}

fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

/// RFC 9728 protected resource metadata for `cfg`.
pub fn protected_resource_metadata(cfg: &OAuthConfig) -> serde_json::Value {
    let servers: Vec<&str> = if cfg.authorization_servers.is_empty() {
        cfg.issuer.iter().map(String::as_str).collect()
    } else {
        cfg.authorization_servers.iter().map(String::as_str).collect()
    };
    let mut doc = serde_json::json!({
        "resource": cfg.resource,
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "tailops",
    });
    if !cfg.scopes_supported.is_empty()
        && let Some(obj) = doc.as_object_mut()
    {
        obj.insert("scopes_supported".into(), serde_json::json!(cfg.scopes_supported));
    }
    doc
}

// ---------------------------------------------------------------------------
// The validator

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

struct JwksSource {
    url: String,
    target: HttpTarget,
    ttl: Duration,
    state: Mutex<JwksState>,
    /// Serializes fetches; never held while verifying with cached keys.
    fetch_lock: tokio::sync::Mutex<()>,
}

#[derive(Clone, Default)]
struct JwksState {
    keys: Arc<Vec<Arc<VerifyKey>>>,
    /// Last successful fetch.
    fetched_at: Option<Instant>,
    /// Last refetch caused by an unknown `kid`.
    last_kid_refetch: Option<Instant>,
    /// Last failed fetch.
    last_failure: Option<Instant>,
    /// Bumped by every fetch attempt, to spot concurrent ones.
    generation: u64,
}

impl JwksState {
    fn is_fresh(&self, now: Instant, ttl: Duration) -> bool {
        self.fetched_at.is_some_and(|t| now.saturating_duration_since(t) < ttl)
    }
}

struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

struct IntrospectionSource {
    url: String,
    target: HttpTarget,
    basic_auth: Option<String>,
    cache_ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    permits: tokio::sync::Semaphore,
}

struct CacheEntry {
    info: TokenInfo,
    until: Instant,
}

enum Introspected {
    Cached(TokenInfo),
    Answer(StatusCode, Bytes),
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
            Some(url) => Some(JwksSource {
                url: url.clone(),
                target: HttpTarget::parse(url)?,
                ttl: Duration::from_secs(cfg.jwks_cache_secs),
                state: Mutex::new(JwksState::default()),
                fetch_lock: tokio::sync::Mutex::new(()),
            }),
            None => None,
        };
        let introspection = match &cfg.introspection_url {
            Some(url) => {
                let basic_auth = cfg.introspection_client_id.as_ref().map(|id| {
                    // RFC 6749 §2.3.1: both parts form-urlencoded first.
                    let mut creds = String::new();
                    form_urlencode_into(&mut creds, id);
                    creds.push(':');
                    form_urlencode_into(&mut creds, cfg.introspection_client_secret.as_deref().unwrap_or(""));
                    format!("Basic {}", STANDARD.encode(creds))
                });
                Some(IntrospectionSource {
                    url: url.clone(),
                    target: HttpTarget::parse(url)?,
                    basic_auth,
                    cache_ttl: Duration::from_secs(cfg.introspection_cache_secs),
                    cache: Mutex::new(HashMap::new()),
                    permits: tokio::sync::Semaphore::new(MAX_CONCURRENT_INTROSPECTIONS),
                })
            }
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

    // --- JWT -----------------------------------------------------------

    async fn validate_jwt(&self, src: &JwksSource, token: &str) -> Result<TokenInfo, TokenError> {
        // Fails for `alg: none` and any algorithm name jsonwebtoken lacks.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed JWT or unsupported algorithm".into()))?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Invalid(format!("JWT algorithm {:?} is not accepted", header.alg)));
        }
        if header.crit.is_some() {
            return Err(TokenError::Invalid("JWT has critical header extensions".into()));
        }
        let keys = self.jwks_candidates(src, header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Audience is checked below, uniformly with introspection.
        validation.validate_aud = false;
        let mut required = vec!["exp"];
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);

        for key in keys.iter() {
            match jsonwebtoken::decode::<JwtClaims>(token, &key.key, &validation) {
                Ok(data) => return self.jwt_info(data.claims),
                Err(e) if *e.kind() == JwtErrorKind::InvalidSignature => continue,
                Err(e) => return Err(map_jwt_error(e.kind())),
            }
        }
        Err(TokenError::Invalid("JWT signature does not verify".into()))
    }

    fn jwt_info(&self, claims: JwtClaims) -> Result<TokenInfo, TokenError> {
        let audience = claims.aud.map(StringOrList::into_vec).unwrap_or_default();
        self.check_audience(&audience)?;
        let mut scopes = BTreeSet::new();
        for s in [claims.scope, claims.scp].into_iter().flatten() {
            scopes.extend(s.into_scopes());
        }
        Ok(TokenInfo {
            subject: claims.sub,
            client_id: claims.client_id.or(claims.azp),
            scopes,
            expires_at: claims.exp.as_ref().and_then(numeric_date),
            audience,
        })
    }

    /// The keys that may have signed a token with this `kid` and `alg`,
    /// fetching the JWKS when stale or when `kid` is unknown (rate-limited).
    async fn jwks_candidates(
        &self,
        src: &JwksSource,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<Arc<VerifyKey>>, TokenError> {
        let snapshot = lock(&src.state).clone();
        if snapshot.is_fresh(Instant::now(), src.ttl) {
            match pick_keys(&snapshot.keys, kid, alg) {
                Picked::Keys(keys) => return Ok(keys),
                Picked::AlgMismatch => return Err(alg_mismatch()),
                Picked::NoKid => return Err(no_key()),
                Picked::UnknownKid => {} // maybe refetch, below
            }
        }

        let _fetching = src.fetch_lock.lock().await;
        let now = Instant::now();
        let current = lock(&src.state).clone();
        let fresh = current.is_fresh(now, src.ttl);
        let raced = current.generation != snapshot.generation;
        let recently =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < JWKS_MIN_REFETCH_INTERVAL);
        let may_fetch = if raced {
            // Someone fetched while we waited: use their result.
            false
        } else if fresh {
            // Fresh keys but an unknown kid.
            !recently(current.last_kid_refetch)
        } else {
            !recently(current.last_failure)
        };
        if !may_fetch {
            if !fresh {
                return Err(TokenError::Unavailable("JWKS could not be fetched recently; retrying later".into()));
            }
            return match pick_keys(&current.keys, kid, alg) {
                Picked::Keys(keys) => Ok(keys),
                Picked::AlgMismatch => Err(alg_mismatch()),
                Picked::NoKid | Picked::UnknownKid => Err(no_key()),
            };
        }

        let fetched = self.fetch_jwks(src).await;
        let mut state = lock(&src.state);
        state.generation = state.generation.wrapping_add(1);
        if fresh {
            state.last_kid_refetch = Some(now);
        }
        match fetched {
            Ok(keys) => {
                state.keys = Arc::new(keys);
                state.fetched_at = Some(Instant::now());
                state.last_failure = None;
                match pick_keys(&state.keys, kid, alg) {
                    Picked::Keys(keys) => Ok(keys),
                    Picked::AlgMismatch => Err(alg_mismatch()),
                    Picked::NoKid | Picked::UnknownKid => Err(no_key()),
                }
            }
            Err(e) => {
                state.last_failure = Some(Instant::now());
                tracing::warn!(url = %src.url, error = %e, "JWKS fetch failed");
                Err(TokenError::Unavailable(format!("JWKS: {e}")))
            }
        }
    }

    async fn fetch_jwks(&self, src: &JwksSource) -> Result<Vec<Arc<VerifyKey>>, String> {
        let req = src
            .target
            .request(Method::GET)
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("building request: {e}"))?;
        let (status, body) = self.http.send(&src.target, req).await?;
        if status != StatusCode::OK {
            return Err(format!("{} answered HTTP {status}", src.url));
        }
        let doc: JwksDocument = serde_json::from_slice(&body).map_err(|_| format!("{} is not a JWKS", src.url))?;
        let mut keys = Vec::new();
        for value in doc.keys.into_iter().take(MAX_JWKS_KEYS) {
            match serde_json::from_value::<Jwk>(value) {
                Ok(jwk) => match verify_key_from_jwk(&jwk) {
                    Some(key) => keys.push(Arc::new(key)),
                    None => tracing::debug!(
                        kid = jwk.common.key_id.as_deref().unwrap_or(""),
                        "JWKS: skipping a key not usable for RS256/ES256/EdDSA signatures"
                    ),
                },
                Err(_) => tracing::debug!("JWKS: skipping a malformed key"),
            }
        }
        tracing::debug!(url = %src.url, keys = keys.len(), "JWKS fetched");
        Ok(keys)
    }

    // --- introspection ---------------------------------------------------

    async fn introspect(&self, src: &IntrospectionSource, token: &str) -> Result<TokenInfo, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(info) = cache_get(src, &key) {
            return Ok(info);
        }
        // One bound for waiting on a permit and the request itself.
        let answer = tokio::time::timeout(self.http.timeout, async {
            let _permit = src.permits.acquire().await.map_err(|_| "shutting down".to_string())?;
            // Another request may have introspected this token meanwhile.
            if let Some(info) = cache_get(src, &key) {
                return Ok(Introspected::Cached(info));
            }
            let mut form = String::from("token=");
            form_urlencode_into(&mut form, token);
            form.push_str("&token_type_hint=access_token");
            let mut req =
                src.target.request(Method::POST).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if let Some(auth) = &src.basic_auth {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let req = req.body(Full::new(Bytes::from(form))).map_err(|_| "building request failed".to_string())?;
            let (status, body) = self.http.send(&src.target, req).await?;
            Ok::<_, String>(Introspected::Answer(status, body))
        })
        .await;
        let (status, body) = match answer {
            Ok(Ok(Introspected::Answer(status, body))) => (status, body),
            Ok(Ok(Introspected::Cached(info))) => return Ok(info),
            Ok(Err(e)) => {
                tracing::warn!(url = %src.url, error = %e, "token introspection failed");
                return Err(TokenError::Unavailable(format!("introspection: {e}")));
            }
            Err(_) => {
                return Err(TokenError::Unavailable(format!(
                    "introspection: {} did not answer within {:?}",
                    src.url, self.http.timeout
                )));
            }
        };
        if status != StatusCode::OK {
            tracing::warn!(url = %src.url, %status, "token introspection refused");
            return Err(TokenError::Unavailable(format!("introspection endpoint answered HTTP {status}")));
        }
        let resp: IntrospectionResponse = serde_json::from_slice(&body)
            .map_err(|_| TokenError::Unavailable("introspection answer is not a valid RFC 7662 response".into()))?;
        if !resp.active {
            return Err(TokenError::Invalid("token is not active".into()));
        }
        let now = now_secs();
        let expires_at = match &resp.exp {
            Some(v) => Some(
                numeric_date(v)
                    .ok_or_else(|| TokenError::Unavailable("introspection answer has a malformed exp".into()))?,
            ),
            None => None,
        };
        if let Some(exp) = expires_at
            && exp.saturating_add(self.leeway_secs) < now
        {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = resp.nbf.as_ref().and_then(numeric_date)
            && nbf > now.saturating_add(self.leeway_secs)
        {
            return Err(TokenError::Invalid("token is not valid yet (nbf)".into()));
        }
        if let (Some(want), Some(got)) = (&self.issuer, &resp.iss)
            && want != got
        {
            return Err(TokenError::Invalid("token has the wrong issuer".into()));
        }
        let audience = resp.aud.map(StringOrList::into_vec).unwrap_or_default();
        self.check_audience(&audience)?;
        let info = TokenInfo {
            subject: resp.sub,
            client_id: resp.client_id,
            scopes: resp.scope.map(StringOrList::into_scopes).unwrap_or_default(),
            expires_at,
            audience,
        };
        let mut ttl = src.cache_ttl;
        if let Some(exp) = expires_at {
            ttl = ttl.min(Duration::from_secs(exp.saturating_sub(now)));
        }
        if !ttl.is_zero() {
            cache_put(src, key, info.clone(), ttl);
        }
        Ok(info)
    }
}

fn alg_mismatch() -> TokenError {
    TokenError::Invalid("JWT algorithm does not match its key".into())
}

fn no_key() -> TokenError {
    TokenError::Invalid("no JWKS key matches the JWT's kid".into())
}

enum Picked {
    Keys(Vec<Arc<VerifyKey>>),
    /// A key with this kid exists, but for another algorithm.
    AlgMismatch,
    /// The token has a kid the JWKS lacks.
    UnknownKid,
    /// The token has no kid and no key fits its algorithm.
    NoKid,
}

fn pick_keys(keys: &[Arc<VerifyKey>], kid: Option<&str>, alg: Algorithm) -> Picked {
    match kid {
        Some(kid) => {
            let same_kid: Vec<_> = keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
            if same_kid.is_empty() {
                return Picked::UnknownKid;
            }
            let usable: Vec<_> = same_kid.into_iter().filter(|k| k.alg == alg).cloned().collect();
            if usable.is_empty() { Picked::AlgMismatch } else { Picked::Keys(usable) }
        }
        None => {
            let usable: Vec<_> = keys.iter().filter(|k| k.alg == alg).cloned().collect();
            if usable.is_empty() { Picked::NoKid } else { Picked::Keys(usable) }
        }
    }
}

/// A verification key from a JWK, or `None` when the JWK is not a public
/// signing key for RS256, ES256 (P-256) or EdDSA (Ed25519). Symmetric
/// (`oct`) keys are never used.
fn verify_key_from_jwk(jwk: &Jwk) -> Option<VerifyKey> {
    if let Some(u) = &jwk.common.public_key_use
        && *u != PublicKeyUse::Signature
    {
        return None;
    }
    let (natural, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => (Algorithm::RS256, DecodingKey::from_rsa_components(&p.n, &p.e).ok()?),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, DecodingKey::from_ec_components(&p.x, &p.y).ok()?)
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (Algorithm::EdDSA, DecodingKey::from_ed_components(&p.x).ok()?)
        }
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => natural,
        Some(declared) if declared == KeyAlgorithm::from(natural) => natural,
        Some(_) => return None,
    };
    Some(VerifyKey { kid: jwk.common.key_id.clone(), alg, key })
}

fn map_jwt_error(kind: &JwtErrorKind) -> TokenError {
    let msg = match kind {
        JwtErrorKind::ExpiredSignature => return TokenError::Expired,
        JwtErrorKind::InvalidIssuer => "token has the wrong issuer".to_string(),
        JwtErrorKind::ImmatureSignature => "token is not valid yet (nbf)".to_string(),
        JwtErrorKind::MissingRequiredClaim(c) => format!("JWT lacks the {c} claim"),
        JwtErrorKind::InvalidClaimFormat(c) => format!("JWT has a malformed {c} claim"),
        JwtErrorKind::InvalidAlgorithm | JwtErrorKind::InvalidKeyFormat => {
            "JWT algorithm does not match its key".to_string()
        }
        JwtErrorKind::InvalidSignature => "JWT signature does not verify".to_string(),
        // Deliberately no detail: serde messages could quote token content.
        _ => "malformed JWT".to_string(),
    };
    TokenError::Invalid(msg)
}

fn cache_get(src: &IntrospectionSource, key: &[u8; 32]) -> Option<TokenInfo> {
    let mut cache = lock(&src.cache);
    let now = Instant::now();
    match cache.get(key) {
        Some(entry) if entry.until > now => Some(entry.info.clone()),
        Some(_) => {
            cache.remove(key);
            None
        }
        None => None,
    }
}

fn cache_put(src: &IntrospectionSource, key: [u8; 32], info: TokenInfo, ttl: Duration) {
    let mut cache = lock(&src.cache);
    let now = Instant::now();
    if cache.len() >= INTROSPECTION_CACHE_MAX_ENTRIES && !cache.contains_key(&key) {
        cache.retain(|_, e| e.until > now);
        if cache.len() >= INTROSPECTION_CACHE_MAX_ENTRIES {
            // Still full of live entries: drop the one expiring first.
            let first = cache.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k);
            if let Some(first) = first {
                cache.remove(&first);
            }
        }
    }
    cache.insert(key, CacheEntry { info, until: now + ttl });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Token shapes and claims

/// RFC 6750 `b68token` characters, bounded length.
fn check_token_syntax(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Invalid("empty token".into()));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Invalid(format!("token longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let ok =
        token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'='));
    if !ok {
        return Err(TokenError::Invalid("token has characters outside the bearer token syntax".into()));
    }
    Ok(())
}

/// Three dot-separated base64url parts whose first decodes to a JSON object.
fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(head), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let b64url = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if head.is_empty() || payload.is_empty() || !b64url(head) || !b64url(payload) || !b64url(sig) {
        return false;
    }
    URL_SAFE_NO_PAD
        .decode(head)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).ok())
        .is_some()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }

    /// Scopes: a space-separated string, or a list (whose items may also
    /// hold space-separated scopes).
    fn into_scopes(self) -> BTreeSet<String> {
        self.into_vec().iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

#[derive(Deserialize)]
struct JwtClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    scope: Option<StringOrList>,
    #[serde(default)]
    scp: Option<StringOrList>,
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    aud: Option<StringOrList>,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct IntrospectionResponse {
    active: bool,
    #[serde(default)]
    scope: Option<StringOrList>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    nbf: Option<serde_json::Value>,
    #[serde(default)]
    aud: Option<StringOrList>,
    #[serde(default)]
    iss: Option<String>,
}

/// An RFC 7519 NumericDate (integer or fractional seconds) as whole seconds.
fn numeric_date(v: &serde_json::Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 { Some(f as u64) } else { None }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
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

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_urlencode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Minimal HTTP/1.1 client over a Connector

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug)]
struct HttpTarget {
    https: bool,
    /// For the connector and TLS server name: no IPv6 brackets.
    host: String,
    port: u16,
    /// For the `Host` header.
    authority: String,
    path_and_query: String,
}

impl HttpTarget {
    fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{url:?} must be an http:// or https:// URL")),
        };
        let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{url:?}: credentials in URLs are not supported"));
        }
        if url.contains('#') {
            return Err(format!("{url:?} must not have a fragment"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query =
            uri.path_and_query().map(|p| p.as_str()).filter(|p| !p.is_empty()).unwrap_or("/").to_owned();
        Ok(Self { https, host: host.to_owned(), port, authority: authority.as_str().to_owned(), path_and_query })
    }

    fn request(&self, method: Method) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(self.path_and_query.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::CONNECTION, "close")
            .header(header::USER_AGENT, concat!("tailops/", env!("CARGO_PKG_VERSION")))
    }
}

struct HttpClient {
    connector: Arc<dyn Connector>,
    tls: TlsConnector,
    timeout: Duration,
}

impl HttpClient {
    fn new(connector: Arc<dyn Connector>, roots: RootCertStore, timeout: Duration) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { connector, tls: TlsConnector::from(Arc::new(config)), timeout })
    }

    /// One request, bounded by the timeout and [`MAX_RESPONSE_BYTES`].
    /// Errors describe the endpoint, never the request body.
    async fn send(&self, target: &HttpTarget, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let url =
            format!("{}://{}{}", if target.https { "https" } else { "http" }, target.authority, target.path_and_query);
        match tokio::time::timeout(self.timeout, self.send_inner(target, req)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("{url}: {e}")),
            Err(_) => Err(format!("{url}: no answer within {:?}", self.timeout)),
        }
    }

    async fn send_inner(&self, target: &HttpTarget, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let stream = self.connector.connect(&target.host, target.port).await.map_err(|e| format!("connect: {e}"))?;
        if target.https {
            let name = ServerName::try_from(target.host.clone()).map_err(|_| "invalid TLS server name".to_string())?;
            let tls = self.tls.connect(name, stream).await.map_err(|e| format!("TLS: {e}"))?;
            exchange(tls, req).await
        } else {
            exchange(stream, req).await
        }
    }
}

async fn exchange<T>(io: T, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| format!("HTTP: {e}"))?;
    let response = async move {
        let resp = sender.send_request(req).await.map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status();
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("response larger than {MAX_RESPONSE_BYTES} bytes")
                } else {
                    format!("reading response: {e}")
                }
            })?
            .to_bytes();
        Ok((status, body))
    };
    tokio::pin!(response);
    tokio::pin!(conn);
    let mut conn_done = false;
    // Drive the connection in this task (no spawned task outlives a
    // timeout); once it ends the response future finishes on its own.
    loop {
        tokio::select! {
            r = &mut response => return r,
            c = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = c {
                    return Err(format!("HTTP: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, KeyPair as _};
    use axum::Router;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use serde_json::{Value, json};
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    const RESOURCE: &str = "https://ops.example.ts.net/mcp";
    const ISSUER: &str = "https://idp.example.ts.net";

    // --- signing keys (generated per test with aws-lc-rs) -------------------

    enum KeyKind {
        Ed(sig::Ed25519KeyPair),
        Ec(sig::EcdsaKeyPair),
        Rsa(aws_lc_rs::rsa::KeyPair),
    }

    struct TestKey {
        kid: String,
        kind: KeyKind,
    }

    impl TestKey {
        fn ed(kid: &str) -> Self {
            let kp = sig::Ed25519KeyPair::generate().expect("ed25519 key");
            Self { kid: kid.into(), kind: KeyKind::Ed(kp) }
        }

        fn ec(kid: &str) -> Self {
            let kp = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).expect("p256 key");
            Self { kid: kid.into(), kind: KeyKind::Ec(kp) }
        }

        fn rsa(kid: &str) -> Self {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa key");
            Self { kid: kid.into(), kind: KeyKind::Rsa(kp) }
        }

        fn alg(&self) -> &'static str {
            match self.kind {
                KeyKind::Ed(_) => "EdDSA",
                KeyKind::Ec(_) => "ES256",
                KeyKind::Rsa(_) => "RS256",
            }
        }

        fn jwk(&self, with_alg: bool) -> Value {
            let mut jwk = match &self.kind {
                KeyKind::Ed(kp) => json!({
                    "kty": "OKP", "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(kp.public_key().as_ref()),
                }),
                KeyKind::Ec(kp) => {
                    let point = kp.public_key().as_ref();
                    json!({
                        "kty": "EC", "crv": "P-256",
                        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                    })
                }
                KeyKind::Rsa(kp) => {
                    let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                    json!({
                        "kty": "RSA",
                        "n": URL_SAFE_NO_PAD.encode(&c.n),
                        "e": URL_SAFE_NO_PAD.encode(&c.e),
                    })
                }
            };
            jwk["kid"] = json!(self.kid);
            jwk["use"] = json!("sig");
            if with_alg {
                jwk["alg"] = json!(self.alg());
            }
            jwk
        }

        fn sign(&self, msg: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match &self.kind {
                KeyKind::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
                KeyKind::Ec(kp) => kp.sign(&rng, msg).expect("ecdsa sign").as_ref().to_vec(),
                KeyKind::Rsa(kp) => {
                    let mut out = vec![0; kp.public_modulus_len()];
                    kp.sign(&sig::RSA_PKCS1_SHA256, &rng, msg, &mut out).expect("rsa sign");
                    out
                }
            }
        }

        fn token(&self, claims: &Value) -> String {
            let header = json!({"alg": self.alg(), "kid": self.kid, "typ": "at+jwt"});
            jwt(&header, claims, |m| self.sign(m))
        }
    }

    fn jwt(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let msg =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = sign(msg.as_bytes());
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn claims(extra: Value) -> Value {
        let now = now_secs();
        let mut c = json!({
            "iss": ISSUER, "aud": RESOURCE, "sub": "alice@example.com",
            "client_id": "mcp-client", "iat": now, "exp": now + 300,
            "scope": "files:read system:read",
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        c
    }

    // --- a small authorization server on 127.0.0.1 -------------------------

    #[derive(Default)]
    struct Idp {
        jwks: Mutex<Value>,
        jwks_hits: AtomicUsize,
        introspect_hits: AtomicUsize,
        last_authorization: Mutex<Option<String>>,
        last_form: Mutex<Vec<(String, String)>>,
        /// token → introspection answer; unknown tokens are inactive.
        answers: Mutex<HashMap<String, Value>>,
        /// When set, introspection needs exactly this Authorization header.
        required_auth: Mutex<Option<String>>,
    }

    impl Idp {
        fn set_keys(&self, keys: &[Value]) {
            *lock(&self.jwks) = json!({ "keys": keys });
        }
        fn answer(&self, token: &str, answer: Value) {
            lock(&self.answers).insert(token.into(), answer);
        }
        fn jwks_hits(&self) -> usize {
            self.jwks_hits.load(Ordering::SeqCst)
        }
        fn introspect_hits(&self) -> usize {
            self.introspect_hits.load(Ordering::SeqCst)
        }
    }

    async fn serve_jwks(State(idp): State<Arc<Idp>>) -> axum::Json<Value> {
        idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
        axum::Json(lock(&idp.jwks).clone())
    }

    async fn serve_introspect(
        State(idp): State<Arc<Idp>>,
        headers: HeaderMap,
        body: String,
    ) -> axum::response::Response {
        idp.introspect_hits.fetch_add(1, Ordering::SeqCst);
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        *lock(&idp.last_authorization) = auth.clone();
        let form = form_decode(&body);
        *lock(&idp.last_form) = form.clone();
        if let Some(required) = lock(&idp.required_auth).clone()
            && auth.as_deref() != Some(required.as_str())
        {
            return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"})))
                .into_response();
        }
        let token = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v.clone()).unwrap_or_default();
        let answer = lock(&idp.answers).get(&token).cloned().unwrap_or_else(|| json!({"active": false}));
        axum::Json(answer).into_response()
    }

    async fn serve_slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "{}"
    }

    async fn serve_big() -> String {
        "x".repeat(MAX_RESPONSE_BYTES + 10)
    }

    async fn start_idp() -> (SocketAddr, Arc<Idp>) {
        let idp = Arc::new(Idp::default());
        idp.set_keys(&[]);
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/introspect", post(serve_introspect))
            .route("/slow", get(serve_slow))
            .route("/big", get(serve_big))
            .with_state(idp.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, idp)
    }

    fn form_decode(body: &str) -> Vec<(String, String)> {
        fn dec(s: &str) -> String {
            let bytes = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'+' => out.push(b' '),
                    b'%' if i + 2 < bytes.len() => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                        out.push(u8::from_str_radix(hex, 16).expect("hex digit"));
                        i += 2;
                    }
                    b => out.push(b),
                }
                i += 1;
            }
            String::from_utf8(out).expect("utf8")
        }
        body.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (dec(k), dec(v))
            })
            .collect()
    }

    /// A port nothing listens on.
    async fn dead_port() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    }

    fn jwt_cfg(addr: SocketAddr) -> OAuthConfig {
        OAuthConfig {
            enabled: true,
            resource: RESOURCE.into(),
            authorization_servers: vec![ISSUER.into()],
            issuer: Some(ISSUER.into()),
            jwks_url: Some(format!("http://{addr}/jwks")),
            ..OAuthConfig::default()
        }
    }

    fn intro_cfg(addr: SocketAddr) -> OAuthConfig {
        OAuthConfig {
            enabled: true,
            resource: RESOURCE.into(),
            authorization_servers: vec![ISSUER.into()],
            issuer: Some(ISSUER.into()),
            introspection_url: Some(format!("http://{addr}/introspect")),
            ..OAuthConfig::default()
        }
    }

    fn validator(cfg: OAuthConfig) -> TokenValidator {
        TokenValidator::new(cfg, Arc::new(TcpConnector)).expect("validator")
    }

    fn scopes(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn is_invalid(r: &Result<TokenInfo, TokenError>) -> bool {
        matches!(r, Err(TokenError::Invalid(_)))
    }

    // --- JWT ----------------------------------------------------------------

    #[tokio::test]
    async fn jwt_eddsa_valid_with_scopes() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::ed("ed-1");
        idp.set_keys(&[key.jwk(true)]);
        let v = validator(jwt_cfg(addr));
        let c = claims(json!({}));
        let info = v.validate(&key.token(&c)).await.expect("valid token");
        assert_eq!(info.subject.as_deref(), Some("alice@example.com"));
        assert_eq!(info.client_id.as_deref(), Some("mcp-client"));
        assert_eq!(info.scopes, scopes(&["files:read", "system:read"]));
        assert_eq!(info.expires_at, c["exp"].as_u64());
        assert_eq!(info.audience, vec![RESOURCE.to_string()]);
        assert!(info.has_scope("files:read"));
        // The JWKS is cached: a second token costs no fetch.
        let again = key.token(&claims(json!({"scope": "docker:read"})));
        let info = v.validate(&again).await.expect("valid token");
        assert_eq!(info.scopes, scopes(&["docker:read"]));
        assert_eq!(idp.jwks_hits(), 1);
    }

    #[tokio::test]
    async fn jwt_es256_jwk_without_alg_scp_array_and_aud_list() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::ec("ec-1");
        idp.set_keys(&[key.jwk(false)]);
        let v = validator(jwt_cfg(addr));
        let c = claims(json!({
            "scope": null, "client_id": null, "azp": "azp-client",
            "scp": ["files:read", "files:write"],
            "aud": ["https://other.example", RESOURCE],
        }));
        let info = v.validate(&key.token(&c)).await.expect("valid token");
        assert_eq!(info.scopes, scopes(&["files:read", "files:write"]));
        assert_eq!(info.client_id.as_deref(), Some("azp-client"));
        assert_eq!(info.audience.len(), 2);
        // `scp` as a space-separated string works too.
        let c = claims(json!({"scope": null, "scp": "a b"}));
        let info = v.validate(&key.token(&c)).await.expect("valid token");
        assert_eq!(info.scopes, scopes(&["a", "b"]));
    }

    #[tokio::test]
    async fn jwt_rs256_valid_and_no_kid_token_matches_by_alg() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::rsa("rsa-1");
        idp.set_keys(&[key.jwk(true), TestKey::ed("other").jwk(true)]);
        let v = validator(jwt_cfg(addr));
        let info = v.validate(&key.token(&claims(json!({})))).await.expect("valid token");
        assert_eq!(info.scopes, scopes(&["files:read", "system:read"]));
        let no_kid = jwt(&json!({"alg": "RS256"}), &claims(json!({})), |m| key.sign(m));
        v.validate(&no_kid).await.expect("kid-less token");
    }

    #[tokio::test]
    async fn jwt_expired_nbf_and_exp_rules() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::ed("ed-1");
        idp.set_keys(&[key.jwk(true)]);
        let v = validator(jwt_cfg(addr));
        let now = now_secs();
        let expired = key.token(&claims(json!({"exp": now - 120})));
        assert_eq!(v.validate(&expired).await, Err(TokenError::Expired));
        // Within the leeway (30 s) still accepted.
        let skewed = key.token(&claims(json!({"exp": now - 5})));
        v.validate(&skewed).await.expect("within leeway");
        // exp is required.
        let no_exp = key.token(&claims(json!({"exp": null})));
        assert!(is_invalid(&v.validate(&no_exp).await));
        // exp must be a number.
        let bad_exp = key.token(&claims(json!({"exp": "tomorrow"})));
        assert!(is_invalid(&v.validate(&bad_exp).await));
        // Not valid before nbf.
        let early = key.token(&claims(json!({"nbf": now + 3600})));
        assert!(is_invalid(&v.validate(&early).await));
        let ok_nbf = key.token(&claims(json!({"nbf": now - 10})));
        v.validate(&ok_nbf).await.expect("nbf in the past");
    }

    #[tokio::test]
    async fn jwt_wrong_or_missing_audience() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::ed("ed-1");
        idp.set_keys(&[key.jwk(true)]);
        let v = validator(jwt_cfg(addr));
        let other = key.token(&claims(json!({"aud": "https://other.example/mcp"})));
        let r = v.validate(&other).await;
        assert!(matches!(r, Err(TokenError::WrongAudience(ref m)) if m.contains("other.example")));
        let list = key.token(&claims(json!({"aud": ["a", "b"]})));
        assert!(matches!(v.validate(&list).await, Err(TokenError::WrongAudience(_))));
        let none = key.token(&claims(json!({"aud": null})));
        assert!(matches!(v.validate(&none).await, Err(TokenError::WrongAudience(_))));
        // With explicit audiences the resource itself is no longer implied.
        let v2 = validator(OAuthConfig { audiences: vec!["tailops".into()], ..jwt_cfg(addr) });
        v2.validate(&key.token(&claims(json!({"aud": "tailops"})))).await.expect("configured audience");
        assert!(matches!(v2.validate(&key.token(&claims(json!({})))).await, Err(TokenError::WrongAudience(_))));
    }

    #[tokio::test]
    async fn jwt_wrong_or_missing_issuer() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::ed("ed-1");
        idp.set_keys(&[key.jwk(true)]);
        let v = validator(jwt_cfg(addr));
        let wrong = key.token(&claims(json!({"iss": "https://evil.example"})));
        assert!(matches!(v.validate(&wrong).await, Err(TokenError::Invalid(m)) if m.contains("issuer")));
        let missing = key.token(&claims(json!({"iss": null})));
        assert!(is_invalid(&v.validate(&missing).await));
        // Without a configured issuer, iss is not checked.
        let v2 = validator(OAuthConfig { issuer: None, ..jwt_cfg(addr) });
        v2.validate(&wrong).await.expect("issuer unchecked");
    }

    #[tokio::test]
    async fn jwt_bad_signature() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::ed("ed-1");
        idp.set_keys(&[key.jwk(true)]);
        let v = validator(jwt_cfg(addr));
        // Signed by another key claiming the same kid.
        let impostor = TestKey::ed("ed-1");
        let forged = impostor.token(&claims(json!({})));
        assert!(matches!(v.validate(&forged).await, Err(TokenError::Invalid(m)) if m.contains("signature")));
        // Payload swapped after signing.
        let good = key.token(&claims(json!({})));
        let evil_payload = URL_SAFE_NO_PAD.encode(claims(json!({"scope": "admin"})).to_string());
        let mut parts: Vec<&str> = good.split('.').collect();
        parts[1] = &evil_payload;
        assert!(is_invalid(&v.validate(&parts.join(".")).await));
        // Garbage.
        assert!(is_invalid(&v.validate("not-a-jwt").await));
        assert!(is_invalid(&v.validate("a.b.c").await));
    }

    #[tokio::test]
    async fn unknown_kid_refetches_once_and_rotation_works() {
        let (addr, idp) = start_idp().await;
        let old = TestKey::ed("k-old");
        let new = TestKey::ec("k-new");
        idp.set_keys(&[old.jwk(true)]);
        let v = validator(jwt_cfg(addr));
        v.validate(&old.token(&claims(json!({})))).await.expect("old key");
        assert_eq!(idp.jwks_hits(), 1);
        // The IdP rotates: the new kid is unknown, so the JWKS is refetched.
        idp.set_keys(&[new.jwk(true)]);
        v.validate(&new.token(&claims(json!({})))).await.expect("rotated key");
        assert_eq!(idp.jwks_hits(), 2);
        // More unknown kids within 10 s: no further fetches.
        for i in 0..5 {
            let stranger = TestKey::ed(&format!("stranger-{i}"));
            let r = v.validate(&stranger.token(&claims(json!({})))).await;
            assert!(is_invalid(&r), "{r:?}");
        }
        // The retired key is gone from the cache too.
        assert!(is_invalid(&v.validate(&old.token(&claims(json!({})))).await));
        assert_eq!(idp.jwks_hits(), 2);
        // Known kids keep working without fetching.
        v.validate(&new.token(&claims(json!({})))).await.expect("rotated key");
        assert_eq!(idp.jwks_hits(), 2);
    }

    #[tokio::test]
    async fn concurrent_unknown_kids_cause_one_fetch() {
        let (addr, idp) = start_idp().await;
        let key = TestKey::ed("k");
        idp.set_keys(&[key.jwk(true)]);
        let v = Arc::new(validator(jwt_cfg(addr)));
        let token = key.token(&claims(json!({})));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let v = v.clone();
            let token = token.clone();
            tasks.push(tokio::spawn(async move { v.validate(&token).await }));
        }
        for t in tasks {
            t.await.expect("join").expect("valid");
        }
        assert_eq!(idp.jwks_hits(), 1);
    }

    #[tokio::test]
    async fn algorithm_confusion_is_refused() {
        let (addr, idp) = start_idp().await;
        let ed = TestKey::ed("ed-1");
        let ec = TestKey::ec("ec-1");
        let mislabeled = TestKey::ec("ec-says-rs");
        let mut mislabeled_jwk = mislabeled.jwk(false);
        mislabeled_jwk["alg"] = json!("RS256");
        idp.set_keys(&[
            ed.jwk(true),
            ec.jwk(true),
            mislabeled_jwk,
            json!({"kty": "oct", "kid": "hmac", "k": URL_SAFE_NO_PAD.encode(b"secret")}),
        ]);
        let v = validator(jwt_cfg(addr));
        let c = claims(json!({}));

        // alg "none", with and without a kid.
        for header in [json!({"alg": "none"}), json!({"alg": "none", "kid": "ed-1"})] {
            let none = jwt(&header, &c, |_| Vec::new());
            assert!(is_invalid(&v.validate(&none).await), "{header}");
        }
        // HS256 keyed with the Ed25519 public key (classic confusion).
        let KeyKind::Ed(kp) = &ed.kind else { panic!("ed key") };
        let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, kp.public_key().as_ref());
        let hs =
            jwt(&json!({"alg": "HS256", "kid": "ed-1"}), &c, |m| aws_lc_rs::hmac::sign(&hmac_key, m).as_ref().to_vec());
        assert!(is_invalid(&v.validate(&hs).await));
        // HS256 with a symmetric key from the JWKS: never.
        let oct_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret");
        let hs =
            jwt(&json!({"alg": "HS256", "kid": "hmac"}), &c, |m| aws_lc_rs::hmac::sign(&oct_key, m).as_ref().to_vec());
        assert!(is_invalid(&v.validate(&hs).await));
        // ES256 token naming the Ed25519 key's kid.
        let swapped = jwt(&json!({"alg": "ES256", "kid": "ed-1"}), &c, |m| ec.sign(m));
        assert!(matches!(v.validate(&swapped).await, Err(TokenError::Invalid(m)) if m.contains("algorithm")));
        // EdDSA token naming the P-256 key's kid.
        let swapped = jwt(&json!({"alg": "EdDSA", "kid": "ec-1"}), &c, |m| ed.sign(m));
        assert!(is_invalid(&v.validate(&swapped).await));
        // A JWK whose declared alg contradicts its key type is not used.
        assert!(is_invalid(&v.validate(&mislabeled.token(&c)).await));
        // Accepted names outside RS256/ES256/EdDSA are refused.
        let ps = jwt(&json!({"alg": "PS256", "kid": "ed-1"}), &c, |m| ed.sign(m));
        assert!(is_invalid(&v.validate(&ps).await));
        // Critical header extensions are refused.
        let crit = jwt(&json!({"alg": "EdDSA", "kid": "ed-1", "crit": ["exp"], "exp": 1}), &c, |m| ed.sign(m));
        assert!(is_invalid(&v.validate(&crit).await));
        // The genuine tokens still pass.
        v.validate(&ed.token(&c)).await.expect("ed token");
        v.validate(&ec.token(&c)).await.expect("ec token");
        // All of this cost one JWKS fetch plus at most one unknown-kid refetch.
        assert!(idp.jwks_hits() <= 2);
    }

    #[tokio::test]
    async fn jwks_unreachable_slow_oversized_or_broken_is_unavailable() {
        let key = TestKey::ed("ed-1");
        let token = key.token(&claims(json!({})));
        let port = dead_port().await;
        let v = validator(OAuthConfig {
            jwks_url: Some(format!("http://127.0.0.1:{port}/jwks")),
            ..jwt_cfg(SocketAddr::from(([127, 0, 0, 1], port)))
        });
        let r = v.validate(&token).await;
        assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
        assert_eq!(r.expect_err("unavailable").oauth_error_code(), "temporarily_unavailable");
        // Failed fetches are not retried at once.
        assert!(matches!(v.validate(&token).await, Err(TokenError::Unavailable(_))));

        let (addr, _idp) = start_idp().await;
        for (path, what) in [("/slow", "within"), ("/big", "larger"), ("/nope", "404")] {
            let v = validator(OAuthConfig {
                jwks_url: Some(format!("http://{addr}{path}")),
                timeout_secs: 1,
                ..jwt_cfg(addr)
            });
            let started = Instant::now();
            let r = v.validate(&token).await;
            assert!(matches!(&r, Err(TokenError::Unavailable(m)) if m.contains(what)), "{path}: {r:?}");
            assert!(started.elapsed() < Duration::from_secs(3), "{path}");
            // The token never appears in an error.
            assert!(!format!("{r:?}").contains(&token));
        }
    }

    // --- introspection ------------------------------------------------------

    fn active(extra: Value) -> Value {
        let now = now_secs();
        let mut a = json!({
            "active": true, "scope": "services:read services:restart",
            "client_id": "tsidp-client", "sub": "userid:42",
            "aud": [RESOURCE], "iss": ISSUER, "exp": now + 600,
        });
        if let (Some(a), Some(extra)) = (a.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    a.remove(k);
                } else {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
        a
    }

    #[tokio::test]
    async fn introspection_active_inactive_and_basic_auth() {
        let (addr, idp) = start_idp().await;
        let secret = "s3cr:et/+ü";
        let expected_auth =
            format!("Basic {}", STANDARD.encode("tailops%2Did:s3cr%3Aet%2F%2B%C3%BC".replace("%2D", "-")));
        *lock(&idp.required_auth) = Some(expected_auth.clone());
        let token = "opaque-token+/=";
        idp.answer(token, active(json!({})));
        let v = validator(OAuthConfig {
            introspection_client_id: Some("tailops-id".into()),
            introspection_client_secret: Some(secret.into()),
            ..intro_cfg(addr)
        });
        let info = v.validate(token).await.expect("active token");
        assert_eq!(info.subject.as_deref(), Some("userid:42"));
        assert_eq!(info.client_id.as_deref(), Some("tsidp-client"));
        assert_eq!(info.scopes, scopes(&["services:read", "services:restart"]));
        assert_eq!(lock(&idp.last_authorization).clone(), Some(expected_auth));
        let form = lock(&idp.last_form).clone();
        assert_eq!(
            form,
            vec![("token".to_string(), token.to_string()), ("token_type_hint".to_string(), "access_token".to_string()),]
        );

        let r = v.validate("revoked-token").await;
        assert!(matches!(r, Err(TokenError::Invalid(ref m)) if m.contains("not active")), "{r:?}");

        // Wrong client credentials: the endpoint refuses us → 503, not 401.
        let bad = validator(OAuthConfig {
            introspection_client_id: Some("tailops-id".into()),
            introspection_client_secret: Some("wrong".into()),
            ..intro_cfg(addr)
        });
        let r = bad.validate(token).await;
        assert!(matches!(r, Err(TokenError::Unavailable(ref m)) if m.contains("401")), "{r:?}");
    }

    #[tokio::test]
    async fn introspection_without_client_auth_sends_none() {
        let (addr, idp) = start_idp().await;
        idp.answer("t1", active(json!({})));
        let v = validator(intro_cfg(addr));
        v.validate("t1").await.expect("active");
        assert_eq!(lock(&idp.last_authorization).clone(), None);
    }

    #[tokio::test]
    async fn introspection_caches_positive_results_only() {
        let (addr, idp) = start_idp().await;
        idp.answer("good", active(json!({})));
        let v = validator(intro_cfg(addr));
        for _ in 0..3 {
            v.validate("good").await.expect("active");
        }
        assert_eq!(idp.introspect_hits(), 1);
        // The cache is keyed by hash, never by the token itself.
        let src = v.introspection.as_ref().expect("introspection");
        let key: [u8; 32] = Sha256::digest(b"good").into();
        assert!(lock(&src.cache).contains_key(&key));
        // Inactive answers are not cached.
        for _ in 0..2 {
            assert!(is_invalid(&v.validate("bad").await));
        }
        assert_eq!(idp.introspect_hits(), 3);
        // A cached answer never outlives the token's exp.
        let now = now_secs();
        idp.answer("short", active(json!({"exp": now + 1})));
        v.validate("short").await.expect("active");
        v.validate("short").await.expect("active");
        assert_eq!(idp.introspect_hits(), 4);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let _ = v.validate("short").await;
        assert_eq!(idp.introspect_hits(), 5);
        // introspection_cache_secs = 0 disables caching.
        let nocache = validator(OAuthConfig { introspection_cache_secs: 0, ..intro_cfg(addr) });
        nocache.validate("good").await.expect("active");
        nocache.validate("good").await.expect("active");
        assert_eq!(idp.introspect_hits(), 7);
    }

    #[tokio::test]
    async fn introspection_checks_exp_aud_iss() {
        let (addr, idp) = start_idp().await;
        let now = now_secs();
        idp.answer("expired", active(json!({"exp": now - 3600})));
        idp.answer("other-aud", active(json!({"aud": "https://elsewhere/mcp"})));
        idp.answer("no-aud", active(json!({"aud": null})));
        idp.answer("other-iss", active(json!({"iss": "https://evil"})));
        idp.answer("no-exp", active(json!({"exp": null, "aud": RESOURCE})));
        idp.answer("bad-exp", active(json!({"exp": "soon"})));
        idp.answer("early", active(json!({"nbf": now + 3600})));
        idp.answer("no-active", json!({"scope": "x", "aud": RESOURCE}));
        let v = validator(intro_cfg(addr));
        assert_eq!(v.validate("expired").await, Err(TokenError::Expired));
        assert!(matches!(v.validate("other-aud").await, Err(TokenError::WrongAudience(_))));
        assert!(matches!(v.validate("no-aud").await, Err(TokenError::WrongAudience(_))));
        assert!(is_invalid(&v.validate("other-iss").await));
        assert!(is_invalid(&v.validate("early").await));
        let info = v.validate("no-exp").await.expect("exp is optional");
        assert_eq!(info.expires_at, None);
        assert!(matches!(v.validate("bad-exp").await, Err(TokenError::Unavailable(_))));
        assert!(matches!(v.validate("no-active").await, Err(TokenError::Unavailable(_))));
    }

    #[tokio::test]
    async fn introspection_unreachable_or_slow_is_unavailable() {
        let port = dead_port().await;
        let v = validator(intro_cfg(SocketAddr::from(([127, 0, 0, 1], port))));
        let r = v.validate("some-token").await;
        assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
        assert!(!format!("{r:?}").contains("some-token"));

        let (addr, _idp) = start_idp().await;
        let v = validator(OAuthConfig {
            introspection_url: Some(format!("http://{addr}/slow")),
            timeout_secs: 1,
            ..intro_cfg(addr)
        });
        let started = Instant::now();
        // /slow is GET-only: a POST gets 405 at once; still Unavailable.
        let r = v.validate("some-token").await;
        assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

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

    #[test]
    fn introspection_cache_is_bounded() {
        let src = IntrospectionSource {
            url: String::new(),
            target: HttpTarget::parse("http://127.0.0.1/").expect("url"),
            basic_auth: None,
            cache_ttl: Duration::from_secs(30),
            cache: Mutex::new(HashMap::new()),
            permits: tokio::sync::Semaphore::new(1),
        };
        let info =
            TokenInfo { subject: None, client_id: None, scopes: BTreeSet::new(), expires_at: None, audience: vec![] };
        for i in 0..(INTROSPECTION_CACHE_MAX_ENTRIES + 50) {
            let key: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
            let ttl = Duration::from_secs(60 + i as u64);
            cache_put(&src, key, info.clone(), ttl);
        }
        let cache = lock(&src.cache);
        assert_eq!(cache.len(), INTROSPECTION_CACHE_MAX_ENTRIES);
        // The ones expiring first were evicted; the newest is there.
        let first: [u8; 32] = Sha256::digest(0usize.to_le_bytes()).into();
        let last: [u8; 32] = Sha256::digest((INTROSPECTION_CACHE_MAX_ENTRIES + 49).to_le_bytes()).into();
        assert!(!cache.contains_key(&first));
        assert!(cache.contains_key(&last));
    }

    // --- HTTPS --------------------------------------------------------------

    /// Dials 127.0.0.1:port whatever host is asked (like the tailnet dialer
    /// resolves names itself), recording the hosts.
    struct LoopbackConnector {
        hosts: Mutex<Vec<String>>,
    }

    impl Connector for LoopbackConnector {
        fn connect(&self, host: &str, port: u16) -> ConnectFuture {
            lock(&self.hosts).push(host.to_owned());
            TcpConnector.connect("127.0.0.1", port)
        }
    }

    async fn start_tls_jwks(jwks: Value) -> (u16, CertificateDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec!["idp.test".to_string()]).expect("self-signed cert");
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = Bytes::from(jwks.to_string());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |_req| {
                        let body = body.clone();
                        async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(body))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                });
            }
        });
        (port, cert)
    }

    #[tokio::test]
    async fn https_jwks_through_a_custom_connector() {
        let key = TestKey::ed("ed-1");
        let (port, cert) = start_tls_jwks(json!({"keys": [key.jwk(true)]})).await;
        let cfg = OAuthConfig {
            jwks_url: Some(format!("https://idp.test:{port}/.well-known/jwks.json")),
            ..jwt_cfg(SocketAddr::from(([127, 0, 0, 1], port)))
        };
        let token = key.token(&claims(json!({})));

        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("root");
        let connector = Arc::new(LoopbackConnector { hosts: Mutex::new(Vec::new()) });
        let v = TokenValidator::with_roots(cfg.clone(), connector.clone(), roots).expect("validator");
        v.validate(&token).await.expect("valid over https");
        assert_eq!(lock(&connector.hosts).clone(), vec!["idp.test".to_string()]);

        // With the public (webpki) roots the self-signed server is refused.
        let v = TokenValidator::new(cfg, connector).expect("validator");
        let r = v.validate(&token).await;
        assert!(matches!(r, Err(TokenError::Unavailable(ref m)) if m.contains("TLS")), "{r:?}");
    }

    // --- config, metadata, headers -----------------------------------------

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
    fn url_targets() {
        let t = HttpTarget::parse("https://idp.example.ts.net/oauth/introspect?x=1").expect("url");
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("idp.example.ts.net", 443));
        assert_eq!(t.authority, "idp.example.ts.net");
        assert_eq!(t.path_and_query, "/oauth/introspect?x=1");
        let t = HttpTarget::parse("http://[::1]:8080").expect("url");
        assert_eq!((t.host.as_str(), t.port, t.path_and_query.as_str()), ("::1", 8080, "/"));
        assert_eq!(t.authority, "[::1]:8080");
        assert!(HttpTarget::parse("http://h/x#frag").is_err());
        assert!(HttpTarget::parse("//h/x").is_err());
    }

    #[test]
    fn metadata_shape() {
        let cfg = OAuthConfig {
            enabled: true,
            resource: RESOURCE.into(),
            authorization_servers: vec![ISSUER.into()],
            scopes_supported: vec!["files:read".into(), "system:read".into()],
            ..OAuthConfig::default()
        };
        assert_eq!(
            protected_resource_metadata(&cfg),
            json!({
                "resource": RESOURCE,
                "authorization_servers": [ISSUER],
                "scopes_supported": ["files:read", "system:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "tailops",
            })
        );
        // No scopes: the member is left out; no servers: the issuer is used.
        let cfg = OAuthConfig { resource: RESOURCE.into(), issuer: Some(ISSUER.into()), ..OAuthConfig::default() };
        let doc = protected_resource_metadata(&cfg);
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        assert!(doc.get("scopes_supported").is_none());
    }

    #[test]
    fn www_authenticate_format_and_escaping() {
        let url = "https://ops.example.ts.net/.well-known/oauth-protected-resource/mcp";
        assert_eq!(www_authenticate(url, None, None), format!("Bearer resource_metadata=\"{url}\""));
        assert_eq!(
            www_authenticate(url, Some("files:read files:write"), Some(("insufficient_scope", "needs files:write"))),
            format!(
                "Bearer resource_metadata=\"{url}\", scope=\"files:read files:write\", \
                 error=\"insufficient_scope\", error_description=\"needs files:write\""
            )
        );
        assert_eq!(
            www_authenticate(url, None, Some(("invalid_token", ""))),
            format!("Bearer resource_metadata=\"{url}\", error=\"invalid_token\"")
        );
        let nasty =
            www_authenticate("https://h/\"x\\", None, Some(("invalid_token", "bad \"quote\"\r\nSet-Cookie: a=b ü")));
        assert_eq!(
            nasty,
            "Bearer resource_metadata=\"https://h/\\\"x\\\\\", error=\"invalid_token\", \
             error_description=\"bad \\\"quote\\\"??Set-Cookie: a=b ?\""
        );
        assert!(hyper::header::HeaderValue::from_str(&nasty).is_ok());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_from_header("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_from_header("bearer abc"), Some("abc"));
        assert_eq!(bearer_from_header("BEARER   abc  "), Some("abc"));
        assert_eq!(bearer_from_header("Bearer\tabc"), Some("abc"));
        assert_eq!(bearer_from_header("Bearer"), None);
        assert_eq!(bearer_from_header("Bearer "), None);
        assert_eq!(bearer_from_header("Bearer    "), None);
        assert_eq!(bearer_from_header("Bearer a b"), None);
        assert_eq!(bearer_from_header("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer_from_header("Bearerabc"), None);
        assert_eq!(bearer_from_header(""), None);
        assert_eq!(bearer_from_header("DPoP abc"), None);
    }

    #[test]
    fn errors_map_to_oauth_codes() {
        for (e, code, status) in [
            (TokenError::Invalid("x".into()), "invalid_token", 401),
            (TokenError::Expired, "invalid_token", 401),
            (TokenError::WrongAudience("x".into()), "invalid_token", 401),
            (TokenError::Unavailable("x".into()), "temporarily_unavailable", 503),
        ] {
            assert_eq!((e.oauth_error_code(), e.http_status()), (code, status), "{e}");
        }
    }

    #[test]
    fn helpers() {
        let mut s = String::new();
        form_urlencode_into(&mut s, "a b+c/=&~é");
        assert_eq!(s, "a+b%2Bc%2F%3D%26%7E%C3%A9");
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.e30."));
        assert!(!looks_like_jwt("abc.def.ghi"), "header is not JSON");
        assert!(!looks_like_jwt("eyJhbGciOiJub25lIn0.e30"));
        assert!(!looks_like_jwt("eyJhbGciOiJub25lIn0.e30.a.b"));
        assert!(!looks_like_jwt("opaque-token"));
        assert_eq!(numeric_date(&json!(12)), Some(12));
        assert_eq!(numeric_date(&json!(12.7)), Some(12));
        assert_eq!(numeric_date(&json!(-1)), None);
        assert_eq!(numeric_date(&json!("12")), None);
    }
}
