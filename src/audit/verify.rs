//! `tailops audit verify`: checks the chain over a log's files.
//!
//! ```text
//! tailops audit verify /var/lib/tailops/audit.jsonl.2 /var/lib/tailops/audit.jsonl.1 /var/lib/tailops/audit.jsonl
//! ```
//!
//! Files are given oldest first ([`rotated_files`](super::rotated_files)
//! lists them in that order). [`verify`] reports the number of records
//! checked and the first problem (file, 1-based line, seq, reason). Reasons:
//! `bad_json`, `line_too_long`, `not_canonical`, `hash_mismatch`,
//! `chain_broken`, `seq_gap`, `seq_out_of_order`. If the oldest file does not
//! start at the beginning of the chain (older files were rotated away),
//! `starts_mid_chain` is set; that is a note, not an error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::format::{GENESIS_PREV, MAX_LINE_BYTES, check_line};

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
