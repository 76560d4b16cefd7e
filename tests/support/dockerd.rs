//! A test-owned `dockerd` (Debian's `docker.io`) in a temp dir: its own
//! socket, data root and exec root (where it starts its own containerd), no
//! iptables, no default bridge. A test can stop, freeze and restart it, and
//! everything it holds lives and dies with the dir. Test images are built
//! locally from `busybox-static` (`docker import`); no registry is needed
//! except the loopback one of [`Registry`].
//!
//! Everything a test creates carries the label `tailops.test=<id>`; on drop
//! those objects are removed by label, then the daemon is stopped and its
//! leftover mounts undone.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to answer `/_ping` after start.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    /// `unix://…/docker.sock`, for `[docker] host` and `docker -H`.
    pub host: String,
    /// `tailops.test=<id>`, on every object a test creates here.
    pub label: String,
    child: Option<Child>,
}

fn find_bin(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: install Debian's docker.io and busybox-static (see .ci/run)")
}

impl Dockerd {
    /// Starts a daemon and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("tod").tempdir().expect("tempdir");
        let sock = dir.path().join("docker.sock");
        let id = format!("{:x}", rand_seed() & 0xffff_ffff_ffff);
        let mut d = Dockerd {
            host: format!("unix://{}", sock.display()),
            sock,
            label: format!("tailops.test={id}"),
            dir,
            child: None,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("{log}");
        }
    }

    /// Starts dockerd and waits until it answers; the reason and its log
    /// when it exited first or did not answer within [`START_TIMEOUT`].
    fn try_spawn(&mut self) -> Result<(), String> {
        let p = self.dir.path();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(p.join("dockerd.log")).expect("log");
        let child = Command::new(find_bin("dockerd"))
            .arg("--host")
            .arg(&self.host)
            .arg("--data-root")
            .arg(p.join("data"))
            .arg("--exec-root")
            .arg(p.join("exec"))
            .arg("--pidfile")
            .arg(p.join("dockerd.pid"))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--log-level=warn"])
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.ping() {
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("dockerd exited ({st}) before answering; log:\n{}", self.log()));
            }
            if Instant::now() >= deadline {
                return Err(format!("dockerd did not answer within {START_TIMEOUT:?}; log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// `GET /_ping` answered `OK`.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(&self.sock) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.") && buf.ends_with("OK")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("dockerd is running")
    }

    fn signal(&self, sig: rustix::process::Signal) {
        if let Some(c) = &self.child
            && let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32)
        {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// SIGTERM and wait (its containers stop, its containerd exits).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.kill_containerd();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same dirs (after [`Dockerd::stop`]).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// SIGKILL (a crash: no shutdown, its socket file stays behind, its
    /// containerd and container shims keep running) and wait for the exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same dirs after [`Dockerd::kill`] (it finds
    /// its containerd still running).
    pub fn start_again(&mut self) {
        if let Err(log) = self.try_spawn() {
            // The new daemon gives the containerd left behind a bounded
            // time to answer; on a loaded box (seen in CI) it may not, and
            // dockerd exits with "timeout waiting for containerd to start".
            // Then the leftover goes (as an operator would kill it): the
            // next daemon starts its own containerd, which takes over the
            // running shims.
            assert!(log.contains("containerd"), "{log}");
            self.kill_containerd();
            self.spawn();
        }
    }

    /// SIGSTOP: the socket still accepts connections but nothing answers.
    pub fn freeze(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    pub fn thaw(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    /// SIGKILLs the containerd named by its pidfile and waits (at most
    /// 10 s) until the process is gone, so a daemon started next does not
    /// find it alive.
    fn kill_containerd(&self) {
        let pidfile = self.dir.path().join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            // Gone, or a zombie nobody reaped yet (its parent died first).
            let alive = || {
                std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
                    .is_ok_and(|st| st.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // dockerd reuses the containerd its pidfile names while that pid
        // exists (a zombie too): make it start its own.
        let _ = std::fs::remove_file(self.dir.path().join("exec/containerd/containerd.pid"));
    }

    /// `docker -H <this daemon> args…`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(find_bin("docker"));
        c.arg("-H")
            .arg(&self.host)
            .args(args)
            .env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", self.dir.path().join("cli"));
        c
    }

    /// Runs the docker CLI; panics with its stderr on failure; returns stdout (trimmed).
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.try_docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn try_docker(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().expect("run docker")
    }

    /// Builds an image from busybox-static (every applet linked) plus
    /// `extra` files, imports it as `tag` with the test label,
    /// `CMD ["sh"]` and `PATH=/bin`, and returns its id.
    pub fn busybox_image(&self, tag: &str, extra: &[(&str, &[u8])]) -> String {
        let root = tempfile::tempdir_in(self.dir.path()).expect("rootfs dir");
        let r = root.path();
        for d in ["bin", "tmp", "etc", "data"] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        let busybox = find_bin("busybox");
        std::fs::copy(&busybox, r.join("bin/busybox")).expect("copy busybox");
        // Ask the installed binary, not the fresh copy: exec'ing a file just
        // written races with other test threads forking (their children
        // briefly hold the write fd), which fails with ETXTBSY.
        let list = Command::new(&busybox).arg("--list").output().expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
            let _ = std::os::unix::fs::symlink("busybox", r.join("bin").join(applet));
        }
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
            .expect("passwd");
        std::fs::write(r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
        for (name, data) in extra {
            let p = r.join(name.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, data).expect("extra file");
        }
        let tar = self.dir.path().join(format!("rootfs-{}.tar", std::process::id() ^ rand_seed() as u32));
        let st = Command::new("tar").arg("-C").arg(r).arg("-cf").arg(&tar).arg(".").status().expect("tar");
        assert!(st.success(), "tar failed");
        let label_change = format!("LABEL {}", self.label);
        let id = self.docker(&[
            "import",
            "--change",
            &label_change,
            "--change",
            "CMD [\"sh\"]",
            "--change",
            "ENV PATH=/bin",
            &tar.display().to_string(),
            tag,
        ]);
        let _ = std::fs::remove_file(tar);
        id
    }

    /// `docker run -d --network none --label <test label> [args] image cmd…`; returns the full id.
    pub fn run(&self, args: &[&str], image: &str, cmd: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--network", "none", "--label", &self.label];
        a.extend_from_slice(args);
        a.push(image);
        a.extend_from_slice(cmd);
        self.docker(&a)
    }

    /// Like [`Dockerd::run`] but `docker create` (not started).
    pub fn create(&self, args: &[&str], image: &str, cmd: &[&str]) -> String {
        let mut a = vec!["create", "--network", "none", "--label", &self.label];
        a.extend_from_slice(args);
        a.push(image);
        a.extend_from_slice(cmd);
        self.docker(&a)
    }

    /// `{{.State.Status}}` of a container, or None if it does not exist.
    pub fn state(&self, container: &str) -> Option<String> {
        let out = self.try_docker(&["inspect", "--format", "{{.State.Status}}", container]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn exists(&self, kind: &str, name: &str) -> bool {
        self.try_docker(&[kind, "inspect", name]).status.success()
    }

    /// The `[docker]` section pointing tailops at this daemon.
    pub fn config(&self, extra: &str) -> String {
        format!("[docker]\nhost = \"{}\"\n{extra}", self.host)
    }

    /// Removes every object carrying the test label.
    pub fn clean(&self) {
        if !self.ping() {
            return;
        }
        let filter = format!("label={}", self.label);
        let ids = |args: &[&str]| -> Vec<String> {
            let out = self.try_docker(args);
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect()
        };
        let containers = ids(&["ps", "-aq", "--filter", &filter]);
        if !containers.is_empty() {
            let mut a = vec!["rm", "-f", "-v"];
            a.extend(containers.iter().map(String::as_str));
            let _ = self.try_docker(&a);
        }
        for (kind, list) in [
            ("image", ids(&["images", "-aq", "--filter", &filter])),
            ("volume", ids(&["volume", "ls", "-q", "--filter", &filter])),
            ("network", ids(&["network", "ls", "-q", "--filter", &filter])),
        ] {
            if !list.is_empty() {
                let mut a = vec![kind, "rm"];
                if kind == "image" {
                    a.push("-f");
                }
                a.extend(list.iter().map(String::as_str));
                let _ = self.try_docker(&a);
            }
        }
    }
}

/// Some entropy for ids without a rand dependency.
fn rand_seed() -> u128 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let stack = 0u8;
    t ^ (&stack as *const u8 as usize as u128)
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.thaw();
        self.clean();
        self.stop();
        self.kill_containerd();
        // Mounts dockerd left under the dir (the data root is bind-mounted onto itself).
        let dir = self.dir.path().display().to_string();
        if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut points: Vec<&str> =
                info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&dir)).collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

/// Debian's `docker-registry` on 127.0.0.1 with storage in a temp dir.
pub struct Registry {
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Child,
}

impl Registry {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("storage").display()
            ),
        )
        .expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(find_bin("docker-registry"))
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let mut r = Registry { dir, addr, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&r.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: r\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.") && buf.contains(" 200 ") {
                    break;
                }
            }
            if let Ok(Some(st)) = r.child.try_wait() {
                panic!(
                    "docker-registry exited ({st}): {}",
                    std::fs::read_to_string(r.dir.path().join("registry.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "docker-registry did not answer on {}", r.addr);
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP listener on 127.0.0.1 that accepts connections and never answers:
/// a registry (or anything) that hangs.
pub struct Silent {
    pub addr: String,
    _listener: std::net::TcpListener,
}

impl Silent {
    pub fn start() -> Self {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        // Never accept: the kernel completes the handshakes into the backlog.
        Silent { addr, _listener: l }
    }
}
