//! `tcp_check` overhead vs a bare tokio connect to the same loopback
//! listener, in the same run.
//!
//! `cargo bench --bench net_probe` (samples: `NET_PROBE_BENCH_N`, default
//! 500). tailops serves over dev-listen with `[network] allow =
//! ["127.0.0.0/8"]`; each `tcp_check` is one `tools/call` on the same MCP
//! session. Three numbers per point: the bare connect (this process, tokio
//! `TcpStream::connect`), the connect time tailops itself reports
//! (`connect_ms`: policy check + connect inside the server), and the whole
//! `tools/call` round trip (MCP over HTTP, spine: admission, audit record).

#[path = "../tests/support/mod.rs"]
mod support;

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("NET_PROBE_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = "[local]\nname = \"bench\"\nroles = [\"operator\"]\n\
               [limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n\
               [network]\nallow = [\"127.0.0.0/8\"]\n";
    let (mut server, addr) = ServerProcess::start_dev(dir.path(), cfg, &[]);
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);

    // Warm up both paths.
    for _ in 0..20 {
        let _ = tokio::net::TcpStream::connect(target).await.expect("connect");
        let _ = c.call("tcp_check", json!({"host": "127.0.0.1", "port": target.port()})).await;
    }
    let (mut bare, mut inside, mut call) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t0 = Instant::now();
        let s = tokio::net::TcpStream::connect(target).await.expect("connect");
        bare.push(t0.elapsed());
        drop(s);
        let t0 = Instant::now();
        let r = c.call("tcp_check", json!({"host": "127.0.0.1", "port": target.port()})).await;
        call.push(t0.elapsed());
        let out = &r.body["result"]["structuredContent"];
        assert_eq!(out["connected"], true, "{}", r.body);
        let ms = out["connect_ms"].as_f64().expect("connect_ms");
        inside.push(Duration::from_secs_f64(ms / 1e3));
    }
    println!("| point | samples | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    let b = row("bare tokio connect (bench process)", &mut bare);
    let i = row("tcp_check connect_ms (inside tailops)", &mut inside);
    let a = row("tcp_check tools/call round trip", &mut call);
    println!();
    println!("connect_ms / bare: {:.2}x", i.as_secs_f64() / b.as_secs_f64());
    println!("tools/call / bare: {:.1}x", a.as_secs_f64() / b.as_secs_f64());
    server.stop();
}
