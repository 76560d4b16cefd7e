//! An extension point: more tools, resources, prompts and completions
//! handed to `serve` at construction ([`crate::server::run_extended`]).
//! The production binary passes none; the conformance suite's fixture
//! server (`examples/conformance_fixtures.rs`, built by `cargo test`, never
//! shipped) passes its fixtures. Everything an extension offers goes
//! through the spine like a built-in tool: its tools carry [`ToolSpec`]s
//! (authorization, rate limit, audit, the start-up registry check), and its
//! resources, prompts, completions and `logging/setLevel` are admitted and
//! audited as its [`Extension::authorized_as`] tool.

use rmcp::ErrorData;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse, Prompt, ReadResourceResponse,
    Resource, ResourceTemplate, ServerCapabilities,
};

use super::TailopsServer;
use crate::mcp::ToolSpec;

pub trait Extension: Send + Sync + 'static {
    /// The specs of the extra tools (checked against [`Self::router`] at
    /// start-up, with the built-in ones).
    fn specs(&self) -> Vec<ToolSpec>;
    /// The extra tools.
    fn router(&self) -> ToolRouter<TailopsServer>;
    /// The tool (one of [`Self::specs`]) whose spec authorizes the
    /// extension's resources, prompts, completions and log level.
    fn authorized_as(&self) -> &'static str;
    /// Adds the capabilities the extension serves (prompts, completions,
    /// logging …) to the server's.
    fn capabilities(&self, caps: &mut ServerCapabilities);
    fn resources(&self) -> Vec<Resource> {
        Vec::new()
    }
    fn resource_templates(&self) -> Vec<ResourceTemplate> {
        Vec::new()
    }
    /// Whether `uri` is one of the extension's resources (then it reads
    /// and subscribes it; otherwise the built-in resources are asked).
    fn owns_resource(&self, _uri: &str) -> bool {
        false
    }
    fn read_resource(&self, uri: &str) -> Result<ReadResourceResponse, ErrorData> {
        Err(ErrorData::resource_not_found(format!("no resource {uri}"), None))
    }
    fn prompts(&self) -> Vec<Prompt> {
        Vec::new()
    }
    fn get_prompt(&self, request: &GetPromptRequestParams) -> Result<GetPromptResponse, ErrorData> {
        Err(ErrorData::invalid_params(format!("no prompt {}", request.name), None))
    }
    fn complete(&self, _request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
        Ok(CompleteResult::default())
    }
}
