//! `serve --https` and `serve --register-as-service` against a real control
//! plane (headscale on loopback). Headscale issues no MagicDNS certificates
//! and has no Tailscale Services, so what is exercised here is the refusal
//! of each, with the sentence naming cause and fix; the HTTPS redirect,
//! HSTS and the per-listener header trust are tested at the router level
//! (`http::tls`, `http::identify`).

use std::time::Duration;

use serde_json::Value;

use crate::support::headscale::Headscale;
use crate::support::server::{ServeOpts, ServerProcess};

/// Runs `serve` with `extra` on a node enrolled with `key`; it must stop by
/// itself with exit 1. Returns everything it logged, as one string.
fn refused(hs: &Headscale, hostname: &str, key: &str, extra: &[&str]) -> String {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sp = ServerProcess::spawn(ServeOpts {
        hostname,
        control_url: &hs.url,
        state_dir: &tmp.path().join("state"),
        auth_key: Some(key),
        tags: None,
        ephemeral: true,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
    });
    let st = sp.wait_exit(Duration::from_secs(120));
    let log: Vec<String> =
        sp.seen.iter().map(|v| if let Value::String(s) = v { s.clone() } else { v.to_string() }).collect();
    let log = log.join("\n");
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(!log.contains("tailops is serving"), "it served: {log}");
    log
}

/// An untagged (user-owned) node asking to host a Tailscale Service is
/// refused before tsnet's ListenService is called, with the reason and fix.
#[test]
fn register_as_service_on_an_untagged_node_is_refused_with_the_fix() {
    let hs = Headscale::start();
    let key = hs.user_key("alice", true);
    let log = refused(&hs, "svc-untagged", &key, &["--register-as-service", "svc:tailops"]);
    assert!(log.contains("--register-as-service needs a tagged node") && log.contains("--advertise-tags"), "{log}");
    // The refusal came from our check, not from tsnet's ErrUntaggedServiceHost.
    assert!(!log.contains("service hosts must be tagged nodes"), "{log}");
}

/// A malformed Service name stops `serve` before anything joins the tailnet.
#[test]
fn register_as_service_refuses_a_malformed_name() {
    for bad in ["tailops", "svc:", "svc:Ops", "svc:a.b", "svc:-a"] {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = std::process::Command::new(ServerProcess::bin())
            .args([
                "serve",
                "--hostname",
                "svc-bad",
                "--control-url",
                "http://127.0.0.1:9",
                "--register-as-service",
                bad,
            ])
            .arg("--state-dir")
            .arg(tmp.path().join("s"))
            .env_remove("TS_AUTHKEY")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run serve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(err.contains("register_as_service") && err.contains("svc:tailops"), "{bad}: {err}");
    }
}

/// `--https` where the control plane issues no certificate (headscale):
/// the start fails naming the cause and the fix; it never falls back to
/// plain HTTP.
#[test]
fn https_without_a_tailnet_certificate_fails_with_the_fix() {
    let hs = Headscale::start();
    let key = hs.tagged_key("tag:tailops");
    let log = refused(&hs, "tls-nocert", &key, &["--https"]);
    assert!(log.contains("--https needs a MagicDNS TLS certificate"), "{log}");
    assert!(log.contains("serve without --https"), "{log}");
}

/// A tagged node registering a Service starts against headscale (tsnet
/// advertises the Service and installs the serve proxy; headscale has no
/// Services, so nothing routes to it): the Service's MagicDNS name and URL
/// are logged and the node stops cleanly.
#[test]
fn register_as_service_on_a_tagged_node_starts_and_names_the_service() {
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let key = hs.tagged_key("tag:tailops");
    let mut sp = ServerProcess::start(ServeOpts {
        hostname: "svc-tagged",
        control_url: &hs.url,
        state_dir: &tmp.path().join("state"),
        auth_key: Some(&key),
        tags: None,
        ephemeral: true,
        extra_args: vec!["--register-as-service".into(), "svc:tailops".into()],
    });
    let want = format!("tailops.{}", crate::support::headscale::BASE_DOMAIN);
    // Logged before the readiness line `start` waited for.
    let seen = sp.seen.iter().find(|v| v.get("service").is_some()).cloned().expect("service log line");
    assert_eq!(seen["service"].as_str(), Some(want.as_str()), "{seen}");
    assert_eq!(seen["url"].as_str(), Some(format!("http://{want}/mcp").as_str()), "{seen}");
    assert!(sp.stop().success());
}
