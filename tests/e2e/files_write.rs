//! Writing file tools against a real `tailops serve` and real files:
//! file_write in each mode (atomic create/overwrite, append, base64
//! uploads, compare-and-swap, permission bits, the size cap at its edge),
//! file_mkdir/file_move/file_delete, read-only roots, a symlinked parent
//! leading out, the audit records (intent first, then old/new sha256), and
//! crash safety: SIGKILL during large overwrites leaves the target
//! entirely old or entirely new, and no temporary file visible or left.
//!
//! (`tests/support/files.rs` was not on main when this was written: the
//! small server/client helpers below stand in for it.)

use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::mcp::Client;
use crate::support::mcp::client;
use crate::support::server::ServerProcess;

/// tailops' own limits, restated (a change there must show up here).
const MAX_WRITE_BYTES: usize = 16 * 1024 * 1024;

const BASE: &str = "[local]\nname = \"dev\"\nroles = [\"admin\"]\n\
[limits]\nmax_request_body_bytes = 33554432\nmax_sessions_per_principal = 1000\ntool_timeout_secs = 120\n\
[limits.rate]\ncalls_per_minute = 100000\nburst = 10000\nwrites_per_minute = 100000\nwrite_burst = 10000\nmax_denials = 100000\n";

struct Roots {
    tmp: tempfile::TempDir,
}

impl Roots {
    fn new() -> Roots {
        let tmp = tempfile::tempdir().expect("tmp");
        for d in ["w", "ro", "rec", "outside", "state"] {
            std::fs::create_dir_all(tmp.path().join(d)).expect("mkdir");
        }
        Roots { tmp }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    fn audit(&self) -> PathBuf {
        self.path("audit.jsonl")
    }
    /// Config with roots `w` (read_write), `ro` (read) and `rec`
    /// (read_write, recursive delete allowed).
    fn config(&self) -> String {
        format!(
            "{BASE}[audit]\npath = \"{}\"\n\
             [[files.roots]]\nname = \"w\"\npath = \"{}\"\nmode = \"read_write\"\n\
             [[files.roots]]\nname = \"ro\"\npath = \"{}\"\n\
             [[files.roots]]\nname = \"rec\"\npath = \"{}\"\nmode = \"read_write\"\nallow_recursive_delete = true\n",
            self.audit().display(),
            self.path("w").display(),
            self.path("ro").display(),
            self.path("rec").display()
        )
    }
    fn start(&self, cfg: &str) -> (ServerProcess, SocketAddr) {
        ServerProcess::start_dev(&self.path("state"), cfg, &[])
    }
}

async fn ok(c: &mut Client, tool: &str, args: Value) -> Value {
    let r = c.call(tool, args.clone()).await;
    assert_eq!(r.status, 200, "{tool}: {}", r.body);
    assert!(!r.is_tool_error(), "{tool} {}: {}", clip(&args), r.body);
    r.structured().clone()
}

/// The error category and message of a call that must fail.
async fn fails(c: &mut Client, tool: &str, args: Value) -> (String, String) {
    let r = c.call(tool, args.clone()).await;
    assert!(r.is_tool_error(), "{tool} {} should fail: {}", clip(&args), r.body);
    let e = &r.structured()["error"];
    assert!(e["category"].is_string(), "{tool}: no error category in {}", r.body);
    (e["category"].as_str().unwrap_or_default().to_string(), e["message"].as_str().unwrap_or_default().to_string())
}

fn clip(v: &Value) -> String {
    v.to_string().chars().take(200).collect()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).expect("ls").map(|e| e.expect("e").file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("md").permissions().mode() & 0o7777
}

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log).expect("audit log").lines().map(|l| serde_json::from_str(l).expect("record")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_modes_cas_permissions_and_audit_sha256() {
    let r = Roots::new();
    let (mut server, addr) = r.start(&r.config());
    let mut c = client(addr).await;
    let f = r.path("w/notes.txt");

    // create: new file, default 0644, then create again is a conflict.
    let out = ok(&mut c, "file_write", json!({"path": "w:notes.txt", "content": "one\n"})).await;
    assert_eq!(out["created"], true);
    assert_eq!(out["old_sha256"], Value::Null);
    assert_eq!(out["new_sha256"], sha(b"one\n"));
    assert_eq!(out["bytes_written"], 4);
    assert_eq!(std::fs::read(&f).expect("read"), b"one\n");
    assert_eq!(mode_of(&f), 0o644);
    let (cat, _) = fails(&mut c, "file_write", json!({"path": "w:notes.txt", "content": "x"})).await;
    assert_eq!(cat, "conflict");
    assert_eq!(std::fs::read(&f).expect("read"), b"one\n");

    // overwrite keeps the old mode bits unless told otherwise.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = ok(&mut c, "file_write", json!({"path": "w:notes.txt", "content": "two\n", "mode": "overwrite"})).await;
    assert_eq!((out["old_sha256"].clone(), out["new_sha256"].clone()), (json!(sha(b"one\n")), json!(sha(b"two\n"))));
    assert_eq!(out["permissions"], "0640");
    assert_eq!(mode_of(&f), 0o640);

    // Compare-and-swap: a stale sha is a conflict naming the current one,
    // and changes nothing; the right one (any case) writes.
    let (cat, msg) = fails(
        &mut c,
        "file_write",
        json!({"path": "w:notes.txt", "content": "three\n", "mode": "overwrite", "expected_sha256": sha(b"one\n")}),
    )
    .await;
    assert_eq!(cat, "conflict");
    assert!(msg.contains(&sha(b"two\n")), "{msg}");
    assert_eq!(std::fs::read(&f).expect("read"), b"two\n");
    ok(
        &mut c,
        "file_write",
        json!({"path": "w:notes.txt", "content": "three\n", "mode": "overwrite",
               "expected_sha256": sha(b"two\n").to_uppercase(), "permissions": "0600"}),
    )
    .await;
    assert_eq!(std::fs::read(&f).expect("read"), b"three\n");
    assert_eq!(mode_of(&f), 0o600);

    // append (CAS too), and append to a missing file creates it.
    let out = ok(
        &mut c,
        "file_write",
        json!({"path": "w:notes.txt", "content": "four\n", "mode": "append", "expected_sha256": sha(b"three\n")}),
    )
    .await;
    assert_eq!(out["new_sha256"], sha(b"three\nfour\n"));
    assert_eq!(std::fs::read(&f).expect("read"), b"three\nfour\n");
    let out = ok(&mut c, "file_write", json!({"path": "w:log.txt", "content": "a", "mode": "append"})).await;
    assert_eq!(out["created"], true);

    // base64 upload of binary content.
    let bin: Vec<u8> = (0..=255u8).collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bin);
    let out = ok(
        &mut c,
        "file_write",
        json!({"path": "w:blob.bin", "content": b64, "encoding": "base64", "permissions": "755"}),
    )
    .await;
    assert_eq!(out["new_sha256"], sha(&bin));
    assert_eq!(std::fs::read(r.path("w/blob.bin")).expect("read"), bin);
    assert_eq!(mode_of(&r.path("w/blob.bin")), 0o755);

    // Bad input changes nothing.
    for (args, what) in [
        (json!({"path": "w:bad", "content": "x", "permissions": "4755"}), "setuid"),
        (json!({"path": "w:bad", "content": "x", "permissions": "1777"}), "sticky"),
        (json!({"path": "w:bad", "content": "x", "permissions": "0888"}), "not octal"),
        (json!({"path": "w:bad", "content": "%%%", "encoding": "base64"}), "bad base64"),
        (json!({"path": "w:bad", "content": "x", "mode": "truncate"}), "unknown mode"),
        (json!({"path": "w:bad", "content": "x", "expected_sha256": sha(b"x")}), "CAS with create"),
        (json!({"path": "w:bad", "content": "x", "mode": "overwrite", "expected_sha256": "zz"}), "bad sha"),
        (json!({"path": "w:.tailops-tmp-1234", "content": "x"}), "reserved name"),
    ] {
        let (cat, _) = fails(&mut c, "file_write", args).await;
        assert_eq!(cat, "invalid_input", "{what}");
    }
    assert!(!r.path("w/bad").exists());
    // The tool's annotations say it can destroy; mkdir cannot.
    let tools = c.request("tools/list", json!({})).await;
    let ann = |name: &str| {
        tools.body["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["annotations"]["destructiveHint"].clone())
            .expect(name)
    };
    assert_eq!(
        (ann("file_write"), ann("file_move"), ann("file_delete"), ann("file_mkdir")),
        (json!(true), json!(true), json!(true), json!(false))
    );

    server.stop();
    // Audit: each write's intent (decision, with the arguments) comes
    // before its completion, which carries the old and new sha256.
    let recs = records(&r.audit());
    let writes: Vec<&Value> = recs.iter().filter(|v| v["tool"] == "file_write").collect();
    let done: Vec<&&Value> = writes.iter().filter(|v| v["kind"] == "tool_call" && v["outcome"] == "ok").collect();
    let overwrite = done
        .iter()
        .find(|v| v["args"]["content"] == "two\n")
        .unwrap_or_else(|| panic!("overwrite record in {writes:?}"));
    let result = &overwrite["detail"]["result"];
    assert_eq!(result["old_sha256"], sha(b"one\n"), "{overwrite}");
    assert_eq!(result["new_sha256"], sha(b"two\n"));
    assert_eq!(result["path"], "w:notes.txt");
    let seq = overwrite["seq"].as_u64().expect("seq");
    let intent = writes
        .iter()
        .rfind(|v| v["kind"] == "decision" && v["args"]["content"] == "two\n" && v["seq"].as_u64() < Some(seq))
        .unwrap_or_else(|| panic!("intent before {overwrite}"));
    assert_eq!(intent["decision"], "allow");
    let created = done.iter().find(|v| v["args"]["content"] == "one\n").expect("create record");
    assert_eq!(created["detail"]["result"]["old_sha256"], Value::Null);
    // A refused CAS has no result in its record.
    let conflict = writes.iter().find(|v| v["error_category"] == "conflict").expect("conflict record");
    assert!(conflict["detail"]["result"].is_null(), "{conflict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_cap_at_its_edge_and_big_writes_keep_their_path_in_the_audit_log() {
    let r = Roots::new();
    let (mut server, addr) = r.start(&r.config());
    let mut c = client(addr).await;
    let at = "a".repeat(MAX_WRITE_BYTES);
    let out = ok(&mut c, "file_write", json!({"path": "w:at", "content": at})).await;
    assert_eq!(out["bytes_written"], MAX_WRITE_BYTES);
    assert_eq!(std::fs::metadata(r.path("w/at")).expect("md").len(), MAX_WRITE_BYTES as u64);
    let over = "a".repeat(MAX_WRITE_BYTES + 1);
    let (cat, _) = fails(&mut c, "file_write", json!({"path": "w:over", "content": over})).await;
    assert_eq!(cat, "invalid_input");
    // Appending one more byte to a file at the cap is fine: the cap is per call.
    ok(&mut c, "file_write", json!({"path": "w:at", "content": "b", "mode": "append"})).await;
    assert!(!r.path("w/over").exists());
    server.stop();
    let recs = records(&r.audit());
    let big = recs
        .iter()
        .find(|v| v["tool"] == "file_write" && v["kind"] == "decision" && v["args"]["path"] == "w:at")
        .expect("intent of the big write");
    assert_eq!(big["args"]["content"]["bytes"], MAX_WRITE_BYTES, "{big}");
    assert_eq!(big["args"]["content"]["sha256"], sha("a".repeat(MAX_WRITE_BYTES).as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_roots_refuse_and_hide_writing_tools() {
    let r = Roots::new();
    std::fs::write(r.path("ro/keep.txt"), "keep").expect("write");
    // Only a read root: no writing file tool is offered at all.
    let cfg = format!("{BASE}[[files.roots]]\nname = \"ro\"\npath = \"{}\"\n", r.path("ro").display());
    let (_ro, addr) = r.start(&cfg);
    let mut c = client(addr).await;
    let tools = c.tool_names().await;
    assert!(tools.contains(&"file_list".to_string()), "{tools:?}");
    for t in ["file_write", "file_mkdir", "file_move", "file_delete"] {
        assert!(!tools.contains(&t.to_string()), "{t} offered without a read_write root");
        let r = c.call(t, json!({"path": "ro:keep.txt", "content": "x"})).await;
        assert!(r.is_tool_error() || r.body.get("error").is_some(), "{t}: {}", r.body);
    }
    drop(_ro);

    // With a read_write root too, the read root still refuses every change.
    let state2 = r.path("state2");
    std::fs::create_dir_all(&state2).expect("mkdir");
    let (_rw, addr) = ServerProcess::start_dev(&state2, &r.config(), &[]);
    let mut c = client(addr).await;
    for (tool, args) in [
        ("file_write", json!({"path": "ro:keep.txt", "content": "x", "mode": "overwrite"})),
        ("file_write", json!({"path": "ro:new.txt", "content": "x"})),
        ("file_mkdir", json!({"path": "ro:d", "parents": true})),
        ("file_move", json!({"from": "ro:keep.txt", "to": "ro:moved.txt"})),
        ("file_delete", json!({"path": "ro:keep.txt"})),
    ] {
        let (cat, _) = fails(&mut c, tool, args).await;
        assert_eq!(cat, "permission_denied", "{tool}");
    }
    let (cat, _) = fails(&mut c, "file_move", json!({"from": "ro:keep.txt", "to": "w:keep.txt"})).await;
    assert_eq!(cat, "invalid_input", "moves stay within one root");
    assert_eq!(names(&r.path("ro")), ["keep.txt"]);
    assert_eq!(std::fs::read(r.path("ro/keep.txt")).expect("read"), b"keep");
    assert!(names(&r.path("w")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkdir_move_delete() {
    let r = Roots::new();
    let (_s, addr) = r.start(&r.config());
    let mut c = client(addr).await;

    let out = ok(&mut c, "file_mkdir", json!({"path": "w:a/b/c", "parents": true, "permissions": "0750"})).await;
    assert_eq!(out["created"], json!(["w:a", "w:a/b", "w:a/b/c"]));
    assert_eq!(mode_of(&r.path("w/a/b/c")), 0o750);
    let (cat, _) = fails(&mut c, "file_mkdir", json!({"path": "w:a"})).await;
    assert_eq!(cat, "conflict");
    let (cat, _) = fails(&mut c, "file_mkdir", json!({"path": "w:x/y"})).await;
    assert_eq!(cat, "not_found", "no parents without parents: true");

    // move: RENAME_NOREPLACE unless overwrite.
    std::fs::write(r.path("w/one"), "1").expect("write");
    std::fs::write(r.path("w/two"), "2").expect("write");
    let (cat, _) = fails(&mut c, "file_move", json!({"from": "w:one", "to": "w:two"})).await;
    assert_eq!(cat, "conflict");
    assert_eq!(std::fs::read(r.path("w/two")).expect("read"), b"2");
    let out = ok(&mut c, "file_move", json!({"from": "w:one", "to": "w:two", "overwrite": true})).await;
    assert_eq!(out["replaced"], true);
    assert_eq!(std::fs::read(r.path("w/two")).expect("read"), b"1");
    assert!(!r.path("w/one").exists());
    ok(&mut c, "file_move", json!({"from": "w:two", "to": "w:a/b/two"})).await;
    let (cat, _) = fails(&mut c, "file_move", json!({"from": "w:a", "to": "w:a/b/c/a"})).await;
    assert_eq!(cat, "invalid_input", "into itself");
    let (cat, _) = fails(&mut c, "file_move", json!({"from": "w:", "to": "w:x"})).await;
    assert_eq!(cat, "invalid_input", "the root");
    let (cat, _) = fails(&mut c, "file_move", json!({"from": "w:a/b/two", "to": "w:id_rsa"})).await;
    assert_eq!(cat, "permission_denied", "onto the deny list");

    // delete: files, empty dirs; non-empty only recursive where allowed.
    let (cat, _) = fails(&mut c, "file_delete", json!({"path": "w:a"})).await;
    assert_eq!(cat, "conflict");
    let (cat, _) = fails(&mut c, "file_delete", json!({"path": "w:a", "recursive": true})).await;
    assert_eq!(cat, "permission_denied", "root w does not allow recursive deletes");
    assert!(r.path("w/a/b/two").exists());
    ok(&mut c, "file_delete", json!({"path": "w:a/b/two"})).await;
    ok(&mut c, "file_delete", json!({"path": "w:a/b/c"})).await;
    assert!(!r.path("w/a/b/c").exists());

    std::fs::create_dir_all(r.path("rec/t/u")).expect("mkdir");
    std::fs::write(r.path("rec/t/u/f"), "x").expect("write");
    std::fs::write(r.path("outside/keep"), "x").expect("write");
    symlink(r.path("outside"), r.path("rec/t/out")).expect("symlink");
    let out = ok(&mut c, "file_delete", json!({"path": "rec:t", "recursive": true})).await;
    assert_eq!(out["entries_removed"], 4);
    assert!(!r.path("rec/t").exists());
    assert_eq!(names(&r.path("outside")), ["keep"], "symlinks are removed, never followed");
    // A tree holding a hidden (denied) entry is not deleted wholesale.
    std::fs::create_dir_all(r.path("rec/s")).expect("mkdir");
    std::fs::write(r.path("rec/s/.env"), "TOKEN=x").expect("write");
    let (cat, _) = fails(&mut c, "file_delete", json!({"path": "rec:s", "recursive": true})).await;
    assert_eq!(cat, "permission_denied");
    assert!(r.path("rec/s/.env").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_parent_leading_out_is_refused_and_nothing_is_created_outside() {
    let r = Roots::new();
    symlink(r.path("outside"), r.path("w/escape")).expect("symlink");
    symlink("/", r.path("w/slash")).expect("symlink");
    std::fs::write(r.path("outside/victim"), "v").expect("write");
    symlink(r.path("outside/victim"), r.path("w/victim-link")).expect("symlink");
    let (_s, addr) = r.start(&r.config());
    let mut c = client(addr).await;
    for (tool, args) in [
        ("file_write", json!({"path": "w:escape/new", "content": "x"})),
        ("file_write", json!({"path": "w:escape/victim", "content": "x", "mode": "overwrite"})),
        ("file_write", json!({"path": "w:escape/victim", "content": "x", "mode": "append"})),
        ("file_write", json!({"path": "w:slash/tmp/tailops-escape", "content": "x"})),
        ("file_mkdir", json!({"path": "w:escape/d"})),
        ("file_mkdir", json!({"path": "w:escape/d/e", "parents": true})),
        ("file_move", json!({"from": "w:victim-link", "to": "w:escape/moved"})),
        ("file_move", json!({"from": "w:escape/victim", "to": "w:stolen"})),
        ("file_delete", json!({"path": "w:escape/victim"})),
    ] {
        let (cat, _) = fails(&mut c, tool, args.clone()).await;
        assert_eq!(cat, "permission_denied", "{tool} {args}");
    }
    // A symlink as the target itself is never written through.
    for mode in ["overwrite", "append"] {
        let (cat, _) =
            fails(&mut c, "file_write", json!({"path": "w:victim-link", "content": "x", "mode": mode})).await;
        assert_eq!(cat, "invalid_input", "{mode}");
    }
    assert_eq!(names(&r.path("outside")), ["victim"]);
    assert_eq!(std::fs::read(r.path("outside/victim")).expect("read"), b"v");
    assert!(!Path::new("/tmp/tailops-escape").exists());
    assert_eq!(names(&r.path("w")), ["escape", "slash", "victim-link"]);
}

/// Two distinct contents of `n` bytes (printable, so they travel as text).
fn contents(n: usize) -> (String, String) {
    let make = |seed: u64| {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                char::from(b'a' + ((x >> 59) as u8 % 26))
            })
            .collect::<String>()
    };
    (make(1), make(2))
}

/// Issue 10 "done when": SIGKILL during large overwrites, in a loop. After
/// every kill the target is entirely one of the two contents (never a mix,
/// a truncation or missing), and after the restart no temporary file is
/// visible through file_list nor left on disk (swept at start-up; an
/// unnamed O_TMPFILE inode vanishes with the process anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_large_overwrites_leaves_old_or_new_content() {
    const SIZE: usize = 8 * 1024 * 1024;
    const ROUNDS: usize = 12;
    let r = Roots::new();
    let (a, b) = contents(SIZE);
    let (sha_a, sha_b) = (sha(a.as_bytes()), sha(b.as_bytes()));
    std::fs::write(r.path("w/target"), &a).expect("write");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(7);
    let mut x = seed as u64 | 1;
    println!("seed {seed}");
    let (mut writes_done, mut changed) = (0usize, 0usize);
    let mut last_sha = sha_a.clone();
    for round in 0..ROUNDS {
        let state = r.path(&format!("state-{round}"));
        std::fs::create_dir_all(&state).expect("mkdir");
        let (server, addr) = ServerProcess::start_dev(&state, &r.config(), &[]);
        let mut c = client(addr).await;
        // The previous round's kill left nothing visible or on disk.
        let list = ok(&mut c, "file_list", json!({"path": "w:"})).await;
        let listed: Vec<&str> =
            list["entries"].as_array().expect("entries").iter().filter_map(|e| e["name"].as_str()).collect();
        assert_eq!(listed, ["target"], "round {round}");
        assert_eq!(names(&r.path("w")), ["target"], "round {round}: leftovers on disk");

        let (a2, b2) = (a.clone(), b.clone());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tool_error = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let (done2, tool_error2) = (done.clone(), tool_error.clone());
        let writer = tokio::spawn(async move {
            let mut n = 0usize;
            loop {
                let content = if n.is_multiple_of(2) { &b2 } else { &a2 };
                // Panics (ending the task) when the server dies mid-request.
                let r =
                    c.call("file_write", json!({"path": "w:target", "content": content, "mode": "overwrite"})).await;
                if r.is_tool_error() {
                    *tool_error2.lock().expect("lock") = Some(r.body.to_string());
                    return;
                }
                n += 1;
                done2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // Kill after 50-1500 ms: at any point of a request (one takes
        // several hundred ms in a debug build: parse, audit, write, fsync).
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = 50 + (x >> 33) % 1450;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(server); // SIGKILL + wait
        let res = writer.await;
        assert_eq!(*tool_error.lock().expect("lock"), None, "round {round}: a write failed");
        // The writer only ends by panicking: its request died with the server.
        assert!(res.is_err(), "the writer loop ended without the server dying");
        writes_done += done.load(std::sync::atomic::Ordering::SeqCst);

        let now = std::fs::read(r.path("w/target")).expect("target exists after the kill");
        let s = sha(&now);
        assert!(s == sha_a || s == sha_b, "round {round} (delay {delay} ms): partial content, {} bytes", now.len());
        if s != last_sha {
            changed += 1;
        }
        last_sha = s;
    }
    // A named temporary left by a crash between its link and the rename
    // (or mid-write on a filesystem without O_TMPFILE): never listed, and
    // swept at start-up.
    std::fs::write(r.path("w/.tailops-tmp-00112233445566778899aabb"), &b[..1000]).expect("plant");
    std::fs::create_dir_all(r.path("w/sub")).expect("mkdir");
    std::fs::write(r.path("w/sub/.tailops-tmp-ffeeddccbbaa998877665544"), "x").expect("plant");
    let state = r.path("state-final");
    std::fs::create_dir_all(&state).expect("mkdir");
    let (_server, addr) = ServerProcess::start_dev(&state, &r.config(), &[]);
    let mut c = client(addr).await;
    let list = ok(&mut c, "file_list", json!({"path": "w:", "depth": 2})).await;
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(names(&r.path("w")), ["sub", "target"]);
    assert!(names(&r.path("w/sub")).is_empty(), "swept below the top too");
    let (cat, _) = fails(&mut c, "file_stat", json!({"path": "w:.tailops-tmp-00112233445566778899aabb"})).await;
    assert!(cat == "not_found" || cat == "permission_denied", "{cat}");
    println!("{ROUNDS} kills, {writes_done} overwrites completed, the content changed across {changed} kills");
    assert!(changed > 0, "no overwrite ever completed: the test proved nothing");
}
