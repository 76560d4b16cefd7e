//! The embedded tailnet node as the network tools and probes see it.
//!
//! The layer rule keeps `host/` from naming the `tailnet` layer's types, so
//! the node is reached through ONE trait, [`TailnetAccess`], which the
//! composition root (`server.rs`) implements for the running node and
//! installs once the node is up: into [`TailnetSlot`] for the read tools
//! and into the prober (which also adds the node's IPs to the refused
//! targets). In dev-listen and stdio modes there is no node and both stay
//! empty (the tools say so; probes use the kernel).
//!
//! The documents are the tailnet layer's own (`tailnet::Status`,
//! `tailnet::PingReply`), read here as the host-side types below: the field
//! names are the contract, and a test in `server.rs` (which sees both
//! layers) fails when a field stops crossing.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

/// This node's view of the tailnet (tsnet `Status`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Status {
    pub backend_state: String,
    #[serde(default)]
    pub magic_dns_suffix: String,
    #[serde(default)]
    pub tailnet_name: String,
    #[serde(default, rename = "self")]
    pub self_node: Option<Peer>,
    #[serde(default)]
    pub peers: Vec<Peer>,
    #[serde(default)]
    pub health: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Peer {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub dns_name: String,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub online: bool,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub last_seen: Option<String>,
    /// Home DERP region code.
    #[serde(default)]
    pub relay: String,
    #[serde(default)]
    pub cur_addr: String,
    #[serde(default)]
    pub direct: bool,
    #[serde(default)]
    pub rx_bytes: i64,
    #[serde(default)]
    pub tx_bytes: i64,
    #[serde(default)]
    pub key_expiry: Option<String>,
    #[serde(default)]
    pub last_handshake: Option<String>,
    #[serde(default)]
    pub peer_relay: String,
}

impl Peer {
    /// The short MagicDNS name (first label) or the hostname.
    pub fn short_name(&self) -> &str {
        self.dns_name.split('.').next().filter(|s| !s.is_empty()).unwrap_or(&self.hostname)
    }
}

/// One ping's answer (tsnet `ipnstate.PingResult`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PingReply {
    #[serde(rename = "IP", default)]
    pub ip: String,
    #[serde(default)]
    pub node_name: String,
    #[serde(default)]
    pub err: String,
    #[serde(default)]
    pub latency_seconds: f64,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub peer_relay: String,
    #[serde(rename = "DERPRegionID", default)]
    pub derp_region_id: i64,
    #[serde(rename = "DERPRegionCode", default)]
    pub derp_region_code: String,
}

/// Disco (over magicsock: reports direct/DERP) or TSMP (through WireGuard
/// and the peer's stack: reports no path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingKind {
    Disco,
    Tsmp,
}

/// What the network tools and probes need from the node. Errors are the
/// tailnet layer's messages.
pub trait TailnetAccess: Send + Sync {
    fn status(&self, timeout: Duration) -> BoxFuture<'_, Result<Status, String>>;
    fn ping(&self, ip: IpAddr, kind: PingKind, timeout: Duration) -> BoxFuture<'_, Result<PingReply, String>>;
    /// This node's tailnet IPs (refused as probe targets).
    fn own_ips(&self) -> Vec<IpAddr>;
    /// Opens a TCP connection over the tailnet to a checked address.
    fn dial(&self, addr: SocketAddr, timeout: Duration) -> BoxFuture<'_, std::io::Result<tokio::net::UnixStream>>;
}

/// Set once, when the node is up.
#[derive(Default)]
pub struct TailnetSlot(OnceLock<Arc<dyn TailnetAccess>>);

impl TailnetSlot {
    /// Installs the node (a second call is ignored: one node per process).
    pub fn set(&self, node: Arc<dyn TailnetAccess>) {
        let _ = self.0.set(node);
    }

    pub fn get(&self) -> Option<&Arc<dyn TailnetAccess>> {
        self.0.get()
    }
}
