//! Append-only, hash-chained JSONL audit log.
//!
//! - [`format`]: [`Event`] (what a caller records), [`Record`] (one line),
//!   the canonical serialization and the SHA-256 chain — the format an
//!   external verifier needs is documented there.
//! - [`writer`]: the writer thread behind [`AuditLog`] (queue, fsync policy,
//!   health, resuming the chain after a restart or a crash).
//! - [`rotate`]: file names and the shift of rotated files.
//! - [`verify`](mod@verify): `tailops audit verify` (chain, pruned
//!   history, `--expect-from`).
//! - [`journald`]: the optional second copy of every record in the systemd
//!   journal.
//!
//! This file holds the handle ([`AuditLog`]), the record kinds ([`kind`])
//! and the `[audit]` settings ([`AuditConfig`]). Arguments are redacted with
//! [`crate::redact`] before anything touches disk.

mod format;
mod journald;
mod rotate;
mod verify;
mod writer;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use serde::Deserialize;

pub use format::{Event, GENESIS_PREV, MAX_FIELD_BYTES, MAX_LINE_BYTES, Record};
pub use journald::{DEFAULT_JOURNALD_SOCKET, JournaldMode};
pub use rotate::RESUME_SCAN_BYTES;
pub use rotate::rotated_files;
pub use verify::{DroppedRange, Problem, VerifyOptions, VerifyReport, verify, verify_with};
use writer::{Msg, Shared, Writer};

/// Bounds of `[audit] write_ahead_timeout_ms`: long enough for a slow fsync,
/// short enough that a caller of a writing tool is answered well within
/// the tool time limit.
pub const WRITE_AHEAD_TIMEOUT_MS_MIN: u64 = 10;
pub const WRITE_AHEAD_TIMEOUT_MS_MAX: u64 = 60_000;

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
    /// Server start/stop, log rotation (`rotated`, `pruned`), recovery
    /// (`recovered`), a stalled writer (`stalled`).
    pub const LIFECYCLE: &str = "lifecycle";
}

/// When the writer calls `fsync` (`fdatasync`).
#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq, Eq)]
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
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
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
    /// How long a writing tool waits for its intent record to be written
    /// (and fsynced when `fsync = always`) before it is refused
    /// `unavailable` ([`AuditLog::record_durable`]). Also the stall bound: a
    /// writer that has not finished one write (or fsync) within this time
    /// is reported `stalled`, and writing tools are refused at once until
    /// it finishes. [`WRITE_AHEAD_TIMEOUT_MS_MIN`]..=[`WRITE_AHEAD_TIMEOUT_MS_MAX`].
    pub write_ahead_timeout_ms: u64,
    /// Second copy of every record in the systemd journal: `auto` (when
    /// the journal socket exists at start), `on` (start fails without it),
    /// `off`.
    pub journald: JournaldMode,
    /// The journal's native socket (a test points it elsewhere).
    pub journald_socket: PathBuf,
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
            write_ahead_timeout_ms: 2000,
            journald: JournaldMode::Auto,
            journald_socket: PathBuf::from(DEFAULT_JOURNALD_SOCKET),
        }
    }
}

impl AuditConfig {
    /// The write-ahead wait and stall bound.
    pub fn write_ahead_timeout(&self) -> Duration {
        Duration::from_millis(self.write_ahead_timeout_ms)
    }

    /// Checks the values `serde` cannot.
    pub fn validate(&self) -> Result<(), AuditError> {
        if self.queue == 0 {
            return Err(AuditError::Config("queue must be at least 1".into()));
        }
        if !(WRITE_AHEAD_TIMEOUT_MS_MIN..=WRITE_AHEAD_TIMEOUT_MS_MAX).contains(&self.write_ahead_timeout_ms) {
            return Err(AuditError::Config(format!(
                "write_ahead_timeout_ms {} must be {WRITE_AHEAD_TIMEOUT_MS_MIN}-{WRITE_AHEAD_TIMEOUT_MS_MAX}",
                self.write_ahead_timeout_ms
            )));
        }
        Ok(())
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
    /// The record was queued but not written within the bound (it may still
    /// be written later).
    #[error("audit record not written within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The writer has been stuck on one write for this long: nothing was
    /// queued.
    #[error("audit writer stalled: one write has not finished for {0} ms")]
    Stalled(u64),
}

/// Where a record written by [`AuditLog::record_durable`] sits in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    pub seq: u64,
    pub hash: String,
}

/// Why the log is unhealthy (see [`AuditHealth::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnhealthyReason {
    /// One write or fsync has not finished within the stall bound.
    Stalled,
    /// The last write, fsync or rotation failed.
    WriteFailed,
    /// Records were dropped because the queue was full.
    QueueFull,
    /// The writer has stopped.
    Closed,
}

impl UnhealthyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnhealthyReason::Stalled => "stalled",
            UnhealthyReason::WriteFailed => "write_failed",
            UnhealthyReason::QueueFull => "queue_full",
            UnhealthyReason::Closed => "closed",
        }
    }
}

/// A snapshot of the log's state, for `/readyz` and `server_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditHealth {
    pub healthy: bool,
    /// Set when not healthy.
    pub reason: Option<UnhealthyReason>,
    /// The most recent error (kept after recovery).
    pub error: Option<String>,
    /// How long the current write has been running, when over the bound.
    pub stalled_ms: Option<u64>,
    /// The journald copy: `None` when off.
    pub journald: Option<JournaldStats>,
}

/// The writer's counters (`/metrics`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditStats {
    /// Records queued, not yet taken by the writer.
    pub queued: u64,
    /// The queue's capacity (`audit.queue`).
    pub capacity: u64,
    /// Writer operations (write, fsync, rotation) finished, and their total time.
    pub ops: u64,
    pub op_seconds: f64,
    /// Failed writes, fsyncs or rotations.
    pub write_errors: u64,
    /// Records dropped because the queue was full.
    pub dropped: u64,
    /// How long the current operation has run, when past the stall bound.
    pub stalled_secs: Option<f64>,
}

/// Counters of the journald copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournaldStats {
    pub socket: PathBuf,
    /// Entries the journal socket accepted.
    pub sent: u64,
    /// Entries not sent (socket full or gone): the JSONL log still has them.
    pub dropped: u64,
}

struct Inner {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    /// `audit.queue`, for [`AuditLog::stats`].
    capacity: u64,
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
    /// record if the file ends in a broken line), connects the journald copy
    /// if configured, and starts the writer.
    pub async fn start(cfg: AuditConfig) -> Result<(AuditLog, tokio::task::JoinHandle<()>), AuditError> {
        cfg.validate()?;
        let Some(path) = cfg.path.clone() else {
            return Err(AuditError::Config("audit path is not set".into()));
        };
        if path.file_name().is_none() {
            return Err(AuditError::Config(format!("audit path {} has no file name", path.display())));
        }
        let journal = journald::Journal::from_config(cfg.journald, &cfg.journald_socket)?;
        let shared =
            Arc::new(Shared::new(cfg.write_ahead_timeout(), journal.as_ref().map(|j| j.socket().to_path_buf())));
        let writer_shared = shared.clone();
        let queue = cfg.queue;
        let writer = tokio::task::spawn_blocking(move || Writer::open(path, cfg, writer_shared, journal))
            .await
            .map_err(|e| AuditError::Io(io::Error::other(e.to_string())))??;
        let (tx, rx) = std::sync::mpsc::sync_channel(queue);
        let handle = tokio::task::spawn_blocking(move || writer.run(rx));
        let capacity = u64::try_from(queue).unwrap_or(u64::MAX);
        Ok((AuditLog { inner: Some(Arc::new(Inner { tx, shared, capacity })) }, handle))
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
        inner.send(Msg::Record(Box::new(ev), format::now_rfc3339(), None))
    }

    /// Appends one record and waits until the writer has written it (and
    /// fsynced it when `fsync = always`), at most `timeout`: the write-ahead
    /// step of a writing tool, which may run only after this returns `Ok`.
    ///
    /// Fails at once, queueing nothing, when the writer is stalled (a write
    /// has not finished within the stall bound) or the queue is full. On
    /// [`AuditError::Timeout`] the record stays queued and is written when
    /// the device recovers: the caller should record that it gave up.
    pub async fn record_durable(&self, ev: Event, timeout: Duration) -> Result<Durable, AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(Durable { seq: 0, hash: String::new() });
        };
        if let Some(ms) = inner.shared.stalled_ms() {
            return Err(AuditError::Stalled(ms));
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        inner.send(Msg::Record(Box::new(ev), format::now_rfc3339(), Some(ack)))?;
        match tokio::time::timeout(timeout, done).await {
            Err(_) => Err(AuditError::Timeout(timeout)),
            Ok(Err(_)) => Err(AuditError::Closed),
            Ok(Ok(Err(e))) => Err(AuditError::Unhealthy(e)),
            Ok(Ok(Ok((seq, hash)))) => Ok(Durable { seq, hash }),
        }
    }

    /// Whether the last write succeeded, nothing was dropped since, and the
    /// writer is not stalled.
    pub fn is_healthy(&self) -> bool {
        match &self.inner {
            None => true,
            Some(inner) => inner.shared.healthy.load(Ordering::SeqCst) && inner.shared.stalled_ms().is_none(),
        }
    }

    /// The log's state with the reason when unhealthy.
    pub fn health(&self) -> AuditHealth {
        let Some(inner) = &self.inner else {
            return AuditHealth { healthy: true, reason: None, error: None, stalled_ms: None, journald: None };
        };
        let sh = &inner.shared;
        let stalled_ms = sh.stalled_ms();
        let (reason, error) = sh.reason_and_error();
        let healthy = sh.healthy.load(Ordering::SeqCst) && stalled_ms.is_none();
        let reason = if stalled_ms.is_some() {
            Some(UnhealthyReason::Stalled)
        } else if healthy {
            None
        } else {
            Some(reason.unwrap_or(UnhealthyReason::WriteFailed))
        };
        let journald = sh.journald_socket.as_ref().map(|socket| JournaldStats {
            socket: socket.clone(),
            sent: sh.journald_sent.load(Ordering::Relaxed),
            dropped: sh.journald_dropped.load(Ordering::Relaxed),
        });
        AuditHealth { healthy, reason, error, stalled_ms, journald }
    }

    /// Counters for `/metrics` (all zero when the log is disabled).
    pub fn stats(&self) -> AuditStats {
        let Some(inner) = &self.inner else { return AuditStats::default() };
        let sh = &inner.shared;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        AuditStats {
            queued: get(&sh.queued),
            capacity: inner.capacity,
            ops: get(&sh.ops),
            op_seconds: get(&sh.op_micros) as f64 / 1e6,
            write_errors: get(&sh.write_errors),
            dropped: get(&sh.dropped_total),
            stalled_secs: sh.stalled_ms().map(|ms| ms as f64 / 1e3),
        }
    }

    /// The most recent error (kept after recovery; use [`Self::is_healthy`]
    /// for the current state).
    pub fn last_error(&self) -> Option<String> {
        self.inner.as_ref().and_then(|i| i.shared.last_error())
    }

    /// Waits until everything queued so far is written (and fsynced unless the
    /// policy is [`FsyncMode::Never`]). Errors if the log is unhealthy
    /// afterwards, and after the write-ahead timeout (a reader such as
    /// `audit_tail` must not hang on a stalled device).
    pub async fn flush(&self) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if let Some(ms) = inner.shared.stalled_ms() {
            return Err(AuditError::Stalled(ms));
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        send_control(inner, Msg::Flush(ack)).await?;
        match tokio::time::timeout(inner.shared.stall_after, done).await {
            Err(_) => Err(AuditError::Timeout(inner.shared.stall_after)),
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(AuditError::Unhealthy(e)),
            Ok(Err(_)) => Err(AuditError::Closed),
        }
    }

    /// Flushes and stops the writer. Other handles fail with
    /// [`AuditError::Closed`] afterwards.
    pub async fn close(self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        if send_control(inner, Msg::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

impl Inner {
    /// Queues a record message without blocking.
    fn send(&self, msg: Msg) -> Result<(), AuditError> {
        let is_record = matches!(msg, Msg::Record(..));
        if is_record {
            // Counted before the send so the writer's decrement never
            // comes first.
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
        }
        let urgent = matches!(msg, Msg::Record(_, _, Some(_)));
        let r = self.tx.try_send(msg);
        if urgent && r.is_ok() {
            self.shared.wake_writer();
        }
        if r.is_err() && is_record {
            let _ = self.shared.queued.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| q.checked_sub(1));
        }
        match r {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.shared.dropped_queue.fetch_add(1, Ordering::SeqCst);
                self.shared.dropped_total.fetch_add(1, Ordering::Relaxed);
                self.shared.set_error(UnhealthyReason::QueueFull, "audit queue full: records are being dropped".into());
                Err(AuditError::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.set_error(UnhealthyReason::Closed, "audit writer has stopped".into());
                Err(AuditError::Closed)
            }
        }
    }
}

/// Sends a control message, waiting for room in the queue (off the runtime
/// threads) if it is full.
async fn send_control(inner: &Inner, msg: Msg) -> Result<(), AuditError> {
    let r = match inner.tx.try_send(msg) {
        Ok(()) => Ok(()),
        Err(TrySendError::Disconnected(_)) => Err(AuditError::Closed),
        Err(TrySendError::Full(msg)) => {
            let tx = inner.tx.clone();
            tokio::task::spawn_blocking(move || tx.send(msg))
                .await
                .map_err(|_| AuditError::Closed)?
                .map_err(|_| AuditError::Closed)
        }
    };
    // Someone waits on it: end the writer's linger.
    inner.shared.wake_writer();
    r
}

/// Helpers shared by the tests of this folder.
#[cfg(test)]
mod test_support {
    use std::path::{Path, PathBuf};

    use serde_json::json;

    use super::{AuditConfig, AuditLog, Event, FsyncMode, JournaldMode, Record, kind};

    pub fn cfg(dir: &Path) -> AuditConfig {
        AuditConfig {
            path: Some(dir.join("audit.jsonl")),
            fsync: FsyncMode::Never,
            // Never send test records to the host's journal.
            journald: JournaldMode::Off,
            ..AuditConfig::default()
        }
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
            "path = \"/x/a.jsonl\"\nfsync = \"always\"\nfsync_interval_ms = 5\nmax_bytes = 8192\nkeep = 2\nqueue = 7\n\
             write_ahead_timeout_ms = 250\njournald = \"on\"\njournald_socket = \"/x/sock\"\n",
        )
        .expect("parse");
        let want = AuditConfig {
            path: Some(PathBuf::from("/x/a.jsonl")),
            fsync: FsyncMode::Always,
            fsync_interval_ms: 5,
            max_bytes: 8192,
            keep: 2,
            queue: 7,
            write_ahead_timeout_ms: 250,
            journald: JournaldMode::On,
            journald_socket: PathBuf::from("/x/sock"),
        };
        assert_eq!(c, want);
        let d: AuditConfig = toml::from_str("").expect("empty");
        assert_eq!(d, AuditConfig::default());
        assert_eq!((d.path, d.fsync, d.fsync_interval_ms), (None, FsyncMode::Interval, 1000));
        assert_eq!((d.max_bytes, d.keep, d.queue), (64 << 20, 10, 4096));
        assert_eq!(d.write_ahead_timeout_ms, 2000);
        assert_eq!((d.journald, d.journald_socket), (JournaldMode::Auto, PathBuf::from("/run/systemd/journal/socket")));
        assert!(toml::from_str::<AuditConfig>("journald = \"yes\"\n").is_err());
        let err = toml::from_str::<AuditConfig>("fsync_ms = 1\n").expect_err("unknown key");
        assert!(err.to_string().contains("fsync_ms"), "{err}");
        assert!(toml::from_str::<AuditConfig>("fsync = \"sometimes\"\n").is_err());
    }

    #[tokio::test]
    async fn unset_path_is_rejected() {
        let c = AuditConfig { path: None, ..AuditConfig::default() };
        assert!(matches!(AuditLog::start(c).await, Err(AuditError::Config(_))));
    }

    /// `write_ahead_timeout_ms` at its edges: 9 and 60001 are refused at
    /// start, 10 and 60000 accepted.
    #[tokio::test]
    async fn write_ahead_timeout_bounds() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (ms, ok) in [(0, false), (9, false), (10, true), (60_000, true), (60_001, false)] {
            let c = AuditConfig { write_ahead_timeout_ms: ms, ..cfg(dir.path()) };
            match AuditLog::start(c).await {
                Ok((log, task)) => {
                    assert!(ok, "{ms} accepted");
                    log.close().await;
                    task.await.expect("task");
                }
                Err(e) => {
                    assert!(!ok, "{ms} refused: {e}");
                    assert!(e.to_string().contains("write_ahead_timeout_ms"), "{e}");
                }
            }
        }
    }

    #[tokio::test]
    async fn zero_queue_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { queue: 0, ..cfg(dir.path()) };
        assert!(matches!(AuditLog::start(c).await, Err(AuditError::Config(_))));
    }
}
