//! A real headscale control plane on loopback, one per test.
//!
//! headscale v0.29.2 is built once from its Go module into
//! `target/tools/headscale-v0.29.2/` (a file lock keeps parallel test
//! binaries from building it twice). Each `Headscale::start()` gets fresh
//! random ports, a temp dir with a generated config and policy, users
//! `alice` and `bob`, and is killed and removed on drop, also when the test
//! panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const HEADSCALE_VERSION: &str = "v0.29.2";
pub const HEADSCALE_MODULE: &str = "github.com/juanfont/headscale";
/// The app capability our grants use (the server's default).
pub const CAP: &str = "tailops.dev/cap/tailops";
pub const BASE_DOMAIN: &str = "tailnet.test";

/// The policy: everyone may reach everyone (IP level); alice owns
/// `tag:tailops` and is granted role `admin` on it, bob only `viewer`, and
/// alice gets a second grant value (two grants → two values in the CapMap).
pub const POLICY: &str = r#"{
  "tagOwners": { "tag:tailops": ["alice@"], "tag:ci": ["alice@"] },
  "grants": [
    { "src": ["*"], "dst": ["*"], "ip": ["*"] },
    { "src": ["alice@"], "dst": ["tag:tailops"],
      "app": { "tailops.dev/cap/tailops": [ { "roles": ["admin"] } ] } },
    { "src": ["alice@"], "dst": ["tag:tailops"],
      "app": { "tailops.dev/cap/tailops": [ { "scopes": ["audit:read"] } ] } },
    { "src": ["bob@"], "dst": ["tag:tailops"],
      "app": { "tailops.dev/cap/tailops": [ { "roles": ["viewer"] } ] } }
  ]
}
"#;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Path of the headscale binary, building it first if needed.
pub fn binary() -> PathBuf {
    let dir = target_dir().join("tools").join(format!("headscale-{HEADSCALE_VERSION}"));
    let bin = dir.join("headscale");
    if bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(&dir).expect("create tools dir");
    let lock = std::fs::File::create(dir.join(".lock")).expect("lock file");
    lock.lock().expect("lock headscale build");
    if bin.exists() {
        return bin;
    }
    let module = format!("{HEADSCALE_MODULE}@{HEADSCALE_VERSION}");
    let out = Command::new("go")
        .args(["mod", "download", "-json", &module])
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go (Go >= 1.26.6 is needed to build headscale for the tests)");
    assert!(
        out.status.success(),
        "go mod download {module} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).expect("go mod download -json output");
    let src = info["Dir"].as_str().expect("module Dir").to_string();
    let tmp = dir.join("headscale.tmp");
    let status = Command::new("go")
        .current_dir(&src)
        .args(["build", "-trimpath", "-o"])
        .arg(&tmp)
        .arg("./cmd/headscale")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=readonly -buildvcs=false")
        .status()
        .expect("go build headscale");
    assert!(status.success(), "building headscale {HEADSCALE_VERSION} failed");
    std::fs::rename(&tmp, &bin).expect("install headscale binary");
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A UDP port free on loopback right now (STUN listens on UDP: a port free
/// for TCP may be held by a tailnet node's UDP socket).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp").local_addr().expect("addr").port()
}

/// Starts of a headscale whose child exits before it is healthy (a port
/// picked free was taken by a test running in parallel before headscale
/// bound it), each with fresh ports.
const START_ATTEMPTS: usize = 4;

pub struct Headscale {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    config: PathBuf,
    bin: PathBuf,
}

impl Drop for Headscale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Headscale {
    pub fn start() -> Self {
        Self::start_with_policy(POLICY)
    }

    pub fn start_with_policy(policy: &str) -> Self {
        let mut attempt = 1;
        loop {
            match Self::try_start(policy) {
                Ok(hs) => return hs,
                Err(log) if attempt < START_ATTEMPTS && log.contains("address already in use") => attempt += 1,
                Err(log) => panic!("headscale did not become healthy (attempt {attempt}); log:\n{log}"),
            }
        }
    }

    /// One start with fresh ports; the log when the child exited first or
    /// it was not healthy within its bound.
    fn try_start(policy: &str) -> Result<Self, String> {
        let bin = binary();
        let dir = tempfile::Builder::new().prefix("tailops-hs-").tempdir().expect("tempdir");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let d = dir.path().display();
        let config = format!(
            r#"server_url: {url}
listen_addr: 127.0.0.1:{port}
metrics_listen_addr: 127.0.0.1:{metrics}
grpc_listen_addr: 127.0.0.1:{grpc}
grpc_allow_insecure: false
noise:
  private_key_path: {d}/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: "hs"
    region_name: "Test DERP"
    verify_clients: true
    stun_listen_addr: "127.0.0.1:{stun}"
    private_key_path: {d}/derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: 127.0.0.1
  urls: []
  paths: []
  auto_update_enabled: false
disable_check_updates: true
ephemeral_node_inactivity_timeout: 30m
database:
  type: sqlite
  sqlite:
    path: {d}/db.sqlite
    write_ahead_log: true
log:
  level: warn
  format: text
policy:
  mode: file
  path: {d}/policy.hujson
dns:
  magic_dns: true
  base_domain: {BASE_DOMAIN}
  override_local_dns: false
  nameservers:
    global: []
unix_socket: {d}/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
"#,
            metrics = free_port(),
            grpc = free_port(),
            stun = free_udp_port(),
        );
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).expect("write config");
        std::fs::write(dir.path().join("policy.hujson"), policy).expect("write policy");
        let child = serve_child(&bin, &config_path, dir.path());
        let mut hs = Headscale { child, dir, url, config: config_path, bin };
        hs.healthy_or_exited()?;
        hs.cli(&["users", "create", "alice"]);
        hs.cli(&["users", "create", "bob"]);
        Ok(hs)
    }

    fn wait_healthy(&mut self) {
        if let Err(log) = self.healthy_or_exited() {
            panic!("headscale did not become healthy; log:\n{log}");
        }
    }

    /// Waits (at most 30 s) until it answers /health and its CLI socket
    /// exists; its log when the child exited first or the bound passed.
    fn healthy_or_exited(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.url.trim_start_matches("http://").to_string();
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = write!(s, "GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                    // The CLI socket comes up with the HTTP server.
                    if self.dir.path().join("headscale.sock").exists() {
                        return Ok(());
                    }
                }
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) || Instant::now() >= deadline {
                return Err(self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("headscale.log")).unwrap_or_default()
    }

    /// Runs a headscale CLI command against this instance and returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin).arg("-c").arg(&self.config).args(args).output().expect("run headscale cli");
        assert!(
            out.status.success(),
            "headscale {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.cli(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("headscale {args:?}: bad JSON ({e}): {out}"))
    }

    pub fn user_id(&self, name: &str) -> String {
        let users = self.cli_json(&["users", "list"]);
        let u = users
            .as_array()
            .and_then(|a| a.iter().find(|u| u["name"] == name))
            .unwrap_or_else(|| panic!("user {name} not in {users}"));
        match &u["id"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }

    /// A reusable pre-auth key for `user`, optionally ephemeral.
    pub fn user_key(&self, user: &str, ephemeral: bool) -> String {
        let id = self.user_id(user);
        let mut args = vec!["preauthkeys", "create", "--user", id.as_str(), "--reusable", "--expiration", "1h"];
        if ephemeral {
            args.push("--ephemeral");
        }
        let key = self.cli_json(&args);
        key["key"].as_str().unwrap_or_else(|| panic!("no key in {key}")).to_string()
    }

    /// A reusable pre-auth key that registers nodes owned by `tags`.
    pub fn tagged_key(&self, tags: &str) -> String {
        let key = self.cli_json(&["preauthkeys", "create", "--tags", tags, "--reusable", "--expiration", "1h"]);
        key["key"].as_str().unwrap_or_else(|| panic!("no key in {key}")).to_string()
    }

    pub fn nodes(&self) -> Value {
        self.cli_json(&["nodes", "list"])
    }
}

/// `headscale serve` on `config`, logging (appended) to `dir/headscale.log`.
fn serve_child(bin: &Path, config: &Path, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("headscale.log")).expect("log file");
    Command::new(bin)
        .args(["-c"])
        .arg(config)
        .arg("serve")
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start headscale")
}

impl Headscale {
    /// SIGKILL (a control-plane crash: nothing is said to the nodes; its
    /// embedded DERP goes down with it) and wait for the exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again after [`Headscale::kill`]: same config, ports,
    /// keys and database, so the nodes see the same control plane return.
    pub fn start_again(&mut self) {
        self.child = serve_child(&self.bin, &self.config, self.dir.path());
        self.wait_healthy();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
