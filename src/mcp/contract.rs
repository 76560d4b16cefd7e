//! The tool contract between the spine and every domain: what a tool
//! declares ([`ToolSpec`]: its scope and whether it writes) and the one
//! error shape every tool returns ([`ToolError`]: category + message + hint,
//! as a tool result with `isError: true` — never a panic, never a protocol
//! error for a failure the caller can act on).

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::scopes::Scope;

/// JSON-RPC error code for "rate limited" on transports without HTTP status.
pub const RATE_LIMITED_CODE: i32 = -32029;
/// JSON-RPC "parse error": the message is not JSON.
pub const PARSE_ERROR: i32 = -32700;

/// What the spine needs to know about a tool. Each domain lists its tools'
/// specs in a `SPECS` table next to the functions; start-up checks that the
/// tables and the routers name exactly the same tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolSpec {
    pub name: &'static str,
    /// Domain shown in `server_info` (e.g. "system", "docker").
    pub domain: &'static str,
    /// Scope a caller needs; `None` = any identified caller (only `whoami`).
    pub scope: Option<Scope>,
    /// Changes the host: stricter rate limit, removed by `read_only`,
    /// refused unless its intent record is written first.
    pub writes: bool,
}

/// Key of a tool's structured output whose value the spine copies into
/// the call's completion audit record, as `detail.result` (generic: any
/// tool may use it). For facts known only after the tool ran that the
/// audit log must carry — e.g. `file_write`'s old and new sha256 — since
/// the arguments (recorded anyway) cannot hold them. The value is also
/// part of the result the caller sees: put nothing in it the caller may
/// not see. Only successful results are copied; a value larger than
/// [`MAX_AUDIT_OUTPUT_BYTES`] (serialized) is recorded as
/// `{"truncated": true, "bytes": N}`.
pub const AUDIT_OUTPUT_KEY: &str = "audit";
/// Largest `audit` output value recorded as is.
pub const MAX_AUDIT_OUTPUT_BYTES: usize = 4096;

/// What kind of failure; stable names, used by clients and the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    /// The arguments are wrong; fix them and retry.
    InvalidInput,
    /// The thing named does not exist.
    NotFound,
    /// The caller may not do this.
    PermissionDenied,
    /// The current state forbids it (already stopped, name in use …).
    Conflict,
    /// A dependency is down (Docker daemon, D-Bus, audit log); retry later.
    Unavailable,
    /// It took longer than the limit.
    Timeout,
    /// A configured policy refuses the target (the network target policy:
    /// the message names the rule), whatever the caller's scopes.
    Forbidden,
    /// A bug or an unexpected condition on the server.
    Internal,
}

impl ErrorCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::InvalidInput => "invalid_input",
            ErrorCategory::NotFound => "not_found",
            ErrorCategory::PermissionDenied => "permission_denied",
            ErrorCategory::Conflict => "conflict",
            ErrorCategory::Unavailable => "unavailable",
            ErrorCategory::Timeout => "timeout",
            ErrorCategory::Forbidden => "forbidden",
            ErrorCategory::Internal => "internal",
        }
    }
}

/// A tool failure as the caller sees it. Messages must not leak internal
/// paths or secrets: say what is wrong in the caller's terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[error("{category:?}: {message}")]
pub struct ToolError {
    pub category: ErrorCategory,
    pub message: String,
    /// What to do about it (may be empty).
    pub hint: String,
}

impl ToolError {
    pub fn new(category: ErrorCategory, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { category, message: message.into(), hint: hint.into() }
    }
    pub fn invalid_input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(ErrorCategory::InvalidInput, message, hint)
    }
    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(ErrorCategory::NotFound, message, hint)
    }
    pub fn permission_denied(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(ErrorCategory::PermissionDenied, message, hint)
    }
    pub fn unavailable(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(ErrorCategory::Unavailable, message, hint)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCategory::Internal, message, "this is a bug in tailops; the audit log has the details")
    }

    /// The result a client receives: `{"error": {category, message, hint}}`
    /// as structured content (and as text), `isError: true`.
    pub fn to_result(&self) -> CallToolResult {
        CallToolResult::structured_error(serde_json::json!({ "error": self }))
    }

    /// Reads the error back out of a tool result (for the audit log and
    /// retry policy); None for successful results.
    pub fn from_result(r: &CallToolResult) -> Option<ToolError> {
        if r.is_error != Some(true) {
            return None;
        }
        r.structured_content
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(|e| serde_json::from_value(e.clone()).ok())
            .or_else(|| Some(ToolError::internal("tool failed without a structured error")))
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(self.to_result().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_result() {
        let e = ToolError::not_found("no process 4242", "list processes with process_list");
        let r = e.to_result();
        assert_eq!(r.is_error, Some(true));
        let v = r.structured_content.clone().unwrap_or_default();
        assert_eq!(v["error"]["category"], "not_found");
        assert_eq!(ToolError::from_result(&r), Some(e));
        assert_eq!(ToolError::from_result(&CallToolResult::structured(serde_json::json!({}))), None);
    }
}
