//! `serve --https` and `serve --register-as-service` against our test
//! control plane (`support::testcontrol`: tailscale's testcontrol + pebble
//! as the ACME CA), for what headscale cannot do: the node gets its
//! MagicDNS certificate by ACME (DNS-01 through the control's SetDNS), real
//! HTTPS clients validate it against the test CA (and fail without it),
//! and a client reaches TailOps by the Service name with its own identity.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tailops::tailnet::Node;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::support::client::{self, dial_retry};
use crate::support::server::{ServeOpts, ServerProcess};
use crate::support::testcontrol::{DOMAIN, TestControl};

/// Every caller is an admin (a grant `src: *, dst: *`): these tests are
/// about reaching TailOps, the identity it sees, and TLS; authorization is
/// tested against headscale's real grants elsewhere.
fn grants() -> Value {
    json!({ crate::support::headscale::CAP: [ { "roles": ["admin"] } ] })
}

/// testcontrol needs no auth key; tsnet and our CLI want one to join
/// ephemerally, and testcontrol ignores its value.
const ANY_KEY: &str = "tskey-unused-by-testcontrol";

/// `tailops ARGS` as a client node of `tc`'s tailnet.
fn tailops(tc: &TestControl, client: &str, args: &[&str]) -> Output {
    Command::new(ServerProcess::bin())
        .args(args)
        .args(["--control-url", &tc.url, "--client-hostname", client])
        .env("TS_AUTHKEY", ANY_KEY)
        .env_remove("TS_AUTH_KEY")
        .env_remove("SSL_CERT_FILE")
        .env("TS_DEBUG_USE_DERP_HTTP", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run tailops")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn roots(pem: &Path) -> RootCertStore {
    let mut r = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pem).expect("read PEM") {
        r.add(c.expect("PEM cert")).expect("add root");
    }
    r
}

fn connector(roots: RootCertStore) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

/// One HTTP/1.1 GET on `stream`: status, headers, body.
async fn get<S>(stream: S, host: &str, path: &str) -> hyper::Response<Bytes>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(path).header("host", host).body(Empty::<Bytes>::new()).expect("request");
    let res = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
        .await
        .expect("response within 60 s")
        .expect("response");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    drop(sender);
    driver.abort();
    hyper::Response::from_parts(parts, body)
}

fn start_https(tc: &TestControl, hostname: &str, state: &Path) -> ServerProcess {
    start_https_with(tc, hostname, state, None, &[])
}

fn start_https_with(
    tc: &TestControl,
    hostname: &str,
    state: &Path,
    tags: Option<&str>,
    extra: &[&str],
) -> ServerProcess {
    let env = tc.acme_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServerProcess::start_env(
        ServeOpts {
            hostname,
            control_url: &tc.url,
            state_dir: state,
            auth_key: None,
            tags,
            ephemeral: true,
            extra_args: ["--https"].iter().chain(extra).map(|s| s.to_string()).collect(),
        },
        &env,
    )
}

/// The node gets its certificate from the ACME CA on the first handshake;
/// the certificate names exactly the node's MagicDNS name and chains to
/// the CA's root; our own CLI completes a call with that root as
/// `--ca-file` and refuses the server without it; a client trusting
/// another CA fails validation; plain HTTP answers 308 to the https URL;
/// HTTPS answers carry HSTS; the MCP URL printed at start is the https one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_acme_certificate_for_the_magicdns_name_and_clients_validate_it() {
    let tc = TestControl::start(&grants(), &[]);
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sp = start_https(&tc, "ops-tls", &tmp.path().join("state"));
    let name = format!("ops-tls.{DOMAIN}");
    assert_eq!(sp.dns_name, name);
    let ready = sp.seen.iter().find(|v| v.get("dns_name").is_some()).cloned().expect("ready line");
    assert_eq!(ready["url"].as_str(), Some(format!("https://{name}/mcp").as_str()), "{ready}");
    assert_eq!(ready["port"], 443, "{ready}");

    // A client node in this process looks at the certificate itself (its
    // first handshake is what makes the node fetch the certificate by
    // ACME; the dial is retried within a give-up bound).
    let node: Node = client::node("tls-probe", &tc.url, ANY_KEY, &tmp.path().join("probe")).await;
    let server_name = ServerName::try_from(name.clone()).expect("server name");
    let s = dial_retry(&node, &format!("{name}:443"), Duration::from_secs(60)).await;
    let tls = connector(roots(&tc.issuing_root)).connect(server_name.clone(), s).await.expect("TLS handshake");
    let leaf = tls.get_ref().1.peer_certificates().expect("peer certificates")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("parse leaf");
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .expect("SAN extension")
        .expect("SAN present")
        .value
        .general_names
        .iter()
        .map(|g| g.to_string())
        .collect();
    assert_eq!(sans, vec![format!("DNSName({name})")], "the certificate names exactly the node");
    let res = get(tls, &name, "/healthz").await;
    assert_eq!(res.status(), 200);
    let hsts = res.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(hsts.starts_with("max-age="), "HSTS on the https answer: {:?}", res.headers());

    // Our CLI, as its own tailnet node, trusting the CA's root: a whoami
    // over HTTPS.
    let url = format!("https://{name}");
    let ca = tc.issuing_root.display().to_string();
    let o = tailops(&tc, "cli-https", &["call", &url, "whoami", "--ca-file", &ca, "--json"]);
    assert!(o.status.success(), "{}\n{}", text(&o.stderr), tc.log());
    let res: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(res["isError"], false, "{res}");
    assert_eq!(res["structuredContent"]["node_name"], format!("cli-https.{DOMAIN}"), "{res}");

    // The same CLI without the test root: the certificate is refused
    // (webpki roots only), exit 2, and the tool never ran.
    let o = tailops(&tc, "cli-no-root", &["call", &url, "whoami", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stderr).contains("UnknownIssuer"), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));

    // A client that trusts a different CA (the one behind the ACME
    // server's own HTTPS) fails validation of the node's certificate.
    let s = dial_retry(&node, &format!("{name}:443"), Duration::from_secs(60)).await;
    let err = connector(roots(&tc.acme_trust)).connect(server_name, s).await.expect_err("foreign CA must not validate");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // Plain HTTP on :80: a 308 to the same path on https, no HSTS there.
    let s = dial_retry(&node, &format!("{name}:80"), Duration::from_secs(60)).await;
    let res = get(s, &name, "/mcp?x=1").await;
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(format!("https://{name}/mcp?x=1").as_str())
    );
    assert!(res.headers().get("strict-transport-security").is_none(), "{:?}", res.headers());

    let _ = node.close().await;
    assert!(sp.stop().success());
}

/// The VIP the test control plane gives the Service.
const VIP: &str = "100.80.0.1";

/// `whoami` over the CLI as one persistent client node (its state in
/// `state`), so two calls are the same caller; returns the structured result.
fn whoami(tc: &TestControl, state: &Path, url: &str) -> Value {
    let ca = tc.issuing_root.display().to_string();
    let dir = state.display().to_string();
    let o = tailops(tc, "svc-caller", &["call", url, "whoami", "--ca-file", &ca, "--client-state-dir", &dir, "--json"]);
    assert!(o.status.success(), "{url}: {}\n{}", text(&o.stderr), tc.log());
    let res: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(res["isError"], false, "{res}");
    res["structuredContent"].clone()
}

/// A tagged node hosts `svc:tailops` over HTTPS; the control plane maps
/// the Service's VIP to it. A client reaching TailOps by the Service name
/// validates the Service's own certificate (a different name from the
/// node's) and is the same caller, with the same scopes, as through the
/// node name; only the source differs (the serve proxy's forwarded address,
/// port 0). A tagged client gets its tags as its identity through the
/// Service too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_name_reaches_tailops_with_the_callers_own_identity() {
    let svc = format!("tailops.{DOMAIN}");
    let tc = TestControl::start(&grants(), &[&svc]);
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sp = start_https_with(
        &tc,
        "ops-svc",
        &tmp.path().join("state"),
        Some("tag:tailops"),
        &["--register-as-service", "svc:tailops"],
    );
    let line = sp.seen.iter().find(|v| v.get("service").is_some()).cloned().expect("service log line");
    assert_eq!(line["service"].as_str(), Some(svc.as_str()), "{line}");
    assert_eq!(line["url"].as_str(), Some(format!("https://{svc}/mcp").as_str()), "{line}");
    tc.set_service("svc:tailops", "ops-svc", VIP);

    let client_state = tmp.path().join("caller");
    let by_service = whoami(&tc, &client_state, &format!("https://{svc}"));
    let by_node = whoami(&tc, &client_state, &format!("https://{}", sp.dns_name));
    for k in ["id", "login_name", "node_name", "node_id", "tags", "effective_scopes"] {
        assert_eq!(by_service[k], by_node[k], "{k}: service {by_service} vs node {by_node}");
    }
    assert!(by_service["id"].as_str().is_some_and(|i| i.starts_with("user:user-")), "{by_service}");
    assert_eq!(by_service["node_name"], format!("svc-caller.{DOMAIN}"), "{by_service}");
    assert!(by_service["effective_scopes"].as_array().is_some_and(|s| !s.is_empty()), "{by_service}");
    // Same address; through the Service it is the proxy's X-Forwarded-For
    // (no port), through the node name the connection's own.
    let (svc_ip, svc_port) = by_service["source"].as_str().and_then(|s| s.rsplit_once(':')).expect("source");
    let (node_ip, node_port) = by_node["source"].as_str().and_then(|s| s.rsplit_once(':')).expect("source");
    assert_eq!((svc_ip, svc_port), (node_ip, "0"), "{by_service} / {by_node}");
    assert_ne!(node_port, "0", "{by_node}");

    // A tagged client node in this process, over TLS to the Service name:
    // /whoami answers with its tags as its identity.
    tailops::tailnet::set_env_knob("TS_DEBUG_USE_DERP_HTTP", "1").expect("knob");
    let node = Node::builder("svc-ci")
        .control_url(&tc.url)
        .auth_key(ANY_KEY)
        .ephemeral(true)
        .advertise_tags(vec!["tag:ci".into()])
        .state_dir(tmp.path().join("ci"))
        .up_timeout(Duration::from_secs(60))
        .start()
        .await
        .expect("tagged client node");
    let s = dial_retry(&node, &format!("{svc}:443"), Duration::from_secs(60)).await;
    let server_name = ServerName::try_from(svc.clone()).expect("server name");
    let tls = connector(roots(&tc.issuing_root)).connect(server_name, s).await.expect("TLS handshake with the Service");
    let leaf = tls.get_ref().1.peer_certificates().expect("peer certificates")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("parse leaf");
    let san = cert.subject_alternative_name().expect("SAN").expect("SAN present").value.general_names[0].to_string();
    assert_eq!(san, format!("DNSName({svc})"), "the Service's own certificate");
    let res = get(tls, &svc, "/whoami").await;
    assert_eq!(res.status(), 200, "{}", text(res.body()));
    let who: Value = serde_json::from_slice(res.body()).expect("JSON");
    assert_eq!(who["id"], "tags:tag:ci", "{who}");
    assert_eq!(who["login_name"], "", "{who}");
    assert_eq!(who["node_name"], format!("svc-ci.{DOMAIN}"), "{who}");
    assert!(who["source"].as_str().is_some_and(|s| s.ends_with(":0")), "through the proxy: {who}");

    let _ = node.close().await;
    assert!(sp.stop().success());
}
