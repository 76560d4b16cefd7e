//! `http_check`: one HTTP(S) request with its timing split.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use serde::Deserialize;

use crate::host::net::probe::http::{HttpCheck, HttpCheckOutput, MAX_REDIRECTS};
use crate::host::net::probe::step_timeout;
use crate::mcp::ToolError;
use crate::tools::TailopsServer;

/// HTTP method of `http_check`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "HEAD")]
    Head,
}

/// `http_check` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheckInput {
    /// An absolute `http://` or `https://` URL (no credentials); its host
    /// passes the target policy, and so does every redirect's.
    pub url: String,
    /// GET (default) or HEAD.
    #[serde(default)]
    pub method: HttpMethod,
    /// Follow redirects (each hop checked by the target policy again).
    /// Default false: a redirect is reported, not followed.
    #[serde(default)]
    pub follow_redirects: bool,
    /// Most redirects followed, 0-10 (default 5).
    pub max_redirects: Option<u32>,
    /// Time limit of each step (resolve, connect, TLS, response head,
    /// body), ms (10-10000, default 3000).
    pub timeout_ms: Option<u64>,
}

#[tool_router(router = http_check_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "http_check",
        description = "One HTTP(S) GET or HEAD: status, timing split (DNS, connect, TLS, first byte, total), headers (secrets redacted), body size (1 MiB cap) and TLS certificate; redirects followed only when asked, every hop re-checked by the network target policy.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn http_check(
        &self,
        Parameters(input): Parameters<HttpCheckInput>,
    ) -> Result<Json<HttpCheckOutput>, ToolError> {
        let max_redirects = input.max_redirects.unwrap_or(5);
        if max_redirects > MAX_REDIRECTS {
            return Err(ToolError::invalid_input(
                format!("max_redirects must be 0-{MAX_REDIRECTS}, got {max_redirects}"),
                "ask for fewer redirects",
            ));
        }
        let q = HttpCheck {
            url: input.url,
            head: input.method == HttpMethod::Head,
            follow_redirects: input.follow_redirects,
            max_redirects,
            timeout: step_timeout(input.timeout_ms, "timeout_ms")?,
        };
        self.prober().http_check(q).await.map(Json)
    }
}
