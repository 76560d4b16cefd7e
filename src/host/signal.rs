//! Signalling one process safely: the checks `process_signal` makes before
//! it sends anything, and the pidfd it sends through.
//!
//! Why each step:
//!
//! - `kill(2)` on a THREAD id signals the thread's whole process (its
//!   thread group). Comparing only the bare pid with 1 and with our own pid
//!   let a KILL to a tailops worker thread kill tailops, and left every
//!   thread of PID 1 reachable (SIGINT to systemd is a reboot). So the
//!   target is resolved to its thread group (`Tgid:` in /proc/PID/status)
//!   and must BE one: a thread id is refused, naming the process it belongs
//!   to, and a thread of a protected process is refused as that process.
//! - Protected processes ([`Protected`]) are refused whatever id names them.
//! - Between the check and the signal the process may exit and its pid be
//!   given to a new process. The signal therefore goes through a pidfd,
//!   which names one process and never a successor: it is opened after the
//!   checks, and then /proc/PID/stat must still show the start time that
//!   was checked ([`send`]); otherwise nothing is sent.
//! - The same pidfd becomes readable when the process exits, which is how
//!   [`wait_exit`] waits: no /proc polling, no confusion with a successor.
//!
//! All of it is safe Rust: rustix wraps `pidfd_open`, `pidfd_send_signal`
//! and `poll`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::host::procfs::{self, ProcError, Stat};
use crate::mcp::contract::{ErrorCategory, ToolError};

/// Every pid is below this: the kernel's `PID_MAX_LIMIT` on 64-bit (2^22),
/// the most `/proc/sys/kernel/pid_max` can be set to. A larger pid (or
/// `i32::MAX`) is a mistake, not a process that has exited.
pub const PID_LIMIT: i32 = 4_194_304;

const LIST_HINT: &str = "list processes (process_list) to find the pid";

/// Why a process is never signalled, whatever the signal and whichever of
/// its thread ids names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protected {
    /// PID 1: INT reboots a systemd host, TERM re-executes it, and when it
    /// exits the kernel panics.
    Init,
    /// tailops itself: a caller must not be able to switch off the audited
    /// server it is talking to (the service manager does that).
    Tailops,
    /// The direct parent of tailops: the supervisor or shell that runs it
    /// (`systemd --user`, a container's init, s6/runit `supervise`, a login
    /// shell). Signalling it stops tailops indirectly (a shell's HUP reaches
    /// its jobs, a user manager takes its services down) or stops what would
    /// restart it. PID 1 as parent is already [`Protected::Init`]; further
    /// ancestors (sshd, terminals) are ordinary processes.
    Parent,
    /// A kernel thread (`PF_KTHREAD`): not a user's process to manage.
    KernelThread,
}

impl Protected {
    fn describe(self) -> &'static str {
        match self {
            Protected::Init => "PID 1 (init)",
            Protected::Tailops => "tailops itself",
            Protected::Parent => "the parent of tailops (the supervisor or shell that runs it)",
            Protected::KernelThread => "a kernel thread",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Protected::Init => "signal the service's own process instead, or manage it with systemctl",
            Protected::Tailops => "stop or restart tailops through its service manager (systemctl)",
            Protected::Parent => "signal it from its own service manager or terminal, not through tailops",
            Protected::KernelThread => "kernel threads are not signalled; find the user process instead",
        }
    }
}

/// The pids that are protected at the time of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guard {
    /// This server's pid.
    pub own: u32,
    /// Our direct parent (None when it lies outside our pid namespace).
    pub parent: Option<u32>,
}

impl Guard {
    /// This process and its parent now. Read per call, not at start: when
    /// our parent exits we are re-parented (to init or a subreaper) and the
    /// new parent is the supervisor to protect.
    pub fn current() -> Self {
        let parent = rustix::process::getppid().and_then(|p| u32::try_from(p.as_raw_pid()).ok());
        Guard { own: std::process::id(), parent }
    }

    /// Why process `pid` (a thread-group id, with its `stat`) is protected.
    pub fn protection(&self, pid: u32, stat: &Stat) -> Option<Protected> {
        if pid == 1 {
            Some(Protected::Init)
        } else if pid == self.own {
            Some(Protected::Tailops)
        } else if Some(pid) == self.parent {
            Some(Protected::Parent)
        } else if stat.is_kernel_thread() {
            Some(Protected::KernelThread)
        } else {
            None
        }
    }
}

/// A process that passed every check of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The process (thread-group) id.
    pub pid: u32,
    /// Command name (/proc/PID/comm).
    pub name: String,
    /// Start time when checked (/proc/PID/stat field 22, clock ticks since
    /// boot): what [`send`] compares to be sure it signals this process.
    pub start_ticks: u64,
}

fn proc_error(pid: u32, e: ProcError) -> ToolError {
    match e {
        ProcError::Gone { .. } => ToolError::not_found(format!("no process {pid}"), LIST_HINT),
        e => ToolError::unavailable(
            format!("cannot check process {pid}: {e}"),
            "tailops reads /proc/PID/status and /proc/PID/stat before it signals a process",
        ),
    }
}

/// Checks that `pid` names a process (not a thread) that is not
/// [`Protected`] under `guard`. Nothing is signalled here.
pub fn check(pid: i32, guard: &Guard) -> Result<Target, ToolError> {
    let Some(pid) = u32::try_from(pid).ok().filter(|p| (1..PID_LIMIT.unsigned_abs()).contains(p)) else {
        return Err(ToolError::invalid_input(
            format!("pid {pid} is out of range: process ids are 1 to {}", PID_LIMIT - 1),
            LIST_HINT,
        ));
    };
    // Decided before reading /proc: no answer from /proc can unprotect init.
    if pid == 1 {
        return Err(refused(pid, Protected::Init));
    }
    let status = procfs::status(pid).map_err(|e| proc_error(pid, e))?;
    let Some(tgid) = status.tgid.and_then(|t| u32::try_from(t).ok()).filter(|t| *t > 0) else {
        return Err(ToolError::unavailable(
            format!("cannot tell which process {pid} belongs to (no Tgid in its status)"),
            "tailops signals only what it can identify; try again",
        ));
    };
    // The process the id belongs to: itself, or the process of a thread.
    let stat = procfs::stat(tgid).map_err(|e| proc_error(tgid, e))?;
    if tgid != pid {
        return Err(match guard.protection(tgid, &stat) {
            Some(p) => ToolError::permission_denied(
                format!(
                    "refusing to signal {pid}: it is a thread of {} (pid {tgid}), and a signal to a thread id \
                     reaches its whole process",
                    p.describe()
                ),
                p.hint(),
            ),
            None => ToolError::invalid_input(
                format!(
                    "{pid} is a thread of process {tgid} ({}), not a process: a signal to a thread id reaches \
                     the whole process",
                    stat.comm
                ),
                format!("to signal that process, pass pid {tgid}"),
            ),
        });
    }
    if let Some(p) = guard.protection(pid, &stat) {
        return Err(refused(pid, p));
    }
    let name = procfs::comm(pid).unwrap_or_else(|_| stat.comm.clone());
    Ok(Target { pid, name, start_ticks: stat.start_ticks })
}

fn refused(pid: u32, p: Protected) -> ToolError {
    ToolError::permission_denied(format!("refusing to signal pid {pid}: it is {}", p.describe()), p.hint())
}

/// Sends `sig` to process `pid` only if it is still the process that
/// started at `expected_start` (see [`Target::start_ticks`]); returns the
/// pidfd, for [`wait_exit`].
///
/// The pidfd names whichever process held `pid` when it was opened. While
/// that process exists its pid cannot be reused, so if /proc/PID still
/// shows the start time that was checked, the pidfd names the checked
/// process. If the pid was reused before the open, the start time differs
/// and nothing is sent (`conflict`); if the opened process exits after the
/// re-check, the signal cannot reach anyone else (ESRCH, `not_found`).
/// `pidfd_open` also refuses a thread id that is not a thread-group leader.
pub fn send(pid: u32, expected_start: u64, sig: Signal) -> Result<OwnedFd, ToolError> {
    let exited = || ToolError::not_found(format!("process {pid} exited before it was signalled"), LIST_HINT);
    let raw = i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or_else(|| {
        ToolError::invalid_input(format!("pid {pid} is out of range: process ids are 1 to {}", PID_LIMIT - 1), "")
    })?;
    let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty()).map_err(|e| match e {
        Errno::SRCH => exited(),
        Errno::INVAL => ToolError::invalid_input(format!("{pid} is not a process id (it names a thread)"), LIST_HINT),
        Errno::NOSYS => ToolError::unavailable(
            "this kernel has no pidfd_open",
            "process_signal needs Linux 5.3 or newer to signal without racing pid reuse",
        ),
        e => ToolError::internal(format!("pidfd_open({pid}) failed: {e}")),
    })?;
    match procfs::stat(pid) {
        Ok(now) if now.start_ticks == expected_start => {}
        Ok(_) => {
            return Err(ToolError::new(
                ErrorCategory::Conflict,
                format!(
                    "the process changed: pid {pid} now names a process other than the one checked (its pid was \
                     reused); nothing was sent"
                ),
                "list processes again and signal the current pid",
            ));
        }
        Err(ProcError::Gone { .. }) => return Err(exited()),
        Err(e) => return Err(proc_error(pid, e)),
    }
    rustix::process::pidfd_send_signal(&pidfd, sig).map_err(|e| match e {
        Errno::SRCH => exited(),
        Errno::PERM => ToolError::permission_denied(
            format!("not permitted to signal process {pid}"),
            "tailops runs as a user that does not own that process",
        ),
        e => ToolError::internal(format!("pidfd_send_signal({pid}) failed: {e}")),
    })?;
    Ok(pidfd)
}

/// True once the process behind `pidfd` has exited (a zombie or reaped):
/// a pidfd polls readable then. Never blocks.
pub fn has_exited(pidfd: impl AsFd) -> bool {
    poll_exit(pidfd.as_fd(), Duration::ZERO)
}

/// poll(2) on the pidfd for up to `wait` (restarted after a signal
/// interrupts it, with the time left).
fn poll_exit(pidfd: BorrowedFd<'_>, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(timeout) = Timespec::try_from(left) else { return false };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Err(Errno::INTR) => continue,
            Err(_) => return false,
            Ok(n) => return n > 0 && fds[0].revents().contains(PollFlags::IN),
        }
    }
}

/// Waits up to `wait` for the process behind `pidfd` to exit; true if it
/// did. One poll(2) on the pidfd, on the blocking pool: it returns the
/// moment the process exits (no /proc polling). tokio's `AsyncFd` would
/// avoid the thread, but registering a foreign fd with it is now an
/// `unsafe` API, which tailops allows only in `tailnet/`; the thread is
/// held at most `wait` (≤ 10 s), also when the caller goes away.
pub async fn wait_exit(pidfd: OwnedFd, wait: Duration) -> bool {
    tokio::task::spawn_blocking(move || poll_exit(pidfd.as_fd(), wait)).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command};

    use super::*;

    struct Kid(Child);

    impl Kid {
        fn sleep() -> Self {
            Kid(Command::new("sleep").arg("300").spawn().expect("spawn sleep"))
        }
        fn pid(&self) -> u32 {
            self.0.id()
        }
        fn alive(&self) -> bool {
            procfs::stat(self.pid()).is_ok_and(|s| !s.is_exited())
        }
    }

    impl Drop for Kid {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn pid(p: u32) -> i32 {
        i32::try_from(p).expect("pid")
    }

    /// A guard under which no real process is protected but init and
    /// kernel threads.
    const NOBODY: Guard = Guard { own: 0, parent: None };

    fn category(r: Result<Target, ToolError>) -> String {
        r.map_or_else(|e| format!("{} {}", e.category.as_str(), e.message), |t| format!("ok {}", t.pid))
    }

    #[test]
    fn pids_out_of_range_are_invalid_input() {
        for bad in [0, -1, i32::MIN, i32::MAX, PID_LIMIT] {
            let e = check(bad, &Guard::current()).expect_err("refused");
            assert_eq!(e.category, ErrorCategory::InvalidInput, "{bad}: {e:?}");
            assert!(e.message.contains("out of range"), "{e:?}");
        }
        // The largest possible pid is in range; it is just not running.
        let e = check(PID_LIMIT - 1, &Guard::current()).expect_err("no such process");
        assert_eq!(e.category, ErrorCategory::NotFound, "{e:?}");
    }

    #[test]
    fn init_self_parent_and_kernel_threads_are_protected() {
        let e = check(1, &NOBODY).expect_err("init");
        assert_eq!((e.category, e.message.contains("PID 1")), (ErrorCategory::PermissionDenied, true), "{e:?}");
        let kid = Kid::sleep();
        assert!(category(check(pid(kid.pid()), &NOBODY)).starts_with("ok"));
        let as_self = Guard { own: kid.pid(), parent: None };
        assert!(category(check(pid(kid.pid()), &as_self)).contains("permission_denied refusing to signal"));
        assert!(category(check(pid(kid.pid()), &as_self)).contains("tailops itself"));
        let as_parent = Guard { own: 0, parent: Some(kid.pid()) };
        assert!(category(check(pid(kid.pid()), &as_parent)).contains("parent of tailops"));
        // This test process's own parent, as the server sees its own.
        let me = Guard::current();
        if let Some(p) = me.parent.filter(|p| *p != 1) {
            assert!(category(check(pid(p), &me)).contains("parent of tailops"));
        }
        if procfs::stat(2).is_ok_and(|s| s.is_kernel_thread()) {
            assert!(
                category(check(2, &NOBODY))
                    .contains("permission_denied refusing to signal pid 2: it is a kernel thread")
            );
        }
        assert!(kid.alive(), "checks never signal");
    }

    /// Our own threads: refused as threads of tailops when we are tailops,
    /// as threads of an ordinary process (naming it) otherwise.
    #[test]
    fn thread_ids_resolve_to_their_process() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let me = std::process::id();
        let tids: Vec<u32> = std::fs::read_dir("/proc/self/task")
            .expect("task")
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .filter(|t| *t != me)
            .collect();
        assert!(!tids.is_empty());
        for tid in tids {
            let Ok(t) = i32::try_from(tid) else { continue };
            match check(t, &Guard::current()) {
                Err(e) if e.category == ErrorCategory::NotFound => continue, // a test thread ended
                Err(e) => {
                    assert_eq!(e.category, ErrorCategory::PermissionDenied, "{e:?}");
                    assert!(e.message.contains(&format!("thread of tailops itself (pid {me})")), "{e:?}");
                }
                Ok(t) => panic!("thread {} accepted", t.pid),
            }
            match check(t, &NOBODY) {
                Err(e) if e.category == ErrorCategory::NotFound => continue,
                Err(e) => {
                    assert_eq!(e.category, ErrorCategory::InvalidInput, "{e:?}");
                    assert!(e.message.contains(&format!("thread of process {me}")), "{e:?}");
                    assert_eq!(e.hint, format!("to signal that process, pass pid {me}"));
                }
                Ok(t) => panic!("thread {} accepted", t.pid),
            }
        }
        let _ = tx.send(());
        let _ = worker.join();
    }

    /// The pid-reuse guard: a start time other than the process's own (as
    /// after a reuse between check and open) is refused and nothing sent.
    #[tokio::test]
    async fn a_changed_start_time_is_a_conflict_and_nothing_is_sent() {
        let kid = Kid::sleep();
        let target = check(pid(kid.pid()), &NOBODY).expect("checkable");
        for wrong in [target.start_ticks.wrapping_sub(1), target.start_ticks.wrapping_add(1), 0] {
            let e = send(target.pid, wrong, Signal::KILL).expect_err("conflict");
            assert_eq!(e.category, ErrorCategory::Conflict, "{e:?}");
            assert!(e.message.contains("the process changed") && e.message.contains("nothing was sent"), "{e:?}");
        }
        assert!(kid.alive(), "a refused send signals nothing");
        let pidfd = send(target.pid, target.start_ticks, Signal::TERM).expect("sent");
        // A give-up bound (the wait returns at the exit): 10 s, the most
        // wait_exit holds, not 5 s, which a loaded box can outlast.
        assert!(wait_exit(pidfd, Duration::from_secs(10)).await, "TERM ends sleep");
    }

    #[tokio::test]
    async fn gone_processes_and_waits() {
        let mut kid = Kid::sleep();
        let target = check(pid(kid.pid()), &NOBODY).expect("checkable");
        // STOP does not end it: the wait runs out.
        let pidfd = send(target.pid, target.start_ticks, Signal::STOP).expect("sent");
        let t0 = std::time::Instant::now();
        assert!(!wait_exit(pidfd, Duration::from_millis(200)).await);
        assert!(t0.elapsed() >= Duration::from_millis(200));
        // A zero wait still reports an exit that already happened.
        let pidfd = send(target.pid, target.start_ticks, Signal::KILL).expect("sent");
        // Wait (bounded) until it is a zombie, read in /proc: a fixed 100 ms
        // sleep assumed the kill had taken effect, which a loaded box can
        // outlast (the killed process must be scheduled to exit).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while kid.alive() {
            assert!(std::time::Instant::now() < deadline, "SIGKILL did not end the process");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(wait_exit(pidfd, Duration::ZERO).await, "zombie counts as exited");
        // Reaped: the pid no longer names anything.
        let _ = kid.0.wait();
        let e = send(target.pid, target.start_ticks, Signal::KILL).expect_err("gone");
        assert_eq!(e.category, ErrorCategory::NotFound, "{e:?}");
    }
}
