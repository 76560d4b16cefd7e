//! `tailops audit verify`: checks the chain over a log's files, and what
//! history is missing before them.
//!
//! ```text
//! tailops audit verify [--expect-from SEQ] /var/lib/tailops/audit.jsonl.2 /var/lib/tailops/audit.jsonl.1 /var/lib/tailops/audit.jsonl
//! ```
//!
//! Files are given oldest first ([`rotated_files`](super::rotated_files)
//! lists them in that order). [`verify`] reports the number of records
//! checked and the first problem (file, 1-based line, seq, reason). Chain
//! reasons: `bad_json`, `line_too_long`, `not_canonical`, `hash_mismatch`,
//! `chain_broken`, `seq_gap`, `seq_out_of_order`.
//!
//! If the oldest file does not start at the beginning of the chain (older
//! files were rotated away), `starts_mid_chain` is set, `dropped` lists the
//! ranges that rotation deleted (from the `pruned` records, see
//! [`rotate`](super::rotate)), and `unrecorded` the history that was removed
//! without such a record (by hand, or by a version before pruning records).
//! Without `--expect-from` that is a note, not an error. With
//! [`VerifyOptions::expect_from`] it fails: `unrecorded_drop` when history
//! before the first kept record is gone without a record, and
//! `history_missing` when the kept files start after the expected `seq`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::format::{GENESIS_PREV, MAX_LINE_BYTES, check_line};
use super::kind;

/// What [`verify_with`] checks beyond the chain.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The files must hold every record from this `seq` on, and whatever
    /// is missing before their first record must have been pruned with a
    /// record.
    pub expect_from: Option<u64>,
}

/// Result of [`verify`].
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// No problem found.
    pub ok: bool,
    /// Valid records checked (before the first problem, if any).
    pub records: u64,
    /// The first record's `prev` is not the genesis value: older files were
    /// rotated away. A note, not an error (unless `--expect-from`).
    pub starts_mid_chain: bool,
    pub first_problem: Option<Problem>,
    /// `seq` of the first and last valid records checked.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// `hash` of the last valid record checked (anchor it elsewhere to detect
    /// truncation of the newest records).
    pub last_hash: Option<String>,
    /// History before the first record that rotation deleted, oldest first,
    /// as its `pruned` records describe it. A run older than the `pruned`
    /// records still in the files is one entry with only `first_seq` and
    /// `last_seq` (`summarized`).
    pub dropped: Vec<DroppedRange>,
    /// History before the first record that is gone without a `pruned`
    /// record accounting for it.
    pub unrecorded: Option<SeqRange>,
}

/// A run of `seq`s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeqRange {
    pub first_seq: u64,
    pub last_seq: u64,
}

/// One deleted file, from its `pruned` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedRange {
    pub first_seq: u64,
    pub last_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Times of its first and last records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<String>,
    /// `hash` of its last record (the `prev` of the next one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_hash: Option<String>,
    /// When it was deleted (the `pruned` record's `ts`) and that record's
    /// `seq`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned_record_seq: Option<u64>,
    /// Older than every `pruned` record still present: known only from
    /// `history_from` of the oldest one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub summarized: bool,
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
    /// `chain_broken`, `seq_gap`, `seq_out_of_order`; with `--expect-from`
    /// also `unrecorded_drop` and `history_missing`.
    pub reason: String,
    pub detail: String,
}

/// A `pruned` record as read by the verifier.
struct PrunedRec {
    range: DroppedRange,
    first_prev: String,
    history_from: u64,
    history_complete: bool,
}

fn pruned_of(rec: &super::Record) -> Option<PrunedRec> {
    let d = rec.detail.as_ref()?;
    if rec.kind != kind::LIFECYCLE || d.get("event").and_then(Value::as_str) != Some("pruned") {
        return None;
    }
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    let first_seq = d.get("first_seq")?.as_u64()?;
    Some(PrunedRec {
        range: DroppedRange {
            first_seq,
            last_seq: d.get("last_seq")?.as_u64()?,
            file: s("file"),
            first_ts: s("first_ts"),
            last_ts: s("last_ts"),
            last_hash: s("last_hash"),
            pruned_at: Some(rec.ts.clone()),
            pruned_record_seq: Some(rec.seq),
            summarized: false,
        },
        first_prev: s("first_prev")?,
        history_from: d.get("history_from").and_then(Value::as_u64).unwrap_or(first_seq),
        history_complete: d.get("history_complete").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Verifies the chain over `files`, given oldest first. Stops at the first
/// problem. I/O errors (a missing file) are returned as errors.
pub fn verify(files: &[PathBuf]) -> io::Result<VerifyReport> {
    verify_with(files, &VerifyOptions::default())
}

/// [`verify`] with the history checks of `opts`.
pub fn verify_with(files: &[PathBuf], opts: &VerifyOptions) -> io::Result<VerifyReport> {
    let mut report = VerifyReport {
        ok: true,
        records: 0,
        starts_mid_chain: false,
        first_problem: None,
        first_seq: None,
        last_seq: None,
        last_hash: None,
        dropped: Vec::new(),
        unrecorded: None,
    };
    let mut last: Option<(u64, String)> = None;
    let mut first_prev: Option<String> = None;
    let mut pruned: Vec<PrunedRec> = Vec::new();
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
                    first_prev = Some(rec.prev.clone());
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
            if let Some(p) = pruned_of(&rec) {
                pruned.push(p);
            }
            report.records += 1;
            report.last_seq = Some(rec.seq);
            report.last_hash = Some(rec.hash.clone());
            last = Some((rec.seq, rec.hash));
        }
    }
    if let (Some(first_seq), Some(first_prev)) = (report.first_seq, first_prev) {
        history(&mut report, first_seq, &first_prev, pruned);
        if let Some(expect) = opts.expect_from {
            expect_from(&mut report, files, first_seq, expect);
        }
    } else if let Some(expect) = opts.expect_from {
        report.ok = false;
        report.first_problem = Some(Problem {
            file: files.first().cloned().unwrap_or_default(),
            line: 0,
            seq: None,
            reason: "history_missing".into(),
            detail: format!("the files hold no record; expected every record from seq {expect}"),
        });
    }
    Ok(report)
}

/// Fills `dropped` and `unrecorded`: what is missing before the first
/// record (`first_seq`, chained to `first_prev`), and what the `pruned`
/// records say about it.
fn history(report: &mut VerifyReport, first_seq: u64, first_prev: &str, pruned: Vec<PrunedRec>) {
    if first_prev == GENESIS_PREV {
        return;
    }
    // Only what is really missing (a leftover file can make a `pruned`
    // record describe records still present).
    let mut older: Vec<PrunedRec> = pruned.into_iter().filter(|p| p.range.last_seq < first_seq).collect();
    older.sort_by_key(|p| (p.range.first_seq, p.range.last_seq));
    older.dedup_by(|a, b| a.range.first_seq == b.range.first_seq && a.range.last_seq == b.range.last_seq);
    // Walk back from the first record through adjacent `pruned` records:
    // each must end right before (seq and hash) the run after it.
    let mut chain: Vec<PrunedRec> = Vec::new();
    let (mut want_seq, mut want_hash) = (first_seq, first_prev.to_string());
    while let Some(i) = older.iter().position(|p| {
        p.range.last_seq.checked_add(1) == Some(want_seq) && p.range.last_hash.as_deref() == Some(want_hash.as_str())
    }) {
        let p = older.swap_remove(i);
        want_seq = p.range.first_seq;
        want_hash = p.first_prev.clone();
        chain.push(p);
        if want_hash == GENESIS_PREV {
            break;
        }
    }
    chain.reverse();
    // `history_from` of the newest adjacent record covers what is older
    // than the records still present.
    let (from, complete) = match chain.last() {
        Some(newest) if newest.history_complete || want_hash == GENESIS_PREV => {
            (newest.history_from.min(want_seq), true)
        }
        Some(newest) => (newest.history_from.min(want_seq), false),
        None => (first_seq, false),
    };
    if from < want_seq {
        report.dropped.push(DroppedRange {
            first_seq: from,
            last_seq: want_seq - 1,
            file: None,
            first_ts: None,
            last_ts: None,
            last_hash: None,
            pruned_at: None,
            pruned_record_seq: None,
            summarized: true,
        });
    }
    report.dropped.extend(chain.into_iter().map(|p| p.range));
    if !complete && from > 1 {
        report.unrecorded = Some(SeqRange { first_seq: 1, last_seq: from - 1 });
    }
}

/// The `--expect-from` checks, after a clean chain.
fn expect_from(report: &mut VerifyReport, files: &[PathBuf], first_seq: u64, expect: u64) {
    let file = files.first().cloned().unwrap_or_default();
    let ranges =
        report.dropped.iter().map(|d| format!("{}-{}", d.first_seq, d.last_seq)).collect::<Vec<_>>().join(", ");
    let problem = if let Some(u) = &report.unrecorded {
        Some(Problem {
            file,
            line: 1,
            seq: Some(first_seq),
            reason: "unrecorded_drop".into(),
            detail: format!(
                "records {}-{} are gone and no pruned record accounts for them (deleted outside rotation?){}",
                u.first_seq,
                u.last_seq,
                if ranges.is_empty() { String::new() } else { format!("; pruned by rotation: {ranges}") }
            ),
        })
    } else if first_seq > expect {
        Some(Problem {
            file,
            line: 1,
            seq: Some(first_seq),
            reason: "history_missing".into(),
            detail: format!(
                "expected every record from seq {expect}, the files start at seq {first_seq}; pruned by rotation: {}",
                if ranges.is_empty() { "none recorded".to_string() } else { ranges }
            ),
        })
    } else {
        None
    };
    if let Some(p) = problem {
        report.ok = false;
        report.first_problem = Some(p);
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::audit::Record;
    use crate::audit::test_support::{cfg, lines, path_of, records, write_n};

    #[tokio::test]
    async fn chain_of_1000_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let path = path_of(&c);
        write_n(c.clone(), 0, 1000).await;
        let recs = records(&path);
        assert_eq!(recs.len(), 1000);
        assert_eq!(recs[0].seq, 1);
        assert_eq!(recs[0].prev, GENESIS_PREV);
        assert_eq!(recs[999].seq, 1000);
        // args are redacted on the way in
        assert_eq!(recs[5].args, Some(json!({"n": 5, "password": "[REDACTED]"})));
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.records, 1000);
        assert!(!r.starts_mid_chain);
        assert_eq!(r.first_seq, Some(1));
        assert_eq!(r.last_seq, Some(1000));
        assert_eq!(r.last_hash.as_deref(), Some(recs[999].hash.as_str()));
    }

    #[tokio::test]
    async fn edited_byte_is_a_hash_mismatch_at_that_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let path = path_of(&c);
        write_n(c.clone(), 0, 100).await;
        let mut ls = lines(&path);
        ls[49] = ls[49].replacen("tool-49", "tool-4X", 1);
        fs::write(&path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert!(!r.ok);
        assert_eq!(r.records, 49);
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.seq, p.reason.as_str()), (50, Some(50), "hash_mismatch"));
        assert_eq!(p.file, path);

        // A byte that breaks the JSON.
        let mut ls = lines(&path);
        ls[49] = ls[49].replacen("tool-4X", "tool-49", 1);
        ls[9] = ls[9].replacen('{', "[", 1);
        fs::write(&path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.reason.as_str()), (10, "bad_json"));

        // Whitespace keeps the JSON meaning but changes the hashed bytes.
        let mut ls = lines(&path);
        ls[9] = ls[9].replacen('[', "{", 1);
        ls[19] = ls[19].replacen("\"seq\":", "\"seq\": ", 1);
        fs::write(&path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.reason.as_str()), (20, "hash_mismatch"));
    }

    #[tokio::test]
    async fn deleted_line_is_a_seq_gap_and_forged_line_breaks_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let path = path_of(&c);
        write_n(c.clone(), 0, 100).await;
        let orig = lines(&path);
        let mut ls = orig.clone();
        ls.remove(30); // seq 31
        fs::write(&path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert_eq!(r.records, 30);
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.seq, p.reason.as_str()), (31, Some(32), "seq_gap"));

        // Delete seq 31 and re-number + re-hash only that next record: the
        // seq fits but prev does not.
        let mut rec: Record = serde_json::from_str(&ls[30]).expect("parse");
        rec.seq = 31;
        rec.hash = rec.compute_hash().expect("hash");
        ls[30] = serde_json::to_string(&rec).expect("ser");
        fs::write(&path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.seq, p.reason.as_str()), (31, Some(31), "chain_broken"));

        // Swapped lines.
        let mut ls = orig.clone();
        ls.swap(10, 11);
        fs::write(&path, ls.join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        let p = r.first_problem.expect("problem");
        assert_eq!((p.line, p.reason.as_str()), (11, "seq_gap"));

        // Dropping the first lines only makes it start mid-chain.
        fs::write(&path, orig[5..].join("\n") + "\n").expect("write");
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert!(r.ok && r.starts_mid_chain && r.records == 95, "{r:?}");
    }

    #[test]
    fn verify_missing_file_is_an_io_error() {
        assert!(verify(&[PathBuf::from("/nonexistent/audit.jsonl")]).is_err());
    }
}
