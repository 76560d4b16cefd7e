//! A real systemd (Debian bookworm's, 252) as PID 1 of a container in a
//! test-owned dockerd ([`Dockerd`]): this machine's PID 1 is not systemd.
//!
//! The rootfs is debootstrapped once (`--variant=minbase
//! --include=systemd,systemd-sysv,dbus`, ≈ 30-90 s) and cached as a tar
//! under `target/systemd-rootfs/`; an exclusive file lock makes parallel
//! tests (and benches) wait for one build instead of racing. Each box then
//! imports that tar into its own dockerd, copies its test units in, and
//! boots systemd with the system bus socket and the journal directory
//! bind-mounted into a fresh temp dir, where tailops (a host process, as
//! root) reaches them: `unix:path=$DIR/bus/system_bus_socket` and
//! `journalctl -D $DIR/journal`. `docker import --change` has no
//! STOPSIGNAL, so the container gets `--stop-signal SIGRTMIN+3`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::dockerd::Dockerd;

/// The Debian suite of the rootfs and where its packages come from
/// (`TAILOPS_DEBIAN_MIRROR` overrides the mirror).
pub const SUITE: &str = "bookworm";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// How long systemd may take to reach `running` after the container starts.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Files every box gets: no consoles or udev in a container, a journal
/// that keeps everything (no rate limit, persistent), a machine id made at
/// boot.
const BASE_FILES: &[(&str, &str)] = &[
    (
        "etc/systemd/journald.conf.d/tailops-test.conf",
        "[Journal]\nStorage=persistent\nRateLimitIntervalSec=0\nRateLimitBurst=0\nSystemMaxUse=2G\n",
    ),
    ("etc/machine-id", ""),
];
const MASKED: &[&str] = &[
    "getty@tty1.service",
    "console-getty.service",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-firstboot.service",
];

pub fn target_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    // target/<profile>/tailops
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_tailops"));
    bin.parent().and_then(Path::parent).map(Path::to_path_buf).expect("target dir")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cached rootfs tar, built (once, under a file lock) if missing.
pub fn rootfs_tar() -> PathBuf {
    let base = target_dir().join("systemd-rootfs");
    fs::create_dir_all(&base).expect("mkdir systemd-rootfs");
    let lock = fs::File::create(base.join(".lock")).expect("lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");
    let tar = base.join(format!("{SUITE}-systemd.tar"));
    if tar.exists() {
        return tar;
    }
    let root = base.join("rootfs.tmp");
    if root.exists() {
        fs::remove_dir_all(&root).expect("remove a half-built rootfs");
    }
    let mirror = std::env::var("TAILOPS_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
    let debootstrap = ["/usr/sbin/debootstrap", "/sbin/debootstrap", "/usr/bin/debootstrap"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("debootstrap not found: install Debian's debootstrap (see .ci/run)");
    run(
        Command::new(debootstrap)
            .args(["--variant=minbase", "--include=systemd,systemd-sysv,dbus", SUITE])
            .arg(&root)
            .arg(&mirror),
        "debootstrap",
    );
    // What a booting systemd never reads: keep the cached tar small.
    for d in ["usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info", "var/lib/apt/lists"] {
        let _ = fs::remove_dir_all(root.join(d));
    }
    if let Ok(debs) = fs::read_dir(root.join("var/cache/apt/archives")) {
        for e in debs.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "deb")) {
            let _ = fs::remove_file(e.path());
        }
    }
    let tmp = base.join("rootfs.tar.tmp");
    run(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tmp).arg("."), "tar rootfs");
    fs::rename(&tmp, &tar).expect("rename rootfs tar");
    let _ = fs::remove_dir_all(&root);
    tar
}

/// A booted systemd in a container of its own dockerd.
pub struct SystemdBox {
    /// Dropped first: removes the container (and the daemon) before the dir.
    pub dockerd: Dockerd,
    pub dir: tempfile::TempDir,
    pub container: String,
}

impl SystemdBox {
    /// Boots a box with `files` (path in the rootfs → content) added, and
    /// the units in `enable` enabled (`WantedBy` their target).
    pub fn start(files: &[(&str, &str)], enable: &[(&str, &str)]) -> Self {
        let tar = rootfs_tar();
        let dockerd = Dockerd::start();
        let tag = "tailops-test/systemd:bookworm";
        let label = format!("LABEL {}", dockerd.label);
        dockerd.docker(&[
            "import",
            "--change",
            "ENV container=docker",
            "--change",
            "CMD [\"/lib/systemd/systemd\"]",
            "--change",
            &label,
            &tar.display().to_string(),
            tag,
        ]);
        let dir = tempfile::Builder::new().prefix("tosd").tempdir().expect("tempdir");
        let (bus, journal) = (dir.path().join("bus"), dir.path().join("journal"));
        fs::create_dir_all(&bus).expect("bus dir");
        fs::create_dir_all(&journal).expect("journal dir");
        let bus_mount = format!("{}:/run/dbus", bus.display());
        let journal_mount = format!("{}:/var/log/journal", journal.display());
        let container = dockerd.create(
            &[
                "--stop-signal",
                "SIGRTMIN+3",
                "--cap-add",
                "ALL",
                "--cap-drop",
                "SYS_RESOURCE",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--cgroupns=private",
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/tmp",
                "-v",
                &bus_mount,
                "-v",
                &journal_mount,
            ],
            tag,
            &[],
        );
        // The test's files, as one tar copied into the stopped container.
        let add = dir.path().join("add");
        let put = |rel: &str, body: &str| {
            let p = add.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, body).expect("write file");
            if rel.starts_with("usr/local/bin/") {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
            }
        };
        for (p, b) in BASE_FILES.iter().chain(files) {
            put(p, b);
        }
        let link = |target: &str, at: &str| {
            let p = add.join(at);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::os::unix::fs::symlink(target, p).expect("symlink");
        };
        for m in MASKED {
            link("/dev/null", &format!("etc/systemd/system/{m}"));
        }
        for (unit, target) in enable {
            link(&format!("/etc/systemd/system/{unit}"), &format!("etc/systemd/system/{target}.wants/{unit}"));
        }
        let files_tar = dir.path().join("add.tar");
        run(Command::new("tar").arg("-C").arg(&add).arg("-cf").arg(&files_tar).arg("."), "tar files");
        let out = dockerd
            .cmd(&["cp", "-", &format!("{container}:/")])
            .stdin(fs::File::open(&files_tar).expect("open tar"))
            .output()
            .expect("docker cp");
        assert!(out.status.success(), "docker cp: {}", String::from_utf8_lossy(&out.stderr));
        dockerd.docker(&["start", &container]);
        let b = SystemdBox { dockerd, dir, container };
        b.wait_running();
        b
    }

    fn wait_running(&self) {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while !self.dir.path().join("bus/system_bus_socket").exists() {
            assert!(Instant::now() < deadline, "no system bus within {BOOT_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // "running" or "degraded"; the exit code says degraded too.
        let state = self.exec(&["timeout", "60", "systemctl", "is-system-running", "--wait"]);
        assert!(state == "running" || state == "degraded", "systemd state: {state}");
    }

    /// Runs a command in the container (test setup and checks only;
    /// tailops itself never runs systemctl); stdout trimmed, failures allowed.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut a = vec!["exec", self.container.as_str()];
        a.extend_from_slice(args);
        let out = self.dockerd.try_docker(&a);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("bus/system_bus_socket").display())
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    /// The `[systemd]` section pointing tailops at this box.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[systemd]\nbus_address = \"{}\"\njournal_dir = \"{}\"\n{extra}",
            self.bus_address(),
            self.journal_dir().display()
        )
    }

    /// Entries of `unit` in this box's journal, read with the host's journalctl.
    pub fn journal_count(&self, unit: &str) -> usize {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(self.journal_dir())
            .args(["--no-pager", "-q", "-o", "cat", "-u", unit])
            .output()
            .expect("journalctl");
        out.stdout.iter().filter(|b| **b == b'\n').count()
    }
}
