//! Network tools: the MCP face of `host::net` and the sampler's network
//! history.
//!
//! Read (`network:read`): `net_interfaces`, `net_bandwidth`,
//! `net_connections`, `tailnet_status`. Probe (`network:probe`):
//! `tailnet_ping` (a disco/TSMP ping through the embedded node, to tailnet
//! peers only) and, in [`probe`], the outbound probes `dns_lookup`,
//! `tcp_check`, `http_check`, `ping`, `traceroute`, every one behind the
//! target policy (`host::net::target`).

use rmcp::handler::server::router::tool::ToolRouter;

use crate::auth::scopes::Scope;
use crate::mcp::ToolSpec;
use crate::tools::TailopsServer;

mod connections;
mod interfaces;
pub mod probe;
mod tailnet;

pub use connections::{ConnectionsInput, ConnectionsOutput};
pub use interfaces::{BandwidthInput, BandwidthOutput, InterfacesInput, InterfacesOutput};
pub use tailnet::{PingInput, PingOutput, StatusInput, StatusOutput};

pub(crate) const fn read(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "network", scope: Some(Scope::NetworkRead), writes: false }
}
pub(crate) const fn probe(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "network", scope: Some(Scope::NetworkProbe), writes: false }
}

/// Every network tool's spec.
pub fn specs() -> Vec<ToolSpec> {
    [interfaces::SPECS, connections::SPECS, tailnet::SPECS, probe::SPECS].concat()
}

/// Every network tool's router.
pub fn router() -> ToolRouter<TailopsServer> {
    TailopsServer::net_interfaces_router()
        + TailopsServer::net_connections_router()
        + TailopsServer::net_tailnet_router()
        + probe::router()
}

/// Page offset from a cursor this server issued (`o:N`).
pub(crate) fn offset(cursor: Option<&str>) -> Result<usize, crate::mcp::ToolError> {
    match cursor {
        None => Ok(0),
        Some(c) => c.strip_prefix("o:").and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| {
            crate::mcp::ToolError::invalid_input("cursor is not one this server issued", "pass next_cursor unchanged")
        }),
    }
}

/// A page size in `1..=max` (default `default`).
pub(crate) fn limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, crate::mcp::ToolError> {
    let l = asked.unwrap_or(default);
    if l == 0 || l > max {
        return Err(crate::mcp::ToolError::invalid_input(format!("limit {l} out of range"), format!("use 1-{max}")));
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_limits_at_their_edges() {
        assert_eq!(offset(None).unwrap(), 0);
        assert_eq!(offset(Some("o:7")).unwrap(), 7);
        for bad in ["", "7", "o:", "o:-1", "o:x", "o:99999999999999999999999"] {
            assert!(offset(Some(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(limit(None, 100, 1000).unwrap(), 100);
        assert!(limit(Some(0), 100, 1000).is_err());
        assert_eq!(limit(Some(1), 100, 1000).unwrap(), 1);
        assert_eq!(limit(Some(999), 100, 1000).unwrap(), 999);
        assert_eq!(limit(Some(1000), 100, 1000).unwrap(), 1000);
        assert!(limit(Some(1001), 100, 1000).is_err());
    }

    #[test]
    fn specs_and_router_name_the_same_tools() {
        let routed: std::collections::BTreeSet<String> =
            router().list_all().into_iter().map(|t| t.name.to_string()).collect();
        let specced: std::collections::BTreeSet<String> = specs().iter().map(|s| s.name.to_string()).collect();
        assert_eq!(routed, specced);
    }
}
