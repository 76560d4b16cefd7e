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
    ns.drain();
    let mut during = Vec::new();
    while let Some(m) = ns.recv(Duration::from_secs(2)) {
        during.push(m);
    }
    assert!(during.iter().all(|m| !m.contains("WATCHDOG=1")), "pinged while stalled: {during:?}");
    let ready = get(&Via::Tcp(addr), &host, "/readyz").await;
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
