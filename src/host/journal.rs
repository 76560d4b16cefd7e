//! The journal as structured data: `journalctl -o json` with an argv we
//! build (never a shell), read as a stream and stopped as soon as the page
//! is full, so a query costs what it returns, not the journal's size.
//! Cursors page both ways (`after_cursor` forward in time, `before_cursor`
//! backward). Every message is redacted before anything else sees it, so
//! `grep` matches only the redacted text. `follow` streams new entries for
//! a bounded window.
//!
//! Without a journal (no `journalctl`, no journal directory) every call is
//! `unavailable` with the reason, and `/readyz` says so.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use crate::mcp::contract::{ErrorCategory, ToolError};

/// Where `journalctl` may be (fixed programs only).
pub const JOURNALCTL: &[&str] = &["/usr/bin/journalctl", "/bin/journalctl"];
/// The host's journal directories (one must exist unless `journal_dir` is set).
pub const HOST_JOURNAL_DIRS: &[&str] = &["/var/log/journal", "/run/log/journal"];
/// Longest JSON line read from journalctl; longer entries are skipped (and
/// counted in `skipped_oversize`).
pub const MAX_JSON_LINE: usize = 1024 * 1024;
/// Longest message kept; longer ones are cut (and marked `message_cut`).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// Longest value kept of an extra output field.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Most entries one query reads (matching or not) before it stops with
/// `truncated` and cursors to continue from.
pub const MAX_SCAN_ENTRIES: usize = 200_000;
/// Bytes of journalctl's error output kept for the error message.
const MAX_STDERR: u64 = 4096;
/// How long journalctl may take to exit after its output ended.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// Least time between two progress notifications of a follow.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The fields every entry is built from (journalctl always adds the
/// cursor, timestamps and boot id).
const BASE_FIELDS: &[&str] =
    &["PRIORITY", "_SYSTEMD_UNIT", "UNIT", "_PID", "_COMM", "SYSLOG_IDENTIFIER", "MESSAGE", "_TRANSPORT"];

/// One journal entry.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct Entry {
    /// RFC 3339 with microseconds.
    pub time: String,
    /// 0 (emerg) … 7 (debug).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The unit that logged it (or that systemd's message is about).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Process name (or syslog identifier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// The message, secrets redacted.
    pub message: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub message_cut: bool,
    /// Pass as `after_cursor` or `before_cursor` to page from here.
    pub cursor: String,
    /// Extra fields asked for with `fields` (values redacted).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl Entry {
    /// Bytes this entry adds to an answer (what `max_bytes` counts).
    fn size(&self) -> usize {
        let fields: usize = self.fields.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        self.message.len() + self.cursor.len() + self.time.len() + fields + 96
    }
}

/// A query's filters and bounds (checked by the tool layer).
#[derive(Clone, Debug, Default)]
pub struct JournalQuery {
    pub unit: Option<String>,
    /// Inclusive priority range (0 emerg … 7 debug).
    pub priority: Option<(u8, u8)>,
    /// Unix seconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Substring of the redacted message.
    pub grep: Option<String>,
    pub ignore_case: bool,
    /// `0`, `-1` … or a boot id.
    pub boot: Option<String>,
    pub after_cursor: Option<String>,
    pub before_cursor: Option<String>,
    pub max_lines: usize,
    pub max_bytes: usize,
    /// Extra fields to return per entry.
    pub fields: Vec<String>,
}

/// A page of entries, oldest first.
#[derive(Clone, Debug, Serialize, JsonSchema, Default)]
pub struct QueryOutput {
    pub entries: Vec<Entry>,
    /// More entries in the query's direction were left out (page full,
    /// `max_bytes`, or the scan limit): continue with the cursor of that
    /// direction.
    pub truncated: bool,
    /// Pass as `before_cursor` for older entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub older_cursor: Option<String>,
    /// Pass as `after_cursor` for newer entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newer_cursor: Option<String>,
    /// Entries read (matching or not).
    pub scanned: usize,
    /// Entries skipped because they were longer than the line limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped_oversize: usize,
}

/// What `follow` returns.
#[derive(Clone, Debug, Serialize, JsonSchema, Default)]
pub struct FollowOutput {
    /// New entries, oldest first (the newest `max_lines` within `max_bytes`).
    pub entries: Vec<Entry>,
    /// New entries seen during the window (also those dropped).
    pub seen: u64,
    /// Older new entries were dropped to stay within the bounds.
    pub truncated: bool,
    /// Cancelled by the client before the window ended.
    pub cancelled: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Receives followed entries (MCP progress notifications in the tool layer).
pub trait FollowSink {
    /// `seen` so far and the newest entry; false when the client is gone.
    fn notify(&self, seen: u64, last: &Entry) -> impl Future<Output = bool> + Send;
}

/// The journal reader.
#[derive(Clone, Debug)]
pub struct Journal {
    dir: Option<PathBuf>,
}

pub(crate) fn unavailable(message: impl Into<String>) -> ToolError {
    ToolError::unavailable(
        message,
        "this host may not keep a systemd journal; set [systemd] journal_dir to read one elsewhere; other tool \
         domains keep working",
    )
}

/// A priority by name (`err`, `warning` …) or number (0-7).
pub fn parse_priority(s: &str) -> Result<u8, ToolError> {
    const NAMES: &[&str] = &["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
    let t = s.trim().to_ascii_lowercase();
    let alias = match t.as_str() {
        "error" => "err",
        "warn" => "warning",
        "panic" => "emerg",
        "critical" => "crit",
        other => other,
    };
    if let Some(i) = NAMES.iter().position(|n| *n == alias) {
        return u8::try_from(i).map_err(|_| ToolError::internal("priority index"));
    }
    match t.parse::<u8>() {
        Ok(n) if n <= 7 => Ok(n),
        _ => Err(ToolError::invalid_input(
            format!("{s:?} is not a priority"),
            "use 0-7 or emerg, alert, crit, err, warning, notice, info, debug",
        )),
    }
}

/// A cursor as journalctl issues them (`s=…;i=…;b=…;m=…;t=…;x=…`).
pub fn check_cursor(field: &str, c: &str) -> Result<(), ToolError> {
    let ok = !c.is_empty()
        && c.len() <= 512
        && c.contains('=')
        && c.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '=' | ';'));
    if ok {
        Ok(())
    } else {
        Err(ToolError::invalid_input(
            format!("{field} is not a journal cursor"),
            "pass a cursor from an earlier answer unchanged",
        ))
    }
}

/// A boot: `0` (this one), `-1` … `-1000`, or a 32-hex-digit boot id.
pub fn check_boot(b: &str) -> Result<(), ToolError> {
    let offset = b.parse::<i32>().is_ok_and(|n| (-1000..=0).contains(&n));
    let id = b.len() == 32 && b.chars().all(|c| c.is_ascii_hexdigit());
    if offset || id {
        Ok(())
    } else {
        Err(ToolError::invalid_input(format!("boot {b:?} is not a boot"), "use 0, -1 … -1000, or a boot id"))
    }
}

/// An output field name: upper-case letters, digits, `_`; at most 64.
pub fn check_field(f: &str) -> Result<(), ToolError> {
    let ok = !f.is_empty()
        && f.len() <= 64
        && !f.starts_with(|c: char| c.is_ascii_digit())
        && f.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ToolError::invalid_input(
            format!("{f:?} is not a journal field name"),
            "use upper-case journal field names like _EXE, CODE_FILE, _HOSTNAME",
        ))
    }
}

/// A journal value as text: strings as they are, byte arrays (binary or
/// non-UTF-8 data) decoded lossily, repeated fields by their first value.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) if a.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = a.iter().filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(a) => a.first().and_then(value_text),
        _ => None,
    }
}

fn cut(mut s: String, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    (s, true)
}

/// One JSON line of journalctl as an entry, redacted.
pub fn parse_entry(line: &str, extra: &[String]) -> Option<Entry> {
    let v: Value = serde_json::from_str(line).ok()?;
    let o = v.as_object()?;
    let get = |k: &str| o.get(k).and_then(value_text);
    let cursor = get("__CURSOR")?;
    let us: i64 = get("__REALTIME_TIMESTAMP")?.parse().ok()?;
    let time = chrono::DateTime::from_timestamp_micros(us)?.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (message, message_cut) =
        cut(crate::redact::redact_line(&get("MESSAGE").unwrap_or_default()), MAX_MESSAGE_BYTES);
    let fields = extra
        .iter()
        .filter_map(|f| get(f).map(|val| (f.clone(), cut(crate::redact::redact_line(&val), MAX_FIELD_BYTES).0)))
        .collect();
    Some(Entry {
        time,
        priority: get("PRIORITY").and_then(|p| p.parse().ok()),
        // systemd's own messages about a unit carry it in UNIT (their
        // _SYSTEMD_UNIT is init.scope); UNIT from any other process is not
        // trusted.
        unit: match get("_SYSTEMD_UNIT") {
            Some(u) if u == "init.scope" => get("UNIT").or(Some(u)),
            Some(u) => Some(u),
            None => get("UNIT"),
        },
        pid: get("_PID").and_then(|p| p.parse().ok()),
        comm: get("_COMM").or_else(|| get("SYSLOG_IDENTIFIER")),
        message,
        message_cut,
        cursor,
        fields,
    })
}

fn grep_matches(q: &JournalQuery, e: &Entry) -> bool {
    match &q.grep {
        None => true,
        Some(g) if q.ignore_case => e.message.to_lowercase().contains(&g.to_lowercase()),
        Some(g) => e.message.contains(g.as_str()),
    }
}

impl Journal {
    pub fn new(dir: Option<&Path>) -> Self {
        Self { dir: dir.map(Path::to_path_buf) }
    }

    fn program() -> Result<&'static str, ToolError> {
        JOURNALCTL
            .iter()
            .copied()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| unavailable("journalctl is not installed"))
    }

    /// Whether there is a journal to read, or why not.
    fn check(&self) -> Result<&'static str, ToolError> {
        let prog = Self::program()?;
        match &self.dir {
            Some(d) if !d.is_dir() => {
                Err(unavailable(format!("the configured journal_dir {} does not exist", d.display())))
            }
            Some(_) => Ok(prog),
            None if HOST_JOURNAL_DIRS.iter().any(|d| Path::new(d).is_dir()) => Ok(prog),
            None => Err(unavailable("this host has no systemd journal (/var/log/journal, /run/log/journal)")),
        }
    }

    /// Journal state for `/readyz`.
    pub fn health(&self) -> Value {
        match self.check() {
            Ok(_) => json!({ "status": "ok" }),
            Err(e) => json!({ "status": "unavailable", "error": e.message }),
        }
    }

    /// The argv shared by queries and follows: the journal, the output
    /// format and the filters.
    fn base_args(&self, q: &JournalQuery) -> Vec<String> {
        let mut a = vec!["--no-pager".to_string(), "--quiet".into(), "--all".into(), "--output=json".into()];
        if let Some(d) = &self.dir {
            a.push(format!("--directory={}", d.display()));
        }
        let mut fields: Vec<&str> = BASE_FIELDS.to_vec();
        fields.extend(q.fields.iter().map(String::as_str));
        a.push(format!("--output-fields={}", fields.join(",")));
        if let Some(u) = &q.unit {
            a.push(format!("--unit={u}"));
        }
        if let Some((lo, hi)) = q.priority {
            a.push(format!("--priority={lo}..{hi}"));
        }
        if let Some(s) = q.since {
            a.push(format!("--since=@{s}"));
        }
        if let Some(u) = q.until {
            a.push(format!("--until=@{u}"));
        }
        if let Some(b) = &q.boot {
            a.push(format!("--boot={b}"));
        }
        a
    }

    fn spawn(prog: &str, args: &[String]) -> Result<tokio::process::Child, ToolError> {
        tokio::process::Command::new(prog)
            .args(args)
            .env("LC_ALL", "C")
            .env("SYSTEMD_PAGER", "cat")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable(format!("cannot run journalctl: {}", e.kind())))
    }

    /// Ends the child (killed when we stopped reading early, else waited
    /// for) and turns a failure with nothing read into an error.
    async fn finish(mut child: tokio::process::Child, read_any: bool, early: bool) -> Result<(), ToolError> {
        if early {
            let _ = child.start_kill();
        }
        let status = match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
            Ok(st) => st.ok(),
            Err(_) => {
                let _ = child.start_kill();
                child.wait().await.ok()
            }
        };
        if read_any || status.is_some_and(|s| s.success()) {
            return Ok(());
        }
        let mut err = String::new();
        if let Some(e) = child.stderr.take() {
            let _ = e.take(MAX_STDERR).read_to_string(&mut err).await;
        }
        let first = crate::redact::redact_line(err.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim());
        if first.is_empty() || status.and_then(|s| s.code()).is_none() {
            return Ok(());
        }
        let lower = first.to_lowercase();
        Err(if lower.contains("cursor") {
            ToolError::invalid_input(format!("journalctl: {first}"), "pass a cursor from an earlier answer unchanged")
        } else if lower.contains("boot") {
            ToolError::not_found(format!("journalctl: {first}"), "use 0, -1 … or a boot id from this journal")
        } else if lower.contains("no journal files") {
            unavailable(format!("journalctl: {first}"))
        } else {
            ToolError::new(ErrorCategory::Unavailable, format!("journalctl: {first}"), "")
        })
    }

    /// One page: the newest `max_lines` matching entries (or older than
    /// `before_cursor`), or — with `since` or `after_cursor` — the oldest
    /// from there on. Oldest first either way.
    pub async fn query(&self, q: &JournalQuery) -> Result<QueryOutput, ToolError> {
        let prog = self.check()?;
        let forward = q.after_cursor.is_some() || (q.since.is_some() && q.before_cursor.is_none());
        let mut args = self.base_args(q);
        if let Some(c) = &q.after_cursor {
            args.push(format!("--after-cursor={c}"));
        }
        if let Some(c) = &q.before_cursor {
            args.push(format!("--after-cursor={c}"));
        }
        if !forward {
            args.push("--reverse".into());
        }
        let mut child = Self::spawn(prog, &args)?;
        let stdout = child.stdout.take().ok_or_else(|| ToolError::internal("journalctl stdout"))?;
        let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_JSON_LINE));
        let mut out = QueryOutput::default();
        let (mut first, mut last): (Option<String>, Option<String>) = (None, None);
        let mut bytes = 0usize;
        while let Some(item) = lines.next().await {
            let line = match item {
                Ok(l) => l,
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    out.skipped_oversize = out.skipped_oversize.saturating_add(1);
                    continue;
                }
                Err(LinesCodecError::Io(_)) => break,
            };
            if out.scanned >= MAX_SCAN_ENTRIES {
                out.truncated = true;
                break;
            }
            out.scanned += 1;
            let Some(e) = parse_entry(&line, &q.fields) else { continue };
            if grep_matches(q, &e) {
                let size = e.size();
                if out.entries.len() >= q.max_lines || bytes.saturating_add(size) > q.max_bytes {
                    out.scanned -= 1;
                    out.truncated = true;
                    break;
                }
                bytes = bytes.saturating_add(size);
                if first.is_none() {
                    first = Some(e.cursor.clone());
                }
                last = Some(e.cursor.clone());
                out.entries.push(e);
            } else {
                if first.is_none() {
                    first = Some(e.cursor.clone());
                }
                last = Some(e.cursor);
            }
        }
        drop(lines);
        Self::finish(child, out.scanned > 0, out.truncated).await?;
        if forward {
            (out.older_cursor, out.newer_cursor) = (first, last);
        } else {
            out.entries.reverse();
            (out.newer_cursor, out.older_cursor) = (first, last);
        }
        Ok(out)
    }

    /// New entries after `after_cursor` (or from now) for `window`, each
    /// passed to `sink` (at most every [`PROGRESS_INTERVAL`]); stops early
    /// when cancelled. Keeps the newest `max_lines` within `max_bytes`.
    pub async fn follow<S: FollowSink>(
        &self,
        q: &JournalQuery,
        window: Duration,
        ct: &CancellationToken,
        sink: Option<&S>,
    ) -> Result<FollowOutput, ToolError> {
        let prog = self.check()?;
        let mut args = self.base_args(q);
        args.push("--follow".into());
        match &q.after_cursor {
            Some(c) => args.push(format!("--after-cursor={c}")),
            None => args.push("--lines=0".into()),
        }
        let mut child = Self::spawn(prog, &args)?;
        let stdout = child.stdout.take().ok_or_else(|| ToolError::internal("journalctl stdout"))?;
        let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_JSON_LINE));
        let mut out = FollowOutput::default();
        let mut kept: VecDeque<Entry> = VecDeque::new();
        let mut bytes = 0usize;
        let mut last_note: Option<Instant> = None;
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let item = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = ct.cancelled() => { out.cancelled = true; break }
                item = lines.next() => item,
            };
            let Some(item) = item else { break };
            let Ok(line) = item else { continue };
            let Some(e) = parse_entry(&line, &q.fields) else { continue };
            if !grep_matches(q, &e) {
                continue;
            }
            out.seen = out.seen.saturating_add(1);
            if let Some(s) = sink
                && last_note.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL)
            {
                last_note = Some(Instant::now());
                if !s.notify(out.seen, &e).await {
                    out.cancelled = true;
                    break;
                }
            }
            bytes = bytes.saturating_add(e.size());
            kept.push_back(e);
            while kept.len() > q.max_lines || (bytes > q.max_bytes && kept.len() > 1) {
                if let Some(old) = kept.pop_front() {
                    bytes = bytes.saturating_sub(old.size());
                    out.truncated = true;
                }
            }
        }
        drop(lines);
        Self::finish(child, true, true).await?;
        out.entries = kept.into();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"__CURSOR":"s=a;i=1","__REALTIME_TIMESTAMP":"1700000000000001","PRIORITY":"3","_SYSTEMD_UNIT":"web.service","_PID":"42","_COMM":"web","MESSAGE":"login password=hunter2 ok","_EXE":"/usr/bin/web --token abc"}"#;

    #[test]
    fn entries_parse_and_are_redacted() {
        let e = parse_entry(LINE, &["_EXE".into()]).expect("entry");
        assert_eq!(e.time, "2023-11-14T22:13:20.000001Z");
        assert_eq!((e.priority, e.pid), (Some(3), Some(42)));
        assert_eq!(e.unit.as_deref(), Some("web.service"));
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(!e.fields["_EXE"].contains("abc"), "{:?}", e.fields);
        // Binary messages come as byte arrays.
        let bin = r#"{"__CURSOR":"c=1","__REALTIME_TIMESTAMP":"1","MESSAGE":[104,105,255]}"#;
        assert_eq!(parse_entry(bin, &[]).map(|e| e.message).as_deref(), Some("hi\u{fffd}"));
        assert!(parse_entry("not json", &[]).is_none());
        assert!(parse_entry(r#"{"MESSAGE":"no cursor"}"#, &[]).is_none());
    }

    #[test]
    fn long_messages_are_cut_at_the_limit() {
        for (n, cut_expected) in
            [(MAX_MESSAGE_BYTES - 1, false), (MAX_MESSAGE_BYTES, false), (MAX_MESSAGE_BYTES + 1, true)]
        {
            let line = json!({"__CURSOR": "c=1", "__REALTIME_TIMESTAMP": "1", "MESSAGE": "é".repeat(n / 2) + &"x".repeat(n % 2)});
            let e = parse_entry(&line.to_string(), &[]).expect("entry");
            assert_eq!(e.message_cut, cut_expected, "{n}");
            assert!(e.message.len() <= MAX_MESSAGE_BYTES);
        }
    }

    #[test]
    fn grep_sees_only_redacted_text() {
        let e = parse_entry(LINE, &[]).expect("entry");
        let q = |g: &str| JournalQuery { grep: Some(g.into()), ..Default::default() };
        assert!(!grep_matches(&q("hunter2"), &e));
        assert!(grep_matches(&q("login"), &e));
        let qi = JournalQuery { grep: Some("LOGIN".into()), ignore_case: true, ..Default::default() };
        assert!(grep_matches(&qi, &e));
        assert!(!grep_matches(&q("LOGIN"), &e));
    }

    #[test]
    fn inputs_are_checked() {
        assert_eq!(parse_priority("err").ok(), Some(3));
        assert_eq!(parse_priority("WARNING").ok(), Some(4));
        assert_eq!(parse_priority("7").ok(), Some(7));
        for bad in ["8", "-1", "loud", ""] {
            assert!(parse_priority(bad).is_err(), "{bad}");
        }
        assert!(check_cursor("c", "s=ab;i=1f;b=0;m=1;t=2;x=3").is_ok());
        for bad in ["", "--reverse", "s=1 --x", "a;b", &"s=".repeat(300)] {
            assert!(check_cursor("c", bad).is_err(), "{bad}");
        }
        for ok in ["0", "-1", "-1000", "0123456789abcdef0123456789abcdef"] {
            assert!(check_boot(ok).is_ok(), "{ok}");
        }
        for bad in ["1", "-1001", "all", "0123456789abcdef0123456789abcde", "--list-boots"] {
            assert!(check_boot(bad).is_err(), "{bad}");
        }
        assert!(check_field("_EXE").is_ok());
        assert!(check_field(&"A".repeat(64)).is_ok());
        for bad in ["_exe", "", "A B", "1X", &"A".repeat(65)] {
            assert!(check_field(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_argv_is_built_not_interpolated() {
        let j = Journal::new(Some(Path::new("/tmp/j")));
        let q = JournalQuery {
            unit: Some("web.service".into()),
            priority: Some((0, 3)),
            since: Some(5),
            boot: Some("-1".into()),
            fields: vec!["_EXE".into()],
            ..Default::default()
        };
        let a = j.base_args(&q);
        assert!(a.contains(&"--directory=/tmp/j".to_string()));
        assert!(a.contains(&"--unit=web.service".to_string()));
        assert!(a.contains(&"--priority=0..3".to_string()));
        assert!(a.contains(&"--since=@5".to_string()));
        assert!(a.contains(&"--boot=-1".to_string()));
        assert!(a.iter().any(|x| x.starts_with("--output-fields=") && x.ends_with(",_EXE")));
    }

    #[test]
    fn missing_journal_dir_is_unavailable() {
        let j = Journal::new(Some(Path::new("/nonexistent/journal")));
        assert_eq!(j.health()["status"], "unavailable");
    }
}
