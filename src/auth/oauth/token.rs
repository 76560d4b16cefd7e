//! What a token is: its syntax, the claim shapes JWTs and introspection
//! answers share, and what validation answers ([`TokenInfo`] or
//! [`TokenError`]).

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Longest bearer token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

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

/// RFC 6750 `b68token` characters, bounded length.
pub(super) fn check_token_syntax(token: &str) -> Result<(), TokenError> {
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
pub(super) fn looks_like_jwt(token: &str) -> bool {
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
pub(super) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }

    /// Scopes: a space-separated string, or a list (whose items may also
    /// hold space-separated scopes).
    pub(super) fn into_scopes(self) -> BTreeSet<String> {
        self.into_vec().iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

/// An RFC 7519 NumericDate (integer or fractional seconds) as whole seconds.
pub(super) fn numeric_date(v: &serde_json::Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 { Some(f as u64) } else { None }
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

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
    fn token_shapes_and_numeric_dates() {
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
