//! The one reader of `/proc/PID/*`, for every caller (the sampler, the
//! process tools, the benchmarks): `stat`, `status`, `cmdline`, `comm`,
//! `cgroup`, the `exe` and `cwd` links and the count of open descriptors.
//!
//! Each file has a pure parser on its text (tested on fixed text) and a
//! reader that adds the path. Failures are named, never panics: a process
//! that does not exist, or exited while being read, is [`ProcError::Gone`];
//! a file the kernel wrote in a shape proc(5) does not describe is
//! [`ProcError::Format`]. Fields a file may lack (kernel threads have no
//! `Vm*` lines) are `Option`s.

use std::io;
use std::path::PathBuf;

/// `PF_KTHREAD` in the flags of `/proc/PID/stat`: the process is a kernel thread.
pub const PF_KTHREAD: u64 = 0x0020_0000;

/// Why a `/proc/PID` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// No such process: it never existed or exited while being read.
    #[error("no process {pid}")]
    Gone { pid: u32 },
    /// The file is there but reading it failed (permission, …).
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The text is not in the shape proc(5) describes.
    #[error("{path}: {problem}")]
    Format { path: String, problem: FormatError },
}

/// What is wrong with a file's text.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("no command name in parentheses")]
    NoComm,
    #[error("field {0} is missing")]
    Missing(&'static str),
    #[error("field {0} is not a number")]
    NotANumber(&'static str),
}

fn path(pid: u32, file: &str) -> String {
    format!("/proc/{pid}/{file}")
}

/// Turns an I/O error on `/proc/PID/…` into [`ProcError`]: ENOENT (no such
/// directory) and ESRCH (the process exited after the open) mean gone.
fn io_error(pid: u32, path: String, e: io::Error) -> ProcError {
    if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) {
        ProcError::Gone { pid }
    } else {
        ProcError::Io { path, source: e }
    }
}

fn read_text(pid: u32, file: &str) -> Result<String, ProcError> {
    let path = path(pid, file);
    std::fs::read_to_string(&path).map_err(|e| io_error(pid, path, e))
}

// ---------------------------------------------------------------------------
// /proc/PID/stat
// ---------------------------------------------------------------------------

/// The fields of `/proc/PID/stat` tailops uses; the numbers in brackets are
/// proc(5)'s field numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// (2) Command name as the kernel keeps it (at most 15 bytes); may hold
    /// spaces and parentheses.
    pub comm: String,
    /// (3) State letter: R, S, D, Z, T, t, X, I, …
    pub state: char,
    /// (9) Kernel flags (`PF_*`).
    pub flags: u64,
    /// (14) CPU time in user mode, clock ticks.
    pub utime_ticks: u64,
    /// (15) CPU time in kernel mode, clock ticks.
    pub stime_ticks: u64,
    /// (20) Threads in the process.
    pub num_threads: u32,
    /// (22) When the process started, in clock ticks since boot. With the
    /// pid it names one process for the life of the machine: a reused pid
    /// has a later start time (see `host::signal`).
    pub start_ticks: u64,
}

impl Stat {
    /// True for kernel threads (`PF_KTHREAD`).
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// True once the process has exited (zombie or dead).
    pub fn is_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// `/proc/PID/stat`: "pid (comm) state ppid … num_threads(20) …". The
/// command name may hold spaces and ')', so it runs from the first '(' to
/// the LAST ')'; the fields after it are split on whitespace.
pub fn parse_stat(text: &str) -> Result<Stat, FormatError> {
    let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
        return Err(FormatError::NoComm);
    };
    let comm = text.get(open + 1..close).ok_or(FormatError::NoComm)?;
    // Index i below is proc(5) field i + 3: state is 0, num_threads 17,
    // starttime 19.
    let after: Vec<&str> =
        text.get(close + 1..).ok_or(FormatError::NoComm)?.split_ascii_whitespace().take(20).collect();
    let field = |i: usize, name: &'static str| after.get(i).copied().ok_or(FormatError::Missing(name));
    let number = |i: usize, name: &'static str| -> Result<u64, FormatError> {
        field(i, name)?.parse().map_err(|_| FormatError::NotANumber(name))
    };
    Ok(Stat {
        comm: comm.to_owned(),
        state: field(0, "state")?.chars().next().ok_or(FormatError::Missing("state"))?,
        flags: number(6, "flags")?,
        utime_ticks: number(11, "utime")?,
        stime_ticks: number(12, "stime")?,
        num_threads: field(17, "num_threads")?.parse().map_err(|_| FormatError::NotANumber("num_threads"))?,
        start_ticks: number(19, "starttime")?,
    })
}

/// Reads and parses `/proc/PID/stat`.
pub fn stat(pid: u32) -> Result<Stat, ProcError> {
    let text = read_text(pid, "stat")?;
    parse_stat(&text).map_err(|problem| ProcError::Format { path: path(pid, "stat"), problem })
}

// ---------------------------------------------------------------------------
// /proc/PID/status
// ---------------------------------------------------------------------------

/// The fields of `/proc/PID/status` tailops uses, each `None` when the line
/// is absent or does not parse. Memory fields are in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `Name:` (the command name, non-printable bytes escaped by the kernel).
    pub name: Option<String>,
    /// `State:`, e.g. "S (sleeping)".
    pub state: Option<String>,
    /// `Tgid:`: the thread group (process) id; differs from the pid for a
    /// thread's /proc/PID entry.
    pub tgid: Option<i32>,
    /// `PPid:`.
    pub ppid: Option<i32>,
    /// Real uid (first number of `Uid:`).
    pub uid: Option<u32>,
    /// `Threads:`.
    pub threads: Option<u64>,
    /// `VmRSS:`, resident set.
    pub vm_rss: Option<u64>,
    /// `RssAnon:`, `RssFile:`, `RssShmem:`: the parts of the resident set.
    pub rss_anon: Option<u64>,
    pub rss_file: Option<u64>,
    pub rss_shmem: Option<u64>,
    /// `VmSize:`, virtual size.
    pub vm_size: Option<u64>,
    /// `VmSwap:`, swapped out.
    pub vm_swap: Option<u64>,
}

/// The trimmed value of the first line starting with `key` (colon included).
fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

/// A `… kB` value of `/proc/PID/status`, in bytes.
fn status_kb(text: &str, key: &str) -> Option<u64> {
    status_field(text, key)?.trim_end_matches("kB").trim().parse::<u64>().ok()?.checked_mul(1024)
}

/// `/proc/PID/status`: "Key:\tvalue" lines.
pub fn parse_status(text: &str) -> Status {
    let number = |key: &str| status_field(text, key).and_then(|v| v.parse().ok());
    Status {
        name: status_field(text, "Name:").map(str::to_owned),
        state: status_field(text, "State:").map(str::to_owned),
        tgid: number("Tgid:"),
        ppid: number("PPid:"),
        uid: status_field(text, "Uid:").and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()),
        threads: status_field(text, "Threads:").and_then(|v| v.parse().ok()),
        vm_rss: status_kb(text, "VmRSS:"),
        rss_anon: status_kb(text, "RssAnon:"),
        rss_file: status_kb(text, "RssFile:"),
        rss_shmem: status_kb(text, "RssShmem:"),
        vm_size: status_kb(text, "VmSize:"),
        vm_swap: status_kb(text, "VmSwap:"),
    }
}

/// Reads and parses `/proc/PID/status`.
pub fn status(pid: u32) -> Result<Status, ProcError> {
    read_text(pid, "status").map(|text| parse_status(&text))
}

// ---------------------------------------------------------------------------
// cmdline, comm, cgroup, links, descriptors
// ---------------------------------------------------------------------------

/// `/proc/PID/cmdline`: NUL-separated arguments; empty ones are dropped and
/// invalid UTF-8 is replaced.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// Reads `/proc/PID/cmdline` (empty for kernel threads and zombies).
pub fn cmdline(pid: u32) -> Result<Vec<String>, ProcError> {
    let path = path(pid, "cmdline");
    std::fs::read(&path).map(|b| parse_cmdline(&b)).map_err(|e| io_error(pid, path, e))
}

/// Reads `/proc/PID/comm`, without its newline.
pub fn comm(pid: u32) -> Result<String, ProcError> {
    read_text(pid, "comm").map(|c| c.strip_suffix('\n').unwrap_or(&c).to_owned())
}

/// `/proc/PID/cgroup` ("id:controllers:path" lines): the cgroup v2 path, or
/// the v1 paths joined by spaces.
pub fn parse_cgroup(text: &str) -> String {
    text.lines().map(|l| l.splitn(3, ':').nth(2).unwrap_or(l)).collect::<Vec<_>>().join(" ")
}

/// Reads `/proc/PID/cgroup` (see [`parse_cgroup`]).
pub fn cgroup(pid: u32) -> Result<String, ProcError> {
    read_text(pid, "cgroup").map(|t| parse_cgroup(&t))
}

/// The container id (64 hex digits) a cgroup path names, as Docker and
/// containerd name their scopes (`docker-<id>.scope`, `/docker/<id>`).
pub fn container_id(cgroup: &str) -> Option<String> {
    cgroup
        .split(['/', '-', '.', ':'])
        .find(|seg| seg.len() == 64 && seg.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
}

fn link(pid: u32, file: &str) -> Result<PathBuf, ProcError> {
    let path = path(pid, file);
    std::fs::read_link(&path).map_err(|e| io_error(pid, path, e))
}

/// The executable (`/proc/PID/exe`); unreadable for other users' processes
/// unless privileged.
pub fn exe(pid: u32) -> Result<PathBuf, ProcError> {
    link(pid, "exe")
}

/// The working directory (`/proc/PID/cwd`); same access rule as [`exe`].
pub fn cwd(pid: u32) -> Result<PathBuf, ProcError> {
    link(pid, "cwd")
}

/// Open file descriptors (entries of `/proc/PID/fd`); same access rule as [`exe`].
pub fn fd_count(pid: u32) -> Result<usize, ProcError> {
    let path = path(pid, "fd");
    std::fs::read_dir(&path).map(|d| d.count()).map_err(|e| io_error(pid, path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Far above any `pid_max` (at most 2^22).
    const NO_PID: u32 = i32::MAX as u32;

    fn me() -> u32 {
        std::process::id()
    }

    #[test]
    fn stat_comm_runs_to_the_last_paren() {
        let st = parse_stat("42 (a) b) c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 7 0 100 0 0").unwrap();
        assert_eq!((st.comm.as_str(), st.num_threads, st.start_ticks), ("a) b) c", 7, 100));
        assert_eq!((st.state, st.flags), ('S', 4_194_560));
        assert!(parse_stat("nonsense").is_err());
    }

    #[test]
    fn stat_fields_by_number() {
        let st = parse_stat("7 (kworker/0:1 x) I 2 0 0 0 -1 69238880 0 0 0 0 11 22 0 0 20 0 1 0 5 0 0").unwrap();
        assert_eq!(st.comm, "kworker/0:1 x");
        assert_eq!((st.state, st.utime_ticks, st.stime_ticks, st.num_threads, st.start_ticks), ('I', 11, 22, 1, 5));
        assert!(st.is_kernel_thread() && !st.is_exited());
        assert_eq!(parse_stat("1 (x) S 0 1 1 0 -1 0 0"), Err(FormatError::Missing("utime")));
        assert_eq!(parse_stat("1 (x) S 0 1 1 0 -1 abc 0 0 0 0 0 0 0 0 20 0 1"), Err(FormatError::NotANumber("flags")));
        assert_eq!(parse_stat("1 (x)"), Err(FormatError::Missing("state")));
        assert_eq!(parse_stat("1 )x( S"), Err(FormatError::NoComm));
        assert!(parse_stat("9 (z) Z 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9").unwrap().is_exited());
        assert_eq!(parse_stat("9 (z) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0"), Err(FormatError::Missing("starttime")));
        assert_eq!(
            parse_stat("9 (z) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x"),
            Err(FormatError::NotANumber("starttime"))
        );
    }

    #[test]
    fn reads_own_state_and_kthreadd_flags() {
        let (state, flags) = stat(me()).map(|s| (s.state, s.flags)).unwrap_or(('?', 0));
        assert!("RS".contains(state), "{state}");
        assert_eq!(flags & PF_KTHREAD, 0);
        assert!(matches!(stat(NO_PID), Err(ProcError::Gone { pid: NO_PID })));
    }

    #[test]
    fn status_fields() {
        let s = parse_status(
            "Name:\tmy proc\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t100\nNgid:\t0\nPid:\t101\nPPid:\t1\n\
             Uid:\t1000\t1000\t1000\t1000\nVmSize:\t   10240 kB\nVmRSS:\t    2048 kB\nRssAnon:\t    1024 kB\n\
             RssFile:\t     512 kB\nRssShmem:\t       0 kB\nVmSwap:\t       4 kB\nThreads:\t3\n",
        );
        assert_eq!(s.name.as_deref(), Some("my proc"));
        assert_eq!(s.state.as_deref(), Some("S (sleeping)"));
        assert_eq!((s.tgid, s.ppid, s.uid, s.threads), (Some(100), Some(1), Some(1000), Some(3)));
        assert_eq!((s.vm_size, s.vm_rss, s.vm_swap), (Some(10 << 20), Some(2 << 20), Some(4096)));
        assert_eq!((s.rss_anon, s.rss_file, s.rss_shmem), (Some(1 << 20), Some(512 << 10), Some(0)));
        // A kernel thread has no Vm* lines; absurd sizes do not overflow.
        let k = parse_status("Name:\tkthreadd\nVmRSS:\t99999999999999999 kB\n");
        assert_eq!((k.vm_rss, k.vm_size, k.tgid), (None, None, None));
        assert_eq!(parse_status(""), Status::default());
    }

    #[test]
    fn own_status_cmdline_comm() {
        let s = status(me()).unwrap();
        assert_eq!(s.tgid.map(i64::from), Some(i64::from(me())));
        assert!(s.vm_rss.is_some_and(|r| r > 0));
        assert_eq!(comm(me()).unwrap(), std::fs::read_to_string("/proc/self/comm").unwrap().trim_end());
        assert!(!cmdline(me()).unwrap().is_empty());
        assert!(fd_count(me()).unwrap() > 0);
        assert!(exe(me()).is_ok() && cwd(me()).is_ok());
        assert!(matches!(status(NO_PID), Err(ProcError::Gone { .. })));
        assert!(matches!(cmdline(NO_PID), Err(ProcError::Gone { .. })));
        assert!(matches!(exe(NO_PID), Err(ProcError::Gone { .. })));
    }

    #[test]
    fn cmdline_splits_on_nul() {
        assert_eq!(parse_cmdline(b"psql\0-h\0\0db\0"), ["psql", "-h", "db"]);
        assert!(parse_cmdline(b"").is_empty());
    }

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "a".repeat(64);
        assert_eq!(container_id(&format!("/system.slice/docker-{id}.scope")), Some(id.clone()));
        assert_eq!(container_id(&format!("/docker/{id}")), Some(id));
        assert_eq!(container_id("/user.slice/user-0.slice/session-1.scope"), None);
        assert_eq!(parse_cgroup("0::/system.slice/x.service\n"), "/system.slice/x.service");
        assert_eq!(parse_cgroup("12:cpu,cpuacct:/a\n11:memory:/b\n"), "/a /b");
    }
}
