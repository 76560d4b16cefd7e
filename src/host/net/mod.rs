//! Network: this host's interfaces, sockets and tailnet, as the network
//! tools (`tools/network`) observe them. No MCP, no HTTP.
//!
//! - [`interfaces`]: addresses, MTU, state, speed, counters (/sys/class/net
//!   + getifaddrs).
//! - [`sockets`]: TCP/UDP sockets with their owning process (/proc/net/* +
//!   the /proc/PID/fd inode map).
//! - [`tailnet`]: the embedded node's status and pings, behind a trait the
//!   composition root implements (the layer rule keeps `host` from naming
//!   the `tailnet` layer).
//!
//! - [`target`]: the target policy (SSRF guard) every outbound probe
//!   passes, configured by `[network]` ([`config`]).
//! - [`probe`]: the outbound probes (DNS, TCP/TLS, HTTP, ping, traceroute).
//!
//! Bandwidth comes from the sampler's history (`host::sampler`), not from
//! here.

pub mod config;
pub mod interfaces;
pub mod probe;
pub mod sockets;
pub mod tailnet;
pub mod target;

/// The network domain's shared state, one per process.
#[derive(Default)]
pub struct Net {
    /// The embedded tailnet node, once it is up (empty in dev/stdio modes).
    pub tailnet: tailnet::TailnetSlot,
}
