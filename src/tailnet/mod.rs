//! The tailnet: a safe async API over `libtailscale-sys` (tsnet in Go).
//!
//! - [`NodeBuilder`] → [`Node`]: one tailnet node embedded in this process.
//! - [`Listener`]: accepted tailnet connections as `tokio::net::UnixStream`s
//!   with the caller's tailnet address, driven by tokio's reactor (no thread
//!   blocks per accept).
//! - [`Node::whois`] → [`PeerIdentity`]: who is on the other end.
//! - [`Node::status`] → [`Status`]: this node's view of the tailnet.
//! - [`Node::ping`] → [`PingReply`]: one disco/TSMP ping to a peer.
//! - [`is_tailnet_host`], [`is_tailnet_ip`], [`is_magicdns_name`]: which
//!   hosts are on a tailnet (pure functions, no node needed).
//! - [`memory::tune_process`]: the Go runtime's memory limit and glibc's
//!   arena cap, set once at start; [`memory::go_memory`]: Go's own figures.
//! - [`signals::fix_go_signal_handlers`]: the one process-wide fix needed to
//!   run tokio signal handlers next to the Go runtime.
//!
//! This folder and `libtailscale-sys` are the only places with `unsafe`.

mod addr;
mod ffi;
mod listener;
mod log;
pub mod memory;
mod node;
mod ping;
mod service;
pub mod signals;
mod status;
mod whois;

pub use addr::{is_magicdns_name, is_tailnet_host, is_tailnet_ip};
pub use listener::Listener;
pub use node::{Node, NodeBuilder, UpInfo};
pub use ping::{PingKind, PingReply};
pub use status::{PeerStatus, Status};
pub use whois::PeerIdentity;

use std::time::Duration;

/// Errors from the tailnet layer. `message` is the Go side's own words.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Go side reported an error for this operation.
    #[error("{op}: {message}")]
    Tailscale { op: &'static str, message: String },
    /// A local I/O error (socket, pipe, fd passing).
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A string argument contained a NUL byte.
    #[error("{0}: argument contains a NUL byte")]
    Nul(&'static str),
    /// The node was already closed.
    #[error("tailnet node is closed")]
    Closed,
    /// The Go side returned a document we could not decode.
    #[error("{op}: malformed reply from the Go side: {source}")]
    Decode {
        op: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Sets a tailscale environment knob (e.g. `TS_DEBUG_USE_DERP_HTTP`) for every
/// node in this process. Must be called before the node that needs it starts:
/// many knobs are read once.
pub fn set_env_knob(key: &str, value: &str) -> Result<()> {
    ffi::setenv(key, value)
}

pub(crate) fn timeout_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1)
}
