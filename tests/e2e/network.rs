//! Network read tools against the real machine (sockets and listeners this
//! test opens, /sys counters read independently, loopback traffic it
//! makes), hostile arguments, and `tailnet_status` / `tailnet_ping`
//! against a real headscale tailnet with one peer reached directly and one
//! forced through DERP.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::client;
use crate::support::headscale::{BASE_DOMAIN, Headscale};
use crate::support::mcp::{Client, Via, cancel_until_recorded, client, fails, ok, post_sse};
use crate::support::server::{ServeOpts, ServerProcess};

/// A dev server sampling every second, as a viewer (network:read only).
const VIEWER: &str = "[local]\nname = \"net\"\nroles = [\"viewer\"]\n[sampler]\ninterval_secs = 1\n\
[limits.rate]\ncalls_per_minute = 6000\nburst = 500\n";
/// The same as an admin (network:probe too).
const ADMIN: &str = "[local]\nname = \"net\"\nroles = [\"admin\"]\n[sampler]\ninterval_secs = 1\n\
[limits.rate]\ncalls_per_minute = 6000\nburst = 500\n";

fn rows(out: &Value) -> &Vec<Value> {
    out["connections"].as_array().unwrap_or_else(|| panic!("connections: {out}"))
}

fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm").expect("comm").trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_find_our_sockets_with_their_pid() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, addr) = ServerProcess::start_dev(tmp.path(), VIEWER, &[]);
    let mut c = client(addr).await;
    let me = std::process::id();

    // A listener this test opened: found by port, with our pid and name.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let out = ok(&mut c, "net_connections", json!({"port": port, "state": "listen"})).await;
    let r = rows(&out);
    assert_eq!(r.len(), 1, "{out}");
    assert_eq!(r[0]["pid"], me, "{out}");
    assert_eq!(r[0]["process"], my_comm().as_str(), "{out}");
    assert_eq!((r[0]["protocol"].as_str(), r[0]["local_address"].as_str()), (Some("tcp"), Some("127.0.0.1")), "{out}");
    assert_eq!(out["pid_mapping"], "complete", "the server runs as root: {out}");

    // Both ends of a connection, by remote CIDR and port.
    let cl = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (_srv, _) = l.accept().expect("accept");
    let cport = cl.local_addr().expect("addr").port();
    let out =
        ok(&mut c, "net_connections", json!({"port": port, "state": "ESTABLISHED", "remote_cidr": "127.0.0.0/8"}))
            .await;
    let r = rows(&out);
    assert_eq!(r.len(), 2, "client and server end: {out}");
    assert!(r.iter().all(|x| x["pid"] == me), "{out}");
    let ports: Vec<(u64, u64)> =
        r.iter().map(|x| (x["local_port"].as_u64().unwrap_or(0), x["remote_port"].as_u64().unwrap_or(0))).collect();
    assert!(
        ports.contains(&(u64::from(cport), u64::from(port))) && ports.contains(&(u64::from(port), u64::from(cport)))
    );
    // A CIDR that excludes them: nothing.
    let none = ok(&mut c, "net_connections", json!({"port": port, "remote_cidr": "10.0.0.0/8"})).await;
    assert_eq!(none["total"], 0, "{none}");
    // listening=false keeps the two connected ends, drops the listener.
    let est = ok(&mut c, "net_connections", json!({"port": port, "listening": false})).await;
    assert_eq!(est["total"], 2, "{est}");

    // UDP: a bound socket is UNCONN and listening; protocol=tcp hides it.
    let u = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let uport = u.local_addr().expect("addr").port();
    let out = ok(&mut c, "net_connections", json!({"protocol": "udp", "port": uport, "listening": true})).await;
    assert_eq!((rows(&out).len(), rows(&out)[0]["state"].as_str()), (1, Some("UNCONN")), "{out}");
    assert_eq!(rows(&out)[0]["pid"], me);
    let out = ok(&mut c, "net_connections", json!({"protocol": "tcp", "port": uport})).await;
    assert_eq!(out["total"], 0, "{out}");

    // Six listeners owned by a child process (this test process also holds
    // the sockets of tests running beside it), paged two at a time by its
    // pid: each once, in order.
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import socket,sys\nls=[socket.socket() for _ in range(6)]\n\
             [l.bind(('127.0.0.1',0)) or l.listen() for l in ls]\n\
             print(' '.join(str(l.getsockname()[1]) for l in ls),flush=True)\nsys.stdin.read()",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)
        .expect("ports");
    let mut want: Vec<u64> = line.split_whitespace().map(|p| p.parse().expect("port")).collect();
    want.sort_unstable();
    assert_eq!(want.len(), 6, "{line}");
    let owner = child.id();
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({"pid": owner, "state": "LISTEN", "protocol": "tcp", "limit": 2});
        if let Some(cur) = &cursor {
            args["cursor"] = json!(cur);
        }
        let out = ok(&mut c, "net_connections", args).await;
        assert!(rows(&out).len() <= 2, "{out}");
        assert_eq!(out["total"], 6, "{out}");
        got.extend(rows(&out).iter().filter_map(|x| x["local_port"].as_u64()));
        pages += 1;
        match out["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => {
                assert_eq!(out["truncated"], false);
                break;
            }
        }
    }
    assert_eq!((got, pages), (want, 3));
    drop(child.stdin.take());
    let _ = child.wait();

    // The server's own listener shows the server's pid.
    let out = ok(&mut c, "net_connections", json!({"port": addr.port(), "state": "LISTEN"})).await;
    assert_eq!(rows(&out)[0]["pid"], server.pid(), "{out}");
    assert!(rows(&out)[0]["process"].as_str().is_some_and(|p| p.starts_with("tailops")), "{out}");
}

fn sys_counter(iface: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/statistics/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{iface} {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_show_loopback_and_bandwidth_moves_after_traffic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), VIEWER, &[]);
    let mut c = client(addr).await;

    let before = sys_counter("lo", "rx_bytes");
    let out = ok(&mut c, "net_interfaces", json!({})).await;
    let all = out["interfaces"].as_array().expect("interfaces");
    let lo = all.iter().find(|i| i["name"] == "lo").unwrap_or_else(|| panic!("lo listed: {out}"));
    assert!(
        lo["addresses"].as_array().is_some_and(|a| a.contains(&json!({"ip": "127.0.0.1", "prefix_len": 8}))),
        "{lo}"
    );
    assert_eq!((lo["loopback"].as_bool(), lo["admin_up"].as_bool()), (Some(true), Some(true)), "{lo}");
    let mtu: u64 = std::fs::read_to_string("/sys/class/net/lo/mtu").expect("mtu").trim().parse().expect("n");
    assert_eq!(lo["mtu"].as_u64(), Some(mtu), "{lo}");
    assert!(lo["counters"]["rx_bytes"].as_u64().is_some_and(|b| b >= before), "{lo}");
    // Every interface of /sys/class/net, no more.
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("sys")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let listed: Vec<&str> = all.iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(listed, names);
    let only = ok(&mut c, "net_interfaces", json!({"interface": "lo"})).await;
    assert_eq!(only["interfaces"].as_array().map(Vec::len), Some(1));

    // 32 MiB over loopback TCP.
    const BYTES: usize = 32 << 20;
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("a").port();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..(BYTES >> 20) {
        s.write_all(&chunk).expect("write");
    }
    drop(s);
    assert_eq!(sink.join().expect("sink"), BYTES);

    // Within a few samples the window shows it: peak rates above zero and
    // the byte counter past what we sent.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ok(&mut c, "net_bandwidth", json!({"interface": "lo", "since": "2m"})).await;
        let lo = &out["interfaces"][0];
        assert_eq!(lo["interface"], "lo", "{out}");
        let total = lo["rx_bytes_total"].as_u64().unwrap_or(0);
        let peak_b = lo["window_peak"]["rx_bytes_per_sec"].as_f64().unwrap_or(0.0);
        let peak_p = lo["window_peak"]["rx_packets_per_sec"].as_f64().unwrap_or(0.0);
        let sum =
            lo["window_avg"]["rx_bytes_per_sec"].as_f64().unwrap_or(0.0) * lo["window_samples"].as_f64().unwrap_or(0.0);
        if total >= before + BYTES as u64 && peak_b > 0.0 && peak_p > 0.0 && sum > 0.0 {
            assert!(lo["now"]["rx_bytes_per_sec"].as_f64().is_some(), "{out}");
            break;
        }
        assert!(Instant::now() < deadline, "bandwidth never showed {BYTES} bytes on lo: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_arguments_get_structured_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let mut c = client(addr).await;

    let cases: Vec<(&str, Value, &str)> = vec![
        ("net_connections", json!({"remote_cidr": "10.0.0.0/33"}), "invalid_input"),
        ("net_connections", json!({"remote_cidr": "not a cidr"}), "invalid_input"),
        ("net_connections", json!({"remote_cidr": "::/129"}), "invalid_input"),
        ("net_connections", json!({"remote_cidr": 10}), "invalid_input"),
        ("net_connections", json!({"limit": 0}), "invalid_input"),
        ("net_connections", json!({"limit": 1001}), "invalid_input"),
        ("net_connections", json!({"limit": 1e30}), "invalid_input"),
        ("net_connections", json!({"limit": -1}), "invalid_input"),
        ("net_connections", json!({"port": 70000}), "invalid_input"),
        ("net_connections", json!({"port": "80"}), "invalid_input"),
        ("net_connections", json!({"pid": -1}), "invalid_input"),
        ("net_connections", json!({"pid": 0}), "invalid_input"),
        ("net_connections", json!({"state": "OPEN"}), "invalid_input"),
        ("net_connections", json!({"protocol": "icmp"}), "invalid_input"),
        ("net_connections", json!({"cursor": "o:x"}), "invalid_input"),
        ("net_connections", json!({"listening": "yes"}), "invalid_input"),
        ("net_connections", json!({"sql": "1; DROP"}), "invalid_input"),
        ("net_interfaces", json!({"interface": "../../etc/passwd"}), "invalid_input"),
        ("net_interfaces", json!({"interface": "a".repeat(16)}), "invalid_input"),
        ("net_interfaces", json!({"interface": "nope0"}), "not_found"),
        ("net_bandwidth", json!({"since": "yesterday"}), "invalid_input"),
        ("net_bandwidth", json!({"since": "99999999999999999d"}), "invalid_input"),
        ("net_bandwidth", json!({"interface": "nope0"}), "not_found"),
        ("tailnet_status", json!({"limit": 1001}), "invalid_input"),
        // No tailnet node in dev mode: said plainly, after the input checks.
        ("tailnet_status", json!({}), "unavailable"),
        ("tailnet_ping", json!({"target": "peer", "count": 11}), "invalid_input"),
        ("tailnet_ping", json!({"target": "peer", "timeout_ms": 5001}), "invalid_input"),
        ("tailnet_ping", json!({}), "invalid_input"),
        ("tailnet_ping", json!({"target": "127.0.0.1"}), "unavailable"),
    ];
    for (tool, args, want) in &cases {
        let (cat, e) = fails(&mut c, tool, args.clone()).await;
        assert_eq!(&cat, want, "{tool} {args}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    // Edges that are fine.
    let out = ok(&mut c, "net_connections", json!({"limit": 1000, "remote_cidr": "0.0.0.0/0"})).await;
    assert!(rows(&out).len() <= 1000);
    ok(&mut c, "net_connections", json!({"limit": 1, "port": 65535, "remote_cidr": "::/0"})).await;
    let (cat, _) = fails(&mut c, "net_interfaces", json!({"interface": "a".repeat(15)})).await;
    assert_eq!(cat, "not_found", "a 15-character name is a valid name, just not present");
    server.stop();
}

// ---------------------------------------------------------------- tailnet

fn serve_opts<'a>(hs: &'a Headscale, hostname: &'a str, state: &'a std::path::Path, key: &'a str) -> ServeOpts<'a> {
    ServeOpts {
        hostname,
        control_url: &hs.url,
        state_dir: state,
        auth_key: Some(key),
        tags: None,
        ephemeral: false,
        extra_args: Vec::new(),
    }
}

fn peer<'a>(st: &'a Value, name: &str) -> Option<&'a Value> {
    st["peers"].as_array().and_then(|p| p.iter().find(|x| x["name"] == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailnet_status_and_ping_direct_and_relayed() {
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let key = hs.tagged_key("tag:tailops");
    let server = ServerProcess::start(serve_opts(&hs, "netops", &tmp.path().join("s"), &key));
    // The relayed peer: a second node whose magicsock never uses UDP, so
    // every packet to it goes through the DERP server.
    let key2 = hs.tagged_key("tag:tailops");
    let relayed = ServerProcess::start_env(
        serve_opts(&hs, "derponly", &tmp.path().join("r"), &key2),
        &[("TS_DEBUG_ALWAYS_USE_DERP", "1")],
    );
    // The direct peer (and our MCP client): alice's node in this process.
    let alice = client::node("alice-net", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
    let mut c = Client::new(Via::Tailnet(alice.clone(), server.dns_name.clone()), &server.dns_name);
    assert_eq!(c.initialize().await.status, 200);

    // Status: this node, the suffix, both peers online.
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = ok(&mut c, "tailnet_status", json!({})).await;
        let up = |n| peer(&st, n).is_some_and(|p| p["online"] == true);
        if up("alice-net") && up("derponly") {
            break st;
        }
        assert!(Instant::now() < deadline, "peers never online: {st}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(st["self"]["dns_name"], server.dns_name.as_str(), "{st}");
    assert_eq!(st["self"]["name"], "netops", "{st}");
    assert_eq!(st["self"]["tags"], json!(["tag:tailops"]), "{st}");
    let self_ips: Vec<String> =
        st["self"]["ips"].as_array().expect("ips").iter().filter_map(|i| i.as_str().map(String::from)).collect();
    assert_eq!(self_ips, server.ips, "{st}");
    assert_eq!(st["magic_dns_suffix"], BASE_DOMAIN, "{st}");
    assert_eq!(st["backend_state"], "Running");
    let a = peer(&st, "alice-net").expect("alice");
    assert_eq!(a["dns_name"], format!("alice-net.{BASE_DOMAIN}"));
    assert_eq!(a["os"], "linux", "{a}");
    assert!(
        a["ips"].as_array().is_some_and(|i| i.iter().any(|x| alice.info().ips.iter().any(|ip| x == &ip.to_string()))),
        "{a}"
    );
    assert!(!st.to_string().contains("auth_url"), "no login URLs: {st}");
    let r_ip = relayed.ips[0].clone();

    // Direct: alice's node answers disco pings over UDP once the path is
    // found (the first may still go through DERP).
    let deadline = Instant::now() + Duration::from_secs(30);
    let direct = loop {
        let p = ok(&mut c, "tailnet_ping", json!({"target": "alice-net", "count": 2, "interval_ms": 100})).await;
        if p["path"] == "direct" {
            break p;
        }
        assert!(Instant::now() < deadline, "alice's node never reached directly: {p}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(direct["pings"].as_array().is_some_and(|p| p.iter().any(|x| x["endpoint"].is_string())), "{direct}");
    assert!(direct["avg_ms"].as_f64().is_some_and(|v| v > 0.0), "{direct}");
    assert_eq!(direct["peer"], format!("alice-net.{BASE_DOMAIN}"));

    // Relayed: every reply from the DERP-only node comes through region "hs"
    // (headscale's embedded DERP, region 999), never directly.
    let p = ok(&mut c, "tailnet_ping", json!({"target": r_ip, "count": 5, "interval_ms": 100})).await;
    assert_eq!(p["received"], 5, "{p}");
    for x in p["pings"].as_array().expect("pings") {
        assert_eq!((x["path"].as_str(), x["derp_region"].as_str()), (Some("derp"), Some("hs")), "{p}");
        assert_eq!(x["derp_region_id"], 999, "{p}");
        assert!(x["endpoint"].is_null(), "{p}");
    }
    assert!(p["summary"].as_str().is_some_and(|s| s.contains("DERP region hs")), "{p}");
    // A TSMP ping goes through WireGuard (disco pings do not): after it,
    // status counts bytes and a handshake with the relayed peer.
    let t = ok(&mut c, "tailnet_ping", json!({"target": "derponly", "kind": "tsmp", "count": 1})).await;
    assert_eq!((t["received"].as_u64(), t["kind"].as_str(), t["path"].as_str()), (Some(1), Some("tsmp"), None), "{t}");
    // And status agrees: alice direct, derponly not.
    let st = ok(&mut c, "tailnet_status", json!({})).await;
    assert_eq!(peer(&st, "alice-net").map(|p| p["path"].clone()), Some(json!("direct")), "{st}");
    let rp = peer(&st, "derponly").expect("derponly");
    assert_eq!((rp["path"].as_str(), rp["derp_region"].as_str()), (Some("derp"), Some("hs")), "{rp}");
    assert!(rp["tx_bytes"].as_i64().is_some_and(|b| b > 0), "bytes counted: {rp}");
    assert!(rp["rx_bytes"].as_i64().is_some_and(|b| b > 0), "bytes counted: {rp}");
    assert!(rp["last_handshake"].is_string(), "{rp}");
    // Filters and pages.
    let one = ok(&mut c, "tailnet_status", json!({"name": "derp", "limit": 1})).await;
    assert_eq!((one["total"].as_u64(), one["peers"][0]["name"].as_str()), (Some(1), Some("derponly")), "{one}");

    // By full MagicDNS name too.
    let t = ok(&mut c, "tailnet_ping", json!({"target": format!("alice-net.{BASE_DOMAIN}."), "count": 1})).await;
    assert_eq!(t["received"].as_u64(), Some(1), "{t}");

    // Only tailnet peers are targets: this node, loopback, metadata,
    // outside names and unknown tailnet IPs are refused before any packet.
    for target in [server.ips[0].as_str(), "127.0.0.1", "169.254.169.254", "example.com", "100.64.99.99", "netops"] {
        let (cat, e) = fails(&mut c, "tailnet_ping", json!({"target": target})).await;
        assert_eq!(cat, "invalid_input", "{target}: {e}");
    }

    // Progress: one notification per ping, in order, for the token.
    let session = c.session.clone().expect("session");
    let msgs = post_sse(
        Via::Tailnet(alice.clone(), server.dns_name.clone()),
        session.clone(),
        json!({"jsonrpc": "2.0", "id": 51, "method": "tools/call",
        "params": {"name": "tailnet_ping", "arguments": {"target": r_ip, "count": 3, "interval_ms": 50},
        "_meta": {"progressToken": "ping-51"}}}),
        Duration::from_secs(90),
    )
    .await;
    let prog: Vec<&Value> = msgs.iter().filter(|m| m["method"] == "notifications/progress").collect();
    let vals: Vec<f64> = prog.iter().filter_map(|p| p["params"]["progress"].as_f64()).collect();
    assert_eq!(vals, [1.0, 2.0, 3.0], "{msgs:?}");
    assert!(prog.iter().all(|p| p["params"]["progressToken"] == "ping-51" && p["params"]["total"] == 3.0), "{prog:?}");
    let res = msgs.iter().find(|m| m["id"] == 51).expect("response");
    assert_eq!(res["result"]["structuredContent"]["received"], 3, "{res}");

    // Cancelled by the client: ends at once, not after 10 pings 1 s apart.
    let (n, h, s) = (alice.clone(), server.dns_name.clone(), session.clone());
    let call = tokio::spawn(async move {
        post_sse(
            Via::Tailnet(n.clone(), h.clone()),
            s.clone(),
            json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call",
            "params": {"name": "tailnet_ping", "arguments": {"target": "derponly", "count": 10, "interval_ms": 1000}}}),
            Duration::from_secs(90),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Cancelled (again on every poll, in case the call was not in flight yet).
    let record =
        cancel_until_recorded(&mut c, 77, None, "tailnet_ping", Duration::from_secs(20), |x| x["args"]["count"] == 10)
            .await;
    assert!(record["duration_ms"].as_u64().is_some_and(|ms| ms < 5000), "ended on cancel: {record}");
    call.abort();
    drop(relayed);
}
