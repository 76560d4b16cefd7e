//! The writer thread: queue, appends, fsync policy, health, stalls, resume.
//!
//! [`AuditLog::start`](super::AuditLog::start) opens (or creates, mode
//! `0600`, parent directories `0700`) the file in append mode, resumes
//! `seq`/`prev` from the last valid record, and starts a dedicated writer
//! thread (tokio `spawn_blocking`) fed by a bounded queue.
//! [`AuditLog::record`](super::AuditLog::record) never blocks: when the queue
//! is full it fails at once and the log is marked unhealthy. Write or fsync
//! failures also mark the log unhealthy; the writer retries on the next
//! record (re-opening the file) and becomes healthy again after a successful
//! write. Records lost to a full queue or a failed write are counted and
//! announced by a record (`anomaly` `{"event":"dropped",…}` or `lifecycle`
//! `{"event":"recovered",…}`) once writing works again — they never get a
//! `seq`, so no gap is created.
//!
//! Write-ahead: [`AuditLog::record_durable`](super::AuditLog::record_durable)
//! sends an acknowledgement channel with the record; the writer answers it
//! with the record's `seq` and `hash` only after `write(2)` (and `fsync`
//! when `fsync = always`) returned. Stalls: the writer publishes when its
//! current operation started; a handle that sees one running longer than
//! the stall bound reports the log `stalled` (unhealthy) without waiting
//! for the writer, which may be blocked in the kernel (a frozen or hung
//! device). When such an operation finally finishes, a `lifecycle`
//! `{"event":"stalled","ms":N}` record says how long writing was stuck.
//!
//! If the last line of an existing file is not a valid record (a crash in the
//! middle of a write), the chain resumes from the last valid record and a
//! `lifecycle` record `{"event":"recovered","note":…}` is written first. The
//! broken line stays in the file and [`verify`](super::verify) reports it:
//! that is intended.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::format::{Event, GENESIS_PREV, encode_line, now_rfc3339};
use super::journald::{Entry, Journal};
use super::rotate::{Pruned, beyond_keep, head_lifecycle, last_valid_record, rotated_path, shift_files, summarize};
use super::{AuditConfig, FsyncMode, UnhealthyReason, kind};
use crate::redact::redact_args;

/// After a record nobody waits on, the writer lingers this long before it
/// takes what else was queued meanwhile, so a stream of calls wakes it once
/// per batch instead of once per record: the futex wake and the context
/// switch per call were ≈ 10 % of the server's CPU per call at load (perf,
/// `benches/spine.rs`). Such a record reaches the file at most this much
/// later; one someone waits on (a write-ahead intent, a flush, the close)
/// ends the linger at once ([`Shared::wake_writer`]).
pub const BATCH_LINGER: Duration = Duration::from_millis(2);

/// State shared between the handles and the writer.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) healthy: AtomicBool,
    last_error: Mutex<(Option<UnhealthyReason>, Option<String>)>,
    /// Records refused because the queue was full, not yet announced.
    pub(super) dropped_queue: AtomicU64,
    /// A writer operation running longer than this is a stall.
    pub(super) stall_after: Duration,
    /// Reference point of `busy_since`.
    base: Instant,
    /// When the writer's current operation started: milliseconds since
    /// `base`, plus one; `0` while the writer waits for work.
    busy_since: AtomicU64,
    pub(super) journald_socket: Option<PathBuf>,
    pub(super) journald_sent: AtomicU64,
    pub(super) journald_dropped: AtomicU64,
    /// Records queued and not yet taken by the writer (`/metrics`).
    pub(super) queued: AtomicU64,
    /// Writer operations finished, and their total time in microseconds.
    pub(super) ops: AtomicU64,
    pub(super) op_micros: AtomicU64,
    /// Failed writes, fsyncs and rotations, and records ever dropped.
    pub(super) write_errors: AtomicU64,
    pub(super) dropped_total: AtomicU64,
    /// The writer's thread, for [`Shared::wake_writer`].
    writer: OnceLock<std::thread::Thread>,
}

impl Shared {
    pub(super) fn new(stall_after: Duration, journald_socket: Option<PathBuf>) -> Shared {
        Shared {
            healthy: AtomicBool::new(true),
            last_error: Mutex::new((None, None)),
            dropped_queue: AtomicU64::new(0),
            stall_after,
            base: Instant::now(),
            busy_since: AtomicU64::new(0),
            journald_socket,
            journald_sent: AtomicU64::new(0),
            journald_dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            op_micros: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            writer: OnceLock::new(),
        }
    }

    /// Ends the writer's [`BATCH_LINGER`] early: for messages someone waits
    /// on (a durable record, a flush, the close). Harmless when the writer
    /// is not lingering (its next linger returns at once, then it drains).
    pub(super) fn wake_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    pub(super) fn set_error(&self, reason: UnhealthyReason, msg: String) {
        self.healthy.store(false, Ordering::SeqCst);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = (Some(reason), Some(msg));
    }

    /// Remembers an error without changing health (e.g. a failed rotation
    /// after which writing went on in the old file).
    fn note_error(&self, msg: String) {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(msg);
    }

    fn set_healthy(&self) {
        self.healthy.store(true, Ordering::SeqCst);
    }

    pub(super) fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    pub(super) fn reason_and_error(&self) -> (Option<UnhealthyReason>, Option<String>) {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn begin_op(&self) {
        self.busy_since.store(self.now_ms().saturating_add(1), Ordering::SeqCst);
    }

    fn end_op(&self) {
        self.busy_since.store(0, Ordering::SeqCst);
    }

    /// How long the writer's current operation has run, when that is longer
    /// than the stall bound.
    pub(super) fn stalled_ms(&self) -> Option<u64> {
        let since = self.busy_since.load(Ordering::SeqCst);
        if since == 0 {
            return None;
        }
        let ran = self.now_ms().saturating_sub(since - 1);
        (u128::from(ran) > self.stall_after.as_millis()).then_some(ran)
    }
}

pub(super) type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;
/// Answer to a durable append: the record's `(seq, hash)`, or the error.
pub(super) type DurableAck = tokio::sync::oneshot::Sender<Result<(u64, String), String>>;

/// What the handles send the writer.
pub(super) enum Msg {
    /// A record, its time, and whom to tell once it is durable.
    Record(Box<Event>, String, Option<DurableAck>),
    Flush(Ack),
    Close(Ack),
}

pub(super) struct Writer {
    /// The current file (`cfg.path`, resolved).
    path: PathBuf,
    cfg: AuditConfig,
    shared: Arc<Shared>,
    journal: Option<Journal>,
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
    pub(super) fn open(
        path: PathBuf,
        cfg: AuditConfig,
        shared: Arc<Shared>,
        journal: Option<Journal>,
    ) -> io::Result<Writer> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        let resume = resume_state(&path)?;
        let mut w = Writer {
            path,
            cfg,
            shared,
            journal,
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

    fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.cfg.fsync_interval_ms)
    }

    pub(super) fn run(mut self, rx: Receiver<Msg>) {
        let _ = self.shared.writer.set(std::thread::current());
        loop {
            let msg = match (self.dirty, self.cfg.fsync) {
                (true, FsyncMode::Interval) => {
                    let wait = self.fsync_interval().saturating_sub(self.last_sync.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            let t0 = self.begin_op();
                            let r = self.sync();
                            self.report(r);
                            self.end_op(t0);
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
            let linger = matches!(msg, Msg::Record(_, _, None));
            if self.handle(msg) {
                return;
            }
            if !linger {
                continue;
            }
            // Let the calls in flight queue their records without waking
            // this thread, then take them all.
            std::thread::park_timeout(BATCH_LINGER);
            loop {
                match rx.try_recv() {
                    Ok(m) => {
                        if self.handle(m) {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        let _ = self.flush();
                        return;
                    }
                }
            }
        }
        let _ = self.flush();
    }

    /// Handles one message; true after `Close` (the writer ends).
    fn handle(&mut self, msg: Msg) -> bool {
        if matches!(msg, Msg::Record(..)) {
            // Saturating: a record queued before a count existed is
            // never taken twice.
            let _ = self.shared.queued.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| q.checked_sub(1));
        }
        let t0 = self.begin_op();
        match msg {
            Msg::Record(ev, ts, ack) => {
                let r = self.write_event(&ev, &ts);
                let answer = r.as_ref().map(|(seq, hash)| (*seq, hash.clone())).map_err(|e| e.to_string());
                self.report(r.map(|_| ()));
                if let Some(ack) = ack {
                    let _ = ack.send(answer);
                }
            }
            Msg::Flush(ack) => {
                let _ = ack.send(self.flush());
            }
            Msg::Close(ack) => {
                let _ = ack.send(self.flush());
                self.end_op(t0);
                return true;
            }
        }
        self.end_op(t0);
        false
    }

    fn begin_op(&self) -> Instant {
        self.shared.begin_op();
        Instant::now()
    }

    /// Ends an operation; one that ran past the stall bound is recorded, so
    /// the log says how long writing was stuck (and writing tools refused).
    fn end_op(&mut self, t0: Instant) {
        let took = t0.elapsed();
        self.shared.end_op();
        self.shared.ops.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .shared
            .op_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_add(micros)));
        if took > self.shared.stall_after {
            let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(ms, path = %self.path.display(), "audit writer was stalled");
            let ev = Event::lifecycle(serde_json::json!({
                "event": "stalled",
                "ms": ms,
                "note": "one write or fsync of the audit log took longer than write_ahead_timeout_ms; writing tools were refused meanwhile",
            }));
            let r = self.append(&ev, &now_rfc3339()).map(|_| ());
            self.report(r);
        }
    }

    fn report(&self, r: io::Result<()>) {
        match r {
            Ok(()) => self.shared.set_healthy(),
            Err(e) => {
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, path = %self.path.display(), "audit log write failed");
                self.shared.set_error(UnhealthyReason::WriteFailed, format!("{}: {e}", self.path.display()));
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        let r = self
            .announce_drops()
            .and_then(|()| if self.cfg.fsync != FsyncMode::Never && self.dirty { self.sync() } else { Ok(()) });
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

    /// Writes one caller event, first announcing any dropped records;
    /// returns the event's `(seq, hash)`.
    fn write_event(&mut self, ev: &Event, ts: &str) -> io::Result<(u64, String)> {
        let r = self.announce_drops().and_then(|()| {
            let mut ev = ev.clone();
            ev.args = ev.args.as_ref().map(|a| redact_args(&super::format::stub_oversized_strings(a)));
            // Details carry error messages, which may quote the input
            // (`unknown tool: …`), and an unknown tool's name is the
            // caller's text: the same redaction applies.
            ev.detail = ev.detail.as_ref().map(redact_args);
            ev.tool = ev.tool.as_deref().map(crate::redact::redact_line);
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
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        let meta = file.metadata()?;
        let mut size = meta.len();
        if meta.is_file() && size > 0 {
            // Never glue a record onto a partial line.
            let mut last = [0u8; 1];
            let mut reader = File::open(&self.path)?;
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

    /// Appends one record (rotating first if needed, see [`Self::rotate`])
    /// and applies the fsync policy; returns its `(seq, hash)`. On a write
    /// error the file is closed, the partial line removed if possible, and
    /// `seq`/`prev` do not advance.
    fn append(&mut self, ev: &Event, ts: &str) -> io::Result<(u64, String)> {
        let (line, hash) = self.build_line(ev, ts)?;
        let seq_built = self.next_seq;
        if self.size > 0 && self.size + line.len() as u64 + 1 > self.cfg.max_bytes {
            match self.rotate() {
                Ok(from) => {
                    let rotated = Event::lifecycle(serde_json::json!({
                        "event": "rotated", "from": from,
                    }));
                    self.write_record(&rotated, &now_rfc3339())?;
                    self.prune()?;
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit log rotation failed; continuing in the current file");
                    self.shared.note_error(format!("rotation failed: {e}"));
                    self.ensure_open()?;
                }
            }
        }
        // The line built above is still the next one unless a rotation
        // record went first (then seq and prev moved on: build it again).
        let written =
            if self.next_seq == seq_built { self.write_built(ev, line, hash)? } else { self.write_record(ev, ts)? };
        self.sync_if_due(false)?;
        Ok(written)
    }

    /// Serializes and writes the next record for `ev` and copies it to the
    /// journal; returns its `(seq, hash)`.
    fn write_record(&mut self, ev: &Event, ts: &str) -> io::Result<(u64, String)> {
        let (line, hash) = self.build_line(ev, ts)?;
        self.write_built(ev, line, hash)
    }

    /// Writes a line [`Self::build_line`] made for `ev` at the current
    /// sequence number, and copies it to the journal.
    fn write_built(&mut self, ev: &Event, line: Vec<u8>, hash: String) -> io::Result<(u64, String)> {
        let seq = self.next_seq;
        let prev = self.prev.clone();
        self.write_line(line, hash.clone())?;
        if let Some(j) = &self.journal {
            let cap = |s: &Option<String>| s.as_deref().map(super::format::cap_str);
            let (principal, tool, decision, outcome) =
                (cap(&ev.principal), cap(&ev.tool), cap(&ev.decision), cap(&ev.outcome));
            let kind = super::format::cap_str(&ev.kind);
            let entry = Entry {
                seq,
                hash: &hash,
                prev: &prev,
                kind: &kind,
                principal: principal.as_deref(),
                tool: tool.as_deref(),
                decision: decision.as_deref(),
                outcome: outcome.as_deref(),
            };
            match j.send(&entry) {
                Ok(()) => {
                    self.shared.journald_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let before = self.shared.journald_dropped.fetch_add(1, Ordering::Relaxed);
                    if before.is_power_of_two() || before == 0 {
                        tracing::warn!(error = %e, dropped = before + 1, "journald copy of an audit record dropped");
                    }
                }
            }
        }
        Ok((seq, hash))
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
            FsyncMode::Always => true,
            FsyncMode::Interval => force || self.last_sync.elapsed() >= self.fsync_interval(),
            FsyncMode::Never => false,
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
        Ok(encode_line(ev, self.next_seq, ts, &self.prev)?)
    }

    /// Closes the current file, shifts every rotated file up by one (see
    /// [`shift_files`]; nothing is deleted here) and opens the new current
    /// file; returns the name the old file now has.
    fn rotate(&mut self) -> io::Result<String> {
        if self.cfg.fsync != FsyncMode::Never && self.dirty {
            self.sync()?;
        }
        self.file = None;
        let from = shift_files(&self.path)?;
        self.sync_dir();
        self.ensure_open()?;
        Ok(from)
    }

    fn sync_dir(&self) {
        if self.cfg.fsync != FsyncMode::Never
            && let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
    }

    /// Deletes the rotated files beyond `keep`, each only after a
    /// `lifecycle` `pruned` record describing it (its first/last `seq`, the
    /// `prev` of its first and the `hash` of its last record, their times)
    /// is written (and fsynced unless `fsync = never`) to the current
    /// file. A file that cannot be read is left in place with every newer
    /// one (retried at the next rotation): history is never deleted
    /// unrecorded.
    ///
    /// Each record also carries `history_from`/`history_complete`: where the
    /// contiguous run of pruned history ending with this file starts, and
    /// whether that run reaches back to the first record ever, so the
    /// newest `pruned` record alone accounts for everything before the kept
    /// files. The run is traced through the `pruned` records at the heads of
    /// the existing files (where this function puts them).
    fn prune(&mut self) -> io::Result<()> {
        let doomed = beyond_keep(&self.path, self.cfg.keep);
        if doomed.is_empty() {
            return Ok(());
        }
        let mut known: Vec<Pruned> = Vec::new();
        for f in crate::audit::rotated_files(&self.path) {
            known.extend(head_lifecycle(&f).into_iter().filter_map(|r| Pruned::from_record(&r)));
        }
        let mut delete = Vec::new();
        for f in doomed {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let s = match summarize(&f) {
                Ok(s) => s,
                Err(e) => {
                    // Stop here: deleting newer files would leave a hole
                    // in the numbering that a later shift could rename over.
                    tracing::error!(error = %e, file = %f.display(), "cannot read an old audit file; not deleting it");
                    self.shared.note_error(format!("pruning {name}: {e}"));
                    break;
                }
            };
            let detail = match &s.range {
                None => serde_json::json!({
                    "event": "pruned", "file": name, "bytes": s.bytes, "note": "no valid record",
                }),
                Some(r) => {
                    let (from, complete) = if r.first_prev == GENESIS_PREV {
                        (r.first_seq, true)
                    } else {
                        known
                            .iter()
                            .find(|p| p.last_seq.checked_add(1) == Some(r.first_seq) && p.last_hash == r.first_prev)
                            .map_or((r.first_seq, false), |p| (p.history_from, p.history_complete))
                    };
                    known.push(Pruned {
                        last_seq: r.last_seq,
                        last_hash: r.last_hash.clone(),
                        history_from: from,
                        history_complete: complete,
                    });
                    serde_json::json!({
                        "event": "pruned", "file": name, "bytes": s.bytes,
                        "first_seq": r.first_seq, "last_seq": r.last_seq,
                        "first_prev": r.first_prev, "last_hash": r.last_hash,
                        "first_ts": r.first_ts, "last_ts": r.last_ts,
                        "history_from": from, "history_complete": complete,
                    })
                }
            };
            self.write_record(&Event::lifecycle(detail), &now_rfc3339())?;
            delete.push(f);
        }
        if self.cfg.fsync != FsyncMode::Never && self.dirty {
            self.sync()?;
        }
        for f in delete {
            if let Err(e) = fs::remove_file(&f) {
                tracing::error!(error = %e, file = %f.display(), "cannot delete an old audit file");
                self.shared.note_error(format!("deleting {}: {e}", f.display()));
            }
        }
        self.sync_dir();
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::io::{self, Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use crate::audit::test_support::{call, cfg, lines, path_of, records, write_n};
    use crate::audit::{AuditConfig, AuditError, AuditLog, FsyncMode, Record, UnhealthyReason, kind, verify};

    #[tokio::test]
    async fn durable_append_is_on_disk_when_it_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { fsync: FsyncMode::Always, ..cfg(dir.path()) };
        let path = path_of(&c);
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        for i in 0..3 {
            log.record(call(i)).expect("record");
        }
        let d = log.record_durable(call(3), Duration::from_secs(5)).await.expect("durable");
        // Read while the log is still open: the record is already there.
        let recs = records(&path);
        let last = recs.last().expect("records");
        assert_eq!((last.seq, last.hash.as_str(), last.tool.as_deref()), (4, d.hash.as_str(), Some("tool-3")));
        assert_eq!(d.seq, 4);
        log.close().await;
        task.await.expect("task");
    }

    /// A device that stops answering (a FIFO nobody reads: write(2) blocks
    /// in the kernel, like a frozen or hung disk): a durable append times
    /// out, then the log reports `stalled` and refuses durable appends at
    /// once; reads of the state never block; when the device drains, the
    /// log is healthy again and says how long it was stuck.
    #[tokio::test]
    async fn stalled_writer_is_detected_and_durable_appends_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A stall bound of 1 s, not 200 ms: the durable append below must
        // find the writer stuck but not yet stalled, and a test thread
        // preempted for 200 ms on a loaded box got `Stalled` instead.
        let c = AuditConfig { write_ahead_timeout_ms: 1000, ..cfg(dir.path()) };
        let path = path_of(&c);
        rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600)).expect("mkfifo");
        let reader = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&path).expect("open fifo");
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        assert!(log.is_healthy());
        // 4 x 30 KiB records fill the 64 KiB pipe: the writer blocks.
        for i in 0..4 {
            let mut ev = call(i);
            ev.args = Some(serde_json::json!({"pad": "x".repeat(30_000)}));
            log.record(ev).expect("queued");
        }
        let t0 = Instant::now();
        let r = log.record_durable(call(100), Duration::from_millis(100)).await;
        assert!(matches!(r, Err(AuditError::Timeout(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(5));

        // Stalled once the writer has been stuck in one write for 1 s.
        // When it got stuck depends on how fast it reached the fourth
        // record, so wait for it (bounded) instead of racing a fixed sleep
        // against that clock: a loaded box failed this once.
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.is_healthy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!log.is_healthy());
        let h = log.health();
        assert_eq!(h.reason, Some(UnhealthyReason::Stalled), "{h:?}");
        assert!(h.stalled_ms.is_some_and(|ms| ms >= 1000), "{h:?}");
        let t0 = Instant::now();
        let r = log.record_durable(call(101), Duration::from_secs(30)).await;
        assert!(matches!(r, Err(AuditError::Stalled(ms)) if ms >= 1000), "{r:?}");
        assert!(matches!(log.flush().await, Err(AuditError::Stalled(_))));
        assert!(t0.elapsed() < Duration::from_secs(10), "refused at once, not after the 30 s wait");

        let drain = std::thread::spawn(move || {
            let mut reader = reader;
            let mut out = Vec::new();
            let mut buf = [0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("{e}"),
                }
            }
            out
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log.is_healthy() {
            assert!(Instant::now() < deadline, "healthy again after the drain: {:?}", log.health());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let d = log.record_durable(call(102), Duration::from_secs(5)).await.expect("durable after recovery");
        log.close().await;
        task.await.expect("task");
        let text = String::from_utf8(drain.join().expect("drain")).expect("utf8");
        let recs: Vec<Record> = text.lines().map(|l| serde_json::from_str(l).expect("parse")).collect();
        for w in recs.windows(2) {
            assert_eq!((w[1].seq, &w[1].prev), (w[0].seq + 1, &w[0].hash));
        }
        let tools: Vec<_> = recs.iter().filter_map(|r| r.tool.clone()).collect();
        // The timed-out record was written late; the refused one never queued.
        assert!(tools.contains(&"tool-100".to_string()) && !tools.contains(&"tool-101".to_string()), "{tools:?}");
        let stalled =
            recs.iter().find(|r| r.detail.as_ref().is_some_and(|d| d["event"] == "stalled")).expect("stalled record");
        assert!(stalled.detail.as_ref().and_then(|d| d["ms"].as_u64()).is_some_and(|ms| ms >= 1000));
        let last = recs.iter().find(|r| r.seq == d.seq).expect("durable record");
        assert_eq!((last.hash.as_str(), last.tool.as_deref()), (d.hash.as_str(), Some("tool-102")));
    }

    #[tokio::test]
    async fn restart_resumes_seq_and_prev() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { fsync: FsyncMode::Always, ..cfg(dir.path()) };
        let path = path_of(&c);
        write_n(c.clone(), 0, 10).await;
        write_n(c.clone(), 10, 10).await;
        let recs = records(&path);
        assert_eq!(recs.len(), 20);
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
        assert_eq!(recs[10].prev, recs[9].hash);
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert!(r.ok && r.records == 20, "{r:?}");
    }

    #[tokio::test]
    async fn truncated_last_line_is_recovered_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let path = path_of(&c);
        write_n(c.clone(), 0, 5).await;
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"seq\":6,\"ts\":\"2026-01-").expect("write");
        drop(f);
        write_n(c.clone(), 5, 2).await;

        let ls = lines(&path);
        assert_eq!(ls.len(), 9);
        let recovered: Record = serde_json::from_str(&ls[6]).expect("parse");
        let fifth: Record = serde_json::from_str(&ls[4]).expect("parse");
        assert_eq!(recovered.kind, kind::LIFECYCLE);
        assert_eq!(recovered.seq, 6);
        assert_eq!(recovered.prev, fifth.hash);
        let detail = recovered.detail.expect("detail");
        assert_eq!(detail["event"], "recovered");
        assert!(detail["note"].as_str().is_some_and(|n| n.contains("resumed from seq 5")), "{detail}");

        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert_eq!(r.records, 5);
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.seq, p.reason.as_str()), (6, None, "bad_json"));
        // Everything after the broken line chains on from seq 5.
        fs::write(&path, [&ls[..5], &ls[6..]].concat().join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert!(r.ok && r.records == 8, "{r:?}");
    }

    #[tokio::test]
    async fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(&dir.path().join("a/b"));
        let path = path_of(&c);
        write_n(c.clone(), 0, 1).await;
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
    }

    #[tokio::test]
    async fn interval_fsync_and_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { fsync: FsyncMode::Interval, fsync_interval_ms: 20, ..cfg(dir.path()) };
        let path = path_of(&c);
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        log.record(call(1)).expect("record");
        log.flush().await.expect("flush");
        assert_eq!(lines(&path).len(), 1);
        log.record(call(2)).expect("record");
        // Written without a flush: wait (bounded) for the writer instead of
        // sampling once after a fixed 60 ms, which a loaded box can outlast.
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(&path).len() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(lines(&path).len(), 2);
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
        let path = path_of(&c);
        // A FIFO nobody drains: the writer blocks once the pipe buffer fills.
        rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600)).expect("mkfifo");
        let reader = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&path).expect("open fifo");
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
        // The writer catches up once the FIFO drains: wait (bounded) until a
        // flush succeeds, not for one flush whose stall bound (2 s) a loaded
        // box can outlast, leaving the queue still full for the next record.
        let deadline = Instant::now() + Duration::from_secs(20);
        while log.flush().await.is_err() {
            assert!(Instant::now() < deadline, "writer never caught up: {:?}", log.health());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        let path = path_of(&c);
        // Writing to /dev/full fails with ENOSPC, a real disk-full error, even
        // as root.
        std::os::unix::fs::symlink("/dev/full", &path).expect("symlink");
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
        fs::remove_file(&path).expect("rm symlink");
        log.record(call(3)).expect("queued");
        log.flush().await.expect("healthy again");
        assert!(log.is_healthy());
        log.close().await;
        task.await.expect("task");
        let recs = records(&path);
        assert_eq!(recs.len(), 2);
        let detail = recs[0].detail.as_ref().expect("detail");
        assert_eq!(detail["event"], "recovered");
        assert_eq!(detail["dropped"], 2);
        assert_eq!(recs[1].tool.as_deref(), Some("tool-3"));
        assert!(verify(std::slice::from_ref(&path)).expect("verify").ok);
    }

    #[tokio::test]
    async fn dev_full_directly() {
        let c =
            AuditConfig { path: Some(PathBuf::from("/dev/full")), fsync: FsyncMode::Always, ..AuditConfig::default() };
        let (log, task) = AuditLog::start(c).await.expect("start");
        log.record(call(1)).expect("queued");
        assert!(matches!(log.flush().await, Err(AuditError::Unhealthy(_))));
        assert!(!log.is_healthy());
        assert_eq!(log.health().reason, Some(UnhealthyReason::WriteFailed));
        // A durable append learns that its own record failed.
        let r = log.record_durable(call(2), Duration::from_secs(5)).await;
        assert!(matches!(&r, Err(AuditError::Unhealthy(e)) if e.contains("No space left")), "{r:?}");
        log.close().await;
        task.await.expect("task");
    }
}
