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

#[cfg(test)]
mod tests {
    use rmcp::handler::server::router::tool::ToolRoute;
    use rmcp::handler::server::tool::ToolCallContext;
    use rmcp::model::{CallToolResponse, CallToolResult};

    use super::*;

    /// An extension with one tool `name`: its spec and/or its route.
    struct One {
        name: &'static str,
        spec: bool,
        route: bool,
    }

    fn call(
        _: ToolCallContext<'_, TailopsServer>,
    ) -> futures::future::BoxFuture<'_, Result<CallToolResponse, ErrorData>> {
        Box::pin(std::future::ready(Ok(CallToolResult::success(vec![]).into())))
    }

    impl Extension for One {
        fn specs(&self) -> Vec<ToolSpec> {
            let spec = ToolSpec { name: self.name, domain: "test", scope: None, writes: false };
            if self.spec { vec![spec] } else { vec![] }
        }
        fn router(&self) -> ToolRouter<TailopsServer> {
            let mut r = ToolRouter::new();
            if self.route {
                let tool: rmcp::model::Tool = serde_json::from_value(
                    serde_json::json!({ "name": self.name, "inputSchema": { "type": "object" } }),
                )
                .expect("tool");
                r.add_route(ToolRoute::new_dyn(tool, call));
            }
            r
        }
        fn authorized_as(&self) -> &'static str {
            self.name
        }
        fn capabilities(&self, _: &mut ServerCapabilities) {}
    }

    #[test]
    fn the_start_up_registry_check_covers_the_extension() {
        let check = |name, spec, route| TailopsServer::check_registry(Some(&One { name, spec, route }));
        assert_eq!(TailopsServer::check_registry(None), Ok(()), "production");
        assert_eq!(check("x_fixture", true, true), Ok(()));
        let e = check("x_fixture", true, false).expect_err("spec without a tool");
        assert!(e.contains("spec without tool [\"x_fixture\"]"), "{e}");
        let e = check("x_fixture", false, true).expect_err("tool without a spec");
        assert!(e.contains("routed without spec [\"x_fixture\"]"), "{e}");
        // An extension cannot replace a built-in tool (and so its spec).
        let e = check("whoami", true, true).expect_err("shadows whoami");
        assert!(e.contains("two specs share a name"), "{e}");
    }
}
