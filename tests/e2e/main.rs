//! End-to-end tests: one binary (it links the whole Go archive once).
//! Modules are grouped by what they prove.

#[path = "../support/mod.rs"]
mod support;

mod clients;
mod conn;
mod docker;
mod mcp;
mod oauth;
mod redaction;
mod system;
mod tailnet;
