//! `tcp_check`: connect time to host:port, optionally a TLS handshake.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use serde::Deserialize;

use crate::host::net::probe::step_timeout;
use crate::host::net::probe::tcp::{TcpCheck, TcpCheckOutput};
use crate::host::net::target::parse_host;
use crate::mcp::ToolError;
use crate::tools::TailopsServer;

/// `tcp_check` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpCheckInput {
    /// An IP address or DNS name (checked by the target policy, and so is
    /// every address it resolves to).
    pub host: String,
    /// TCP port, 1-65535.
    pub port: u16,
    /// Also run a TLS handshake and report protocol, cipher, certificate
    /// subject/issuer/SANs, days to expiry and chain validity.
    #[serde(default)]
    pub tls: bool,
    /// TLS server name to send and check the certificate for (default:
    /// `host`).
    pub server_name: Option<String>,
    /// Time limit of each step (resolve, connect, handshake), ms (10-10000,
    /// default 3000).
    pub timeout_ms: Option<u64>,
}

#[tool_router(router = tcp_check_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "tcp_check",
        description = "Can this host open a TCP connection to host:port? Connect time, the address used, refused/timeout/unreachable; with tls: protocol, cipher, certificate subject, issuer, SANs, days to expiry and chain validity. Targets pass the network target policy.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn tcp_check(&self, Parameters(input): Parameters<TcpCheckInput>) -> Result<Json<TcpCheckOutput>, ToolError> {
        if input.port == 0 {
            return Err(ToolError::invalid_input("port must be 1-65535", "give the TCP port to check"));
        }
        let q = TcpCheck {
            host: parse_host(&input.host)?,
            port: input.port,
            tls: input.tls,
            server_name: input.server_name,
            timeout: step_timeout(input.timeout_ms, "timeout_ms")?,
        };
        self.prober().tcp_check(q).await.map(Json)
    }
}
