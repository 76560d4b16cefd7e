//! `net_connections` with 10,000 TCP sockets open, against `ss -tanp` (and
//! `ss -tan`, no process lookup) in the same run.
//!
//! `cargo bench --bench network` (`NET_BENCH_PAIRS` loopback connections,
//! default 5000 → 10,000 sockets plus one listener; `NET_BENCH_REPS`
//! repetitions per point, default 7; medians). The sockets are held by this
//! bench process. Every `net_connections` time is a full MCP `tools/call`
//! over dev-listen (HTTP, authz, audit included) to a release
//! `tailops serve`; the in-process line times the host function alone
//! (tables + pid map + filter + sort), without MCP.
//!
//! Points:
//! - `net_connections {protocol: tcp, limit: 1000}` (reads every TCP
//!   socket, walks every process's fds, returns the first page);
//! - the same with `pid` (walks only that process's fds);
//! - `ss -tanp` (netlink sock_diag + its own /proc fd walk) and `ss -tan`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};
use support::mcp::{Client, Via};
use support::server::ServerProcess;

const CONFIG: &str = "[local]\nname = \"bench\"\nroles = [\"admin\"]\n\
[limits.rate]\ncalls_per_minute = 10000000\nburst = 1000000\n\
[audit]\nfsync = \"interval\"\n";

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn time_call(c: &mut Client, args: Value, reps: usize) -> (f64, Value) {
    let mut t = Vec::new();
    let mut last = Value::Null;
    for _ in 0..reps {
        let t0 = Instant::now();
        let r = c.call("net_connections", args.clone()).await;
        t.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert!(!r.is_tool_error(), "{}", r.body);
        last = r.structured().clone();
    }
    (median(t), last)
}

fn time_cmd(argv: &[&str], reps: usize) -> Option<(f64, usize)> {
    let mut t = Vec::new();
    let mut lines = 0;
    for _ in 0..reps {
        let t0 = Instant::now();
        let o = Command::new(argv[0]).args(&argv[1..]).output().ok()?;
        t.push(t0.elapsed().as_secs_f64() * 1000.0);
        lines = o.stdout.iter().filter(|b| **b == b'\n').count();
    }
    Some((median(t), lines))
}

#[tokio::main]
async fn main() {
    let pairs = env_usize("NET_BENCH_PAIRS", 5000);
    let reps = env_usize("NET_BENCH_REPS", 7);
    // The server: started before the sockets exist, so it does not inherit
    // anything of ours.
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), CONFIG, &[]);
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);

    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let mut held = Vec::with_capacity(pairs * 2);
    for _ in 0..pairs {
        let a = TcpStream::connect(("127.0.0.1", port)).expect("connect (raise ulimit -n?)");
        let (b, _) = l.accept().expect("accept");
        held.push(a);
        held.push(b);
    }
    let total_tcp = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|p| std::fs::read_to_string(p).map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0))
        .sum::<usize>();
    let me = std::process::id();
    println!(
        "{} sockets held by the bench (pid {me}); {total_tcp} TCP sockets in the namespace; {reps} reps per point, median; release build; 2-core machine",
        held.len() + 1
    );

    let (ms_all, out) = time_call(&mut c, json!({"protocol": "tcp", "limit": 1000}), reps).await;
    println!(
        "  net_connections (all tcp, page 1000)   {ms_all:8.1} ms   total {} pid_mapping {}",
        out["total"], out["pid_mapping"]
    );
    let (ms_pid, out) = time_call(&mut c, json!({"protocol": "tcp", "pid": me, "limit": 1000}), reps).await;
    println!("  net_connections (pid filter)           {ms_pid:8.1} ms   total {}", out["total"]);
    let (ms_port, out) =
        time_call(&mut c, json!({"protocol": "tcp", "port": port, "state": "LISTEN", "limit": 10}), reps).await;
    println!("  net_connections (one listener by port) {ms_port:8.1} ms   total {}", out["total"]);

    // The host function alone (no MCP), in this process.
    let mut t = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        let tables = tailops::host::net::sockets::read_tables(true, false, tailops::host::net::sockets::MAX_SOCKETS);
        let wanted = tables.sockets.iter().map(|s| s.inode).filter(|i| *i != 0).collect();
        let owners = tailops::host::net::sockets::owners(&wanted, None);
        assert!(owners.by_inode.len() >= pairs * 2);
        t.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let ms_fn = median(t);
    println!("  host function (tables + pid map)       {ms_fn:8.1} ms");

    match (time_cmd(&["ss", "-tanp"], reps), time_cmd(&["ss", "-tan"], reps)) {
        (Some((ms_ssp, lines)), Some((ms_ss, _))) => {
            println!("  ss -tanp                               {ms_ssp:8.1} ms   ({lines} lines)");
            println!("  ss -tan                                {ms_ss:8.1} ms");
            println!(
                "ratios: net_connections/ss-tanp = {:.2}x, pid-filtered/ss-tanp = {:.2}x, host function/ss-tanp = {:.2}x",
                ms_all / ms_ssp,
                ms_pid / ms_ssp,
                ms_fn / ms_ssp
            );
        }
        _ => println!("  ss: not available (apt-get install iproute2); skipped"),
    }
    drop(held);
}
