//! Reading the audit log: `audit_tail` (scope `audit:read`).

use std::io::{Read, Seek, SeekFrom};

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TailopsServer;
use crate::auth::scopes::Scope;
use crate::mcp::{ToolError, ToolSpec};

pub const SPECS: &[ToolSpec] =
    &[ToolSpec { name: "audit_tail", domain: "audit", scope: Some(Scope::AuditRead), writes: false }];

/// Most records returned by one call.
pub const MAX_RECORDS: usize = 200;
/// Bytes read from the end of the current audit file.
pub const MAX_SCAN_BYTES: u64 = 4 << 20;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailInput {
    /// Records to return, newest last (1-200, default 50).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only records of this principal id (e.g. `user:alice@example.com`).
    #[serde(default)]
    pub principal: Option<String>,
    /// Only records of this tool.
    #[serde(default)]
    pub tool: Option<String>,
    /// Only records of this kind (decision, tool_call, anomaly, alert, lifecycle).
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TailOutput {
    /// Matching records, oldest first (as written, hash-chained).
    pub records: Vec<serde_json::Value>,
    /// True when more matching records exist in the scanned range.
    pub truncated: bool,
    /// Bytes of the file that were scanned (the newest part).
    pub scanned_bytes: u64,
}

#[tool_router(router = audit_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "audit_tail",
        description = "The newest audit-log records (tool calls, authorization decisions, anomalies), optionally filtered by principal, tool or kind.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn audit_tail(&self, Parameters(input): Parameters<TailInput>) -> Result<Json<TailOutput>, ToolError> {
        let limit = input.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_RECORDS {
            return Err(ToolError::invalid_input(format!("limit {limit} is out of range"), "use 1-200"));
        }
        // Make what was just recorded visible.
        let _ = self.spine.audit.flush().await;
        let path = self.spine.cfg.audit_path();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
            let mut f = std::fs::File::open(&path)?;
            let len = f.metadata()?.len();
            let start = len.saturating_sub(MAX_SCAN_BYTES);
            f.seek(SeekFrom::Start(start))?;
            let mut buf = String::new();
            f.take(MAX_SCAN_BYTES).read_to_string(&mut buf)?;
            if start > 0 {
                // Drop the partial first line.
                buf = buf.split_once('\n').map(|(_, rest)| rest.to_string()).unwrap_or_default();
            }
            Ok((buf, len - start))
        })
        .await
        .map_err(|_| ToolError::internal("audit reader failed"))?;
        let (text, scanned_bytes) = read
            .map_err(|_| ToolError::unavailable("the audit log cannot be read", "check /readyz and the audit path"))?;
        let matches: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| input.principal.as_deref().is_none_or(|p| r["principal"] == p))
            .filter(|r| input.tool.as_deref().is_none_or(|t| r["tool"] == t))
            .filter(|r| input.kind.as_deref().is_none_or(|k| r["kind"] == k))
            .collect();
        let truncated = matches.len() > limit;
        let records = matches[matches.len().saturating_sub(limit)..].to_vec();
        Ok(Json(TailOutput { records, truncated, scanned_bytes }))
    }
}
