//! The JWKS: fetching the authorization server's public keys, caching
//! them, and the refetch rule (stale keys, or an unknown `kid` at most every
//! [`JWKS_MIN_REFETCH_INTERVAL`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::client::HttpTarget;
use super::token::TokenError;
use super::{TokenValidator, lock};

/// A token whose `kid` is not in the cached JWKS triggers a JWKS refetch at
/// most this often (so unknown-`kid` tokens can't make us an amplifier); a
/// failed JWKS fetch is not retried sooner either.
pub const JWKS_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Most keys taken from one JWKS document (the rest are ignored).
pub const MAX_JWKS_KEYS: usize = 64;

pub(super) struct JwksSource {
    pub(super) url: String,
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

pub(super) struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    pub(super) key: DecodingKey,
}

impl JwksSource {
    pub(super) fn new(url: &str, ttl: Duration) -> Result<Self, String> {
        Ok(Self {
            url: url.to_owned(),
            target: HttpTarget::parse(url)?,
            ttl,
            state: Mutex::new(JwksState::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        })
    }
}

impl TokenValidator {
    /// The keys that may have signed a token with this `kid` and `alg`,
    /// fetching the JWKS when stale or when `kid` is unknown (rate-limited).
    pub(super) async fn jwks_candidates(
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

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use serde_json::json;

    use crate::auth::oauth::testkit::*;
    use crate::auth::oauth::{OAuthConfig, TokenError};

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
    async fn jwks_unreachable_slow_oversized_or_broken_is_unavailable() {
        let key = TestKey::ed("ed-1");
        let token = key.token(&claims(json!({})));
        let (_held, port) = dead_port();
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
            // A give-up bound (the timeout is 1 s; /slow answers after 60 s).
            assert!(started.elapsed() < Duration::from_secs(30), "{path}");
            // The token never appears in an error.
            assert!(!format!("{r:?}").contains(&token));
        }
    }
}
