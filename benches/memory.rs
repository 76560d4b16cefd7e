//! Resource figures of `tailops serve` (issue 15, "proof"): RSS after start,
//! after many tailnet connections, with many idle MCP sessions; idle CPU;
//! start-to-ready time. One run, release build, references in the same run.
//!
//! `cargo bench --bench memory`. Knobs (defaults finish in ~4 minutes):
//! - `MEMORY_BENCH_IDLE_SECS` (60): idle CPU window.
//! - `MEMORY_BENCH_CYCLES` (10000): tailnet connection open/close cycles,
//!   each a dial, one `GET /healthz`, a close; `MEMORY_BENCH_CONC` (8) at once.
//! - `MEMORY_BENCH_SESSIONS` (1000): idle MCP sessions held open.
//! - `MEMORY_BENCH_STARTS` (5): dev-listen starts timed.
//! - `MEMORY_BENCH_SETTLE_SECS` (10): wait before the "settled" RSS.
//!
//! References, measured in the same run:
//! - headscale (the other long-running Go tailnet program here) for the
//!   idle CPU and RSS after start;
//! - the bare rmcp + axum server of `benches/reference/rmcp_axum.rs` (same
//!   rmcp session manager and transport, no tailnet, no spine) for the idle
//!   sessions and start-to-ready over loopback TCP.
//!
//! Each tailops RSS point is followed by where the memory is: file-backed
//! and anonymous pages from /proc/PID/smaps, and the Go runtime's own
//! figures from the server's `/metrics` (`tailops_go_memory_bytes`). `TAILOPS_BENCH_BIN` runs another build of
//! the server (e.g. main's, for a before/after; builds without the Go
//! figures show "—" there).

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
use support::headscale::Headscale;
use support::server::{ServeOpts, ServerProcess};
use tailops::tailnet::Node;

const MIB: f64 = 1024.0 * 1024.0;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Config shared by both servers; `[local]` only for dev-listen.
fn config(sessions: u64, local: bool) -> String {
    let local = if local { "[local]\nname = \"bench\"\nroles = [\"admin\"]\n" } else { "" };
    format!(
        "{local}[limits]\nmax_sessions_per_principal = {}\n\
         [limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n\
         [audit]\nfsync = \"interval\"\n",
        sessions + 16
    )
}

// ---- /proc ----

fn rss_bytes(pid: u32) -> u64 {
    support::proc::rss_kib(pid) * 1024
}

/// RSS split by what holds it, in bytes: from /proc/PID/smaps (file-backed
/// vs anonymous, glibc's brk heap) and the server's own `/metrics` (the Go
/// runtime's own figures; absent from builds without them).
#[derive(Default, Clone, Copy)]
struct Breakdown {
    file: u64,
    anon: u64,
    brk_heap: u64,
    go: Option<GoFigures>,
}

#[derive(Default, Clone, Copy)]
struct GoFigures {
    /// Every class but `heap_released` (returned to the OS).
    mapped: u64,
    heap_objects: u64,
    heap_goal: u64,
}

fn smaps(pid: u32) -> Breakdown {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut b = Breakdown::default();
    let (mut file, mut brk) = (false, false);
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some(first) = parts.next() else { continue };
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let inode = parts.nth(3).unwrap_or("0");
            let path = parts.next().unwrap_or("");
            brk = path == "[heap]";
            file = inode != "0";
        } else if first == "Rss:" {
            let bytes = parts.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024;
            if file {
                b.file += bytes;
            } else {
                b.anon += bytes;
                if brk {
                    b.brk_heap += bytes;
                }
            }
        }
    }
    b
}

/// The Go figures from a `/metrics` text.
fn go_figures(metrics: &str) -> Option<GoFigures> {
    let mut g = GoFigures::default();
    let mut seen = false;
    for line in metrics.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let Ok(v) = value.parse::<f64>() else { continue };
        let v = v as u64;
        if let Some(class) = name.strip_prefix("tailops_go_memory_bytes{class=\"") {
            seen = true;
            let class = class.trim_end_matches("\"}");
            if class != "heap_released" {
                g.mapped += v;
            }
            if class == "heap_objects" {
                g.heap_objects = v;
            }
        } else if name == "tailops_go_heap_goal_bytes" {
            g.heap_goal = v;
        }
    }
    seen.then_some(g)
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB
}

struct Table {
    rows: Vec<String>,
    where_rows: Vec<String>,
}

impl Table {
    fn new() -> Self {
        Table { rows: Vec::new(), where_rows: Vec::new() }
    }
    /// One RSS point of `pid`; with `metrics` (where to scrape the server's
    /// /metrics) its breakdown too.
    async fn rss(
        &mut self,
        what: &str,
        process: &str,
        pid: u32,
        target_mib: Option<f64>,
        metrics: Option<&Target>,
    ) -> u64 {
        let rss = rss_bytes(pid);
        let verdict = match target_mib {
            Some(t) if mib(rss) <= t => format!("≤ {t:.0} ✓"),
            Some(t) => format!("≤ {t:.0} ✗"),
            None => "—".into(),
        };
        self.rows.push(format!("| {what} | {process} | {:.1} | {verdict} |", mib(rss)));
        if let Some(t) = metrics {
            let mut b = smaps(pid);
            let mut s = t.connect().await;
            let (st, _, body) = send_body(&mut s, &t.host(), "GET", "/metrics", None, String::new()).await;
            if st == 200 {
                b.go = go_figures(&body);
            }
            let (go, objects, goal) = match b.go {
                Some(g) => (
                    format!("{:.1}", mib(g.mapped)),
                    format!("{:.1}", mib(g.heap_objects)),
                    format!("{:.1}", mib(g.heap_goal)),
                ),
                None => ("—".into(), "—".into(), "—".into()),
            };
            self.where_rows.push(format!(
                "| {what} | {:.1} | {:.1} | {:.1} | {:.1} | {go} | {objects} | {goal} |",
                mib(rss),
                mib(b.file),
                mib(b.anon),
                mib(b.brk_heap)
            ));
        }
        rss
    }
    fn print(&self) {
        println!("| point | process | RSS (MiB) | target (MiB) |");
        println!("|---|---|---:|---|");
        for r in &self.rows {
            println!("{r}");
        }
        println!();
        println!(
            "Where tailops' RSS is (MiB): file-backed and anonymous pages from /proc/PID/smaps (the brk heap \
             is glibc malloc's main arena); the Go runtime's own figures from the server's /metrics: mapped \
             and not returned (every runtime/metrics class but heap_released), heap objects, heap goal. Go \
             counts pages it never touched, so its figures can exceed the anonymous RSS."
        );
        println!();
        println!(
            "| point | RSS | file-backed | anonymous | of it brk heap | Go mapped | Go heap objects | Go heap goal |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.where_rows {
            println!("{r}");
        }
        println!();
    }
}

// ---- HTTP on one kept-alive connection ----

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn handshake<S>(s: S) -> Sender
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn send_body(
    sender: &mut Sender,
    host: &str,
    method: &str,
    path: &str,
    session: Option<&str>,
    body: String,
) -> (u16, Option<String>, String) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(s) = session {
        req = req.header("mcp-session-id", s).header("mcp-protocol-version", support::mcp::PROTOCOL);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("req");
    sender.ready().await.expect("ready");
    let res = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
        .await
        .expect("response within 60 s")
        .expect("response");
    let status = res.status().as_u16();
    let sid = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = tokio::time::timeout(Duration::from_secs(60), res.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: body did not end within 60 s (status {status})"))
        .expect("body")
        .to_bytes();
    (status, sid, String::from_utf8_lossy(&body).into_owned())
}

async fn send(
    sender: &mut Sender,
    host: &str,
    method: &str,
    path: &str,
    session: Option<&str>,
    body: String,
) -> (u16, Option<String>) {
    let (st, sid, _) = send_body(sender, host, method, path, session, body).await;
    (st, sid)
}

#[derive(Clone)]
enum Target {
    Tcp(SocketAddr),
    Tailnet(Node, String),
}

impl Target {
    async fn connect(&self) -> Sender {
        match self {
            Target::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                handshake(s).await
            }
            Target::Tailnet(node, host) => {
                handshake(support::client::dial_retry(node, &format!("{host}:80"), Duration::from_secs(30)).await).await
            }
        }
    }
    fn host(&self) -> String {
        match self {
            Target::Tcp(a) => a.to_string(),
            Target::Tailnet(_, h) => h.clone(),
        }
    }
}

/// Opens `n` MCP sessions (initialize + initialized) over `conns` kept-alive
/// connections, then closes the connections: the sessions stay open on the
/// server (until its idle limit) with nothing in flight.
async fn open_sessions(t: &Target, n: u64, conns: u64) -> Vec<String> {
    let mut tasks = Vec::new();
    let conns = conns.max(1);
    for w in 0..conns {
        let t = t.clone();
        let mine = n / conns + u64::from(w < n % conns);
        tasks.push(tokio::spawn(async move {
            let host = t.host();
            let mut s = t.connect().await;
            let mut ids = Vec::new();
            for _ in 0..mine {
                let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion": support::mcp::PROTOCOL,"capabilities":{},
                    "clientInfo":{"name":"memory-bench","version":"1"}}});
                let (st, sid) = send(&mut s, &host, "POST", "/mcp", None, init.to_string()).await;
                assert_eq!(st, 200, "initialize");
                let sid = sid.expect("mcp-session-id");
                let n = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
                let (st, _) = send(&mut s, &host, "POST", "/mcp", Some(&sid), n).await;
                assert!(st == 202 || st == 200, "initialized: {st}");
                ids.push(sid);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("opener"));
    }
    all
}

/// `cycles` connections, `conc` at a time: dial, `GET /healthz`, close.
async fn connection_cycles(t: &Target, cycles: u64, conc: u64) -> Duration {
    let t0 = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc.max(1) {
        let t = t.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let host = t.host();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < cycles {
                let mut s = t.connect().await;
                let (st, _) = send(&mut s, &host, "GET", "/healthz", None, String::new()).await;
                assert_eq!(st, 200, "healthz");
            }
        }));
    }
    for t in tasks {
        t.await.expect("cycler");
    }
    t0.elapsed()
}

// ---- the reference server (re-executed child) ----

struct RefServer(Child, SocketAddr);

impl Drop for RefServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn reference_main() {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("{}", l.local_addr().expect("addr"));
        reference::serve(l).await;
    });
}

fn start_reference() -> RefServer {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env("MEMORY_BENCH_ROLE", "reference")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn reference");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read addr");
    let addr = line.trim().parse().expect("reference addr");
    RefServer(child, addr)
}

/// Polls `addr` with `GET path` until any HTTP response arrives.
async fn first_answer(addr: SocketAddr, path: &str) {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            let mut snd = handshake(s).await;
            let (st, _) = send(&mut snd, &addr.to_string(), "GET", path, None, String::new()).await;
            if st > 0 {
                return;
            }
        }
        assert!(Instant::now() < give_up, "{addr} never answered");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// Start to ready on dev-listen: spawn until the server logs its address
/// (`listening`), and until the first `GET /healthz` answers (`answers`).
async fn start_times(starts: u64) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
    let (mut listening, mut answers, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..starts.max(1) {
        let tmp = tempfile::tempdir().expect("tmp");
        let t0 = Instant::now();
        let (mut s, addr) = ServerProcess::start_dev(tmp.path(), &config(0, true), &[]);
        listening.push(t0.elapsed());
        first_answer(addr, "/healthz").await;
        answers.push(t0.elapsed());
        assert!(s.stop().success());

        let t0 = Instant::now();
        let r = start_reference();
        first_answer(r.1, "/mcp").await;
        reference.push(t0.elapsed());
        drop(r);
    }
    (listening, answers, reference)
}

fn main() {
    if std::env::var("MEMORY_BENCH_ROLE").as_deref() == Ok("reference") {
        return reference_main();
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` runs nothing here
    }
    let idle_secs = knob("MEMORY_BENCH_IDLE_SECS", 60);
    let cycles = knob("MEMORY_BENCH_CYCLES", 10_000);
    let conc = knob("MEMORY_BENCH_CONC", 8);
    let sessions = knob("MEMORY_BENCH_SESSIONS", 1_000);
    let starts = knob("MEMORY_BENCH_STARTS", 5);
    let settle = Duration::from_secs(knob("MEMORY_BENCH_SETTLE_SECS", 10));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let mut rss = Table::new();
    println!(
        "release build; {} CPUs; cycles {cycles} ({conc} at once), sessions {sessions}, idle window {idle_secs} s, settle {} s",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        settle.as_secs()
    );
    println!();

    // 1. Start to ready, nothing else running.
    let (listening, answers, reference) = rt.block_on(start_times(starts));
    let (l50, lmax) = median(listening);
    let (a50, amax) = median(answers);
    let (r50, rmax) = median(reference);
    println!("Start to ready on dev-listen ({starts} starts; target ≤ 500 ms):");
    println!();
    println!("| process | until | median ms | max ms |");
    println!("|---|---|---:|---:|");
    println!("| tailops serve --dev-listen | listen address logged | {:.0} | {:.0} |", ms(l50), ms(lmax));
    println!("| tailops serve --dev-listen | first GET /healthz answered | {:.0} | {:.0} |", ms(a50), ms(amax));
    println!("| bare rmcp+axum (reference) | first GET /mcp answered | {:.0} | {:.0} |", ms(r50), ms(rmax));
    println!();
    println!("tailops ÷ reference (first answer, median): {:.2}x", a50.as_secs_f64() / r50.as_secs_f64());
    println!();

    // 2. Idle sessions over dev-listen: tailops vs the bare rmcp server.
    eprintln!("memory bench: {sessions} sessions over dev-listen");
    let tmp = tempfile::tempdir().expect("tmp");
    let dev_dir = tmp.path().join("dev");
    std::fs::create_dir_all(&dev_dir).expect("dir");
    let (mut dev, dev_addr) = ServerProcess::start_dev(&dev_dir, &config(sessions, true), &[]);
    let refsrv = start_reference();
    rt.block_on(async {
        first_answer(dev_addr, "/healthz").await;
        first_answer(refsrv.1, "/mcp").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let devt = Target::Tcp(dev_addr);
        rss.rss("dev-listen, started", "tailops", dev.pid(), None, Some(&devt)).await;
        rss.rss("dev-listen, started", "bare rmcp+axum", refsrv.0.id(), None, None).await;
        let t = open_sessions(&Target::Tcp(dev_addr), sessions, conc).await;
        assert_eq!(t.len() as u64, sessions);
        let r = open_sessions(&Target::Tcp(refsrv.1), sessions, conc).await;
        assert_eq!(r.len() as u64, sessions);
        tokio::time::sleep(settle).await;
        let what = format!("dev-listen, {sessions} idle sessions");
        let t_rss = rss.rss(&what, "tailops", dev.pid(), Some(120.0), Some(&devt)).await;
        let r_rss = rss.rss(&what, "bare rmcp+axum", refsrv.0.id(), None, None).await;
        rss.rows.push(format!("| {what} | ratio tailops ÷ reference | {:.2}x | — |", t_rss as f64 / r_rss as f64));
    });
    drop(refsrv);
    assert!(dev.stop().success());

    // 3. Over the tailnet.
    eprintln!("memory bench: tailnet up, idle {idle_secs} s");
    let hs = Headscale::start();
    let tdir = tmp.path().join("tailnet");
    std::fs::create_dir_all(&tdir).expect("dir");
    std::fs::write(tdir.join("cfg.toml"), config(sessions, false)).expect("cfg");
    let key = hs.tagged_key("tag:tailops");
    let mut server = ServerProcess::start(ServeOpts {
        hostname: "memory",
        control_url: &hs.url,
        state_dir: &tdir.join("state"),
        auth_key: Some(&key),
        tags: None,
        ephemeral: true,
        extra_args: vec!["--config".into(), tdir.join("cfg.toml").display().to_string()],
    });
    let pid = server.pid();
    let hs_pid = hs.pid();
    rt.block_on(async {
        let alice =
            support::client::node("alice-memory", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
        let host = format!("memory.{}", support::headscale::BASE_DOMAIN);
        let res = support::client::get(&alice, &host, "/whoami").await;
        assert_eq!(res.status, 200);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let target = Target::Tailnet(alice.clone(), host.clone());
        rss.rss("tailnet up, one /whoami", "tailops", pid, Some(50.0), Some(&target)).await;
        rss.rss("tailnet up, one /whoami", "headscale (reference)", hs_pid, None, None).await;

        let (s0, h0) = (support::proc::cpu_secs(pid), support::proc::cpu_secs(hs_pid));
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(idle_secs)).await;
        let wall = t0.elapsed().as_secs_f64();
        let scpu = (support::proc::cpu_secs(pid) - s0) / wall * 100.0;
        let hcpu = (support::proc::cpu_secs(hs_pid) - h0) / wall * 100.0;
        println!(
            "Idle CPU over {wall:.0} s, one peer connected, default sampler interval (target ≤ 0.3 % of one core):"
        );
        println!();
        println!("| process | CPU (% of one core) |");
        println!("|---|---:|");
        println!("| tailops serve | {scpu:.3} {} |", if scpu <= 0.3 { "✓" } else { "✗" });
        println!("| headscale (reference) | {hcpu:.3} |");
        println!();

        eprintln!("memory bench: {cycles} tailnet connections");
        let took = connection_cycles(&target, cycles, conc).await;
        rss.rss(&format!("tailnet, right after {cycles} connections"), "tailops", pid, None, Some(&target)).await;
        tokio::time::sleep(settle).await;
        let what = format!("tailnet, {cycles} connections + {} s", settle.as_secs());
        rss.rss(&what, "tailops", pid, Some(60.0), Some(&target)).await;
        println!(
            "{cycles} tailnet connections (dial, GET /healthz, close; {conc} at once) took {:.1} s ({:.0}/s).",
            took.as_secs_f64(),
            cycles as f64 / took.as_secs_f64()
        );
        println!();

        eprintln!("memory bench: {sessions} sessions over the tailnet");
        let ids = open_sessions(&target, sessions, conc).await;
        assert_eq!(ids.len() as u64, sessions);
        tokio::time::sleep(settle).await;
        rss.rss(&format!("tailnet, {sessions} idle sessions"), "tailops", pid, Some(120.0), Some(&target)).await;
        // Bounded: the client node's Close has hung here after thousands
        // of dials (it is ephemeral; headscale goes away with the bench).
        if tokio::time::timeout(Duration::from_secs(10), alice.close()).await.is_err() {
            eprintln!("memory bench: client node close did not finish in 10 s; leaving it");
        }
    });
    rss.print();
    assert!(server.stop().success());
    rt.shutdown_background();
}
