//! `file_search` against a real `tailops serve --dev-listen` and real
//! trees in temp dirs: names from the index (and the walk when the root is
//! over `index_max_entries`), the index following creates, renames and
//! deletes (polled up to a bound), content regex with line numbers and
//! context, `.gitignore`, budgets at their edges, secrets that cannot be
//! matched, denied files never searched or listed, and a narrowed caller.
//!
//! (A local equivalent of `tests/support/files.rs`, which was not on main
//! when this was written: `serve` below.)

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mcp::client;
use crate::support::mcp::{Client, Via};
use crate::support::server::ServerProcess;

const RATE: &str =
    "[limits.rate]\ncalls_per_minute = 60000\nburst = 5000\nwrites_per_minute = 6000\nwrite_burst = 500\n";
/// How long the index may take to follow a change before the test gives
/// up. The index follows by inotify only (no periodic rescan), so a
/// missing follow still fails; the issue's 1 s latency goal is not asserted
/// here: one search call alone can take longer than that on a loaded box.
const FOLLOW_BOUND: Duration = Duration::from_secs(30);
/// How long a fresh index may take to become ready (small trees).
const READY_BOUND: Duration = Duration::from_secs(20);

/// A dev server with an admin `[local]` caller and `roots` (name, path).
fn serve(roots: &[(&str, &Path)], extra: &str, local_extra: &str) -> (ServerProcess, SocketAddr, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cfg = format!("[local]\nname = \"fs\"\nroles = [\"admin\"]\n{local_extra}\n{RATE}[files]\n{extra}\n");
    for (name, path) in roots {
        cfg.push_str(&format!("[[files.roots]]\nname = \"{name}\"\npath = \"{}\"\n", path.display()));
    }
    let (s, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    (s, addr, tmp)
}

async fn ok(c: &mut Client, args: Value) -> Value {
    let r = c.call("file_search", args.clone()).await;
    assert_eq!(r.status, 200, "{args}: {}", r.body);
    assert!(!r.is_tool_error(), "{args}: {}", r.body);
    r.structured().clone()
}

async fn fails(c: &mut Client, args: Value) -> String {
    let r = c.call("file_search", args.clone()).await;
    assert!(r.is_tool_error(), "{args} should fail: {}", r.body);
    r.error_category().unwrap_or_default().to_string()
}

fn paths(v: &Value) -> Vec<String> {
    let mut p: Vec<String> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_string())
        .collect();
    p.sort();
    p
}

/// Waits until root `name`'s index is ready (file_roots shows it).
async fn ready(c: &mut Client, name: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let r = c.call("file_roots", json!({})).await;
        let roots = r.structured()["roots"].as_array().cloned().unwrap_or_default();
        let idx = roots.iter().find(|r| r["name"] == name).map(|r| r["index"].clone()).unwrap_or_default();
        if idx["state"] != "building" {
            return idx;
        }
        assert!(t0.elapsed() < READY_BOUND, "index of {name} not ready: {idx}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a name search until `pred` holds, up to [`FOLLOW_BOUND`];
/// every answer must come from the index.
async fn until(c: &mut Client, args: Value, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let v = ok(c, args.clone()).await;
        assert_eq!(v["source"], "index", "{v}");
        let p = paths(&v);
        if pred(&p) {
            return p;
        }
        assert!(t0.elapsed() < FOLLOW_BOUND, "index did not follow within {FOLLOW_BOUND:?}: {args} → {p:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tmp");
    let r = t.path();
    write(r, "logs/app.log", "one\ntwo ERROR here\nthree\nfour\n");
    write(r, "logs/old/app.1.log", "ERROR old\n");
    write(r, "src/main.rs", "fn main() {}\n");
    write(r, "app/.env", "ERROR=needle\n");
    write(r, "home/.aws/credentials", "needle\n");
    write(r, "keys/id_rsa", "needle\n");
    write(r, "conf/db.conf", "user=app\npassword=hunter2\nhost=db\n");
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn name_search_from_the_index_and_walk_over_the_cap() {
    let t = tree();
    let (_s, addr, _tmp) = serve(&[("t", t.path())], "", "");
    let mut c = client(addr).await;
    let idx = ready(&mut c, "t").await;
    assert_eq!(idx["state"], "ready", "{idx}");
    // logs, logs/app.log, logs/old, logs/old/app.1.log, src, src/main.rs,
    // app, home, keys, conf, conf/db.conf: secrets are not indexed.
    assert_eq!(idx["entries"], 11, "{idx}");
    let readyz = crate::support::mcp::get(&Via::Tcp(addr), &addr.to_string(), "/readyz").await;
    let ri = &readyz.body["checks"]["files"]["roots"]["t"]["index"];
    assert_eq!((ri["state"].as_str(), ri["entries"].as_u64()), (Some("ready"), Some(11)), "{}", readyz.body);
    let v = ok(&mut c, json!({"path": "t:", "name": "*.log"})).await;
    assert_eq!(v["source"], "index");
    assert_eq!(paths(&v), ["t:logs/app.log", "t:logs/old/app.1.log"]);
    // A subdirectory, and a glob with '/' over the path below it.
    let v = ok(&mut c, json!({"path": "t:logs", "name": "old/*.log"})).await;
    assert_eq!(paths(&v), ["t:logs/old/app.1.log"]);
    // Secrets: never listed, whatever the glob.
    let all = paths(&ok(&mut c, json!({"path": "t:", "name": "*", "max_results": 1000})).await);
    assert_eq!(all.len(), 11, "{all:?}");
    for s in [".env", ".aws", "credentials", "id_rsa"] {
        assert!(all.iter().all(|p| !p.contains(s)), "{s} listed: {all:?}");
        let v = ok(&mut c, json!({"path": "t:", "name": s})).await;
        assert!(paths(&v).is_empty(), "{s}: {v}");
    }
    // A denied or missing directory as the search base.
    assert_eq!(fails(&mut c, json!({"path": "t:home/.aws", "name": "*"})).await, "permission_denied");
    assert_eq!(fails(&mut c, json!({"path": "t:nope", "name": "*"})).await, "not_found");
    assert_eq!(fails(&mut c, json!({"path": "t:../etc", "name": "*"})).await, "invalid_input");

    // index_max_entries at its edge: 11 entries fit in 11, not in 10.
    let (_s2, addr2, _tmp2) = serve(&[("t", t.path())], "index_max_entries = 11", "");
    let mut c2 = client(addr2).await;
    assert_eq!(ready(&mut c2, "t").await["state"], "ready");
    let (_s3, addr3, _tmp3) = serve(&[("t", t.path())], "index_max_entries = 10", "");
    let mut c3 = client(addr3).await;
    assert_eq!(ready(&mut c3, "t").await["state"], "over_cap");
    let readyz = crate::support::mcp::get(&Via::Tcp(addr3), &addr3.to_string(), "/readyz").await;
    assert_eq!(readyz.body["checks"]["files"]["roots"]["t"]["index"]["state"], "over_cap", "{}", readyz.body);
    let v = ok(&mut c3, json!({"path": "t:", "name": "*.log"})).await;
    assert_eq!(v["source"], "walk", "{v}");
    assert!(v["source_note"].as_str().is_some_and(|n| n.contains("index_max_entries")), "{v}");
    assert_eq!(paths(&v), ["t:logs/app.log", "t:logs/old/app.1.log"]);
    let all = paths(&ok(&mut c3, json!({"path": "t:", "name": "*", "max_results": 1000})).await);
    assert_eq!(all.len(), 11, "the walk hides what the index hides: {all:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_index_follows_creates_renames_and_deletes() {
    let t = tree();
    let r = t.path().to_path_buf();
    let (_s, addr, _tmp) = serve(&[("t", t.path())], "", "");
    let mut c = client(addr).await;
    assert_eq!(ready(&mut c, "t").await["state"], "ready");
    let q = |g: &str| json!({"path": "t:", "name": g, "max_results": 1000});

    write(&r, "logs/new.log", "x");
    until(&mut c, q("new.log"), |p| p == ["t:logs/new.log"]).await;
    std::fs::rename(r.join("logs/new.log"), r.join("logs/renamed.log")).expect("rename");
    until(&mut c, q("*ed.log"), |p| p == ["t:logs/renamed.log"]).await;
    until(&mut c, q("new.log"), |p| p.is_empty()).await;
    std::fs::remove_file(r.join("logs/renamed.log")).expect("rm");
    until(&mut c, q("renamed.log"), |p| p.is_empty()).await;

    // A new directory filled at once (before its watch can exist), then
    // renamed, then a file inside it after the rename, then removed.
    write(&r, "d1/d2/deep.txt", "x");
    write(&r, "d1/.env.local", "SECRET=1");
    until(&mut c, q("deep.txt"), |p| p == ["t:d1/d2/deep.txt"]).await;
    std::fs::rename(r.join("d1"), r.join("e1")).expect("rename dir");
    until(&mut c, q("deep.txt"), |p| p == ["t:e1/d2/deep.txt"]).await;
    write(&r, "e1/d2/later.txt", "x");
    until(&mut c, q("later.txt"), |p| p == ["t:e1/d2/later.txt"]).await;
    // Moved into a denied name: gone from the index.
    std::fs::rename(r.join("e1"), r.join("e1.key")).expect("rename into deny");
    until(&mut c, q("*.txt"), |p| p.is_empty()).await;
    std::fs::rename(r.join("e1.key"), r.join("f1")).expect("rename back");
    until(&mut c, q("*.txt"), |p| p == ["t:f1/d2/deep.txt", "t:f1/d2/later.txt"]).await;
    std::fs::remove_dir_all(r.join("f1")).expect("rm -r");
    until(&mut c, q("*.txt"), |p| p.is_empty()).await;
    // A directory moved in from outside the root.
    let outside = tempfile::tempdir().expect("tmp");
    write(outside.path(), "m/in.txt", "x");
    std::fs::rename(outside.path().join("m"), r.join("m")).expect("move in");
    until(&mut c, q("in.txt"), |p| p == ["t:m/in.txt"]).await;
    // ... and out again.
    std::fs::rename(r.join("m"), outside.path().join("m2")).expect("move out");
    until(&mut c, q("in.txt"), |p| p.is_empty()).await;
    write(outside.path(), "m2/after.txt", "x");
    // Never: secrets created meanwhile, or files of a moved-out directory.
    let all = paths(&ok(&mut c, q("*")).await);
    assert!(all.iter().all(|p| !p.contains(".env") && !p.contains("after.txt")), "{all:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn content_regex_lines_context_secrets_and_denied_files() {
    let t = tree();
    let r = t.path();
    write(r, "bin/blob.bin", "ERROR\0binary\n");
    // A hard link to a file outside the root (same filesystem).
    let outside = tempfile::tempdir().expect("tmp");
    std::fs::write(outside.path().join("x"), "ERROR outside\n").expect("write");
    std::fs::hard_link(outside.path().join("x"), r.join("hard.log")).expect("hard link");
    let (_s, addr, _tmp) = serve(&[("t", t.path())], "", "");
    let mut c = client(addr).await;
    ready(&mut c, "t").await;
    let v = ok(&mut c, json!({"path": "t:", "content": "ERROR", "context": 1})).await;
    let m = v["matches"].as_array().expect("matches");
    let got: Vec<(String, u64)> = m
        .iter()
        .map(|x| (x["path"].as_str().unwrap_or("").to_string(), x["line_number"].as_u64().unwrap_or(0)))
        .collect();
    assert!(got.contains(&("t:logs/app.log".into(), 2)), "{v}");
    assert!(got.contains(&("t:logs/old/app.1.log".into(), 1)), "{v}");
    assert_eq!(got.len(), 2, "no .env, no binary, no hard link: {v}");
    let app = m.iter().find(|x| x["path"] == "t:logs/app.log").expect("app.log");
    assert_eq!(app["line"], "two ERROR here");
    assert_eq!(app["before"], json!(["one"]));
    assert_eq!(app["after"], json!(["three"]));
    assert!(v["files_skipped"].as_u64().unwrap_or(0) >= 2, "binary + hard link skipped: {v}");
    assert_eq!(v["redacted"], true);
    // Denied files are never searched: their content is not found.
    let v = ok(&mut c, json!({"path": "t:", "content": "needle"})).await;
    assert_eq!(v["matches"], json!([]), "{v}");
    // Case-insensitive, with a name glob.
    let v = ok(&mut c, json!({"path": "t:", "content": "error", "case_insensitive": true, "name": "*.1.log"})).await;
    assert_eq!(v["matches"].as_array().map(Vec::len), Some(1), "{v}");

    // A secret value cannot be matched; its line is shown redacted.
    let v = ok(&mut c, json!({"path": "t:", "content": "hunter2"})).await;
    assert_eq!(v["matches"], json!([]), "secret matched: {v}");
    let v = ok(&mut c, json!({"path": "t:", "content": "hunt.r[0-9]"})).await;
    assert_eq!(v["matches"], json!([]), "secret matched by regex: {v}");
    let v = ok(&mut c, json!({"path": "t:", "content": "^password=h", "context": 1})).await;
    assert_eq!(v["matches"], json!([]), "a prefix of the secret is an oracle too: {v}");
    let v = ok(&mut c, json!({"path": "t:", "content": "password", "context": 2})).await;
    let s = v.to_string();
    assert!(!s.contains("hunter2"), "{s}");
    assert_eq!(v["matches"][0]["line_number"], 2, "{v}");
    // raw: refused on a read-only root even for an admin.
    assert_eq!(fails(&mut c, json!({"path": "t:", "content": "hunter2", "raw": true})).await, "permission_denied");
}

#[tokio::test(flavor = "multi_thread")]
async fn gitignore_when_asked() {
    let t = tempfile::tempdir().expect("tmp");
    let r = t.path();
    write(r, ".gitignore", "target/\n*.tmp\n");
    write(r, "src/lib.rs", "needle\n");
    write(r, "src/x.tmp", "needle\n");
    write(r, "target/debug/out.rs", "needle\n");
    write(r, ".git/HEAD", "needle\n");
    write(r, "sub/.gitignore", "!keep.tmp\n");
    write(r, "sub/keep.tmp", "needle\n");
    let (_s, addr, _tmp) = serve(&[("t", t.path())], "", "");
    let mut c = client(addr).await;
    ready(&mut c, "t").await;
    let files = |v: &Value| {
        let mut p: Vec<String> =
            v["matches"].as_array().expect("m").iter().map(|m| m["path"].as_str().unwrap_or("").to_string()).collect();
        p.sort();
        p
    };
    let v = ok(&mut c, json!({"path": "t:", "content": "needle"})).await;
    assert_eq!(files(&v).len(), 5, "{v}");
    let v = ok(&mut c, json!({"path": "t:", "content": "needle", "gitignore": true})).await;
    assert_eq!(files(&v), ["t:src/lib.rs", "t:sub/keep.tmp"], "{v}");
    let v = ok(&mut c, json!({"path": "t:", "name": "*.rs", "gitignore": true})).await;
    assert_eq!(paths(&v), ["t:src/lib.rs"], "{v}");
    assert_eq!(v["source"], "index");
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_at_their_edges() {
    let t = tempfile::tempdir().expect("tmp");
    let r = t.path();
    // Three files of 10 bytes, one match each.
    for i in 0..3 {
        write(r, &format!("f{i}.txt"), "match 123\n");
    }
    let (_s, addr, _tmp) = serve(&[("t", t.path())], "", "");
    let mut c = client(addr).await;
    ready(&mut c, "t").await;
    for (max, n, stopped) in [(2, 2, json!("results")), (3, 3, Value::Null), (4, 3, Value::Null)] {
        let v = ok(&mut c, json!({"path": "t:", "content": "match", "max_results": max})).await;
        assert_eq!(v["matches"].as_array().map(Vec::len), Some(n), "max_results {max}: {v}");
        assert_eq!(v["stopped_by"], stopped, "max_results {max}: {v}");
        assert_eq!(v["truncated"], !stopped.is_null(), "{v}");
        let v = ok(&mut c, json!({"path": "t:", "name": "*.txt", "max_results": max})).await;
        assert_eq!(v["entries"].as_array().map(Vec::len), Some(n), "name max_results {max}: {v}");
        assert_eq!(v["stopped_by"], stopped, "name max_results {max}: {v}");
    }
    for (max, files, stopped) in [(29, 2, json!("bytes")), (30, 3, Value::Null), (31, 3, Value::Null)] {
        let v = ok(&mut c, json!({"path": "t:", "content": "match", "max_bytes": max})).await;
        assert_eq!(v["files_scanned"], files, "max_bytes {max}: {v}");
        assert_eq!(v["stopped_by"], stopped, "max_bytes {max}: {v}");
    }
    for bad in [
        json!({"path": "t:"}),
        json!({"path": "t:", "name": "*", "max_results": 0}),
        json!({"path": "t:", "name": "*", "max_results": 1001}),
        json!({"path": "t:", "content": "x", "max_bytes": 0}),
        json!({"path": "t:", "content": "x", "max_seconds": 0}),
        json!({"path": "t:", "content": "x", "max_seconds": 31}),
        json!({"path": "t:", "content": "x", "context": 6}),
        json!({"path": "t:", "content": "("}),
        json!({"path": "t:", "name": "a["}),
        json!({"path": "t:", "content": "x".repeat(1025)}),
    ] {
        assert_eq!(fails(&mut c, bad.clone()).await, "invalid_input", "{bad}");
    }
    let v = ok(&mut c, json!({"path": "t:", "content": "x".repeat(1024), "max_seconds": 30, "context": 5})).await;
    assert_eq!(v["matches"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_narrowed_caller_sees_only_its_roots() {
    let a = tree();
    let b = tree();
    let (_s, addr, _tmp) = serve(&[("a", a.path()), ("b", b.path())], "", "files = { roots = [\"a\"] }");
    let mut c = client(addr).await;
    ready(&mut c, "a").await;
    let v = ok(&mut c, json!({"path": "a:", "name": "*.log"})).await;
    assert_eq!(paths(&v).len(), 2);
    assert_eq!(fails(&mut c, json!({"path": "b:", "name": "*.log"})).await, "not_found");
    assert_eq!(fails(&mut c, json!({"path": "b:", "content": "ERROR"})).await, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_only_with_files_write_on_a_read_write_root() {
    let t = tree();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = format!("[[files.roots]]\nname = \"w\"\npath = \"{}\"\nmode = \"read_write\"\n", t.path().display());
    let cfg = |roles: &str| format!("[local]\nname = \"fs\"\nroles = [\"{roles}\"]\n{RATE}{root}");
    let (_s, addr) = ServerProcess::start_dev(tmp.path(), &cfg("admin"), &[]);
    let mut c = client(addr).await;
    let v = ok(&mut c, json!({"path": "w:", "content": "hunter2", "raw": true})).await;
    assert_eq!(v["matches"][0]["line"], "password=hunter2", "{v}");
    assert_eq!(v["redacted"], false);
    let v = ok(&mut c, json!({"path": "w:", "content": "hunter2"})).await;
    assert_eq!(v["matches"], json!([]), "redacted unless raw: {v}");
    // A viewer (files:read, no files:write) cannot ask for raw.
    let tmp2 = tempfile::tempdir().expect("tmp");
    let (_s2, addr2) = ServerProcess::start_dev(tmp2.path(), &cfg("viewer"), &[]);
    let mut c2 = client(addr2).await;
    let r = c2.call("file_search", json!({"path": "w:", "content": "hunter2", "raw": true})).await;
    assert!(r.is_tool_error(), "{}", r.body);
    assert_eq!(r.error_category(), Some("permission_denied"), "{}", r.body);
}
