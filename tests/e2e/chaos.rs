//! Chaos (issue 15 item 5, the control-plane and Docker parts): what
//! happens to calls when the things around tailops crash.
//!
//! - headscale is SIGKILLed under load (its embedded DERP goes with it):
//!   kept-alive MCP sessions keep answering while control is down, the
//!   load never sees a failure, and once control is back new connections
//!   — from known nodes and from a node that joins afterwards — succeed.
//! - dockerd is SIGKILLed during calls (an exec in flight, reads looping):
//!   every answer is a result or a structured `unavailable`, never a hang or
//!   another error; the same tailops process works again once dockerd is
//!   back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::load::{
    GIVE_UP, LOAD_POLICY, READERS, Session, Tally, Until, answered_ok, lock, mix, nodes, reader_session, server_config,
    short, verified_audit,
};
use crate::mcp::start_tagged_server;
use crate::support::client as tailnet_client;
use crate::support::dockerd::Dockerd;
use crate::support::headscale::Headscale;
use crate::support::mcp::{Via, client, fails, ok};
use crate::support::server::ServerProcess;

/// Reader sessions per principal kept calling through the chaos.
const LOAD_PER_READER: usize = 2;
/// Calls each kept session must answer while control is down.
const CALLS_WHILE_DOWN: usize = 3;

/// Waits (bounded by [`GIVE_UP`]) until `f` holds.
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + GIVE_UP;
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens a session, retrying the whole exchange (dial, identify,
/// initialize) within [`GIVE_UP`]: a node that just joined is known to the
/// server only once control has told it.
async fn open_eventually(node: &tailops::tailnet::Node, host: &str) -> Session {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        match Session::open(node, host).await {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                eprintln!("new session: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("no new session within {GIVE_UP:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_crash_during_load() {
    let mut hs = Headscale::start_with_policy(LOAD_POLICY);
    for u in ["carol", "dave", "erin"] {
        hs.cli(&["users", "create", u]);
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = start_tagged_server(&hs, tmp.path(), "ops-chaos", &server_config(LOAD_PER_READER + 4));
    let host = server.dns_name.clone();
    let nodes = nodes(&hs, tmp.path(), &READERS).await;

    // One kept-alive session per reader, checked by hand; load beside them.
    let mut kept = Vec::new();
    let mut kept_calls = 0u64;
    for who in READERS {
        let mut s = Session::open(&nodes[who], &host).await.unwrap_or_else(|e| panic!("{who}: {e}"));
        let r = s.call("whoami", json!({})).await.expect("whoami");
        assert!(answered_ok(&r), "{who}: {}", short(&r.body));
        kept_calls += 1;
        kept.push((who, s));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut load = Vec::new();
    for (r, &who) in READERS.iter().enumerate() {
        for i in 0..LOAD_PER_READER {
            let until = Until::Flag(stop.clone());
            let (node, host, tally) = (nodes[who].clone(), host.clone(), tally.clone());
            load.push(tokio::spawn(reader_session(node, host, who, r * LOAD_PER_READER + i, until, 1, tally)));
        }
    }
    let sessions = (READERS.len() * LOAD_PER_READER) as u64;
    wait_until("the load runs", || lock(&tally).total() >= 2 * sessions).await;

    // Control crashes.
    hs.kill();
    let at_kill = lock(&tally).total();
    for (who, s) in kept.iter_mut() {
        for i in 0..CALLS_WHILE_DOWN {
            let (tool, args) = mix(i);
            let r = s.call(tool, args).await.unwrap_or_else(|e| panic!("{who} {tool} while control is down: {e}"));
            assert!(answered_ok(&r), "{who} {tool} while control is down: {}", short(&r.body));
            kept_calls += 1;
        }
        assert!(s.is_open(), "{who}: still the same connection");
    }
    wait_until("the load goes on while control is down", || lock(&tally).total() >= at_kill + 2 * sessions).await;
    let failures = lock(&tally).failures.clone();
    assert!(failures.is_empty(), "the load failed while control was down: {failures:#?}");
    let down_calls = lock(&tally).total() - at_kill;
    // What a NEW connection does meanwhile is reported, not asserted: the
    // peers are still in the node's map, so it may well work.
    let dialled = nodes["bob"].dial(&format!("{host}:80"), Duration::from_secs(5)).await;
    eprintln!("a new connection while control is down: {}", if dialled.is_ok() { "dialled" } else { "failed" });
    drop(dialled);

    // Control returns: new sessions from the known nodes, and from a node
    // that joins only now.
    hs.start_again();
    for who in READERS {
        let mut s = open_eventually(&nodes[who], &host).await;
        let r = s.call("server_info", json!({})).await.expect("server_info");
        assert!(answered_ok(&r), "{who} on a new session after control returned: {}", short(&r.body));
        kept_calls += 1;
        s.close().await.expect("close");
    }
    let newcomer =
        tailnet_client::node("chaos-newcomer", &hs.url, &hs.user_key("bob", true), &tmp.path().join("newcomer")).await;
    let mut s = open_eventually(&newcomer, &host).await;
    let r = s.call("whoami", json!({})).await.expect("whoami");
    assert!(answered_ok(&r), "the new node: {}", short(&r.body));
    assert!(r.structured()["node_name"].as_str().is_some_and(|n| n.starts_with("chaos-newcomer.")), "{}", r.body);
    kept_calls += 1;
    s.close().await.expect("close");

    // The kept sessions lived through it all.
    for (who, mut s) in kept {
        let r = s.call("memory_usage", json!({})).await.unwrap_or_else(|e| panic!("{who}: {e}"));
        assert!(answered_ok(&r), "{who} after control returned: {}", short(&r.body));
        kept_calls += 1;
        s.close().await.expect("close");
    }
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.expect("load task");
    }
    let t = std::mem::take(&mut *lock(&tally));
    assert!(t.failures.is_empty(), "{} load failures: {:#?}", t.failures.len(), t.failures);
    eprintln!(
        "control crash: {} load calls ({down_calls} while control was down), {kept_calls} on kept/new sessions",
        t.total()
    );

    newcomer.close().await.expect("close");
    for (_, n) in nodes {
        n.close().await.expect("close");
    }
    assert!(server.stop().success());
    let records = verified_audit(&tmp.path().join("server"));
    let calls = records.iter().filter(|r| r["kind"] == "tool_call").count() as u64;
    assert_eq!(calls, t.total() + kept_calls, "one audit record per call");
}

/// The config of a dev-listen admin server on `d`.
fn docker_config(d: &Dockerd) -> String {
    format!(
        "[local]\nname = \"chaos\"\nroles = [\"admin\"]\n[limits.rate]\ncalls_per_minute = 60000\nburst = 10000\n\
         writes_per_minute = 600\nwrite_burst = 100\n{}",
        d.config("exec_enabled = true\n")
    )
}

/// A process (on this host, in any container) whose argv is exactly `argv`.
fn process_running(argv: &[&str]) -> bool {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want)))
        .unwrap_or(false)
}

/// One answer of a looping reader: the phase its call started in, the
/// tool, the JSON-RPC body (or the HTTP status and body when not 200).
type Answer = (u8, &'static str, Value);

/// When an answer's call started, relative to the crash.
const BEFORE: u8 = 0;
const DOWN: u8 = 1;
const BACK: u8 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_killed_mid_call() {
    let mut d = Dockerd::start();
    let img = "tailops-test/busybox:chaos";
    d.busybox_image(img, &[]);
    d.run(&["--name", "tl-chaos"], img, &["sleep", "300"]);
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), &docker_config(&d), &[]);
    let via = Via::Tcp(addr);
    let host = addr.to_string();
    let mut c = client(addr).await;
    let l = ok(&mut c, "container_list", json!({})).await;
    assert_eq!(l["containers"][0]["name"], "tl-chaos", "{l}");

    // Reads loop across the crash; each answer is kept with the phase its
    // call started in.
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let mut readers = Vec::new();
    for tool in ["container_list", "docker_info", "image_list"] {
        let (phase, answers) = (phase.clone(), answers.clone());
        readers.push(tokio::spawn(async move {
            let mut c = client(addr).await;
            loop {
                let started = phase.load(Ordering::SeqCst);
                let r = c.call(tool, json!({})).await;
                let body = r.body.clone();
                let v = if r.status == 200 { body } else { json!({"http_status": r.status, "body": body}) };
                lock(&answers).push((started, tool, v.clone()));
                // Done once dockerd is back and answered this tool.
                if started == BACK && answered_ok(&r) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    // An exec in flight: its process runs in the container when dockerd dies.
    let argv = ["sleep", "3737"];
    let exec = {
        let mut c = client(addr).await;
        tokio::spawn(async move {
            c.call("container_exec", json!({"container": "tl-chaos", "argv": argv, "timeout_secs": 300})).await
        })
    };
    wait_until("the exec runs in the container", || process_running(&argv) || exec.is_finished()).await;
    if exec.is_finished() {
        let r = exec.await.expect("exec task");
        panic!("the exec ended before dockerd was killed: {} {}", r.status, r.body);
    }
    wait_until("reads answered before the crash", || lock(&answers).len() >= 3).await;

    d.kill();
    phase.store(DOWN, Ordering::SeqCst);
    let r = tokio::time::timeout(GIVE_UP, exec).await.expect("the exec call is answered").expect("exec task");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.is_tool_error(), "the exec lost its daemon: {}", r.body);
    assert_eq!(r.error_category(), Some("unavailable"), "{}", r.body);

    // Down: structured unavailable, other domains fine, /readyz says so.
    for tool in ["container_list", "docker_info", "container_inspect"] {
        let args = if tool == "container_inspect" { json!({"container": "tl-chaos"}) } else { json!({}) };
        let (cat, e) = fails(&mut c, tool, args).await;
        assert_eq!(cat, "unavailable", "{tool}: {e}");
        assert!(e["hint"].as_str().is_some_and(|h| !h.is_empty()), "{e}");
    }
    ok(&mut c, "system_overview", json!({})).await;
    let r = crate::support::mcp::get(&via, &host, "/readyz").await;
    assert_eq!((r.status, r.body["checks"]["docker"]["status"].as_str()), (200, Some("unavailable")), "{}", r.body);
    wait_until("reads answered while dockerd is down", || {
        lock(&answers).iter().filter(|(p, _, _)| *p == DOWN).count() >= 3
    })
    .await;

    // Back: the same tailops process answers again.
    phase.store(BACK, Ordering::SeqCst);
    d.start_again();
    for t in readers {
        tokio::time::timeout(GIVE_UP, t).await.expect("reads recover after dockerd is back").expect("reader");
    }
    let l = ok(&mut c, "container_list", json!({"all": true})).await;
    let state = l["containers"][0]["state"].as_str().unwrap_or_default().to_string();
    assert_eq!(l["containers"][0]["name"], "tl-chaos", "{l}");
    // Without live-restore, dockerd stops what it finds still running
    // after its crash; starting it again goes through the same tailops.
    assert_eq!(state, "exited", "{l}");
    let s = ok(&mut c, "container_start", json!({"container": "tl-chaos"})).await;
    assert_eq!(s["status"], "running", "{s}");
    let r = ok(&mut c, "container_exec", json!({"container": "tl-chaos", "argv": ["echo", "back"]})).await;
    assert!(r.to_string().contains("back"), "{r}");
    let r = crate::support::mcp::get(&via, &host, "/readyz").await;
    assert_eq!(r.body["checks"]["docker"]["status"], "ok", "{}", r.body);

    // Every answer was a result or a structured unavailable, and none that
    // started while dockerd was dead was a result.
    let answers = std::mem::take(&mut *lock(&answers));
    let mut counts: BTreeMap<(u8, &str), u64> = BTreeMap::new();
    for (p, tool, v) in &answers {
        let category = v["result"]["structuredContent"]["error"]["category"].as_str();
        let is_ok = v["result"].is_object() && v["result"]["isError"] != json!(true);
        let kind = match (is_ok, category) {
            (true, _) => "ok",
            (false, Some("unavailable")) => "unavailable",
            _ => panic!("{tool} (phase {p}): neither a result nor unavailable: {}", short(v)),
        };
        assert!(!(*p == DOWN && kind == "ok"), "{tool} answered a result while dockerd was dead: {}", short(v));
        *counts.entry((*p, kind)).or_default() += 1;
    }
    eprintln!("dockerd crash: answers by (phase, kind) = {counts:?}, state after restart: {state}");

    assert!(server.stop().success());
    let records = verified_audit(&tmp.path().join("state"));
    let exec_records: Vec<&Value> =
        records.iter().filter(|r| r["tool"] == "container_exec" && r["args"]["argv"][1] == "3737").collect();
    assert_eq!(exec_records.len(), 2, "intent and result of the interrupted exec: {exec_records:#?}");
    assert_eq!(exec_records[1]["error_category"], "unavailable", "{exec_records:#?}");
}
