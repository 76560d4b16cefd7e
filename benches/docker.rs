//! `container_list` and `container_stats` (all running) with 20 running
//! containers, next to the raw Engine API and `docker ps` in the same run.
//!
//! `cargo bench --bench docker` (calls per point: `DOCKER_BENCH_N`, default
//! 200 for lists, N/10 for stats). A test-owned dockerd (Debian docker.io)
//! runs 20 busybox containers (`--network none`); tailops serves over
//! dev-listen. Baselines: `GET /containers/json` and
//! `GET /containers/{id}/stats?stream=false`, one-shot and two-sample (all
//! 20, concurrently) straight to the daemon's unix socket with hyper, and
//! the `docker ps` CLI. tailops runs on the daemon's host, so
//! `container_stats` reads the containers' cgroup files (asserted).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::json;
use support::dockerd::Dockerd;
use support::mcp::{Client, Via};
use support::server::ServerProcess;

const RUNNING: usize = 20;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn row(what: &str, v: &mut [Duration]) {
    let (p50, p99) = (pct(v, 0.50), pct(v, 0.99));
    println!("| {what} | {} | {:.2} | {:.2} |", v.len(), p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
}

async fn engine_get(sock: &std::path::Path, path: &str) -> Vec<u8> {
    let s = tokio::net::UnixStream::connect(sock).await.expect("connect docker.sock");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(path).header("host", "docker").body(Empty::<Bytes>::new()).expect("req");
    let res = send.send_request(req).await.expect("response");
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.into_body().collect().await.expect("body").to_bytes().to_vec()
}

fn main() {
    let n: usize = std::env::var("DOCKER_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let d = Dockerd::start();
    let img = "tailops-bench/busybox:1";
    d.busybox_image(img, &[]);
    let ids: Vec<String> = (0..RUNNING).map(|_| d.run(&[], img, &["sleep", "3600"])).collect();
    let cfg = format!(
        "[local]\nname = \"bench\"\nroles = [\"viewer\"]\n[limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n{}",
        d.config("")
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
        assert_eq!(c.initialize().await.status, 200);
        // Warm up both paths.
        let r = c.call("container_list", json!({})).await;
        assert!(!r.is_tool_error(), "{}", r.body);
        let listed = r.structured()["containers"].as_array().map(Vec::len).unwrap_or(0);
        assert!(listed >= RUNNING, "{listed} containers listed: {}", r.body);
        engine_get(&d.sock, "/containers/json").await;

        println!("{RUNNING} running containers; dockerd from Debian docker.io; release build; 2-core machine");
        println!("| call | samples | p50 ms | p99 ms |");
        println!("|---|---|---|---|");
        let mut t = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            let r = c.call("container_list", json!({})).await;
            t.push(t0.elapsed());
            assert!(!r.is_tool_error());
        }
        row("tools/call container_list", &mut t);
        let mut t = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            engine_get(&d.sock, "/containers/json").await;
            t.push(t0.elapsed());
        }
        row("Engine API GET /containers/json (baseline)", &mut t);
        let mut t = Vec::new();
        for _ in 0..(n / 10).max(5) {
            let t0 = Instant::now();
            let out = d.cmd(&["ps", "-q"]).output().expect("docker ps");
            t.push(t0.elapsed());
            assert!(out.status.success());
        }
        row("`docker ps` CLI (baseline, incl. process start)", &mut t);

        let stats_n = (n / 10).max(5);
        // The first call has no kept CPU readings: two one-shot readings
        // per container, `CPU_FIRST_WINDOW` apart.
        let t0 = Instant::now();
        let r = c.call("container_stats", json!({})).await;
        let mut first = vec![t0.elapsed()];
        assert!(!r.is_tool_error(), "{}", r.body);
        row(&format!("tools/call container_stats (all {RUNNING}), first call"), &mut first);
        let mut t = Vec::new();
        for _ in 0..stats_n {
            let t0 = Instant::now();
            let r = c.call("container_stats", json!({})).await;
            t.push(t0.elapsed());
            assert!(!r.is_tool_error(), "{}", r.body);
            let rows = r.structured()["containers"].as_array().map(Vec::len).unwrap_or(0);
            assert_eq!(rows, RUNNING, "{}", r.body);
            // The figure is the cgroup path's: tailops runs on the daemon's host.
            assert_eq!(r.structured()["from_cgroup"].as_u64(), Some(RUNNING as u64), "{}", r.body);
        }
        row(&format!("tools/call container_stats (all {RUNNING}), later calls"), &mut t);
        // Calls at least CPU_MIN_WINDOW apart: every one computes a fresh
        // CPU % against the kept reading (back-to-back calls repeat it).
        let mut t = Vec::new();
        for _ in 0..stats_n {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let t0 = Instant::now();
            let r = c.call("container_stats", json!({})).await;
            t.push(t0.elapsed());
            assert!(!r.is_tool_error(), "{}", r.body);
            assert_eq!(r.structured()["from_cgroup"].as_u64(), Some(RUNNING as u64), "{}", r.body);
        }
        row(&format!("tools/call container_stats (all {RUNNING}), calls 300 ms apart (fresh CPU %)"), &mut t);
        let mut t = Vec::new();
        for _ in 0..stats_n {
            let t0 = Instant::now();
            let futs: Vec<_> = ids
                .iter()
                .map(|id| {
                    let sock = d.sock.clone();
                    let path = format!("/containers/{id}/stats?stream=false&one-shot=true");
                    tokio::spawn(async move { engine_get(&sock, &path).await })
                })
                .collect();
            for f in futs {
                f.await.expect("stats");
            }
            t.push(t0.elapsed());
        }
        row(&format!("Engine API stats?stream=false&one-shot=true × {RUNNING}, concurrent (baseline)"), &mut t);
        let mut t = Vec::new();
        for _ in 0..stats_n {
            let t0 = Instant::now();
            let futs: Vec<_> = ids
                .iter()
                .map(|id| {
                    let sock = d.sock.clone();
                    let path = format!("/containers/{id}/stats?stream=false");
                    tokio::spawn(async move { engine_get(&sock, &path).await })
                })
                .collect();
            for f in futs {
                f.await.expect("stats");
            }
            t.push(t0.elapsed());
        }
        row(&format!("Engine API stats?stream=false × {RUNNING}, concurrent (baseline)"), &mut t);
    });
    d.clean();
}
