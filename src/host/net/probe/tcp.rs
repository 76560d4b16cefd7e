//! `tcp_check`: can this host open a TCP connection to host:port, how
//! long did it take, and (optionally) what does its TLS handshake say.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::tls::{self, TlsInfo};
use super::{Prober, Via, ms};
use crate::host::net::target::Host;
use crate::mcp::ToolError;

/// What `tcp_check` found.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TcpCheckOutput {
    /// The target as given.
    pub host: String,
    pub port: u16,
    /// Every address the name resolved to (each passed the target policy).
    pub resolved: Vec<String>,
    /// The address connected to (the first resolved one, as checked).
    pub address: String,
    /// `kernel`, or `tailnet` for tailnet addresses dialed by the node.
    pub via: Via,
    /// Whether the connection was established.
    pub connected: bool,
    /// When not: `refused`, `timeout`, `unreachable` or `error`.
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// Time to resolve the name, ms (0 for an address).
    pub dns_ms: f64,
    /// Time to connect, ms.
    pub connect_ms: Option<f64>,
    /// Time of the TLS handshake, ms (with `tls`).
    pub tls_ms: Option<f64>,
    /// The handshake's result (with `tls` and a connection).
    pub tls: Option<TlsInfo>,
}

/// One `tcp_check`.
pub struct TcpCheck {
    pub host: Host,
    pub port: u16,
    pub tls: bool,
    /// The TLS server name (SNI and certificate check); default: the host.
    pub server_name: Option<String>,
    pub timeout: Duration,
}

impl Prober {
    pub async fn tcp_check(&self, q: TcpCheck) -> Result<TcpCheckOutput, ToolError> {
        let resolved = self.resolve(&q.host, q.timeout).await?;
        let ip = *resolved.addrs.first().ok_or_else(|| ToolError::internal("no resolved address"))?;
        let mut out = TcpCheckOutput {
            host: q.host.to_string(),
            port: q.port,
            resolved: resolved.addrs.iter().map(|a| a.to_string()).collect(),
            address: ip.to_string(),
            via: Via::Kernel,
            connected: false,
            error_kind: None,
            error: None,
            dns_ms: ms(resolved.elapsed),
            connect_ms: None,
            tls_ms: None,
            tls: None,
        };
        let t0 = Instant::now();
        let (stream, via) = match self.connect(ip, q.port, q.timeout).await {
            Ok(s) => s,
            Err(e) => {
                out.error_kind = Some(e.kind.to_string());
                out.error = Some(e.message);
                return Ok(out);
            }
        };
        out.connect_ms = Some(ms(t0.elapsed()));
        out.connected = true;
        out.via = via;
        if q.tls {
            let name = q.server_name.clone().unwrap_or_else(|| q.host.to_string());
            let t1 = Instant::now();
            let (_tls, info) = tls::handshake(stream, tls::server_name(&name)?, self.roots(), &[], q.timeout).await?;
            out.tls_ms = Some(ms(t1.elapsed()));
            out.tls = Some(info);
        }
        Ok(out)
    }
}
