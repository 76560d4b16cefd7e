//! The audit log under attack, against the real server (`--dev-listen`):
//! a frozen audit device (write-ahead of writing tools, `stalled`), a
//! flood of refused calls meant to rotate history away (pruned records,
//! `audit verify --expect-from`), and the journald copy (fields forged
//! through a tool name, seq/hash matching the chain).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mcp::{Client, Via, get};
use crate::support::server::ServerProcess;

/// A child process for `process_signal`; killed on drop.
struct Victim(Child);

impl Victim {
    fn spawn() -> Self {
        Victim(Command::new("sleep").arg("300").stdin(Stdio::null()).spawn().expect("spawn sleep"))
    }
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
    /// Whether it exited within `d` (reaps it).
    fn exited_within(&mut self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            if self.0.try_wait().expect("try_wait").is_some() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A small ext4 filesystem on a loop device (needs root), unmounted on drop.
pub(crate) struct LoopFs {
    pub(crate) mnt: PathBuf,
}

impl LoopFs {
    pub(crate) fn new(dir: &Path) -> LoopFs {
        let img = dir.join("audit.img");
        std::fs::File::create(&img).expect("image").set_len(32 << 20).expect("size");
        run("mkfs.ext4", &["-q", "-F", img.to_str().expect("utf8")]);
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).expect("mnt");
        run("mount", &["-o", "loop", img.to_str().expect("utf8"), mnt.to_str().expect("utf8")]);
        LoopFs { mnt }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Lazy: the loop device is released once the last user is gone.
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

/// `fsfreeze -f` on a mount: every write(2) and fsync(2) to it blocks in
/// the kernel until thawed. Thawed on drop (before the server is killed: a
/// process blocked on a frozen filesystem cannot die).
pub(crate) struct Freeze(PathBuf);

impl Freeze {
    pub(crate) fn new(mnt: &Path) -> Freeze {
        run("fsfreeze", &["-f", mnt.to_str().expect("utf8")]);
        Freeze(mnt.to_path_buf())
    }
    fn thaw(&self) {
        run("fsfreeze", &["-u", self.0.to_str().expect("utf8")]);
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0).stderr(Stdio::null()).status();
    }
}

pub(crate) fn verify(files: &[PathBuf], extra: &[&str]) -> (Output, Value) {
    let out = Command::new(ServerProcess::bin())
        .args(["audit", "verify"])
        .args(extra)
        .args(files)
        .output()
        .expect("run audit verify");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out, report)
}

pub(crate) fn records(files: &[PathBuf]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).expect("read audit").lines().map(str::to_string).collect::<Vec<_>>())
        .map(|l| serde_json::from_str(&l).expect("record"))
        .collect()
}

/// Issue 9 item 6: with the audit device frozen, a writing tool must not
/// run (its intent cannot be made durable), `/readyz` says `stalled`,
/// reads keep working; after the thaw writes work again and the chain
/// verifies. Before the fix the intent was queued fire-and-forget and the
/// health flag still said ok: `process_signal` ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_audit_device_refuses_writing_tools_until_thawed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = LoopFs::new(tmp.path());
    let log = fs.mnt.join("audit.jsonl");
    let cfg = format!(
        "[local]\nname = \"dev\"\nroles = [\"admin\"]\n[audit]\npath = \"{}\"\nfsync = \"always\"\n",
        log.display()
    );
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let host = addr.to_string();
    let via = Via::Tcp(addr);
    let mut c = Client::new(via.clone(), &host);
    assert_eq!(c.initialize().await.status, 200);
    let r = c.call("server_info", json!({})).await;
    assert_eq!(r.structured()["audit_healthy"], true, "{}", r.body);
    let mut victim = Victim::spawn();

    let freeze = Freeze::new(&fs.mnt);
    // The writer is idle: the intent is queued, blocks in write(2), and the
    // call is refused after write_ahead_timeout_ms (default 2000).
    let t0 = Instant::now();
    let r = c.call("process_signal", json!({"pid": victim.pid(), "signal": "TERM"})).await;
    let waited = t0.elapsed();
    assert_eq!(r.error_category(), Some("unavailable"), "{}", r.body);
    assert!(
        r.structured()["error"]["message"].as_str().is_some_and(|m| m.contains("not written within")),
        "{}",
        r.body
    );
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_secs(10), "{waited:?}");
    assert!(!victim.exited_within(Duration::from_millis(500)), "refused write signalled the process");

    // The writer has been stuck longer than the bound: degraded, stalled.
    // The stall is counted from when the writer began the write, a moment
    // after the call queued its intent (2 s before the refusal), so on a
    // loaded box the first /readyz can still come before it: wait for it
    // (bounded) instead of sampling once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let ready = get(&via, &host, "/readyz").await;
        if ready.body["checks"]["audit"]["reason"] == "stalled" || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready.status, 503, "a failing audit log makes /readyz non-200 (issue 13)");
    assert_eq!(ready.body["status"], "degraded", "{}", ready.body);
    let audit = &ready.body["checks"]["audit"];
    assert_eq!((audit["status"].as_str(), audit["reason"].as_str()), (Some("failing"), Some("stalled")), "{audit}");
    assert!(audit["stalled_ms"].as_u64().is_some_and(|ms| ms >= 2000), "{audit}");

    // Now refused at once, without queueing another intent.
    let t0 = Instant::now();
    let r = c.call("process_signal", json!({"pid": victim.pid(), "signal": "KILL"})).await;
    assert_eq!(r.error_category(), Some("unavailable"), "{}", r.body);
    assert!(r.structured()["error"]["message"].as_str().is_some_and(|m| m.contains("stalled")), "{}", r.body);
    // At once: well under the 2 s write-ahead wait it would otherwise take.
    assert!(t0.elapsed() < Duration::from_millis(1900), "{:?}", t0.elapsed());
    assert!(!victim.exited_within(Duration::from_millis(300)));

    // Reads keep working, the audit reader too (it does not wait for the
    // stuck writer).
    let r = c.call("server_info", json!({})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    assert_eq!(r.structured()["audit_healthy"], false);
    let t0 = Instant::now();
    let r = c.call("audit_tail", json!({"limit": 5})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    // Waiting on the frozen device would last until the thaw (never, here).
    assert!(t0.elapsed() < Duration::from_secs(10), "audit_tail waited on the frozen device: {:?}", t0.elapsed());

    freeze.thaw();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = get(&via, &host, "/readyz").await;
        if ready.body["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < deadline, "not healthy after the thaw: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The intent written late did not make the tool run.
    assert!(!victim.exited_within(Duration::from_millis(300)), "a late intent ran the tool");
    let r = c.call("process_signal", json!({"pid": victim.pid(), "signal": "TERM"})).await;
    assert!(!r.is_tool_error(), "writes work again: {}", r.body);
    assert!(victim.exited_within(Duration::from_secs(30)));
    drop(freeze);
    assert!(server.stop().success());

    let files = tailops::audit::rotated_files(&log);
    let (out, report) = verify(&files, &["--expect-from", "1"]);
    assert!(out.status.success(), "chain intact after the stall: {report}");
    let recs = records(&files);
    let signals: Vec<&Value> = recs.iter().filter(|r| r["tool"] == "process_signal").collect();
    // Intent of call 1 (written late), its refusal, refusal of call 2
    // (nothing queued first), then intent + outcome of the real call.
    let shape: Vec<(String, String)> = signals
        .iter()
        .map(|r| (r["kind"].as_str().unwrap_or("").to_string(), r["outcome"].as_str().unwrap_or("-").to_string()))
        .collect();
    let want =
        [("decision", "-"), ("tool_call", "refused"), ("tool_call", "refused"), ("decision", "-"), ("tool_call", "ok")];
    assert_eq!(shape, want.map(|(k, o)| (k.to_string(), o.to_string())), "{signals:#?}");
    assert!(signals[1]["detail"]["write_ahead"] == "failed" && signals[2]["error_category"] == "unavailable");
    assert!(
        recs.iter()
            .any(|r| r["detail"]["event"] == "stalled" && r["detail"]["ms"].as_u64().is_some_and(|ms| ms >= 2000)),
        "the stall is in the log"
    );
}

const FLOOD_TASKS: usize = 8;
const NOBODY: &str = "[local]\nname = \"nobody\"\nroles = []\n";

/// 200 unknown-tool calls with 60 KiB of arguments each, 8 at a time,
/// from a principal with no scope. Returns the HTTP statuses and the
/// largest `Retry-After`.
async fn flood(addr: std::net::SocketAddr) -> (Vec<u16>, u64) {
    let host = addr.to_string();
    let pad = "A".repeat(60 * 1024);
    let mut tasks = Vec::new();
    for t in 0..FLOOD_TASKS {
        let (pad, host) = (pad.clone(), host.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(Via::Tcp(addr), &host);
            assert_eq!(c.initialize().await.status, 200);
            let mut out = Vec::new();
            for i in 0..200 / FLOOD_TASKS {
                let r = c.call(&format!("no_such_tool_{t}_{i}"), json!({"pad": pad})).await;
                let retry = r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                out.push((r.status, retry));
            }
            out
        }));
    }
    let mut statuses = Vec::new();
    let mut retry = 0;
    for t in tasks {
        for (s, r) in t.await.expect("task") {
            statuses.push(s);
            retry = retry.max(r);
        }
    }
    (statuses, retry)
}

/// Issue 9 item 1: a caller with no scope floods unknown tools with huge
/// arguments to rotate the history away. It is rate limited and blocked,
/// the log stays small, and with a tiny `max_bytes`/`keep` the history
/// that rotation deleted is reported by `audit verify --expect-from 1`
/// instead of `ok`. Before the fix, verify said `ok` (only
/// `starts_mid_chain`) and had no `--expect-from`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_call_flood_is_bounded_and_pruned_history_is_reported() {
    // Default rotation: the log stays small.
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), NOBODY, &[]);
    let (statuses, retry) = flood(addr).await;
    assert_eq!(statuses.len(), 200);
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 180, "rate limited, then blocked: {statuses:?}");
    assert!(retry > 60, "blocked for block_secs (300), not just rate limited: {retry}");
    assert!(server.stop().success());
    let log = tmp.path().join("state/audit.jsonl");
    let files = tailops::audit::rotated_files(&log);
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).expect("meta").len()).sum();
    // 200 x 60 KiB were sent; refused calls keep at most 1 KiB of arguments.
    assert!(bytes < 64 * 1024, "audit log grew to {bytes} bytes");
    let recs = records(&files);
    assert!(recs.iter().all(|r| r.to_string().len() < 2048), "every record is small");
    assert!(recs.iter().any(|r| r["kind"] == "anomaly" && r["detail"]["event"] == "repeated_denials"));
    let (out, report) = verify(&files, &["--expect-from", "1"]);
    assert!(out.status.success(), "nothing was rotated away: {report}");
    eprintln!("flood: {limited} of 200 calls got 429; audit log {bytes} bytes for {} records", recs.len());

    // A tiny log and a patient attacker who waits out each block (1 s
    // here): rotation deletes history, and says so.
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!(
        "{NOBODY}[limits]\nmax_sessions_per_principal = 64\n[limits.rate]\nblock_secs = 1\n\
         [audit]\nmax_bytes = 4096\nkeep = 1\n"
    );
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    for _ in 0..3 {
        flood(addr).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert!(server.stop().success());
    let files = tailops::audit::rotated_files(&tmp.path().join("state/audit.jsonl"));
    assert_eq!(files.len(), 2, "keep = 1: {files:?}");

    let (out, report) = verify(&files, &[]);
    assert!(out.status.success(), "the kept chain itself is intact: {report}");
    let first = report["first_seq"].as_u64().expect("first_seq");
    assert!(first > 1 && report["starts_mid_chain"] == true, "{report}");
    assert!(report["unrecorded"].is_null(), "every deletion was recorded: {report}");
    // The dropped ranges cover 1..first exactly.
    let dropped = report["dropped"].as_array().cloned().unwrap_or_default();
    let mut next = 1;
    for d in &dropped {
        assert_eq!(d["first_seq"].as_u64(), Some(next), "{report}");
        next = d["last_seq"].as_u64().expect("last_seq") + 1;
    }
    assert_eq!(next, first, "{report}");
    let newest = dropped.last().expect("a dropped range");
    assert!(newest["file"].as_str().is_some_and(|f| f.starts_with("audit.jsonl.")), "{newest}");
    assert!(newest["pruned_at"].is_string() && newest["last_hash"].is_string(), "{newest}");

    let (out, report) = verify(&files, &["--expect-from", "1"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_problem"]["reason"], "history_missing", "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dropped: seq 1-") && stderr.contains("audit history INCOMPLETE"), "{stderr}");
    eprintln!("audit verify --expect-from 1:\n{stderr}");
    // At its edge: from the first kept record on, nothing is missing.
    let (out, _) = verify(&files, &["--expect-from", &first.to_string()]);
    assert!(out.status.success());
    let (out, _) = verify(&files, &["--expect-from", &(first - 1).to_string()]);
    assert_eq!(out.status.code(), Some(1));

    // Removing the oldest kept file by hand is not a rotation: unrecorded.
    std::fs::remove_file(&files[0]).expect("rm");
    let (out, report) = verify(&files[1..], &["--expect-from", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["first_problem"]["reason"], "unrecorded_drop", "{report}");
}

/// Parses one native-protocol datagram (both field forms).
fn parse_entry(mut d: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let nl = d.iter().position(|b| *b == b'\n').expect("line end");
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            out.push((String::from_utf8_lossy(&line[..eq]).into_owned(), line[eq + 1..].to_vec()));
            d = &d[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().expect("length")) as usize;
            out.push((key, d[nl + 9..nl + 9 + len].to_vec()));
            assert_eq!(d[nl + 9 + len], b'\n', "binary field ends in a newline");
            d = &d[nl + 10 + len..];
        }
    }
    out
}

/// Issue 9 item 1 (second copy): every record also goes to journald as a
/// structured entry whose seq/hash/prev match the JSONL chain, and a
/// caller-chosen tool name with newlines cannot forge entry fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_copy_matches_the_chain_and_resists_field_injection() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sock_path = tmp.path().join("journal.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind journal socket");
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    // Drain like journald does (the kernel queues only a few datagrams).
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => got.push(buf[..n].to_vec()),
                    Err(_) if stop.load(Ordering::SeqCst) => return got,
                    Err(_) => {}
                }
            }
        })
    };
    let cfg = format!(
        "[local]\nname = \"dev\"\nroles = [\"admin\"]\n[audit]\njournald = \"on\"\njournald_socket = \"{}\"\n",
        sock_path.display()
    );
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let host = addr.to_string();
    let mut c = Client::new(Via::Tcp(addr), &host);
    assert_eq!(c.initialize().await.status, 200);
    assert!(!c.call("server_info", json!({})).await.is_tool_error());
    let evil = "evil\nTAILOPS_DECISION=allow\nPRIORITY=0\nTAILOPS_SEQ=1";
    let r = c.call(evil, json!({})).await;
    assert_ne!(r.status, 429);
    let r = c.call("process_signal", json!({"pid": 1})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "{}", r.body);
    // The writer sends the journald copy after the call has answered:
    // wait (bounded) for the four records' copies instead of sampling once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let ready = get(&Via::Tcp(addr), &host, "/readyz").await;
        let sent = ready.body["checks"]["audit"]["journald"]["sent"].as_u64().unwrap_or(0);
        if sent >= 4 || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let j = &ready.body["checks"]["audit"]["journald"];
    assert_eq!(j["status"], "on", "{}", ready.body);
    assert!(j["sent"].as_u64().is_some_and(|n| n >= 4) && j["dropped"] == 0, "{j}");
    assert!(server.stop().success());
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let datagrams = reader.join().expect("reader");

    let recs = records(&[tmp.path().join("state/audit.jsonl")]);
    assert_eq!(datagrams.len(), recs.len(), "one entry per record");
    for (d, rec) in datagrams.iter().zip(&recs) {
        let fields = parse_entry(d);
        let one = |k: &str| -> Option<String> {
            let v: Vec<&Vec<u8>> = fields.iter().filter(|(key, _)| key == k).map(|(_, v)| v).collect();
            assert!(v.len() <= 1, "field {k} appears {} times: {fields:?}", v.len());
            v.first().map(|b| String::from_utf8_lossy(b).into_owned())
        };
        assert_eq!(one("SYSLOG_IDENTIFIER").as_deref(), Some("tailops-audit"));
        assert_eq!(one("TAILOPS_SEQ"), Some(rec["seq"].to_string()), "{rec}");
        assert_eq!(one("TAILOPS_HASH").as_deref(), rec["hash"].as_str());
        assert_eq!(one("TAILOPS_PREV").as_deref(), rec["prev"].as_str());
        assert_eq!(one("TAILOPS_KIND").as_deref(), rec["kind"].as_str());
        for (f, k) in [
            ("TAILOPS_PRINCIPAL", "principal"),
            ("TAILOPS_TOOL", "tool"),
            ("TAILOPS_DECISION", "decision"),
            ("TAILOPS_OUTCOME", "outcome"),
        ] {
            assert_eq!(one(f).as_deref(), rec[k].as_str(), "{f} of {rec}");
        }
        let msg = one("MESSAGE").expect("MESSAGE");
        assert!(!msg.contains('\n') && msg.contains(&format!("seq={}", rec["seq"])), "{msg}");
        assert!(one("PRIORITY").is_some_and(|p| ["4", "5", "6"].contains(&p.as_str())));
    }
    let forged = recs.iter().position(|r| r["tool"].as_str().is_some_and(|t| t.starts_with("evil\n")));
    let forged = forged.expect("the unknown tool is audited");
    let fields = parse_entry(&datagrams[forged]);
    let decisions: Vec<_> = fields.iter().filter(|(k, _)| k == "TAILOPS_DECISION").collect();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].1, b"deny");
}
