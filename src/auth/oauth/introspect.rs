//! RFC 7662 token introspection, for opaque tokens (e.g. tsidp's): the
//! request, the answer's checks, and the bounded cache of positive answers
//! (keyed by the token's SHA-256, never by the token).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, StatusCode, header};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::client::HttpTarget;
use super::token::{StringOrList, TokenError, TokenInfo, now_secs, numeric_date};
use super::{OAuthConfig, TokenValidator, lock};

/// Most positive introspection results kept in the cache at once.
pub const INTROSPECTION_CACHE_MAX_ENTRIES: usize = 10_000;
/// Most introspection requests in flight at once.
pub const MAX_CONCURRENT_INTROSPECTIONS: usize = 32;

pub(super) struct IntrospectionSource {
    pub(super) url: String,
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

impl IntrospectionSource {
    pub(super) fn new(url: &str, cfg: &OAuthConfig) -> Result<Self, String> {
        let basic_auth = cfg.introspection_client_id.as_ref().map(|id| {
            // RFC 6749 §2.3.1: both parts form-urlencoded first.
            let mut creds = String::new();
            form_urlencode_into(&mut creds, id);
            creds.push(':');
            form_urlencode_into(&mut creds, cfg.introspection_client_secret.as_deref().unwrap_or(""));
            format!("Basic {}", STANDARD.encode(creds))
        });
        Ok(Self {
            url: url.to_owned(),
            target: HttpTarget::parse(url)?,
            basic_auth,
            cache_ttl: Duration::from_secs(cfg.introspection_cache_secs),
            cache: Mutex::new(HashMap::new()),
            permits: tokio::sync::Semaphore::new(MAX_CONCURRENT_INTROSPECTIONS),
        })
    }
}

impl TokenValidator {
    pub(super) async fn introspect(&self, src: &IntrospectionSource, token: &str) -> Result<TokenInfo, TokenError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeSet;
    use std::net::SocketAddr;

    use serde_json::json;

    use crate::auth::oauth::testkit::*;

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
        // A cached answer never outlives the token's exp. exp is in whole
        // seconds, so the token gets 2 s: with 1 s a second boundary crossed
        // between this line and the server's clock read leaves a zero TTL
        // (nothing cached), which made this test flaky on a loaded CI box.
        let now = now_secs();
        idp.answer("short", active(json!({"exp": now + 2})));
        v.validate("short").await.expect("active");
        v.validate("short").await.expect("active");
        assert_eq!(idp.introspect_hits(), 4);
        // Past exp (but within the leeway, so still accepted): the cache
        // entry must be gone and the endpoint asked again.
        tokio::time::sleep(Duration::from_millis(2100)).await;
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
        let (_held, port) = dead_port();
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
        // A give-up bound: the 405 comes at once; /slow would answer after 60 s.
        assert!(started.elapsed() < Duration::from_secs(30));
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

    #[test]
    fn form_urlencoding() {
        let mut s = String::new();
        form_urlencode_into(&mut s, "a b+c/=&~é");
        assert_eq!(s, "a+b%2Bc%2F%3D%26%7E%C3%A9");
    }
}
