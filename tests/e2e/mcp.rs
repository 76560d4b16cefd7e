//! The MCP spine over real HTTP: the authorization matrix (principals ×
//! scope sources × allow/deny), session binding, Host/Origin rebinding
//! defences, rate limits, the repeated-denial block, request caps, the
//! audit chain and its fail-closed rule.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::client;
use crate::support::headscale::Headscale;
use crate::support::mcp::{Client, Via, raw};
use crate::support::server::{ServeOpts, ServerProcess};

/// A child process for tools to act on; killed on drop.
pub(crate) struct Victim(Child);

impl Victim {
    pub(crate) fn spawn() -> Self {
        Victim(Command::new("sleep").arg("300").stdin(Stdio::null()).spawn().expect("spawn sleep"))
    }
    pub(crate) fn pid(&self) -> i32 {
        self.0.id() as i32
    }
    /// Whether it exited (reaps it).
    pub(crate) fn exited_within(&mut self, d: Duration) -> bool {
        let deadline = std::time::Instant::now() + d;
        loop {
            if self.0.try_wait().expect("try_wait").is_some() {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Local policy used by the tailnet server: tag:ci gets `operator`; a
/// group rule gives carol nothing but is there to show non-matches.
const TAILNET_CONFIG: &str = r#"
[policy.groups]
auditors = ["dave@"]

[[policy.rules]]
tags = ["tag:ci"]
roles = ["operator"]

[[policy.rules]]
groups = ["auditors"]
scopes = ["audit:read"]
"#;

fn start_tailnet_server(hs: &Headscale, dir: &Path, hostname: &str) -> ServerProcess {
    start_tagged_server(hs, dir, hostname, TAILNET_CONFIG)
}

/// A tailnet server tagged tag:tailops (the grants' destination) with
/// `config` as its config file.
pub(crate) fn start_tagged_server(hs: &Headscale, dir: &Path, hostname: &str, config: &str) -> ServerProcess {
    let cfg = dir.join("server.toml");
    std::fs::write(&cfg, config).expect("config");
    let key = hs.tagged_key("tag:tailops");
    ServerProcess::start(ServeOpts {
        hostname,
        control_url: &hs.url,
        state_dir: &dir.join("server"),
        auth_key: Some(&key),
        tags: None,
        ephemeral: true,
        extra_args: vec!["--config".into(), cfg.display().to_string()],
    })
}

pub(crate) async fn session(node: &tailops::tailnet::Node, host: &str) -> Client {
    let mut c = Client::new(Via::Tailnet(node.clone(), host.to_string()), host);
    let r = c.initialize().await;
    assert_eq!(r.status, 200, "initialize: {}", r.body);
    assert!(c.session.is_some(), "stateful session for 2025-11-25");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_over_the_tailnet() {
    let hs = Headscale::start();
    hs.cli(&["users", "create", "carol"]);
    let tmp = tempfile::tempdir().expect("tmp");
    let server = start_tailnet_server(&hs, tmp.path(), "ops-authz");
    let host = server.dns_name.clone();

    let alice = client::node("alice-m", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
    let bob = client::node("bob-m", &hs.url, &hs.user_key("bob", true), &tmp.path().join("b")).await;
    let carol = client::node("carol-m", &hs.url, &hs.user_key("carol", true), &tmp.path().join("c")).await;
    let ci = client::node("ci-m", &hs.url, &hs.tagged_key("tag:ci"), &tmp.path().join("ci")).await;
    let mut a = session(&alice, &host).await;
    let mut b = session(&bob, &host).await;
    let mut c = session(&carol, &host).await;
    let mut t = session(&ci, &host).await;

    // tools/list shows each caller only what they may call.
    let all = crate::support::mcp::ALL_TOOLS;
    let without =
        |drop: &[&str]| -> Vec<String> { all.iter().filter(|t| !drop.contains(t)).map(|t| t.to_string()).collect() };
    assert_eq!(a.tool_names().await, without(&[]), "admin sees every tool");
    assert_eq!(b.tool_names().await, without(crate::support::mcp::VIEWER_HIDDEN), "viewer: reads only");
    assert_eq!(t.tool_names().await, without(crate::support::mcp::OPERATOR_HIDDEN), "operator: no audit");
    assert_eq!(c.tool_names().await, ["whoami"], "deny by default: carol has no grant and no rule");

    // whoami says where each scope came from: grants vs local policy.
    let w = a.call("whoami", json!({})).await;
    let src = &w.structured()["scope_sources"];
    assert!(src["audit:read"][0].as_str().is_some_and(|s| s.starts_with("grant tailops.dev/cap/tailops")), "{src}");
    assert!(src["processes:signal"][0].as_str().is_some_and(|s| s.contains("role admin")), "{src}");
    let w = t.call("whoami", json!({})).await;
    assert_eq!(w.structured()["id"], "tags:tag:ci");
    let src = &w.structured()["scope_sources"]["processes:signal"][0];
    assert!(src.as_str().is_some_and(|s| s.starts_with("policy rule 0 (tag tag:ci)")), "{src}");
    let w = c.call("whoami", json!({})).await;
    assert_eq!(w.structured()["effective_scopes"], json!([]));

    // Reads: bob (viewer grant) yes, carol no.
    let r = b.call("server_info", json!({})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    assert_eq!(r.structured()["node"], host);
    let r = c.call("server_info", json!({})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "{}", r.body);

    // Writes: bob (viewer) is refused and the process lives; ci (operator
    // via local policy) and alice (admin via grant) may signal.
    let mut v1 = Victim::spawn();
    let r = b.call("process_signal", json!({"pid": v1.pid()})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "{}", r.body);
    assert!(!v1.exited_within(Duration::from_millis(300)), "bob's refused signal must change nothing");
    let r = t.call("process_signal", json!({"pid": v1.pid(), "signal": "TERM"})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    assert!(v1.exited_within(Duration::from_secs(30)), "ci's TERM reached the process");
    let mut v2 = Victim::spawn();
    let r = a.call("process_signal", json!({"pid": v2.pid(), "signal": "KILL", "wait_ms": 2000})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    assert!(v2.exited_within(Duration::from_secs(30)));

    // Bad input: structured errors, nothing changes.
    let r = a.call("process_signal", json!({"pid": 1})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "{}", r.body);
    // Above the kernel's PID_MAX_LIMIT (2^22): no process can have it.
    let r = a.call("process_signal", json!({"pid": 999_999_999})).await;
    assert_eq!(r.error_category(), Some("invalid_input"), "{}", r.body);
    let r = a.call("process_signal", json!({"pid": v2.pid(), "signal": "NOPE"})).await;
    assert_eq!(r.error_category(), Some("invalid_input"), "{}", r.body);
    let r = a.call("no_such_tool", json!({})).await;
    assert!(r.body["error"]["code"].is_i64(), "unknown tool is a JSON-RPC error: {}", r.body);

    // The audit log (read by alice, audit:read) has bob's denial and ci's call.
    let r = a.call("audit_tail", json!({"tool": "process_signal", "limit": 50})).await;
    let recs = r.structured()["records"].as_array().cloned().unwrap_or_default();
    assert!(
        recs.iter().any(|x| x["principal"].as_str().is_some_and(|p| p.starts_with("user:bob"))
            && x["decision"] == "deny"
            && x["error_category"] == "permission_denied"),
        "bob's denial audited: {recs:#?}"
    );
    assert!(
        recs.iter().any(|x| x["principal"] == "tags:tag:ci" && x["kind"] == "tool_call" && x["outcome"] == "ok"),
        "ci's call audited: {recs:#?}"
    );
    assert!(recs.iter().all(|x| x["source"].as_str().is_some_and(|s| s.starts_with("100."))), "source IPs recorded");
    for n in [alice, bob, carol, ci] {
        n.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_bound_and_rebinding_is_refused() {
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let server = start_tailnet_server(&hs, tmp.path(), "ops-sess");
    let host = server.dns_name.clone();
    let alice = client::node("alice-s", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
    let bob = client::node("bob-s", &hs.url, &hs.user_key("bob", true), &tmp.path().join("b")).await;

    let mut a = session(&alice, &host).await;
    // bob presents alice's session id: 404, as if it did not exist.
    let mut thief = Client::new(Via::Tailnet(bob.clone(), host.clone()), &host);
    thief.session = a.session.clone();
    let r = thief.request("tools/list", json!({})).await;
    assert_eq!(r.status, 404, "hijacked session must be refused: {}", r.body);
    let r = thief.call("whoami", json!({})).await;
    assert_eq!(r.status, 404);
    // alice's session is untouched.
    let r = a.call("whoami", json!({})).await;
    assert_eq!(r.status, 200);
    assert!(r.structured()["id"].as_str().is_some_and(|s| s.starts_with("user:alice")));

    // DNS rebinding: a foreign Host or Origin is refused; our own is fine.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let via = Via::Tailnet(alice.clone(), host.clone());
    let r = raw(&via, "POST", "evil.example", init.to_string().into_bytes(), &[]).await;
    assert_eq!(r.status, 403, "foreign Host: {}", r.body);
    let origin = |o: &str| vec![("origin".to_string(), o.to_string())];
    let r = raw(&via, "POST", &host, init.to_string().into_bytes(), &origin("http://evil.example")).await;
    assert_eq!(r.status, 403, "foreign Origin: {}", r.body);
    let r = raw(&via, "POST", &host, init.to_string().into_bytes(), &origin(&format!("http://{host}"))).await;
    assert_eq!(r.status, 200, "own Origin: {}", r.body);
    let ip = server.ips[0].clone();
    let r = raw(&via, "POST", &ip, init.to_string().into_bytes(), &[]).await;
    assert_eq!(r.status, 200, "tailnet IP as Host: {}", r.body);
    alice.close().await.expect("close");
    bob.close().await.expect("close");
}

const ADMIN_DEV: &str = r#"
[local]
name = "dev"
roles = ["admin"]

[limits]
max_sessions_per_principal = 2
max_request_body_bytes = 4096

[limits.rate]
calls_per_minute = 12
burst = 3
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_429_then_recovery_and_request_caps() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN_DEV, &[]);
    let host = addr.to_string();
    let mut c = Client::new(Via::Tcp(addr), &host);
    assert_eq!(c.initialize().await.status, 200);

    // Burst of 3, then 429 with Retry-After. One call per 5 s refills (not
    // one a second): the four calls must fit within one refill, which a
    // loaded box did not always manage in a second.
    for i in 0..3 {
        let r = c.call("whoami", json!({})).await;
        assert_eq!(r.status, 200, "call {i}: {}", r.body);
    }
    let r = c.call("whoami", json!({})).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let wait: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After header");
    assert!((1..=5).contains(&wait), "one call per 5 s refills: {wait}");
    // Other requests of the session are not tool calls and still work.
    assert_eq!(c.request("tools/list", json!({})).await.status, 200);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = c.call("whoami", json!({})).await;
    assert_eq!(r.status, 200, "recovered after Retry-After: {}", r.body);

    // Session cap per principal (2): a third initialize is refused.
    let mut c2 = Client::new(Via::Tcp(addr), &host);
    assert_eq!(c2.initialize().await.status, 200);
    let mut c3 = Client::new(Via::Tcp(addr), &host);
    let r = c3.initialize().await;
    assert_eq!(r.status, 429, "third session: {}", r.body);
    // Closing one frees a slot.
    let mut del_headers = vec![("mcp-session-id".to_string(), c2.session.clone().unwrap_or_default())];
    del_headers.push(("mcp-protocol-version".into(), "2025-11-25".into()));
    let r = raw(&Via::Tcp(addr), "DELETE", &host, Vec::new(), &del_headers).await;
    assert!(r.status < 300, "DELETE session: {} {}", r.status, r.body);
    assert_eq!(c3.initialize().await.status, 200, "slot freed");

    // Body cap (4096 bytes).
    let big = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {"pad": "x".repeat(8000)}}});
    let r = c.post(big).await;
    assert_eq!(r.status, 413, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_denials_block_the_principal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = "[local]\nname = \"viewer\"\nroles = [\"viewer\"]\n[limits.rate]\nmax_denials = 3\nblock_secs = 120\n";
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), cfg, &[]);
    let host = addr.to_string();
    let mut c = Client::new(Via::Tcp(addr), &host);
    assert_eq!(c.initialize().await.status, 200);
    let v = Victim::spawn();
    for _ in 0..3 {
        let r = c.call("process_signal", json!({"pid": v.pid()})).await;
        assert_eq!(r.error_category(), Some("permission_denied"), "{}", r.body);
    }
    let r = c.call("whoami", json!({})).await;
    assert_eq!(r.status, 429, "blocked after 3 denials: {}", r.body);
    assert!(r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s > 60));
    assert!(server.stop().success());
    let audit = std::fs::read_to_string(tmp.path().join("state/audit.jsonl")).expect("audit");
    assert!(
        audit.lines().any(|l| l.contains("\"kind\":\"anomaly\"") && l.contains("repeated_denials")),
        "anomaly audited:\n{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_verifies_and_tampering_is_found() {
    let tmp = tempfile::tempdir().expect("tmp");
    // No built-in alerts: on a busy machine they would write `alert`
    // records between the calls whose line numbers this test names.
    let cfg = "[local]\nname = \"dev\"\nroles = [\"admin\"]\n[sampler]\ndefault_alerts = false\n";
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), cfg, &[]);
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    for _ in 0..3 {
        assert_eq!(c.call("server_info", json!({})).await.status, 200);
    }
    let r = c.call("process_signal", json!({"pid": 1})).await;
    assert!(r.is_tool_error());
    assert!(server.stop().success());

    let file = tmp.path().join("state/audit.jsonl");
    let verify = |f: &Path| {
        Command::new(ServerProcess::bin()).args(["audit", "verify"]).arg(f).output().expect("run audit verify")
    };
    let out = verify(&file);
    assert!(out.status.success(), "intact chain: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert!(report["records"].as_u64().is_some_and(|n| n >= 6), "{report}");

    // Change one character of the first server_info record (the third
    // line, unless the writer logged something else first, e.g. a
    // `stalled` record when an fsync took over 2 s on a loaded box).
    let text = std::fs::read_to_string(&file).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines.iter().position(|l| l.contains("\"tool\":\"server_info\"")).expect("a server_info record");
    assert!(at + 1 < lines.len(), "records after it: {text}");
    lines[at] = lines[at].replacen("server_info", "server_inf0", 1);
    let tampered = tmp.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.join("\n") + "\n").expect("write");
    let out = verify(&tampered);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert_eq!(report["first_problem"]["line"], at + 1, "{report}");
    assert_eq!(report["first_problem"]["reason"], "hash_mismatch", "{report}");

    // A deleted record is found too.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.remove(at + 1);
    std::fs::write(&tampered, lines.join("\n") + "\n").expect("write");
    let out = verify(&tampered);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert_eq!(report["first_problem"]["line"], at + 2, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_failure_refuses_writes_and_keeps_reads() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A real disk-full error: /dev/full fails every write with ENOSPC.
    let log = tmp.path().join("audit.jsonl");
    std::os::unix::fs::symlink("/dev/full", &log).expect("symlink");
    let (_server, addr) =
        ServerProcess::start_dev(tmp.path(), ADMIN_DEV, &["--audit-log", log.to_str().expect("utf8")]);
    let host = addr.to_string();
    let mut c = Client::new(Via::Tcp(addr), &host);
    assert_eq!(c.initialize().await.status, 200);
    // The writer hits the error with its first record, asynchronously:
    // wait for it (bounded) instead of assuming it did within 300 ms.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.call("server_info", json!({})).await;
        assert!(!r.is_tool_error(), "reads keep working: {}", r.body);
        if r.structured()["audit_healthy"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "the audit log never reported the failed write: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut v = Victim::spawn();
    let r = c.call("process_signal", json!({"pid": v.pid()})).await;
    assert_eq!(r.error_category(), Some("unavailable"), "{}", r.body);
    assert!(!v.exited_within(Duration::from_millis(500)), "refused write changed nothing");

    let ready = crate::support::mcp::get(&Via::Tcp(addr), &host, "/readyz").await;
    assert_eq!(ready.status, 503, "a failing audit log makes /readyz non-200 (issue 13)");
    assert_eq!(ready.body["status"], "degraded", "{}", ready.body);
    assert_eq!(ready.body["checks"]["audit"]["status"], "failing", "{}", ready.body);
}

#[test]
fn dev_listen_refuses_non_loopback() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::new(ServerProcess::bin())
        .args(["serve", "--dev-listen", "0.0.0.0:0", "--state-dir"])
        .arg(tmp.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_reaped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = "[local]\nname = \"dev\"\nroles = [\"viewer\"]\n[limits]\nsession_idle_secs = 1\n";
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), cfg, &[]);
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    assert_eq!(c.call("whoami", json!({})).await.status, 200);
    // Idle for 2 s (twice session_idle_secs) before each try, until the
    // session is gone (bounded): one fixed 4 s sleep assumed the reaper ran
    // within it. A call that still finds the session resets its idle clock,
    // so each try follows a full idle gap again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = c.call("whoami", json!({})).await;
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(Instant::now() < deadline, "idle session never closed: {}", r.body);
    }
}

/// `serve --stdio`: newline-delimited JSON-RPC on stdin/stdout, the
/// `[local]` principal, and rate limiting as a JSON-RPC error.
#[test]
fn stdio_mode_serves_the_same_tools() {
    use std::io::{BufRead, Write};
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut child, mut stdin, mut out) = crate::support::server::spawn_stdio(
        tmp.path(),
        "[local]\nname = \"cli\"\nroles = [\"viewer\"]\n[limits.rate]\nburst = 2\n",
    );
    let mut rpc = |msg: Value, expect_reply: bool| -> Value {
        writeln!(stdin, "{msg}").expect("write");
        stdin.flush().expect("flush");
        if !expect_reply {
            return Value::Null;
        }
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line not JSON ({e}): {line}"))
    };
    let init = rpc(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
            "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        true,
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "tailops", "{init}");
    rpc(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), false);
    let list = rpc(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), true);
    let mut names: Vec<&str> =
        list["result"]["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort();
    let viewer: Vec<&str> = crate::support::mcp::ALL_TOOLS
        .iter()
        .copied()
        .filter(|t| !crate::support::mcp::VIEWER_HIDDEN.contains(t))
        .collect();
    assert_eq!(names, viewer);
    let who = rpc(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}),
        true,
    );
    assert_eq!(who["result"]["structuredContent"]["id"], "local:cli", "{who}");
    let _ = rpc(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}),
        true,
    );
    let limited = rpc(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}),
        true,
    );
    assert_eq!(limited["error"]["code"], -32029, "rate limit as a JSON-RPC error: {limited}");
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(status.success(), "stdio server exits cleanly on EOF: {status:?}");
}
