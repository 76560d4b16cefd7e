//! The record format: [`Event`] (what a caller records), [`Record`] (one
//! line of the log) and the canonical hash chain.
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
//!   (when [`AuditLog::record`](super::AuditLog::record) was called).
//! - `kind`: see [`kind`] (`decision`, `tool_call`, `anomaly`, `alert`,
//!   `lifecycle`).
//! - `args`, `detail`: tool arguments and details (error messages quote
//!   input), always passed through
//!   [`redact_args`](crate::redact::redact_args).
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
//! increases by exactly one. [`verify`](super::verify) does this, and
//! additionally checks that each line is byte-for-byte the serialization of
//! the record it parses to (`not_canonical` otherwise).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::kind;

/// Longest line (record, without its `\n`) the writer produces, and the
/// longest line [`verify`](super::verify) accepts. A record that would be
/// longer has its long argument strings replaced by
/// `{"truncated": true, "bytes": N, "sha256": HEX}`, then if need be its
/// `args` (then its `detail`) by `{"truncated": true, "bytes": N}`.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Longest value (in bytes, before JSON escaping) of each string field of a
/// record (`kind`, `principal`, `tool`, …); longer values are cut at a char
/// boundary and end with `…`. Together with [`MAX_LINE_BYTES`] this bounds a
/// line whatever the caller passes.
pub const MAX_FIELD_BYTES: usize = 512;

/// `prev` of the very first record ever.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Length of the `,"hash":"<64 hex>"}` suffix every line ends with.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

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

/// `ts` of a record: RFC 3339 UTC with milliseconds.
pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The line (without `\n`) and hash of record `seq` for `ev`, chained to
/// `prev`. String fields are capped at [`MAX_FIELD_BYTES`]; if the line would
/// still exceed [`MAX_LINE_BYTES`], first the long top-level strings in
/// `args` (with their sha256), then `args` and then `detail` as a whole are
/// replaced by a stub saying how big they were.
pub(super) fn encode_line(ev: &Event, seq: u64, ts: &str, prev: &str) -> Result<(Vec<u8>, String), serde_json::Error> {
    let cap = |s: &Option<String>| s.as_deref().map(cap_str);
    let mut rec = Record {
        seq,
        ts: cap_str(ts),
        kind: cap_str(&ev.kind),
        principal: cap(&ev.principal),
        node: cap(&ev.node),
        source: cap(&ev.source),
        session: cap(&ev.session),
        tool: cap(&ev.tool),
        // A JSON null is recorded as absent: `Option<Value>` reads `null`
        // back as `None`, so a line holding `"args":null` would never be
        // its record's canonical serialization — `audit verify` would call
        // it tampered and the writer would resume before it on restart.
        // Any caller can send `"arguments": null`.
        args: ev.args.clone().filter(|v| !v.is_null()),
        decision: cap(&ev.decision),
        outcome: cap(&ev.outcome),
        error_category: cap(&ev.error_category),
        duration_ms: ev.duration_ms,
        detail: ev.detail.clone().filter(|v| !v.is_null()),
        prev: prev.to_string(),
        hash: String::new(),
    };
    let mut canonical = serde_json::to_vec(&rec)?;
    if canonical.len() + HASH_SUFFIX_LEN - 1 > MAX_LINE_BYTES {
        // First only the long strings among the arguments (a file's
        // content), so the record keeps what was named (the path) …
        rec.args = rec.args.as_ref().map(shrink_long_strings);
        canonical = serde_json::to_vec(&rec)?;
    }
    if canonical.len() + HASH_SUFFIX_LEN - 1 > MAX_LINE_BYTES {
        // … then the arguments as a whole.
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

pub(super) fn cap_str(s: &str) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s.to_string();
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `args` with each top-level string longer than [`MAX_FIELD_BYTES`]
/// replaced by `{"truncated": true, "bytes": N, "sha256": HEX}` (the hash
/// of the string as redacted; strings over [`MAX_LINE_BYTES`] were stubbed
/// before redaction by [`stub_oversized_strings`], with the hash of what
/// was sent).
fn shrink_long_strings(v: &Value) -> Value {
    let Some(obj) = v.as_object() else { return v.clone() };
    let out = obj
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) if s.len() > MAX_FIELD_BYTES => (k.clone(), string_stub(s)),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    Value::Object(out)
}

/// `args` with each top-level string that could never fit in a line
/// (longer than [`MAX_LINE_BYTES`]) already replaced by its stub (bytes +
/// sha256 of the string as sent): the writer does this before redaction,
/// which would otherwise scan megabytes (a file's content) only for them
/// to be cut. The sha256 then matches e.g. `file_write`'s `new_sha256` for
/// text content.
pub(super) fn stub_oversized_strings(v: &Value) -> Value {
    match v.as_object() {
        Some(obj) if obj.values().any(|x| x.as_str().is_some_and(|s| s.len() > MAX_LINE_BYTES)) => Value::Object(
            obj.iter()
                .map(|(k, x)| match x.as_str() {
                    Some(s) if s.len() > MAX_LINE_BYTES => (k.clone(), string_stub(s)),
                    _ => (k.clone(), x.clone()),
                })
                .collect(),
        ),
        _ => v.clone(),
    }
}

fn string_stub(s: &str) -> Value {
    serde_json::json!({"truncated": true, "bytes": s.len(), "sha256": sha256_hex(s.as_bytes())})
}

fn truncated_stub(v: &Value) -> Value {
    let bytes = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0);
    serde_json::json!({"truncated": true, "bytes": bytes})
}

/// Parses and checks one line by itself (format and hash, not the chain).
/// The error is `(reason, detail)`, `reason` as in
/// [`Problem::reason`](super::Problem::reason).
pub(super) fn check_line(line: &[u8]) -> Result<Record, (&'static str, String)> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::test_support::{call, cfg, lines, path_of, write_n};
    use crate::audit::{AuditLog, verify};

    /// `"arguments": null` from a caller (and a null detail) must give a
    /// line that verifies: found by the audit_verify fuzz target.
    #[test]
    fn null_args_and_detail_give_a_canonical_line() {
        let ev = Event {
            args: Some(Value::Null),
            detail: Some(Value::Null),
            tool: Some("whoami".into()),
            ..Event::new("tool_call")
        };
        let (line, hash) = encode_line(&ev, 0, "2026-11-30T00:00:00.000Z", GENESIS_PREV).expect("encode");
        let rec = check_line(&line).expect("the line verifies");
        assert_eq!((rec.args, rec.detail, rec.hash), (None, None, hash));
    }

    #[tokio::test]
    async fn canonical_form_is_reproducible_externally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let path = path_of(&c);
        write_n(c.clone(), 0, 3).await;
        let mut prev = GENESIS_PREV.to_string();
        for line in lines(&path) {
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

    /// Found by the `audit_verify` fuzz target: a float in a caller's
    /// arguments whose shortest form serde_json (without `float_roundtrip`)
    /// parsed one ulp off made a valid, untampered record `not_canonical`
    /// (and at start-up the writer then resumed from the record before it,
    /// reusing its seq). About a third of all f64 values did this.
    #[tokio::test]
    async fn any_float_in_the_arguments_verifies_and_resumes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let path = path_of(&c);
        let floats = [1.0715660391465826e-75, -1.81996730402717e-179, -1.603964615428183e+143, 0.1, 5e-324, f64::MAX];
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        for (i, f) in floats.iter().enumerate() {
            let mut ev = call(i as u64);
            ev.args = Some(json!({"x": f, "list": [f, {"y": f}]}));
            log.record(ev).expect("record");
        }
        log.close().await;
        task.await.expect("task");
        for line in lines(&path) {
            check_line(line.as_bytes()).unwrap_or_else(|e| panic!("{e:?}: {line}"));
        }
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert!(r.ok && r.records == lines(&path).len() as u64, "{:?}", r.first_problem);
        // A restart resumes after the last record, not before it.
        write_n(c.clone(), 100, 1).await;
        let r = verify(std::slice::from_ref(&path)).expect("verify");
        assert!(r.ok && r.records == lines(&path).len() as u64, "{:?}", r.first_problem);
        assert!(!lines(&path).iter().any(|l| l.contains("\"recovered\"")), "the float record was taken as broken");
    }

    #[tokio::test]
    async fn oversized_args_are_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = cfg(dir.path());
        let path = path_of(&c);
        let (log, task) = AuditLog::start(c.clone()).await.expect("start");
        let mut ev = call(1);
        let content = "x".repeat(100_000);
        ev.args = Some(json!({"path": "w:a", "content": content}));
        ev.tool = Some("é".repeat(10_000));
        log.record(ev.clone()).expect("record");
        // Many short fields: no single long string to cut, so the whole.
        let many: serde_json::Map<String, Value> = (0..10_000).map(|i| (format!("k{i}"), json!("vvvvvvvv"))).collect();
        ev.args = Some(Value::Object(many));
        log.record(ev).expect("record");
        log.close().await;
        task.await.expect("task");
        // Only the two calls: on a loaded machine a `stalled` lifecycle
        // record (redacting 10,000 fields took longer than the stall bound)
        // may stand between them.
        let ls: Vec<String> = lines(&path).into_iter().filter(|l| !l.contains("\"kind\":\"lifecycle\"")).collect();
        assert!(ls[0].len() <= MAX_LINE_BYTES);
        let rec: Record = serde_json::from_str(&ls[0]).expect("parse");
        let sha = sha256_hex(content.as_bytes());
        assert_eq!(
            rec.args,
            Some(json!({"path": "w:a", "content": {"truncated": true, "bytes": 100_000, "sha256": sha}})),
            "the long string is cut, the path kept"
        );
        assert!(rec.tool.expect("tool").len() <= MAX_FIELD_BYTES + 3);
        let rec: Record = serde_json::from_str(&ls[1]).expect("parse");
        assert_eq!(rec.args.expect("args")["truncated"], json!(true));
        assert!(verify(std::slice::from_ref(&path)).expect("verify").ok);
    }
}
