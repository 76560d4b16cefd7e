//! The MCP spine: everything every tool call goes through, knowing no tool
//! domain (the domains live in `tools/`, the transports in `http/` and
//! `server.rs`).
//!
//! - [`contract`]: what a tool declares ([`ToolSpec`]) and returns on
//!   failure ([`ToolError`] with an [`ErrorCategory`]);
//! - [`page`]: how every list tool pages (`limit` + an opaque cursor);
//! - [`spine`]: the shared state ([`Spine`]: config, audit, limiter, specs);
//! - [`admit`]: the one admission decision per call ([`Spine::admit`]);
//! - [`validate`]: arguments checked against the tool's schema first;
//! - [`call`]: the wrapper an admitted call runs in ([`call::run_admitted`]);
//! - [`stdio`]: the stdio transport's front door (same checks as HTTP's).

pub mod admit;
pub mod call;
pub mod contract;
pub mod page;
pub mod spine;
pub mod stats;
pub mod stdio;
pub mod validate;

pub use admit::{Admitted, Refusal};
pub use contract::{ErrorCategory, ToolError, ToolSpec};
pub use spine::Spine;
pub use stats::SpineStats;

/// The admission decided by the HTTP gate for the `tools/call` in this
/// request, handed to the MCP handler so it is not decided twice. Carries
/// the tool name it was decided for: a handler that sees a different name
/// (which the gate's parse of the same bytes rules out) decides afresh.
#[derive(Clone, Debug)]
pub struct Decided {
    pub tool: String,
    pub result: Result<Admitted, Refusal>,
}
