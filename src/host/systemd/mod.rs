//! systemd over its D-Bus API (`org.freedesktop.systemd1`, zbus): never by
//! parsing `systemctl` text. One shared system-bus connection, made on
//! first use; a host without systemd (or without a reachable bus) makes
//! every call `unavailable` with the reason, and `/readyz` says so; other
//! domains keep working. The MCP tools on top are `tools::services`; the
//! journal is `host::journal`.
//!
//! Files: `config` (`[systemd]`), `units` (names, patterns, the deny
//! list), `bus` (the proxies), `client` (connection, time limit, errors),
//! `ops` (what the tools ask).

mod bus;
mod client;
mod config;
mod ops;
mod units;

pub use client::{HEALTH_TIMEOUT, Systemd};
pub use config::{DEFAULT_BUS_ADDRESS, MAX_JOB_WAIT_SECS, MAX_PATTERNS, MAX_TIMEOUT_SECS, SystemdConfig};
pub use ops::*;
pub use units::{BUILTIN_DENY, MAX_UNIT_NAME, UNIT_TYPES, unit_name};
