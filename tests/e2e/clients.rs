//! Real MCP clients against `tailops serve`: the Python SDK (PyPI `mcp`)
//! in both protocol revisions, and the official conformance suite with its
//! committed expected-failures list. The clients are installed under
//! target/tools by tests/support/install-clients.sh (run here if missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use serde_json::Value;

use crate::support::server::ServerProcess;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ensure_clients() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let st = Command::new("bash")
            .arg(root().join("tests/support/install-clients.sh"))
            .status()
            .expect("run install-clients.sh");
        assert!(st.success(), "installing the MCP test clients failed (npm/PyPI reachable?)");
    });
}

/// The suite opens a session per scenario and calls fixture tools tailops
/// lacks: each unknown tool counts as a denial, so the repeated-denial block
/// is raised too, and so is the rate (it fires calls as fast as it can; the
/// limits doing their job are not protocol failures).
const ADMIN: &str = "[local]\nname = \"dev\"\nroles = [\"admin\"]\n[limits]\nmax_sessions_per_principal = 1000\n[limits.rate]\nmax_denials = 100000\nburst = 10000\ncalls_per_minute = 100000\n";

fn python(url: &str, protocol: &str) -> Value {
    let out = Command::new(root().join("target/tools/venv/bin/python"))
        .arg(root().join("tests/clients/python_client.py"))
        .args(["--url", url, "--protocol", protocol])
        .output()
        .expect("run python client");
    assert!(
        out.status.success(),
        "python SDK client ({protocol}) failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("client output not JSON ({e})"))
}

#[test]
fn python_sdk_lists_and_calls_tools_in_both_protocol_revisions() {
    ensure_clients();
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let url = format!("http://{addr}/mcp");

    let legacy = python(&url, "2025-11-25");
    assert_eq!(legacy["protocol"], "2025-11-25");
    assert!(legacy["session_id"].as_str().is_some_and(|s| !s.is_empty()), "stateful session: {legacy}");
    let stateless = python(&url, "2026-07-28");
    assert_eq!(stateless["protocol"], "2026-07-28");
    assert!(stateless["session_id"].is_null(), "2026-07-28 is stateless: {stateless}");

    for r in [&legacy, &stateless] {
        assert_eq!(r["tools"], serde_json::json!(crate::support::mcp::ALL_TOOLS), "{r}");
        assert_eq!(r["whoami"]["id"], "local:dev", "{r}");
        assert_eq!(r["server_info"]["name"], "tailops", "{r}");
        assert_eq!(r["server_info"]["audit_healthy"], true, "{r}");
    }

    // The viewer sees fewer tools through the same SDK.
    let tmp2 = tempfile::tempdir().expect("tmp");
    let (_viewer, addr2) = ServerProcess::start_dev(tmp2.path(), "[local]\nname = \"v\"\nroles = [\"viewer\"]\n", &[]);
    let v = python(&format!("http://{addr2}/mcp"), "2026-07-28");
    let viewer: Vec<&str> = crate::support::mcp::ALL_TOOLS
        .iter()
        .copied()
        .filter(|t| !crate::support::mcp::VIEWER_HIDDEN.contains(t))
        .collect();
    assert_eq!(v["tools"], serde_json::json!(viewer), "{v}");
}

#[test]
fn conformance_suite_has_no_unexpected_failures() {
    ensure_clients();
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let out_dir = tmp.path().join("conformance");
    let out = Command::new("bash")
        .arg(root().join("tests/clients/conformance.sh"))
        .arg(format!("http://{addr}/mcp"))
        .env("CONFORMANCE_OUT", &out_dir)
        .output()
        .expect("run conformance.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "conformance regressions:\n{stdout}\n{stderr}");
    // The run really happened: results exist for both revisions.
    assert!(has_results(&out_dir), "no conformance results under {}:\n{stdout}", out_dir.display());
    println!("{stdout}");
}

fn has_results(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|d| d.count() > 0).unwrap_or(false)
}
