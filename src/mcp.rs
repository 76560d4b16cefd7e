//! The MCP server (rmcp `ServerHandler`): assembles the tool routers and
//! wraps every call in the spine — authorization from the tool's declared
//! scope, rate limit, audit (always: allowed, denied, failed), the
//! fail-closed rule for writes, a time limit, panic containment, and a
//! bounded retry of transient failures of read-only tools.
//!
//! The same handler serves HTTP (caller from the request's extensions,
//! set by `http.rs`) and stdio (a fixed local caller).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, ErrorCode, Implementation, InitializeResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ResultType, ServerCapabilities,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;

use crate::audit::{self, AuditLog, Event};
use crate::auth::caller::Caller;
use crate::auth::policy::Decision;
use crate::auth::ratelimit::{Limiter, Refusal};
use crate::auth::scopes::Scope;
use crate::config::Config;
use crate::tools::{ErrorCategory, ToolError, ToolSpec};

/// Retries of a read-only tool that failed `unavailable`, and the first
/// backoff (doubled each time).
pub const READ_RETRIES: u32 = 2;
pub const READ_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// The one MCP resource: the system overview.
pub const OVERVIEW_URI: &str = "system://overview";
/// JSON-RPC error code for "rate limited" on transports without HTTP status.
pub const RATE_LIMITED_CODE: i32 = -32029;

/// Shared state of the spine; one per server process.
pub struct Spine {
    pub cfg: Arc<Config>,
    pub audit: AuditLog,
    pub limiter: Limiter,
    pub started: Instant,
    /// MagicDNS name (or local label) for server_info.
    pub node_name: String,
    pub specs: HashMap<&'static str, ToolSpec>,
    /// Host metrics (None only in unit tests / if it failed to start).
    pub sampler: Option<Arc<crate::host::sampler::Sampler>>,
    /// The Docker client (connects lazily, reconnects after daemon restarts).
    pub docker: crate::tools::docker::Docker,
}

impl Spine {
    pub fn new(
        cfg: Arc<Config>,
        audit: AuditLog,
        node_name: String,
        sampler: Option<Arc<crate::host::sampler::Sampler>>,
    ) -> Self {
        let limiter = Limiter::new(cfg.limits.rate.clone());
        let specs = crate::tools::all_specs().into_iter().map(|s| (s.name, s)).collect();
        let docker = crate::tools::docker::Docker::new(&cfg.docker);
        Self { cfg, audit, limiter, started: Instant::now(), node_name, specs, sampler, docker }
    }

    /// The spec of a callable tool (`read_only` hides writing tools).
    pub fn spec(&self, name: &str) -> Option<ToolSpec> {
        self.specs.get(name).copied().filter(|s| !(self.cfg.read_only && s.writes))
    }

    /// Audit helper: fills principal fields from the caller.
    pub fn audit_event(&self, caller: &Caller, session: Option<String>, mut ev: Event) -> Result<(), String> {
        ev.principal = Some(caller.principal.id.clone());
        ev.node = Some(caller.principal.node_name.clone());
        ev.source = Some(caller.principal.source.to_string());
        ev.session = session;
        self.audit.record(ev).map_err(|e| e.to_string())
    }

    /// Records a denial; when it trips the repeated-denial block, also an
    /// `anomaly` record.
    pub fn note_denial(&self, caller: &Caller, session: Option<String>) {
        if self.limiter.denied(&caller.principal.id) {
            tracing::warn!(principal = %caller.principal.id, "repeated authorization failures: principal blocked");
            let _ = self.audit_event(
                caller,
                session,
                Event {
                    kind: audit::kind::ANOMALY.into(),
                    detail: Some(json!({
                        "event": "repeated_denials",
                        "max_denials": self.cfg.limits.rate.max_denials,
                        "window_secs": self.cfg.limits.rate.denial_window_secs,
                        "blocked_secs": self.cfg.limits.rate.block_secs,
                    })),
                    ..Default::default()
                },
            );
        }
    }
}

/// An audit record of an authorization decision about `tool`.
pub fn decision_event(tool: &str, decision: &str, outcome: Option<&str>) -> Event {
    Event {
        kind: audit::kind::DECISION.into(),
        tool: Some(tool.to_string()),
        decision: Some(decision.into()),
        outcome: outcome.map(str::to_string),
        ..Default::default()
    }
}

/// Marker put in the HTTP request by `http.rs` when the call was already
/// charged to the rate limiter there (so it is not charged twice).
#[derive(Clone, Copy, Debug)]
pub struct RateChecked;

#[derive(Clone)]
pub struct TailopsServer {
    pub(crate) spine: Arc<Spine>,
    router: ToolRouter<TailopsServer>,
    /// The caller for transports without per-request identity (stdio).
    local_caller: Option<Caller>,
}

impl TailopsServer {
    pub fn new(spine: Arc<Spine>, local_caller: Option<Caller>) -> Self {
        Self { spine, router: Self::routers(), local_caller }
    }

    fn routers() -> ToolRouter<TailopsServer> {
        Self::builtin_router()
            + Self::system_router()
            + Self::processes_router()
            + Self::audit_router()
            + Self::docker_router()
    }

    /// Every routed tool has a spec and every spec a tool; run at start-up.
    pub fn check_registry() -> Result<(), String> {
        let routed: std::collections::BTreeSet<String> =
            Self::routers().list_all().into_iter().map(|t| t.name.to_string()).collect();
        let specced: std::collections::BTreeSet<String> =
            crate::tools::all_specs().iter().map(|s| s.name.to_string()).collect();
        if routed != specced {
            return Err(format!(
                "tool registry mismatch: routed without spec {:?}, spec without tool {:?}",
                routed.difference(&specced).collect::<Vec<_>>(),
                specced.difference(&routed).collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    fn parts(ctx: &RequestContext<RoleServer>) -> Option<&http::request::Parts> {
        ctx.extensions.get::<http::request::Parts>()
    }

    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Option<Caller> {
        Self::parts(ctx).and_then(|p| p.extensions.get::<Caller>().cloned()).or_else(|| self.local_caller.clone())
    }

    fn session(ctx: &RequestContext<RoleServer>) -> Option<String> {
        Self::parts(ctx).and_then(|p| p.headers.get("mcp-session-id")).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    fn refuse(
        &self,
        caller: &Caller,
        session: Option<String>,
        tool: &str,
        args: Option<serde_json::Value>,
        err: ToolError,
        decision: &str,
    ) -> CallToolResponse {
        let _ = self.spine.audit_event(
            caller,
            session,
            Event {
                kind: audit::kind::DECISION.into(),
                tool: Some(tool.to_string()),
                args,
                decision: Some(decision.into()),
                outcome: Some("refused".into()),
                error_category: Some(err.category.as_str().into()),
                detail: Some(json!({ "message": err.message })),
                ..Default::default()
            },
        );
        err.to_result().into()
    }

    /// Runs the tool with the time limit, containing panics.
    async fn run_once(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let limit = Duration::from_secs(self.spine.cfg.limits.tool_timeout_secs);
        let tcc = ToolCallContext::new(self, req, ctx);
        let fut = std::panic::AssertUnwindSafe(self.router.call(tcc)).catch_unwind();
        match tokio::time::timeout(limit, fut).await {
            Err(_) => Ok(ToolError::new(
                ErrorCategory::Timeout,
                format!("the tool did not finish within {} s", limit.as_secs()),
                "narrow the request or retry later",
            )
            .to_result()
            .into()),
            Ok(Err(_panic)) => Ok(ToolError::internal("the tool failed unexpectedly").to_result().into()),
            Ok(Ok(r)) => r,
        }
    }
}

fn outcome_of(resp: &Result<CallToolResponse, ErrorData>) -> (String, Option<ErrorCategory>) {
    match resp {
        Ok(CallToolResponse::Complete(r)) => match ToolError::from_result(r) {
            None => ("ok".into(), None),
            Some(e) => ("error".into(), Some(e.category)),
        },
        Ok(_) => ("input_required".into(), None),
        Err(e) => (format!("protocol_error {}", e.code.0), Some(ErrorCategory::InvalidInput)),
    }
}

fn is_unavailable(resp: &Result<CallToolResponse, ErrorData>) -> bool {
    matches!(resp, Ok(CallToolResponse::Complete(r)) if ToolError::from_result(r).is_some_and(|e| e.category == ErrorCategory::Unavailable))
}

impl ServerHandler for TailopsServer {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("tailops", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "tailops: operate this Linux host. Tools are filtered to what your tailnet identity may do; \
                 call whoami to see your scopes and where they come from.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let Some(caller) = self.caller(&context) else {
            return Err(ErrorData::internal_error("request without a caller identity", None));
        };
        let tools = self
            .router
            .list_all()
            .into_iter()
            .filter(|t| {
                self.spine.spec(&t.name).is_some_and(|s| !matches!(caller.check(s.name, s.scope), Decision::Deny(_)))
            })
            .collect();
        let v2026 = context.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: v2026.then_some(0),
            // The list depends on who asks: never shared between users.
            cache_scope: v2026.then_some(CacheScope::Private),
        })
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let allowed = self.caller(&context).is_some_and(|c| c.access.has(Scope::SystemRead));
        let resources = if allowed {
            vec![
                Resource::new(OVERVIEW_URI, "system-overview")
                    .with_title("System overview")
                    .with_description("The system_overview tool's result as a JSON resource")
                    .with_mime_type("application/json"),
            ]
        } else {
            Vec::new()
        };
        let v2026 = context.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        Ok(ListResourcesResult {
            result_type: Some(ResultType::COMPLETE),
            resources,
            meta: None,
            next_cursor: None,
            ttl_ms: v2026.then_some(0),
            cache_scope: v2026.then_some(CacheScope::Private),
        })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let Some(caller) = self.caller(&context) else {
            return Err(ErrorData::internal_error("request without a caller identity", None));
        };
        if request.uri != OVERVIEW_URI {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                Some(json!({ "uri": request.uri })),
            ));
        }
        let decision = caller.check("system_overview", Some(Scope::SystemRead));
        let allowed = matches!(decision, Decision::Allow);
        let _ = self.spine.audit_event(
            &caller,
            Self::session(&context),
            Event {
                kind: if allowed { audit::kind::TOOL_CALL.into() } else { audit::kind::DECISION.into() },
                tool: Some(format!("resource:{OVERVIEW_URI}")),
                decision: Some(if allowed { "allow" } else { "deny" }.into()),
                outcome: Some(if allowed { "ok" } else { "refused" }.into()),
                ..Default::default()
            },
        );
        if !allowed {
            self.spine.note_denial(&caller, Self::session(&context));
            return Err(ErrorData::invalid_request("reading system://overview requires scope system:read", None));
        }
        let Some(sampler) = self.spine.sampler.as_ref() else {
            return Err(ErrorData::internal_error("the metrics sampler is not running", None));
        };
        let body = crate::tools::system::overview(&sampler.latest(), &sampler.alerts());
        let text = serde_json::to_string(&body).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let contents = ResourceContents::TextResourceContents {
            uri: OVERVIEW_URI.into(),
            mime_type: Some("application/json".into()),
            text,
            meta: None,
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.spine.spec(name)?;
        self.router.get(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let t0 = Instant::now();
        let Some(caller) = self.caller(&context) else {
            return Err(ErrorData::internal_error("request without a caller identity", None));
        };
        let session = Self::session(&context);
        let name = request.name.to_string();
        let args = request.arguments.clone().map(serde_json::Value::Object);
        let spine = &self.spine;

        let Some(spec) = spine.spec(&name) else {
            let ev = Event {
                args,
                error_category: Some("invalid_input".into()),
                ..decision_event(&name, "deny", Some("unknown_tool"))
            };
            let _ = spine.audit_event(&caller, session, ev);
            return Err(ErrorData::invalid_params(format!("unknown tool: {name}"), None));
        };

        match caller.check(spec.name, spec.scope) {
            Decision::Allow => {}
            Decision::Deny(reason) => {
                spine.note_denial(&caller, session.clone());
                let err = ToolError::permission_denied(
                    reason,
                    "ask a tailnet admin for a grant (call whoami to see your scopes)",
                );
                return Ok(self.refuse(&caller, session, &name, args, err, "deny"));
            }
            Decision::StepUp(scope) => {
                let err = ToolError::permission_denied(
                    format!("the access token lacks scope {scope}"),
                    format!("obtain a token with scope {scope} and retry"),
                );
                return Ok(self.refuse(&caller, session, &name, args, err, "step_up"));
            }
        }

        let already_charged = Self::parts(&context).is_some_and(|p| p.extensions.get::<RateChecked>().is_some());
        if !already_charged && let Err(refusal) = spine.limiter.check(&caller.principal.id, spec.writes) {
            let ev = Event { args, ..decision_event(&name, "rate_limited", Some("refused")) };
            let _ = spine.audit_event(&caller, session, ev);
            let secs = refusal.retry_after().as_secs_f64().ceil();
            let what = match refusal {
                Refusal::Blocked { .. } => "blocked after repeated authorization failures",
                Refusal::RateLimited { .. } => "rate limited",
            };
            return Err(ErrorData::new(
                ErrorCode(RATE_LIMITED_CODE),
                format!("{what}; retry after {secs} s"),
                Some(json!({ "retry_after_secs": secs })),
            ));
        }

        if spec.writes {
            // Fail closed: no audit, no writes. The intent is recorded first.
            let ev = Event { args: args.clone(), ..decision_event(&name, "allow", None) };
            let intent = spine.audit_event(&caller, session.clone(), ev);
            if !spine.audit.is_healthy() || intent.is_err() {
                let err = ToolError::unavailable(
                    "the audit log cannot be written, so writing tools are refused",
                    "fix the audit log (disk space, permissions; see /readyz); read-only tools keep working",
                );
                return Ok(err.to_result().into());
            }
        }

        context.extensions.insert(caller.clone());
        let mut attempt = 0;
        let mut resp = self.run_once(request.clone(), context.clone()).await;
        while !spec.writes && attempt < READ_RETRIES && is_unavailable(&resp) {
            tokio::time::sleep(READ_RETRY_BACKOFF * 2u32.pow(attempt)).await;
            attempt += 1;
            resp = self.run_once(request.clone(), context.clone()).await;
        }

        let (outcome, category) = outcome_of(&resp);
        let _ = spine.audit_event(
            &caller,
            session,
            Event {
                kind: audit::kind::TOOL_CALL.into(),
                tool: Some(name),
                args,
                decision: Some("allow".into()),
                outcome: Some(outcome),
                error_category: category.map(|c| c.as_str().to_string()),
                duration_ms: Some(u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX)),
                detail: (attempt > 0).then(|| json!({ "retries": attempt })),
                ..Default::default()
            },
        );
        resp
    }
}
