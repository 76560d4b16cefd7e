//! Real MCP clients against `tailops serve`: the Python SDK (PyPI `mcp`)
//! in both protocol revisions, and the official conformance suite with its
//! committed expected-failures list — against the production server, and
//! fully green against the fixture server (examples/conformance_fixtures.rs,
//! which `cargo test` builds). The clients are installed under
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

/// The fixture server (`cargo test` builds examples; a targeted
/// `cargo test --test e2e` does not: build it first). Refused when older
/// than a source file it is built from, i.e. stale.
fn fixture_server() -> PathBuf {
    let bin = root().join("target/debug/examples/conformance_fixtures");
    let hint = "run `cargo build --example conformance_fixtures` (a plain `cargo test` builds it)";
    let built = modified(&bin).unwrap_or_else(|| panic!("{} is missing: {hint}", bin.display()));
    let mut sources = vec![root().join("examples/conformance_fixtures.rs"), root().join("Cargo.lock")];
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() { dirs.push(path) } else { sources.push(path) }
        }
    }
    if let Some(newer) = sources.iter().find(|p| modified(p).is_some_and(|m| m > built)) {
        panic!("{} is older than {} (stale): {hint}", bin.display(), newer.display());
    }
    bin
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Every server scenario of the suite, both revisions, with zero expected
/// failures: the fixture tools, resources, prompts, completions and log
/// level run through the real spine, which audits each of them.
#[test]
fn conformance_suite_is_fully_green_against_the_fixture_server() {
    ensure_clients();
    let bin = fixture_server();
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut server, addr) = ServerProcess::start_dev_bin(&bin, tmp.path(), ADMIN, &[], &[]);
    let out_dir = tmp.path().join("conformance");
    let out = Command::new("bash")
        .arg(root().join("tests/clients/conformance.sh"))
        .arg(format!("http://{addr}/mcp"))
        .env("CONFORMANCE_OUT", &out_dir)
        .env("CONFORMANCE_EXPECTED", root().join("tests/clients/conformance-fixtures-expected-failures.txt"))
        .output()
        .expect("run conformance.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "conformance failures against the fixture server:\n{stdout}\n{stderr}");
    for rev in ["2025-11-25", "2026-07-28"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{rev}: ")))
            .unwrap_or_else(|| panic!("no summary for {rev}:\n{stdout}"));
        assert!(line.contains(" 0 failed"), "{rev} is not fully green: {line}\n{stdout}");
        let passed: u32 = line
            .split(", ")
            .find_map(|p| p.strip_suffix(" checks passed"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no pass count in {line}"));
        assert!(passed >= 50, "{rev}: too few checks ran ({line})");
    }
    println!("{stdout}");

    // The fixtures went through the spine: each kind is in the audit log.
    server.stop();
    let audit = std::fs::read_to_string(tmp.path().join("state/audit.jsonl")).expect("audit log");
    let calls: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "tool_call")
        .collect();
    for (tool, outcome) in [
        ("test_simple_text", "ok"),
        ("test_error_handling", "error"),
        ("test_sampling", "ok"),
        ("test_input_required_result_elicitation", "input_required"),
        ("test_missing_capability", "protocol_error -32021"),
        ("prompt:test_prompt_with_arguments", "ok"),
        ("resource:test://static-text", "ok"),
        ("resource_subscribe:test://watched-resource", "ok"),
        ("completion/complete", "ok"),
        ("logging/setLevel", "ok"),
    ] {
        assert!(
            calls.iter().any(|r| r["tool"] == tool && r["outcome"] == outcome && r["principal"] == "local:dev"),
            "no audited {tool} call with outcome {outcome}"
        );
    }
}

/// The fixtures are no back door: a principal without `system:read` (the
/// fixtures' scope) sees none of them and is refused each kind — tool,
/// prompt, resource, subscription, completion, log level — and every
/// refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_are_refused_to_a_principal_without_their_scope() {
    use crate::support::mcp::client;
    use serde_json::json;
    let bin = fixture_server();
    let tmp = tempfile::tempdir().expect("tmp");
    let nobody = "[local]\nname = \"nobody\"\nroles = []\n";
    let (mut server, addr) = ServerProcess::start_dev_bin(&bin, tmp.path(), nobody, &[], &[]);
    let mut c = client(addr).await;

    let tools = c.request("tools/list", json!({})).await;
    assert!(!tools.body.to_string().contains("test_"), "fixture tools listed: {}", tools.body);
    let r = c.call("test_simple_text", json!({})).await;
    assert!(r.is_tool_error(), "test_simple_text ran: {}", r.body);
    assert_eq!(r.error_category(), Some("permission_denied"), "{}", r.body);
    // Lists answer, without a fixture (system://overview needs the same
    // scope, so resources/list is empty too).
    for (method, listed) in [
        ("prompts/list", "prompts"),
        ("resources/list", "resources"),
        ("resources/templates/list", "resourceTemplates"),
    ] {
        let r = c.request(method, json!({})).await;
        assert_eq!(r.body["result"][listed], json!([]), "{method}: {}", r.body);
    }
    for (method, params) in [
        ("prompts/get", json!({ "name": "test_simple_prompt" })),
        ("resources/read", json!({ "uri": "test://static-text" })),
        ("resources/subscribe", json!({ "uri": "test://watched-resource" })),
        (
            "completion/complete",
            json!({ "ref": { "type": "ref/prompt", "name": "test_simple_prompt" }, "argument": { "name": "a", "value": "" } }),
        ),
        ("logging/setLevel", json!({ "level": "debug" })),
    ] {
        let r = c.request(method, params).await;
        assert!(r.body["error"]["code"].is_i64(), "{method} was not refused: {}", r.body);
        assert!(!r.body.to_string().contains("This is"), "{method} leaked fixture content: {}", r.body);
    }

    server.stop();
    let audit = std::fs::read_to_string(tmp.path().join("state/audit.jsonl")).expect("audit log");
    let records: Vec<Value> = audit.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        !records.iter().any(|r| r["kind"] == "tool_call" && r["outcome"] == "ok" && r["principal"] == "local:nobody"),
        "a refused principal has a successful call in the audit log"
    );
    for tool in [
        "test_simple_text",
        "prompt:test_simple_prompt",
        "resource:test://static-text",
        "resource_subscribe:test://watched-resource",
        "completion/complete",
        "logging/setLevel",
    ] {
        assert!(
            records.iter().any(|r| r["kind"] == "decision" && r["tool"] == tool && r["principal"] == "local:nobody"),
            "no audited refusal of {tool}"
        );
    }
}
