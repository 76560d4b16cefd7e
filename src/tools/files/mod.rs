//! File tools: paths are `root:relative/path` inside the roots configured
//! in `[[files.roots]]`; with no root configured none of these tools is
//! offered (deny by default). Every open goes through
//! [`crate::host::files`] (openat2 beneath the root's fd, deny list on the
//! requested and the resolved path); a caller's grant may narrow the roots
//! it sees (`{"files": {"roots": [..]}}`).
//!
//! One file per group: `browse` (file_roots, file_stat, file_list),
//! `read` (file_read, file_tail, file_hash), `search` (file_search),
//! `write` (file_write, file_mkdir, file_move, file_delete), `resource`
//! (file:// resource templates, reads and subscriptions).

pub mod browse;
pub mod read;
pub mod resource;
pub mod search;
pub mod write;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;

use super::TailopsServer;
use crate::auth::caller::Caller;
use crate::config::Config;
use crate::host::files::{Files, Mode, RelPath, Root, ToolPath};
use crate::mcp::{ToolError, ToolSpec};

/// Every file tool's spec.
pub fn specs() -> Vec<ToolSpec> {
    [browse::SPECS, read::SPECS, search::SPECS, write::SPECS].concat()
}

/// Every file tool's router.
pub fn router() -> ToolRouter<TailopsServer> {
    TailopsServer::files_browse_router()
        + TailopsServer::files_read_router()
        + TailopsServer::files_search_router()
        + TailopsServer::files_write_router()
}

/// File tools this configuration does not offer: all of them without a
/// root; the writing ones without a `read_write` root.
pub fn not_offered(cfg: &Config) -> Vec<&'static str> {
    let roots = &cfg.files.roots;
    let writable = roots.iter().any(|r| r.mode == Mode::ReadWrite);
    specs().into_iter().filter(|s| roots.is_empty() || (s.writes && !writable)).map(|s| s.name).collect()
}

/// Unix seconds → RFC 3339 (UTC, seconds).
pub(crate) fn rfc3339(unix: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(unix, 0).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

impl TailopsServer {
    fn files(&self) -> &Files {
        &self.host.files
    }

    /// Parses a tool path and finds its root among those `caller` may see.
    pub(crate) fn file_path(&self, caller: &Caller, path: &str) -> Result<(Arc<Root>, RelPath), ToolError> {
        let p = ToolPath::parse(path)?;
        let allowed = caller.access.root_names();
        let root = self.files().root_for(&p.root, allowed.as_ref())?;
        Ok((root, p.rel))
    }
}
