//! Rotation: file names and the shift of rotated files.
//!
//! When appending a record would make the current file exceed
//! [`AuditConfig::max_bytes`](super::AuditConfig::max_bytes), the files are
//! shifted (`audit.jsonl.1` → `audit.jsonl.2` …, files beyond
//! [`AuditConfig::keep`](super::AuditConfig::keep) are deleted),
//! `audit.jsonl` is renamed to `audit.jsonl.1` and a new `audit.jsonl` is
//! started whose first record is a `lifecycle` record
//! `{"event":"rotated","from":"audit.jsonl.1"}` chained to the last record of
//! the previous file. A file always takes at least one record, so a tiny
//! `max_bytes` means one record per file. The writer decides when to rotate
//! and writes the `rotated` record; this file moves the files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The rotated file number `n` of `path` (`audit.jsonl.n`).
pub(super) fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The existing files of the log at `path`, oldest first (`path.N`, …,
/// `path.1`, `path`): the argument list for [`verify`](super::verify).
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

/// Shifts the rotated files of the (closed) log at `path` and renames it to
/// `.1`, keeping at most `keep` rotated files; returns the name the old file
/// now has (`None` when `keep` is 0 and it was deleted).
pub(super) fn shift_files(path: &Path, keep: usize) -> io::Result<Option<String>> {
    // Delete left-overs beyond `keep` (e.g. from a larger `keep` before);
    // `.keep` itself is replaced by the shift below.
    let mut n = keep + 1;
    while rotated_path(path, n).exists() {
        fs::remove_file(rotated_path(path, n))?;
        n += 1;
    }
    if keep == 0 {
        fs::remove_file(path)?;
        return Ok(None);
    }
    for i in (1..keep).rev() {
        let src = rotated_path(path, i);
        if src.exists() {
            fs::rename(&src, rotated_path(path, i + 1))?;
        }
    }
    let dst = rotated_path(path, 1);
    fs::rename(path, &dst)?;
    Ok(dst.file_name().map(|n| n.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::json;

    use super::*;
    use crate::audit::test_support::{cfg, path_of, records, write_n};
    use crate::audit::{AuditConfig, kind, verify};

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
