//! `journal_query` for one unit's last 1,000 lines in a journal of over
//! 1,000,000 entries, next to `journalctl -u UNIT -n 1000 -o json` on the
//! same journal in the same run.
//!
//! `cargo bench --bench journal` (calls per point: `JOURNAL_BENCH_N`,
//! default 30; noise entries: `JOURNAL_BENCH_NOISE`, default 990,000). A
//! real systemd 252 boots in a container of a test-owned dockerd (see
//! `tests/support/systemd.rs`); two oneshot units log at once into its
//! journal: `bench-noise` (`seq 1 NOISE`) and `bench-app` (10,000
//! `app-line-N`), so the app's lines are interleaved with the noise.
//! tailops reads that journal with `[systemd] journal_dir`, over dev-listen
//! with one keep-alive MCP session.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::mcp::{Client, Via};
use support::server::ServerProcess;
use support::systemd::SystemdBox;

const APP_LINES: usize = 10_000;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn row(what: &str, v: &mut [Duration]) -> f64 {
    let (p50, p99) = (pct(v, 0.50), pct(v, 0.99));
    println!("| {what} | {} | {:.2} | {:.2} |", v.len(), p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
    p50.as_secs_f64()
}

fn journalctl(b: &SystemdBox, args: &[&str]) -> Vec<u8> {
    let out = Command::new("journalctl")
        .arg("-D")
        .arg(b.journal_dir())
        .arg("--no-pager")
        .args(args)
        .output()
        .expect("journalctl");
    assert!(out.status.success(), "journalctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn last_message(b: &SystemdBox, unit: &str) -> String {
    String::from_utf8_lossy(&journalctl(b, &["-q", "-o", "cat", "-n", "1", "-u", unit])).trim().to_string()
}

fn main() {
    let n: usize = std::env::var("JOURNAL_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let noise: usize = std::env::var("JOURNAL_BENCH_NOISE").ok().and_then(|s| s.parse().ok()).unwrap_or(990_000);
    let noise_unit = format!("[Service]\nType=oneshot\nLogRateLimitIntervalSec=0\nExecStart=/usr/bin/seq 1 {noise}\n");
    let app_unit = format!(
        "[Service]\nType=oneshot\nLogRateLimitIntervalSec=0\nExecStart=/bin/sh -c \"seq 1 {APP_LINES} | sed s/^/app-line-/\"\n"
    );
    let b = SystemdBox::start(
        &[
            ("etc/systemd/system/bench-noise.service", noise_unit.as_str()),
            ("etc/systemd/system/bench-app.service", app_unit.as_str()),
        ],
        &[],
    );
    let t0 = Instant::now();
    b.exec(&["systemctl", "start", "--no-block", "bench-noise.service", "bench-app.service"]);
    let (want_noise, want_app) = (noise.to_string(), format!("app-line-{APP_LINES}"));
    let deadline = Instant::now() + Duration::from_secs(900);
    while last_message(&b, "bench-noise.service") != want_noise || last_message(&b, "bench-app.service") != want_app {
        assert!(Instant::now() < deadline, "the journal did not fill within 15 min");
        std::thread::sleep(Duration::from_millis(500));
    }
    let fill = t0.elapsed();
    let header = String::from_utf8_lossy(&journalctl(&b, &["--header"])).to_string();
    let entries: u64 = header
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Entry objects:").and_then(|n| n.trim().parse::<u64>().ok()))
        .sum();
    let usage = String::from_utf8_lossy(&journalctl(&b, &["--disk-usage"])).trim().to_string();

    let cfg = format!(
        "[local]\nname = \"bench\"\nroles = [\"viewer\"]\n[limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n{}",
        b.config("")
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
        assert_eq!(c.initialize().await.status, 200);
        let args = json!({"unit": "bench-app", "max_lines": 1000, "max_bytes": 8 << 20});
        let r = c.call("journal_query", args.clone()).await;
        assert!(!r.is_tool_error(), "{}", r.body);
        let got = r.structured()["entries"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(got, 1000, "{}", r.body);
        assert_eq!(r.structured()["entries"][999]["message"], want_app.as_str());
        let lines = journalctl(&b, &["-u", "bench-app.service", "-n", "1000", "-o", "json"]);
        assert_eq!(lines.iter().filter(|c| **c == b'\n').count(), 1000);

        println!(
            "journal: {entries} entries ({usage}), filled in {:.1} s; noise {noise} + app {APP_LINES}; release build; 2-core machine",
            fill.as_secs_f64()
        );
        println!("| call | samples | p50 ms | p99 ms |");
        println!("|---|---|---|---|");
        let mut t = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            let r = c.call("journal_query", args.clone()).await;
            t.push(t0.elapsed());
            assert!(!r.is_tool_error());
        }
        let ours = row("tools/call journal_query unit=bench-app max_lines=1000", &mut t);
        let mut t = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            let out = journalctl(&b, &["-u", "bench-app.service", "-n", "1000", "-o", "json"]);
            t.push(t0.elapsed());
            assert!(!out.is_empty());
        }
        let base = row("`journalctl -u bench-app.service -n 1000 -o json` (baseline, incl. process start)", &mut t);
        println!("ratio journal_query / journalctl (p50): {:.2}", ours / base);
    });
}
