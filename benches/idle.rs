//! Idle cost of `tailops serve` joined to a test tailnet.
//!
//! `cargo bench --bench idle` (window: `IDLE_SECS`, default 60). Starts a
//! real headscale on loopback, `tailops serve` (release build) tagged
//! tag:tailops, and one client node that fetches /whoami once; then both
//! processes sit idle while their CPU time (utime+stime from /proc) and RSS
//! are sampled. headscale, measured over the same window, is the baseline:
//! it is the other long-running Go tailnet program on the machine.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::headscale::Headscale;
use support::server::{ServeOpts, ServerProcess};

/// (utime + stime) in seconds, and VmRSS in KiB.
fn cpu_and_rss(pid: u32) -> (f64, u64) {
    (support::proc::cpu_secs(pid), support::proc::rss_kib(pid))
}

fn main() {
    let secs: u64 = std::env::var("IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let key = hs.tagged_key("tag:tailops");
    let state = tmp.path().join("server");
    let mut server = ServerProcess::start(ServeOpts {
        hostname: "idle",
        control_url: &hs.url,
        state_dir: &state,
        auth_key: Some(&key),
        tags: None,
        ephemeral: false,
        extra_args: Vec::new(),
    });
    let hs_pid = hs.pid();
    rt.block_on(async {
        let alice =
            support::client::node("alice-idle", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
        let res = support::client::get(&alice, &server.dns_name, "/whoami").await;
        assert_eq!(res.status, 200);
        tokio::time::sleep(Duration::from_secs(5)).await; // settle
        let (s0, _) = cpu_and_rss(server.pid());
        let (h0, _) = cpu_and_rss(hs_pid);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let wall = t0.elapsed().as_secs_f64();
        let (s1, srss) = cpu_and_rss(server.pid());
        let (h1, hrss) = cpu_and_rss(hs_pid);
        let scpu = (s1 - s0) / wall * 100.0;
        let hcpu = (h1 - h0) / wall * 100.0;
        println!("idle window: {wall:.1} s, one peer connected");
        println!("| process | CPU (% of one core) | RSS (MiB) |");
        println!("|---|---|---|");
        println!("| tailops serve | {scpu:.3} | {:.1} |", srss as f64 / 1024.0);
        println!("| headscale (baseline) | {hcpu:.3} | {:.1} |", hrss as f64 / 1024.0);
        if hcpu > 0.0 {
            println!("ratio tailops/headscale: CPU {:.2}x, RSS {:.2}x", scpu / hcpu, srss as f64 / hrss.max(1) as f64);
        }
        alice.close().await.expect("close");
    });
    assert!(server.stop().success());
}
