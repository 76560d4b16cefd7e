//! Helpers shared by the integration tests: a real control plane
//! (headscale on loopback), `tailops serve` as a child process, and tailnet
//! test clients. Everything binds 127.0.0.1 on random ports and lives in
//! temp dirs removed on drop.
#![allow(dead_code)]

pub mod client;
pub mod dockerd;
pub mod files;
pub mod headscale;
pub mod mcp;
pub mod proc;
pub mod server;
pub mod systemd;
pub mod testcontrol;
pub mod tmpfs;
