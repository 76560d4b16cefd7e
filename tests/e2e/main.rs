//! End-to-end tests: one binary (it links the whole Go archive once).
//! Modules are grouped by what they prove.

#[path = "../support/mod.rs"]
mod support;

mod audit;
mod audit_chaos;
mod bridge;
mod chaos;
mod clients;
mod conn;
mod docker;
mod files;
mod files_attacks;
mod files_read;
mod files_search;
mod files_write;
mod https;
mod identity;
mod load;
mod mcp;
mod net_probe;
mod network;
mod oauth;
mod ops;
mod reach;
mod redaction;
mod signal;
mod spine;
mod system;
mod systemd;
mod tailnet;
