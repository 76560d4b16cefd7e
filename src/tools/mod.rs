//! The MCP faces of the host, one file or folder per domain. This file is
//! the ONE list of domains: their routers, their `SPECS` tables and their
//! resources. Each domain declares its tools' scopes in a `SPECS` table
//! next to the functions; the spine (`mcp/`) does authorization, rate
//! limiting and audit from that table, so no tool can forget them.
//! Nothing here knows about HTTP.
//!
//! Adding a domain: write `host/<d>` (what it observes and changes) and
//! `tools/<d>.rs` (types, limits, `SPECS`, an
//! `#[tool_router(router = <d>_router)] impl TailopsServer` block, tests),
//! then add one line in [`all_specs`] and one in [`router`].

pub mod audit;
pub mod builtin;
pub mod docker;
pub mod extension;
pub mod files;
pub mod input;
pub mod journal;
pub mod network;
pub mod processes;
pub mod server;
pub mod services;
pub mod system;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Resource, ResourceContents};

use crate::auth::scopes::Scope;
use crate::host::Host;
use crate::mcp::{ToolError, ToolSpec};
pub use server::TailopsServer;

/// Every tool's spec. The server checks at start-up that this table and
/// the tool routers name exactly the same tools.
pub fn all_specs() -> Vec<ToolSpec> {
    [
        builtin::SPECS,
        system::SPECS,
        processes::SPECS,
        audit::SPECS,
        docker::SPECS,
        services::SPECS,
        journal::SPECS,
        &files::specs(),
        &network::specs(),
    ]
    .concat()
}

/// Every domain's tool router, summed.
pub fn router() -> ToolRouter<TailopsServer> {
    TailopsServer::builtin_router()
        + TailopsServer::system_router()
        + TailopsServer::processes_router()
        + TailopsServer::audit_router()
        + TailopsServer::docker_router()
        + TailopsServer::services_router()
        + TailopsServer::journal_router()
        + files::router()
        + network::router()
}

/// Tools this configuration does not offer (hidden by the spine as if
/// they did not exist).
pub fn not_offered(cfg: &crate::config::Config) -> Vec<&'static str> {
    files::not_offered(cfg)
}

/// An MCP resource: its listing, and the tool whose spec authorizes (and
/// names, in the audit log) reading it.
pub struct ResourceSpec {
    pub uri: &'static str,
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// Reading needs what calling this tool needs.
    pub tool: &'static str,
    pub scope: Scope,
}

/// Every resource.
pub const RESOURCES: &[ResourceSpec] = &[system::OVERVIEW_RESOURCE];

impl ResourceSpec {
    pub fn listing(&self) -> Resource {
        Resource::new(self.uri, self.name)
            .with_title(self.title)
            .with_description(self.description)
            .with_mime_type("application/json")
    }
}

/// Templated resources a domain serves (`file://…`): the tool whose spec
/// authorizes, limits and names them.
pub(crate) fn templated_resource_tool(uri: &str) -> Option<&'static str> {
    files::resource::owns(uri).then_some(files::resource::TOOL)
}

/// A templated resource's failure as the JSON-RPC error the client gets.
pub(crate) use files::resource::error_data as resource_error;

/// Reads one resource (already admitted).
pub fn read_resource(host: &Host, uri: &str) -> Result<Vec<ResourceContents>, ToolError> {
    let body = match uri {
        system::OVERVIEW_URI => system::overview_resource(host)?,
        _ => return Err(ToolError::not_found(format!("no resource {uri}"), "call resources/list")),
    };
    let text = serde_json::to_string(&body).map_err(|e| ToolError::internal(e.to_string()))?;
    Ok(vec![ResourceContents::TextResourceContents {
        uri: uri.to_string(),
        mime_type: Some("application/json".into()),
        text,
        meta: None,
    }])
}
