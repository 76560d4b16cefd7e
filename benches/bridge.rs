//! What `tailops connect` adds to a call: `whoami` latency through the
//! stdio bridge vs a direct tailnet client, in the same run, same server.
//!
//! `cargo bench --bench bridge` (calls per block: `BENCH_CALLS`, default
//! 200; 5 alternating blocks per path). Both paths are one sequential MCP
//! session (2025-11-25) to the same tailnet server:
//! - direct: an in-process tailnet node (alice), one keep-alive HTTP/1.1
//!   connection, `tools/call whoami` in a loop (the benches/mcp.rs client);
//! - bridge: `tailops connect HOST` as a child process (its own ephemeral
//!   node, alice's key), the same requests as lines on its stdin, the
//!   answer read from its stdout.
//!
//! Latency is per call, end to end; the difference of the medians is what
//! the bridge costs (stdio framing, its HTTP client, its own tailnet hop).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::headscale::Headscale;
use support::server::{ServeOpts, ServerProcess};

const CONFIG: &str = "[limits]\nmax_sessions_per_principal = 256\n\
[limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n\
[audit]\nfsync = \"interval\"\n";
const ROUNDS: usize = 5;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn init_msg(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
}

fn call_msg(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}})
}

struct Direct {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    session: Option<String>,
}

impl Direct {
    async fn post(&mut self, body: &Value) -> Option<String> {
        let mut req = hyper::Request::post("/mcp")
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25");
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).expect("req");
        self.sender.ready().await.expect("ready");
        let res = self.sender.send_request(req).await.expect("response");
        assert!(res.status().is_success(), "{}", res.status());
        let sid = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("\"result\"") || body.is_empty());
        sid
    }
}

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let tmp = tempfile::tempdir().expect("tmp");
    let hs = Headscale::start();
    std::fs::write(tmp.path().join("cfg.toml"), CONFIG).expect("cfg");
    let key = hs.tagged_key("tag:tailops");
    let _server = ServerProcess::start(ServeOpts {
        hostname: "bench-b",
        control_url: &hs.url,
        state_dir: &tmp.path().join("state"),
        auth_key: Some(&key),
        tags: None,
        ephemeral: true,
        extra_args: vec!["--config".into(), tmp.path().join("cfg.toml").display().to_string()],
    });
    let host = format!("bench-b.{}", support::headscale::BASE_DOMAIN);

    // The bridge: its own node, alice's key.
    let mut bridge = Command::new(ServerProcess::bin())
        .args(["connect", &host, "--client-hostname", "bench-bridge", "--control-url", &hs.url])
        .env("TS_AUTHKEY", hs.user_key("alice", true))
        .env("TS_DEBUG_USE_DERP_HTTP", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn bridge");
    let mut bin = bridge.stdin.take().expect("stdin");
    let mut bout = BufReader::new(bridge.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut bridge_call = |msg: &Value, answer: bool| {
        writeln!(bin, "{msg}").expect("write");
        if answer {
            line.clear();
            bout.read_line(&mut line).expect("read");
            assert!(line.contains("\"result\""), "{line}");
        }
    };
    bridge_call(&init_msg(1), true);
    bridge_call(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), false);

    rt.block_on(async {
        let alice =
            support::client::node("bench-direct", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
        let s = support::client::dial_retry(&alice, &format!("{host}:80"), Duration::from_secs(30)).await;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.expect("handshake");
        tokio::spawn(conn);
        let mut d = Direct { sender, host: host.clone(), session: None };
        d.session = d.post(&init_msg(1)).await;
        d.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;

        // Warm-up both paths.
        let mut id = 10u64;
        for _ in 0..20 {
            id += 1;
            d.post(&call_msg(id)).await;
            bridge_call(&call_msg(id), true);
        }
        let (mut direct, mut via) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for _ in 0..calls {
                id += 1;
                let t = Instant::now();
                d.post(&call_msg(id)).await;
                direct.push(t.elapsed().as_secs_f64() * 1e3);
            }
            for _ in 0..calls {
                id += 1;
                let t = Instant::now();
                bridge_call(&call_msg(id), true);
                via.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        direct.sort_by(f64::total_cmp);
        via.sort_by(f64::total_cmp);
        println!("{} calls per path in {ROUNDS} alternating blocks, sequential, one session each", direct.len());
        println!("| path | p50 ms | p90 ms | p99 ms |");
        println!("|---|---|---|---|");
        for (name, v) in [("direct tailnet client", &direct), ("through `tailops connect`", &via)] {
            println!("| {name} | {:.3} | {:.3} | {:.3} |", pct(v, 0.5), pct(v, 0.9), pct(v, 0.99));
        }
        println!(
            "| bridge adds (p50 difference) | {:.3} | {:.3} | {:.3} |",
            pct(&via, 0.5) - pct(&direct, 0.5),
            pct(&via, 0.9) - pct(&direct, 0.9),
            pct(&via, 0.99) - pct(&direct, 0.99)
        );
        alice.close().await.expect("close");
    });
    drop(bin);
    let _ = bridge.wait();
}
