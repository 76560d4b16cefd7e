//! `process_signal` under attack (issue 9, item 2), against the real server
//! in dev-listen mode with an admin caller (it holds `processes:signal`).
//!
//! `kill(2)` on a thread id signals the thread's whole process, so every
//! check must be about the thread GROUP: these tests aim at thread ids of
//! the server, of init, of the test process that runs the server (its
//! parent) and of an ordinary multi-threaded process, and at kernel threads.
//!
//! Probe signals are chosen so that a regression fails an assertion instead
//! of taking the machine down: KILL where the kernel itself drops it (init
//! and kernel threads are unkillable from userspace), KILL at the server (its
//! death is what the test reports), CONT at the test process (a regression
//! sends a harmless CONT and the test fails on the reply).

use serde_json::{Value, json};

use crate::support::mcp::{Client, Reply, Via};
use crate::support::server::ServerProcess;

/// An admin on loopback, with rate limits far above what these tests send
/// (each thread id is one writing call).
const ADMIN: &str = "[local]\nname = \"sig\"\nroles = [\"admin\"]\n\
[limits.rate]\ncalls_per_minute = 6000\nburst = 1000\nwrites_per_minute = 6000\nwrite_burst = 1000\n";

/// The kernel's PID_MAX_LIMIT on 64-bit: no pid is ever this large.
const PID_MAX_LIMIT: i64 = 4_194_304;

/// `PF_KTHREAD` in /proc/PID/stat flags.
const PF_KTHREAD: u64 = 0x0020_0000;

async fn client(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    c
}

async fn signal(c: &mut Client, pid: i64, sig: &str) -> Reply {
    let r = c.call("process_signal", json!({"pid": pid, "signal": sig, "wait_ms": 0})).await;
    assert_eq!(r.status, 200, "process_signal {pid} {sig}: {}", r.body);
    r
}

fn message(r: &Reply) -> String {
    r.structured()["error"]["message"].as_str().unwrap_or_default().to_owned()
}

/// Asserts a structured refusal of `category` whose message contains each of `words`.
fn refused(r: &Reply, category: &str, words: &[&str], what: &str) {
    assert!(r.is_tool_error(), "{what}: must be refused, got {}", r.body);
    assert_eq!(r.error_category(), Some(category), "{what}: {}", r.body);
    let msg = message(r);
    for w in words {
        assert!(msg.contains(w), "{what}: message {msg:?} should name {w:?}");
    }
    let hint = &r.structured()["error"]["hint"];
    assert!(hint.as_str().is_some_and(|h| !h.is_empty()), "{what}: a hint says what to do: {}", r.body);
}

/// Thread ids of `pid` other than the main thread (whose tid is the pid).
fn other_threads(pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|t| *t != pid)
        .collect();
    tids.sort_unstable();
    tids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned)))
        .is_some_and(|state| state != "Z" && state != "X")
}

fn stat_flags(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(')')?.1.split_whitespace().nth(6)?.parse().ok()
}

async fn still_answers(c: &mut Client, server: &ServerProcess) {
    assert!(alive(server.pid()), "the server process must still be running");
    let r = c.call("whoami", json!({})).await;
    assert_eq!(r.status, 200, "server still answers: {}", r.body);
    assert!(!r.is_tool_error(), "{}", r.body);
}

/// A child for tools to act on; killed on drop.
struct Kid(std::process::Child);

impl Kid {
    fn sleep() -> Self {
        Kid(std::process::Command::new("sleep").arg("300").spawn().expect("spawn sleep"))
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// KILL to each thread id of the server (not its pid, which was always
/// refused): on the old code the first one killed the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_to_each_server_thread_is_refused_and_the_server_lives() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let mut c = client(addr).await;
    let tids = other_threads(server.pid());
    assert!(!tids.is_empty(), "the server runs more than one thread");
    let pid_text = server.pid().to_string();
    for tid in tids {
        let r = signal(&mut c, i64::from(tid), "KILL").await;
        refused(&r, "permission_denied", &["tailops", &pid_text], &format!("server thread {tid}"));
        assert!(alive(server.pid()), "KILL to server thread {tid} killed the server");
    }
    still_answers(&mut c, &server).await;
}

/// PID 1, the server's own pid, the server's parent (this test process) and
/// each thread of that parent are refused as protected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_the_server_and_its_parent_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let mut c = client(addr).await;
    let me = std::process::id();
    let r = signal(&mut c, i64::from(me), "CONT").await;
    refused(&r, "permission_denied", &["parent"], "the server's parent");
    let tids = other_threads(me);
    assert!(!tids.is_empty(), "the test process runs more than one thread");
    // The test binary runs other tests at once: some of its threads end
    // while this loop runs. A thread gone before the call is `not_found`;
    // every thread still there must be refused as the parent's. This
    // test's own runtime workers live throughout, so some are checked.
    let mut checked = 0;
    for tid in tids {
        let r = signal(&mut c, i64::from(tid), "CONT").await;
        let gone = !std::path::Path::new(&format!("/proc/{me}/task/{tid}")).exists();
        if gone && r.error_category() == Some("not_found") {
            continue;
        }
        refused(&r, "permission_denied", &["parent", &me.to_string()], &format!("parent's thread {tid}"));
        checked += 1;
    }
    assert!(checked > 0, "at least one of the test process's threads was checked");
    let r = signal(&mut c, 1, "KILL").await;
    refused(&r, "permission_denied", &["PID 1"], "init");
    let r = signal(&mut c, i64::from(server.pid()), "KILL").await;
    refused(&r, "permission_denied", &["tailops"], "the server itself");
    still_answers(&mut c, &server).await;
}

/// Threads of PID 1: SIGINT to a systemd thread id is a reboot. KILL is the
/// probe because the kernel never delivers it to init from userspace, so a
/// regression shows up as an accepted call, not as a dead machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_of_init_are_refused() {
    let tids = other_threads(1);
    if tids.is_empty() {
        eprintln!("PID 1 is single-threaded here; its threads are covered by the multi-threaded child test");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let mut c = client(addr).await;
    let mut checked = 0;
    for tid in tids.into_iter().take(32) {
        let r = signal(&mut c, i64::from(tid), "KILL").await;
        // A thread that ended before the call is `not_found` (see above).
        if r.error_category() == Some("not_found") && !std::path::Path::new(&format!("/proc/1/task/{tid}")).exists() {
            continue;
        }
        refused(&r, "permission_denied", &["PID 1"], &format!("init's thread {tid}"));
        checked += 1;
    }
    assert!(checked > 0, "at least one thread of PID 1 was checked");
    still_answers(&mut c, &server).await;
}

/// An ordinary multi-threaded process (a second tailops): a thread id is
/// refused as a thread, naming its process, and the process is untouched;
/// the process id itself is accepted and the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_id_is_refused_and_its_process_id_accepted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let victim_dir = tempfile::tempdir().expect("tmp");
    let (victim, _) =
        ServerProcess::start_dev(victim_dir.path(), "[local]\nname = \"victim\"\nroles = [\"viewer\"]\n", &[]);
    let mut c = client(addr).await;
    let vpid = victim.pid();
    let tids = other_threads(vpid);
    assert!(!tids.is_empty(), "the victim runs more than one thread");
    for tid in tids.iter().take(8) {
        let r = signal(&mut c, i64::from(*tid), "KILL").await;
        refused(&r, "invalid_input", &["thread", &vpid.to_string()], &format!("victim thread {tid}"));
        assert!(r.structured()["error"]["hint"].as_str().is_some_and(|h| h.contains(&vpid.to_string())));
        assert!(alive(vpid), "KILL to thread {tid} killed the victim process");
    }
    let r = c.call("process_signal", json!({"pid": vpid, "signal": "TERM", "wait_ms": 10_000})).await;
    assert!(!r.is_tool_error(), "the process id is accepted: {}", r.body);
    let out = r.structured();
    assert_eq!((out["pid"].as_u64(), out["signal"].as_str()), (Some(u64::from(vpid)), Some("TERM")), "{out}");
    assert_eq!(out["exited"], true, "{out}");
    assert!(!alive(vpid));
    still_answers(&mut c, &server).await;
}

/// Kernel threads (kthreadd, a kworker …) are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_threads_are_refused() {
    let mut kthreads: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|pid| stat_flags(*pid).is_some_and(|f| f & PF_KTHREAD != 0))
        .collect();
    kthreads.sort_unstable();
    if kthreads.is_empty() {
        eprintln!("no kernel threads visible in this pid namespace");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let mut c = client(addr).await;
    for pid in kthreads.into_iter().take(4) {
        let r = signal(&mut c, i64::from(pid), "KILL").await;
        refused(&r, "permission_denied", &["kernel thread"], &format!("kernel thread {pid}"));
    }
    still_answers(&mut c, &server).await;
}

/// The ordinary case still works: TERM to a child reports it exited, with
/// the output fields unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_to_a_child_reports_it_exited() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let mut c = client(addr).await;
    let kid = Kid::sleep();
    // The longest wait allowed (a give-up bound: the answer comes at the
    // exit), so a loaded box slow to run the killed process still counts.
    let r = c.call("process_signal", json!({"pid": kid.pid(), "wait_ms": 10_000})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    let out: &Value = r.structured();
    assert_eq!(out["signal"], "TERM");
    assert_eq!(out["name"], "sleep");
    assert_eq!(out["exited"], true, "{out}");
    assert!(out["waited_ms"].as_u64().is_some_and(|w| w < 10_000), "{out}");
    let summary = out["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with(&format!("sent SIGTERM to {} (sleep); it exited within", kid.pid())), "{summary}");

    // STOP does not end a process: the wait runs out and says so.
    let kid = Kid::sleep();
    let r = c.call("process_signal", json!({"pid": kid.pid(), "signal": "STOP", "wait_ms": 300})).await;
    assert!(!r.is_tool_error(), "{}", r.body);
    let out = r.structured();
    assert_eq!(out["exited"], false, "{out}");
    assert!(out["waited_ms"].as_u64().is_some_and(|w| (300..10_000).contains(&w)), "{out}");
}

/// Out-of-range pids and waits are invalid input; a free pid is not found;
/// nothing is signalled either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pids_and_waits_are_invalid_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (server, addr) = ServerProcess::start_dev(tmp.path(), ADMIN, &[]);
    let mut c = client(addr).await;
    let kid = Kid::sleep();
    for pid in [0, -1, -2, i64::from(i32::MIN), i64::from(i32::MAX), PID_MAX_LIMIT, 999_999_999] {
        let r = signal(&mut c, pid, "TERM").await;
        refused(&r, "invalid_input", &["pid"], &format!("pid {pid}"));
    }
    for wait in [10_001u64, u64::MAX] {
        let r = c.call("process_signal", json!({"pid": kid.pid(), "wait_ms": wait})).await;
        refused(&r, "invalid_input", &["wait_ms"], &format!("wait_ms {wait}"));
    }
    assert!(alive(kid.pid()), "a refused call signals nothing");
    let free =
        (2..PID_MAX_LIMIT).rev().find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).expect("a free pid");
    let r = signal(&mut c, free, "TERM").await;
    refused(&r, "not_found", &[&free.to_string()], "a free pid");
    still_answers(&mut c, &server).await;
}
