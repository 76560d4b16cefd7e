//! `file_search` on one generated tree of 200,000 files, against `find`,
//! `rg` and `grep -r` in the same run.
//!
//! `cargo bench --bench files_search` (`FILES_BENCH_N` files, default
//! 200000; `FILES_BENCH_REPS` repetitions per point, default 5). The tree
//! is generated once under `target/bench-files/` and reused. Installs
//! Debian's `ripgrep` when `rg` is missing (skipped, with a note, if that
//! fails). Every `file_search` time is a full MCP `tools/call` over
//! dev-listen (HTTP, authz, audit included).
//!
//! Points:
//! - name search: index (`source: index`), walk (a second server with
//!   `index_max_entries = 0`, `source: walk`), `find DIR -name GLOB`;
//! - content search (a rare literal): file_search (redacted matching),
//!   `rg` (default threads and `-j1`), `grep -r`;
//! - index memory: computed bytes (file_roots) and the RSS difference
//!   between the indexing server and the non-indexing one.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::mcp::{Client, Via};
use support::server::ServerProcess;

const CONFIG: &str = "[local]\nname = \"bench\"\nroles = [\"admin\"]\n\
[limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n\
[audit]\nfsync = \"interval\"\n";

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

/// 100 files per directory, 20 directories per parent; each file 3 lines.
fn tree(n: usize) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-files");
    let root = base.join(format!("tree-{n}"));
    let done = base.join(format!("tree-{n}.done"));
    if done.exists() {
        return root;
    }
    let _ = std::fs::remove_dir_all(&root);
    let t0 = Instant::now();
    for i in 0..n {
        let dir = root.join(format!("d{:03}", i / 2000)).join(format!("s{:02}", (i / 100) % 20));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        let needle = if i % 50_000 == 4242 { format!("NEEDLE_{i}\n") } else { String::new() };
        let body = format!(
            "line one of file {i}: the quick brown fox\n{needle}key_{i} = value {i} jumps over\nthe lazy dog, end of {i}\n"
        );
        std::fs::write(dir.join(format!("file_{i:06}.txt")), body).expect("write");
    }
    std::fs::write(&done, "").expect("marker");
    println!("generated {n} files in {:.1} s", t0.elapsed().as_secs_f64());
    root
}

fn serve(root: &Path, extra: &str) -> (ServerProcess, std::net::SocketAddr, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tmp");
    // read_write only so that `raw: true` can measure what redaction costs.
    let cfg = format!(
        "{CONFIG}[files]\n{extra}\n[[files.roots]]\nname = \"t\"\npath = \"{}\"\nmode = \"read_write\"\n",
        root.display()
    );
    let (s, a) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    (s, a, tmp)
}

async fn client(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    c
}

async fn index_info(c: &mut Client) -> Value {
    let t0 = Instant::now();
    loop {
        let r = c.call("file_roots", json!({})).await;
        let idx = r.structured()["roots"][0]["index"].clone();
        if idx["state"] != "building" || t0.elapsed() > Duration::from_secs(600) {
            return idx;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn time_search(c: &mut Client, args: Value, reps: usize) -> (f64, Value) {
    let mut t = Vec::new();
    let mut last = Value::Null;
    for _ in 0..reps {
        let t0 = Instant::now();
        let r = c.call("file_search", args.clone()).await;
        t.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert!(!r.is_tool_error(), "{}", r.body);
        last = r.structured().clone();
    }
    (median(t), last)
}

/// Median ms of a command (None when it cannot run).
fn time_cmd(argv: &[&str], reps: usize) -> Option<(f64, String)> {
    let mut t = Vec::new();
    let mut out = String::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        let o = Command::new(argv[0]).args(&argv[1..]).output().ok()?;
        t.push(t0.elapsed().as_secs_f64() * 1000.0);
        out = String::from_utf8_lossy(&o.stdout).into_owned();
    }
    Some((median(t), out))
}

fn have(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn ensure_rg() -> bool {
    if have("rg") {
        return true;
    }
    println!("rg missing: apt-get install -y ripgrep");
    let _ = Command::new("apt-get").args(["install", "-y", "-q", "ripgrep"]).status();
    have("rg")
}

#[tokio::main]
async fn main() {
    let n = env_usize("FILES_BENCH_N", 200_000);
    let reps = env_usize("FILES_BENCH_REPS", 5);
    let root = tree(n);
    let rs = root.display().to_string();
    println!(
        "tree: {n} files (+{} dirs) in {rs}; {reps} reps per point, median; release build; 2-core machine",
        n / 100 + n / 2000 + 1
    );

    let (indexed, ia, _t1) = serve(&root, "");
    let (walking, wa, _t2) = serve(&root, "index_max_entries = 0");
    let mut ic = client(ia).await;
    let mut wc = client(wa).await;
    let t0 = Instant::now();
    let info = index_info(&mut ic).await;
    println!("index: {} after {:.1} s (polled): {info}", info["state"], t0.elapsed().as_secs_f64());
    let (ri, rw) = (rss_kib(indexed.pid()), rss_kib(walking.pid()));
    let entries = info["entries"].as_u64().unwrap_or(0).max(1);
    let bytes = info["bytes"].as_u64().unwrap_or(0);
    println!(
        "index memory: computed {bytes} B = {:.1} B/entry; RSS indexing server {ri} KiB vs non-indexing {rw} KiB: delta {} KiB = {:.1} B/entry",
        bytes as f64 / entries as f64,
        ri.saturating_sub(rw),
        (ri.saturating_sub(rw) * 1024) as f64 / entries as f64
    );

    // Warm the page cache and dentries.
    let _ = time_cmd(&["find", &rs, "-name", "x"], 2);
    let _ = time_cmd(&["grep", "-r", "x", &rs], 1);

    let glob = "*_077777.txt";
    let args = json!({"path": "t:", "name": glob});
    let (ms_index, v) = time_search(&mut ic, args.clone(), reps.max(20)).await;
    assert_eq!(v["source"], "index", "{v}");
    let found = v["entries"].as_array().map(Vec::len).unwrap_or(0);
    let (ms_walk, v) = time_search(&mut wc, args, reps).await;
    assert_eq!(v["source"], "walk", "{v}");
    let (ms_find, out) = time_cmd(&["find", &rs, "-name", glob], reps).expect("find");
    println!("\nname search `{glob}` ({found} found; find: {} lines)", out.lines().count());
    println!("  file_search (index)  {ms_index:9.2} ms   find/index = {:.1}x", ms_find / ms_index);
    println!("  file_search (walk)   {ms_walk:9.2} ms   find/walk  = {:.2}x", ms_find / ms_walk);
    println!("  find -name           {ms_find:9.2} ms");
    let glob2 = "file_0777*";
    let (ms_index2, v2) =
        time_search(&mut ic, json!({"path": "t:", "name": glob2, "max_results": 1000}), reps.max(20)).await;
    let (ms_find2, _) = time_cmd(&["find", &rs, "-name", glob2], reps).expect("find");
    println!(
        "name search `{glob2}` ({} found): index {ms_index2:.2} ms, find {ms_find2:.2} ms: {:.1}x",
        v2["entries"].as_array().map(Vec::len).unwrap_or(0),
        ms_find2 / ms_index2
    );

    let needle = "NEEDLE_[0-9]+";
    let cargs = json!({"path": "t:", "content": needle, "max_seconds": 30, "max_bytes": 4u64 << 30});
    let (ms_content, v) = time_search(&mut ic, cargs.clone(), reps).await;
    let (ms_content_walk, _) = time_search(&mut wc, cargs, reps).await;
    println!(
        "\ncontent search /{needle}/ ({} matches, {} files, {} bytes scanned)",
        v["matches"].as_array().map(Vec::len).unwrap_or(0),
        v["files_scanned"],
        v["bytes_scanned"]
    );
    println!("  file_search (index list) {ms_content:9.1} ms");
    println!("  file_search (walk list)  {ms_content_walk:9.1} ms");
    if ensure_rg() {
        let (ms_rg, out) = time_cmd(&["rg", "-n", needle, &rs], reps).expect("rg");
        let (ms_rg1, _) = time_cmd(&["rg", "-j1", "-n", needle, &rs], reps).expect("rg");
        println!(
            "  rg                       {ms_rg:9.1} ms   ({} lines)  file_search/rg = {:.2}x",
            out.lines().count(),
            ms_content / ms_rg
        );
        println!("  rg -j1                   {ms_rg1:9.1} ms   file_search/rg-j1 = {:.2}x", ms_content / ms_rg1);
    } else {
        println!("  rg: not available (apt-get install ripgrep failed); skipped");
    }
    let (ms_grep, _) = time_cmd(&["grep", "-rnE", needle, &rs], reps).expect("grep");
    println!("  grep -rE                 {ms_grep:9.1} ms   file_search/grep = {:.2}x", ms_content / ms_grep);

    // What redaction costs: 1,000 of the 2,000 files under d000 match, so
    // all of them go through the second (redacted) pass; raw skips it.
    let many = "end of [0-9]*[0-4]$";
    let dir = format!("{rs}/d000");
    let margs = |raw: bool| json!({"path": "t:d000", "content": many, "max_results": 1000, "raw": raw});
    let (ms_red, v) = time_search(&mut ic, margs(false), reps).await;
    let (ms_raw, vr) = time_search(&mut ic, margs(true), reps).await;
    println!(
        "\ncontent search /{many}/ in d000 (2,000 files; {} / {} matches redacted / raw)",
        v["matches"].as_array().map(Vec::len).unwrap_or(0),
        vr["matches"].as_array().map(Vec::len).unwrap_or(0)
    );
    println!("  file_search (redacted)   {ms_red:9.1} ms   redacted/raw = {:.2}x", ms_red / ms_raw);
    println!("  file_search (raw)        {ms_raw:9.1} ms");
    if have("rg") {
        let (ms_rg, _) = time_cmd(&["rg", "-n", many, &dir], reps).expect("rg");
        println!("  rg                       {ms_rg:9.1} ms   file_search(redacted)/rg = {:.2}x", ms_red / ms_rg);
    }
}
