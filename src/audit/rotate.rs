//! Rotation and pruning: file names, the shift of rotated files, and what
//! is recorded before an old file is deleted.
//!
//! When appending a record would make the current file exceed
//! [`AuditConfig::max_bytes`](super::AuditConfig::max_bytes), every rotated
//! file is shifted up by one (`audit.jsonl.1` → `audit.jsonl.2` …),
//! `audit.jsonl` is renamed to `audit.jsonl.1` and a new `audit.jsonl` is
//! started whose first record is a `lifecycle` record
//! `{"event":"rotated","from":"audit.jsonl.1"}` chained to the last record of
//! the previous file. A file always takes at least one record, so a tiny
//! `max_bytes` means one record per file.
//!
//! Then the files beyond [`AuditConfig::keep`](super::AuditConfig::keep) are
//! pruned, oldest first: for each, a `lifecycle` record
//!
//! ```text
//! {"event":"pruned","file":"audit.jsonl.4","bytes":…,"first_seq":…,"last_seq":…,
//!  "first_prev":…,"last_hash":…,"first_ts":…,"last_ts":…,
//!  "history_from":…,"history_complete":…}
//! ```
//!
//! is written to the new file (right after `rotated`, and fsynced unless
//! `fsync = never`) and only then is the file deleted. Nothing is deleted by
//! the shift itself, so a crash in between leaves the old file in place and
//! the next rotation records and deletes it. [`verify`](super::verify) uses
//! these records to report exactly which history was dropped, and when.
//! The writer decides when to rotate and writes the records; this file moves
//! and reads the files.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::format::{MAX_LINE_BYTES, Record, check_line};
use super::kind;

/// How much of the start of a file is read to find its first valid record
/// and the `lifecycle` records at its head.
pub const HEAD_SCAN_BYTES: u64 = 1024 * 1024;

/// The rotated file number `n` of `path` (`audit.jsonl.n`).
pub(super) fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// How many rotated files exist without a gap from `.1`.
fn rotated_count(path: &Path) -> usize {
    let mut n = 0;
    while rotated_path(path, n + 1).exists() {
        n += 1;
    }
    n
}

/// The existing files of the log at `path`, oldest first (`path.N`, …,
/// `path.1`, `path`): the argument list for [`verify`](super::verify).
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=rotated_count(path)).rev().map(|n| rotated_path(path, n)).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// Shifts every rotated file of the (closed) log at `path` up by one and
/// renames it to `.1`; deletes nothing (see [`beyond_keep`]). Returns the
/// name the old file now has.
pub(super) fn shift_files(path: &Path) -> io::Result<String> {
    for i in (1..=rotated_count(path)).rev() {
        fs::rename(rotated_path(path, i), rotated_path(path, i + 1))?;
    }
    let dst = rotated_path(path, 1);
    fs::rename(path, &dst)?;
    Ok(dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}

/// The rotated files numbered above `keep`, oldest first: the ones to prune.
pub(super) fn beyond_keep(path: &Path, keep: usize) -> Vec<PathBuf> {
    (keep + 1..=rotated_count(path)).rev().map(|n| rotated_path(path, n)).collect()
}

/// The records of one file's range, for its `pruned` record.
#[derive(Debug)]
pub(super) struct Range {
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_prev: String,
    pub last_hash: String,
    pub first_ts: String,
    pub last_ts: String,
}

#[derive(Debug)]
pub(super) struct Summary {
    pub bytes: u64,
    /// `None` when the file holds no valid record.
    pub range: Option<Range>,
}

/// First and last valid records of a file (each searched within
/// [`HEAD_SCAN_BYTES`] / [`RESUME_SCAN_BYTES`] of
/// its ends).
pub(super) fn summarize(path: &Path) -> io::Result<Summary> {
    let bytes = fs::metadata(path)?.len();
    let first = head_records(path, true)?.into_iter().next();
    let (last, _) = last_valid_record(path)?;
    let range = match (first, last) {
        (Some(f), Some(l)) if l.seq >= f.seq => Some(Range {
            first_seq: f.seq,
            last_seq: l.seq,
            first_prev: f.prev,
            last_hash: l.hash,
            first_ts: f.ts,
            last_ts: l.ts,
        }),
        _ => None,
    };
    Ok(Summary { bytes, range })
}

/// The `lifecycle` records a file starts with (`rotated`, `pruned` …), read
/// within [`HEAD_SCAN_BYTES`]; empty if the file cannot be read.
pub(super) fn head_lifecycle(path: &Path) -> Vec<Record> {
    head_records(path, false).unwrap_or_default()
}

/// Valid records at the head of `path`: with `first_only`, the first valid
/// one (skipping broken lines); otherwise the leading `lifecycle` records.
fn head_records(path: &Path, first_only: bool) -> io::Result<Vec<Record>> {
    let mut reader = BufReader::new(File::open(path)?.take(HEAD_SCAN_BYTES));
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader).take(MAX_LINE_BYTES as u64 + 2).read_until(b'\n', &mut buf)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            // End of file or of the scan window (a cut line is not a record).
            return Ok(out);
        }
        buf.pop();
        match check_line(&buf) {
            Ok(rec) if first_only => return Ok(vec![rec]),
            Ok(rec) if rec.kind == kind::LIFECYCLE => out.push(rec),
            Ok(_) => return Ok(out),
            Err(_) if first_only => {}
            Err(_) => return Ok(out),
        }
    }
}

/// What a `pruned` record says about the run of history it ends.
#[derive(Clone, Debug)]
pub(super) struct Pruned {
    pub last_seq: u64,
    pub last_hash: String,
    pub history_from: u64,
    pub history_complete: bool,
}

impl Pruned {
    /// Reads a `lifecycle` `pruned` record (`None` for anything else).
    pub(super) fn from_record(r: &Record) -> Option<Pruned> {
        let d = r.detail.as_ref()?;
        if r.kind != kind::LIFECYCLE || d.get("event").and_then(Value::as_str) != Some("pruned") {
            return None;
        }
        Some(Pruned {
            last_seq: d.get("last_seq")?.as_u64()?,
            last_hash: d.get("last_hash")?.as_str()?.to_string(),
            history_from: d.get("history_from")?.as_u64()?,
            history_complete: d.get("history_complete")?.as_bool()?,
        })
    }
}

/// How far back from the end of an existing file start-up looks for the last
/// valid record to resume the chain from.
pub const RESUME_SCAN_BYTES: u64 = 1024 * 1024;

/// The last valid record in the final [`RESUME_SCAN_BYTES`] of a regular
/// file, and a note if anything after it is not a valid record.
pub(super) fn last_valid_record(path: &Path) -> io::Result<(Option<Record>, Option<String>)> {
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

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::json;

    use super::*;
    use crate::audit::test_support::{cfg, path_of, records, write_n};
    use crate::audit::{AuditConfig, VerifyOptions, VerifyReport, kind, verify, verify_with};

    fn pruned_records(files: &[PathBuf]) -> Vec<serde_json::Value> {
        files
            .iter()
            .flat_map(|f| records(f))
            .filter(|r| r.kind == kind::LIFECYCLE)
            .filter_map(|r| r.detail)
            .filter(|d| d["event"] == "pruned")
            .collect()
    }

    fn expect(files: &[PathBuf], seq: u64) -> VerifyReport {
        verify_with(files, &VerifyOptions { expect_from: Some(seq) }).expect("verify")
    }

    /// The dropped ranges must cover 1..first kept seq exactly, without
    /// gaps or overlaps.
    fn assert_dropped_covers(r: &VerifyReport) {
        let first = r.first_seq.expect("first seq");
        let mut next = 1;
        for d in &r.dropped {
            assert_eq!(d.first_seq, next, "{:?}", r.dropped);
            next = d.last_seq + 1;
        }
        assert_eq!(next, first, "dropped ranges end right before the first kept record: {:?}", r.dropped);
    }

    #[tokio::test]
    async fn every_deleted_file_is_recorded_before_it_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 2000, keep: 2, ..cfg(dir.path()) };
        let path = path_of(&c);
        write_n(c.clone(), 0, 100).await;
        let files = rotated_files(&path);
        assert_eq!(files.len(), 3, "{files:?}");
        let r = verify(&files).expect("verify");
        assert!(r.ok && r.starts_mid_chain && r.unrecorded.is_none(), "{r:?}");
        assert_dropped_covers(&r);
        let first = r.first_seq.expect("first");
        // The newest ranges come with their file, times and the pruning time.
        let newest = r.dropped.last().expect("dropped");
        assert!(newest.file.as_deref().is_some_and(|f| f.starts_with("audit.jsonl.")), "{newest:?}");
        assert!(newest.pruned_at.is_some() && newest.first_ts.is_some() && newest.last_hash.is_some());
        // Every pruned record traces back to the first record ever.
        let pruned = pruned_records(&files);
        assert!(!pruned.is_empty());
        for p in &pruned {
            assert_eq!((p["history_from"].as_u64(), p["history_complete"].as_bool()), (Some(1), Some(true)), "{p}");
        }

        // --expect-from at its edge: the first kept seq passes, one less fails.
        assert!(expect(&files, first).ok);
        assert!(expect(&files, first + 1).ok);
        let r = expect(&files, first - 1);
        assert!(!r.ok);
        let p = r.first_problem.expect("problem");
        assert_eq!((p.reason.as_str(), p.seq), ("history_missing", Some(first)), "{p:?}");
        assert!(p.detail.contains("pruned by rotation: 1-"), "{}", p.detail);
        let r = expect(&files, 1);
        assert_dropped_covers(&r);
        assert_eq!(r.first_problem.expect("problem").reason, "history_missing");
    }

    #[tokio::test]
    async fn a_file_deleted_by_hand_is_unrecorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 2000, keep: 3, ..cfg(dir.path()) };
        let path = path_of(&c);
        write_n(c.clone(), 0, 100).await;
        // The attacker removes the oldest kept file: the rest still chains.
        let oldest = rotated_files(&path).remove(0);
        let gone = records(&oldest);
        fs::remove_file(&oldest).expect("rm");
        let files = rotated_files(&path);
        let r = verify(&files).expect("verify");
        assert!(r.ok, "the chain itself is intact: {r:?}");
        let last_gone = gone.last().expect("records").seq;
        assert_eq!(r.first_seq, Some(last_gone + 1));
        let u = r.unrecorded.clone().expect("unrecorded history");
        assert_eq!((u.first_seq, u.last_seq), (1, last_gone));
        let r = expect(&files, 1);
        let p = r.first_problem.expect("problem");
        assert_eq!(p.reason, "unrecorded_drop", "{p:?}");
        assert!(p.detail.contains(&format!("records 1-{last_gone}")), "{}", p.detail);
        // Also when the expected start is still present.
        let r = expect(&files, last_gone + 5);
        assert_eq!(r.first_problem.expect("problem").reason, "unrecorded_drop");
    }

    #[tokio::test]
    async fn keep_zero_records_each_deleted_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 2000, keep: 0, ..cfg(dir.path()) };
        let path = path_of(&c);
        write_n(c.clone(), 0, 40).await;
        let files = rotated_files(&path);
        assert_eq!(files, vec![path.clone()]);
        let r = verify(&files).expect("verify");
        assert!(r.ok && r.unrecorded.is_none(), "{r:?}");
        assert_dropped_covers(&r);
        assert_eq!(r.dropped.last().and_then(|d| d.file.clone()).as_deref(), Some("audit.jsonl.1"));
    }

    #[tokio::test]
    async fn lowering_keep_prunes_every_extra_file_with_a_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 2000, keep: 6, ..cfg(dir.path()) };
        let path = path_of(&c);
        write_n(c.clone(), 0, 60).await;
        let before = rotated_files(&path).len();
        assert_eq!(before, 7);
        // One record with a smaller max_bytes: exactly one rotation.
        write_n(AuditConfig { keep: 1, max_bytes: 300, ..c.clone() }, 60, 1).await;
        let files = rotated_files(&path);
        assert_eq!(files.len(), 2, "{files:?}");
        let r = verify(&files).expect("verify");
        assert!(r.ok && r.unrecorded.is_none(), "{r:?}");
        assert_dropped_covers(&r);
        // One rotation deleted 6 files: 6 pruned records side by side.
        let head = head_lifecycle(&path);
        assert_eq!(head.len(), 7, "rotated + 6 pruned at the head: {head:?}");
        assert_eq!(pruned_records(std::slice::from_ref(&path)).len(), 6);
    }

    #[tokio::test]
    async fn history_lost_before_pruning_records_stays_unrecorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 2000, keep: 50, ..cfg(dir.path()) };
        let path = path_of(&c);
        write_n(c.clone(), 0, 60).await;
        // History lost the old way (no pruned record): the oldest two files.
        let mut files = rotated_files(&path);
        let lost = records(&files[1]).last().expect("last").seq;
        for f in files.drain(..2) {
            fs::remove_file(f).expect("rm");
        }
        // Renumber the rest so they are contiguous from .1 again.
        let n = files.len() - 1;
        for (i, f) in files.iter().take(n).enumerate() {
            fs::rename(f, rotated_path(&path, n - i)).expect("rename");
        }
        // Rotation now prunes with records, but cannot vouch for 1..=lost.
        write_n(AuditConfig { keep: 1, ..c.clone() }, 60, 20).await;
        let files = rotated_files(&path);
        let r = verify(&files).expect("verify");
        assert!(r.ok, "{r:?}");
        let u = r.unrecorded.clone().expect("unrecorded");
        assert_eq!((u.first_seq, u.last_seq), (1, lost));
        assert_eq!(r.dropped.first().map(|d| d.first_seq), Some(lost + 1), "{:?}", r.dropped);
        assert_eq!(expect(&files, 1).first_problem.expect("problem").reason, "unrecorded_drop");
    }

    #[tokio::test]
    async fn rotation_keeps_the_chain_across_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 4000, keep: 100, ..cfg(dir.path()) };
        let path = path_of(&c);
        write_n(c.clone(), 0, 200).await;
        let files = rotated_files(&path);
        assert!(files.len() > 5, "{files:?}");
        assert_eq!(files.last(), Some(&path));
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
        assert!(verify(&rotated_files(&path)).expect("verify").ok);
    }

    #[tokio::test]
    async fn rotation_deletes_beyond_keep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = AuditConfig { max_bytes: 2000, keep: 3, ..cfg(dir.path()) };
        let path = path_of(&c);
        write_n(c.clone(), 0, 100).await;
        let files = rotated_files(&path);
        assert_eq!(files.len(), 4, "{files:?}");
        assert!(!rotated_path(&path, 4).exists());
        let r = verify(&files).expect("verify");
        assert!(r.ok && r.starts_mid_chain, "{r:?}");
        assert_eq!(r.last_seq, records(&path).last().map(|r| r.seq));
    }

    #[tokio::test]
    async fn resumes_from_rotated_file_when_current_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let path = path_of(&c);
        write_n(c.clone(), 0, 5).await;
        // A crash right after renaming the current file away.
        fs::rename(&path, rotated_path(&path, 1)).expect("rename");
        write_n(c.clone(), 5, 5).await;
        let r = verify(&rotated_files(&path)).expect("verify");
        assert!(r.ok && r.records == 10, "{r:?}");
    }
}
