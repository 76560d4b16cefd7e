//! The file-root attack suite (tests/data/file-attacks.toml) against the
//! real server: every attack path with every file tool must be refused
//! (or, for metadata of a FIFO/device, answered without opening it), never
//! show a marker from outside the root or a denied file, change nothing,
//! and be audited. Plus the attacks that need time: a symlink swapped in by
//! a racing thread, and a root replaced after start-up.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::files::{self, RootSpec, call, category};

#[derive(Deserialize)]
struct Suite {
    tool: Vec<Tool>,
    attack: Vec<Attack>,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
    /// Tells two uses of one tool apart (default: the name).
    #[serde(default)]
    label: Option<String>,
    args: Value,
    /// Refusal categories acceptable for this tool besides the attack's.
    #[serde(default)]
    also: Vec<String>,
}

#[derive(Deserialize)]
struct Attack {
    path: String,
    why: String,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    ok_for: Vec<String>,
    #[serde(default)]
    skip: Vec<String>,
}

const MARKERS: &[&str] = &["OUTSIDE-SECRET-MARKER", "INSIDE-SECRET-MARKER", "root:x:0:0"];

fn suite() -> Suite {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/file-attacks.toml"))
        .expect("attack data");
    toml::from_str(&text).expect("attack data parses")
}

/// Replaces "{path}" in every string of `v`.
fn fill(v: &Value, path: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("{path}", path)),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), fill(v, path))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|v| fill(v, path)).collect()),
        other => other.clone(),
    }
}

/// The fixture of the data file's header; returns (root, outside).
fn fixture(t: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (root, outside) = (t.join("root"), t.join("outside"));
    files::tree(&outside, &[("secret.txt", "OUTSIDE-SECRET-MARKER"), ("dir/x.txt", "OUTSIDE-SECRET-MARKER")]);
    files::tree(
        &root,
        &[("hello.txt", "hello"), ("sub/.env", "TOKEN=INSIDE-SECRET-MARKER"), ("sub/ID_RSA", "INSIDE-SECRET-MARKER")],
    );
    std::fs::write(root.join("caf\u{e9}.txt"), "nfc").expect("nfc");
    symlink(outside.join("secret.txt"), root.join("abs_link")).expect("symlink");
    symlink("../outside/secret.txt", root.join("rel_link")).expect("symlink");
    symlink(&outside, root.join("dir_link")).expect("symlink");
    symlink("/proc", root.join("proc_link")).expect("symlink");
    symlink("sub/.env", root.join("innocent")).expect("symlink");
    symlink("..", root.join("up_link")).expect("symlink");
    std::fs::hard_link(outside.join("secret.txt"), root.join("hardlink")).expect("hard link");
    let mode = rustix::fs::Mode::from_raw_mode(0o600);
    rustix::fs::mknodat(rustix::fs::CWD, root.join("fifo"), rustix::fs::FileType::Fifo, mode, 0).expect("mkfifo");
    let dev = rustix::fs::makedev(1, 3);
    rustix::fs::mknodat(rustix::fs::CWD, root.join("nullnode"), rustix::fs::FileType::CharacterDevice, mode, dev)
        .expect("mknod (tests run as root)");
    (root, outside)
}

fn audit(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("state/audit.jsonl")).expect("audit log");
    text.lines().map(|l| serde_json::from_str(l).expect("audit line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_suite_nothing_escapes_nothing_changes_everything_audited() {
    let suite = suite();
    let tmp = tempfile::tempdir().expect("tmp");
    let (root, outside) = fixture(tmp.path());
    let roots = [
        RootSpec { name: "r", path: &root, mode: "read_write", extra: "" },
        RootSpec { name: "p", path: Path::new("/proc/1"), mode: "read", extra: "deny = []" },
    ];
    let (mut server, addr) = files::start(tmp.path(), &files::config("\"admin\"", &roots, ""));
    let mut c = crate::support::mcp::client(addr).await;
    let before = (files::snapshot(&root), files::snapshot(&outside));
    let long_name = "n".repeat(256);
    let long_path = {
        let mut s = "d/".repeat(2100);
        s.truncate(4097);
        s
    };
    let mut calls = 0usize;
    for a in &suite.attack {
        let path = a.path.replace("{long_name}", &long_name).replace("{long_path}", &long_path);
        for t in &suite.tool {
            let label = t.label.as_deref().unwrap_or(&t.name);
            if a.skip.iter().any(|s| s == label) {
                continue;
            }
            let args = fill(&t.args, &path);
            let r = call(&mut c, &t.name, args).await;
            calls += 1;
            let what = format!("{label} on {:?} ({})", a.path, a.why);
            let text = r.body.to_string();
            for m in MARKERS {
                assert!(!text.contains(m), "{what}: leaked {m}: {text}");
            }
            match category(&r) {
                None => assert!(a.ok_for.contains(&t.name), "{what}: must be refused, got {text}"),
                Some(cat) => {
                    let mut allowed: Vec<String> = if a.expect.is_empty() {
                        vec!["permission_denied".into(), "invalid_input".into()]
                    } else {
                        a.expect.clone()
                    };
                    allowed.extend(t.also.iter().cloned());
                    // A path that is not a directory is invalid input to
                    // file_list and file_search whatever else is wrong.
                    let list_on_file = (t.name == "file_list" || t.name == "file_search") && cat == "invalid_input";
                    assert!(allowed.contains(&cat) || list_on_file, "{what}: category {cat}, want {allowed:?}: {text}");
                    let hint = r.structured()["error"]["hint"].as_str().unwrap_or_default().to_string();
                    let msg = r.structured()["error"]["message"].as_str().unwrap_or_default().to_string();
                    assert!(!msg.contains(tmp.path().to_str().expect("utf8")), "{what}: host path in {msg}");
                    assert!(!(msg.is_empty() && hint.is_empty()), "{what}: an explained error");
                }
            }
        }
    }
    assert_eq!((files::snapshot(&root), files::snapshot(&outside)), before, "an attack changed a file");
    server.stop();
    let records = audit(tmp.path());
    let audited = records
        .iter()
        .filter(|r| r["kind"] == "tool_call" && r["tool"].as_str().is_some_and(|t| t.starts_with("file_")))
        .count();
    assert!(audited >= calls, "{calls} attack calls, {audited} file tool_call records");
}

/// A thread swaps `race` between a real directory inside the root and a
/// symlink to an outside directory while the tools run: no answer ever
/// shows the outside names, whichever state the kernel saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_swapped_in_during_calls_never_escapes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (root, outside) = fixture(tmp.path());
    files::tree(&root, &[("real/inside.txt", "inside")]);
    files::tree(&outside, &[("OUTSIDE-NAME-MARKER.txt", "x")]);
    let spec = [RootSpec { name: "r", path: &root, mode: "read", extra: "" }];
    let (mut server, addr) = files::start(tmp.path(), &files::config("\"admin\"", &spec, ""));
    let mut c = crate::support::mcp::client(addr).await;
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (stop, root, outside) = (stop.clone(), root.clone(), outside.clone());
        std::thread::spawn(move || {
            let (race, tmp_link, real) = (root.join("race"), root.join("race.tmp"), root.join("real"));
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp_link);
                let _ = symlink(&outside, &tmp_link);
                let _ = std::fs::rename(&tmp_link, &race); // race -> outside
                let _ = std::fs::remove_file(&tmp_link);
                let _ = symlink(&real, &tmp_link);
                let _ = std::fs::rename(&tmp_link, &race); // race -> real (absolute: still refused)
                let _ = std::fs::remove_file(&race);
                let _ = std::os::unix::fs::symlink("real", &race); // race -> real (relative: inside)
                swaps += 1;
            }
            swaps
        })
    };
    let mut answered = 0;
    for i in 0..300 {
        let (tool, args) = match i % 3 {
            0 => ("file_list", json!({"path": "r:race"})),
            1 => ("file_stat", json!({"path": "r:race/OUTSIDE-NAME-MARKER.txt"})),
            _ => ("file_list", json!({"path": "r:", "depth": 3})),
        };
        let r = call(&mut c, tool, args).await;
        let text = r.body.to_string();
        assert!(
            !text.contains("OUTSIDE-NAME-MARKER") || category(&r).is_some() && !text.contains("\"size\""),
            "{tool} escaped: {text}"
        );
        assert!(!text.contains("OUTSIDE-SECRET-MARKER"), "{text}");
        if category(&r).is_none() {
            answered += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().expect("racer");
    assert!(swaps > 10, "the racer ran ({swaps} swaps)");
    assert!(answered > 0, "some calls saw the inside state");
    server.stop();
}

/// The root's directory is moved away and replaced by a symlink to `/`
/// after start-up: the tools say `unavailable`, never follow the new path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_replaced_after_start_is_unavailable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("root");
    files::tree(&root, &[("hello.txt", "hello")]);
    let spec = [RootSpec { name: "r", path: &root, mode: "read", extra: "" }];
    let (mut server, addr) = files::start(tmp.path(), &files::config("\"admin\"", &spec, ""));
    let mut c = crate::support::mcp::client(addr).await;
    assert!(category(&call(&mut c, "file_stat", json!({"path": "r:hello.txt"})).await).is_none());
    std::fs::rename(&root, tmp.path().join("moved")).expect("move root");
    symlink("/", &root).expect("replace root");
    for args in [json!({"path": "r:etc/passwd"}), json!({"path": "r:hello.txt"}), json!({"path": "r:"})] {
        for tool in ["file_stat", "file_list"] {
            let r = call(&mut c, tool, args.clone()).await;
            assert_eq!(category(&r).as_deref(), Some("unavailable"), "{tool} {args}: {}", r.body);
            assert!(!r.body.to_string().contains("root:x:0:0"));
        }
    }
    server.stop();
}
