//! Who is calling: the `Principal` built from a tailnet WhoIs answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::tailnet::PeerIdentity;

/// The caller of a request, as the tailnet identifies it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Principal {
    /// `user:<login>` for a person's node, `tags:<tag,tag>` for a tagged node.
    pub id: String,
    /// The person's login (empty for tagged nodes).
    pub login_name: String,
    pub display_name: String,
    /// Tags of the calling node (empty for a person's node).
    pub tags: Vec<String>,
    /// Calling node: MagicDNS name and stable id.
    pub node_name: String,
    pub node_id: String,
    /// Tailnet address and port the request came from.
    pub source: SocketAddr,
    /// App capabilities granted to the caller on this node, by name: one
    /// JSON value per matching ACL grant.
    pub capabilities: BTreeMap<String, Vec<serde_json::Value>>,
}

impl Principal {
    pub fn from_peer(peer: PeerIdentity, source: SocketAddr) -> Self {
        let id = if peer.is_tagged() {
            format!("tags:{}", peer.tags.join(","))
        } else {
            format!("user:{}", peer.login_name)
        };
        Self {
            id,
            login_name: peer.login_name,
            display_name: peer.display_name,
            tags: peer.tags,
            node_name: peer.node_name,
            node_id: peer.node_id,
            source,
            capabilities: peer.cap_map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_and_user_ids_differ() {
        let src: SocketAddr = "100.64.0.9:1234".parse().expect("addr");
        let user = Principal::from_peer(PeerIdentity { login_name: "alice@".into(), ..Default::default() }, src);
        assert_eq!(user.id, "user:alice@");
        let tagged = Principal::from_peer(
            PeerIdentity { tags: vec!["tag:ci".into(), "tag:prod".into()], ..Default::default() },
            src,
        );
        assert_eq!(tagged.id, "tags:tag:ci,tag:prod");
        assert!(tagged.login_name.is_empty());
    }
}
