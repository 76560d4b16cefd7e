//! Append-only, hash-chained JSONL audit log.
//!
//! # Format
//!
//! One JSON object per line (JSONL, `\n`-terminated, UTF-8), one line per
//! [`Record`]. Fields appear in this order (fields whose value is `None` are
//! omitted):
//!
//! ```text
//! seq, ts, kind, principal, node, source, session, tool, args, decision,
//! outcome, error_category, duration_ms, detail, prev, hash
//! ```
//!
//! - `seq`: `u64`, `1` for the very first record ever, then strictly `+1` per
//!   record, across rotated files too. A gap means a missing record.
//! - `ts`: RFC 3339 UTC with milliseconds, e.g. `2026-01-02T03:04:05.678Z`
//!   (when [`AuditLog::record`] was called).
//! - `kind`: see [`kind`] (`decision`, `tool_call`, `anomaly`, `alert`,
//!   `lifecycle`).
//! - `args`: tool arguments, always passed through [`redact_args`](crate::redact::redact_args).
//! - `prev`: the `hash` of the previous record (64 `0`s for the first record
//!   ever).
//! - `hash`: lowercase hex SHA-256 of the record's *canonical serialization*.
//!
//! # Canonical hash input
//!
//! The canonical serialization of a record is the compact `serde_json`
//! serialization (no whitespace) of the [`Record`] struct with its fields in
//! declaration order (the order above), `None` fields omitted, and the `hash`
//! field omitted. `args`/`detail` objects are serialized as `serde_json`
//! serializes a [`Value`] (as read back from the line itself, so a verifier
//! never needs to re-order keys).
//!
//! Because `hash` is always the last member, the line on disk is exactly the
//! canonical serialization with `,"hash":"<64 hex>"` inserted before the final
//! `}`. An external verifier can therefore reproduce the hash without any
//! JSON library knowledge of ours:
//!
//! ```text
//! line   = {"seq":7,...,"prev":"ab12…","hash":"9f3e…"}
//! input  = line without its last 75 bytes (`,"hash":"` + 64 hex + `"}`) + "}"
//! hash   = hex(sha256(input))
//! ```
//!
//! and then check `prev` against the previous line's `hash` and that `seq`
//! increases by exactly one. [`verify`] does this, and additionally checks that
//! each line is byte-for-byte the serialization of the record it parses to
//! (`not_canonical` otherwise).
//!
//! # Writing
//!
//! [`AuditLog::start`] opens (or creates, mode `0600`, parent directories
//! `0700`) the file in append mode, resumes `seq`/`prev` from the last valid
//! record, and starts a dedicated writer thread (tokio `spawn_blocking`) fed by
//! a bounded queue. [`AuditLog::record`] never blocks: when the queue is full it
//! fails at once and the log is marked unhealthy. Write or fsync failures also
//! mark the log unhealthy; the writer retries on the next record (re-opening
//! the file) and becomes healthy again after a successful write. Records lost
//! to a full queue or a failed write are counted and announced by a record
//! (`anomaly` `{"event":"dropped",…}` or `lifecycle` `{"event":"recovered",…}`)
//! once writing works again — they never get a `seq`, so no gap is created.
//!
//! If the last line of an existing file is not a valid record (a crash in the
//! middle of a write), the chain resumes from the last valid record and a
//! `lifecycle` record `{"event":"recovered","note":…}` is written first. The
//! broken line stays in the file and [`verify`] reports it: that is intended.
//!
//! # Rotation
//!
//! When appending a record would make the current file exceed
//! [`AuditConfig::max_bytes`], the files are shifted (`audit.jsonl.1` →
//! `audit.jsonl.2` …, files beyond [`AuditConfig::keep`] are deleted),
//! `audit.jsonl` is renamed to `audit.jsonl.1` and a new `audit.jsonl` is
//! started whose first record is a `lifecycle` record
//! `{"event":"rotated","from":"audit.jsonl.1"}` chained to the last record of
//! the previous file. A file always takes at least one record, so a tiny
//! `max_bytes` means one record per file.
//!
//! # Verifying
//!
//! ```text
//! tailops audit verify /var/lib/tailops/audit.jsonl.2 /var/lib/tailops/audit.jsonl.1 /var/lib/tailops/audit.jsonl
//! ```
//!
//! Files are given oldest first ([`rotated_files`] lists them in that order).
//! [`verify`] reports the number of records checked and the first problem
//! (file, 1-based line, seq, reason). Reasons: `bad_json`, `line_too_long`,
//! `not_canonical`, `hash_mismatch`, `chain_broken`, `seq_gap`,
//! `seq_out_of_order`. If the oldest file does not start at the beginning of
//! the chain (older files were rotated away), `starts_mid_chain` is set; that
//! is a note, not an error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

// Temporary: src/tools/docker.rs (being moved by another helper) still calls
// these as `crate::audit::…`. Delete this line once it calls `crate::redact`.
pub(crate) use crate::redact::{is_secret_name, redact_args};

/// Longest line (record, without its `\n`) the writer produces, and the
/// longest line [`verify`] accepts. A record that would be longer has its
/// `args` (then its `detail`) replaced by `{"truncated": true, "bytes": N}`.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Longest value (in bytes, before JSON escaping) of each string field of a
/// record (`kind`, `principal`, `tool`, …); longer values are cut at a char
/// boundary and end with `…`. Together with [`MAX_LINE_BYTES`] this bounds a
/// line whatever the caller passes.
pub const MAX_FIELD_BYTES: usize = 512;

/// How far back from the end of an existing file start-up looks for the last
/// valid record to resume the chain from.
pub const RESUME_SCAN_BYTES: u64 = 1024 * 1024;

/// `prev` of the very first record ever.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Length of the `,"hash":"<64 hex>"}` suffix every line ends with.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every record.
    Always,
    /// At most once per interval (and when idle after the interval, on
    /// [`AuditLog::flush`], on rotation and on close).
    Interval(Duration),
    /// Never (the OS decides). Records still go to the kernel immediately.
    Never,
}

/// Audit log settings.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The current file; rotated files are `<path>.1`, `<path>.2`, …
    pub path: PathBuf,
    pub fsync: FsyncPolicy,
    /// Rotate before a record would make the current file larger than this.
    pub max_bytes: u64,
    /// How many rotated files (`.1` ..= `.keep`) to keep; `0` deletes the old
    /// file on rotation.
    pub keep: usize,
    /// Capacity of the queue between callers and the writer (at least 1).
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from("audit.jsonl"),
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            max_bytes: 64 * 1024 * 1024,
            keep: 10,
            queue: 4096,
        }
    }
}

/// What a caller records. `kind` is one of [`kind`]; everything else is
/// optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: String,
    pub principal: Option<String>,
    pub node: Option<String>,
    pub source: Option<String>,
    pub session: Option<String>,
    pub tool: Option<String>,
    pub args: Option<Value>,
    pub decision: Option<String>,
    pub outcome: Option<String>,
    pub error_category: Option<String>,
    pub duration_ms: Option<u64>,
    pub detail: Option<Value>,
}

impl Event {
    /// An event of the given kind with nothing else set.
    pub fn new(kind: &str) -> Event {
        Event { kind: kind.to_string(), ..Event::default() }
    }

    /// A `lifecycle` event with the given detail, e.g.
    /// `json!({"event": "started"})`.
    pub fn lifecycle(detail: Value) -> Event {
        Event { detail: Some(detail), ..Event::new(kind::LIFECYCLE) }
    }
}

/// One line of the log. Field order is part of the format (see the module
/// docs): do not reorder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub ts: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
    pub prev: String,
    /// Omitted from the serialization while empty: serializing a record with
    /// an empty `hash` yields exactly the canonical hash input.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

impl Record {
    /// The canonical serialization (the hash input): this record serialized
    /// without its `hash` field.
    pub fn canonical(&self) -> Result<String, serde_json::Error> {
        let mut unhashed = self.clone();
        unhashed.hash.clear();
        serde_json::to_string(&unhashed)
    }

    /// Hex SHA-256 of [`Record::canonical`].
    pub fn compute_hash(&self) -> Result<String, serde_json::Error> {
        Ok(sha256_hex(self.canonical()?.as_bytes()))
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

/// State shared between the handles and the writer.
#[derive(Debug)]
struct Shared {
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Records refused because the queue was full, not yet announced.
    dropped_queue: AtomicU64,
}

impl Shared {
    fn set_error(&self, msg: String) {
        self.healthy.store(false, Ordering::SeqCst);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }

    /// Remembers an error without changing health (e.g. a failed rotation
    /// after which writing went on in the old file).
    fn note_error(&self, msg: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }

    fn set_healthy(&self) {
        self.healthy.store(true, Ordering::SeqCst);
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

enum Msg {
    Record(Box<Event>, String),
    Flush(Ack),
    Close(Ack),
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
        if cfg.path.file_name().is_none() {
            return Err(AuditError::Config(format!("audit path {} has no file name", cfg.path.display())));
        }
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            dropped_queue: AtomicU64::new(0),
        });
        let writer_shared = shared.clone();
        let queue = cfg.queue;
        let writer = tokio::task::spawn_blocking(move || Writer::open(cfg, writer_shared))
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
    /// are passed through [`redact_args`](crate::redact::redact_args) before
    /// anything touches disk.
    pub fn record(&self, ev: Event) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        match inner.tx.try_send(Msg::Record(Box::new(ev), now_rfc3339())) {
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
    /// policy is [`FsyncPolicy::Never`]). Errors if the log is unhealthy
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

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The rotated file number `n` of `path` (`audit.jsonl.n`).
fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The existing files of the log at `path`, oldest first (`path.N`, …,
/// `path.1`, `path`): the argument list for [`verify`].
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut n = 1;
    loop {
        let p = rotated_path(path, n);
        if !p.exists() {
            break;
        }
        files.push(p);
        n += 1;
    }
    files.reverse();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

struct Writer {
    cfg: AuditConfig,
    shared: Arc<Shared>,
    file: Option<File>,
    size: u64,
    next_seq: u64,
    prev: String,
    dirty: bool,
    last_sync: Instant,
    /// Records lost to failed writes, not yet announced.
    dropped_write: u64,
    /// The write error that made us drop records, announced on recovery.
    write_error: Option<String>,
}

/// Where the chain resumes.
struct Resume {
    next_seq: u64,
    prev: String,
    /// Set when the file ends in something that is not a valid record.
    note: Option<String>,
}

impl Writer {
    fn open(cfg: AuditConfig, shared: Arc<Shared>) -> io::Result<Writer> {
        if let Some(parent) = cfg.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        let resume = resume_state(&cfg.path)?;
        let mut w = Writer {
            cfg,
            shared,
            file: None,
            size: 0,
            next_seq: resume.next_seq,
            prev: resume.prev,
            dirty: false,
            last_sync: Instant::now(),
            dropped_write: 0,
            write_error: None,
        };
        w.ensure_open()?;
        if let Some(note) = resume.note {
            tracing::warn!(%note, "audit log: recovered from a broken last record");
            let ev = Event::lifecycle(serde_json::json!({"event": "recovered", "note": note}));
            w.append(&ev, &now_rfc3339())?;
            w.sync_if_due(true)?;
        }
        Ok(w)
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = match (self.dirty, self.cfg.fsync) {
                (true, FsyncPolicy::Interval(d)) => {
                    let wait = d.saturating_sub(self.last_sync.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            let r = self.sync();
                            self.report(r);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                _ => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            match msg {
                Msg::Record(ev, ts) => {
                    let r = self.write_event(&ev, &ts);
                    self.report(r);
                }
                Msg::Flush(ack) => {
                    let _ = ack.send(self.flush());
                }
                Msg::Close(ack) => {
                    let _ = ack.send(self.flush());
                    return;
                }
            }
        }
        let _ = self.flush();
    }

    fn report(&self, r: io::Result<()>) {
        match r {
            Ok(()) => self.shared.set_healthy(),
            Err(e) => {
                tracing::error!(error = %e, path = %self.cfg.path.display(), "audit log write failed");
                self.shared.set_error(format!("{}: {e}", self.cfg.path.display()));
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        let r = self
            .announce_drops()
            .and_then(|()| if self.cfg.fsync != FsyncPolicy::Never && self.dirty { self.sync() } else { Ok(()) });
        match r {
            Ok(()) => {
                if self.shared.dropped_queue.load(Ordering::SeqCst) == 0 {
                    self.shared.set_healthy();
                }
            }
            Err(e) => self.report(Err(e)),
        }
        if self.shared.healthy.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(self.shared.last_error().unwrap_or_else(|| "audit log unhealthy".into()))
        }
    }

    /// Writes one caller event, first announcing any dropped records.
    fn write_event(&mut self, ev: &Event, ts: &str) -> io::Result<()> {
        let r = self.announce_drops().and_then(|()| {
            let mut ev = ev.clone();
            ev.args = ev.args.as_ref().map(redact_args);
            self.append(&ev, ts)
        });
        if let Err(e) = &r {
            self.dropped_write += 1;
            if self.write_error.is_none() {
                self.write_error = Some(e.to_string());
            }
        }
        r
    }

    /// Writes the `recovered` / `dropped` notices owed, if any.
    fn announce_drops(&mut self) -> io::Result<()> {
        self.ensure_open()?;
        if let Some(err) = &self.write_error {
            let ev = Event::lifecycle(serde_json::json!({
                "event": "recovered",
                "note": format!("writing resumed after error: {err}"),
                "dropped": self.dropped_write,
            }));
            self.append(&ev, &now_rfc3339())?;
            self.write_error = None;
            self.dropped_write = 0;
        }
        let queued = self.shared.dropped_queue.swap(0, Ordering::SeqCst);
        if queued > 0 {
            let mut ev = Event::new(kind::ANOMALY);
            ev.detail = Some(serde_json::json!({
                "event": "dropped", "reason": "queue_full", "count": queued,
            }));
            if let Err(e) = self.append(&ev, &now_rfc3339()) {
                self.shared.dropped_queue.fetch_add(queued, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Opens the file if it is not open (after start-up or a failed write).
    fn ensure_open(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.cfg.path)?;
        let meta = file.metadata()?;
        let mut size = meta.len();
        if meta.is_file() && size > 0 {
            // Never glue a record onto a partial line.
            let mut last = [0u8; 1];
            let mut reader = File::open(&self.cfg.path)?;
            reader.seek(SeekFrom::Start(size - 1))?;
            reader.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                size += 1;
            }
        }
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    /// Appends one record (rotating first if needed) and applies the fsync
    /// policy. On a write error the file is closed, the partial line removed if
    /// possible, and `seq`/`prev` do not advance.
    fn append(&mut self, ev: &Event, ts: &str) -> io::Result<()> {
        let (mut line, mut hash) = self.build_line(ev, ts)?;
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.cfg.max_bytes {
            match self.rotate() {
                Ok(from) => {
                    let rotated = Event::lifecycle(serde_json::json!({
                        "event": "rotated", "from": from,
                    }));
                    let (l, h) = self.build_line(&rotated, &now_rfc3339())?;
                    self.write_line(l, h)?;
                    (line, hash) = self.build_line(ev, ts)?;
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit log rotation failed; continuing in the current file");
                    self.shared.note_error(format!("rotation failed: {e}"));
                    self.ensure_open()?;
                }
            }
        }
        self.write_line(line, hash)?;
        self.sync_if_due(false)
    }

    fn write_line(&mut self, mut line: Vec<u8>, hash: String) -> io::Result<()> {
        line.push(b'\n');
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("audit file is not open"));
        };
        if let Err(e) = file.write_all(&line) {
            // Remove a partial line if we can; re-open on the next record.
            let _ = file.set_len(self.size);
            self.file = None;
            return Err(e);
        }
        self.size += line.len() as u64;
        self.next_seq += 1;
        self.prev = hash;
        self.dirty = true;
        Ok(())
    }

    fn sync_if_due(&mut self, force: bool) -> io::Result<()> {
        let due = match self.cfg.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(d) => force || self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        if due && self.dirty { self.sync() } else { Ok(()) }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.last_sync = Instant::now();
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Serializes the next record for `ev`: `(line without \n, hash)`.
    fn build_line(&self, ev: &Event, ts: &str) -> io::Result<(Vec<u8>, String)> {
        let cap = |s: &Option<String>| s.as_deref().map(cap_str);
        let mut rec = Record {
            seq: self.next_seq,
            ts: cap_str(ts),
            kind: cap_str(&ev.kind),
            principal: cap(&ev.principal),
            node: cap(&ev.node),
            source: cap(&ev.source),
            session: cap(&ev.session),
            tool: cap(&ev.tool),
            args: ev.args.clone(),
            decision: cap(&ev.decision),
            outcome: cap(&ev.outcome),
            error_category: cap(&ev.error_category),
            duration_ms: ev.duration_ms,
            detail: ev.detail.clone(),
            prev: self.prev.clone(),
            hash: String::new(),
        };
        let mut canonical = serde_json::to_vec(&rec)?;
        if canonical.len() + HASH_SUFFIX_LEN - 1 > MAX_LINE_BYTES {
            rec.args = rec.args.as_ref().map(truncated_stub);
            canonical = serde_json::to_vec(&rec)?;
        }
        if canonical.len() + HASH_SUFFIX_LEN - 1 > MAX_LINE_BYTES {
            rec.detail = rec.detail.as_ref().map(truncated_stub);
            canonical = serde_json::to_vec(&rec)?;
        }
        let hash = sha256_hex(&canonical);
        // canonical ends with '}': insert the hash member before it.
        canonical.pop();
        canonical.extend_from_slice(b",\"hash\":\"");
        canonical.extend_from_slice(hash.as_bytes());
        canonical.extend_from_slice(b"\"}");
        Ok((canonical, hash))
    }

    /// Shifts the rotated files and renames the current one to `.1`; returns
    /// the name the old file now has (`None` when `keep` is 0 and it was
    /// deleted). Opens the new current file.
    fn rotate(&mut self) -> io::Result<Option<String>> {
        if self.cfg.fsync != FsyncPolicy::Never && self.dirty {
            self.sync()?;
        }
        self.file = None;
        let path = self.cfg.path.clone();
        let keep = self.cfg.keep;
        // Delete left-overs beyond `keep` (e.g. from a larger `keep` before);
        // `.keep` itself is replaced by the shift below.
        let mut n = keep + 1;
        while rotated_path(&path, n).exists() {
            fs::remove_file(rotated_path(&path, n))?;
            n += 1;
        }
        let from = if keep == 0 {
            fs::remove_file(&path)?;
            None
        } else {
            for i in (1..keep).rev() {
                let src = rotated_path(&path, i);
                if src.exists() {
                    fs::rename(&src, rotated_path(&path, i + 1))?;
                }
            }
            let dst = rotated_path(&path, 1);
            fs::rename(&path, &dst)?;
            dst.file_name().map(|n| n.to_string_lossy().into_owned())
        };
        if self.cfg.fsync != FsyncPolicy::Never
            && let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.ensure_open()?;
        Ok(from)
    }
}

fn cap_str(s: &str) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s.to_string();
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn truncated_stub(v: &Value) -> Value {
    let bytes = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0);
    serde_json::json!({"truncated": true, "bytes": bytes})
}

/// Finds where the chain resumes for the log at `path`: the last valid record
/// of `path`, or of `path.1` when `path` holds none (a crash right after a
/// rotation).
fn resume_state(path: &Path) -> io::Result<Resume> {
    let (last, note) = last_valid_record(path)?;
    if let Some(rec) = last {
        return Ok(Resume { next_seq: rec.seq.saturating_add(1), prev: rec.hash, note });
    }
    if note.is_none() {
        let (last1, note1) = last_valid_record(&rotated_path(path, 1))?;
        if let Some(rec) = last1 {
            return Ok(Resume { next_seq: rec.seq.saturating_add(1), prev: rec.hash, note: note1 });
        }
    }
    Ok(Resume { next_seq: 1, prev: GENESIS_PREV.to_string(), note })
}

/// The last valid record in the final [`RESUME_SCAN_BYTES`] of a regular
/// file, and a note if anything after it is not a valid record.
fn last_valid_record(path: &Path) -> io::Result<(Option<Record>, Option<String>)> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, None)),
        Err(e) => return Err(e),
    };
    if !meta.is_file() || meta.len() == 0 {
        return Ok((None, None));
    }
    let len = meta.len();
    let start = len.saturating_sub(RESUME_SCAN_BYTES);
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.take(len - start).read_to_end(&mut buf)?;
    let mut lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
    if buf.last() == Some(&b'\n') {
        lines.pop();
    }
    // The first piece may be the tail of a line cut by the scan window.
    let skip_first = start > 0;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut bad: Option<String> = None;
    for (i, line) in lines.iter().enumerate().rev() {
        if i == 0 && skip_first {
            break;
        }
        match check_line(line) {
            Ok(rec) => {
                let note = bad.map(|reason| {
                    format!("{name} ended in an invalid record ({reason}); chain resumed from seq {}", rec.seq)
                });
                return Ok((Some(rec), note));
            }
            Err((reason, detail)) => {
                if bad.is_none() {
                    bad = Some(format!("{reason}: {detail}"));
                }
            }
        }
    }
    let note = bad.map(|reason| {
        format!("{name} has no valid record in its last {} bytes ({reason}); a new chain starts here", len - start)
    });
    Ok((None, note))
}

/// Parses and checks one line by itself (format and hash, not the chain).
fn check_line(line: &[u8]) -> Result<Record, (&'static str, String)> {
    if line.len() > MAX_LINE_BYTES {
        return Err(("line_too_long", format!("{} bytes, limit {MAX_LINE_BYTES}", line.len())));
    }
    let rec: Record = serde_json::from_slice(line).map_err(|e| ("bad_json", e.to_string()))?;
    let suffix = format!(",\"hash\":\"{}\"}}", rec.hash);
    if rec.hash.len() != 64 || !line.ends_with(suffix.as_bytes()) {
        return Err(("not_canonical", "the line does not end with a 64-hex-digit \"hash\" member".into()));
    }
    let mut input = line[..line.len() - HASH_SUFFIX_LEN].to_vec();
    input.push(b'}');
    let computed = sha256_hex(&input);
    if computed != rec.hash {
        return Err(("hash_mismatch", format!("recorded {}, computed {computed}", rec.hash)));
    }
    let reserialized = serde_json::to_vec(&rec).map_err(|e| ("bad_json", e.to_string()))?;
    if reserialized != line {
        return Err(("not_canonical", "the line is not the canonical serialization of its record".into()));
    }
    Ok(rec)
}

// ---------------------------------------------------------------------------
// Verify
// ---------------------------------------------------------------------------

/// Result of [`verify`].
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// No problem found.
    pub ok: bool,
    /// Valid records checked (before the first problem, if any).
    pub records: u64,
    /// The first record's `prev` is not the genesis value: older files were
    /// rotated away. A note, not an error.
    pub starts_mid_chain: bool,
    pub first_problem: Option<Problem>,
    /// `seq` of the first and last valid records checked.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// `hash` of the last valid record checked (anchor it elsewhere to detect
    /// truncation of the newest records).
    pub last_hash: Option<String>,
}

/// The first problem [`verify`] found.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line number in `file`.
    pub line: u64,
    /// `seq` of the offending record, if it parsed.
    pub seq: Option<u64>,
    /// `bad_json`, `line_too_long`, `not_canonical`, `hash_mismatch`,
    /// `chain_broken`, `seq_gap` or `seq_out_of_order`.
    pub reason: String,
    pub detail: String,
}

/// Verifies the chain over `files`, given oldest first. Stops at the first
/// problem. I/O errors (a missing file) are returned as errors.
pub fn verify(files: &[PathBuf]) -> io::Result<VerifyReport> {
    let mut report = VerifyReport {
        ok: true,
        records: 0,
        starts_mid_chain: false,
        first_problem: None,
        first_seq: None,
        last_seq: None,
        last_hash: None,
    };
    let mut last: Option<(u64, String)> = None;
    for path in files {
        let mut reader = BufReader::new(File::open(path)?);
        let mut line_no: u64 = 0;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = (&mut reader).take(MAX_LINE_BYTES as u64 + 2).read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let problem = |seq: Option<u64>, reason: &str, detail: String| Problem {
                file: path.clone(),
                line: line_no,
                seq,
                reason: reason.to_string(),
                detail,
            };
            let rec = match check_line(&buf) {
                Ok(rec) => rec,
                Err((reason, detail)) => {
                    let seq =
                        serde_json::from_slice::<Value>(&buf).ok().and_then(|v| v.get("seq").and_then(Value::as_u64));
                    report.ok = false;
                    report.first_problem = Some(problem(seq, reason, detail));
                    return Ok(report);
                }
            };
            match &last {
                None => {
                    report.starts_mid_chain = rec.prev != GENESIS_PREV;
                    report.first_seq = Some(rec.seq);
                }
                Some((last_seq, last_hash)) => {
                    let expected = last_seq.saturating_add(1);
                    let p = if rec.seq > expected {
                        Some(problem(
                            Some(rec.seq),
                            "seq_gap",
                            format!(
                                "expected seq {expected}, found {}: {} record(s) missing",
                                rec.seq,
                                rec.seq - expected
                            ),
                        ))
                    } else if rec.seq < expected {
                        Some(problem(
                            Some(rec.seq),
                            "seq_out_of_order",
                            format!("expected seq {expected}, found {}", rec.seq),
                        ))
                    } else if &rec.prev != last_hash {
                        Some(problem(
                            Some(rec.seq),
                            "chain_broken",
                            format!("prev is {}, the previous record's hash is {last_hash}", rec.prev),
                        ))
                    } else {
                        None
                    };
                    if let Some(p) = p {
                        report.ok = false;
                        report.first_problem = Some(p);
                        return Ok(report);
                    }
                }
            }
            report.records += 1;
            report.last_seq = Some(rec.seq);
            report.last_hash = Some(rec.hash.clone());
            last = Some((rec.seq, rec.hash));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(dir: &Path) -> AuditConfig {
        AuditConfig { path: dir.join("audit.jsonl"), fsync: FsyncPolicy::Never, ..AuditConfig::default() }
    }

    fn call(i: u64) -> Event {
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

    async fn write_n(cfg: AuditConfig, from: u64, n: u64) {
        let (log, task) = AuditLog::start(cfg).await.expect("start");
        for i in from..from + n {
            log.record(call(i)).expect("record");
        }
        log.close().await;
        task.await.expect("writer task");
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path).expect("read").lines().map(str::to_string).collect()
    }

    fn records(path: &Path) -> Vec<Record> {
        lines(path).iter().map(|l| serde_json::from_str(l).expect("record")).collect()
    }

    #[tokio::test]
    async fn chain_of_1000_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        write_n(c.clone(), 0, 1000).await;
        let recs = records(&c.path);
        assert_eq!(recs.len(), 1000);
        assert_eq!(recs[0].seq, 1);
        assert_eq!(recs[0].prev, GENESIS_PREV);
        assert_eq!(recs[999].seq, 1000);
        // args are redacted on the way in
        assert_eq!(recs[5].args, Some(json!({"n": 5, "password": "[REDACTED]"})));
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.records, 1000);
        assert!(!r.starts_mid_chain);
        assert_eq!(r.first_seq, Some(1));
        assert_eq!(r.last_seq, Some(1000));
        assert_eq!(r.last_hash.as_deref(), Some(recs[999].hash.as_str()));
    }

    #[tokio::test]
    async fn canonical_form_is_reproducible_externally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        write_n(c.clone(), 0, 3).await;
        let mut prev = GENESIS_PREV.to_string();
        for line in lines(&c.path) {
            let rec: Record = serde_json::from_str(&line).expect("parse");
            // struct-based definition
            assert_eq!(rec.compute_hash().expect("hash"), rec.hash);
            // byte-based definition from the module docs
            let input = format!("{}}}", &line[..line.len() - 75]);
            assert_eq!(sha256_hex(input.as_bytes()), rec.hash);
            assert_eq!(input, rec.canonical().expect("canonical"));
            assert_eq!(serde_json::to_string(&rec).expect("ser"), line);
            assert_eq!(rec.prev, prev);
            prev = rec.hash;
            assert!(rec.ts.ends_with('Z') && rec.ts.len() == 24, "{}", rec.ts);
        }
    }

    #[tokio::test]
    async fn edited_byte_is_a_hash_mismatch_at_that_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        write_n(c.clone(), 0, 100).await;
        let mut ls = lines(&c.path);
        ls[49] = ls[49].replacen("tool-49", "tool-4X", 1);
        fs::write(&c.path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        assert!(!r.ok);
        assert_eq!(r.records, 49);
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.seq, p.reason.as_str()), (50, Some(50), "hash_mismatch"));
        assert_eq!(p.file, c.path);

        // A byte that breaks the JSON.
        let mut ls = lines(&c.path);
        ls[49] = ls[49].replacen("tool-4X", "tool-49", 1);
        ls[9] = ls[9].replacen('{', "[", 1);
        fs::write(&c.path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.reason.as_str()), (10, "bad_json"));

        // Whitespace keeps the JSON meaning but changes the hashed bytes.
        let mut ls = lines(&c.path);
        ls[9] = ls[9].replacen('[', "{", 1);
        ls[19] = ls[19].replacen("\"seq\":", "\"seq\": ", 1);
        fs::write(&c.path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.reason.as_str()), (20, "hash_mismatch"));
    }

    #[tokio::test]
    async fn deleted_line_is_a_seq_gap_and_forged_line_breaks_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        write_n(c.clone(), 0, 100).await;
        let orig = lines(&c.path);
        let mut ls = orig.clone();
        ls.remove(30); // seq 31
        fs::write(&c.path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        assert_eq!(r.records, 30);
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.seq, p.reason.as_str()), (31, Some(32), "seq_gap"));

        // Delete seq 31 and re-number + re-hash only that next record: the
        // seq fits but prev does not.
        let mut rec: Record = serde_json::from_str(&ls[30]).expect("parse");
        rec.seq = 31;
        rec.hash = rec.compute_hash().expect("hash");
        ls[30] = serde_json::to_string(&rec).expect("ser");
        fs::write(&c.path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.seq, p.reason.as_str()), (31, Some(31), "chain_broken"));

        // Swapped lines.
        let mut ls = orig.clone();
        ls.swap(10, 11);
        fs::write(&c.path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.reason.as_str()), (11, "seq_gap"));

        // Dropping the first lines only makes it start mid-chain.
        fs::write(&c.path, orig[5..].join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        assert!(r.ok && r.starts_mid_chain && r.records == 95, "{r:?}");
    }

    #[tokio::test]
    async fn rotation_keeps_the_chain_across_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 4000, keep: 100, ..cfg(dir.path()) };
        write_n(c.clone(), 0, 200).await;
        let files = rotated_files(&c.path);
        assert!(files.len() > 5, "{files:?}");
        assert_eq!(files.last(), Some(&c.path));
        let r = verify(&files).expect("verify");
        assert!(r.ok, "{r:?}");
        assert!(!r.starts_mid_chain);
        let mut total = 0;
        for (i, f) in files.iter().enumerate() {
            assert!(fs::metadata(f).expect("meta").len() <= 4000);
            let recs = records(f);
            total += recs.len();
            if i > 0 {
                let first = &recs[0];
                assert_eq!(first.kind, kind::LIFECYCLE);
                let older = files[i - 1].file_name().expect("name").to_string_lossy();
                let n = files.len() - i; // the older file was `.n` when this one started
                assert_eq!(older, format!("audit.jsonl.{n}"));
                assert_eq!(first.detail, Some(json!({"event": "rotated", "from": "audit.jsonl.1"})));
                let prev_last = records(&files[i - 1]).pop().expect("last");
                assert_eq!(first.prev, prev_last.hash);
                assert_eq!(first.seq, prev_last.seq + 1);
            }
        }
        // 200 events plus one `rotated` record per new file.
        assert_eq!(total, 200 + files.len() - 1);
        assert_eq!(r.records as usize, total);

        // Wrong order is detected.
        let mut wrong = files.clone();
        wrong.swap(0, 1);
        assert!(!verify(&wrong).expect("verify").ok);

        // Restarting resumes in the current file.
        write_n(c.clone(), 200, 10).await;
        assert!(verify(&rotated_files(&c.path)).expect("verify").ok);
    }

    #[tokio::test]
    async fn rotation_deletes_beyond_keep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 2000, keep: 3, ..cfg(dir.path()) };
        write_n(c.clone(), 0, 100).await;
        let files = rotated_files(&c.path);
        assert_eq!(files.len(), 4, "{files:?}");
        assert!(!rotated_path(&c.path, 4).exists());
        let r = verify(&files).expect("verify");
        assert!(r.ok && r.starts_mid_chain, "{r:?}");
        assert_eq!(r.last_seq, records(&c.path).last().map(|r| r.seq));
    }

    #[tokio::test]
    async fn restart_resumes_seq_and_prev() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { fsync: FsyncPolicy::Always, ..cfg(dir.path()) };
        write_n(c.clone(), 0, 10).await;
        write_n(c.clone(), 10, 10).await;
        let recs = records(&c.path);
        assert_eq!(recs.len(), 20);
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
        assert_eq!(recs[10].prev, recs[9].hash);
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        assert!(r.ok && r.records == 20, "{r:?}");
    }

    #[tokio::test]
    async fn resumes_from_rotated_file_when_current_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        write_n(c.clone(), 0, 5).await;
        // A crash right after renaming the current file away.
        fs::rename(&c.path, rotated_path(&c.path, 1)).expect("rename");
        write_n(c.clone(), 5, 5).await;
        let r = verify(&rotated_files(&c.path)).expect("verify");
        assert!(r.ok && r.records == 10, "{r:?}");
    }

    #[tokio::test]
    async fn truncated_last_line_is_recovered_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        write_n(c.clone(), 0, 5).await;
        let mut f = OpenOptions::new().append(true).open(&c.path).expect("open");
        f.write_all(b"{\"seq\":6,\"ts\":\"2026-01-").expect("write");
        drop(f);
        write_n(c.clone(), 5, 2).await;

        let ls = lines(&c.path);
        assert_eq!(ls.len(), 9);
        let recovered: Record = serde_json::from_str(&ls[6]).expect("parse");
        let fifth: Record = serde_json::from_str(&ls[4]).expect("parse");
        assert_eq!(recovered.kind, kind::LIFECYCLE);
        assert_eq!(recovered.seq, 6);
        assert_eq!(recovered.prev, fifth.hash);
        let detail = recovered.detail.expect("detail");
        assert_eq!(detail["event"], "recovered");
        assert!(detail["note"].as_str().is_some_and(|n| n.contains("resumed from seq 5")), "{detail}");

        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        assert_eq!(r.records, 5);
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.seq, p.reason.as_str()), (6, None, "bad_json"));
        // Everything after the broken line chains on from seq 5.
        fs::write(&c.path, [&ls[..5], &ls[6..]].concat().join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&c.path)).expect("verify");
        assert!(r.ok && r.records == 8, "{r:?}");
    }

    #[tokio::test]
    async fn oversized_args_are_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        let mut ev = call(1);
        ev.args = Some(json!({"content": "x".repeat(100_000)}));
        ev.tool = Some("é".repeat(10_000));
        log.record(ev).expect("record");
        log.close().await;
        task.await.expect("task");
        let ls = lines(&c.path);
        assert!(ls[0].len() <= MAX_LINE_BYTES);
        let rec: Record = serde_json::from_str(&ls[0]).expect("parse");
        assert_eq!(rec.args, Some(json!({"truncated": true, "bytes": 100_014})));
        assert!(rec.tool.expect("tool").len() <= MAX_FIELD_BYTES + 3);
        assert!(verify(std::slice::from_ref(&c.path)).expect("verify").ok);
    }

    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(&dir.path().join("a/b"));
        write_n(c.clone(), 0, 1).await;
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&c.path), 0o600);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
    }

    #[tokio::test]
    async fn interval_fsync_and_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { fsync: FsyncPolicy::Interval(Duration::from_millis(20)), ..cfg(dir.path()) };
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        log.record(call(1)).expect("record");
        log.flush().await.expect("flush");
        assert_eq!(lines(&c.path).len(), 1);
        log.record(call(2)).expect("record");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(lines(&c.path).len(), 2);
        assert!(log.is_healthy());
        let other = log.clone();
        log.close().await;
        task.await.expect("task");
        assert!(matches!(other.record(call(3)), Err(AuditError::Closed)));
        assert!(!other.is_healthy());
        assert!(matches!(other.flush().await, Err(AuditError::Closed)));
    }

    #[tokio::test]
    async fn queue_full_fails_fast_and_marks_unhealthy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { queue: 4, ..cfg(dir.path()) };
        // A FIFO nobody drains: the writer blocks once the pipe buffer fills.
        rustix::fs::mkfifoat(rustix::fs::CWD, &c.path, rustix::fs::Mode::from_raw_mode(0o600)).expect("mkfifo");
        let reader = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&c.path).expect("open fifo");
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        let mut accepted = 0u64;
        let mut full = false;
        for i in 0..100_000 {
            match log.record(call(i)) {
                Ok(()) => accepted += 1,
                Err(AuditError::QueueFull) => {
                    full = true;
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(full, "queue never filled after {accepted} records");
        assert!(!log.is_healthy());
        assert!(log.last_error().is_some_and(|e| e.contains("queue full")));

        // Drain the FIFO until the writer caught up and reported healthy.
        let drain = std::thread::spawn(move || {
            let mut reader = reader;
            let mut out = Vec::new();
            let mut buf = [0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                match reader.read(&mut buf) {
                    Ok(0) => break, // writer closed
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("{e}"),
                }
            }
            out
        });
        log.record(call(1_000_000)).ok();
        log.flush().await.ok();
        log.record(call(1_000_001)).expect("record after drain");
        log.flush().await.expect("flush");
        assert!(log.is_healthy());
        log.close().await;
        task.await.expect("task");
        let out = drain.join().expect("drain");
        let text = String::from_utf8(out).expect("utf8");
        let recs: Vec<Record> = text.lines().map(|l| serde_json::from_str(l).expect("parse")).collect();
        let dropped = recs.iter().find(|r| r.kind == kind::ANOMALY).expect("dropped notice");
        assert_eq!(dropped.detail.as_ref().expect("detail")["event"], "dropped");
        // The chain has no gap: dropped records never got a seq.
        for w in recs.windows(2) {
            assert_eq!(w[1].seq, w[0].seq + 1);
            assert_eq!(w[1].prev, w[0].hash);
        }
    }

    #[tokio::test]
    async fn write_failure_marks_unhealthy_until_writing_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        // Writing to /dev/full fails with ENOSPC, a real disk-full error, even
        // as root.
        std::os::unix::fs::symlink("/dev/full", &c.path).expect("symlink");
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        assert!(log.is_healthy());
        log.record(call(1)).expect("queued");
        assert!(log.flush().await.is_err());
        assert!(!log.is_healthy());
        let err = log.last_error().expect("error");
        assert!(err.contains("No space left"), "{err}");
        log.record(call(2)).expect("queued");
        assert!(log.flush().await.is_err());
        assert!(!log.is_healthy());

        // The disk "has room again": the next record re-opens the path.
        fs::remove_file(&c.path).expect("rm symlink");
        log.record(call(3)).expect("queued");
        log.flush().await.expect("healthy again");
        assert!(log.is_healthy());
        log.close().await;
        task.await.expect("task");
        let recs = records(&c.path);
        assert_eq!(recs.len(), 2);
        let detail = recs[0].detail.as_ref().expect("detail");
        assert_eq!(detail["event"], "recovered");
        assert_eq!(detail["dropped"], 2);
        assert_eq!(recs[1].tool.as_deref(), Some("tool-3"));
        assert!(verify(std::slice::from_ref(&c.path)).expect("verify").ok);
    }

    #[tokio::test]
    async fn dev_full_directly() {
        let c = AuditConfig { path: PathBuf::from("/dev/full"), fsync: FsyncPolicy::Always, ..AuditConfig::default() };
        let (log, task) = AuditLog::start(c).await.expect("start");
        log.record(call(1)).expect("queued");
        assert!(matches!(log.flush().await, Err(AuditError::Unhealthy(_))));
        assert!(!log.is_healthy());
        log.close().await;
        task.await.expect("task");
    }

    #[tokio::test]
    async fn disabled_log_is_a_healthy_no_op() {
        let log = AuditLog::disabled();
        log.record(call(1)).expect("record");
        assert!(log.is_healthy());
        assert_eq!(log.last_error(), None);
        log.flush().await.expect("flush");
        log.close().await;
    }

    #[tokio::test]
    async fn zero_queue_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { queue: 0, ..cfg(dir.path()) };
        assert!(matches!(AuditLog::start(c).await, Err(AuditError::Config(_))));
    }

    #[test]
    fn verify_missing_file_is_an_io_error() {
        assert!(verify(&[PathBuf::from("/nonexistent/audit.jsonl")]).is_err());
    }
}
