//! The journal: `journal_query` and `journal_tail` (`logs:read`), the MCP
//! face of `host::journal` (`journalctl -o json` with an argv we build).
//! Entries are structured (time, priority, unit, pid, comm, message,
//! cursor), secrets redacted before `grep` sees them; pages by cursor both
//! ways; `journal_tail` can follow a unit for up to
//! [`MAX_FOLLOW_SECS`] with progress notifications, cancellable.

use std::time::Duration;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TailopsServer;
use super::input::parse_time;
use crate::auth::scopes::Scope;
use crate::host::journal::{
    Entry, FollowSink, JournalQuery, QueryOutput, check_boot, check_cursor, check_field, parse_priority,
};
use crate::host::systemd::unit_name;
use crate::mcp::{ToolError, ToolSpec};

pub const SPECS: &[ToolSpec] = &[
    ToolSpec { name: "journal_query", domain: "journal", scope: Some(Scope::LogsRead), writes: false },
    ToolSpec { name: "journal_tail", domain: "journal", scope: Some(Scope::LogsRead), writes: false },
];

/// Entries per `journal_query` page (default, largest).
pub const DEFAULT_MAX_LINES: usize = 100;
pub const MAX_LINES: usize = 10_000;
/// Bytes per answer (default, smallest, largest `max_bytes`).
pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;
pub const MIN_MAX_BYTES: usize = 16 * 1024;
pub const MAX_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Extra output fields one query may ask for.
pub const MAX_FIELDS: usize = 16;
/// Longest `grep` text.
pub const MAX_GREP_LEN: usize = 256;
/// `journal_tail`: lines (default, largest) and the longest follow window.
pub const DEFAULT_TAIL_LINES: usize = 50;
pub const MAX_TAIL_LINES: usize = 1000;
pub const MAX_FOLLOW_SECS: u64 = 30;
/// Seconds kept free inside the spine's time limit when following.
pub const FOLLOW_MARGIN_SECS: u64 = 2;
/// Longest log text in one progress notification.
pub const PROGRESS_TEXT: usize = 200;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryInput {
    /// Only this unit (`nginx` means `nginx.service`), with systemd's own
    /// messages about it.
    #[serde(default)]
    pub unit: Option<String>,
    /// A priority or a range: `err` (emerg…err), `warning..err`, `0..3`
    /// (names: emerg, alert, crit, err, warning, notice, info, debug).
    #[serde(default)]
    pub priority: Option<String>,
    /// From this time: RFC 3339, Unix seconds, or a duration ago (15m, 2h,
    /// 7d). With since (and no cursor) the page starts at the oldest match.
    #[serde(default)]
    pub since: Option<String>,
    /// Up to this time (same syntax).
    #[serde(default)]
    pub until: Option<String>,
    /// Only messages containing this text (matched against the redacted
    /// message).
    #[serde(default)]
    pub grep: Option<String>,
    /// Match grep case-insensitively.
    #[serde(default)]
    pub ignore_case: bool,
    /// A boot: 0 (current), -1 (previous) …, or a boot id.
    #[serde(default)]
    pub boot: Option<String>,
    /// Entries after this cursor (`newer_cursor` of an earlier answer), oldest first.
    #[serde(default)]
    pub after_cursor: Option<String>,
    /// Entries before this cursor (`older_cursor` of an earlier answer).
    #[serde(default)]
    pub before_cursor: Option<String>,
    /// Entries per page (1-10000, default 100).
    #[serde(default)]
    pub max_lines: Option<usize>,
    /// Bytes per answer (16 KiB-8 MiB, default 1 MiB).
    #[serde(default)]
    pub max_bytes: Option<usize>,
    /// Extra journal fields per entry (up to 16, e.g. _EXE, CODE_FILE).
    #[serde(default)]
    pub fields: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailInput {
    /// The unit (`nginx` means `nginx.service`).
    pub unit: String,
    /// Last lines to return first (0-1000, default 50).
    #[serde(default)]
    pub lines: Option<usize>,
    /// Then follow new lines for this many seconds (0-30, default 0), with
    /// a progress notification per new line (at most 10 a second) when the
    /// request has a progress token; cancellable.
    #[serde(default)]
    pub follow_secs: Option<u64>,
    /// Only messages containing this text (redacted text).
    #[serde(default)]
    pub grep: Option<String>,
    /// Match grep case-insensitively.
    #[serde(default)]
    pub ignore_case: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TailOutput {
    /// The last lines, then the followed ones; oldest first.
    pub entries: Vec<Entry>,
    /// Lines that arrived while following (also those dropped by the bounds).
    pub followed: u64,
    /// Lines were dropped to stay within the bounds.
    pub truncated: bool,
    /// The client cancelled the follow.
    pub cancelled: bool,
    /// Pass as `after_cursor` to journal_query for what came after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newer_cursor: Option<String>,
}

fn priority_range(s: &str) -> Result<(u8, u8), ToolError> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse_priority(a)?, parse_priority(b)?);
            Ok((a.min(b), a.max(b)))
        }
        None => Ok((0, parse_priority(s)?)),
    }
}

fn check_grep(g: &Option<String>) -> Result<(), ToolError> {
    match g {
        Some(g) if g.is_empty() || g.len() > MAX_GREP_LEN => Err(ToolError::invalid_input(
            format!("grep must be 1-{MAX_GREP_LEN} bytes"),
            "use a shorter substring of the message",
        )),
        _ => Ok(()),
    }
}

impl QueryInput {
    pub fn query(self) -> Result<JournalQuery, ToolError> {
        let max_lines = self.max_lines.unwrap_or(DEFAULT_MAX_LINES);
        if !(1..=MAX_LINES).contains(&max_lines) {
            return Err(ToolError::invalid_input(
                format!("max_lines {max_lines} out of range"),
                format!("use 1-{MAX_LINES} and page with the cursors"),
            ));
        }
        let max_bytes = self.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if !(MIN_MAX_BYTES..=MAX_MAX_BYTES).contains(&max_bytes) {
            return Err(ToolError::invalid_input(
                format!("max_bytes {max_bytes} out of range"),
                format!("use {MIN_MAX_BYTES}-{MAX_MAX_BYTES}"),
            ));
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(ToolError::invalid_input(format!("at most {MAX_FIELDS} fields"), "ask for fewer fields"));
        }
        for f in &self.fields {
            check_field(f)?;
        }
        check_grep(&self.grep)?;
        if self.after_cursor.is_some() && self.before_cursor.is_some() {
            return Err(ToolError::invalid_input(
                "after_cursor and before_cursor page in opposite directions",
                "pass one of them",
            ));
        }
        for (field, c) in [("after_cursor", &self.after_cursor), ("before_cursor", &self.before_cursor)] {
            if let Some(c) = c {
                check_cursor(field, c)?;
            }
        }
        if let Some(b) = &self.boot {
            check_boot(b)?;
        }
        let since = self.since.as_deref().map(|s| parse_time("since", s)).transpose()?;
        let until = self.until.as_deref().map(|s| parse_time("until", s)).transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(ToolError::invalid_input("since is after until", "swap them"));
        }
        Ok(JournalQuery {
            unit: self.unit.as_deref().map(unit_name).transpose()?,
            priority: self.priority.as_deref().map(priority_range).transpose()?,
            since,
            until,
            grep: self.grep,
            ignore_case: self.ignore_case,
            boot: self.boot,
            after_cursor: self.after_cursor,
            before_cursor: self.before_cursor,
            max_lines,
            max_bytes,
            fields: self.fields,
        })
    }
}

/// Followed lines as MCP progress notifications.
struct McpProgress<'a> {
    token: ProgressToken,
    peer: &'a Peer<RoleServer>,
}

impl FollowSink for McpProgress<'_> {
    fn notify(&self, seen: u64, last: &Entry) -> impl Future<Output = bool> + Send {
        let mut text: String = last.message.chars().take(PROGRESS_TEXT).collect();
        if text.len() < last.message.len() {
            text.push('…');
        }
        #[allow(clippy::cast_precision_loss)] // a line count, far below 2^52
        let p = ProgressNotificationParam::new(self.token.clone(), seen as f64).with_message(text);
        async move { self.peer.notify_progress(p).await.is_ok() }
    }
}

#[tool_router(router = journal_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "journal_query",
        description = "Read the systemd journal as structured entries (time, priority, unit, pid, comm, message, cursor), secrets redacted: filter by unit, priority range, since/until, boot and grep (on the redacted text); the newest page by default, oldest-first from since; page with older_cursor/newer_cursor; bounded lines and bytes.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn journal_query(&self, Parameters(input): Parameters<QueryInput>) -> Result<Json<QueryOutput>, ToolError> {
        let q = input.query()?;
        self.host.journal.query(&q).await.map(Json)
    }

    #[tool(
        name = "journal_tail",
        description = "A unit's last journal lines, then optionally follow new ones for up to 30 s (progress notifications per line with a progress token; cancellable). Secrets redacted.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn journal_tail(
        &self,
        Parameters(input): Parameters<TailInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<TailOutput>, ToolError> {
        let lines = input.lines.unwrap_or(DEFAULT_TAIL_LINES);
        if lines > MAX_TAIL_LINES {
            return Err(ToolError::invalid_input(
                format!("lines {lines} out of range"),
                format!("use 0-{MAX_TAIL_LINES}; journal_query pages further"),
            ));
        }
        let follow = input.follow_secs.unwrap_or(0);
        if follow > MAX_FOLLOW_SECS {
            return Err(ToolError::invalid_input(
                format!("follow_secs {follow} out of range"),
                format!("use 0-{MAX_FOLLOW_SECS} and call again to keep following"),
            ));
        }
        check_grep(&input.grep)?;
        let mut q = JournalQuery {
            unit: Some(unit_name(&input.unit)?),
            grep: input.grep,
            ignore_case: input.ignore_case,
            max_lines: lines.max(1),
            max_bytes: DEFAULT_MAX_BYTES,
            ..Default::default()
        };
        let mut out =
            TailOutput { entries: Vec::new(), followed: 0, truncated: false, cancelled: false, newer_cursor: None };
        if lines > 0 {
            let first = self.host.journal.query(&q).await?;
            out.truncated = first.truncated;
            out.newer_cursor = first.newer_cursor;
            out.entries = first.entries;
        }
        if follow == 0 {
            return Ok(Json(out));
        }
        let limit = self.spine.cfg.limits.tool_timeout_secs.saturating_sub(FOLLOW_MARGIN_SECS).max(1);
        let window = Duration::from_secs(follow.min(limit));
        q.after_cursor = out.newer_cursor.clone();
        q.max_lines = MAX_TAIL_LINES;
        let sink = ctx.meta.get_progress_token().map(|token| McpProgress { token, peer: &ctx.peer });
        let f = self.host.journal.follow(&q, window, &ctx.ct, sink.as_ref()).await?;
        out.followed = f.seen;
        out.truncated |= f.truncated;
        out.cancelled = f.cancelled;
        if let Some(last) = f.entries.last() {
            out.newer_cursor = Some(last.cursor.clone());
        }
        out.entries.extend(f.entries);
        if out.entries.len() > MAX_TAIL_LINES {
            let drop = out.entries.len() - MAX_TAIL_LINES;
            out.entries.drain(..drop);
            out.truncated = true;
        }
        Ok(Json(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> QueryInput {
        QueryInput::default()
    }

    #[test]
    fn query_bounds_at_their_edges() {
        for (n, ok) in [(0, false), (1, true), (MAX_LINES, true), (MAX_LINES + 1, false)] {
            assert_eq!(QueryInput { max_lines: Some(n), ..base() }.query().is_ok(), ok, "max_lines {n}");
        }
        for (n, ok) in
            [(MIN_MAX_BYTES - 1, false), (MIN_MAX_BYTES, true), (MAX_MAX_BYTES, true), (MAX_MAX_BYTES + 1, false)]
        {
            assert_eq!(QueryInput { max_bytes: Some(n), ..base() }.query().is_ok(), ok, "max_bytes {n}");
        }
        let f = |n: usize| (0..n).map(|i| format!("F{i}")).collect::<Vec<_>>();
        assert!(QueryInput { fields: f(MAX_FIELDS), ..base() }.query().is_ok());
        assert!(QueryInput { fields: f(MAX_FIELDS + 1), ..base() }.query().is_err());
        assert!(QueryInput { grep: Some("x".repeat(MAX_GREP_LEN)), ..base() }.query().is_ok());
        assert!(QueryInput { grep: Some("x".repeat(MAX_GREP_LEN + 1)), ..base() }.query().is_err());
        assert!(QueryInput { grep: Some(String::new()), ..base() }.query().is_err());
    }

    #[test]
    fn query_inputs_are_checked() {
        let q = QueryInput {
            unit: Some("web".into()),
            priority: Some("warning..err".into()),
            since: Some("2h".into()),
            until: Some("1h".into()),
            ..base()
        }
        .query()
        .expect("query");
        assert_eq!(q.unit.as_deref(), Some("web.service"));
        assert_eq!(q.priority, Some((3, 4)));
        assert_eq!(
            QueryInput { priority: Some("err".into()), ..base() }.query().ok().and_then(|q| q.priority),
            Some((0, 3))
        );
        for bad in [
            QueryInput { unit: Some("--all".into()), ..base() },
            QueryInput { priority: Some("loud".into()), ..base() },
            QueryInput { since: Some("1h".into()), until: Some("2h".into()), ..base() },
            QueryInput { after_cursor: Some("s=1".into()), before_cursor: Some("s=2".into()), ..base() },
            QueryInput { after_cursor: Some("--reverse".into()), ..base() },
            QueryInput { boot: Some("all".into()), ..base() },
            QueryInput { fields: vec!["lower".into()], ..base() },
        ] {
            assert!(bad.query().is_err());
        }
    }
}
