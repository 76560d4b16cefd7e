//! Browsing: `file_roots` (the roots the caller can see), `file_stat` (one
//! entry) and `file_list` (a directory, optionally a few levels deep,
//! sorted and paginated). Hidden entries (deny list, include/exclude) are
//! left out of listings and refused by name.

use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rfc3339;
use crate::auth::caller::Caller;
use crate::auth::scopes::Scope;
use crate::host::files::root::OpenDir;
use crate::host::files::{IndexInfo, Kind, Meta, Mode, RelPath, Root};
use crate::mcp::page::{self, Page};
use crate::mcp::{ToolError, ToolSpec};
use crate::tools::TailopsServer;

pub const SPECS: &[ToolSpec] = &[
    ToolSpec { name: "file_roots", domain: "files", scope: Some(Scope::FilesRead), writes: false },
    ToolSpec { name: "file_stat", domain: "files", scope: Some(Scope::FilesRead), writes: false },
    ToolSpec { name: "file_list", domain: "files", scope: Some(Scope::FilesRead), writes: false },
];

/// Default and largest page of `file_list`.
pub const DEFAULT_LIMIT: usize = 200;
pub const MAX_LIMIT: usize = 1000;
/// Deepest `file_list` walk.
pub const MAX_DEPTH: usize = 8;
/// Most entries one `file_list` call reads (all levels together); a
/// larger directory is listed partly, with `scan_truncated: true`.
pub const MAX_SCAN: usize = 100_000;

#[derive(Debug, Serialize, JsonSchema)]
pub struct RootInfo {
    pub name: String,
    pub mode: Mode,
    /// Use as `path` prefix: `NAME:`.
    pub path_prefix: String,
    /// The root's name index (what `file_search` by name answers from).
    pub index: Option<IndexInfo>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RootsOutput {
    pub summary: String,
    pub roots: Vec<RootInfo>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatInput {
    /// `root:relative/path`.
    pub path: String,
}

/// One entry, in caller terms.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EntryInfo {
    /// `root:relative/path`.
    pub path: String,
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits, octal (`"0644"`).
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// User name of `uid`, when the host knows one.
    pub owner: Option<String>,
    /// Last modification, RFC 3339.
    pub modified: Option<String>,
    /// For symlinks: the target as written (never followed by listings).
    pub symlink_target: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatOutput {
    pub summary: String,
    /// What the path leads to (symlinks inside the root followed, as
    /// stat(2) does; one leading outside is refused).
    pub entry: EntryInfo,
    pub nlink: u64,
    /// Where the path leads when it passes symlinks: `root:rel`.
    pub resolved_path: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    #[default]
    Name,
    Size,
    Modified,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Directory: `root:relative/dir` (`root:` for the root itself).
    pub path: String,
    /// Levels to descend (1 = the directory itself, up to 8; default 1).
    #[serde(default)]
    pub depth: Option<usize>,
    /// Sort key: name (default, ascending), size or modified (both
    /// largest/newest first).
    #[serde(default)]
    pub sort_by: SortBy,
    /// Page size (1-1000, default 200).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub summary: String,
    pub path: String,
    pub entries: Vec<EntryInfo>,
    /// Visible entries found (all pages).
    pub total: usize,
    /// True when more pages follow.
    pub truncated: bool,
    pub next_cursor: Option<String>,
    /// True when the walk stopped at 100,000 entries: `total` and the order
    /// cover only what was read.
    pub scan_truncated: bool,
}

/// uid → user name, read once per call.
struct Owners(sysinfo::Users);

impl Owners {
    fn new() -> Self {
        Owners(sysinfo::Users::new_with_refreshed_list())
    }
    fn name(&self, uid: u32) -> Option<String> {
        self.0.iter().find(|u| **u.id() == uid).map(|u| u.name().to_string())
    }
}

fn entry_info(root: &Root, rel: &RelPath, name: &str, meta: &Meta, owners: &Owners) -> EntryInfo {
    EntryInfo {
        path: root.show(rel),
        name: name.to_string(),
        kind: meta.kind,
        size: meta.size,
        mode: meta.mode.clone(),
        uid: meta.uid,
        gid: meta.gid,
        owner: owners.name(meta.uid),
        modified: rfc3339(meta.mtime_unix),
        symlink_target: (meta.kind == Kind::Symlink).then(|| root.read_link(rel).ok()).flatten(),
    }
}

/// Walks `dir` breadth-first to `depth` levels, reading at most
/// [`MAX_SCAN`] entries.
fn walk(root: &Root, dir: OpenDir, depth: usize) -> Result<(Vec<(RelPath, Meta)>, bool), ToolError> {
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from([(dir, 1usize)]);
    let mut cut = false;
    while let Some((d, level)) = queue.pop_front() {
        let room = MAX_SCAN.saturating_sub(out.len());
        let (entries, more) = root.entries(&d, room)?;
        cut |= more;
        for e in entries {
            let rel = d.resolved.join(&e.name);
            if e.meta.kind == Kind::Dir && level < depth && !cut {
                // A subdirectory that vanished or turned into something
                // else meanwhile is skipped, not fatal.
                if let Ok(sub) = root.open_dir(&rel) {
                    queue.push_back((sub, level + 1));
                }
            }
            out.push((rel, e.meta));
        }
        if out.len() >= MAX_SCAN {
            cut |= !queue.is_empty();
            break;
        }
    }
    Ok((out, cut))
}

#[tool_router(router = files_browse_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "file_roots",
        description = "The file roots you can use, with their mode (read or read_write). File tool paths are ROOT:relative/path.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn file_roots(&self, Extension(caller): Extension<Caller>) -> Result<Json<RootsOutput>, ToolError> {
        let allowed = caller.access.root_names();
        let roots: Vec<RootInfo> = self
            .files()
            .visible(allowed.as_ref())
            .map(|r| RootInfo {
                name: r.name.clone(),
                mode: r.mode,
                path_prefix: format!("{}:", r.name),
                index: self.files().index(&r.name).map(|i| i.info()),
            })
            .collect();
        let summary = match roots.len() {
            0 => "no file root is available to you".to_string(),
            n => format!("{n} root(s): {}", roots.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")),
        };
        Ok(Json(RootsOutput { summary, roots }))
    }

    #[tool(
        name = "file_stat",
        description = "One file or directory: kind, size, permission bits, owner, modification time, hard links. Symlinks inside the root are followed (their target is shown); one leading outside is refused.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn file_stat(
        &self,
        Parameters(input): Parameters<StatInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<StatOutput>, ToolError> {
        let (root, rel) = self.file_path(&caller, &input.path)?;
        tokio::task::spawn_blocking(move || {
            let owners = Owners::new();
            let (st, resolved) = root.stat(&rel)?;
            let meta = Meta::of(&st);
            let name = rel.file_name().unwrap_or(".").to_string();
            let mut entry = entry_info(&root, &rel, &name, &meta, &owners);
            // Whether the path itself is a symlink (its target as written).
            if root.lstat(&rel).is_ok_and(|l| Kind::of(&l) == Kind::Symlink) {
                entry.symlink_target = root.read_link(&rel).ok();
            }
            let summary = format!("{} is a {:?} of {} bytes", entry.path, meta.kind, meta.size);
            Ok(Json(StatOutput { summary, entry, nlink: meta.nlink, resolved_path: root.show(&resolved) }))
        })
        .await
        .map_err(|e| ToolError::internal(e.to_string()))?
    }

    #[tool(
        name = "file_list",
        description = "A directory's entries (kind, size, mode, owner, modified; symlinks shown, not followed), up to 8 levels deep, sorted by name, size or modified, paginated with a cursor. Secrets on the deny list are never listed.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn file_list(
        &self,
        Parameters(input): Parameters<ListInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<ListOutput>, ToolError> {
        let Page { limit, offset } = Page::parse(input.limit, input.cursor.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let depth = input.depth.unwrap_or(1);
        if !(1..=MAX_DEPTH).contains(&depth) {
            return Err(ToolError::invalid_input(format!("depth {depth} out of range"), "use 1-8"));
        }
        let (root, rel) = self.file_path(&caller, &input.path)?;
        tokio::task::spawn_blocking(move || {
            let dir = root.open_dir(&rel)?;
            let (mut rows, scan_truncated) = walk(&root, dir, depth)?;
            match input.sort_by {
                SortBy::Name => rows.sort_by(|a, b| a.0.cmp(&b.0)),
                SortBy::Size => rows.sort_by(|a, b| b.1.size.cmp(&a.1.size).then(a.0.cmp(&b.0))),
                SortBy::Modified => rows.sort_by(|a, b| b.1.mtime_unix.cmp(&a.1.mtime_unix).then(a.0.cmp(&b.0))),
            }
            let total = rows.len();
            let owners = Owners::new();
            let entries: Vec<EntryInfo> = rows
                .iter()
                .skip(offset)
                .take(limit)
                .map(|(r, m)| entry_info(&root, r, r.file_name().unwrap_or("."), m, &owners))
                .collect();
            let end = offset.saturating_add(entries.len());
            let truncated = end < total;
            let summary = format!(
                "{} of {} entries in {}{}",
                entries.len(),
                total,
                root.show(&rel),
                if scan_truncated { " (directory larger than the scan limit: partial)" } else { "" }
            );
            Ok(Json(ListOutput {
                summary,
                path: root.show(&rel),
                entries,
                total,
                truncated,
                next_cursor: page::next_cursor(end, total),
                scan_truncated,
            }))
        })
        .await
        .map_err(|e| ToolError::internal(e.to_string()))?
    }
}
