//! Identity attacks over the real headscale tailnet (issue 9 item 8): a
//! grant value that hides its deny behind an unknown or malformed field,
//! tagged nodes that share one principal id (`tags:tag:ci`), and a revoked
//! grant used on a connection kept alive across the revocation.

use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::mcp::start_tagged_server;
use crate::mcp::{Victim, session};
use crate::support::client;
use crate::support::headscale::{CAP, Headscale};
use crate::support::mcp::{Client, PROTOCOL, Reply, Via, read_reply};

/// alice: an admin grant plus a value that carries a deny next to a field
/// this server does not know (it used to drop the value whole, deny
/// included). bob: a viewer grant plus a value whose deny is not a list.
const DENY_POLICY: &str = r#"{
  "tagOwners": { "tag:tailops": ["alice@"], "tag:ci": ["alice@"] },
  "grants": [
    { "src": ["*"], "dst": ["*"], "ip": ["*"] },
    { "src": ["alice@"], "dst": ["tag:tailops"],
      "app": { "tailops.dev/cap/tailops": [ { "roles": ["admin"] } ] } },
    { "src": ["alice@"], "dst": ["tag:tailops"],
      "app": { "tailops.dev/cap/tailops": [
        { "roles": ["admin"], "expires": "2027-01-01", "tools": { "deny": ["process_signal", "procss_kill"] } } ] } },
    { "src": ["bob@"], "dst": ["tag:tailops"],
      "app": { "tailops.dev/cap/tailops": [ { "roles": ["viewer"] } ] } },
    { "src": ["bob@"], "dst": ["tag:tailops"],
      "app": { "tailops.dev/cap/tailops": [ { "tools": { "deny": "container_logs" } } ] } }
  ]
}
"#;

/// A local rule with a misspelt deny: parses, denies nothing.
const TYPO_CONFIG: &str = r#"
[[policy.rules]]
users = ["*"]
tools = { deny = ["contaner_stop"] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_is_never_dropped_and_typos_are_reported() {
    let hs = Headscale::start_with_policy(DENY_POLICY);
    let tmp = tempfile::tempdir().expect("tmp");
    let server = start_tagged_server(&hs, tmp.path(), "ops-deny", TYPO_CONFIG);
    let host = server.dns_name.clone();

    // Start-up: the local policy's typo was logged before serving.
    let warn = server
        .seen
        .iter()
        .find(|v| v["level"] == "WARN" && v.to_string().contains("contaner_stop"))
        .unwrap_or_else(|| panic!("no start-up warning naming contaner_stop in {:#?}", server.seen))
        .to_string();
    assert!(warn.contains("tools.deny names no tool"), "{warn}");

    let alice = client::node("alice-d", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
    let bob = client::node("bob-d", &hs.url, &hs.user_key("bob", true), &tmp.path().join("b")).await;
    let mut a = session(&alice, &host).await;
    let mut b = session(&bob, &host).await;

    // alice (admin by grant 0) calls the tool grant 1 denies, next to an
    // unknown field: refused, and the process lives.
    let mut victim = Victim::spawn();
    let r = a.call("process_signal", json!({"pid": victim.pid()})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "deny must survive an unknown field: {}", r.body);
    assert!(!victim.exited_within(Duration::from_millis(300)), "the denied signal changed nothing");
    assert!(!a.tool_names().await.contains(&"process_signal".to_string()), "tools/list hides the denied tool");
    // The rest of her admin grant still works.
    let r = a.call("server_info", json!({})).await;
    assert!(!r.is_tool_error(), "{}", r.body);

    // whoami shows the deny, the ignored value and both typos with their source.
    let w = a.call("whoami", json!({})).await;
    let w = w.structured();
    assert!(w["denied_tools"]["process_signal"][0].as_str().is_some_and(|s| s.starts_with("grant ")), "{w}");
    let ignored = w["ignored_grants"].to_string();
    assert!(ignored.contains("unknown field expires") && ignored.contains("tools.deny is applied"), "{w}");
    let unknown = &w["unknown_tools"];
    assert!(unknown["procss_kill"][0].as_str().is_some_and(|s| s.ends_with("tools.deny")), "{w}");
    assert!(unknown["contaner_stop"][0].as_str().is_some_and(|s| s.starts_with("policy rule 0")), "{w}");
    assert_eq!(unknown.as_object().map(|o| o.len()), Some(2), "{w}");
    assert_eq!(w["access_withheld"], json!([]), "{w}");

    // bob's deny cannot be read: it might deny anything, so his viewer
    // grant gives nothing; whoami still answers and says why.
    let r = b.call("container_logs", json!({"container": "x"})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "unreadable deny: {}", r.body);
    let r = b.call("server_info", json!({})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "access withheld: {}", r.body);
    assert_eq!(b.tool_names().await, ["whoami"]);
    let w = b.call("whoami", json!({})).await;
    let w = w.structured();
    assert!(w["access_withheld"][0].as_str().is_some_and(|s| s.contains("tools.deny")), "{w}");
    assert_eq!(w["effective_scopes"], json!([]), "{w}");

    for n in [alice, bob] {
        n.close().await.expect("close");
    }
}

/// The start of a (possibly huge, e.g. tools/list) JSON body, for messages.
fn short(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}

/// Tagged CI nodes get `viewer` from the local policy; three denials
/// block.
const CI_CONFIG: &str = r#"
[[policy.rules]]
tags = ["tag:ci"]
roles = ["viewer"]

[limits.rate]
max_denials = 3
block_secs = 300
"#;

/// Two nodes with the same tag are one principal (`tags:tag:ci`) for
/// policy, but one node's denials must not block the other, and one node
/// must not use the other's MCP session. (Before commit 1c44e97 all three
/// were keyed by the principal id alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_nodes_do_not_share_blocks_or_sessions() {
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = start_tagged_server(&hs, tmp.path(), "ops-tags", CI_CONFIG);
    let host = server.dns_name.clone();
    let key = hs.tagged_key("tag:ci");
    let node_a = client::node("ci-a", &hs.url, &key, &tmp.path().join("a")).await;
    let node_b = client::node("ci-b", &hs.url, &key, &tmp.path().join("b")).await;
    let mut a = session(&node_a, &host).await;
    let mut b = session(&node_b, &host).await;

    // Same principal, different nodes.
    let wa = a.call("whoami", json!({})).await.structured().clone();
    let wb = b.call("whoami", json!({})).await.structured().clone();
    assert_eq!(wa["id"], "tags:tag:ci", "{wa}");
    assert_eq!(wb["id"], "tags:tag:ci", "{wb}");
    assert_ne!(wa["node_id"], wb["node_id"], "two nodes: {wa} {wb}");

    // Node B presents node A's session id: 404, as for another user.
    let mut thief = Client::new(Via::Tailnet(node_b.clone(), host.clone()), &host);
    thief.session = a.session.clone();
    let r = thief.request("tools/list", json!({})).await;
    assert_eq!(r.status, 404, "B must not use A's session: {}", short(&r.body));
    let r = thief.call("whoami", json!({})).await;
    assert_eq!(r.status, 404, "B must not call through A's session: {}", short(&r.body));

    // Node A trips the repeated-denial block.
    let victim = Victim::spawn();
    for i in 0..3 {
        let r = a.call("process_signal", json!({"pid": victim.pid()})).await;
        assert_eq!(r.error_category(), Some("permission_denied"), "denial {i}: {}", r.body);
    }
    let r = a.call("whoami", json!({})).await;
    assert_eq!(r.status, 429, "A is blocked: {}", r.body);

    // Node B, same tag, still gets answers.
    let r = b.call("server_info", json!({})).await;
    assert_eq!(r.status, 200, "B is not blocked by A: {}", r.body);
    assert!(!r.is_tool_error(), "{}", r.body);
    let r = b.call("whoami", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // And A is still blocked.
    assert_eq!(a.call("whoami", json!({})).await.status, 429);

    for n in [node_a, node_b] {
        n.close().await.expect("close");
    }
    assert!(server.stop().success());
    // The block names node A only.
    let audit = std::fs::read_to_string(tmp.path().join("server/audit.jsonl")).expect("audit");
    let blocks: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "anomaly" && v["detail"]["event"] == "repeated_denials")
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:#?}");
    assert_eq!(blocks[0]["node"], wa["node_name"], "{blocks:#?}");
}

/// One HTTP/1.1 connection over the tailnet, kept alive for every request
/// (the support client dials a fresh connection per request, which would
/// re-identify the caller every time and prove nothing here).
struct KeptConn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<Result<(), hyper::Error>>,
    host: String,
    session: Option<String>,
    next_id: u64,
}

impl KeptConn {
    async fn open(node: &tailops::tailnet::Node, host: &str) -> Self {
        let s = client::dial_retry(node, &format!("{host}:80"), Duration::from_secs(30)).await;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.expect("handshake");
        let driver = tokio::spawn(conn);
        let mut c = KeptConn { sender, driver, host: host.to_string(), session: None, next_id: 0 };
        let r = c
            .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "kept-alive", "version": "1"}}}))
            .await;
        assert_eq!(r.status, 200, "initialize: {}", r.body);
        c.session = r.header("mcp-session-id");
        let n = c.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert!(n.status == 202 || n.status == 200, "initialized: {}", n.status);
        c
    }

    /// POSTs on the same connection; panics if the server closed it.
    async fn post(&mut self, msg: Value) -> Reply {
        assert!(!self.driver.is_finished(), "the kept-alive connection was closed");
        self.sender.ready().await.expect("connection still open");
        let mut req = hyper::Request::post("/mcp")
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", PROTOCOL);
        }
        let req = req.body(Full::new(Bytes::from(msg.to_string()))).expect("request");
        let res = tokio::time::timeout(Duration::from_secs(30), self.sender.send_request(req))
            .await
            .expect("response within 30 s")
            .expect("response on the kept-alive connection");
        read_reply(res).await
    }

    async fn call(&mut self, tool: &str) -> Reply {
        self.next_id += 1;
        let id = self.next_id;
        self.post(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}),
        )
        .await
    }
}

/// bob holds `viewer` by grant; the revocation drops that grant.
const GRANT_POLICY: &str = r#"{
  "tagOwners": { "tag:tailops": ["alice@"] },
  "grants": [
    { "src": ["*"], "dst": ["*"], "ip": ["*"] },
    { "src": ["bob@"], "dst": ["tag:tailops"],
      "app": { "tailops.dev/cap/tailops": [ { "roles": ["viewer"] } ] } }
  ]
}
"#;
const REVOKED_POLICY: &str = r#"{
  "tagOwners": { "tag:tailops": ["alice@"] },
  "grants": [
    { "src": ["*"], "dst": ["*"], "ip": ["*"] }
  ]
}
"#;

/// The identity TTL of the test server, seconds.
const TTL_SECS: u64 = 2;

/// A grant revoked in the ACL stops working on a connection that was
/// identified before the revocation, within `identity_ttl_secs` of the
/// server's node learning of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_grant_stops_on_a_kept_alive_connection() {
    let hs = Headscale::start_with_policy(GRANT_POLICY);
    let tmp = tempfile::tempdir().expect("tmp");
    let config = format!("[limits]\nidentity_ttl_secs = {TTL_SECS}\n");
    let server = start_tagged_server(&hs, tmp.path(), "ops-ttl", &config);
    let host = server.dns_name.clone();
    let bob = client::node("bob-k", &hs.url, &hs.user_key("bob", true), &tmp.path().join("b")).await;

    let mut kept = KeptConn::open(&bob, &host).await;
    let r = kept.call("server_info").await;
    assert!(!r.is_tool_error(), "granted before the revocation: {}", r.body);
    assert_eq!(r.structured()["limits"]["identity_ttl_secs"], TTL_SECS, "{}", r.body);

    // Revoke: headscale (policy mode "file") reloads its policy on SIGHUP.
    std::fs::write(hs.dir.path().join("policy.hujson"), REVOKED_POLICY).expect("write policy");
    let revoked = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(hs.pid() as i32).expect("pid"),
        rustix::process::Signal::HUP,
    )
    .expect("SIGHUP headscale");

    // The attacker keeps using the kept connection; a fresh connection
    // shows when the server's node has learnt of the revocation.
    let mut propagated: Option<Duration> = None;
    let denied = loop {
        if propagated.is_none() {
            let who = client::get(&bob, &host, "/whoami").await.json();
            if who["capabilities"].get(CAP).is_none() {
                propagated = Some(revoked.elapsed());
            }
        }
        let r = kept.call("server_info").await;
        if r.error_category() == Some("permission_denied") {
            break revoked.elapsed();
        }
        assert!(!r.is_tool_error(), "{}", r.body);
        match propagated {
            // TTL_SECS plus room for a loaded box (the fresh connection that
            // measures `p` and the kept call each take a while); still far
            // below the 30 s default TTL a config not applied would keep.
            Some(p) => assert!(
                revoked.elapsed() < p + Duration::from_secs(TTL_SECS + 8),
                "the revoked grant still works on the kept connection {:?} after the server's node \
                 learnt of the revocation (identity_ttl_secs = {TTL_SECS})",
                revoked.elapsed() - p
            ),
            None => {
                assert!(revoked.elapsed() < Duration::from_secs(60), "the revocation did not reach the server node")
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let propagated = propagated.unwrap_or(denied);
    eprintln!("revocation reached the server node after {propagated:?}; kept connection denied after {denied:?}");

    // Same connection, no scope left.
    let w = kept.call("whoami").await;
    assert_eq!(w.structured()["effective_scopes"], json!([]), "{}", w.body);
    bob.close().await.expect("close");
}
