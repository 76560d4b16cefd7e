//! `whoami` throughput and latency over dev-listen and over the tailnet.
//!
//! `cargo bench --bench mcp` (per-point window: `BENCH_SECS`, default 5).
//! Each worker holds one keep-alive HTTP/1.1 connection and one MCP session
//! and calls `tools/call whoami` in a loop; latency is per call, end to end.
//! Baseline in the same run: `GET /healthz` on the same kind of connection
//! (HTTP + identity middleware, no MCP), so the ratio shows what the MCP
//! layer (rmcp, authz, audit) costs.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::json;
use support::headscale::Headscale;
use support::server::{ServeOpts, ServerProcess};
use tailops::tailnet::Node;

const CONFIG: &str = "[local]\nname = \"bench\"\nroles = [\"admin\"]\n\
[limits]\nmax_sessions_per_principal = 256\n\
[limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n\
[audit]\nfsync = \"interval\"\n";

#[derive(Clone)]
enum Target {
    Tcp(std::net::SocketAddr),
    Tailnet(Node, String),
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> Sender {
    match t {
        Target::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            handshake(s).await
        }
        Target::Tailnet(node, host) => {
            let s = support::client::dial_retry(node, &format!("{host}:80"), Duration::from_secs(30)).await;
            handshake(s).await
        }
    }
}

async fn handshake<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>(s: S) -> Sender {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn send(
    sender: &mut Sender,
    host: &str,
    method: &str,
    path: &str,
    session: Option<&str>,
    body: &str,
) -> (u16, Option<String>) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(s) = session {
        req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25");
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).expect("req");
    sender.ready().await.expect("ready");
    let res = sender.send_request(req).await.expect("response");
    let status = res.status().as_u16();
    let sid = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let _ = res.into_body().collect().await.expect("body");
    (status, sid)
}

struct Point {
    calls: usize,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

/// `tool` = None: GET /healthz; Some(name): tools/call name.
async fn run(t: Target, host: String, concurrency: usize, secs: u64, tool: Option<&'static str>) -> Point {
    let mcp = tool.is_some();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..concurrency {
        let t = t.clone();
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = connect(&t).await;
            let mut session = None;
            if mcp {
                let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}});
                let (st, sid) = send(&mut s, &host, "POST", "/mcp", None, &init.to_string()).await;
                assert_eq!(st, 200);
                session = sid;
                let n = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
                send(&mut s, &host, "POST", "/mcp", session.as_deref(), &n).await;
            }
            let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool.unwrap_or("whoami"),"arguments":{}}}).to_string();
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let (st, _) = if mcp {
                    send(&mut s, &host, "POST", "/mcp", session.as_deref(), &call).await
                } else {
                    send(&mut s, &host, "GET", "/healthz", None, "").await
                };
                assert_eq!(st, 200);
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Point { calls: all.len(), secs, p50: pct(0.50), p99: pct(0.99) }
}

fn row(mode: &str, what: &str, c: usize, p: &Point) {
    println!(
        "| {mode} | {what} | {c} | {:.0} | {:.2} | {:.2} |",
        p.calls as f64 / p.secs,
        p.p50.as_secs_f64() * 1e3,
        p.p99.as_secs_f64() * 1e3
    );
}

/// `p` relative to `base`: throughput and latency ratios.
fn ratio_row(what: &str, c: usize, p: &Point, base: &Point) {
    println!(
        "|  | {what} | {c} | {:.2}x throughput | {:.2}x | {:.2}x |",
        (p.calls as f64 / p.secs) / (base.calls as f64 / base.secs),
        p.p50.as_secs_f64() / base.p50.as_secs_f64(),
        p.p99.as_secs_f64() / base.p99.as_secs_f64()
    );
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let tmp = tempfile::tempdir().expect("tmp");
    let (_dev, addr) = ServerProcess::start_dev(tmp.path(), CONFIG, &[]);

    let hs = Headscale::start();
    let tdir = tmp.path().join("tailnet");
    std::fs::create_dir_all(&tdir).expect("dir");
    std::fs::write(tdir.join("cfg.toml"), CONFIG.replace("[local]\nname = \"bench\"\nroles = [\"admin\"]\n", ""))
        .expect("cfg");
    let key = hs.tagged_key("tag:tailops");
    let _ts = ServerProcess::start(ServeOpts {
        hostname: "bench",
        control_url: &hs.url,
        state_dir: &tdir.join("state"),
        auth_key: Some(&key),
        tags: None,
        ephemeral: true,
        extra_args: vec!["--config".into(), tdir.join("cfg.toml").display().to_string()],
    });

    rt.block_on(async {
        let alice =
            support::client::node("alice-bench", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
        let host = format!("bench.{}", support::headscale::BASE_DOMAIN);
        println!("window per point: {secs} s; release build; 2-core machine");
        println!("| transport | request | concurrency | calls/s | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|---|");
        for (mode, t, h) in [
            ("dev-listen", Target::Tcp(addr), addr.to_string()),
            ("tailnet", Target::Tailnet(alice.clone(), host.clone()), host),
        ] {
            for c in [1, 16] {
                let base = run(t.clone(), h.clone(), c, secs, None).await;
                row(mode, "GET /healthz (baseline)", c, &base);
                let p = run(t.clone(), h.clone(), c, secs, Some("whoami")).await;
                row(mode, "tools/call whoami", c, &p);
                ratio_row("whoami/baseline", c, &p, &base);
                if mode == "dev-listen" {
                    let o = run(t.clone(), h.clone(), c, secs, Some("system_overview")).await;
                    row(mode, "tools/call system_overview", c, &o);
                    ratio_row("system_overview/whoami", c, &o, &p);
                }
            }
        }
        alice.close().await.expect("close");
    });
}
