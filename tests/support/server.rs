//! `tailops serve` as a real child process joined to a test tailnet.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a node may take to come up on loopback.
pub const UP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ServerProcess {
    child: Child,
    pub dns_name: String,
    pub ips: Vec<String>,
    /// Every JSON log line seen so far (stderr).
    lines: mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
}

pub struct ServeOpts<'a> {
    pub hostname: &'a str,
    pub control_url: &'a str,
    pub state_dir: &'a Path,
    pub auth_key: Option<&'a str>,
    pub tags: Option<&'a str>,
    pub ephemeral: bool,
    pub extra_args: Vec<String>,
}

/// `tailops serve --stdio` with `config` as its config file and a state dir
/// in `dir`: the child, its stdin, and its stdout as lines.
pub fn spawn_stdio(
    dir: &Path,
    config: &str,
) -> (Child, std::process::ChildStdin, BufReader<std::process::ChildStdout>) {
    let cfg = dir.join("t.toml");
    std::fs::write(&cfg, config).expect("cfg");
    let mut child = Command::new(ServerProcess::bin())
        .args(["serve", "--stdio", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdin = child.stdin.take().expect("stdin");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    (child, stdin, out)
}

impl ServerProcess {
    /// The binary under test; `TAILOPS_BENCH_BIN` runs another build
    /// instead (a bench's before/after against main's binary).
    pub fn bin() -> PathBuf {
        std::env::var_os("TAILOPS_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tailops")))
    }

    /// Spawns and waits until the server logs that it is serving.
    pub fn start(o: ServeOpts<'_>) -> Self {
        let mut sp = Self::spawn(o);
        sp.wait_ready();
        sp
    }

    /// [`Self::start`] with extra environment variables for the child
    /// (e.g. tailscale debug knobs such as `TS_DEBUG_ALWAYS_USE_DERP`).
    pub fn start_env(o: ServeOpts<'_>, env: &[(&str, &str)]) -> Self {
        let mut sp = Self::spawn_env(o, env);
        sp.wait_ready();
        sp
    }

    /// Spawns without waiting for readiness.
    pub fn spawn(o: ServeOpts<'_>) -> Self {
        Self::spawn_env(o, &[])
    }

    fn spawn_env(o: ServeOpts<'_>, env: &[(&str, &str)]) -> Self {
        // A node that gets certificates by ACME (testcontrol's pebble) first
        // looks the challenge's TXT record up through the system resolver
        // (best effort; tailscale's feature/acme/cert.go), which would send
        // a DNS query off this machine. Such a server runs in a private
        // mount namespace whose /etc/resolv.conf names 127.0.0.1, where
        // nothing answers: the lookup fails at once and stays on loopback.
        let mut cmd = if env.iter().any(|(k, _)| *k == "TS_DEBUG_ACME_DIRECTORY_URL") {
            let resolv = o.state_dir.with_extension("resolv.conf");
            std::fs::write(&resolv, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n").expect("resolv.conf");
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg(r#"r=$1; shift; mount --bind "$r" /etc/resolv.conf && exec "$@""#)
                .arg("sh")
                .arg(&resolv)
                .arg(Self::bin());
            c
        } else {
            Command::new(Self::bin())
        };
        cmd.args(["--log-format", "json", "serve", "--hostname", o.hostname, "--control-url", o.control_url])
            .arg("--state-dir")
            .arg(o.state_dir)
            .args(&o.extra_args)
            .env("TS_DEBUG_USE_DERP_HTTP", "1")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .env_remove("TS_AUTHKEY")
            .env_remove("TS_AUTH_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(k) = o.auth_key {
            cmd.env("TS_AUTHKEY", k);
        }
        if let Some(t) = o.tags {
            cmd.args(["--advertise-tags", t]);
        }
        if o.ephemeral {
            cmd.arg("--ephemeral");
        }
        Self::from_command(cmd)
    }

    /// Waits for the "serving" log line and records the node's name and IPs.
    pub fn wait_ready(&mut self) {
        let ready = self.wait_for_log(|v| v.get("dns_name").is_some(), UP_TIMEOUT);
        self.dns_name = ready["dns_name"].as_str().expect("dns_name").to_string();
        let ips = ready["ips"].as_str().unwrap_or_default();
        self.ips = ips
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
    }

    /// `tailops serve --dev-listen 127.0.0.1:0` with `config` (TOML text,
    /// written into `dir`) and extra args; waits until it listens and
    /// returns it with its address. State (and the audit log) in `dir/state`.
    pub fn start_dev(dir: &Path, config: &str, extra_args: &[&str]) -> (Self, std::net::SocketAddr) {
        Self::start_dev_env(dir, config, extra_args, &[])
    }

    /// [`Self::start_dev`] with extra environment variables for the child.
    pub fn start_dev_env(
        dir: &Path,
        config: &str,
        extra_args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (Self, std::net::SocketAddr) {
        Self::start_dev_bin(&Self::bin(), dir, config, extra_args, env)
    }

    /// [`Self::start_dev_env`] running `bin`, which takes `serve`'s
    /// arguments (e.g. the conformance fixture server,
    /// examples/conformance_fixtures.rs).
    pub fn start_dev_bin(
        bin: &Path,
        dir: &Path,
        config: &str,
        extra_args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (Self, std::net::SocketAddr) {
        Self::start_dev_cmd(Command::new(bin), dir, config, extra_args, env)
    }

    /// [`Self::start_dev`] started through `wrapper` (the argv before the
    /// binary's path), e.g. `unshare --pid --fork --mount-proc --kill-child`.
    pub fn start_dev_wrapped(wrapper: &[&str], dir: &Path, config: &str) -> (Self, std::net::SocketAddr) {
        let (prog, args) = wrapper.split_first().expect("a wrapper program");
        let mut cmd = Command::new(prog);
        cmd.args(args).arg(Self::bin());
        Self::start_dev_cmd(cmd, dir, config, &[], &[])
    }

    fn start_dev_cmd(
        mut cmd: Command,
        dir: &Path,
        config: &str,
        extra_args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (Self, std::net::SocketAddr) {
        let cfg_path = dir.join("tailops.toml");
        std::fs::write(&cfg_path, config).expect("write config");
        cmd.args(["--log-format", "json", "serve", "--dev-listen", "127.0.0.1:0", "--config"])
            .arg(&cfg_path)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(extra_args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut sp = Self::from_command(cmd);
        let ready = sp.wait_for_log(|v| v.get("listen_addr").is_some(), UP_TIMEOUT);
        let addr = ready["listen_addr"].as_str().expect("listen_addr").parse().expect("addr");
        (sp, addr)
    }

    fn from_command(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawn tailops serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str::<Value>(&line).unwrap_or_else(|_| Value::String(line.clone()));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        ServerProcess { child, dns_name: String::new(), ips: Vec::new(), lines: rx, seen: Vec::new() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a log line matching `pred`; panics with everything seen
    /// on timeout or when the process exits first.
    pub fn wait_for_log(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => panic!(
                    "tailops serve: expected log line not seen (exit: {:?}); log so far:\n{}",
                    self.child.try_wait().ok().flatten(),
                    self.seen.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn stop(&mut self) -> ExitStatus {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid"),
            rustix::process::Signal::TERM,
        );
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits (bounded by `within`) for the process to exit by itself, e.g.
    /// after the test sent it a signal (sending another would make it exit
    /// at once).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // Drain the rest of the log for assertions.
                while let Ok(v) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.seen.push(v);
                }
                return st;
            }
            assert!(Instant::now() < deadline, "tailops serve did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Number of open fds of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// Socket inodes of the server process (from /proc/PID/fd).
    pub fn socket_inodes(&self) -> Vec<u64> {
        let mut out = Vec::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", self.pid())) {
            for e in dir.flatten() {
                if let Ok(target) = std::fs::read_link(e.path()) {
                    let t = target.to_string_lossy();
                    if let Some(n) =
                        t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')).and_then(|s| s.parse().ok())
                    {
                        out.push(n);
                    }
                }
            }
        }
        out
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
