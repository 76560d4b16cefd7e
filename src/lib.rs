//! tailops: operate a Linux host over MCP, reachable only on your tailnet.
//!
//! Module map (one concern each):
//! - [`tailnet`]: the embedded tailnet node (safe API over libtailscale-sys)
//! - [`config`]: settings from file, environment and flags
//! - [`auth`]: identity, scopes, policy, rate limits
//! - [`mcp`]: the MCP server and its per-call spine
//! - [`tools`]: the tools, one file per domain
//! - [`audit`]: the hash-chained audit log
//! - [`redact`]: secret redaction for every output and the audit log
//! - [`http`]: the router and the tailnet accept loop
//! - [`server`]: `tailops serve` put together
//! - [`shutdown`]: graceful stop on SIGINT/SIGTERM
//! - [`telemetry`]: logging set-up

pub mod audit;
pub mod auth;
pub mod config;
pub mod http;
pub mod mcp;
pub mod redact;
pub mod sampler;
pub mod server;
pub mod shutdown;
pub mod tailnet;
pub mod telemetry;
pub mod tools;
