//! JWT access tokens, verified locally with the JWKS keys: the accepted
//! algorithms, the claims read, and how jsonwebtoken's errors are told.

use std::collections::BTreeSet;

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::TokenValidator;
use super::jwks::JwksSource;
use super::token::{StringOrList, TokenError, TokenInfo, numeric_date};

/// JWS algorithms accepted; the key's own algorithm must match the token's.
const ACCEPTED_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

impl TokenValidator {
    pub(super) async fn validate_jwt(&self, src: &JwksSource, token: &str) -> Result<TokenInfo, TokenError> {
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

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use crate::auth::oauth::testkit::*;
    use crate::auth::oauth::token::now_secs;
    use crate::auth::oauth::{OAuthConfig, TokenError};

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
}
