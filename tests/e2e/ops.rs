//! Operations (issue 13): the systemd notify protocol against a
//! `NOTIFY_SOCKET` the test owns, the unit's exposure check, config
//! example/check, `/metrics`.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::mcp::{Client, Via, get};
use crate::support::server::ServerProcess;

/// A notify socket the test reads like systemd does: continuously (a
/// thread forwards each datagram), so the sender never blocks on a full
/// queue.
struct NotifySocket {
    path: std::path::PathBuf,
    rx: mpsc::Receiver<String>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                if tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                    return;
                }
            }
        });
        NotifySocket { path, rx }
    }

    /// Next datagram within `within`, or None.
    fn recv(&self, within: Duration) -> Option<String> {
        self.rx.recv_timeout(within).ok()
    }

    /// Waits (bounded) for a datagram with the line `line`; returns those seen.
    fn wait_for(&self, line: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(m) = self.recv(Duration::from_millis(200)) {
                let hit = m.lines().any(|l| l == line);
                seen.push(m);
                if hit {
                    return seen;
                }
            }
        }
        panic!("no {line} on the notify socket within {within:?}; seen: {seen:?}");
    }

    /// Everything received so far.
    fn drain(&self) -> Vec<String> {
        self.rx.try_iter().collect()
    }
}

/// READY=1 once serving, WATCHDOG=1 repeatedly (period from WATCHDOG_USEC),
/// STOPPING=1 on SIGTERM — the protocol `Type=notify` + `WatchdogSec=` needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_socket_gets_ready_watchdog_and_stopping() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ns = NotifySocket::bind(tmp.path());
    let env = [("NOTIFY_SOCKET", ns.path.as_os_str()), ("WATCHDOG_USEC", OsStr::new("200000"))];
    let (mut server, _addr) = ServerProcess::start_dev_env(tmp.path(), "", &[], &env);
    let first = ns.wait_for("READY=1", Duration::from_secs(30));
    assert!(first.iter().all(|m| !m.contains("WATCHDOG=1")), "READY comes before any watchdog ping: {first:?}");
    let pings = ns.wait_for("WATCHDOG=1", Duration::from_secs(30));
    assert!(pings.iter().all(|m| !m.contains("READY=1")), "{pings:?}");
    ns.wait_for("WATCHDOG=1", Duration::from_secs(30));
    assert!(server.stop().success());
    ns.wait_for("STOPPING=1", Duration::from_secs(10));
}

/// Without WATCHDOG_USEC nothing pings; a WATCHDOG_PID naming another
/// process is not for us either (sd_watchdog_enabled semantics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_is_off_unless_systemd_asks_this_pid() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ns = NotifySocket::bind(tmp.path());
    let env = [
        ("NOTIFY_SOCKET", ns.path.as_os_str()),
        ("WATCHDOG_USEC", OsStr::new("200000")),
        ("WATCHDOG_PID", OsStr::new("1")),
    ];
    let (mut server, _addr) = ServerProcess::start_dev_env(tmp.path(), "", &[], &env);
    ns.wait_for("READY=1", Duration::from_secs(30));
    // Ten periods of 200 ms: a watchdog would have pinged by now.
    let mut later = Vec::new();
    while let Some(m) = ns.recv(Duration::from_secs(2)) {
        later.push(m);
    }
    assert!(later.iter().all(|m| !m.contains("WATCHDOG=1")), "{later:?}");
    assert!(server.stop().success());
}

/// The watchdog is withheld while the audit writer is stalled (its device
/// frozen), and resumes after the thaw: systemd would restart a process
/// whose audit log cannot be written, not one that merely answers HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_stop_while_the_audit_writer_is_stalled() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fs = crate::audit::LoopFs::new(tmp.path());
    let log = fs.mnt.join("audit.jsonl");
    let cfg = format!(
        "[local]\nname = \"dev\"\nroles = [\"admin\"]\n[audit]\npath = \"{}\"\nfsync = \"always\"\n",
        log.display()
    );
    let ns = NotifySocket::bind(tmp.path());
    let env = [("NOTIFY_SOCKET", ns.path.as_os_str()), ("WATCHDOG_USEC", OsStr::new("200000"))];
    let (mut server, addr) = ServerProcess::start_dev_env(tmp.path(), &cfg, &[], &env);
    ns.wait_for("WATCHDOG=1", Duration::from_secs(30));
    let host = addr.to_string();
    let mut c = Client::new(Via::Tcp(addr), &host);
    assert_eq!(c.initialize().await.status, 200);

    let freeze = crate::audit::Freeze::new(&fs.mnt);
    // A call's record blocks the writer in write(2)/fsync on the frozen fs.
    let r = c.call("server_info", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.wait_for_log(|v| v.to_string().contains("withholding systemd watchdog pings"), Duration::from_secs(30));
    // Pings sent before the decision are queued already; none may follow.
    // The notify socket's reader thread can lag the log's on a loaded box,
    // so a ping or two sent just before the decision may still come after
    // this drain: the pings must stop (a quiet 2 s, within a bound), and at
    // most those in flight may be seen, not one every 100 ms.
    ns.drain();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut during = Vec::new();
    while let Some(m) = ns.recv(Duration::from_secs(2)) {
        during.push(m);
        assert!(Instant::now() < deadline, "pings never stopped while stalled: {during:?}");
    }
    let pings = during.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings <= 2, "pinged while stalled: {during:?}");
    let ready = get(&Via::Tcp(addr), &host, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.body["checks"]["audit"]["reason"], "stalled", "{}", ready.body);

    drop(freeze);
    ns.wait_for("WATCHDOG=1", Duration::from_secs(30));
    assert!(server.stop().success());
}

/// `systemd-analyze security --offline=yes` rates the default unit at most
/// 2.5, and each opt-in drop-in costs what its comment says.
#[test]
fn systemd_unit_exposure_is_within_budget() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash").arg(root.join("tests/support/check-unit.sh")).output().expect("run check-unit.sh");
    assert!(
        out.status.success(),
        "check-unit.sh failed (needs systemd-analyze: run `bash tests/run.sh`):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("systemd/tailops.service: exposure")).expect("exposure line");
    let value: f64 = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()).expect("a number");
    assert!(value <= 2.5, "{line}");
}

/// `tailops config check` on good and bad files: the output is compared
/// with golden files in tests/data/ops/ (`*.out`: stdout of a valid file,
/// `*.err`: stderr of an invalid one, exit 1). The environment is cleared
/// so TAILOPS_* variables of the test host cannot change the result. Set
/// TAILOPS_BLESS=1 to rewrite the golden files after an intended change
/// (e.g. a new tool in the lists), then review the diff.
#[test]
fn config_check_matches_golden_outputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ops");
    let bless = std::env::var_os("TAILOPS_BLESS").is_some();
    let cases = [
        ("good", true),
        ("bad-range", false),
        ("bad-key", false),
        ("bad-type", false),
        ("bad-scope", false),
        ("bad-group", false),
    ];
    for (name, ok) in cases {
        let out = Command::new(ServerProcess::bin())
            .args(["config", "check", &format!("{name}.toml")])
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .expect("run config check");
        assert_eq!(out.status.success(), ok, "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let (got, golden) = if ok {
            (out.stdout, dir.join(format!("{name}.out")))
        } else {
            assert!(out.stdout.is_empty(), "{name}: nothing on stdout for a bad file");
            (out.stderr, dir.join(format!("{name}.err")))
        };
        let got = String::from_utf8(got).expect("utf8");
        if bless {
            std::fs::write(&golden, &got).expect("bless");
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        assert_eq!(got, want, "{name}: output differs from {} (TAILOPS_BLESS=1 rewrites it)", golden.display());
    }
}

/// `tailops config example` has every key; what it prints parses back to
/// the defaults (also a unit test) and passes `config check`.
#[test]
fn config_example_passes_config_check() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::new(ServerProcess::bin()).args(["config", "example"]).output().expect("example");
    assert!(out.status.success());
    let path = tmp.path().join("example.toml");
    std::fs::write(&path, &out.stdout).expect("write");
    let text = String::from_utf8_lossy(&out.stdout);
    for key in ["[limits.rate]", "[[policy.rules]]", "[[sampler.alerts]]", "write_ahead_timeout_ms = 2000"] {
        assert!(text.contains(key), "{key} missing:\n{text}");
    }
    let check =
        Command::new(ServerProcess::bin()).args(["config", "check"]).arg(&path).env_clear().output().expect("check");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).starts_with("config OK: "));
}

/// Parses a `/metrics` body with the Prometheus project's own OpenMetrics
/// parser (PyPI prometheus_client, installed by install-clients.sh).
fn parse_metrics(text: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(root.join("target/tools/venv/bin/python"))
        .arg(root.join("tests/support/parse_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python (run tests/support/install-clients.sh)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(out.status.success(), "not valid OpenMetrics: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn sample(samples: &[serde_json::Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

/// GET /metrics as text (the body is not JSON: read it raw).
async fn get_metrics(addr: std::net::SocketAddr) -> (u16, String, Option<String>) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .expect("request");
    let res = send.send_request(req).await.expect("send");
    let status = res.status().as_u16();
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), ct)
}

/// `/metrics` parses with Prometheus' own parser, holds the host sample
/// under node_exporter names, and its counters move after calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_counters_move_after_calls() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = "[local]\nname = \"prom\"\nroles = [\"viewer\"]\n";
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), cfg, &[]);
    let (status, text, ct) = get_metrics(addr).await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.is_some_and(|c| c.starts_with("application/openmetrics-text")));
    let before = parse_metrics(&text);
    for name in ["node_load1", "node_memory_MemTotal_bytes", "tailops_audit_queue_depth", "tailops_mcp_sessions"] {
        assert!(sample(&before, name, &[]).is_some(), "{name} missing:\n{text}");
    }
    assert!(sample(&before, "node_memory_MemTotal_bytes", &[]).is_some_and(|v| v > 0.0));
    assert!(before.iter().any(|s| s["name"] == "node_filesystem_size_bytes"), "{text}");
    let calls =
        |s: &[serde_json::Value]| sample(s, "tailops_tool_calls_total", &[("tool", "whoami"), ("outcome", "ok")]);
    assert_eq!(calls(&before), None, "no call yet");

    let host = addr.to_string();
    let mut c = Client::new(Via::Tcp(addr), &host);
    assert_eq!(c.initialize().await.status, 200);
    for _ in 0..3 {
        assert_eq!(c.call("whoami", json!({})).await.status, 200);
    }
    // A viewer may not read the audit log: one denial.
    assert_eq!(c.call("audit_tail", json!({})).await.status, 200);
    let (_, text, _) = get_metrics(addr).await;
    let after = parse_metrics(&text);
    assert_eq!(calls(&after), Some(3.0), "{text}");
    assert_eq!(sample(&after, "tailops_refusals_total", &[("reason", "denied")]), Some(1.0), "{text}");
    assert_eq!(sample(&after, "tailops_mcp_sessions", &[]), Some(1.0), "{text}");
    assert_eq!(sample(&after, "tailops_tool_call_duration_seconds_count", &[("tool", "whoami")]), Some(3.0), "{text}");
    let ops_before = sample(&before, "tailops_audit_operations_total", &[]).unwrap_or_default();
    assert!(sample(&after, "tailops_audit_operations_total", &[]).is_some_and(|v| v > ops_before), "{text}");
    assert!(server.stop().success());
}

/// A caller without `metrics:read` gets 403, and the refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_without_the_scope_is_403_and_audited() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = "[local]\nname = \"nosy\"\nroles = []\nscopes = [\"system:read\"]\n";
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), cfg, &[]);
    let (status, body, _) = get_metrics(addr).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("metrics:read"), "{body}");
    assert!(!body.contains("node_load1"), "{body}");
    assert!(server.stop().success());
    let log = std::fs::read_to_string(tmp.path().join("state/audit.jsonl")).expect("audit");
    assert!(log.lines().any(|l| l.contains("\"tool\":\"/metrics\"") && l.contains("\"decision\":\"deny\"")), "{log}");
}

const SD_CONFIG: &str = r#"
[[policy.rules]]
tags = ["tag:prometheus"]
scopes = ["metrics:read"]
"#;

/// `/sd` on a real headscale tailnet lists exactly the nodes tagged
/// `tag:tailops` (this server and two more), not a differently tagged node
/// nor the Prometheus node itself; a caller without `metrics:read` gets 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_lists_exactly_the_tagged_peers() {
    use crate::support::client;
    use crate::support::headscale::Headscale;
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = crate::mcp::start_tagged_server(&hs, tmp.path(), "ops-sd", SD_CONFIG);
    let host = server.dns_name.clone();
    let fleet_key = hs.tagged_key("tag:tailops");
    let web1 = client::node("web-1", &hs.url, &fleet_key, &tmp.path().join("w1")).await;
    let web2 = client::node("web-2", &hs.url, &fleet_key, &tmp.path().join("w2")).await;
    let db = client::node("db-1", &hs.url, &hs.tagged_key("tag:db"), &tmp.path().join("db")).await;
    let prom = client::node("prom", &hs.url, &hs.tagged_key("tag:prometheus"), &tmp.path().join("p")).await;

    // The netmap reaches the server a little after the nodes join: ask
    // until all three tagged nodes are there (bounded), then check exactly.
    let suffix = host.split_once('.').map(|(_, s)| s.to_string()).unwrap_or_default();
    let want: Vec<String> = ["ops-sd", "web-1", "web-2"].iter().map(|h| format!("{h}.{suffix}:80")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let r = client::get(&prom, &host, "/sd").await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let groups = r.json();
        let mut got: Vec<String> = groups
            .as_array()
            .expect("a list")
            .iter()
            .flat_map(|g| g["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        got.sort();
        if got.len() >= want.len() || Instant::now() > deadline {
            let web = groups.as_array().and_then(|a| a.iter().find(|g| g["targets"][0] == want[1].as_str()).cloned());
            if let Some(web) = web {
                assert_eq!(web["labels"]["__meta_tailops_tags"], ",tag:tailops,", "{web}");
                assert_eq!(web["labels"]["__meta_tailops_online"], "true", "{web}");
                assert_eq!(web["labels"]["__metrics_path__"], "/metrics", "{web}");
            }
            break got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(got, want);

    // db-1 holds no metrics:read: 403.
    let r = client::get(&db, &host, "/sd").await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let r = client::get(&db, &host, "/metrics").await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));

    for n in [web1, web2, db, prom] {
        n.close().await.expect("close");
    }
    assert!(server.stop().success());
}

fn hup(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::HUP,
    )
    .expect("SIGHUP");
}

/// The states the audit log's `alert` records give for `rule`, in order.
fn alert_states(log: &str, rule: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "alert" && r["detail"]["alert"]["rule"] == rule)
        .filter_map(|r| r["detail"]["alert"]["state"].as_str().map(str::to_string))
        .collect()
}

/// SIGHUP changes a principal's scopes, its rate quota and the alert rules live while its
/// MCP session stays open; a bad new config is refused and the old one
/// kept; both are in the audit log as `lifecycle` `reload` records (the
/// good one with nothing left to restart for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policy_live_and_refuses_a_bad_config() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut server, addr) =
        ServerProcess::start_dev(tmp.path(), "[local]\nname = \"dev\"\nroles = [\"viewer\"]\n", &[]);
    let cfg_path = tmp.path().join("tailops.toml");
    let host = addr.to_string();
    let mut c = Client::new(Via::Tcp(addr), &host);
    assert_eq!(c.initialize().await.status, 200);
    let session = c.session.clone();
    let r = c.call("audit_tail", json!({})).await;
    assert_eq!(r.error_category(), Some("permission_denied"), "a viewer: {}", r.body);

    for _ in 0..3 {
        assert_eq!(c.call("whoami", json!({})).await.status, 200, "the default burst (20) allows a few calls");
    }

    // The new config also adds an alert rule that holds at once (load is
    // never negative), replacing the built-in rules.
    std::fs::write(
        &cfg_path,
        "[local]\nname = \"dev\"\nroles = [\"admin\"]\n[limits.rate]\ncalls_per_minute = 1\nburst = 3\n\
         [sampler]\ndefault_alerts = false\n[[sampler.alerts]]\nname = \"reloaded\"\nmetric = \"load.1\"\n\
         comparator = \">=\"\nthreshold = 0.0\nfor_secs = 0\nseverity = \"info\"\n",
    )
    .expect("write");
    hup(server.pid());
    server.wait_for_log(
        |v| {
            v["message"] == "configuration reloaded: policy, [local], capability, [limits.rate] and alert rules applied"
        },
        Duration::from_secs(30),
    );
    let r = c.call("audit_tail", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.is_tool_error(), "admin after the reload, same session: {}", r.body);
    assert_eq!(c.session, session, "the session stayed");
    for i in 0..2 {
        assert_eq!(c.call("whoami", json!({})).await.status, 200, "call {i} within the new burst of 3");
    }
    let r = c.call("whoami", json!({})).await;
    assert_eq!(r.status, 429, "the 4th call after the reload is over the new quota: {}", r.body);
    // The reloaded rule is evaluated from the next sample on (for_secs 0:
    // it fires at once); the audit file is read while the server runs.
    let audit = tmp.path().join("state/audit.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !alert_states(&std::fs::read_to_string(&audit).unwrap_or_default(), "reloaded").contains(&"firing".into()) {
        assert!(std::time::Instant::now() < deadline, "the reloaded alert rule never fired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    std::fs::write(&cfg_path, "[local]\nname = \"dev\"\nroles = [\"root\"]\n").expect("write");
    hup(server.pid());
    server.wait_for_log(
        |v| v["message"] == "configuration reload refused; the running configuration is kept",
        Duration::from_secs(30),
    );
    assert!(c.tool_names().await.contains(&"audit_tail".to_string()), "the old (admin) policy is kept");
    assert_eq!(c.call("whoami", json!({})).await.status, 429, "the old (tight) quota is kept");

    assert!(server.stop().success());
    let log = std::fs::read_to_string(tmp.path().join("state/audit.jsonl")).expect("audit");
    let reloads: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "lifecycle" && r["detail"]["event"] == "reload")
        .collect();
    assert_eq!(reloads.len(), 2, "{log}");
    assert_eq!(reloads[0]["detail"]["ok"], true);
    assert_eq!(reloads[0]["detail"]["restart_required"], json!([]), "everything changed was applied: {}", reloads[0]);
    let applied = reloads[0]["detail"]["applied"].as_array().cloned().unwrap_or_default();
    assert!(applied.contains(&json!("limits.rate")) && applied.contains(&json!("sampler.alerts")), "{applied:?}");
    assert!(alert_states(&log, "reloaded").contains(&"firing".to_string()), "the reloaded rule fired");
    assert_eq!(reloads[1]["detail"]["ok"], false);
    assert!(reloads[1]["detail"]["error"].as_str().is_some_and(|e| e.contains("root")), "{}", reloads[1]);
}

/// True once the server holds `file` open (the follow of a `file_tail`
/// keeps its fd while it runs): the call is in flight.
fn holds_open(pid: u32, file: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == file)))
        .unwrap_or(false)
}

/// SIGTERM while a long call runs (a 4 s `file_tail` follow): the call runs
/// to its own end — it still sees a line appended AFTER the signal and
/// stops on its window, not cancelled —, the server then exits 0, and the
/// audit chain verifies with the call's completion record in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_long_call_finish_and_the_audit_chain_verifies() {
    use crate::support::files::{self, RootSpec};
    let tmp = tempfile::tempdir().expect("tmp");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let app = logs.join("app.log");
    std::fs::write(&app, "before\n").expect("write");
    let cfg = files::config("\"admin\"", &[RootSpec { name: "logs", path: &logs, mode: "read", extra: "" }], "");
    let (mut server, addr) = files::start(tmp.path(), &cfg);
    let mut c = crate::support::mcp::client(addr).await;
    let call =
        tokio::spawn(async move { c.call("file_tail", json!({"path": "logs:app.log", "follow_secs": 4})).await });

    let deadline = Instant::now() + Duration::from_secs(20);
    while !holds_open(server.pid(), &app) {
        assert!(Instant::now() < deadline, "the follow never opened {}", app.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.pid() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    server.wait_for_log(|v| v["signal"] == "SIGTERM", Duration::from_secs(10));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&app)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"after-term\n"))
        .expect("append");

    let r = call.await.expect("call task");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.is_tool_error(), "the call finished normally: {}", r.body);
    let out = r.structured();
    assert_eq!(out["follow"]["stopped"], "window", "ran its whole window: {}", r.body);
    assert_eq!(out["follow"]["lines"], json!(["after-term"]), "saw the line appended after SIGTERM: {out}");

    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "graceful exit: {status:?}");

    let audit = tmp.path().join("state/audit.jsonl");
    let out = Command::new(ServerProcess::bin()).args(["audit", "verify"]).arg(&audit).output().expect("verify");
    assert!(out.status.success(), "chain verifies: {}", String::from_utf8_lossy(&out.stdout));
    let log = std::fs::read_to_string(&audit).expect("audit");
    assert!(
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["kind"] == "tool_call" && v["tool"] == "file_tail" && v["outcome"] == "ok"),
        "the call's completion record: {log}"
    );
}

/// A listen-only `GET /mcp` stream (open until the client leaves) does not
/// hold a graceful stop for the grace period (120 s here): SIGTERM ends the
/// stream cleanly (chunked end, not a reset) and the server exits at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_listen_only_streams_instead_of_waiting_out_the_grace() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut server, addr) = ServerProcess::start_dev(
        tmp.path(),
        "[local]\nname = \"dev\"\nroles = [\"viewer\"]\n[limits]\nshutdown_grace_secs = 120\n",
        &[],
    );
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    let session = c.session.clone().expect("session");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /mcp HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\nmcp-session-id: {session}\r\n\
         mcp-protocol-version: 2025-11-25\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await.expect("head").expect("read");
        assert!(n > 0, "closed before the head: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "the stream opened: {head}");
    assert!(head.contains("text/event-stream"), "{head}");

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.pid() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("the stream ends well before the 120 s grace")
            .expect("a clean end, not a reset");
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(seen.ends_with(b"0\r\n\r\n"), "ended as a complete chunked body: {:?}", String::from_utf8_lossy(&seen));
    assert!(server.wait_exit(Duration::from_secs(30)).success(), "exited at once, cleanly");
}
