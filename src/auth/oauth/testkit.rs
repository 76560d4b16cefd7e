//! Test fixtures shared by the oauth unit tests: signing keys, signed
//! tokens, and a small authorization server (JWKS + introspection) on
//! 127.0.0.1.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::token::now_secs;
use super::{MAX_RESPONSE_BYTES, OAuthConfig, TcpConnector, TokenError, TokenInfo, TokenValidator, lock};

pub(super) const RESOURCE: &str = "https://ops.example.ts.net/mcp";
pub(super) const ISSUER: &str = "https://idp.example.ts.net";

// --- signing keys (generated per test with aws-lc-rs) -------------------

pub(super) enum KeyKind {
    Ed(sig::Ed25519KeyPair),
    Ec(sig::EcdsaKeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

pub(super) struct TestKey {
    pub(super) kid: String,
    pub(super) kind: KeyKind,
}

impl TestKey {
    pub(super) fn ed(kid: &str) -> Self {
        let kp = sig::Ed25519KeyPair::generate().expect("ed25519 key");
        Self { kid: kid.into(), kind: KeyKind::Ed(kp) }
    }

    pub(super) fn ec(kid: &str) -> Self {
        let kp = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).expect("p256 key");
        Self { kid: kid.into(), kind: KeyKind::Ec(kp) }
    }

    pub(super) fn rsa(kid: &str) -> Self {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa key");
        Self { kid: kid.into(), kind: KeyKind::Rsa(kp) }
    }

    pub(super) fn alg(&self) -> &'static str {
        match self.kind {
            KeyKind::Ed(_) => "EdDSA",
            KeyKind::Ec(_) => "ES256",
            KeyKind::Rsa(_) => "RS256",
        }
    }

    pub(super) fn jwk(&self, with_alg: bool) -> Value {
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

    pub(super) fn sign(&self, msg: &[u8]) -> Vec<u8> {
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

    pub(super) fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "kid": self.kid, "typ": "at+jwt"});
        jwt(&header, claims, |m| self.sign(m))
    }
}

pub(super) fn jwt(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let msg = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = sign(msg.as_bytes());
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(signature))
}

pub(super) fn claims(extra: Value) -> Value {
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
pub(super) struct Idp {
    pub(super) jwks: Mutex<Value>,
    pub(super) jwks_hits: AtomicUsize,
    pub(super) introspect_hits: AtomicUsize,
    pub(super) last_authorization: Mutex<Option<String>>,
    pub(super) last_form: Mutex<Vec<(String, String)>>,
    /// token → introspection answer; unknown tokens are inactive.
    pub(super) answers: Mutex<HashMap<String, Value>>,
    /// When set, introspection needs exactly this Authorization header.
    pub(super) required_auth: Mutex<Option<String>>,
}

impl Idp {
    pub(super) fn set_keys(&self, keys: &[Value]) {
        *lock(&self.jwks) = json!({ "keys": keys });
    }
    pub(super) fn answer(&self, token: &str, answer: Value) {
        lock(&self.answers).insert(token.into(), answer);
    }
    pub(super) fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
    pub(super) fn introspect_hits(&self) -> usize {
        self.introspect_hits.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(idp): State<Arc<Idp>>) -> axum::Json<Value> {
    idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
    axum::Json(lock(&idp.jwks).clone())
}

async fn serve_introspect(State(idp): State<Arc<Idp>>, headers: HeaderMap, body: String) -> axum::response::Response {
    idp.introspect_hits.fetch_add(1, Ordering::SeqCst);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    *lock(&idp.last_authorization) = auth.clone();
    let form = form_decode(&body);
    *lock(&idp.last_form) = form.clone();
    if let Some(required) = lock(&idp.required_auth).clone()
        && auth.as_deref() != Some(required.as_str())
    {
        return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let token = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v.clone()).unwrap_or_default();
    let answer = lock(&idp.answers).get(&token).cloned().unwrap_or_else(|| json!({"active": false}));
    axum::Json(answer).into_response()
}

/// Answers after a minute: far beyond any client timeout a test sets, so a
/// test can bound its wait generously and still tell the timeout worked.
async fn serve_slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(60)).await;
    "{}"
}

async fn serve_big() -> String {
    "x".repeat(MAX_RESPONSE_BYTES + 10)
}

pub(super) async fn start_idp() -> (SocketAddr, Arc<Idp>) {
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

/// A loopback port nothing listens on: bound but never listening, by the
/// returned socket, which the test holds so that no test running in
/// parallel can take the port (one released right after binding could be).
pub(super) fn dead_port() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().expect("socket");
    s.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    let port = s.local_addr().expect("addr").port();
    (s, port)
}

pub(super) fn jwt_cfg(addr: SocketAddr) -> OAuthConfig {
    OAuthConfig {
        enabled: true,
        resource: RESOURCE.into(),
        authorization_servers: vec![ISSUER.into()],
        issuer: Some(ISSUER.into()),
        jwks_url: Some(format!("http://{addr}/jwks")),
        ..OAuthConfig::default()
    }
}

pub(super) fn intro_cfg(addr: SocketAddr) -> OAuthConfig {
    OAuthConfig {
        enabled: true,
        resource: RESOURCE.into(),
        authorization_servers: vec![ISSUER.into()],
        issuer: Some(ISSUER.into()),
        introspection_url: Some(format!("http://{addr}/introspect")),
        ..OAuthConfig::default()
    }
}

pub(super) fn validator(cfg: OAuthConfig) -> TokenValidator {
    TokenValidator::new(cfg, Arc::new(TcpConnector)).expect("validator")
}

pub(super) fn scopes(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub(super) fn is_invalid(r: &Result<TokenInfo, TokenError>) -> bool {
    matches!(r, Err(TokenError::Invalid(_)))
}

pub(super) fn active(extra: Value) -> Value {
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
