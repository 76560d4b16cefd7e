//! Probe tools (`network:probe`): `dns_lookup`, `tcp_check`, `http_check`,
//! `ping`, `traceroute` — one file each, the MCP face of
//! `host::net::probe` (the target policy, the limits and the probes
//! themselves are there). Every target passes the target policy; a
//! refusal is a `forbidden` error naming the rule (and the audit record's
//! `detail.message` says it too).

mod dns_lookup;
mod http_check;
mod ping;
mod tcp_check;
mod traceroute;

use rmcp::RoleServer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::Peer;

use crate::auth::scopes::Scope;
use crate::host::net::probe::{Prober, ProgressSink};
use crate::mcp::ToolSpec;
use crate::tools::TailopsServer;

const fn probe(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "network", scope: Some(Scope::NetworkProbe), writes: false }
}

pub const SPECS: &[ToolSpec] =
    &[probe("dns_lookup"), probe("tcp_check"), probe("http_check"), probe("ping"), probe("traceroute")];

/// Every probe tool's router, summed.
pub fn router() -> ToolRouter<TailopsServer> {
    TailopsServer::dns_lookup_router()
        + TailopsServer::tcp_check_router()
        + TailopsServer::http_check_router()
        + TailopsServer::ping_router()
        + TailopsServer::traceroute_router()
}

/// Probe progress as MCP progress notifications (for a client that sent
/// a progress token).
struct McpProgress<'a> {
    token: ProgressToken,
    peer: &'a Peer<RoleServer>,
}

impl ProgressSink for McpProgress<'_> {
    fn notify(&self, value: f64, total: Option<f64>, message: String) -> impl Future<Output = bool> + Send {
        let mut p = ProgressNotificationParam::new(self.token.clone(), value).with_message(message);
        if let Some(total) = total {
            p = p.with_total(total);
        }
        async move { self.peer.notify_progress(p).await.is_ok() }
    }
}

impl TailopsServer {
    fn prober(&self) -> &Prober {
        &self.host.net_probe
    }
}
