//! [`TailopsServer`]: the rmcp `ServerHandler` every transport serves. It
//! imports no domain: the tools come from the summed routers of
//! `tools/mod.rs`, and every call goes through the spine (`mcp/`): one
//! admission decision, then the per-call wrapper. The same handler serves
//! HTTP (caller from the request's extensions, set by `http/`) and stdio
//! (a fixed local caller).

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestMethod, CompleteRequestParams, CompleteResult,
    GetPromptRequestMethod, GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsRequestMethod, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, ResultType, ServerCapabilities, SetLevelRequestMethod, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::extension::Extension;
use crate::auth::caller::Caller;
use crate::auth::policy::Decision;
use crate::host::Host;
use crate::mcp::admit::Outcome;
use crate::mcp::call::{call_record, run_admitted};
use crate::mcp::{Admitted, Decided, ErrorCategory, Refusal, Spine, validate};

#[derive(Clone)]
pub struct TailopsServer {
    pub(crate) spine: Arc<Spine>,
    pub(crate) host: Arc<Host>,
    /// Built once per process (35+ tools with their JSON schemas), shared
    /// by every session and stateless request.
    router: Arc<ToolRouter<TailopsServer>>,
    /// The caller for transports without per-request identity (stdio).
    local_caller: Option<Caller>,
    /// Extra tools, resources and prompts (test fixtures; none in production).
    extension: Option<Arc<dyn Extension>>,
}

impl TailopsServer {
    pub fn new(
        spine: Arc<Spine>,
        host: Arc<Host>,
        router: Arc<ToolRouter<TailopsServer>>,
        local_caller: Option<Caller>,
    ) -> Self {
        Self { spine, host, router, local_caller, extension: None }
    }

    /// Serves `extension`'s resources, prompts and completions too (its
    /// tools come in the router and its specs in the spine).
    pub fn with_extension(mut self, extension: Option<Arc<dyn Extension>>) -> Self {
        self.extension = extension;
        self
    }

    /// Every routed tool has a spec and every spec a tool (the extension's
    /// included); run at start-up.
    pub fn check_registry(extension: Option<&dyn Extension>) -> Result<(), String> {
        let mut router = super::router();
        let mut specs = super::all_specs();
        if let Some(ext) = extension {
            router += ext.router();
            specs.extend(ext.specs());
        }
        let routed: std::collections::BTreeSet<String> =
            router.list_all().into_iter().map(|t| t.name.to_string()).collect();
        let specced: std::collections::BTreeSet<String> = specs.iter().map(|s| s.name.to_string()).collect();
        if specced.len() != specs.len() {
            return Err("tool registry mismatch: two specs share a name".into());
        }
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

    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        Self::parts(ctx)
            .and_then(|p| p.extensions.get::<Caller>().cloned())
            .or_else(|| self.local_caller.clone())
            .ok_or_else(|| ErrorData::internal_error("request without a caller identity", None))
    }

    fn session(ctx: &RequestContext<RoleServer>) -> Option<String> {
        Self::parts(ctx).and_then(|p| p.headers.get("mcp-session-id")).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    /// The admission for this call: the one the HTTP gate decided, or (stdio,
    /// or a message the gate did not parse) decided now.
    fn admission(
        &self,
        ctx: &RequestContext<RoleServer>,
        caller: &Caller,
        name: &str,
        args: Option<&Value>,
    ) -> Result<Admitted, Refusal> {
        match Self::parts(ctx).and_then(|p| p.extensions.get::<Decided>()) {
            Some(d) if d.tool == name => d.result.clone(),
            _ => self.spine.admit(caller, Self::session(ctx).as_deref(), name, args),
        }
    }
}

impl TailopsServer {
    /// Admits a resource request authorized like `tool`, audited as
    /// `audit_name`; a refusal as the JSON-RPC error the client gets.
    fn admit_resource(
        &self,
        caller: &Caller,
        session: Option<&str>,
        audit_name: &str,
        tool: &str,
        uri: &str,
    ) -> Result<(), ErrorData> {
        match self.spine.admit_as(caller, session, audit_name, tool, None) {
            Ok(_) => Ok(()),
            Err(r) => Err(match r.retry_after() {
                Some(wait) => r.rate_error(wait),
                None => ErrorData::invalid_request(format!("{uri} is not available to you ({tool}'s scope)"), None),
            }),
        }
    }

    /// The audit record of an admitted resource request.
    fn audit_resource(&self, caller: &Caller, session: Option<String>, audit_name: &str, err: Option<ErrorCategory>) {
        let outcome = if err.is_none() { Outcome::Ok } else { Outcome::Error };
        let _ = self.spine.audit_event(caller, session, call_record(audit_name, outcome.as_str(), err));
    }

    /// The subscription key: the MCP session, or `stdio` for the one local
    /// client. Stateless HTTP requests (no session) cannot subscribe.
    fn subscription_key(ctx: &RequestContext<RoleServer>) -> Result<String, ErrorData> {
        match (Self::session(ctx), Self::parts(ctx)) {
            (Some(s), _) => Ok(s),
            (None, None) => Ok("stdio".to_string()),
            (None, Some(_)) => Err(ErrorData::invalid_request(
                "resources/subscribe needs an MCP session (protocol 2025-11-25 with Mcp-Session-Id)",
                None,
            )),
        }
    }
}

impl TailopsServer {
    /// The extension, when this caller may use it (its
    /// [`Extension::authorized_as`] tool is allowed).
    fn extension_for(&self, caller: &Caller) -> Option<&Arc<dyn Extension>> {
        let ext = self.extension.as_ref()?;
        let spec = self.spine.spec(ext.authorized_as())?;
        (caller.check(spec.name, spec.scope) == Decision::Allow).then_some(ext)
    }

    /// Runs one extension request (prompt, completion, log level, resource)
    /// through the spine: admitted (rate limit, authorization) as the
    /// extension's authorizing tool, audited as `audit_name` with its
    /// outcome. `None` when no extension is installed.
    fn run_extension<T>(
        &self,
        context: &RequestContext<RoleServer>,
        audit_name: &str,
        f: impl FnOnce(&dyn Extension) -> Result<T, ErrorData>,
    ) -> Option<Result<T, ErrorData>> {
        let ext = self.extension.as_ref()?;
        Some((|| {
            let caller = self.caller(context)?;
            let session = Self::session(context);
            self.admit_resource(&caller, session.as_deref(), audit_name, ext.authorized_as(), audit_name)?;
            let r = f(ext.as_ref());
            self.audit_resource(&caller, session, audit_name, r.as_ref().err().map(|_| ErrorCategory::InvalidInput));
            r
        })())
    }
}

/// A URI as far as the audit log names it.
fn clip_uri(uri: &str) -> &str {
    let mut end = uri.len().min(MAX_AUDITED_URI_BYTES);
    while !uri.is_char_boundary(end) {
        end -= 1;
    }
    &uri[..end]
}

/// Longest URI written into an audit record's tool name.
pub const MAX_AUDITED_URI_BYTES: usize = 4096 + 64;

fn private_if_2026(ctx: &RequestContext<RoleServer>) -> (Option<u64>, Option<CacheScope>) {
    let v2026 = ctx.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    // Lists depend on who asks: never shared between users.
    (v2026.then_some(0), v2026.then_some(CacheScope::Private))
}

impl ServerHandler for TailopsServer {
    fn get_info(&self) -> InitializeResult {
        let mut caps = ServerCapabilities::builder().enable_tools().enable_resources().build();
        if let Some(ext) = &self.extension {
            ext.capabilities(&mut caps);
        }
        InitializeResult::new(caps)
            .with_server_info(Implementation::new("tailops", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "tailops: operate this Linux host. Tools are filtered to what your tailnet identity may do; \
                 call whoami to see your scopes and where they come from.",
            )
    }

    /// The 2025-11-25 handshake also offers `resources/subscribe` (file
    /// resources; it needs the session). [`Self::get_info`], which
    /// `server/discover` (2026-07-28) reports, does not: that revision's
    /// `subscriptions/listen` is not implemented.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let mut info = self.negotiate_initialize(&request)?;
        if let Some(r) = info.capabilities.resources.as_mut() {
            r.subscribe = Some(true);
        }
        Ok(info)
    }

    /// Exactly the tools this request could call: with an OAuth token, the
    /// token's scopes narrow the list too.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&context)?;
        let tools = self
            .router
            .list_all()
            .into_iter()
            .filter(|t| self.spine.spec(&t.name).is_some_and(|s| caller.check(s.name, s.scope) == Decision::Allow))
            .collect();
        let (ttl_ms, cache_scope) = private_if_2026(&context);
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms,
            cache_scope,
        })
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.caller(&context)?;
        let mut resources: Vec<_> = super::RESOURCES
            .iter()
            .filter(|r| caller.check(r.tool, Some(r.scope)) == Decision::Allow)
            .map(|r| r.listing())
            .collect();
        if let Some(ext) = self.extension_for(&caller) {
            resources.extend(ext.resources());
        }
        let (ttl_ms, cache_scope) = private_if_2026(&context);
        Ok(ListResourcesResult {
            result_type: Some(ResultType::COMPLETE),
            resources,
            meta: None,
            next_cursor: None,
            ttl_ms,
            cache_scope,
        })
    }

    /// One template per file root the caller can see.
    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let caller = self.caller(&context)?;
        let mut resource_templates = self.file_templates(&caller);
        if let Some(ext) = self.extension_for(&caller) {
            resource_templates.extend(ext.resource_templates());
        }
        let (ttl_ms, cache_scope) = private_if_2026(&context);
        Ok(ListResourceTemplatesResult {
            result_type: Some(ResultType::COMPLETE),
            resource_templates,
            meta: None,
            next_cursor: None,
            ttl_ms,
            cache_scope,
        })
    }

    /// Resources are admitted (rate limit, authorization, audit) like the
    /// tool whose scope they need; file URIs like `file_read`.
    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self.caller(&context)?;
        let session = Self::session(&context);
        let audit_name = format!("resource:{}", clip_uri(&request.uri));
        if self.extension.as_ref().is_some_and(|e| e.owns_resource(&request.uri)) {
            let read = self.run_extension(&context, &audit_name, |e| e.read_resource(&request.uri));
            return read.unwrap_or_else(|| Err(ErrorData::internal_error("no extension", None)));
        }
        if let Some(tool) = super::templated_resource_tool(&request.uri) {
            self.admit_resource(&caller, session.as_deref(), &audit_name, tool, &request.uri)?;
            let body = self.read_file_resource(&caller, &request.uri).await;
            self.audit_resource(&caller, session, &audit_name, body.as_ref().err().map(|e| e.category));
            return match body {
                Ok(contents) => Ok(ReadResourceResult::new(contents).into()),
                Err(e) => Err(super::resource_error(&e, &request.uri)),
            };
        }
        let Some(res) = super::RESOURCES.iter().find(|r| r.uri == request.uri) else {
            let _ = self.spine.admit_as(&caller, session.as_deref(), &audit_name, "", None);
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", request.uri),
                Some(json!({ "uri": request.uri })),
            ));
        };
        if let Err(r) = self.spine.admit_as(&caller, session.as_deref(), &audit_name, res.tool, None) {
            return Err(match r.retry_after() {
                Some(wait) => r.rate_error(wait),
                None => ErrorData::invalid_request(format!("reading {} requires scope {}", res.uri, res.scope), None),
            });
        }
        let body = super::read_resource(&self.host, res.uri);
        let outcome = if body.is_ok() { Outcome::Ok } else { Outcome::Error };
        let ev = call_record(&audit_name, outcome.as_str(), body.as_ref().err().map(|e| e.category));
        let _ = self.spine.audit_event(&caller, session, ev);
        match body {
            Ok(contents) => Ok(ReadResourceResult::new(contents).into()),
            Err(e) => Err(ErrorData::internal_error(e.message, None)),
        }
    }

    /// File resources only (the static ones do not change); admitted and
    /// audited like a `file_read` of the file.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = self.caller(&context)?;
        let session = Self::session(&context);
        let audit_name = format!("resource_subscribe:{}", clip_uri(&request.uri));
        if self.extension.as_ref().is_some_and(|e| e.owns_resource(&request.uri)) {
            Self::subscription_key(&context)?;
            let done = self.run_extension(&context, &audit_name, |_| Ok(()));
            return done.unwrap_or_else(|| Err(ErrorData::internal_error("no extension", None)));
        }
        let Some(tool) = super::templated_resource_tool(&request.uri) else {
            let _ = self.spine.admit_as(&caller, session.as_deref(), &audit_name, "", None);
            return Err(ErrorData::resource_not_found(
                format!("{} cannot be subscribed to (only file:// resources change)", request.uri),
                Some(json!({ "uri": request.uri })),
            ));
        };
        let key = Self::subscription_key(&context)?;
        self.admit_resource(&caller, session.as_deref(), &audit_name, tool, &request.uri)?;
        let r = self.subscribe_file(&caller, &key, &request.uri, context.peer.clone()).await;
        self.audit_resource(&caller, session, &audit_name, r.as_ref().err().map(|e| e.category));
        r.map_err(|e| super::resource_error(&e, &request.uri))
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let caller = self.caller(&context)?;
        let session = Self::session(&context);
        let key = Self::subscription_key(&context)?;
        let audit_name = format!("resource_unsubscribe:{}", clip_uri(&request.uri));
        if self.extension.as_ref().is_some_and(|e| e.owns_resource(&request.uri)) {
            let done = self.run_extension(&context, &audit_name, |_| Ok(()));
            return done.unwrap_or_else(|| Err(ErrorData::internal_error("no extension", None)));
        }
        let tool = super::templated_resource_tool(&request.uri).unwrap_or("");
        self.admit_resource(&caller, session.as_deref(), &audit_name, tool, &request.uri)?;
        let found = self.unsubscribe_file(&key, &request.uri);
        let err = (!found).then_some(ErrorCategory::NotFound);
        self.audit_resource(&caller, session, &audit_name, err);
        if found {
            Ok(())
        } else {
            Err(ErrorData::resource_not_found(
                format!("no subscription to {} in this session", request.uri),
                Some(json!({ "uri": request.uri })),
            ))
        }
    }

    /// Prompts, completions and `logging/setLevel` exist only with an
    /// extension that offers them (production has none: -32601).
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let caller = self.caller(&context)?;
        if self.get_info().capabilities.prompts.is_none() {
            return Err(ErrorData::method_not_found::<ListPromptsRequestMethod>());
        }
        let prompts = self.extension_for(&caller).map(|e| e.prompts()).unwrap_or_default();
        let (ttl_ms, cache_scope) = private_if_2026(&context);
        Ok(ListPromptsResult {
            result_type: Some(ResultType::COMPLETE),
            prompts,
            meta: None,
            next_cursor: None,
            ttl_ms,
            cache_scope,
        })
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let audit_name = format!("prompt:{}", clip_uri(&request.name));
        self.run_extension(&context, &audit_name, |e| e.get_prompt(&request))
            .unwrap_or_else(|| Err(ErrorData::method_not_found::<GetPromptRequestMethod>()))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.run_extension(&context, "completion/complete", |e| e.complete(&request))
            .unwrap_or_else(|| Err(ErrorData::method_not_found::<CompleteRequestMethod>()))
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if self.get_info().capabilities.logging.is_none() {
            return Err(ErrorData::method_not_found::<SetLevelRequestMethod>());
        }
        self.run_extension(&context, "logging/setLevel", |_| Ok(()))
            .unwrap_or_else(|| Err(ErrorData::method_not_found::<SetLevelRequestMethod>()))
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
        let caller = self.caller(&context)?;
        let session = Self::session(&context);
        let args = request.arguments.clone().map(Value::Object);
        let admitted = match self.admission(&context, &caller, &request.name, args.as_ref()) {
            Ok(a) => a,
            Err(r) => return r.to_response(),
        };
        let input_check = match self.router.get(&request.name) {
            Some(tool) => validate::check_args(&tool.input_schema, args.as_ref()),
            None => Ok(()),
        };
        context.extensions.insert(caller.clone());
        run_admitted(&self.spine, &caller, session, &admitted, args, input_check, || {
            self.router.call(ToolCallContext::new(self, request.clone(), context.clone()))
        })
        .await
    }
}
