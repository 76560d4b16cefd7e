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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_router_name_the_same_tools() {
        let routed: std::collections::BTreeSet<String> =
            router().list_all().into_iter().map(|t| t.name.to_string()).collect();
        let specced: std::collections::BTreeSet<String> = specs().iter().map(|s| s.name.to_string()).collect();
        assert_eq!(routed, specced);
    }
}
