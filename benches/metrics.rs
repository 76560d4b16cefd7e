//! `/metrics` scrape cost: time and size of one scrape of `tailops serve`
//! with ≈ 500 samples, against node_exporter's `/metrics` on the same host
//! in the same run (Debian `prometheus-node-exporter`, when installed;
//! `apt-get install prometheus-node-exporter`).
//!
//! `cargo bench --bench metrics` (`SCRAPES`, default 200, per target). Before
//! measuring, every tool a viewer may call is called once, so the spine's
//! families (a histogram per tool) hold their realistic size. Both targets
//! run on loopback; scrapes are sequential on one kept-alive connection;
//! the table shows median and p90 latency and the body size, and the ratio
//! of tailops to node_exporter.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde_json::json;
use support::mcp::{Client, Via};
use support::server::ServerProcess;

async fn scrape_many(addr: std::net::SocketAddr, n: usize) -> (Vec<Duration>, usize, usize) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let mut times = Vec::with_capacity(n);
    let (mut size, mut samples) = (0, 0);
    for _ in 0..n {
        let req = hyper::Request::get("/metrics")
            .header("host", addr.to_string())
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .expect("request");
        send.ready().await.expect("connection ready for the next request");
        let t0 = Instant::now();
        let res = send.send_request(req).await.expect("send");
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        times.push(t0.elapsed());
        size = body.len();
        samples = String::from_utf8_lossy(&body).lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    }
    times.sort();
    (times, size, samples)
}

fn pct(t: &[Duration], p: f64) -> f64 {
    let i = ((t.len() as f64 - 1.0) * p).round() as usize;
    t[i.min(t.len() - 1)].as_secs_f64() * 1e3
}

fn main() {
    let n: usize = std::env::var("SCRAPES").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let dir = tempfile::tempdir().expect("tmp");
    // Scrapes count against the caller's rate limit: lift it for the bench.
    let cfg =
        "[local]\nname = \"p\"\nroles = [\"viewer\"]\n[limits.rate]\ncalls_per_minute = 1000000\nburst = 100000\n";
    let (mut server, addr) = ServerProcess::start_dev(dir.path(), cfg, &[]);
    rt.block_on(async {
        let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
        assert_eq!(c.initialize().await.status, 200);
        for tool in c.tool_names().await {
            let _ = c.call(&tool, json!({})).await;
        }
    });
    let (t, size, samples) = rt.block_on(scrape_many(addr, n));
    println!("scrapes per target: {n}");
    println!("| target | samples | body bytes | median ms | p90 ms |");
    println!("|---|---|---|---|---|");
    println!("| tailops /metrics | {samples} | {size} | {:.3} | {:.3} |", pct(&t, 0.5), pct(&t, 0.9));

    let port = support::headscale::free_port();
    let ne = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match ne {
        Ok(mut child) => {
            let ne_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(ne_addr).is_err() {
                assert!(Instant::now() < deadline, "node_exporter did not listen");
                std::thread::sleep(Duration::from_millis(50));
            }
            let (u, usize_, usamples) = rt.block_on(scrape_many(ne_addr, n));
            println!("| node_exporter /metrics | {usamples} | {usize_} | {:.3} | {:.3} |", pct(&u, 0.5), pct(&u, 0.9));
            println!(
                "ratio tailops / node_exporter: median time {:.2}, size {:.2}",
                pct(&t, 0.5) / pct(&u, 0.5),
                size as f64 / usize_ as f64
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(e) => println!("node_exporter not run ({e}): apt-get install prometheus-node-exporter"),
    }
    server.stop();
}
