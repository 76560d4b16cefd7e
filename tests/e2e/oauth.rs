//! OAuth 2.1 resource server over real HTTP: a JWKS served on loopback by
//! the test (Ed25519 key made per run), tokens signed here, tailops in
//! dev-listen mode validating them. Effective scopes = identity ∩ token;
//! a missing scope the identity holds is a 403 step-up.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::mcp::{Client, Via, get};
use crate::support::server::ServerProcess;

struct Idp {
    key: Ed25519KeyPair,
    url: String,
}

impl Idp {
    async fn start() -> Self {
        let key = Ed25519KeyPair::generate().expect("key");
        let jwks = json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
            "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
        }]});
        let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { axum::Json(jwks) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Idp { key, url }
    }

    fn token(&self, aud: &str, scope: &str, exp_offset: i64) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() as i64;
        let header = json!({"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"});
        let claims = json!({"iss": self.url, "sub": "alice", "aud": aud, "scope": scope,
            "iat": now, "exp": now + exp_offset, "client_id": "test-client"});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn config(idp: &Idp, roles: &str) -> String {
    format!(
        "[local]\nname = \"dev\"\nroles = [{roles}]\n\n[oauth]\nenabled = true\nissuer = \"{u}\"\n\
         authorization_servers = [\"{u}\"]\njwks_url = \"{u}/jwks\"\nscopes_supported = [\"system:read\", \"processes:signal\"]\n",
        u = idp.url
    )
}

fn bearer(c: &mut Client, token: &str) {
    c.extra_headers.retain(|(k, _)| k != "authorization");
    c.extra_headers.push(("authorization".into(), format!("Bearer {token}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_narrow_scopes_and_missing_scopes_step_up() {
    let idp = Idp::start().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &config(&idp, "\"admin\""), &[]);
    let host = addr.to_string();
    let resource = format!("http://{addr}/mcp");
    let via = Via::Tcp(addr);

    // RFC 9728 metadata.
    let meta = get(&via, &host, "/.well-known/oauth-protected-resource/mcp").await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.body["resource"], resource.as_str());
    assert_eq!(meta.body["authorization_servers"], json!([idp.url]));

    // No token: 401 pointing at the metadata.
    let mut c = Client::new(via.clone(), &host);
    let r = c.initialize().await;
    assert_eq!(r.status, 401, "{}", r.body);
    let www = r.header("www-authenticate").unwrap_or_default();
    assert!(www.starts_with("Bearer "), "{www}");
    assert!(
        www.contains(&format!("resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\"")),
        "{www}"
    );

    // Wrong audience and expired tokens: 401 invalid_token.
    for bad in [idp.token("http://other.example/mcp", "system:read", 300), idp.token(&resource, "system:read", -600)] {
        bearer(&mut c, &bad);
        let r = c.initialize().await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.header("www-authenticate").unwrap_or_default().contains("error=\"invalid_token\""));
    }

    // A token with system:read only: reads work, whoami shows the narrowing.
    bearer(&mut c, &idp.token(&resource, "system:read", 300));
    assert_eq!(c.initialize().await.status, 200);
    let r = c.call("server_info", json!({})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    let w = c.call("whoami", json!({})).await;
    assert_eq!(w.structured()["token_scopes"], json!(["system:read"]));
    assert_eq!(w.structured()["effective_scopes"], json!(["system:read"]));

    // A tool whose scope the identity holds but the token lacks: 403 step-up.
    let r = c.call("process_signal", json!({"pid": 999_999_999})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let www = r.header("www-authenticate").unwrap_or_default();
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(www.contains("processes:signal"), "{www}");

    // With the scope in the token, the call reaches the tool.
    bearer(&mut c, &idp.token(&resource, "system:read processes:signal", 300));
    // (The tool itself refuses the pid: above the kernel's PID_MAX_LIMIT.)
    let r = c.call("process_signal", json!({"pid": 999_999_999})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.error_category(), Some("invalid_input"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_scopes_never_exceed_the_identity() {
    let idp = Idp::start().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &config(&idp, "\"viewer\""), &[]);
    let host = addr.to_string();
    let mut c = Client::new(Via::Tcp(addr), &host);
    bearer(&mut c, &idp.token(&format!("http://{addr}/mcp"), "system:read processes:signal audit:read", 300));
    assert_eq!(c.initialize().await.status, 200);
    let names = c.tool_names().await;
    // Issue 9: the list is exactly what this request could call — the
    // identity's scopes (viewer) narrowed by the token's (system:read):
    // neither the token's extra scopes nor the identity's other read
    // scopes (docker:read …) show.
    let mut callable: Vec<String> = tailops::tools::all_specs()
        .iter()
        .filter(|s| s.scope.is_none_or(|sc| sc == tailops::auth::scopes::Scope::SystemRead))
        .map(|s| s.name.to_string())
        .collect();
    callable.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, callable, "a token cannot add scopes, and lists only what it can call");
    assert!(!names.iter().any(|n| n == "container_list" || n == "process_signal" || n == "audit_tail"), "{names:?}");
    let r = c.call("process_signal", json!({"pid": 999_999_999})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "{}", r.body);
    let w: Value = c.call("whoami", json!({})).await.structured().clone();
    assert_eq!(w["effective_scopes"], json!(["system:read"]));
}

/// Issue 9: expired or invalid tokens are counted apart from scope
/// denials, against their own higher threshold. Before, 10 retries of an
/// expired token blocked the user for 300 s as if they had probed scopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_do_not_count_as_denials() {
    let idp = Idp::start().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!("{}\n[limits.rate]\nmax_denials = 3\nmax_token_failures = 6\n", config(&idp, "\"viewer\""));
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let host = addr.to_string();
    let aud = format!("http://{addr}/mcp");
    let mut c = Client::new(Via::Tcp(addr), &host);
    bearer(&mut c, &idp.token(&aud, "system:read", -60));
    // Five stale tokens (more than max_denials): each a 401, never a block.
    for i in 0..5 {
        let r = c.initialize().await;
        assert_eq!(r.status, 401, "stale token #{i}: {}", r.body);
    }
    bearer(&mut c, &idp.token(&aud, "system:read", 300));
    assert_eq!(c.initialize().await.status, 200, "a fresh token works right away");
    assert!(!c.call("server_info", json!({})).await.is_tool_error());
    // The token threshold still bounds a stream of bad tokens.
    bearer(&mut c, "not-a-jwt");
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(c.initialize().await.status);
    }
    assert_eq!(codes.last(), Some(&429), "blocked after max_token_failures bad tokens: {codes:?}");
}

/// Issue 9: a JWKS or introspection URL over plain http:// to a host that
/// is neither loopback nor on the tailnet would carry tokens (and the
/// client secret) in cleartext: `serve` refuses to start, naming the key,
/// the value and the fix, before it listens.
#[test]
fn cleartext_http_to_an_off_tailnet_authorization_server_is_refused_at_start() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().expect("tmp");
    for (key, url) in [("introspection_url", "http://10.0.0.1/introspect"), ("jwks_url", "http://idp.example.com/jwks")]
    {
        let cfg_path = tmp.path().join("tailops.toml");
        let cfg = format!(
            "[oauth]\nenabled = true\nauthorization_servers = [\"https://idp.example.com\"]\n{key} = \"{url}\"\n\
             introspection_client_id = \"tailops\"\nintrospection_client_secret = \"hunter2\"\n"
        );
        std::fs::write(&cfg_path, cfg).expect("write config");
        let mut child = Command::new(ServerProcess::bin())
            .args(["serve", "--dev-listen", "127.0.0.1:0", "--config"])
            .arg(&cfg_path)
            .arg("--state-dir")
            .arg(tmp.path().join("state"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tailops serve");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{key} = {url:?}: tailops kept running");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
        assert!(!status.success(), "{stderr}");
        assert!(stderr.contains(&format!("oauth.{key} = \"{url}\"")), "{stderr}");
        assert!(stderr.contains("Use https://"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(!stderr.contains("listen_addr") && !stderr.contains("dev server ready"), "{stderr}");
    }
}
