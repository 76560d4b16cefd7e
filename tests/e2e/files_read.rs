//! File reading against a real `tailops serve` and real files: file_read
//! (text, line ranges, binary/base64, caps at their edges), file_tail (a
//! 2 GiB sparse file read only at its end, measured by the server's
//! `/proc/PID/io` rchar; follow with progress notifications while the test
//! appends, truncates and rotates; cancellation), file_hash, redaction vs
//! raw, and files as MCP resources (templates, read, subscribe → updated,
//! a caller narrowed to another root getting not_found).
//!
//! tests/support/files.rs was not on main when this was written: the few
//! helpers it would give live here (`start`, `client`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

use crate::support::mcp::{Client, PROTOCOL, Via, cancel_until_recorded, client, fails, get, ok, post_sse, raw};
use crate::support::server::ServerProcess;

const RATE: &str = "[limits.rate]\ncalls_per_minute = 6000\nburst = 500\nwrites_per_minute = 6000\nwrite_burst = 500\n";
const MIB: usize = 1024 * 1024;

/// A dev server with `[local]` (`local` = its TOML body) and the given
/// roots `(name, path, mode)`.
fn start(local: &str, roots: &[(&str, &Path, &str)]) -> (ServerProcess, SocketAddr, tempfile::TempDir) {
    let mut cfg = format!("[local]\nname = \"fr\"\n{local}\n{RATE}");
    for (name, path, mode) in roots {
        cfg.push_str(&format!(
            "[[files.roots]]\nname = \"{name}\"\npath = \"{}\"\nmode = \"{mode}\"\n",
            path.display()
        ));
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (s, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    (s, addr, tmp)
}

fn rchar(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.trim().parse().ok()).expect("rchar")
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
}

fn sha(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_text_lines_binary_and_caps_at_their_edges() {
    let data = tempfile::tempdir().expect("data");
    let d = data.path();
    std::fs::write(d.join("lines.txt"), (1..=10).map(|i| format!("line {i}\n")).collect::<String>()).expect("w");
    std::fs::write(d.join("blob.bin"), [0u8, 1, 2, 3, 255, 10, 0]).expect("w");
    // 1 MiB + 1 bytes of text lines (each 16 bytes) + one more byte.
    let mut big = "0123456789abcde\n".repeat(MIB / 16).into_bytes();
    big.push(b'x');
    std::fs::write(d.join("big.txt"), &big).expect("w");
    let (_s, addr, _t) = start("roles = [\"viewer\"]", &[("data", d, "read")]);
    let mut c = client(addr).await;

    let r = ok(&mut c, "file_read", json!({"path": "data:lines.txt"})).await;
    assert_eq!(r["content"].as_str().map(|s| s.lines().count()), Some(10), "{r}");
    assert_eq!((r["truncated"].as_bool(), r["binary"].as_bool()), (Some(false), Some(false)), "{r}");

    // Line ranges.
    let r = ok(&mut c, "file_read", json!({"path": "data:lines.txt", "from_line": 3, "to_line": 4})).await;
    assert_eq!(r["content"], "line 3\nline 4\n", "{r}");
    assert_eq!((r["from_line"].as_u64(), r["to_line"].as_u64(), r["next_line"].as_u64()), (Some(3), Some(4), Some(5)));
    let r = ok(&mut c, "file_read", json!({"path": "data:lines.txt", "from_line": 10})).await;
    assert_eq!((r["content"].as_str(), r["next_line"].as_u64()), (Some("line 10\n"), None), "{r}");
    let (cat, _) = fails(&mut c, "file_read", json!({"path": "data:lines.txt", "from_line": 0})).await;
    assert_eq!(cat, "invalid_input");
    let (cat, _) = fails(&mut c, "file_read", json!({"path": "data:lines.txt", "from_line": 5, "to_line": 4})).await;
    assert_eq!(cat, "invalid_input");
    let (cat, _) = fails(&mut c, "file_read", json!({"path": "data:lines.txt", "offset": 0, "from_line": 1})).await;
    assert_eq!(cat, "invalid_input");

    // Byte windows continue with next_offset and cover the file exactly.
    let mut off = 0u64;
    let mut all = String::new();
    loop {
        let r = ok(&mut c, "file_read", json!({"path": "data:lines.txt", "offset": off, "length": 20})).await;
        all.push_str(r["content"].as_str().expect("content"));
        match r["next_offset"].as_u64() {
            Some(n) => off = n,
            None => break,
        }
    }
    assert_eq!(all, std::fs::read_to_string(d.join("lines.txt")).expect("r"));

    // Binary: refused as text, served as base64.
    let (cat, e) = fails(&mut c, "file_read", json!({"path": "data:blob.bin"})).await;
    assert_eq!(cat, "invalid_input");
    assert!(e["hint"].as_str().is_some_and(|h| h.contains("base64")), "{e}");
    let r = ok(&mut c, "file_read", json!({"path": "data:blob.bin", "encoding": "base64"})).await;
    assert_eq!(b64(r["content"].as_str().expect("b64")), [0u8, 1, 2, 3, 255, 10, 0]);
    assert_eq!(r["binary"], true);
    let (cat, _) = fails(&mut c, "file_tail", json!({"path": "data:blob.bin"})).await;
    assert_eq!(cat, "invalid_input", "tail refuses binary files");

    // The 1 MiB cap: length limit-1 / limit / limit+1, and a file one
    // byte (one line) bigger than the cap.
    for (len, good) in [(MIB - 1, true), (MIB, true), (MIB + 1, false), (0, false)] {
        let r = c.call("file_read", json!({"path": "data:big.txt", "length": len})).await;
        assert_eq!(!r.is_tool_error(), good, "length {len}: {}", r.body);
    }
    let r = ok(&mut c, "file_read", json!({"path": "data:big.txt"})).await;
    assert_eq!((r["bytes"].as_u64(), r["truncated"].as_bool()), (Some(MIB as u64), Some(true)), "{}", r["summary"]);
    assert_eq!(r["next_offset"].as_u64(), Some(MIB as u64));
    let r = ok(&mut c, "file_read", json!({"path": "data:big.txt", "offset": MIB})).await;
    assert_eq!((r["content"].as_str(), r["truncated"].as_bool()), (Some("x"), Some(false)));
    let (cat, _) = fails(&mut c, "file_read", json!({"path": "data:big.txt", "offset": MIB + 2})).await;
    assert_eq!(cat, "invalid_input", "past the end");

    // Tail caps.
    for (n, good) in [(10_000, true), (10_001, false), (0, false), (1, true)] {
        let r = c.call("file_tail", json!({"path": "data:lines.txt", "lines": n})).await;
        assert_eq!(!r.is_tool_error(), good, "lines {n}: {}", r.body);
    }
    let r = ok(&mut c, "file_tail", json!({"path": "data:lines.txt", "lines": 2})).await;
    assert_eq!(r["lines"], json!(["line 9", "line 10"]));
    for (s, good) in [(0, false), (31, false)] {
        let r = c.call("file_tail", json!({"path": "data:lines.txt", "follow_secs": s})).await;
        assert_eq!(!r.is_tool_error(), good, "follow_secs {s}: {}", r.body);
    }

    // Hash: binary files as they are.
    let h = ok(&mut c, "file_hash", json!({"path": "data:blob.bin"})).await;
    assert_eq!(
        (h["sha256"].as_str(), h["of"].as_str()),
        (Some(sha(&[0u8, 1, 2, 3, 255, 10, 0]).as_str()), Some("raw"))
    );
    let h = ok(&mut c, "file_hash", json!({"path": "data:big.txt"})).await;
    assert_eq!((h["sha256"].as_str(), h["size"].as_u64()), (Some(sha(&big).as_str()), Some(big.len() as u64)));

    // Never outside the root, never the deny list.
    std::fs::write(d.join(".env"), "TOKEN=abc\n").expect("w");
    for (tool, path) in [("file_read", "data:.env"), ("file_tail", "data:.env"), ("file_hash", "data:.env")] {
        let (cat, _) = fails(&mut c, tool, json!({"path": path})).await;
        assert_eq!(cat, "permission_denied", "{tool} {path}");
    }
    for tool in ["file_read", "file_tail", "file_hash"] {
        let (cat, _) = fails(&mut c, tool, json!({"path": "data:../etc/passwd"})).await;
        assert_eq!(cat, "invalid_input", "{tool}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_redacted_unless_a_writer_asks_raw_on_a_read_write_root() {
    let ro = tempfile::tempdir().expect("ro");
    let rw = tempfile::tempdir().expect("rw");
    let content = "host=db1\npassword=hunter2\nport=5432\n";
    for d in [ro.path(), rw.path()] {
        std::fs::write(d.join("app.conf"), content).expect("w");
    }
    let roots = [("ro", ro.path(), "read"), ("rw", rw.path(), "read_write")];
    let (_a, aaddr, _ta) = start("roles = [\"admin\"]", &roots);
    let (_v, vaddr, _tv) = start("roles = [\"viewer\"]", &roots);
    let mut admin = client(aaddr).await;
    let mut viewer = client(vaddr).await;

    for c in [&mut admin, &mut viewer] {
        for root in ["ro", "rw"] {
            let p = format!("{root}:app.conf");
            let r = ok(c, "file_read", json!({"path": p})).await;
            let t = r["content"].as_str().expect("text");
            assert!(t.contains("password=") && !t.contains("hunter2") && t.contains("port=5432"), "{t}");
            assert_eq!(r["redacted"], true);
            // Every byte offset into the secret line: still whole lines.
            for off in 9..26 {
                let r = ok(c, "file_read", json!({"path": p, "offset": off, "length": 8})).await;
                assert!(!r["content"].as_str().unwrap_or_default().contains("hunter"), "offset {off}: {r}");
            }
            let r = ok(c, "file_read", json!({"path": p, "encoding": "base64"})).await;
            assert!(!String::from_utf8_lossy(&b64(r["content"].as_str().expect("b64"))).contains("hunter2"));
            let r = ok(c, "file_tail", json!({"path": p})).await;
            assert!(!r["lines"].to_string().contains("hunter2"), "{r}");
            let h = ok(c, "file_hash", json!({"path": p})).await;
            assert_ne!(h["sha256"].as_str(), Some(sha(content.as_bytes()).as_str()), "no oracle on the secret");
            assert_eq!(h["of"], "redacted");
        }
    }
    // raw: refused on a read-only root (even for admin) and for a viewer.
    let (cat, _) = fails(&mut admin, "file_read", json!({"path": "ro:app.conf", "raw": true})).await;
    assert_eq!(cat, "permission_denied");
    let (cat, _) = fails(&mut viewer, "file_read", json!({"path": "rw:app.conf", "raw": true})).await;
    assert_eq!(cat, "permission_denied");
    let (cat, _) = fails(&mut viewer, "file_hash", json!({"path": "rw:app.conf", "raw": true})).await;
    assert_eq!(cat, "permission_denied");
    // A writer on a read_write root gets the bytes.
    let r = ok(&mut admin, "file_read", json!({"path": "rw:app.conf", "raw": true})).await;
    assert_eq!((r["content"].as_str(), r["redacted"].as_bool()), (Some(content), Some(false)));
    let r = ok(&mut admin, "file_tail", json!({"path": "rw:app.conf", "raw": true, "lines": 2})).await;
    assert_eq!(r["lines"], json!(["password=hunter2", "port=5432"]));
    let h = ok(&mut admin, "file_hash", json!({"path": "rw:app.conf", "raw": true})).await;
    assert_eq!(h["sha256"].as_str(), Some(sha(content.as_bytes()).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_of_a_2_gib_sparse_file_reads_only_its_end() {
    let data = tempfile::tempdir().expect("data");
    let p = data.path().join("huge.log");
    {
        let mut f = std::fs::File::create(&p).expect("create");
        // Text at the start (the binary probe), a 2 GiB hole, lines at the end.
        f.write_all("header line\n".repeat(1000).as_bytes()).expect("w");
        f.set_len(2 << 30).expect("sparse");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).expect("append");
        f.write_all(b"\n").expect("w");
        for i in 0..1000 {
            f.write_all(format!("tail line {i}\n").as_bytes()).expect("w");
        }
    }
    let size = std::fs::metadata(&p).expect("meta").len();
    assert!(size > 2 << 30);
    let (s, addr, _t) = start("roles = [\"viewer\"]", &[("logs", data.path(), "read")]);
    let mut c = client(addr).await;
    let before = rchar(s.pid());
    let r = ok(&mut c, "file_tail", json!({"path": "logs:huge.log", "lines": 100})).await;
    let after = rchar(s.pid());
    let lines = r["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 100);
    assert_eq!((lines[0].as_str(), lines[99].as_str()), (Some("tail line 900"), Some("tail line 999")));
    assert_eq!(r["size"].as_u64(), Some(size));
    assert!(r["bytes_read"].as_u64().is_some_and(|b| b <= 128 * 1024), "{}", r["summary"]);
    // The server read (files and sockets together) a few hundred KiB at
    // most, not 2 GiB.
    let read = after - before;
    eprintln!("tail -n 100 of {size} bytes: server rchar grew by {read} bytes");
    assert!(read < 4 * MIB as u64, "the server read {read} bytes for a tail of a {size}-byte file");

    // The 4 MiB read-back cap: the last 10,000 lines of the hole-and-lines
    // file fit (1000 lines then the hole's one long NUL "line" is beyond
    // the cap): fewer lines, truncated.
    let before = rchar(s.pid());
    let r = ok(&mut c, "file_tail", json!({"path": "logs:huge.log", "lines": 10_000})).await;
    let read = rchar(s.pid()) - before;
    assert_eq!(r["lines"].as_array().map(Vec::len), Some(1000), "{}", r["summary"]);
    assert_eq!(r["truncated"], true);
    assert!(r["bytes_read"].as_u64().is_some_and(|b| b <= 4 * MIB as u64), "{}", r["summary"]);
    assert!(read < 8 * MIB as u64, "read {read}");
}

fn sse_messages(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .collect()
}

/// True once the server process `pid` holds `file` open.
fn holds_open(pid: u32, file: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == file)))
        .unwrap_or(false)
}

fn append(p: &Path, s: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(p).expect("append");
    f.write_all(s.as_bytes()).expect("w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_sends_lines_as_progress_through_truncation_and_rotation_and_stops_on_cancel() {
    let data = tempfile::tempdir().expect("data");
    let p = data.path().join("app.log");
    std::fs::write(&p, "before 1\nbefore 2\n").expect("w");
    let (s, addr, t) = start("roles = [\"admin\"]", &[("logs", data.path(), "read")]);
    let mut c = client(addr).await;
    let session = c.session.clone().expect("session");

    let call = tokio::spawn(post_sse(
        Via::Tcp(addr),
        session.clone(),
        json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {
            "name": "file_tail", "arguments": {"path": "logs:app.log", "lines": 1, "follow_secs": 6},
            "_meta": {"progressToken": "tail-41"}}}),
        Duration::from_secs(90),
    ));
    // The writer: appends, a secret, a half line completed later, a
    // truncation (copytruncate), then a rotation (rename + create).
    let steps: Vec<Box<dyn Fn() + Send>> = vec![
        Box::new({
            let p = p.clone();
            move || append(&p, "new 1\npassword=hunter2\nhalf")
        }),
        Box::new({
            let p = p.clone();
            move || append(&p, " done\n")
        }),
        Box::new({
            let p = p.clone();
            move || {
                std::fs::OpenOptions::new().write(true).open(&p).expect("open").set_len(0).expect("truncate");
            }
        }),
        Box::new({
            let p = p.clone();
            move || append(&p, "after truncate\n")
        }),
        Box::new({
            let (p, d) = (p.clone(), data.path().to_path_buf());
            move || {
                std::fs::rename(&p, d.join("app.log.1")).expect("rotate");
                std::fs::write(&p, "after rotate\n").expect("create");
            }
        }),
    ];
    // The follow is in flight once the server holds the file open (its
    // tail opened it): the first append must come after that, or it is part
    // of the tail; a fixed 700 ms assumed the call had started by then,
    // which a loaded box can outlast.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !holds_open(s.pid(), &p) {
        assert!(Instant::now() < deadline, "the follow never opened {}", p.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for step in steps {
        tokio::time::sleep(Duration::from_millis(700)).await;
        step();
    }
    let msgs = call.await.expect("call");
    let result = msgs.iter().find(|m| m["id"] == 41).expect("response");
    assert_eq!(result["result"]["isError"], false, "{result}");
    let out = &result["result"]["structuredContent"];
    assert_eq!(out["lines"], json!(["before 2"]), "{out}");
    let f = &out["follow"];
    assert_eq!(
        f["lines"],
        json!(["new 1", "password=[REDACTED]", "half done", "after truncate", "after rotate"]),
        "{f}"
    );
    assert_eq!(
        (f["truncations"].as_u64(), f["rotations"].as_u64(), f["stopped"].as_str()),
        (Some(1), Some(1), Some("window"))
    );
    let progress: Vec<&Value> = msgs.iter().filter(|m| m["method"] == "notifications/progress").collect();
    assert!(!progress.is_empty(), "{msgs:?}");
    assert_eq!(f["progress_notifications"].as_u64(), Some(progress.len() as u64));
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "tail-41"));
    let streamed: Vec<&str> =
        progress.iter().filter_map(|p| p["params"]["message"].as_str()).flat_map(|m| m.lines()).collect();
    assert_eq!(streamed, ["new 1", "password=[REDACTED]", "half done", "after truncate", "after rotate"]);
    let values: Vec<f64> = progress.iter().filter_map(|p| p["params"]["progress"].as_f64()).collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    assert!(!msgs.iter().any(|m| m.to_string().contains("hunter2")));

    // Cancelled: the 30 s follow ends at once.
    let call = tokio::spawn(post_sse(
        Via::Tcp(addr),
        session.clone(),
        json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {
            "name": "file_tail", "arguments": {"path": "logs:app.log", "follow_secs": 30}}}),
        Duration::from_secs(90),
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Cancelled (again on every poll, in case the call was not in flight yet).
    let record = cancel_until_recorded(&mut c, 77, Some("test"), "file_tail", Duration::from_secs(20), |x| {
        x["args"]["follow_secs"] == 30
    })
    .await;
    assert!(record["duration_ms"].as_u64().is_some_and(|ms| ms < 15_000), "ended on cancel, not after 30 s: {record}");
    call.abort();
    drop(s);
    drop(t);
}

/// Opens the session's standalone GET SSE stream and returns a receiver
/// of its messages.
async fn listen(addr: SocketAddr, session: &str) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    use http_body_util::{BodyExt, Empty};
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s)).await.expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get("/mcp")
        .header("host", addr.to_string())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL)
        .body(Empty::<hyper::body::Bytes>::new())
        .expect("request");
    let res = tx.send_request(req).await.expect("response");
    assert_eq!(res.status(), 200, "GET stream");
    let (out, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _tx = tx;
        let mut body = res.into_body();
        let mut buf = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                buf.extend_from_slice(d);
                while let Some(i) = buf.windows(2).position(|w| w == b"\n\n") {
                    let ev: Vec<u8> = buf.drain(..i + 2).collect();
                    for m in sse_messages(&ev) {
                        let _ = out.send(m);
                    }
                }
            }
        }
    });
    rx
}

async fn next_update(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) if m["method"] == "notifications/resources/updated" => return Some(m),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_as_resources_templates_read_subscribe_and_narrowing() {
    let logs = tempfile::tempdir().expect("logs");
    let other = tempfile::tempdir().expect("other");
    std::fs::write(logs.path().join("app.log"), "start\npassword=hunter2\n").expect("w");
    std::fs::write(logs.path().join("img.bin"), [0u8, 159, 146, 150]).expect("w");
    std::fs::write(logs.path().join(".env"), "TOKEN=x\n").expect("w");
    let roots = [("logs", logs.path(), "read"), ("other", other.path(), "read")];
    let (mut s, addr, t) = start("roles = [\"viewer\"]", &roots);
    let (_n, naddr, _tn) = start("roles = [\"viewer\"]\nfiles = { roots = [\"other\"] }", &roots);
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    let init = c.initialize().await;
    assert_eq!(init.body["result"]["capabilities"]["resources"]["subscribe"], true, "{}", init.body);
    let mut narrowed = client(naddr).await;

    let init = c.request("resources/templates/list", json!({})).await;
    let templates: Vec<&str> = init.body["result"]["resourceTemplates"]
        .as_array()
        .expect("templates")
        .iter()
        .filter_map(|t| t["uriTemplate"].as_str())
        .collect();
    assert_eq!(templates, ["file://logs/{+path}", "file://other/{+path}"], "{}", init.body);
    let n = narrowed.request("resources/templates/list", json!({})).await;
    assert_eq!(n.body["result"]["resourceTemplates"].as_array().map(Vec::len), Some(1), "{}", n.body);

    // Read: text redacted, binary as a blob, denied and missing refused.
    let r = c.request("resources/read", json!({"uri": "file://logs/app.log"})).await;
    let contents = &r.body["result"]["contents"][0];
    assert_eq!(contents["text"], "start\npassword=[REDACTED]\n", "{}", r.body);
    assert_eq!(contents["_meta"]["truncated"], false);
    let r = c.request("resources/read", json!({"uri": "file://logs/img.bin"})).await;
    assert_eq!(b64(r.body["result"]["contents"][0]["blob"].as_str().expect("blob")), [0u8, 159, 146, 150]);
    let r = c.request("resources/read", json!({"uri": "file://logs/.env"})).await;
    assert_eq!(r.body["error"]["data"]["category"], "permission_denied", "{}", r.body);
    let r = c.request("resources/read", json!({"uri": "file://logs/none.txt"})).await;
    assert_eq!(r.body["error"]["code"], -32002, "{}", r.body);
    for bad in ["file:///etc/passwd", "file://logs/%2e%2e/%2e%2e/etc/passwd", "file://logs/a%00b"] {
        let r = c.request("resources/read", json!({"uri": bad})).await;
        assert_eq!(r.body["error"]["data"]["category"], "invalid_input", "{bad}: {}", r.body);
    }
    // Narrowed to another root: logs does not exist for it.
    let r = narrowed.request("resources/read", json!({"uri": "file://logs/app.log"})).await;
    assert_eq!(
        (r.body["error"]["code"].as_i64(), r.body["error"]["data"]["category"].as_str()),
        (Some(-32002), Some("not_found")),
        "{}",
        r.body
    );
    let r = narrowed.request("resources/subscribe", json!({"uri": "file://logs/app.log"})).await;
    assert_eq!(r.body["error"]["data"]["category"], "not_found", "{}", r.body);

    // Subscribe, then change the file: an update arrives on the stream.
    let mut rx = listen(addr, c.session.as_deref().expect("session")).await;
    let r = c.request("resources/subscribe", json!({"uri": "file://logs/app.log"})).await;
    assert!(r.body["error"].is_null(), "{}", r.body);
    append(&logs.path().join("app.log"), "more\n");
    let u = next_update(&mut rx, Duration::from_secs(10)).await.expect("updated after an append");
    assert_eq!(u["params"]["uri"], "file://logs/app.log");
    // Replaced atomically (rename over it): still watched.
    std::fs::write(logs.path().join(".app.tmp"), "replaced\n").expect("w");
    std::fs::rename(logs.path().join(".app.tmp"), logs.path().join("app.log")).expect("mv");
    assert!(next_update(&mut rx, Duration::from_secs(10)).await.is_some(), "updated after a rename over it");
    let r = c.request("resources/read", json!({"uri": "file://logs/app.log"})).await;
    assert_eq!(r.body["result"]["contents"][0]["text"], "replaced\n");
    // Unsubscribed: no more updates; unsubscribing again is an error.
    let r = c.request("resources/unsubscribe", json!({"uri": "file://logs/app.log"})).await;
    assert!(r.body["error"].is_null(), "{}", r.body);
    while tokio::time::timeout(Duration::from_millis(600), rx.recv()).await.is_ok_and(|m| m.is_some()) {}
    append(&logs.path().join("app.log"), "after unsubscribe\n");
    assert!(next_update(&mut rx, Duration::from_secs(2)).await.is_none(), "no update after unsubscribe");
    let r = c.request("resources/unsubscribe", json!({"uri": "file://logs/app.log"})).await;
    assert_eq!(r.body["error"]["code"], -32002, "{}", r.body);
    // Denied files cannot be subscribed to.
    let r = c.request("resources/subscribe", json!({"uri": "file://logs/.env"})).await;
    assert_eq!(r.body["error"]["data"]["category"], "permission_denied", "{}", r.body);

    // Caps: 32 subscriptions per session (limit-1, limit, limit+1; this
    // session holds none now), counted in /readyz; a session that ends
    // frees its subscriptions even when its files never change.
    for i in 0..33 {
        std::fs::write(logs.path().join(format!("f{i}.log")), "x\n").expect("w");
    }
    let mut s2 = client(addr).await;
    for i in 0..32 {
        let r = s2.request("resources/subscribe", json!({"uri": format!("file://logs/f{i}.log")})).await;
        assert!(r.body["error"].is_null(), "subscription {} of 32: {}", i + 1, r.body);
    }
    let r = s2.request("resources/subscribe", json!({"uri": "file://logs/f32.log"})).await;
    assert_eq!(r.body["error"]["data"]["category"], "conflict", "the 33rd: {}", r.body);
    let r = s2.request("resources/subscribe", json!({"uri": "file://logs/f0.log"})).await;
    assert!(r.body["error"].is_null(), "subscribing again replaces, not adds: {}", r.body);
    let ready = get(&Via::Tcp(addr), &addr.to_string(), "/readyz").await;
    assert_eq!(ready.body["checks"]["files"]["subscriptions"], 32, "{}", ready.body);
    let mut headers = vec![("mcp-session-id".to_string(), s2.session.clone().expect("session"))];
    headers.push(("mcp-protocol-version".into(), PROTOCOL.into()));
    let r = raw(&Via::Tcp(addr), "DELETE", &addr.to_string(), Vec::new(), &headers).await;
    assert!(r.status < 300, "DELETE session: {}", r.status);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let ready = get(&Via::Tcp(addr), &addr.to_string(), "/readyz").await;
        if ready.body["checks"]["files"]["subscriptions"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "subscriptions of a closed session kept: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Audited like tool calls.
    s.stop();
    let log = std::fs::read_to_string(t.path().join("state/audit.jsonl")).expect("audit");
    let recs: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let named = |name: &str| recs.iter().filter(|r| r["tool"] == name).count();
    assert!(named("resource:file://logs/app.log") >= 2, "{log}");
    assert!(named("resource:file://logs/.env") >= 1);
    assert!(named("resource_subscribe:file://logs/app.log") >= 1);
    assert!(named("resource_unsubscribe:file://logs/app.log") >= 2);
    assert!(!log.contains("hunter2"));
}
