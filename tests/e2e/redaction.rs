//! The redaction corpus (tests/data/redaction-corpus.toml) against the real
//! outputs of a running `tailops serve`: `process_list` and `process_info`
//! (processes whose command lines are the corpus), `container_inspect` and
//! `container_logs` (containers whose command, labels and log output are
//! the corpus, on a test-owned dockerd), and the audit log (tools called
//! with the corpus as arguments). Also the `cmdline_contains` oracle: a
//! filter must match only the redacted command line.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::dockerd::Dockerd;
use crate::support::mcp::{Client, Via};
use crate::support::server::ServerProcess;

const REDACTED: &str = "[REDACTED]";
const RATE: &str =
    "[limits.rate]\ncalls_per_minute = 60000\nburst = 5000\nwrites_per_minute = 60000\nwrite_burst = 5000\n";

#[derive(Debug, Deserialize, Clone)]
struct Entry {
    form: String,
    argv: Option<Vec<String>>,
    text: Option<String>,
    #[serde(default)]
    secrets: Vec<String>,
}

impl Entry {
    /// The entry as a command line: its argv, or its text run by `sh -c`.
    fn command(&self) -> Vec<String> {
        match (&self.argv, &self.text) {
            (Some(a), _) => a.clone(),
            (None, Some(t)) => vec!["sh".into(), "-c".into(), t.clone()],
            (None, None) => panic!("{}: neither argv nor text", self.form),
        }
    }

    /// The entry as a log line: its text, or its argv shell-quoted (as
    /// `set -x` prints a command).
    fn line(&self) -> String {
        match (&self.argv, &self.text) {
            (_, Some(t)) => t.clone(),
            (Some(a), None) => a.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" "),
            (None, None) => panic!("{}: neither argv nor text", self.form),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Corpus {
    secret: Vec<Entry>,
    plain: Vec<Entry>,
}

fn corpus() -> Corpus {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/redaction-corpus.toml");
    toml::from_str(&std::fs::read_to_string(path).expect("read the corpus")).expect("parse the corpus")
}

fn shell_quote(a: &str) -> String {
    if !a.is_empty() && a.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_./:=@,%+".contains(&c)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// Every string inside `v`, joined (unescaped, so a secret with quotes in
/// it is still found).
fn strings(v: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.iter().for_each(|(k, x)| {
                out.push(k.clone());
                walk(x, out)
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out.join("\n")
}

/// The secrets of `e` found in `shown`, as failure lines.
fn leaks(e: &Entry, shown: &str, place: &str) -> Vec<String> {
    e.secrets
        .iter()
        .filter(|s| shown.contains(s.as_str()))
        .map(|s| format!("{} [{place}]: {s:?} shown", e.form))
        .collect()
}

async fn client(addr: SocketAddr) -> Client {
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    c
}

async fn ok(c: &mut Client, tool: &str, args: Value) -> Value {
    let r = c.call(tool, args.clone()).await;
    assert_eq!(r.status, 200, "{tool} {args}: {}", r.body);
    assert!(!r.is_tool_error(), "{tool} {args}: {}", r.body);
    r.structured().clone()
}

/// Processes whose command lines are exactly the given argvs: one Python
/// rewrites its own argv area (`/proc/self/mem` at `arg_start`) and forks a
/// child per argv, so `/proc/PID/cmdline` of each child is that argv from
/// its first moment. The children live until the test drops the stdin
/// pipe (or 10 minutes pass).
struct ArgvProcs {
    parent: Child,
    stdin: Option<ChildStdin>,
    pids: Vec<u32>,
}

const SPAWNER: &str = r#"
import json, os, signal, sys
signal.alarm(600)
argvs = json.loads(sys.stdin.readline())
st = open('/proc/self/stat', 'rb').read()
f = st[st.rindex(b')') + 2:].split()
start, end = int(f[45]), int(f[46])
mem = open('/proc/self/mem', 'r+b', buffering=0)
for argv in argvs:
    raw = b''.join(a.encode() + b'\0' for a in argv)
    assert len(raw) <= end - start, (len(raw), end - start)
    mem.seek(start)
    mem.write(raw.ljust(end - start, b'\0'))
    pid = os.fork()
    if pid == 0:
        signal.alarm(600)
        while os.read(0, 4096):
            pass
        os._exit(0)
    print(pid, flush=True)
print('done', flush=True)
while os.read(0, 4096):
    pass
"#;

impl ArgvProcs {
    fn spawn(argvs: &[Vec<String>]) -> ArgvProcs {
        let longest = argvs.iter().map(|a| a.iter().map(|w| w.len() + 1).sum::<usize>()).max().unwrap_or(0);
        let mut parent = Command::new("python3")
            .args(["-c", SPAWNER, &"x".repeat(longest + 16)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3");
        let mut stdin = parent.stdin.take().expect("stdin");
        writeln!(stdin, "{}", serde_json::to_string(argvs).expect("json")).expect("send argvs");
        stdin.flush().expect("flush");
        let out = BufReader::new(parent.stdout.take().expect("stdout"));
        let mut pids = Vec::new();
        for line in out.lines() {
            let line = line.expect("spawner output");
            if line == "done" {
                break;
            }
            pids.push(line.parse().expect("pid"));
        }
        assert_eq!(pids.len(), argvs.len(), "one process per argv");
        ArgvProcs { parent, stdin: Some(stdin), pids }
    }
}

impl Drop for ArgvProcs {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: every child and the parent exit
        let _ = self.parent.wait();
    }
}

/// `process_list` and `process_info` of processes running every corpus
/// command line show no corpus secret, show the look-alikes unchanged, and
/// `cmdline_contains` finds a process only by what it shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_tools_redact_the_corpus_and_filters_are_no_oracle() {
    let c = corpus();
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!("[local]\nname = \"mon\"\nroles = [\"viewer\"]\n[sampler]\ninterval_secs = 1\n{RATE}");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let mut cl = client(addr).await;

    let oracle = vec!["oracle-app".to_string(), "--password=hunter2".into(), "tailops-oracle-7731".into()];
    let entries: Vec<(Entry, bool)> =
        c.secret.iter().map(|e| (e.clone(), true)).chain(c.plain.iter().map(|e| (e.clone(), false))).collect();
    let mut argvs: Vec<Vec<String>> = entries.iter().map(|(e, _)| e.command()).collect();
    argvs.push(oracle.clone());
    let procs = ArgvProcs::spawn(&argvs);
    let oracle_pid = *procs.pids.last().expect("oracle pid");

    // The sampler has them once the marker (shown, not secret) matches.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = ok(&mut cl, "process_list", json!({"cmdline_contains": "tailops-oracle-7731", "limit": 500})).await;
        if l["processes"].as_array().is_some_and(|r| r.iter().any(|p| p["pid"].as_u64() == Some(oracle_pid as u64))) {
            break;
        }
        assert!(Instant::now() < deadline, "the sampler never listed the test processes");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Every page of the list, by pid.
    let mut listed: BTreeMap<u64, Value> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = json!({"sort_by": "pid", "limit": 500});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = ok(&mut cl, "process_list", args).await;
        for row in page["processes"].as_array().expect("rows") {
            listed.insert(row["pid"].as_u64().expect("pid"), row["cmdline"].clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }

    let mut failures = Vec::new();
    for ((e, secret), pid) in entries.iter().zip(&procs.pids) {
        let argv = e.command();
        let info = ok(&mut cl, "process_info", json!({"pid": pid})).await;
        let shown =
            [("process_list", listed.get(&(*pid as u64)).cloned()), ("process_info", Some(info["cmdline"].clone()))];
        for (tool, cmdline) in shown {
            let Some(cmdline) = cmdline else {
                failures.push(format!("{} [{tool}]: pid {pid} not listed", e.form));
                continue;
            };
            let words: Vec<String> = cmdline
                .as_array()
                .map(|a| a.iter().filter_map(|w| w.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            if *secret {
                failures.extend(leaks(e, &words.join("\u{0}"), tool));
                if !words.iter().any(|w| w.contains(REDACTED)) {
                    failures.push(format!("{} [{tool}]: nothing redacted in {words:?}", e.form));
                }
            } else if words != argv {
                failures.push(format!("{} [{tool}]: {argv:?} shown as {words:?}", e.form));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));

    // The oracle: probing the hidden password finds nothing; what is shown finds it.
    let finds = |l: &Value| {
        l["processes"].as_array().is_some_and(|r| r.iter().any(|p| p["pid"].as_u64() == Some(oracle_pid as u64)))
    };
    for probe in ["hunter", "hunter2", "--password=h", "=hunter2", "--password=hunter2 tailops-oracle-7731"] {
        let l = ok(&mut cl, "process_list", json!({"cmdline_contains": probe, "limit": 500})).await;
        assert!(!finds(&l), "cmdline_contains {probe:?} matched the hidden password: {l}");
    }
    for probe in ["[REDACTED]", "--password", "--password=[REDACTED] tailops-oracle-7731"] {
        let l = ok(&mut cl, "process_list", json!({"cmdline_contains": probe, "limit": 500})).await;
        assert!(finds(&l), "cmdline_contains {probe:?} is shown, so it must match: {l}");
    }
    drop(procs);
}

/// Containers whose command, label and log output are the corpus:
/// `container_inspect` and `container_logs` (and `grep` on them) show no
/// corpus secret and the look-alikes unchanged; a label filter cannot
/// confirm a hidden label value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_tools_redact_the_corpus() {
    let c = corpus();
    let d = Dockerd::start();
    let img = "tailops-test/busybox:redact";
    let all: Vec<(Entry, bool)> =
        c.secret.iter().map(|e| (e.clone(), true)).chain(c.plain.iter().map(|e| (e.clone(), false))).collect();
    let log: String = all.iter().map(|(e, _)| format!("{}\n", e.line())).collect();
    d.busybox_image(img, &[("/corpus.log", log.as_bytes())]);
    let cfg = format!("[local]\nname = \"dk\"\nroles = [\"viewer\"]\n{RATE}{}", d.config(""));
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let mut cl = client(addr).await;

    // One created (not started) container per entry, made through the
    // Engine API: the command is the entry, its label the entry's line.
    let api = bollard::Docker::connect_with_unix(&d.sock.to_string_lossy(), 30, bollard::API_DEFAULT_VERSION)
        .expect("connect")
        .negotiate_version()
        .await
        .expect("negotiate");
    let (lk, lv) = d.label.split_once('=').expect("label");
    let mut names = Vec::new();
    for (i, (e, _)) in all.iter().enumerate() {
        let name = format!("tl-redact-{i}");
        let labels = [(lk.to_string(), lv.to_string()), ("tailops.note".to_string(), e.line())].into();
        let body = bollard::models::ContainerCreateBody {
            image: Some(img.to_string()),
            cmd: Some(e.command()),
            labels: Some(labels),
            network_disabled: Some(true),
            ..Default::default()
        };
        let opts = bollard::query_parameters::CreateContainerOptionsBuilder::new().name(&name).build();
        api.create_container(Some(opts), body).await.unwrap_or_else(|err| panic!("create {name}: {err}"));
        names.push(name);
    }
    let script = "cat /corpus.log; exec sleep 300";
    d.run(&["--name", "tl-redact-logs"], img, &["sh", "-c", script]);
    let want_lines = log.lines().count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.docker(&["logs", "tl-redact-logs"]).lines().count() < want_lines {
        assert!(Instant::now() < deadline, "the corpus never reached the log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut failures = Vec::new();
    for ((e, secret), name) in all.iter().zip(&names) {
        let i = ok(&mut cl, "container_inspect", json!({"container": name})).await;
        let command: Vec<String> = i["command"]
            .as_array()
            .map(|a| a.iter().filter_map(|w| w.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let note = i["labels"]["tailops.note"].as_str().unwrap_or_default().to_string();
        if *secret {
            failures.extend(leaks(e, &strings(&i), "container_inspect"));
            if !command.iter().any(|w| w.contains(REDACTED)) {
                failures.push(format!("{} [inspect command]: nothing redacted in {command:?}", e.form));
            }
        } else {
            if command != e.command() {
                failures.push(format!("{} [inspect command]: {:?} shown as {command:?}", e.form, e.command()));
            }
            if note != e.line() {
                failures.push(format!("{} [inspect label]: {:?} shown as {note:?}", e.form, e.line()));
            }
        }
    }

    // The log: every line, and grep for each secret finds nothing.
    let l = ok(&mut cl, "container_logs", json!({"container": "tl-redact-logs", "tail": 10000, "max_bytes": 1 << 20}))
        .await;
    let shown: Vec<String> = l["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|x| x["text"].as_str().unwrap_or_default().to_string())
        .collect();
    let joined = shown.join("\n");
    for (e, secret) in &all {
        if *secret {
            failures.extend(leaks(e, &joined, "container_logs"));
        } else {
            for want in e.line().lines() {
                if !shown.iter().any(|s| s == want) {
                    failures.push(format!("{} [container_logs]: line {want:?} not shown as is", e.form));
                }
            }
        }
    }
    for e in &c.secret {
        for s in &e.secrets {
            let g =
                ok(&mut cl, "container_logs", json!({"container": "tl-redact-logs", "tail": 10000, "grep": s})).await;
            if g["lines"].as_array().is_some_and(|x| !x.is_empty()) {
                failures.push(format!("{} [container_logs grep]: {s:?} matched {g}", e.form));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));

    // A label filter on a hidden value would confirm a guess: refused.
    d.create(&["--name", "tl-redact-label", "--label", "api_token=tok-Guess123"], img, &["true"]);
    let r = cl.call("container_list", json!({"all": true, "labels": ["api_token=tok-Guess123"]})).await;
    assert_eq!(r.error_category(), Some("invalid_input"), "a filter on a hidden label value: {}", r.body);
    let l =
        ok(&mut cl, "container_list", json!({"all": true, "labels": ["api_token"], "name": "tl-redact-label"})).await;
    assert_eq!(l["total"], 1, "the key alone still filters: {l}");
}

/// Tools called with every corpus entry as arguments (an argv for
/// `container_exec`, a string for `cmdline_contains`, a string as `pid`)
/// and as unknown tool names (quoted in the refusal message): the audit
/// log holds no corpus secret, and the look-alikes are recorded unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_redacts_the_corpus() {
    let c = corpus();
    let tmp = tempfile::tempdir().expect("tmp");
    // Docker points at a socket that does not exist: container_exec is
    // admitted and audited (intent and outcome), then fails unavailable.
    let cfg = format!(
        "[local]\nname = \"ops\"\nroles = [\"admin\"]\n{RATE}[docker]\nhost = \"unix://{}/no-docker.sock\"\nexec_enabled = true\n",
        tmp.path().display()
    );
    let (_server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let mut cl = client(addr).await;

    let all: Vec<(&Entry, bool)> =
        c.secret.iter().map(|e| (e, true)).chain(c.plain.iter().map(|e| (e, false))).collect();
    for (e, _) in &all {
        let r = cl.call("container_exec", json!({"container": "tl-none", "argv": e.command()})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        ok(&mut cl, "process_list", json!({"cmdline_contains": e.line(), "limit": 1})).await;
    }
    for e in &c.secret {
        // A string where a number goes: refused, audited with the argument.
        let r = cl.call("process_info", json!({"pid": e.line()})).await;
        assert!(r.is_tool_error() || r.body["error"].is_object(), "{}", r.body);
    }
    // An unknown tool named by a secret: its name is audited as `tool` and
    // quoted in the refusal message (`detail`). A few only: unknown tools
    // count as denials.
    let named: Vec<&Entry> = c.secret.iter().filter(|e| e.argv.is_some()).take(3).collect();
    for e in &named {
        let r = cl.call(&e.line(), json!({})).await;
        assert!(r.is_tool_error() || r.body["error"].is_object(), "{}", r.body);
    }
    ok(&mut cl, "process_list", json!({"cmdline_contains": "tailops-audit-end-5521", "limit": 1})).await;

    let file = tmp.path().join("state/audit.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&file).unwrap_or_default();
        if t.contains("tailops-audit-end-5521") {
            break t;
        }
        assert!(Instant::now() < deadline, "the audit log never got the last call");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("audit record")).collect();
    let everything = records.iter().map(strings).collect::<Vec<_>>().join("\n");
    let mut failures = Vec::new();
    for (e, secret) in &all {
        if *secret {
            failures.extend(leaks(e, &everything, "audit log"));
            failures.extend(leaks(e, &text, "audit log, raw"));
        } else {
            let argv = json!(e.command());
            if !records.iter().any(|r| r["tool"] == "container_exec" && r["args"]["argv"] == argv) {
                failures.push(format!("{} [audit args]: argv {argv} not recorded unchanged", e.form));
            }
            if !records.iter().any(|r| r["args"]["cmdline_contains"] == json!(e.line())) {
                failures.push(format!("{} [audit args]: {:?} not recorded unchanged", e.form, e.line()));
            }
        }
    }
    let quoting = records.iter().filter(|r| strings(&r["detail"]).contains(REDACTED)).count();
    assert!(quoting >= named.len(), "refusal messages quote the unknown tool's name, redacted");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
