//! `file_tail` of the last 100 lines of a 2 GiB file, next to `tail -n 100`
//! on the same file in the same run.
//!
//! `cargo bench --bench file_tail` (calls per point: `FILE_TAIL_BENCH_N`,
//! default 200). The file is sparse: 8 KiB of text, a hole up to 2 GiB,
//! then 10,000 lines of ~60 bytes appended at the end (a real log's end,
//! without writing 2 GiB to disk; reading a hole costs no disk I/O, so
//! the point is what each side *reads*, shown as the server's rchar per
//! call). tailops serves over dev-listen (release build); each sample is
//! one `tools/call` on a fresh HTTP connection. The baseline is GNU
//! coreutils `tail -n 100 FILE` as a process (incl. its start), which also
//! seeks to the end and reads backwards.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::mcp::{Client, Via};
use support::server::ServerProcess;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn row(what: &str, v: &mut [Duration]) -> Duration {
    let (p50, p99) = (pct(v, 0.50), pct(v, 0.99));
    println!("| {what} | {} | {:.3} | {:.3} |", v.len(), p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
    p50
}

fn rchar(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.trim().parse().ok()).expect("rchar")
}

fn main() {
    let n: usize = std::env::var("FILE_TAIL_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let data = tempfile::tempdir().expect("data");
    let path = data.path().join("big.log");
    {
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all("2026-11-29T20:00:00Z header line of text\n".repeat(200).as_bytes()).expect("w");
        f.set_len(2 << 30).expect("sparse");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("append");
        let mut tail = String::from("\n");
        for i in 0..10_000 {
            tail.push_str(&format!("2026-11-29T20:00:{:02}Z INFO request {i} served in 3 ms by worker 7\n", i % 60));
        }
        f.write_all(tail.as_bytes()).expect("w");
    }
    let size = std::fs::metadata(&path).expect("meta").len();
    let cfg = format!(
        "[local]\nname = \"bench\"\nroles = [\"viewer\"]\n[limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n\
         [[files.roots]]\nname = \"logs\"\npath = \"{}\"\n",
        data.path().display()
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
        assert_eq!(c.initialize().await.status, 200);
        let r = c.call("file_tail", json!({"path": "logs:big.log", "lines": 100})).await;
        assert!(!r.is_tool_error(), "{}", r.body);
        assert_eq!(r.structured()["lines"].as_array().map(Vec::len), Some(100));
        let out = Command::new("tail").args(["-n", "100"]).arg(&path).output().expect("tail");
        assert_eq!(out.stdout.iter().filter(|&&b| b == b'\n').count(), 100);

        println!(
            "file: {size} bytes (sparse: 8 KiB text, hole, 10,000 lines at the end); release build; 2-core machine"
        );
        println!("| what | samples | p50 ms | p99 ms |");
        println!("|---|---|---|---|");
        let before = rchar(server.pid());
        let mut t = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            let r = c.call("file_tail", json!({"path": "logs:big.log", "lines": 100})).await;
            t.push(t0.elapsed());
            assert!(!r.is_tool_error());
        }
        let per_call = (rchar(server.pid()) - before) / n as u64;
        let ours = row("tools/call file_tail lines=100 (HTTP, incl. MCP + audit)", &mut t);
        let mut t = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            let out = Command::new("tail").args(["-n", "100"]).arg(&path).output().expect("tail");
            t.push(t0.elapsed());
            assert!(out.status.success());
        }
        let base = row("`tail -n 100` (baseline, incl. process start)", &mut t);
        println!();
        println!("ratio file_tail / tail -n (p50): {:.2}", ours.as_secs_f64() / base.as_secs_f64());
        println!("server rchar per file_tail call (file + socket reads): {per_call} bytes");
    });
}
