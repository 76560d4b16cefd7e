//! Change watches for resource subscriptions, on inotify directly
//! (rustix's safe wrapper) rather than the `notify` crate: `notify` watches
//! *path strings*, and a path string inside a root is exactly what the
//! files domain never resolves itself. Here the watch is added on
//! `/proc/self/fd/N` of the file's parent directory as [`super::Root`]
//! opened it (beneath the root, no magic links), so the kernel watches that
//! inode, whatever the path names later.
//!
//! One watch per subscription, on the parent directory, filtered by the
//! file's name: a directory watch reports its children's writes
//! (`IN_MODIFY`, `IN_CLOSE_WRITE`, `IN_ATTRIB`) as well as their creation,
//! deletion and renames, so a file replaced by an atomic rename or rotated
//! keeps being watched under its name. One thread reads the inotify fd
//! (blocking reads; no unsafe fd registration with tokio) and wakes each
//! matching subscription's [`Notify`]: bursts of writes coalesce into one
//! wake-up.
//!
//! Bounded: at most [`MAX_PER_SESSION`] subscriptions per MCP session and
//! [`MAX_TOTAL`] in the process (each costs one inotify watch unless it
//! shares the directory).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::root::OpenDir;
use crate::mcp::contract::{ErrorCategory, ToolError};

/// Most resource subscriptions one MCP session holds.
pub const MAX_PER_SESSION: usize = 32;
/// Most resource subscriptions in the process.
pub const MAX_TOTAL: usize = 1024;

/// One subscription's signals: `changed` is woken on every change (wakes
/// coalesce), `ended` is cancelled when it is removed.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub changed: Arc<Notify>,
    pub ended: CancellationToken,
}

#[derive(Debug)]
struct Sub {
    wd: i32,
    name: String,
    signals: Subscription,
}

#[derive(Debug, Default)]
struct State {
    /// (session, uri) → subscription.
    subs: HashMap<(String, String), Sub>,
}

/// The process's inotify instance and its subscriptions.
#[derive(Debug)]
pub struct Watcher {
    fd: Arc<OwnedFd>,
    state: Arc<Mutex<State>>,
}

const DIR_MASK: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

fn limit(msg: String) -> ToolError {
    ToolError::new(ErrorCategory::Conflict, msg, "unsubscribe from resources you no longer need")
}

impl Watcher {
    /// Creates the inotify instance and starts its reader thread.
    pub fn start() -> Result<Watcher, String> {
        let fd = Arc::new(inotify::init(CreateFlags::CLOEXEC).map_err(|e| format!("inotify_init: {e}"))?);
        let state = Arc::new(Mutex::new(State::default()));
        let (fd2, state2) = (fd.clone(), state.clone());
        std::thread::Builder::new()
            .name("files-watch".into())
            .spawn(move || read_loop(&fd2, &state2))
            .map_err(|e| format!("cannot start the watch thread: {e}"))?;
        Ok(Watcher { fd, state })
    }

    /// Subscribes `(session, uri)` to changes of `name` in `dir` (the
    /// file's parent as the root resolved it). Subscribing again replaces
    /// the old subscription.
    pub fn subscribe(&self, session: &str, uri: &str, dir: &OpenDir, name: &str) -> Result<Subscription, ToolError> {
        let mut st = self.state.lock().map_err(|_| ToolError::internal("watch state poisoned"))?;
        let key = (session.to_string(), uri.to_string());
        let replacing = st.subs.contains_key(&key);
        if !replacing {
            let mine = st.subs.keys().filter(|(s, _)| s == session).count();
            if mine >= MAX_PER_SESSION {
                return Err(limit(format!(
                    "this session already has {mine} subscriptions (at most {MAX_PER_SESSION})"
                )));
            }
            if st.subs.len() >= MAX_TOTAL {
                return Err(limit(format!("the server holds {MAX_TOTAL} subscriptions, its limit")));
            }
        }
        let path = format!("/proc/self/fd/{}", dir.fd.as_raw_fd());
        let wd = inotify::add_watch(self.fd.as_fd(), path.as_str(), DIR_MASK).map_err(|e| {
            ToolError::unavailable(
                format!("cannot watch for changes: {e}"),
                "the host's inotify limits (fs.inotify.max_user_watches) may be reached",
            )
        })?;
        let signals = Subscription { changed: Arc::new(Notify::new()), ended: CancellationToken::new() };
        if let Some(old) = st.subs.insert(key, Sub { wd, name: name.to_string(), signals: signals.clone() }) {
            old.signals.ended.cancel();
            if old.wd != wd {
                self.release(&st, old.wd);
            }
        }
        Ok(signals)
    }

    /// Removes `(session, uri)`; false when there was none.
    pub fn unsubscribe(&self, session: &str, uri: &str) -> bool {
        let Ok(mut st) = self.state.lock() else { return false };
        let Some(sub) = st.subs.remove(&(session.to_string(), uri.to_string())) else { return false };
        sub.signals.ended.cancel();
        self.release(&st, sub.wd);
        true
    }

    /// Removes every subscription of a session (its client went away).
    pub fn end_session(&self, session: &str) {
        let Ok(mut st) = self.state.lock() else { return };
        let keys: Vec<_> = st.subs.keys().filter(|(s, _)| s == session).cloned().collect();
        for k in keys {
            if let Some(sub) = st.subs.remove(&k) {
                sub.signals.ended.cancel();
                self.release(&st, sub.wd);
            }
        }
    }

    /// Subscriptions held (all sessions).
    pub fn count(&self) -> usize {
        self.state.lock().map(|s| s.subs.len()).unwrap_or(0)
    }

    /// Drops the kernel watch once no subscription uses it.
    fn release(&self, st: &State, wd: i32) {
        if !st.subs.values().any(|s| s.wd == wd) {
            let _ = inotify::remove_watch(self.fd.as_fd(), wd);
        }
    }
}

fn read_loop(fd: &OwnedFd, state: &Mutex<State>) {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    loop {
        let ev = match reader.next() {
            Ok(ev) => ev,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "inotify read failed; resource subscriptions stop");
                return;
            }
        };
        let flags = ev.events();
        let name = ev.file_name().and_then(|n| n.to_str().ok()).map(str::to_string);
        let wd = ev.wd();
        let Ok(mut st) = state.lock() else { return };
        let whole_dir = flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::IGNORED);
        for sub in st.subs.values() {
            if sub.wd == wd && (whole_dir || name.as_deref() == Some(sub.name.as_str())) {
                sub.signals.changed.notify_one();
            }
        }
        if flags.contains(ReadFlags::IGNORED) {
            // The directory is gone: its subscriptions end.
            st.subs.retain(|_, s| {
                let keep = s.wd != wd;
                if !keep {
                    s.signals.ended.cancel();
                }
                keep
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::files::config::{DEFAULT_DENY, Mode, RootConfig};
    use crate::host::files::{RelPath, Root};
    use std::time::Duration;

    fn root(dir: &std::path::Path) -> Root {
        let cfg = RootConfig {
            name: "r".into(),
            path: dir.to_path_buf(),
            mode: Mode::Read,
            include: vec![],
            exclude: vec![],
            deny: None,
            allow_hard_links: false,
            allow_recursive_delete: false,
        };
        let deny: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
        Root::open(&cfg, &deny).expect("root")
    }

    async fn woken(s: &Subscription) -> bool {
        // A give-up bound: the wake-up comes at once unless a loaded box delays it.
        tokio::time::timeout(Duration::from_secs(30), s.changed.notified()).await.is_ok()
    }

    #[tokio::test]
    async fn changes_to_the_name_wake_its_subscription_only() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(tmp.path().join("d")).expect("mkdir");
        std::fs::write(tmp.path().join("d/a.log"), "1\n").expect("w");
        std::fs::write(tmp.path().join("d/b.log"), "1\n").expect("w");
        let r = root(tmp.path());
        let w = Watcher::start().expect("watcher");
        let dir = r.open_dir(&RelPath::parse("d").expect("rel")).expect("dir");
        let a = w.subscribe("s1", "file://r/d/a.log", &dir, "a.log").expect("sub");
        let b = w.subscribe("s1", "file://r/d/b.log", &dir, "b.log").expect("sub");
        std::fs::write(tmp.path().join("d/a.log"), "2\n").expect("w");
        assert!(woken(&a).await, "a written");
        // Replaced by rename (an atomic write): still seen.
        std::fs::write(tmp.path().join("d/.a.tmp"), "3\n").expect("w");
        std::fs::rename(tmp.path().join("d/.a.tmp"), tmp.path().join("d/a.log")).expect("mv");
        assert!(woken(&a).await, "a replaced");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), b.changed.notified()).await.is_err(),
            "b was not touched"
        );
        assert_eq!(w.count(), 2);
        assert!(w.unsubscribe("s1", "file://r/d/a.log"));
        assert!(a.ended.is_cancelled());
        assert!(!w.unsubscribe("s1", "file://r/d/a.log"), "only once");
        w.end_session("s1");
        assert!(b.ended.is_cancelled() && w.count() == 0);
    }

    #[tokio::test]
    async fn caps_per_session_and_resubscribe_replaces() {
        let tmp = tempfile::tempdir().expect("tmp");
        let r = root(tmp.path());
        let w = Watcher::start().expect("watcher");
        let dir = r.open_dir(&RelPath::default()).expect("dir");
        for i in 0..MAX_PER_SESSION {
            w.subscribe("s", &format!("u{i}"), &dir, "x").expect("under the cap");
        }
        let e = w.subscribe("s", "one-more", &dir, "x").expect_err("at the cap");
        assert_eq!(e.category, ErrorCategory::Conflict);
        let old = w.subscribe("s", "u0", &dir, "x").expect("resubscribing is not a new one");
        assert!(!old.ended.is_cancelled());
        w.subscribe("other", "u0", &dir, "x").expect("another session has its own cap");
        assert_eq!(w.count(), MAX_PER_SESSION + 1);
    }
}
