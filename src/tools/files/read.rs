//! Reading files: `file_read` (a byte window or a line range), `file_tail`
//! (the last lines, read backwards from the end; optionally following
//! appended lines for up to 30 s with progress notifications) and
//! `file_hash` (sha256, streamed).
//!
//! Content is redacted (the same [`LineRedactor`] as container logs) unless
//! the caller holds `files:write` on a `read_write` root and asks
//! `raw: true`. Redacted reads always hand the redactor whole lines: a byte
//! window is widened back to the start of its first line and cut after its
//! last complete line, so no offset can split `password=…` into halves the
//! redactor does not recognise. Binary content (a NUL byte or non-UTF-8 in
//! the file's first 8 KiB) is served only when asked `encoding: "base64"`,
//! as is (redaction cannot apply to bytes; the deny list is what keeps key
//! files out). `file_hash` of a text file hashes the redacted view unless
//! raw is allowed and asked, so a hash cannot confirm a guessed secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::rfc3339;
use crate::auth::caller::Caller;
use crate::auth::scopes::Scope;
use crate::host::files::content::{self, LinesError};
use crate::host::files::root::OpenFile;
use crate::host::files::tail::last_lines;
use crate::host::files::{Mode, RelPath, Root};
use crate::mcp::{ToolError, ToolSpec};
use crate::redact::LineRedactor;
use crate::tools::TailopsServer;

pub const SPECS: &[ToolSpec] = &[
    ToolSpec { name: "file_read", domain: "files", scope: Some(Scope::FilesRead), writes: false },
    ToolSpec { name: "file_tail", domain: "files", scope: Some(Scope::FilesRead), writes: false },
    ToolSpec { name: "file_hash", domain: "files", scope: Some(Scope::FilesRead), writes: false },
];

/// Most bytes one `file_read` returns (also the default `length`).
pub const MAX_READ_BYTES: usize = 1024 * 1024;
/// Most bytes scanned from the start of a file to find `from_line`.
pub const MAX_LINE_SCAN_BYTES: u64 = 256 * 1024 * 1024;
/// A redacted byte read starting inside a line longer than
/// [`MAX_READ_BYTES`] skips to the next line start, looking this far.
pub const MAX_LINE_SKIP_BYTES: usize = 16 * 1024 * 1024;
/// Default and most lines of `file_tail`.
pub const DEFAULT_TAIL_LINES: usize = 100;
pub const MAX_TAIL_LINES: usize = 10_000;
/// Most bytes `file_tail` reads back from the end.
pub const MAX_TAIL_BYTES: usize = 4 * 1024 * 1024;
/// Longest follow window.
pub const MAX_FOLLOW_SECS: u64 = 30;
/// How often a follow looks for appended bytes.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Most lines and bytes one follow returns (it stops early at either).
pub const MAX_FOLLOW_LINES: usize = 10_000;
pub const MAX_FOLLOW_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes of one progress notification's message (longer batches are
/// cut there; the result carries every line).
pub const MAX_PROGRESS_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest file `file_hash` hashes (a larger one is refused up front; the
/// call's time is bounded by `[limits] tool_timeout_secs`, and the hashing
/// stops when the call ends).
pub const MAX_HASH_BYTES: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text (default). Binary files are refused in this encoding.
    #[default]
    Text,
    /// Base64 of the bytes (binary files; for text files, of the text as
    /// it would be returned, redacted unless raw).
    Base64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadInput {
    /// `root:relative/path` of a regular file.
    pub path: String,
    /// Byte offset to start at (default 0). Not with from_line/to_line.
    /// Redacted text reads start at the beginning of the line holding it.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Bytes to read (1-1048576, default 1048576).
    #[serde(default)]
    pub length: Option<usize>,
    /// First line to return (1-based). Not with offset.
    #[serde(default)]
    pub from_line: Option<u64>,
    /// Last line to return (inclusive; default: as many as fit in length).
    #[serde(default)]
    pub to_line: Option<u64>,
    /// `text` (default) or `base64` (needed for binary files).
    #[serde(default)]
    pub encoding: Encoding,
    /// Content without redaction: needs files:write and a read_write root.
    #[serde(default)]
    pub raw: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadOutput {
    pub summary: String,
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    pub modified: Option<String>,
    /// Whether the file looks binary (NUL or non-UTF-8 in its first 8 KiB).
    pub binary: bool,
    pub encoding: Encoding,
    /// The content: text, or base64 when encoding is base64.
    pub content: String,
    /// Byte offset the content starts at.
    pub offset: u64,
    /// File bytes covered by the content.
    pub bytes: u64,
    /// For line reads: first and last line returned.
    pub from_line: Option<u64>,
    pub to_line: Option<u64>,
    /// More was asked for (or follows) than one call returns.
    pub truncated: bool,
    /// Where to continue: `offset` for the next byte read.
    pub next_offset: Option<u64>,
    /// Where to continue: `from_line` for the next line read.
    pub next_line: Option<u64>,
    /// A line longer than the read was cut; its rest is skipped.
    pub line_cut: bool,
    /// True unless raw content was asked and allowed.
    pub redacted: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailInput {
    /// `root:relative/path` of a regular text file.
    pub path: String,
    /// Lines from the end (1-10000, default 100).
    #[serde(default)]
    pub lines: Option<usize>,
    /// Keep reading appended lines for this many seconds (1-30), sent as
    /// progress notifications when the request has a progress token.
    #[serde(default)]
    pub follow_secs: Option<u64>,
    /// Content without redaction: needs files:write and a read_write root.
    #[serde(default)]
    pub raw: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FollowOutput {
    /// Lines appended during the window, in order.
    pub lines: Vec<String>,
    /// Progress notifications sent.
    pub progress_notifications: u64,
    /// Times the file shrank (truncated, e.g. copytruncate): reading
    /// restarted at its new start.
    pub truncations: u64,
    /// Times the path came to name another file (rotated by rename and
    /// re-created): the old file was read to its end, then the new one
    /// from its start.
    pub rotations: u64,
    /// Lines longer than 4 MiB that were dropped.
    pub long_lines_dropped: u64,
    /// Why the follow ended: `window` (follow_secs passed), `cancelled`,
    /// `line_cap`, `byte_cap` or `client_gone`. A file that vanishes is
    /// waited for (a new file at the path is read from its start).
    pub stopped: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TailOutput {
    pub summary: String,
    pub path: String,
    pub size: u64,
    /// The last lines, oldest first.
    pub lines: Vec<String>,
    /// Byte offset of the first line returned.
    pub start_offset: u64,
    /// Fewer lines than asked: the 4 MiB read-back cap was reached.
    pub truncated: bool,
    /// Bytes read from the file (the end only, however big it is).
    pub bytes_read: u64,
    pub follow: Option<FollowOutput>,
    pub redacted: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HashInput {
    /// `root:relative/path` of a regular file (at most 4 GiB).
    pub path: String,
    /// Hash the raw bytes of a text file: needs files:write and a
    /// read_write root (without it a text file's redacted view is hashed).
    #[serde(default)]
    pub raw: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HashOutput {
    pub summary: String,
    pub path: String,
    /// Lowercase hex sha256.
    pub sha256: String,
    pub size: u64,
    pub modified: Option<String>,
    /// `raw` (the file's bytes: binary files, or raw asked and allowed) or
    /// `redacted` (the text file_read would return to you).
    pub of: String,
}

/// `raw` needs files:write in effect and a read_write root.
pub(crate) fn raw_allowed(asked: bool, caller: &Caller, root: &Root) -> Result<bool, ToolError> {
    if !asked {
        return Ok(false);
    }
    if !caller.effective_scopes().contains(&Scope::FilesWrite) {
        return Err(ToolError::permission_denied(
            "raw content needs scope files:write",
            "call again without raw to get the redacted content",
        ));
    }
    if root.mode != Mode::ReadWrite {
        return Err(ToolError::permission_denied(
            format!("raw content is only served from read_write roots; {} is read-only", root.name),
            "call again without raw to get the redacted content",
        ));
    }
    Ok(true)
}

fn io_err(root: &Root, rel: &RelPath, e: std::io::Error) -> ToolError {
    match e.raw_os_error() {
        Some(n) => root.errno(rel, rustix::io::Errno::from_raw_os_error(n)),
        None => ToolError::unavailable(format!("{}: {e}", root.show(rel)), ""),
    }
}

/// Redacts text line by line (a final `\n` kept).
pub(crate) fn redact(text: &str, r: &mut LineRedactor) -> String {
    text.split('\n').map(|l| r.line(l)).collect::<Vec<_>>().join("\n")
}

/// `buf` cut back to a UTF-8 character boundary when a multi-byte
/// character is split at its end.
fn utf8_boundary(buf: &[u8]) -> usize {
    match std::str::from_utf8(buf) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => buf.len(),
    }
}

fn binary_refusal(root: &Root, rel: &RelPath) -> ToolError {
    ToolError::invalid_input(
        format!("{} is binary (a NUL byte or non-UTF-8 in its first 8 KiB)", root.show(rel)),
        "ask encoding: \"base64\" to get its bytes",
    )
}

/// What to read.
enum Window {
    Bytes { offset: u64, length: usize },
    Lines { from: u64, to: u64, length: usize },
}

fn window(input: &ReadInput) -> Result<Window, ToolError> {
    let length = input.length.unwrap_or(MAX_READ_BYTES);
    if !(1..=MAX_READ_BYTES).contains(&length) {
        return Err(ToolError::invalid_input(
            format!("length {length} out of range"),
            format!("use 1-{MAX_READ_BYTES} (bytes); read larger files in windows with next_offset"),
        ));
    }
    match (input.offset, input.from_line, input.to_line) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ToolError::invalid_input(
            "offset and from_line/to_line do not go together",
            "read by bytes (offset, length) or by lines (from_line, to_line)",
        )),
        (offset, None, None) => Ok(Window::Bytes { offset: offset.unwrap_or(0), length }),
        (None, from, to) => {
            let from = from.unwrap_or(1);
            let to = to.unwrap_or(u64::MAX);
            if from == 0 || to < from {
                return Err(ToolError::invalid_input(
                    format!("line range {from}-{to} is empty or starts at 0"),
                    "lines count from 1; to_line must be >= from_line",
                ));
            }
            Ok(Window::Lines { from, to, length })
        }
    }
}

/// The blocking body of `file_read`.
pub(crate) fn read_file(root: &Root, rel: &RelPath, input: &ReadInput, raw: bool) -> Result<ReadOutput, ToolError> {
    let win = window(input)?;
    let OpenFile { file, stat, .. } = root.open_file(rel)?;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let binary = content::is_binary(&file).map_err(|e| io_err(root, rel, e))?;
    if binary && input.encoding != Encoding::Base64 {
        return Err(binary_refusal(root, rel));
    }
    let redacted = !raw && !binary;
    let mut out = ReadOutput {
        summary: String::new(),
        path: root.show(rel),
        size,
        modified: rfc3339(stat.st_mtime),
        binary,
        encoding: input.encoding,
        content: String::new(),
        offset: 0,
        bytes: 0,
        from_line: None,
        to_line: None,
        truncated: false,
        next_offset: None,
        next_line: None,
        line_cut: false,
        redacted,
    };
    let bytes: Vec<u8> = match win {
        Window::Bytes { offset, length } => {
            if offset > size {
                return Err(ToolError::invalid_input(
                    format!("offset {offset} is past the end of {} ({size} bytes)", out.path),
                    "file_stat shows the size",
                ));
            }
            let mut start = offset;
            if redacted && offset > 0 {
                start = match content::line_start(&file, offset, MAX_READ_BYTES).map_err(|e| io_err(root, rel, e))? {
                    Some(s) => s,
                    // Inside a line longer than a whole read: its start is
                    // out of reach, so continue at the next line.
                    None => content::after_next_newline(&file, offset, MAX_LINE_SKIP_BYTES)
                        .map_err(|e| io_err(root, rel, e))?
                        .unwrap_or(size),
                };
            }
            let mut buf = content::read_window(&file, start, length).map_err(|e| io_err(root, rel, e))?;
            let end = start.saturating_add(buf.len() as u64);
            let more = end < size;
            let mut next = more.then_some(end);
            if redacted && more {
                match buf.iter().rposition(|&b| b == b'\n') {
                    Some(i) => {
                        buf.truncate(i + 1);
                        next = Some(start + i as u64 + 1);
                    }
                    None => {
                        // One line longer than the read: its start is
                        // returned, the rest skipped.
                        out.line_cut = true;
                        next = content::after_next_newline(&file, end, MAX_LINE_SKIP_BYTES)
                            .map_err(|e| io_err(root, rel, e))?
                            .filter(|&n| n < size);
                    }
                }
            }
            if !binary && more && !out.line_cut {
                let keep = utf8_boundary(&buf);
                if keep < buf.len() && keep > 0 {
                    next = Some(start + keep as u64);
                    buf.truncate(keep);
                }
            }
            out.offset = start;
            out.bytes = buf.len() as u64;
            out.next_offset = next;
            out.truncated = next.is_some();
            buf
        }
        Window::Lines { from, to, length } => {
            let l =
                match content::lines(&file, from, to, length, MAX_LINE_SCAN_BYTES).map_err(|e| io_err(root, rel, e))? {
                    Ok(l) => l,
                    Err(LinesError::TooFar) => {
                        return Err(ToolError::invalid_input(
                            format!("line {from} is not within the first {MAX_LINE_SCAN_BYTES} bytes of {}", out.path),
                            "read far into big files by offset (file_stat shows the size) or use file_tail",
                        ));
                    }
                    Err(LinesError::LineTooLong) => {
                        return Err(ToolError::invalid_input(
                            format!("line {from} of {} is longer than length ({length} bytes)", out.path),
                            "read it by offset and length",
                        ));
                    }
                };
            out.offset = l.start;
            out.bytes = l.bytes.len() as u64;
            if l.last >= l.first {
                out.from_line = Some(l.first);
                out.to_line = Some(l.last);
            }
            let more = l.end < size;
            out.truncated = l.cut;
            out.next_line = (more && l.last >= l.first).then(|| l.last + 1);
            out.next_offset = more.then_some(l.end);
            l.bytes
        }
    };
    let text_out = if binary {
        None
    } else {
        let t = String::from_utf8_lossy(&bytes);
        Some(if redacted { redact(&t, &mut LineRedactor::default()) } else { t.into_owned() })
    };
    out.content = match (input.encoding, text_out) {
        (Encoding::Text, Some(t)) => t,
        (Encoding::Base64, Some(t)) => base64::engine::general_purpose::STANDARD.encode(t.as_bytes()),
        (_, None) => base64::engine::general_purpose::STANDARD.encode(&bytes),
    };
    out.summary = format!(
        "{} bytes of {} from offset {}{}{}{}",
        out.bytes,
        out.path,
        out.offset,
        match (out.from_line, out.to_line) {
            (Some(a), Some(b)) => format!(" (lines {a}-{b})"),
            _ => String::new(),
        },
        if out.truncated { "; more follows (next_offset/next_line)" } else { "" },
        if binary {
            "; binary, base64"
        } else if redacted {
            "; secrets redacted"
        } else {
            "; raw"
        },
    );
    Ok(out)
}

/// Lines as text, redacted unless raw.
fn show_lines(lines: &[Vec<u8>], raw: bool, r: &mut LineRedactor) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let t = String::from_utf8_lossy(l);
            if raw { t.into_owned() } else { r.line(&t) }
        })
        .collect()
}

/// Follow state between polls.
struct Follow {
    open: OpenFile,
    pos: u64,
    pending: Vec<u8>,
    truncations: u64,
    rotations: u64,
    long_dropped: u64,
}

/// One poll: new complete lines appended since the last one (at most
/// `budget` bytes read), noticing truncation and rotation.
fn poll(root: &Root, rel: &RelPath, f: &mut Follow, budget: usize) -> Result<Vec<Vec<u8>>, ToolError> {
    let size = rustix::fs::fstat(&f.open.file)
        .map(|st| u64::try_from(st.st_size).unwrap_or(0))
        .map_err(|e| root.errno(rel, e))?;
    if size < f.pos {
        f.pos = 0;
        f.pending.clear();
        f.truncations += 1;
    }
    let mut out = Vec::new();
    if size > f.pos {
        let want = usize::try_from(size - f.pos).unwrap_or(budget).min(budget);
        let buf = content::read_window(&f.open.file, f.pos, want).map_err(|e| io_err(root, rel, e))?;
        f.pos += buf.len() as u64;
        f.pending.extend_from_slice(&buf);
        if let Some(i) = f.pending.iter().rposition(|&b| b == b'\n') {
            let rest = f.pending.split_off(i + 1);
            let done = std::mem::replace(&mut f.pending, rest);
            out.extend(done[..done.len() - 1].split(|&c| c == b'\n').map(<[u8]>::to_vec));
        }
        if f.pending.len() > MAX_TAIL_BYTES {
            // A line this long is never shown (nor half of it).
            f.pending.clear();
            f.long_dropped += 1;
        }
    } else if let Ok((st, _)) = root.stat(rel)
        && (st.st_dev, st.st_ino) != (f.open.stat.st_dev, f.open.stat.st_ino)
        && let Ok(new) = root.open_file(rel)
    {
        // Drained the old file; the path names a new one now.
        f.open = new;
        f.pos = 0;
        f.pending.clear();
        f.rotations += 1;
    }
    Ok(out)
}

struct Progress<'a> {
    token: ProgressToken,
    peer: &'a Peer<RoleServer>,
}

/// Sets the flag when dropped: a blocking loop sees its call has ended
/// (timed out, cancelled) and stops.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn join_err(e: tokio::task::JoinError) -> ToolError {
    ToolError::internal(e.to_string())
}

/// Follows `rel` from `pos` until the window ends, the call is
/// cancelled, or a cap is reached.
async fn follow(
    root: Arc<Root>,
    rel: RelPath,
    state: Follow,
    secs: u64,
    raw: bool,
    ct: &CancellationToken,
    progress: Option<Progress<'_>>,
) -> Result<FollowOutput, ToolError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut redactor = LineRedactor::default();
    let mut lines: Vec<String> = Vec::new();
    let mut bytes = 0usize;
    let mut sent = 0u64;
    let mut state = Some(state);
    let stopped = loop {
        tokio::select! {
            _ = ct.cancelled() => break "cancelled",
            _ = tokio::time::sleep_until(deadline) => break "window",
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
        let Some(mut st) = state.take() else { break "internal" };
        let (r2, rel2) = (root.clone(), rel.clone());
        let budget = MAX_FOLLOW_BYTES.saturating_sub(bytes).max(1);
        let (st, new) = tokio::task::spawn_blocking(move || {
            let r = poll(&r2, &rel2, &mut st, budget);
            (st, r)
        })
        .await
        .map_err(join_err)?;
        state = Some(st);
        let new = new?;
        if new.is_empty() {
            continue;
        }
        let mut shown = show_lines(&new, raw, &mut redactor);
        let room = MAX_FOLLOW_LINES.saturating_sub(lines.len());
        let capped_lines = shown.len() > room;
        shown.truncate(room);
        bytes = bytes.saturating_add(new.iter().map(|l| l.len() + 1).sum::<usize>());
        if let Some(p) = &progress {
            let mut msg = shown.join("\n");
            if msg.len() > MAX_PROGRESS_MESSAGE_BYTES {
                let mut cut = MAX_PROGRESS_MESSAGE_BYTES;
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                msg.truncate(cut);
            }
            let total = (lines.len() + shown.len()) as f64;
            let param = ProgressNotificationParam::new(p.token.clone(), total).with_message(msg);
            if p.peer.notify_progress(param).await.is_err() {
                lines.extend(shown);
                break "client_gone";
            }
            sent += 1;
        }
        lines.extend(shown);
        if capped_lines || lines.len() >= MAX_FOLLOW_LINES {
            break "line_cap";
        }
        if bytes >= MAX_FOLLOW_BYTES {
            break "byte_cap";
        }
    };
    let st = state.as_ref();
    Ok(FollowOutput {
        lines,
        progress_notifications: sent,
        truncations: st.map_or(0, |s| s.truncations),
        rotations: st.map_or(0, |s| s.rotations),
        long_lines_dropped: st.map_or(0, |s| s.long_dropped),
        stopped: stopped.to_string(),
    })
}

#[tool_router(router = files_read_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "file_read",
        description = "Read a file: a byte window (offset, length) or a line range (from_line, to_line), at most 1 MiB per call, with truncated + next_offset/next_line to continue. Text is redacted (secrets hidden) unless raw is allowed; binary files only with encoding: base64.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn file_read(
        &self,
        Parameters(input): Parameters<ReadInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<ReadOutput>, ToolError> {
        window(&input)?;
        let (root, rel) = self.file_path(&caller, &input.path)?;
        let raw = raw_allowed(input.raw, &caller, &root)?;
        tokio::task::spawn_blocking(move || read_file(&root, &rel, &input, raw).map(Json)).await.map_err(join_err)?
    }

    #[tool(
        name = "file_tail",
        description = "The last lines of a text file (default 100, up to 10000), read backwards from the end so multi-GB logs cost only their end. follow_secs (1-30) keeps reading appended lines, sent as progress notifications when you pass a progress token; cancellable; survives truncation and rotation. Redacted unless raw is allowed.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn file_tail(
        &self,
        Parameters(input): Parameters<TailInput>,
        Extension(caller): Extension<Caller>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<TailOutput>, ToolError> {
        let n = input.lines.unwrap_or(DEFAULT_TAIL_LINES);
        if !(1..=MAX_TAIL_LINES).contains(&n) {
            return Err(ToolError::invalid_input(format!("lines {n} out of range"), "use 1-10000"));
        }
        if let Some(s) = input.follow_secs
            && !(1..=MAX_FOLLOW_SECS).contains(&s)
        {
            return Err(ToolError::invalid_input(format!("follow_secs {s} out of range"), "use 1-30 (seconds)"));
        }
        let (root, rel) = self.file_path(&caller, &input.path)?;
        let raw = raw_allowed(input.raw, &caller, &root)?;
        let following = input.follow_secs.is_some();
        let (r2, rel2) = (root.clone(), rel.clone());
        let (open, tail) = tokio::task::spawn_blocking(move || {
            let open = r2.open_file(&rel2)?;
            if content::is_binary(&open.file).map_err(|e| io_err(&r2, &rel2, e))? {
                return Err(ToolError::invalid_input(
                    format!("{} is binary (a NUL byte or non-UTF-8 in its first 8 KiB)", r2.show(&rel2)),
                    "file_read with encoding: \"base64\" reads binary files",
                ));
            }
            let size = u64::try_from(open.stat.st_size).unwrap_or(0);
            let tail =
                last_lines(&open.file, size, n, MAX_TAIL_BYTES, !following).map_err(|e| io_err(&r2, &rel2, e))?;
            Ok((open, tail))
        })
        .await
        .map_err(join_err)??;
        let size = u64::try_from(open.stat.st_size).unwrap_or(0);
        let mut redactor = LineRedactor::default();
        let lines = show_lines(&tail.lines, raw, &mut redactor);
        let mut out = TailOutput {
            summary: String::new(),
            path: root.show(&rel),
            size,
            lines,
            start_offset: tail.start,
            truncated: tail.cut,
            bytes_read: tail.bytes_read,
            follow: None,
            redacted: !raw,
        };
        if let Some(secs) = input.follow_secs {
            let state =
                Follow { open, pos: tail.end, pending: Vec::new(), truncations: 0, rotations: 0, long_dropped: 0 };
            let progress = ctx.meta.get_progress_token().map(|token| Progress { token, peer: &ctx.peer });
            out.follow = Some(follow(root.clone(), rel.clone(), state, secs, raw, &ctx.ct, progress).await?);
        }
        out.summary = format!(
            "last {} line(s) of {} ({} bytes read of {}){}{}",
            out.lines.len(),
            out.path,
            out.bytes_read,
            size,
            if out.truncated { "; fewer than asked: the 4 MiB read-back cap was reached" } else { "" },
            match &out.follow {
                Some(f) => format!("; followed: {} new line(s), stopped: {}", f.lines.len(), f.stopped),
                None => String::new(),
            }
        );
        Ok(Json(out))
    }

    #[tool(
        name = "file_hash",
        description = "sha256 and size of a file (at most 4 GiB), streamed. For text files the redacted view is hashed (what file_read returns you) unless raw is allowed and asked; binary files are hashed as they are.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn file_hash(
        &self,
        Parameters(input): Parameters<HashInput>,
        Extension(caller): Extension<Caller>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<HashOutput>, ToolError> {
        let (root, rel) = self.file_path(&caller, &input.path)?;
        let raw = raw_allowed(input.raw, &caller, &root)?;
        let stop = Arc::new(AtomicBool::new(false));
        let _guard = StopOnDrop(stop.clone());
        let ct = ctx.ct.clone();
        tokio::task::spawn_blocking(move || {
            hash_file(&root, &rel, raw, &|| !stop.load(Ordering::Relaxed) && !ct.is_cancelled())
        })
        .await
        .map_err(join_err)?
        .map(Json)
    }
}

/// The blocking body of `file_hash`.
fn hash_file(root: &Root, rel: &RelPath, raw: bool, keep_going: &dyn Fn() -> bool) -> Result<HashOutput, ToolError> {
    let OpenFile { file, stat, .. } = root.open_file(rel)?;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let path = root.show(rel);
    if size > MAX_HASH_BYTES {
        return Err(ToolError::invalid_input(
            format!("{path} is {size} bytes; file_hash hashes files up to {MAX_HASH_BYTES} bytes"),
            "hash it on the host",
        ));
    }
    let binary = content::is_binary(&file).map_err(|e| io_err(root, rel, e))?;
    let stopped = || ToolError::new(crate::mcp::ErrorCategory::Timeout, format!("hashing {path} was stopped"), "");
    let (sha256, of) = if binary || raw {
        let (h, _) = content::sha256(&file, MAX_HASH_BYTES, keep_going)
            .map_err(|e| io_err(root, rel, e))?
            .ok_or_else(stopped)?;
        (h, "raw")
    } else {
        // The redacted view, line by line, exactly as file_read shows it.
        let mut h = Sha256::new();
        let mut r = LineRedactor::default();
        let mut at = 0u64;
        let mut pending: Vec<u8> = Vec::new();
        let mut first = true;
        loop {
            if !keep_going() {
                return Err(stopped());
            }
            let buf = content::read_window(&file, at, content::BLOCK * 4).map_err(|e| io_err(root, rel, e))?;
            if buf.is_empty() {
                break;
            }
            at += buf.len() as u64;
            pending.extend_from_slice(&buf);
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                if !first {
                    h.update(b"\n");
                }
                first = false;
                h.update(r.line(&String::from_utf8_lossy(&line[..line.len() - 1])).as_bytes());
            }
        }
        if !first {
            h.update(b"\n");
        }
        h.update(r.line(&String::from_utf8_lossy(&pending)).as_bytes());
        (hex::encode(h.finalize()), "redacted")
    };
    Ok(HashOutput {
        summary: format!("sha256 of {path} ({size} bytes, {of})"),
        path,
        sha256,
        size,
        modified: rfc3339(stat.st_mtime),
        of: of.to_string(),
    })
}

#[cfg(test)]
mod tests;
