//! The identity of a tailnet peer, as the control plane tells it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Who is on the other end of a tailnet connection (tsnet `WhoIs`).
///
/// A tagged node has no person behind it: `login_name` is empty and `tags`
/// is not. `cap_map` holds the app capabilities granted to the caller on
/// this node by ACL grants: for each capability name, one raw JSON value per
/// matching grant.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PeerIdentity {
    #[serde(default)]
    pub login_name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub user_id: i64,
    /// The node's full MagicDNS name (no trailing dot).
    #[serde(default)]
    pub node_name: String,
    /// Stable node id from the control plane.
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub computed_name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub cap_map: BTreeMap<String, Vec<serde_json::Value>>,
}

impl PeerIdentity {
    /// True when the caller is a tagged node (no user behind it).
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// The values granted for one app capability (empty if none).
    pub fn cap_values(&self, cap: &str) -> &[serde_json::Value] {
        self.cap_map.get(cap).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_go_shape() {
        let doc = r#"{"login_name":"alice@","display_name":"Alice","user_id":1,
            "node_name":"laptop.tailnet.test","node_id":"nX","computed_name":"laptop",
            "tags":[],"addresses":["100.64.0.2","fd7a:115c:a1e0::2"],"os":"linux",
            "cap_map":{"tailops.dev/cap/tailops":[{"roles":["admin"]}]}}"#;
        let id: PeerIdentity = serde_json::from_str(doc).expect("decode");
        assert_eq!(id.login_name, "alice@");
        assert!(!id.is_tagged());
        assert_eq!(id.addresses.len(), 2);
        assert_eq!(id.cap_values("tailops.dev/cap/tailops")[0]["roles"][0], "admin");
        assert!(id.cap_values("other/cap").is_empty());
    }
}
