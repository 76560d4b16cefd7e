//! Built-in tools that prove the spine: `whoami` and `server_info`.

use std::collections::BTreeMap;

use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::Json;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;

use super::TailopsServer;
use crate::auth::caller::Caller;
use crate::auth::scopes::Scope;
use crate::mcp::{ToolError, ToolSpec};

pub const SPECS: &[ToolSpec] = &[
    ToolSpec { name: "whoami", domain: "core", scope: None, writes: false },
    ToolSpec { name: "server_info", domain: "core", scope: Some(Scope::SystemRead), writes: false },
];

/// `whoami` output.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhoamiOutput {
    /// `user:<login>` or `tags:<tag,…>`.
    pub id: String,
    pub login_name: String,
    pub display_name: String,
    pub tags: Vec<String>,
    /// Calling node's MagicDNS name and stable id.
    pub node_name: String,
    pub node_id: String,
    /// Tailnet address the call came from.
    pub source: String,
    /// Scopes in effect for this call (identity scopes, narrowed by the
    /// OAuth token if one was presented).
    pub effective_scopes: Vec<String>,
    /// For each scope the identity holds: the grants or policy rules that
    /// gave it.
    pub scope_sources: BTreeMap<String, Vec<String>>,
    /// Scopes of the OAuth token, when one was presented.
    pub token_scopes: Option<Vec<String>>,
    /// Tools allowed or denied by name, with their sources.
    pub allowed_tools: BTreeMap<String, Vec<String>>,
    pub denied_tools: BTreeMap<String, Vec<String>>,
    /// Grant values that were ignored, and why.
    pub ignored_grants: Vec<String>,
    /// Tool names in this caller's grants or policy rules (allow or deny)
    /// that no tool of this server has, each with where it was written:
    /// usually a typo, and a misspelt deny denies nothing.
    pub unknown_tools: BTreeMap<String, Vec<String>>,
    /// Why this caller gets no access at all (a grant's `tools.deny` that
    /// cannot be read might deny anything); empty normally.
    pub access_withheld: Vec<String>,
}

/// `server_info` output.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ServerInfoOutput {
    pub name: String,
    pub version: String,
    /// MagicDNS name of this node (or the dev/stdio label).
    pub node: String,
    pub uptime_secs: u64,
    /// Tool domains compiled in and enabled.
    pub domains: Vec<String>,
    /// True when writing tools are switched off by `read_only`.
    pub read_only: bool,
    /// Whether the audit log is currently writable (writes refused if not).
    pub audit_healthy: bool,
    pub limits: LimitsInfo,
    /// The metrics sampler (absent if it is not running).
    pub sampler: Option<SamplerInfo>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SamplerInfo {
    pub interval_secs: u64,
    /// Metrics with history.
    pub metrics: usize,
    /// Duration of the last sample, milliseconds.
    pub last_sample_ms: f64,
    /// History memory now, and its bound at full retention, bytes.
    pub history_bytes: usize,
    pub history_bytes_at_full_retention: usize,
    pub alert_rules: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LimitsInfo {
    pub calls_per_minute: u32,
    pub burst: u32,
    pub writes_per_minute: u32,
    pub write_burst: u32,
    pub max_request_body_bytes: usize,
    pub max_sessions_per_principal: usize,
    pub session_idle_secs: u64,
    pub max_connections: usize,
    /// Seconds a connection's identity is reused before it is looked up
    /// again: the longest a revoked grant keeps working on one connection.
    pub identity_ttl_secs: u64,
}

#[tool_router(router = builtin_router, vis = "pub(crate)")]
impl TailopsServer {
    /// Your identity as this server sees it, your effective scopes and where
    /// each came from. Callable by any identified caller.
    #[tool(
        name = "whoami",
        description = "Who you are on the tailnet (user or tags, node), your effective scopes and the grants or policy rules each came from.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn whoami(&self, Extension(caller): Extension<Caller>) -> Result<Json<WhoamiOutput>, ToolError> {
        let p = &caller.principal;
        let a = &caller.access;
        let specs = super::all_specs();
        Ok(Json(WhoamiOutput {
            id: p.id.clone(),
            login_name: p.login_name.clone(),
            display_name: p.display_name.clone(),
            tags: p.tags.clone(),
            node_name: p.node_name.clone(),
            node_id: p.node_id.clone(),
            source: p.source.to_string(),
            effective_scopes: caller.effective_scopes().iter().map(|s| s.to_string()).collect(),
            scope_sources: a.scopes.iter().map(|(s, src)| (s.to_string(), src.clone())).collect(),
            token_scopes: caller.token_scopes.as_ref().map(|t| t.iter().map(|s| s.to_string()).collect()),
            allowed_tools: a.allow_tools.clone(),
            denied_tools: a.deny_tools.clone(),
            ignored_grants: a.ignored.clone(),
            unknown_tools: a.unknown_tools(|name| specs.iter().any(|t| t.name == name)),
            access_withheld: a.withheld.clone(),
        }))
    }

    /// Version, uptime, enabled tool domains and limits.
    #[tool(
        name = "server_info",
        description = "tailops version, uptime, enabled tool domains, read-only switch, audit health and limits.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn server_info(&self) -> Result<Json<ServerInfoOutput>, ToolError> {
        let s = &self.spine;
        let mut domains: Vec<String> = super::all_specs().iter().map(|t| t.domain.to_string()).collect();
        domains.dedup();
        let rate = s.limiter.config();
        Ok(Json(ServerInfoOutput {
            name: "tailops".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            node: s.node_name.clone(),
            uptime_secs: s.started.elapsed().as_secs(),
            domains,
            read_only: s.cfg.read_only,
            audit_healthy: s.audit.is_healthy(),
            limits: LimitsInfo {
                calls_per_minute: rate.calls_per_minute,
                burst: rate.burst,
                writes_per_minute: rate.writes_per_minute,
                write_burst: rate.write_burst,
                max_request_body_bytes: s.cfg.limits.max_request_body_bytes,
                max_sessions_per_principal: s.cfg.limits.max_sessions_per_principal,
                session_idle_secs: s.cfg.limits.session_idle_secs,
                max_connections: s.cfg.limits.max_connections,
                identity_ttl_secs: s.cfg.limits.identity_ttl_secs,
            },
            sampler: self.host.sampler.as_ref().map(|smp| SamplerInfo {
                interval_secs: s.cfg.sampler.interval_secs,
                metrics: smp.metric_names().len(),
                last_sample_ms: smp.sample_cost().as_secs_f64() * 1e3,
                history_bytes: smp.history_memory_bytes(),
                history_bytes_at_full_retention: smp.history_memory_bytes_at_full_retention(),
                alert_rules: smp.rules().len(),
            }),
        }))
    }
}
