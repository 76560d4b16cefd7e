//! The audit chain verifier (`tailops audit verify`): a chain of records
//! built from fuzzer-chosen content, written as the writer writes it,
//! verifies; ANY single-byte change of it is detected; and arbitrary
//! bytes as a log file never panic the verifier (and, if accepted, hold
//! only records that check on their own).
//!
//! Input: byte 0 = mode/record count, bytes 1..5 = position of the changed
//! byte, byte 5 = the XOR applied to it, then the record content: strings
//! separated by 0xFF (principal, tool, args JSON, detail JSON).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tailops::audit::{GENESIS_PREV, MAX_LINE_BYTES, Record, verify};

fn scratch() -> &'static PathBuf {
    static P: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &P.get_or_init(|| {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("audit.jsonl");
        (d, p)
    })
    .1
}

/// The line the writer writes for `rec` (canonical form + hash member).
fn line_of(rec: &mut Record) -> Option<Vec<u8>> {
    rec.hash = rec.compute_hash().ok()?;
    serde_json::to_vec(&*rec).ok()
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    let [mode, p0, p1, p2, p3, x, rest @ ..] = data else { return };
    if mode & 0x80 != 0 {
        // Raw bytes as a whole log file.
        std::fs::write(path, rest).expect("write");
        let r = verify(std::slice::from_ref(path)).expect("verify reads");
        if r.ok {
            for l in rest.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let rec: Record = serde_json::from_slice(l).expect("accepted line is a record");
                assert_eq!(rec.compute_hash().expect("hash"), rec.hash, "accepted a record with a wrong hash");
            }
        }
        return;
    }
    let mut parts = rest.split(|b| *b == 0xFF).map(|p| String::from_utf8_lossy(p).into_owned());
    let principal = parts.next();
    let tool = parts.next();
    // As the writer does (audit::format::encode_line): a JSON null is
    // recorded as absent.
    let json = |s: String| serde_json::from_str::<Value>(&s).ok().filter(|v| !v.is_null());
    let args = parts.next().and_then(json);
    let detail = parts.next().and_then(json);
    let n = 1 + u64::from(mode % 4);
    let mut file = Vec::new();
    let mut prev = GENESIS_PREV.to_string();
    for seq in 0..n {
        let mut rec = Record {
            seq,
            ts: "2026-11-30T02:00:00.000Z".into(),
            kind: "tool_call".into(),
            principal: principal.clone(),
            node: None,
            source: None,
            session: None,
            tool: tool.clone(),
            args: args.clone(),
            decision: None,
            outcome: Some("ok".into()),
            error_category: None,
            duration_ms: Some(seq),
            detail: detail.clone(),
            prev: prev.clone(),
            hash: String::new(),
        };
        let Some(line) = line_of(&mut rec) else { return };
        if line.len() > MAX_LINE_BYTES {
            return; // the writer stubs such records first
        }
        prev = rec.hash.clone();
        file.extend_from_slice(&line);
        file.push(b'\n');
    }
    std::fs::write(path, &file).expect("write");
    let r = verify(std::slice::from_ref(path)).expect("verify reads");
    assert!(r.ok, "a valid chain failed: {:?}", r.first_problem);
    assert_eq!(r.records, n);
    assert_eq!(r.last_hash.as_deref(), Some(prev.as_str()));

    if *x == 0 {
        return;
    }
    let pos = u32::from_le_bytes([*p0, *p1, *p2, *p3]) as usize % file.len();
    file[pos] ^= *x;
    std::fs::write(path, &file).expect("write");
    let r = verify(std::slice::from_ref(path)).expect("verify reads");
    assert!(!r.ok, "byte {pos} changed (xor {x:#04x}) and the chain still verifies ({} records)", r.records);
});
