//! `traceroute`: the hops to a target, by UDP or ICMP.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::McpProgress;
use crate::host::net::probe::step_timeout;
use crate::host::net::probe::traceroute::{DEFAULT_MAX_HOPS, TraceMethod, Traceroute, TracerouteOutput, check_bounds};
use crate::host::net::target::parse_host;
use crate::mcp::ToolError;
use crate::tools::TailopsServer;

/// Default wait per probe, ms.
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 1000;

/// `traceroute` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracerouteInput {
    /// An IP address or DNS name (checked by the target policy).
    pub host: String,
    /// `udp` (default) or `icmp`.
    #[serde(default)]
    pub method: TraceMethod,
    /// Most hops, 1-64 (default 30).
    pub max_hops: Option<u32>,
    /// Probes per hop, 1-5 (default 3).
    pub probes_per_hop: Option<u32>,
    /// Wait per probe, ms (10-10000, default 1000); hops x probes x
    /// timeout may not exceed 120 s.
    pub timeout_ms: Option<u64>,
}

#[tool_router(router = traceroute_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "traceroute",
        description = "The routers on the way to a host, hop by hop (UDP or ICMP probes with rising TTL): per-hop responder and RTTs, whether the target was reached. Progress notifications per hop; cancellable. Needs CAP_NET_RAW to read the ICMP answers.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn traceroute(
        &self,
        Parameters(input): Parameters<TracerouteInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<TracerouteOutput>, ToolError> {
        let max_hops = input.max_hops.unwrap_or(DEFAULT_MAX_HOPS);
        let probes = input.probes_per_hop.unwrap_or(3);
        let timeout_ms = input.timeout_ms.unwrap_or(DEFAULT_PROBE_TIMEOUT_MS);
        let timeout = step_timeout(Some(timeout_ms), "timeout_ms")?;
        check_bounds(max_hops, probes, timeout_ms)?;
        let q = Traceroute {
            host: parse_host(&input.host)?,
            method: input.method,
            max_hops,
            probes_per_hop: probes,
            timeout,
        };
        let progress = ctx.meta.get_progress_token().map(|token| McpProgress { token, peer: &ctx.peer });
        self.prober().traceroute(q, &ctx.ct, progress.as_ref()).await.map(Json)
    }
}
