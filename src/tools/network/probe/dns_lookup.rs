//! `dns_lookup`: what a resolver answers, per record type.

use std::net::{IpAddr, SocketAddr};

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use serde::Deserialize;

use crate::host::net::probe::dns::{DnsLookup, DnsLookupOutput, MAX_RECORD_TYPES, RecordType};
use crate::host::net::probe::step_timeout;
use crate::host::net::target::{Host, parse_host};
use crate::mcp::ToolError;
use crate::tools::TailopsServer;

/// `dns_lookup` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsLookupInput {
    /// The DNS name to look up; for PTR, an IP address.
    pub name: String,
    /// Record types (A, AAAA, CNAME, MX, TXT, NS, SRV, PTR, CAA); default
    /// [A, AAAA], or [PTR] when `name` is an address. At most 9.
    #[serde(default)]
    pub types: Vec<RecordType>,
    /// A DNS server to ask (`IP` or `IP:port`; checked by the target
    /// policy); default: `[network] resolver`, else the system resolver.
    pub server: Option<String>,
    /// Time limit per record type, ms (10-10000, default 3000).
    pub timeout_ms: Option<u64>,
}

fn parse_server(s: &str) -> Result<SocketAddr, ToolError> {
    s.parse::<SocketAddr>().or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53))).map_err(|_| {
        ToolError::invalid_input(
            format!("server {:?} is not an IP address or IP:port", s.chars().take(80).collect::<String>()),
            "give e.g. 192.0.2.53 or [2001:db8::53]:53",
        )
    })
}

#[tool_router(router = dns_lookup_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "dns_lookup",
        description = "Ask a resolver (the system's, or a given server) for A/AAAA/CNAME/MX/TXT/NS/SRV/PTR/CAA records of a name (PTR: of an address), with TTLs and the time each answer took.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn dns_lookup(
        &self,
        Parameters(input): Parameters<DnsLookupInput>,
    ) -> Result<Json<DnsLookupOutput>, ToolError> {
        let name = parse_host(&input.name)?;
        let mut types = input.types;
        if types.len() > MAX_RECORD_TYPES {
            return Err(ToolError::invalid_input(
                format!("at most {MAX_RECORD_TYPES} record types, got {}", types.len()),
                "ask for each type once",
            ));
        }
        types.dedup();
        if types.is_empty() {
            types = match name {
                Host::Ip(_) => vec![RecordType::PTR],
                Host::Name(_) => vec![RecordType::A, RecordType::AAAA],
            };
        }
        if matches!(name, Host::Ip(_)) && types.iter().any(|t| *t != RecordType::PTR) {
            return Err(ToolError::invalid_input(
                "an address can only be looked up as PTR",
                "give a DNS name for the other record types",
            ));
        }
        if matches!(name, Host::Name(_)) && types.contains(&RecordType::PTR) {
            return Err(ToolError::invalid_input(
                "PTR needs an IP address as name",
                "give the address whose reverse name you want",
            ));
        }
        let q = DnsLookup {
            name,
            types,
            server: input.server.as_deref().map(parse_server).transpose()?,
            timeout: step_timeout(input.timeout_ms, "timeout_ms")?,
        };
        self.prober().dns_lookup(q).await.map(Json)
    }
}
