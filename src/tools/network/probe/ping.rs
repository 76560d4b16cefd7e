//! `ping`: ICMP echo (or the TCP-connect method that says it is one).

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::McpProgress;
use crate::host::net::probe::ping::{DEFAULT_TCP_PORT, Ping, PingMethod, PingOutput, check_bounds};
use crate::host::net::probe::{DEFAULT_STEP_TIMEOUT_MS, step_timeout};
use crate::host::net::target::parse_host;
use crate::mcp::ToolError;
use crate::tools::TailopsServer;

/// `ping` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingInput {
    /// An IP address or DNS name (checked by the target policy).
    pub host: String,
    /// Echo requests, 1-100 (default 4).
    pub count: Option<u32>,
    /// Between requests, ms (200-10000, default 1000).
    pub interval_ms: Option<u64>,
    /// Wait for each reply, ms (10-10000, default 3000).
    pub timeout_ms: Option<u64>,
    /// `auto` (ICMP, TCP connects when ICMP sockets are not permitted),
    /// `icmp`, or `tcp`.
    #[serde(default)]
    pub method: PingMethod,
    /// Port of the TCP method (default 443).
    pub tcp_port: Option<u16>,
}

#[tool_router(router = ping_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "ping",
        description = "ICMP echo to a host (unprivileged datagram socket where allowed, raw otherwise): per-request RTTs, loss, min/avg/max/mdev. Falls back to TCP connects (and says so) when ICMP is not permitted. Progress notifications per reply; cancellable.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn ping(
        &self,
        Parameters(input): Parameters<PingInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<PingOutput>, ToolError> {
        let count = input.count.unwrap_or(4);
        let interval_ms = input.interval_ms.unwrap_or(1000);
        let timeout = step_timeout(input.timeout_ms, "timeout_ms")?;
        check_bounds(count, interval_ms, input.timeout_ms.unwrap_or(DEFAULT_STEP_TIMEOUT_MS))?;
        let tcp_port = input.tcp_port.unwrap_or(DEFAULT_TCP_PORT);
        if tcp_port == 0 {
            return Err(ToolError::invalid_input("tcp_port must be 1-65535", "give a TCP port"));
        }
        let q = Ping {
            host: parse_host(&input.host)?,
            count,
            interval: std::time::Duration::from_millis(interval_ms),
            timeout,
            method: input.method,
            tcp_port,
        };
        let progress = ctx.meta.get_progress_token().map(|token| McpProgress { token, peer: &ctx.peer });
        self.prober().ping(q, &ctx.ct, progress.as_ref()).await.map(Json)
    }
}
