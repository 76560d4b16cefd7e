//! A container's usage straight from the kernel's cgroup files, when
//! tailops runs on the daemon's host and can see the container's cgroup.
//! dockerd's own one-shot stats go through containerd and the shim for every
//! container (≈ 1.3 s for 20 containers on a loaded 2-core host); these
//! files take microseconds. `container_stats` falls back to the Engine API
//! for every container this module cannot read (a miss: `None`).
//!
//! The way there: the container's init PID (inspect `State.Pid`) →
//! `/proc/PID/cgroup` (the cgroup path of each hierarchy, as seen from
//! tailops's cgroup namespace) → the mount table `/proc/self/mountinfo`
//! (where each hierarchy is mounted, and which part of it) → the directory.
//! So cgroupfs and systemd drivers (`/docker/<id>`,
//! `/system.slice/docker-<id>.scope`), v1, hybrid and v2 hosts all resolve
//! the same way. On a hybrid host (v1 controllers plus an empty v2
//! hierarchy, as dockerd sees it) the v1 controllers are read.
//!
//! Safety against mixing containers: a path is used only when one of its
//! components names the container's full id, and it is cut after the last
//! such component (an init that moved into a child cgroup such as
//! `init.scope` still gives the container's own cgroup). A reused PID, or a
//! process that moved into another container's cgroup, names another id and
//! is a miss. `/proc/PID` is opened once and every per-process file is read
//! relative to that directory, so a PID that exits and is reused during
//! the read fails instead of reading the newcomer. Other PID or cgroup
//! namespaces (no such PID, or paths with `..`), a remote daemon, rootless
//! Docker and missing files are misses too.
//!
//! What is read (the figures `docker stats` shows):
//!
//! | | cgroup v1 | cgroup v2 |
//! |---|---|---|
//! | CPU time | `cpuacct.usage` (ns) | `cpu.stat` `usage_usec` × 1000 |
//! | memory | `memory.usage_in_bytes` − `memory.stat` `total_inactive_file` | `memory.current` − `memory.stat` `inactive_file` |
//! | limit | `memory.limit_in_bytes` | `memory.max` (`max`: none) |
//! | pids | `pids.current` | `pids.current` |
//! | block I/O | `blkio.throttle.io_service_bytes` Read / Write | `io.stat` `rbytes` / `wbytes` |
//! | network | `/proc/PID/net/dev`, every interface but `lo` | same |
//!
//! The memory rule is the docker CLI's (usage without the inactive page
//! cache); a limit above the host's memory (or none) is the host's
//! `MemTotal`, as dockerd reports it. A container in tailops's own network
//! namespace (`--network host`) reports no network bytes, as dockerd does.
//! Every file read is capped ([`MAX_CGROUP_FILE_BYTES`],
//! [`MAX_MOUNTINFO_BYTES`]); a longer file is a miss, never a partial read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, Mode, OFlags};

/// Longest cgroup or `/proc/PID` file read (`memory.stat`, `io.stat`,
/// `net/dev` with many interfaces stay far below).
pub const MAX_CGROUP_FILE_BYTES: u64 = 64 * 1024;
/// Longest mount table read (a host with thousands of container mounts).
pub const MAX_MOUNTINFO_BYTES: u64 = 4 * 1024 * 1024;
/// A container whose cgroup could not be read goes to the Engine API
/// without a new try for this long.
pub const CGROUP_RETRY: Duration = Duration::from_secs(60);
/// Containers whose init PID (or miss) is kept; beyond it all are forgotten.
pub const MAX_KNOWN_PIDS: usize = 1024;

/// Where `/proc` is (tests point it at a directory of real samples).
#[derive(Clone, Debug)]
pub struct Roots {
    pub proc: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self { proc: PathBuf::from("/proc") }
    }
}

/// Reads a whole file of at most `cap` bytes; a longer one is an error.
fn read_capped(mut f: File, cap: u64) -> io::Result<String> {
    let mut buf = Vec::new();
    (&mut f).take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("longer than {cap} bytes")));
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_path(p: &Path, cap: u64) -> io::Result<String> {
    read_capped(File::open(p)?, cap)
}

fn read_at(dir: &OwnedFd, name: &str) -> io::Result<String> {
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    read_capped(File::from(fd), MAX_CGROUP_FILE_BYTES)
}

// ---------------------------------------------------------------------------
// Parsers (pure, tested on real samples)

/// One mount of a cgroup hierarchy: where it is and which of its cgroups
/// is at the mount point (`/` unless a subtree is bind-mounted).
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    pub point: PathBuf,
    pub root: String,
}

/// Which hierarchies hold the controllers read, from the mount table.
#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    V1 { cpuacct: Vec<Mount>, memory: Vec<Mount>, pids: Vec<Mount>, blkio: Vec<Mount> },
    V2 { unified: Vec<Mount> },
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(oct) = s.get(i + 1..i + 4)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup layout from `/proc/self/mountinfo` ("ID PARENT MAJ:MIN ROOT
/// POINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTS"): v1 when the
/// `cpuacct` and `memory` controllers are mounted as v1 hierarchies (also
/// on hybrid hosts), else v2 when a cgroup2 hierarchy is mounted.
pub fn parse_mountinfo(text: &str) -> Option<Layout> {
    let (mut cpuacct, mut memory, mut pids, mut blkio, mut unified) = (vec![], vec![], vec![], vec![], vec![]);
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else { continue };
        let (Some(root), Some(point), Some(fstype)) = (f.get(3), f.get(4), f.get(sep + 1)) else { continue };
        let m = Mount { point: PathBuf::from(unescape(point)), root: unescape(root) };
        match *fstype {
            "cgroup2" => unified.push(m),
            "cgroup" => {
                for opt in f.get(sep + 3).copied().unwrap_or_default().split(',') {
                    match opt {
                        "cpuacct" => cpuacct.push(m.clone()),
                        "memory" => memory.push(m.clone()),
                        "pids" => pids.push(m.clone()),
                        "blkio" => blkio.push(m.clone()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if !cpuacct.is_empty() && !memory.is_empty() {
        Some(Layout::V1 { cpuacct, memory, pids, blkio })
    } else if !unified.is_empty() {
        Some(Layout::V2 { unified })
    } else {
        None
    }
}

/// `/proc/PID/cgroup` ("ID:CONTROLLERS:PATH" lines): the path per v1
/// controller, and the v2 path (`0::PATH`).
#[derive(Debug, Default, PartialEq)]
pub struct ProcCgroups {
    pub v1: HashMap<String, String>,
    pub v2: Option<String>,
}

pub fn parse_proc_cgroup(text: &str) -> ProcCgroups {
    let mut out = ProcCgroups::default();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(hid), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else { continue };
        if hid == "0" && ctrls.is_empty() {
            out.v2 = Some(path.to_string());
        } else {
            for c in ctrls.split(',').filter(|c| !c.is_empty()) {
                out.v1.insert(c.to_string(), path.to_string());
            }
        }
    }
    out
}

/// A full container id: 64 lowercase hex digits.
pub fn is_full_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The container's cgroup within `path`: its components up to the last one
/// naming `id` (`<id>`, `docker-<id>.scope`, `cri-containerd-<id>.scope`),
/// or None when no component does or the path leaves the namespace (`..`).
pub fn container_cgroup<'a>(path: &'a str, id: &str) -> Option<Vec<&'a str>> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if comps.iter().any(|c| *c == "." || *c == "..") {
        return None;
    }
    let last = comps.iter().rposition(|c| c.split(['-', '.', ':']).any(|s| s == id))?;
    Some(comps[..=last].to_vec())
}

/// The directory of cgroup `comps` in the first of `mounts` that holds it.
pub fn resolve(mounts: &[Mount], comps: &[&str]) -> Option<PathBuf> {
    mounts.iter().find_map(|m| {
        let root: Vec<&str> = m.root.split('/').filter(|c| !c.is_empty()).collect();
        let rest = comps.strip_prefix(root.as_slice())?;
        let mut p = m.point.clone();
        p.extend(rest);
        Some(p)
    })
}

fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a flat keyed file ("key value" lines).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| parse_u64(v)).flatten()
    })
}

/// v1 `blkio.throttle.io_service_bytes` ("MAJ:MIN Op bytes" lines, then
/// "Total bytes"): bytes read and written over all devices.
pub fn parse_blkio_v1(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, op, v] = f.as_slice() {
            let v = parse_u64(v).unwrap_or(0);
            if op.eq_ignore_ascii_case("read") {
                r = r.saturating_add(v);
            } else if op.eq_ignore_ascii_case("write") {
                w = w.saturating_add(v);
            }
        }
    }
    (r, w)
}

/// v2 `io.stat` ("MAJ:MIN rbytes=N wbytes=N rios=N …" lines): bytes read
/// and written over all devices.
pub fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for kv in text.lines().flat_map(|l| l.split_whitespace().skip(1)) {
        match kv.split_once('=') {
            Some(("rbytes", v)) => r = r.saturating_add(parse_u64(v).unwrap_or(0)),
            Some(("wbytes", v)) => w = w.saturating_add(parse_u64(v).unwrap_or(0)),
            _ => {}
        }
    }
    (r, w)
}

/// `/proc/PID/net/dev`: bytes received and sent by every interface but `lo`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0u64, 0u64);
    for l in text.lines().skip(2) {
        let Some((iface, rest)) = l.split_once(':') else { continue };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        rx = rx.saturating_add(f.first().and_then(|v| parse_u64(v)).unwrap_or(0));
        tx = tx.saturating_add(f.get(8).and_then(|v| parse_u64(v)).unwrap_or(0));
    }
    (rx, tx)
}

/// `MemTotal` of `/proc/meminfo`, bytes.
pub fn parse_memtotal(text: &str) -> Option<u64> {
    let l = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

// ---------------------------------------------------------------------------
// Reading

/// One container's counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    /// CPU time used, ns.
    pub cpu_ns: u64,
    /// When the CPU time was read.
    pub at: Instant,
    /// Memory in use without the inactive page cache, bytes.
    pub memory_bytes: u64,
    /// The memory limit, capped at the host's memory (None: unknown).
    pub memory_limit_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// What stays the same for every container of one call: the layout and
/// the host's memory.
#[derive(Clone, Debug)]
pub struct Host {
    pub roots: Roots,
    pub layout: Layout,
    pub mem_total: Option<u64>,
    /// tailops's own network namespace (device, inode).
    own_netns: Option<(u64, u64)>,
}

fn ino(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

impl Host {
    /// Reads the mount table; None when no cgroup hierarchy is mounted.
    pub fn load(roots: Roots) -> Option<Self> {
        let text = read_path(&roots.proc.join("self/mountinfo"), MAX_MOUNTINFO_BYTES).ok()?;
        let layout = parse_mountinfo(&text)?;
        let mem_total =
            read_path(&roots.proc.join("meminfo"), MAX_CGROUP_FILE_BYTES).ok().and_then(|t| parse_memtotal(&t));
        let own_netns = rustix::fs::stat(roots.proc.join("self/ns/net")).ok().map(|s| ino(&s));
        Some(Self { roots, layout, mem_total, own_netns })
    }

    /// Container `id`'s usage through its process `pid`, or None (a miss:
    /// ask the Engine API).
    pub fn read(&self, pid: i64, id: &str) -> Option<Usage> {
        if pid <= 0 || !is_full_id(id) {
            return None;
        }
        let dir = rustix::fs::open(
            self.roots.proc.join(pid.to_string()),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let cgroups = parse_proc_cgroup(&read_at(&dir, "cgroup").ok()?);
        let at = |mounts: &[Mount], path: Option<&String>| -> Option<PathBuf> {
            resolve(mounts, &container_cgroup(path?, id)?)
        };
        let read = |d: &Path, f: &str| read_path(&d.join(f), MAX_CGROUP_FILE_BYTES).ok();
        let (cpu_ns, now, usage, inactive, limit, pids, (br, bw)) = match &self.layout {
            Layout::V1 { cpuacct, memory, pids, blkio } => {
                let cpu_dir = at(cpuacct, cgroups.v1.get("cpuacct"))?;
                let mem_dir = at(memory, cgroups.v1.get("memory"))?;
                let cpu_ns = parse_u64(&read(&cpu_dir, "cpuacct.usage")?)?;
                let now = Instant::now();
                let usage = parse_u64(&read(&mem_dir, "memory.usage_in_bytes")?)?;
                let stat = read(&mem_dir, "memory.stat")?;
                let limit = read(&mem_dir, "memory.limit_in_bytes").and_then(|t| parse_u64(&t));
                let pids =
                    at(pids, cgroups.v1.get("pids")).and_then(|d| read(&d, "pids.current")).and_then(|t| parse_u64(&t));
                let io = at(blkio, cgroups.v1.get("blkio"))
                    .and_then(|d| read(&d, "blkio.throttle.io_service_bytes"))
                    .map(|t| parse_blkio_v1(&t))
                    .unwrap_or_default();
                (cpu_ns, now, usage, keyed(&stat, "total_inactive_file"), limit, pids, io)
            }
            Layout::V2 { unified } => {
                let d = at(unified, cgroups.v2.as_ref())?;
                let cpu_ns = keyed(&read(&d, "cpu.stat")?, "usage_usec")?.checked_mul(1000)?;
                let now = Instant::now();
                let usage = parse_u64(&read(&d, "memory.current")?)?;
                let stat = read(&d, "memory.stat")?;
                // "max" (no limit) does not parse: the host's memory below.
                let limit = read(&d, "memory.max").and_then(|t| parse_u64(&t));
                let pids = read(&d, "pids.current").and_then(|t| parse_u64(&t));
                let io = read(&d, "io.stat").map(|t| parse_io_stat(&t)).unwrap_or_default();
                (cpu_ns, now, usage, keyed(&stat, "inactive_file"), limit, pids, io)
            }
        };
        let shares_our_netns = self.own_netns.is_some()
            && rustix::fs::statat(&dir, "ns/net", AtFlags::empty()).ok().map(|s| ino(&s)) == self.own_netns;
        let (rx, tx) = if shares_our_netns {
            (0, 0)
        } else {
            read_at(&dir, "net/dev").map(|t| parse_net_dev(&t)).unwrap_or((0, 0))
        };
        // The process is still the one whose cgroup named the container (a
        // reused PID would have a new /proc entry; this one would be gone).
        read_at(&dir, "cgroup").ok()?;
        let memory_limit_bytes = match (limit, self.mem_total) {
            (Some(l), Some(t)) => Some(l.min(t)),
            (l, t) => l.or(t),
        };
        Some(Usage {
            cpu_ns,
            at: now,
            // The docker CLI's rule: without the inactive page cache when it is smaller.
            memory_bytes: match inactive {
                Some(i) if i < usage => usage - i,
                _ => usage,
            },
            memory_limit_bytes,
            pids,
            block_read_bytes: br,
            block_write_bytes: bw,
            net_rx_bytes: rx,
            net_tx_bytes: tx,
        })
    }
}

// ---------------------------------------------------------------------------
// Which PID leads to a container's cgroup

/// What is known about a container's cgroup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Known {
    /// Its init PID (from inspect), read through before.
    Pid(i64),
    /// Its cgroup could not be read at this moment: the Engine API until
    /// [`CGROUP_RETRY`] later.
    Api(Instant),
}

/// Per container id: its init PID or a recent miss.
#[derive(Default)]
pub struct Pids {
    known: Mutex<HashMap<String, Known>>,
}

impl Pids {
    /// What is known of `id`; a miss older than [`CGROUP_RETRY`] is forgotten.
    pub fn get(&self, id: &str, now: Instant) -> Option<Known> {
        let k = self.known.lock().ok()?.get(id).copied()?;
        match k {
            Known::Api(t) if now.saturating_duration_since(t) >= CGROUP_RETRY => None,
            k => Some(k),
        }
    }

    pub fn set(&self, id: &str, k: Known) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_KNOWN_PIDS && !known.contains_key(id) {
                known.clear();
            }
            known.insert(id.to_string(), k);
        }
    }

    pub fn forget(&self, id: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(id);
        }
    }

    /// Forgets containers not in `live` (called with the running set).
    pub fn retain(&self, live: &[&str]) {
        if let Ok(mut known) = self.known.lock() {
            known.retain(|id, _| live.contains(&id.as_str()));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.known.lock().map(|k| k.len()).unwrap_or(0)
    }
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
