//! Attacks on the spine's front door (issue 9 items 1, 7, 8), against the
//! real server: malformed arguments of every shape, non-JSON bodies and
//! stdio lines, duplicate Host/Authorization headers, and refused calls
//! that try to write large audit records.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

use crate::support::mcp::{Client, Via, raw};
use crate::support::server::ServerProcess;

fn audit_records(dir: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("state/audit.jsonl")).expect("audit log");
    text.lines().map(|l| serde_json::from_str(l).expect("audit line is JSON")).collect()
}

/// Wrong types, missing and unknown fields, out-of-range numbers and
/// non-object `arguments`: each is a tool result with
/// `{category: invalid_input, message naming the field, hint}`, and each is
/// audited as `invalid_input` (before issue 9: plain text
/// "failed to deserialize parameters", audited `internal`; non-object
/// arguments got -32601 and no audit record at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_arguments_are_structured_invalid_input_and_audited() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = "[local]\nname = \"dev\"\nroles = [\"admin\"]\n[limits.rate]\nburst = 100\ncalls_per_minute = 6000\n";
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), cfg, &[]);
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);

    // (tool, arguments, a word the message must name)
    let cases: Vec<(&str, Value, &str)> = vec![
        ("process_list", json!({"limit": "ten"}), "limit"),
        ("process_list", json!({"limit": -1}), "limit"),
        ("process_list", json!({"limit": 1e30}), "limit"),
        ("process_list", json!({"limit": 1.5}), "limit"),
        ("process_list", json!({"no_such_field": 1}), "no_such_field"),
        ("process_info", json!({}), "pid"),
        ("process_info", json!({"pid": "1"}), "pid"),
        ("process_info", json!({"pid": 4_294_967_296u64}), "pid"),
        ("whoami", json!({"x": 1}), "x"),
        ("metrics_history", json!({"metric": 5}), "metric"),
        ("container_logs", json!({"container": "x", "tail": true}), "tail"),
        ("process_list", json!([1, 2]), "object"),
        ("process_list", json!("limit=5"), "object"),
        ("process_list", json!(7), "object"),
        ("process_list", json!(null), "object"),
    ];
    for (tool, args, word) in &cases {
        let r = c.call(tool, args.clone()).await;
        assert_eq!(r.status, 200, "{tool} {args}: {}", r.body);
        assert!(r.is_tool_error(), "{tool} {args}: {}", r.body);
        assert_eq!(r.error_category(), Some("invalid_input"), "{tool} {args}: {}", r.body);
        let e = &r.structured()["error"];
        let msg = e["message"].as_str().unwrap_or_default();
        assert!(msg.contains(word), "{tool} {args}: message {msg:?} should name {word:?}");
        assert!(!e["hint"].as_str().unwrap_or_default().is_empty(), "{tool} {args}: a hint: {e}");
        assert!(!msg.contains("failed to deserialize"), "{msg}");
    }
    // A good call still works.
    let r = c.call("process_list", json!({"limit": 1})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    // Stopping closes the audit log: every record queued is on disk.
    assert!(server.stop().success());
    // Every one of them is in the audit log as a failed call, invalid_input.
    let recs = audit_records(tmp.path());
    let bad: Vec<&Value> = recs
        .iter()
        .filter(|r| r["kind"] == "tool_call" && r["error_category"] == "invalid_input" && r["outcome"] == "error")
        .collect();
    assert_eq!(bad.len(), cases.len(), "one invalid_input record per bad call: {bad:#?}");
    assert!(!recs.iter().any(|r| r["error_category"] == "internal"), "nothing audited as internal");
}

/// A body that is not JSON gets 400 with JSON-RPC -32700 (it was 415);
/// two Host headers or two Authorization headers get 400 (not first-wins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_bodies_and_duplicate_headers_get_400() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), "", &[]);
    let via = Via::Tcp(addr);
    let host = addr.to_string();
    for body in [&b"{not json"[..], b"", b"\xff\xfe", b"[1,"] {
        let r = raw(&via, "POST", &host, body.to_vec(), &[]).await;
        assert_eq!(r.status, 400, "{body:?}: {}", r.body);
        assert_eq!(r.body["error"]["code"], -32700, "{body:?}: {}", r.body);
    }
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string()
    .into_bytes();
    let r = raw(&via, "POST", &host, init.clone(), &[("host".into(), "evil.example".into())]).await;
    assert_eq!(r.status, 400, "two Host headers: {}", r.body);
    let r = raw(&via, "POST", &host, init.clone(), &[("host".into(), host.clone())]).await;
    assert_eq!(r.status, 400, "two identical Host headers: {}", r.body);
    let two_auth = [("authorization".to_string(), "Bearer a".to_string()), ("authorization".into(), "Bearer b".into())];
    let r = raw(&via, "POST", &host, init.clone(), &two_auth).await;
    assert_eq!(r.status, 400, "two Authorization headers: {}", r.body);
    assert_eq!(r.body["error"]["category"], "invalid_input", "{}", r.body);
    // The same request, well formed, is served.
    let r = raw(&via, "POST", &host, init, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A caller with no scope sends unknown tools with 60 KiB arguments: each
/// is charged to the limiter and counted as a denial (so the flood ends in
/// a block), and each refused record keeps at most ~1 KiB of arguments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_are_charged_counted_and_capped_in_the_audit_log() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg =
        "[local]\nname = \"nobody\"\nroles = []\n[limits.rate]\nburst = 50\ncalls_per_minute = 6000\nmax_denials = 5\n";
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), cfg, &[]);
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    let big = "A".repeat(60 * 1024);
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = c.call(&format!("no_such_tool_{i}"), json!({ "blob": big })).await;
        statuses.push((r.status, r.body["error"]["code"].as_i64()));
    }
    // 5 unknown tools trip the block; the rest are refused 429 at the gate.
    assert!(statuses[..5].iter().all(|(s, code)| *s == 200 && *code == Some(-32602)), "{statuses:?}");
    assert!(statuses[5..].iter().all(|(s, _)| *s == 429), "blocked after 5 unknown tools: {statuses:?}");
    assert!(server.stop().success(), "stopping flushes the audit log");
    let recs = audit_records(tmp.path());
    let unknown: Vec<&Value> = recs.iter().filter(|r| r["outcome"] == "unknown_tool").collect();
    assert_eq!(unknown.len(), 5, "{unknown:#?}");
    for r in &unknown {
        assert_eq!(r["args"]["truncated"], true, "{r}");
        assert!(r.to_string().len() < 2048, "a refused record stays small: {} bytes", r.to_string().len());
    }
    assert!(recs.iter().any(|r| r["kind"] == "anomaly" && r["detail"]["event"] == "repeated_denials"));
    let size = std::fs::metadata(tmp.path().join("state/audit.jsonl")).map(|m| m.len()).unwrap_or(u64::MAX);
    assert!(size < 32 * 1024, "8 × 60 KiB of refused arguments wrote {size} bytes");
}

/// stdio speaks the same front door: a line that is not JSON gets -32700
/// (it was silence), a line over the size limit -32600, and non-object
/// arguments an audited invalid_input result; the server keeps serving.
#[test]
fn stdio_answers_malformed_lines() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut child, mut stdin, mut out) =
        crate::support::server::spawn_stdio(tmp.path(), "[limits]\nmax_request_body_bytes = 4096\n");
    let mut send = |line: &str| -> Value {
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
        let mut reply = String::new();
        out.read_line(&mut reply).expect("read");
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("stdout line not JSON ({e}): {reply}"))
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(send(&init.to_string())["result"]["serverInfo"]["name"], "tailops");
    let r = send("this is not json");
    assert_eq!(r["error"]["code"], -32700, "{r}");
    let r = send(&format!("{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(5000)));
    assert_eq!(r["error"]["code"], -32600, "over max_request_body_bytes: {r}");
    let r = send(
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "process_list", "arguments": [1]}})
        .to_string(),
    );
    assert_eq!(r["id"], 3, "{r}");
    assert_eq!(r["result"]["structuredContent"]["error"]["category"], "invalid_input", "{r}");
    let r = send(
        &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}})
        .to_string(),
    );
    assert_eq!(r["result"]["structuredContent"]["id"], "local:local", "still serving: {r}");
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    let recs = audit_records(tmp.path());
    assert!(
        recs.iter().any(|r| r["tool"] == "process_list" && r["error_category"] == "invalid_input"),
        "the non-object call is audited"
    );
}
