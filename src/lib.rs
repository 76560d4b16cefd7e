//! tailops: operate a Linux host over MCP, reachable only on your tailnet.
//!
//! Module map (one concern each):
//! - [`tailnet`]: the embedded tailnet node (safe API over libtailscale-sys)
//! - [`config`]: settings from file, environment and flags
//! - [`auth`]: identity, scopes, policy, rate limits
//! - [`http`]: transport: router, identity, the `/mcp` gate, accept loop
//! - [`mcp`]: the spine (admission, per-call wrapper) and the tool contract
//! - [`tools`]: the MCP faces, one file or folder per domain
//! - [`host`]: what the tools observe and change on this host
//! - [`audit`]: the hash-chained audit log
//! - [`redact`]: secret redaction for every output and the audit log
//! - [`ops`]: operations: systemd notify/watchdog, metrics, fleet discovery
//! - [`bridge`]: the client side: `connect` (stdio bridge), `call`, `tools`
//! - [`server`]: `tailops serve` put together (the composition root)
//! - [`shutdown`]: graceful stop on SIGINT/SIGTERM
//! - [`telemetry`]: logging set-up

pub mod audit;
pub mod auth;
pub mod bridge;
pub mod config;
pub mod host;
pub mod http;
pub mod mcp;
pub mod ops;
pub mod redact;
pub mod server;
pub mod shutdown;
pub mod tailnet;
pub mod telemetry;
pub mod tools;

#[cfg(test)]
mod layers;
