//! The sampler's own cost at the default interval, and its history memory.
//!
//! `cargo bench --bench sampler` (window: `IDLE_SECS`, default 60). Two
//! `tailops serve --dev-listen` processes run side by side for the same
//! window: one samples at the default 5 s interval, the baseline at 3600 s
//! (so it samples only at start-up). Their CPU time difference over the
//! window is the sampler's cost. The history memory bound comes from
//! `server_info` (sampler.history_bytes_at_full_retention).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::mcp::{Client, Via};
use support::proc::cpu_secs;
use support::server::ServerProcess;

fn main() {
    let secs: u64 = std::env::var("IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    let (sampling, addr) = ServerProcess::start_dev(a.path(), "[local]\nname = \"b\"\nroles = [\"viewer\"]\n", &[]);
    let (baseline, _) = ServerProcess::start_dev(
        b.path(),
        "[local]\nname = \"b\"\nroles = [\"viewer\"]\n[sampler]\ninterval_secs = 3600\nrollup_secs = 3600\n",
        &[],
    );
    std::thread::sleep(Duration::from_secs(2));
    let (s0, b0) = (cpu_secs(sampling.pid()), cpu_secs(baseline.pid()));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let wall = t0.elapsed().as_secs_f64();
    let (s1, b1) = (cpu_secs(sampling.pid()), cpu_secs(baseline.pid()));
    let info = rt.block_on(async {
        let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
        assert_eq!(c.initialize().await.status, 200);
        c.call("server_info", json!({})).await.structured()["sampler"].clone()
    });
    let sp = (s1 - s0) / wall * 100.0;
    let bp = (b1 - b0) / wall * 100.0;
    println!("window: {wall:.1} s");
    println!("| process | CPU (% of one core) |");
    println!("|---|---|");
    println!("| serve, sampler every 5 s (default) | {sp:.3} |");
    println!("| serve, sampler every 3600 s (baseline) | {bp:.3} |");
    println!(
        "sampler cost ≈ {:.3} % of one core; last sample took {:.2} ms",
        sp - bp,
        info["last_sample_ms"].as_f64().unwrap_or(0.0)
    );
    println!(
        "history: {} metrics, {} bytes now, {} bytes (≈ {:.2} MiB) at full retention",
        info["metrics"],
        info["history_bytes"],
        info["history_bytes_at_full_retention"],
        info["history_bytes_at_full_retention"].as_f64().unwrap_or(0.0) / (1 << 20) as f64
    );
}
