//! The spine against its ceiling, in one run: `whoami` and `system_overview`
//! over dev-listen on tailops (every layer on: identity, Host check,
//! authorization, rate limit, audit) and on a bare rmcp 3.11 + axum server
//! with the same tool shape (`benches/reference/rmcp_axum.rs`, no layers),
//! in both protocol revisions: 2025-11-25 (one MCP session per worker) and
//! 2026-07-28 (stateless: every call a self-contained request).
//!
//! `cargo bench --bench spine` — env: `BENCH_SECS` (window per point,
//! default 5), `BENCH_CONC` (concurrencies, default `1,16`),
//! `BENCH_TOOLS` (default `whoami,system_overview`).
//!
//! Load generator: this process, a closed loop of N workers on a 2-thread
//! tokio runtime, each with one keep-alive HTTP/1.1 connection (hyper
//! client, TCP_NODELAY) and pre-serialised requests. Server CPU is
//! utime+stime from `/proc/PID/stat` over the window, per call; the load
//! generator's own CPU over the same window is reported so a reader can see
//! it is not the bottleneck. Client, servers and the idle server of the pair
//! share the machine's cores.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "reference/rmcp_axum.rs"]
mod reference;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::json;
use support::server::ServerProcess;

const CONFIG: &str = "[local]\nname = \"bench\"\nroles = [\"admin\"]\n\
[limits]\nmax_sessions_per_principal = 1024\n\
[limits.rate]\ncalls_per_minute = 100000000\nburst = 10000000\n\
[audit]\nfsync = \"interval\"\n";

const V2025: &str = "2025-11-25";
const V2026: &str = "2026-07-28";

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Session,
    Stateless,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Session => "2025-11-25 session",
            Mode::Stateless => "2026-07-28 stateless",
        }
    }
}

async fn connect(addr: SocketAddr) -> Sender {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.expect("handshake");
    tokio::spawn(conn);
    sender
}

/// One POST /mcp; returns status, session id header and body length.
async fn post(s: &mut Sender, host: &str, headers: &[(&str, String)], body: Bytes) -> (u16, Option<String>, usize) {
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(body)).expect("req");
    s.ready().await.expect("ready");
    let res = s.send_request(req).await.expect("response");
    let status = res.status().as_u16();
    let sid = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, sid, body.len())
}

/// The headers and body of one `tools/call` in `mode` (after the handshake
/// in session mode).
async fn prepare(s: &mut Sender, host: &str, mode: Mode, tool: &str) -> (Vec<(&'static str, String)>, Bytes) {
    match mode {
        Mode::Session => {
            let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":V2025,"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}});
            let (st, sid, _) = post(s, host, &[], Bytes::from(init.to_string())).await;
            assert_eq!(st, 200, "initialize");
            let sid = sid.expect("session id");
            let h = vec![("mcp-session-id", sid), ("mcp-protocol-version", V2025.to_string())];
            let n = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
            let (st, _, _) = post(s, host, &h, Bytes::from(n)).await;
            assert_eq!(st, 202, "initialized");
            let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{}}});
            (h, Bytes::from(call.to_string()))
        }
        Mode::Stateless => {
            let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":{},
                "_meta":{"io.modelcontextprotocol/protocolVersion":V2026,
                         "io.modelcontextprotocol/clientCapabilities":{},
                         "io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}}});
            let h = vec![
                ("mcp-protocol-version", V2026.to_string()),
                ("mcp-method", "tools/call".to_string()),
                ("mcp-name", tool.to_string()),
            ];
            (h, Bytes::from(call.to_string()))
        }
    }
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

struct Point {
    calls: usize,
    secs: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    server_cpu: f64,
    client_cpu: f64,
    body: usize,
}

impl Point {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.secs
    }
    fn cpu_us_per_call(&self) -> f64 {
        self.server_cpu / self.calls as f64 * 1e6
    }
}

async fn run(addr: SocketAddr, pid: u32, mode: Mode, tool: &'static str, c: usize, secs: u64) -> Point {
    let host = addr.to_string();
    // Connect and handshake every worker first: the window measures calls only.
    let mut workers = Vec::new();
    for _ in 0..c {
        let mut s = connect(addr).await;
        let (h, body) = prepare(&mut s, &host, mode, tool).await;
        workers.push((s, h, body));
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(c + 1));
    let mut tasks = Vec::new();
    for (mut s, h, body) in workers {
        let host = host.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut lat = Vec::with_capacity(100_000);
            let mut len = 0;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let (st, _, n) = post(&mut s, &host, &h, body.clone()).await;
                assert_eq!(st, 200);
                lat.push(t0.elapsed());
                len = n;
            }
            (lat, len)
        }));
    }
    let pid = pid.to_string();
    let (s0, c0) = (cpu_secs(&pid), cpu_secs("self"));
    barrier.wait().await;
    let start = Instant::now();
    let mut all = Vec::new();
    let mut body = 0;
    for t in tasks {
        let (lat, len) = t.await.expect("worker");
        all.extend(lat);
        body = len;
    }
    let secs = start.elapsed().as_secs_f64();
    let (s1, c1) = (cpu_secs(&pid), cpu_secs("self"));
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Point {
        calls: all.len(),
        secs,
        p50: pct(0.50),
        p90: pct(0.90),
        p99: pct(0.99),
        server_cpu: s1 - s0,
        client_cpu: c1 - c0,
        body,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn reference_main() {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("{}", l.local_addr().expect("addr"));
        reference::serve(l).await;
    });
}

struct Reference(Child, SocketAddr);

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_reference() -> Reference {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env("SPINE_BENCH_ROLE", "reference")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reference");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read addr");
    let addr = line.trim().parse().expect("reference addr");
    Reference(child, addr)
}

fn main() {
    if std::env::var("SPINE_BENCH_ROLE").as_deref() == Ok("reference") {
        return reference_main();
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` runs nothing here
    }
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let conc: Vec<usize> = std::env::var("BENCH_CONC")
        .unwrap_or_else(|_| "1,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let tools_env = std::env::var("BENCH_TOOLS").unwrap_or_else(|_| "whoami,system_overview".into());
    let tools: Vec<&'static str> =
        ["whoami", "system_overview"].into_iter().filter(|t| tools_env.split(',').any(|x| x == *t)).collect();

    let tmp = tempfile::tempdir().expect("tmp");
    let (tailops, taddr) = ServerProcess::start_dev(tmp.path(), CONFIG, &[]);
    let refsrv = start_reference();
    std::thread::sleep(Duration::from_millis(300));

    // The load generator: 2 worker threads, like the servers' runtimes.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        println!(
            "window per point: {secs} s; release builds; {} CPUs; load generator: hyper HTTP/1.1 closed loop, 2 threads",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        println!();
        println!(
            "| server | protocol | tool | c | calls/s | p50 ms | p90 ms | p99 ms | server CPU µs/call | loadgen CPU % | reply B |"
        );
        println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut ratios = Vec::new();
        for tool in &tools {
            for mode in [Mode::Session, Mode::Stateless] {
                for &c in &conc {
                    let r = run(refsrv.1, refsrv.0.id(), mode, tool, c, secs).await;
                    let t = run(taddr, tailops.pid(), mode, tool, c, secs).await;
                    for (name, p) in [("tailops", &t), ("bare rmcp+axum", &r)] {
                        println!(
                            "| {name} | {} | {tool} | {c} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} |",
                            mode.label(),
                            p.rate(),
                            ms(p.p50),
                            ms(p.p90),
                            ms(p.p99),
                            p.cpu_us_per_call(),
                            p.client_cpu / p.secs * 100.0,
                            p.body
                        );
                    }
                    ratios.push((*tool, mode, c, t, r));
                }
            }
        }
        println!();
        println!("tailops ÷ bare rmcp+axum (targets: calls/s ≥ 0.80, p99 ≤ 1.30, CPU/call ≤ 1.30):");
        println!();
        println!("| tool | protocol | c | calls/s | p99 | CPU/call |");
        println!("|---|---|---:|---:|---:|---:|");
        for (tool, mode, c, t, r) in &ratios {
            println!(
                "| {tool} | {} | {c} | {:.2} | {:.2} | {:.2} |",
                mode.label(),
                t.rate() / r.rate(),
                ms(t.p99) / ms(r.p99),
                t.cpu_us_per_call() / r.cpu_us_per_call()
            );
        }
        println!();
        println!("tailops stateless ÷ session (target ≥ 1.00 calls/s):");
        println!();
        println!("| tool | c | calls/s |");
        println!("|---|---:|---:|");
        for (tool, mode, c, t, _) in &ratios {
            if *mode == Mode::Stateless
                && let Some((_, _, _, s, _)) =
                    ratios.iter().find(|(t2, m2, c2, _, _)| t2 == tool && *m2 == Mode::Session && c2 == c)
            {
                println!("| {tool} | {c} | {:.2} |", t.rate() / s.rate());
            }
        }
    });
    drop(tailops);
}
