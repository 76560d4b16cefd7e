//! Our test control plane for what headscale cannot do (MagicDNS
//! certificates, Tailscale Services state): `tests/support/testcontrol/`,
//! a small Go program on `tailscale.com/tstest/integration/testcontrol`
//! (pinned to libtailscale-sys's tailscale.com) with its own DERP/STUN and
//! pebble as an embedded ACME CA, all on 127.0.0.1.
//!
//! It is built once per source version into `target/tools/testcontrol-<hash>/`
//! (a file lock keeps parallel test binaries from building it twice; the
//! hash covers main.go, go.mod and go.sum, so an edit rebuilds). Each
//! `TestControl::start()` is a fresh process with a fresh CA, killed on
//! drop (and it exits by itself when its stdin closes).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The MagicDNS suffix of the test tailnet.
pub const DOMAIN: &str = "tailnet.test";
/// How long the helper may take to print its first line (a give-up bound).
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/testcontrol")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Path of the helper binary, building it first if needed.
pub fn binary() -> PathBuf {
    let src = src_dir();
    let mut h = Sha256::new();
    for f in ["go.mod", "go.sum", "main.go"] {
        h.update(f.as_bytes());
        h.update(std::fs::read(src.join(f)).unwrap_or_else(|e| panic!("read testcontrol/{f}: {e}")));
    }
    let hash = hex::encode(h.finalize());
    let dir = target_dir().join("tools").join(format!("testcontrol-{}", &hash[..12]));
    let bin = dir.join("testcontrol");
    if bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(&dir).expect("create tools dir");
    let lock = std::fs::File::create(dir.join(".lock")).expect("lock file");
    lock.lock().expect("lock testcontrol build");
    if bin.exists() {
        return bin;
    }
    let tmp = dir.join("testcontrol.tmp");
    let out = Command::new("go")
        .current_dir(&src)
        .args(["build", "-trimpath", "-o"])
        .arg(&tmp)
        .arg(".")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=readonly -buildvcs=false")
        .output()
        .expect("run go (Go >= 1.26.6 is needed to build the test control plane)");
    assert!(
        out.status.success(),
        "building tests/support/testcontrol failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &bin).expect("install testcontrol binary");
    bin
}

pub struct TestControl {
    child: Child,
    _stdin: ChildStdin,
    pub dir: tempfile::TempDir,
    /// The control URL (`--control-url`).
    pub url: String,
    /// The ACME directory URL (`TS_DEBUG_ACME_DIRECTORY_URL`).
    pub acme_url: String,
    /// PEM trusted by the process that talks ACME (`SSL_CERT_FILE`).
    pub acme_trust: PathBuf,
    /// PEM of the root the node certificates chain to (`--ca-file`).
    pub issuing_root: PathBuf,
}

impl Drop for TestControl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestControl {
    /// Starts a control plane whose grants give every caller `app_caps`
    /// (`{"cap": [value, …]}`, as a grant `src: *, dst: *`), and every node
    /// `cert_domains` (e.g. a Service's FQDN) besides its own name.
    pub fn start(app_caps: &Value, cert_domains: &[&str]) -> Self {
        let bin = binary();
        let dir = tempfile::Builder::new().prefix("tailops-tc-").tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("testcontrol.log")).expect("log file");
        let mut child = Command::new(&bin)
            .arg("-dir")
            .arg(dir.path())
            .args(["-domain", DOMAIN, "-app-caps", &app_caps.to_string(), "-cert-domains", &cert_domains.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start testcontrol");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.path().join("testcontrol.log")).unwrap_or_default();
            panic!("testcontrol did not start ({e}): {line:?}\n{log}")
        });
        let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_string();
        TestControl {
            url: s("control_url"),
            acme_url: s("acme_url"),
            acme_trust: s("acme_trust_file").into(),
            issuing_root: s("issuing_root_file").into(),
            child,
            _stdin: stdin,
            dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("testcontrol.log")).unwrap_or_default()
    }

    /// The environment a node needs to get its certificate from the ACME CA.
    pub fn acme_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TS_DEBUG_ACME_DIRECTORY_URL", self.acme_url.clone()),
            ("SSL_CERT_FILE", self.acme_trust.display().to_string()),
        ]
    }

    /// One HTTP/1.0 request to the helper's test endpoints; status and body.
    fn http(&self, method: &str, path: &str) -> (u16, String) {
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("connect testcontrol");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).expect("read");
        let status = buf.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// Every node: name, hostname, tags, addresses.
    pub fn nodes(&self) -> Value {
        let (st, body) = self.http("GET", "/tailops-test/nodes");
        assert_eq!(st, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("nodes: {e}: {body}"))
    }

    /// Gives the node `host` the Service `name` on `vip` (see main.go's
    /// handleService for what that sets in the netmaps).
    pub fn set_service(&self, name: &str, host: &str, vip: &str) {
        let (st, body) = self.http("POST", &format!("/tailops-test/service?name={name}&host={host}&vip={vip}"));
        assert_eq!(st, 204, "{body}");
    }
}
