//! Connection slots under attack (issue 9, item 3), against the real server
//! in dev-listen mode: silent sockets, a trickled body, idle kept-alive
//! connections (HTTP/1 and HTTP/2) and one peer opening more than its cap.
//! The whole 127/8 is loopback on Linux: sockets bound to 127.0.0.2,
//! 127.0.0.3 … are other peers to the server.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::support::mcp::{Client, PROTOCOL, Via};
use crate::support::server::ServerProcess;

const VIEWER: &str = "[local]\nname = \"dev\"\nroles = [\"viewer\"]\n";

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{from}:0").parse().expect("addr")).expect("bind");
    sock.connect(addr).await.expect("connect")
}

fn get(addr: SocketAddr, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n")
}

/// Reads one response head: (status, head, bytes after the head).
async fn read_head(s: &mut (impl AsyncRead + Unpin), limit: Duration) -> (u16, String, Vec<u8>) {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("head: {head}"));
            return (status, head, buf[end + 4..].to_vec());
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no response within {limit:?}; got {:?}", String::from_utf8_lossy(&buf)))
            .expect("read");
        assert!(n > 0, "closed before a response; got {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one response with a content-length body: (status, body).
async fn read_response(s: &mut (impl AsyncRead + Unpin), limit: Duration) -> (u16, String) {
    let (status, head, mut body) = read_head(s, limit).await;
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("length")))
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(limit, s.read(&mut chunk)).await.expect("body in time").expect("read");
        assert!(n > 0, "closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, String::from_utf8_lossy(&body[..len]).into_owned())
}

/// Waits for the server to close `s` (EOF or reset), keeping what it sent;
/// None if it is still open after `limit`.
async fn closed_within(s: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The attack of the issue: sockets that never send a byte hold every
/// slot (`max_connections`, spread over peers to pass the per-peer cap).
/// They are cut at the first-byte timeout, and the caller queued behind
/// them is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_are_cut_at_the_first_byte_timeout_and_free_their_slots() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!(
        "{VIEWER}[limits]\nmax_connections = 8\nmax_connections_per_peer = 4\nfirst_byte_timeout_secs = 2\nheader_read_timeout_secs = 30\nidle_timeout_secs = 60\n"
    );
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let started = Instant::now();
    let mut silent = Vec::new();
    for from in ["127.0.0.2", "127.0.0.3"] {
        for _ in 0..4 {
            silent.push(connect_from(from, addr).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Every slot is held: this caller waits until the silent ones are cut.
    let mut caller = connect_from("127.0.0.1", addr).await;
    caller.write_all(get(addr, "/healthz").as_bytes()).await.expect("write");
    let (status, body) = read_response(&mut caller, Duration::from_secs(10)).await;
    let answered = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        answered >= Duration::from_secs(1),
        "answered after {} — before the silent sockets were cut, so they did not hold every slot",
        secs(answered)
    );
    // Upper bounds are give-up bounds with room for a loaded box: the
    // silent sockets are cut at 2 s; the next timer that could cut them is
    // the 30 s header timeout.
    assert!(answered <= Duration::from_secs(15), "answered only after {}", secs(answered));

    for (i, s) in silent.iter_mut().enumerate() {
        let got = closed_within(s, Duration::from_secs(20).saturating_sub(started.elapsed()))
            .await
            .unwrap_or_else(|| panic!("silent socket {i} still open after {}", secs(started.elapsed())));
        let at = started.elapsed();
        assert!(at >= Duration::from_millis(1500), "silent socket {i} cut early, at {}", secs(at));
        assert!(got.is_empty(), "nothing is answered to a socket that asked nothing: {got:?}");
    }
}

/// A POST whose body comes one byte a second is answered 408 at the body
/// deadline and its connection closed; the server keeps answering others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_at_the_body_deadline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!("{VIEWER}[limits]\nbody_read_timeout_secs = 2\nheader_read_timeout_secs = 30\n");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);

    let s = connect_from("127.0.0.1", addr).await;
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 100\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..12 {
            if wr.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let (status, body) = read_response(&mut rd, Duration::from_secs(10)).await;
    let at = started.elapsed();
    assert_eq!(status, 408, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["category"], "timeout", "{body}");
    // At the 2 s deadline, not when the trickle ends (12 s): the upper
    // bound has room for a loaded box.
    assert!(at >= Duration::from_millis(1500) && at <= Duration::from_secs(9), "408 after {}", secs(at));
    assert!(closed_within(&mut rd, Duration::from_secs(10)).await.is_some(), "connection kept after the 408");
    trickle.abort();

    // Others are still served.
    let mut other = connect_from("127.0.0.1", addr).await;
    other.write_all(get(addr, "/healthz").as_bytes()).await.expect("write");
    assert_eq!(read_response(&mut other, Duration::from_secs(20)).await.0, 200);
}

/// The frame types in a run of HTTP/2 frames.
fn h2_frame_types(mut b: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while b.len() >= 9 {
        let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
        types.push(b[3]);
        b = &b[(9 + len).min(b.len())..];
    }
    types
}

/// A kept-alive connection with no request in flight is closed after
/// `idle_timeout_secs`: HTTP/1 (with hyper's header timer, which also runs
/// between requests, set far longer) and HTTP/2 (which had no bound at all).
/// A streaming response is a request in flight: never cut as idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!("{VIEWER}[limits]\nidle_timeout_secs = 2\nheader_read_timeout_secs = 30\n");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);

    // HTTP/1.1: one request, then nothing.
    let mut h1 = connect_from("127.0.0.1", addr).await;
    h1.write_all(get(addr, "/healthz").as_bytes()).await.expect("write");
    assert_eq!(read_response(&mut h1, Duration::from_secs(20)).await.0, 200);
    let idle_from = Instant::now();
    // Closed at the 2 s idle timeout, not by the 30 s header timer: the
    // upper bound has room for a loaded box.
    assert!(closed_within(&mut h1, Duration::from_secs(20)).await.is_some(), "HTTP/1 idle connection still open");
    let at = idle_from.elapsed();
    assert!(at >= Duration::from_millis(1500) && at <= Duration::from_secs(15), "HTTP/1 closed after {}", secs(at));

    // HTTP/2 (prior knowledge): preface and SETTINGS, then nothing. The
    // server says GOAWAY; this client never acks its PING, so the server
    // drops it after its close grace (5 s).
    let mut h2 = connect_from("127.0.0.1", addr).await;
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    h2.write_all(&hello).await.expect("write");
    let started = Instant::now();
    let got = closed_within(&mut h2, Duration::from_secs(25)).await.expect("HTTP/2 idle connection still open");
    let at = started.elapsed();
    assert!(at >= Duration::from_millis(1500), "HTTP/2 closed early, after {}", secs(at));
    assert!(h2_frame_types(&got).contains(&7), "closed with a GOAWAY frame: {:?}", h2_frame_types(&got));

    // A quiet SSE stream (GET /mcp of a session) is a request in flight.
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    let sid = c.session.clone().expect("session id");
    let mut sse = connect_from("127.0.0.1", addr).await;
    let req = format!(
        "GET /mcp HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\nmcp-session-id: {sid}\r\nmcp-protocol-version: {PROTOCOL}\r\n\r\n"
    );
    sse.write_all(req.as_bytes()).await.expect("write");
    let (status, head, _) = read_head(&mut sse, Duration::from_secs(20)).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("text/event-stream"), "{head}");
    assert!(closed_within(&mut sse, Duration::from_secs(5)).await.is_none(), "an open SSE stream was closed as idle");
}

/// With `max_connections_per_peer = 4`: 4 connections of one peer are
/// served, the 5th (and 6th) are answered 429 and closed, another peer is
/// served meanwhile, a closed connection frees its place, and the refusals
/// are warned about once (rate limited) and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_over_its_cap_is_refused_while_other_peers_are_served() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!("{VIEWER}[limits]\nmax_connections = 16\nmax_connections_per_peer = 4\n");
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);

    let mut held = Vec::new();
    for i in 1..=4 {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(get(addr, "/healthz").as_bytes()).await.expect("write");
        let (status, body) = read_response(&mut s, Duration::from_secs(20)).await;
        assert_eq!(status, 200, "connection {i} of 4: {body}");
        held.push(s); // kept alive, still counted
    }
    for i in 5..=6 {
        let mut s = connect_from("127.0.0.1", addr).await;
        let _ = s.write_all(get(addr, "/healthz").as_bytes()).await;
        let (status, body) = read_response(&mut s, Duration::from_secs(20)).await;
        assert_eq!(status, 429, "connection {i}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert!(v["error"]["hint"].as_str().is_some_and(|h| h.contains("max_connections_per_peer")), "{body}");
        assert!(closed_within(&mut s, Duration::from_secs(20)).await.is_some(), "refused connection {i} kept open");
    }

    // Another peer is served while the first holds its cap.
    let mut other = connect_from("127.0.0.2", addr).await;
    other.write_all(get(addr, "/healthz").as_bytes()).await.expect("write");
    assert_eq!(read_response(&mut other, Duration::from_secs(20)).await.0, 200, "other peer");

    // Closing one frees one place.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(get(addr, "/healthz").as_bytes()).await.expect("write");
        let (status, _) = read_response(&mut s, Duration::from_secs(20)).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed connection's place was not freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);

    assert!(server.stop().success());
    let warns: Vec<&Value> = server
        .seen
        .iter()
        .filter(|v| {
            v["level"] == "WARN" && v["message"].as_str().is_some_and(|m| m.contains("max_connections_per_peer"))
        })
        .collect();
    assert_eq!(warns.len(), 1, "one warning per peer per 10 s: {warns:?}");
    assert_eq!(warns[0]["peer"], "127.0.0.1", "{:?}", warns[0]);
    let totals = server
        .seen
        .iter()
        .find(|v| v["message"] == "connections since start")
        .unwrap_or_else(|| panic!("no totals line: {:?}", server.seen));
    assert!(totals["refused_per_peer"].as_u64().is_some_and(|n| n >= 2), "{totals}");
}
