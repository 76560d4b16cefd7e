//! The MCP tools, one file per domain. Each file declares its tools' scopes
//! in a `SPECS` table next to the functions; the spine (`mcp.rs`) does
//! authorization, rate limiting and audit from that table, so no tool can
//! forget them. Nothing here knows about HTTP.
//!
//! Adding a domain: write `tools/<domain>.rs` with its types, limits,
//! `SPECS`, an `#[tool_router(router = <domain>_router)]` impl block and
//! tests; add its router and specs in [`all_specs`] and `mcp.rs`.

pub mod audit;
pub mod builtin;
pub mod docker;
pub mod error;
pub mod processes;
pub mod system;

use crate::auth::scopes::Scope;

pub use error::{ErrorCategory, ToolError};

/// What the spine needs to know about a tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolSpec {
    pub name: &'static str,
    /// Domain shown in `server_info` (e.g. "system", "docker").
    pub domain: &'static str,
    /// Scope a caller needs; `None` = any identified caller (only `whoami`).
    pub scope: Option<Scope>,
    /// Changes the host: stricter rate limit, removed by `read_only`,
    /// refused while the audit log is failing.
    pub writes: bool,
}

/// Every tool's spec. The server checks at start-up that this table and the
/// tool routers name exactly the same tools.
pub fn all_specs() -> Vec<ToolSpec> {
    let mut v = Vec::new();
    v.extend_from_slice(builtin::SPECS);
    v.extend_from_slice(system::SPECS);
    v.extend_from_slice(processes::SPECS);
    v.extend_from_slice(audit::SPECS);
    v.extend_from_slice(docker::SPECS);
    v
}
