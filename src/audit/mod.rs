//! Append-only, hash-chained JSONL audit log.
//!
//! - [`format`]: [`Event`] (what a caller records), [`Record`] (one line),
//!   the canonical serialization and the SHA-256 chain — the format an
//!   external verifier needs is documented there.
//! - [`writer`]: the writer thread behind [`AuditLog`] (queue, fsync policy,
//!   health, resuming the chain after a restart or a crash).
//! - [`rotate`]: file names and the shift of rotated files.
//! - [`verify`](mod@verify): `tailops audit verify`.
//!
//! This file holds the handle ([`AuditLog`]), the record kinds ([`kind`])
//! and the `[audit]` settings ([`AuditConfig`]). Arguments are redacted with
//! [`crate::redact`] before anything touches disk.

mod format;
mod rotate;
mod verify;
mod writer;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};

use serde::Deserialize;

pub use format::{Event, GENESIS_PREV, MAX_FIELD_BYTES, MAX_LINE_BYTES, Record};
pub use rotate::rotated_files;
pub use verify::{Problem, VerifyReport, verify};
pub use writer::RESUME_SCAN_BYTES;
use writer::{Msg, Shared, Writer};

/// Record kinds.
pub mod kind {
    /// An authorization decision (allow/deny) for a request or tool call.
    pub const DECISION: &str = "decision";
    /// A finished tool call (outcome, error category, duration).
    pub const TOOL_CALL: &str = "tool_call";
    /// Something suspicious, e.g. repeated auth failures, or dropped records.
    pub const ANOMALY: &str = "anomaly";
    /// An alert changed state.
    pub const ALERT: &str = "alert";
    /// Server start/stop, log rotation, recovery.
    pub const LIFECYCLE: &str = "lifecycle";
}

/// When the writer calls `fsync` (`fdatasync`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// After every record.
    Always,
    /// At most once per [`AuditConfig::fsync_interval_ms`] (and when idle
    /// after the interval, on [`AuditLog::flush`], on rotation and on close).
    Interval,
    /// Never (the OS decides). Records still go to the kernel immediately.
    Never,
}

/// `[audit]`: the hash-chained JSONL audit log.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Log file; default `<state_dir>/audit.jsonl` (filled in by
    /// `Config::audit_path`; [`AuditLog::start`] needs it set). Rotated files
    /// are `<path>.1`, `<path>.2`, …
    pub path: Option<PathBuf>,
    /// `always` (fsync each record), `interval`, or `never`.
    pub fsync: FsyncMode,
    pub fsync_interval_ms: u64,
    /// Rotate before a record would make the current file larger than this.
    pub max_bytes: u64,
    /// How many rotated files (`.1` ..= `.keep`) to keep; `0` deletes the old
    /// file on rotation.
    pub keep: usize,
    /// Capacity of the queue between callers and the writer (at least 1):
    /// records queued for the writer before `record()` refuses.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: None,
            fsync: FsyncMode::Interval,
            fsync_interval_ms: 1000,
            max_bytes: 64 * 1024 * 1024,
            keep: 10,
            queue: 4096,
        }
    }
}

/// Audit log errors.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit queue is full: record dropped")]
    QueueFull,
    #[error("audit log is closed")]
    Closed,
    #[error("invalid audit config: {0}")]
    Config(String),
    #[error("audit log I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("audit log unhealthy: {0}")]
    Unhealthy(String),
}

struct Inner {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

/// Handle to the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("enabled", &self.inner.is_some()).field("healthy", &self.is_healthy()).finish()
    }
}

impl AuditLog {
    /// Opens or creates the log file (mode 0600, parent directories 0700),
    /// resumes the chain from its last valid record (writing a `recovered`
    /// record if the file ends in a broken line) and starts the writer.
    pub async fn start(cfg: AuditConfig) -> Result<(AuditLog, tokio::task::JoinHandle<()>), AuditError> {
        if cfg.queue == 0 {
            return Err(AuditError::Config("queue must be at least 1".into()));
        }
        let Some(path) = cfg.path.clone() else {
            return Err(AuditError::Config("audit path is not set".into()));
        };
        if path.file_name().is_none() {
            return Err(AuditError::Config(format!("audit path {} has no file name", path.display())));
        }
        let shared = Arc::new(Shared::new());
        let writer_shared = shared.clone();
        let queue = cfg.queue;
        let writer = tokio::task::spawn_blocking(move || Writer::open(path, cfg, writer_shared))
            .await
            .map_err(|e| AuditError::Io(io::Error::other(e.to_string())))??;
        let (tx, rx) = std::sync::mpsc::sync_channel(queue);
        let handle = tokio::task::spawn_blocking(move || writer.run(rx));
        Ok((AuditLog { inner: Some(Arc::new(Inner { tx, shared })) }, handle))
    }

    /// A log that drops every record and is always healthy.
    pub fn disabled() -> AuditLog {
        AuditLog { inner: None }
    }

    /// Queues one record; never blocks. Fails at once (and marks the log
    /// unhealthy) when the queue is full or the writer has stopped. `args`
    /// and `detail` are passed through
    /// [`redact_args`](crate::redact::redact_args) before anything touches
    /// disk.
    pub fn record(&self, ev: Event) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        match inner.tx.try_send(Msg::Record(Box::new(ev), format::now_rfc3339())) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                inner.shared.dropped_queue.fetch_add(1, Ordering::SeqCst);
                inner.shared.set_error("audit queue full: records are being dropped".into());
                Err(AuditError::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => {
                inner.shared.set_error("audit writer has stopped".into());
                Err(AuditError::Closed)
            }
        }
    }

    /// Whether the last write succeeded and nothing was dropped since.
    pub fn is_healthy(&self) -> bool {
        match &self.inner {
            None => true,
            Some(inner) => inner.shared.healthy.load(Ordering::SeqCst),
        }
    }

    /// The most recent error (kept after recovery; use [`Self::is_healthy`]
    /// for the current state).
    pub fn last_error(&self) -> Option<String> {
        self.inner.as_ref().and_then(|i| i.shared.last_error())
    }

    /// Waits until everything queued so far is written (and fsynced unless the
    /// policy is [`FsyncMode::Never`]). Errors if the log is unhealthy
    /// afterwards.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        send_control(&inner.tx, Msg::Flush(ack)).await?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuditError::Unhealthy(e)),
            Err(_) => Err(AuditError::Closed),
        }
    }

    /// Flushes and stops the writer. Other handles fail with
    /// [`AuditError::Closed`] afterwards.
    pub async fn close(self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        if send_control(&inner.tx, Msg::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Sends a control message, waiting for room in the queue (off the runtime
/// threads) if it is full.
async fn send_control(tx: &SyncSender<Msg>, msg: Msg) -> Result<(), AuditError> {
    match tx.try_send(msg) {
        Ok(()) => Ok(()),
        Err(TrySendError::Disconnected(_)) => Err(AuditError::Closed),
        Err(TrySendError::Full(msg)) => {
            let tx = tx.clone();
            tokio::task::spawn_blocking(move || tx.send(msg))
                .await
                .map_err(|_| AuditError::Closed)?
                .map_err(|_| AuditError::Closed)
        }
    }
}

/// Helpers shared by the tests of this folder.
#[cfg(test)]
mod test_support {
    use std::path::{Path, PathBuf};

    use serde_json::json;

    use super::{AuditConfig, AuditLog, Event, FsyncMode, Record, kind};

    pub fn cfg(dir: &Path) -> AuditConfig {
        AuditConfig { path: Some(dir.join("audit.jsonl")), fsync: FsyncMode::Never, ..AuditConfig::default() }
    }

    /// The file of a config made by [`cfg`].
    pub fn path_of(c: &AuditConfig) -> PathBuf {
        c.path.clone().expect("test config has a path")
    }

    pub fn call(i: u64) -> Event {
        Event {
            kind: kind::TOOL_CALL.into(),
            principal: Some("user:alice@example.com".into()),
            node: Some("alice-laptop".into()),
            source: Some("100.64.0.2:5123".into()),
            session: Some("s-1".into()),
            tool: Some(format!("tool-{i}")),
            args: Some(json!({"n": i, "password": "hunter2"})),
            decision: Some("allow".into()),
            outcome: Some("ok".into()),
            error_category: None,
            duration_ms: Some(i),
            detail: None,
        }
    }

    pub async fn write_n(cfg: AuditConfig, from: u64, n: u64) {
        let (log, task) = AuditLog::start(cfg).await.expect("start");
        for i in from..from + n {
            log.record(call(i)).expect("record");
        }
        log.close().await;
        task.await.expect("writer task");
    }

    pub fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).expect("read").lines().map(str::to_string).collect()
    }

    pub fn records(path: &Path) -> Vec<Record> {
        lines(path).iter().map(|l| serde_json::from_str(l).expect("record")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{call, cfg};
    use super::*;

    #[tokio::test]
    async fn disabled_log_is_a_healthy_no_op() {
        let log = AuditLog::disabled();
        log.record(call(1)).expect("record");
        assert!(log.is_healthy());
        assert_eq!(log.last_error(), None);
        log.flush().await.expect("flush");
        log.close().await;
    }

    #[test]
    fn config_section_keys_and_defaults() {
        let c: AuditConfig = toml::from_str(
            "path = \"/x/a.jsonl\"\nfsync = \"always\"\nfsync_interval_ms = 5\nmax_bytes = 8192\nkeep = 2\nqueue = 7\n",
        )
        .expect("parse");
        let want = AuditConfig {
            path: Some(PathBuf::from("/x/a.jsonl")),
            fsync: FsyncMode::Always,
            fsync_interval_ms: 5,
            max_bytes: 8192,
            keep: 2,
            queue: 7,
        };
        assert_eq!(c, want);
        let d: AuditConfig = toml::from_str("").expect("empty");
        assert_eq!(d, AuditConfig::default());
        assert_eq!((d.path, d.fsync, d.fsync_interval_ms), (None, FsyncMode::Interval, 1000));
        assert_eq!((d.max_bytes, d.keep, d.queue), (64 << 20, 10, 4096));
        let err = toml::from_str::<AuditConfig>("fsync_ms = 1\n").expect_err("unknown key");
        assert!(err.to_string().contains("fsync_ms"), "{err}");
        assert!(toml::from_str::<AuditConfig>("fsync = \"sometimes\"\n").is_err());
    }

    #[tokio::test]
    async fn unset_path_is_rejected() {
        let c = AuditConfig { path: None, ..AuditConfig::default() };
        assert!(matches!(AuditLog::start(c).await, Err(AuditError::Config(_))));
    }

    #[tokio::test]
    async fn zero_queue_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { queue: 0, ..cfg(dir.path()) };
        assert!(matches!(AuditLog::start(c).await, Err(AuditError::Config(_))));
    }
}
