//! Docker tools (stub being replaced by the Docker domain implementation).

use serde::Deserialize;

use super::ToolSpec;
use crate::mcp::TailopsServer;

pub const SPECS: &[ToolSpec] = &[];

/// `[docker]` settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {}

impl DockerConfig {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The shared Docker client (connects lazily).
#[derive(Clone, Debug, Default)]
pub struct Docker {}

impl Docker {
    pub fn new(_cfg: &DockerConfig) -> Self {
        Self {}
    }

    pub async fn health(&self) -> serde_json::Value {
        serde_json::json!({ "status": "not_configured" })
    }
}

#[rmcp::tool_router(router = docker_router, vis = "pub(crate)", allow_empty)]
impl TailopsServer {}
