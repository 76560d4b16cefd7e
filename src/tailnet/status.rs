//! A node's view of its tailnet (tsnet `Status`), reduced to what callers use.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// `Running`, `NeedsLogin`, `Starting`, …
    pub backend_state: String,
    /// Set while the node waits for an interactive login.
    #[serde(default)]
    pub auth_url: Option<String>,
    #[serde(default)]
    pub magic_dns_suffix: String,
    #[serde(default)]
    pub tailnet_name: String,
    /// This node itself.
    #[serde(default, rename = "self")]
    pub self_node: Option<PeerStatus>,
    #[serde(default)]
    pub peers: Vec<PeerStatus>,
    /// Health warnings from the backend (empty when healthy).
    #[serde(default)]
    pub health: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    pub id: String,
    pub hostname: String,
    /// MagicDNS name, no trailing dot.
    pub dns_name: String,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Owner's login for untagged nodes.
    #[serde(default)]
    pub user: String,
    pub online: bool,
    /// Traffic was exchanged recently.
    pub active: bool,
    #[serde(default)]
    pub last_seen: Option<String>,
    /// Home DERP region code, used when no direct path exists.
    #[serde(default)]
    pub relay: String,
    /// The direct UDP endpoint in use, empty when relayed.
    #[serde(default)]
    pub cur_addr: String,
    pub direct: bool,
    #[serde(default)]
    pub rx_bytes: i64,
    #[serde(default)]
    pub tx_bytes: i64,
    /// When the node key expires (None: expiry disabled or unknown).
    #[serde(default)]
    pub key_expiry: Option<String>,
    /// Last successful WireGuard handshake with this peer.
    #[serde(default)]
    pub last_handshake: Option<String>,
    /// Peer relay in use (`ip:port:vni`), empty otherwise.
    #[serde(default)]
    pub peer_relay: String,
}
