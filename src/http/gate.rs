//! The gate in front of rmcp on `/mcp`: the repeated-denial block, the
//! OAuth bearer token (optional), session binding and the per-principal
//! session cap, the request body cap, and — for `tools/call` — the one
//! admission decision of the spine, rendered here as 403 (step-up) or 429
//! (rate limit, with `Retry-After`) before rmcp sees the request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::{Value, json};

use super::oauth::OAuthGate;
use super::{AppState, error, rpc_error};
use crate::audit::{self, Event};
use crate::auth::caller::Caller;
use crate::auth::oauth::bearer_from_header;
use crate::auth::scopes::Scope;
use crate::mcp::call::reject_non_object;
use crate::mcp::contract::{PARSE_ERROR, RATE_LIMITED_CODE};
use crate::mcp::{Decided, Refusal};

/// Which principal created each MCP session: a session id presented by
/// anyone else is answered 404, as if it did not exist.
#[derive(Default)]
pub struct SessionOwners {
    owners: Mutex<HashMap<String, String>>,
}

impl SessionOwners {
    /// Sessions with an owner (open MCP sessions), for `/metrics`.
    pub fn len(&self) -> usize {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn owner(&self, sid: &str) -> Option<String> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).get(sid).cloned()
    }
    fn insert(&self, sid: String, principal: String) {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).insert(sid, principal);
    }
    fn remove(&self, sid: &str) {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).remove(sid);
    }
    /// Live sessions of `principal`; forgets sessions rmcp has reaped.
    async fn live_count(&self, principal: &str, manager: &LocalSessionManager) -> usize {
        let live: std::collections::HashSet<String> =
            manager.sessions.read().await.keys().map(|k| k.to_string()).collect();
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.retain(|sid, _| live.contains(sid));
        owners.values().filter(|p| p.as_str() == principal).count()
    }
}

fn session_header(req: &Request) -> Option<String> {
    req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn retry_after(resp: &mut Response, d: Duration) {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// Gate in front of rmcp for `/mcp`.
pub(super) async fn mcp_gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(mut caller) = req.extensions().get::<Caller>().cloned() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "request without a caller", "");
    };
    let spine = &state.spine;
    // Rate limits, blocks and sessions belong to the principal on its node.
    let pid = caller.rate_key();
    if let Some(wait) = spine.limiter.blocked_for(&pid) {
        let mut r = rpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            Value::Null,
            RATE_LIMITED_CODE,
            "temporarily blocked after repeated authorization failures",
            json!({ "retry_after_secs": wait.as_secs() }),
        );
        retry_after(&mut r, wait);
        return r;
    }

    // One Authorization header at most: with two, which one a proxy or a
    // library picks is not ours to guess.
    if req.headers().get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "more than one Authorization header",
            "send a single Authorization: Bearer header",
        );
    }

    // OAuth (optional): a valid bearer token for this resource narrows the
    // identity's scopes to the token's. Tokens are never forwarded.
    if let Some(o) = &state.oauth {
        let token = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_from_header);
        let held: Vec<&str> = caller.access.scopes.keys().map(|s| s.as_str()).collect();
        let held = held.join(" ");
        let Some(token) = token else {
            return o.challenge(
                StatusCode::UNAUTHORIZED,
                Some(&held),
                None,
                "authorization required: send a bearer token",
            );
        };
        match o.validator.validate(token).await {
            Ok(info) => {
                let scopes: std::collections::BTreeSet<Scope> =
                    info.scopes.iter().filter_map(|s| s.parse().ok()).collect();
                caller.token_scopes = Some(Arc::new(scopes));
                req.extensions_mut().insert(caller.clone());
            }
            Err(e) if e.http_status() == 503 => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the token cannot be validated right now",
                    "the authorization server is unreachable; retry later",
                );
            }
            Err(e) => {
                // Counted apart from scope denials (their own threshold).
                spine.note_token_failure(&caller);
                let desc = e.to_string();
                return o.challenge(
                    StatusCode::UNAUTHORIZED,
                    Some(&held),
                    Some((e.oauth_error_code(), desc.as_str())),
                    "invalid token",
                );
            }
        }
    }

    // Sessions belong to the principal that created them.
    let sid = session_header(&req);
    if let Some(sid) = &sid
        && let Some(owner) = state.sessions.owner(sid)
        && owner != pid
    {
        tracing::warn!(principal = %pid, "MCP session id of another principal presented; refused");
        let _ = spine.audit_event(
            &caller,
            None,
            Event {
                kind: audit::kind::ANOMALY.into(),
                decision: Some("deny".into()),
                detail: Some(json!({ "event": "session_of_other_principal" })),
                ..Default::default()
            },
        );
        spine.note_denial(&caller, None);
        return rpc_error(StatusCode::NOT_FOUND, Value::Null, -32001, "Session not found", Value::Null);
    }
    let is_delete = req.method() == Method::DELETE;
    if req.method() != Method::POST {
        let resp = next.run(req).await;
        if is_delete
            && resp.status().is_success()
            && let Some(sid) = &sid
        {
            state.sessions.remove(sid);
        }
        return resp;
    }

    // POST: look at the JSON-RPC message (bounded) before rmcp does.
    let (mut parts, body) = req.into_parts();
    let limit = spine.cfg.limits.max_request_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) if super::serve::is_body_timeout(&e) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                &format!("request body not complete within {} s", spine.cfg.limits.body_read_timeout_secs),
                "send the whole body at once (limits.body_read_timeout_secs)",
            );
        }
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_input",
                &format!("request body over {limit} bytes"),
                "send smaller requests (limits.max_request_body_bytes)",
            );
        }
    };
    let msg: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                PARSE_ERROR,
                &format!("parse error: the body is not JSON ({e})"),
                json!({ "hint": "send one JSON-RPC message as a JSON object" }),
            );
        }
    };
    let method = msg.get("method").and_then(Value::as_str).unwrap_or_default();
    let id = msg.get("id").cloned().unwrap_or(Value::Null);

    if method == "initialize" && sid.is_none() {
        let cap = spine.cfg.limits.max_sessions_per_principal;
        if state.sessions.live_count(&pid, &state.session_manager).await >= cap {
            return rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                id,
                RATE_LIMITED_CODE,
                &format!(
                    "too many open sessions ({cap}) for this principal; close one (DELETE) or wait for idle ones to expire"
                ),
                json!({ "max_sessions_per_principal": cap }),
            );
        }
    }

    if method == "tools/call" {
        // The one admission decision for this call (audited there); the MCP
        // handler takes it from the request instead of deciding again.
        let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or_default();
        let result = spine.admit(&caller, sid.as_deref(), name, msg.pointer("/params/arguments"));
        if let (Err(Refusal::StepUp { scope }), Some(o)) = (&result, &state.oauth) {
            return step_up(o, &caller, *scope, id);
        }
        if let Err(r) = &result
            && let Some(wait) = r.retry_after()
        {
            let mut resp = rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                id,
                RATE_LIMITED_CODE,
                &r.rate_message(),
                json!({ "retry_after_secs": wait.as_secs_f64().ceil() }),
            );
            retry_after(&mut resp, wait);
            return resp;
        }
        if let (Ok(admitted), Some(args)) = (&result, msg.pointer("/params/arguments"))
            && let Some(r) = reject_non_object(spine, &caller, sid.clone(), admitted, args)
        {
            return (StatusCode::OK, Json(json!({ "jsonrpc": "2.0", "id": id, "result": r }))).into_response();
        }
        parts.extensions.insert(Decided { tool: name.to_string(), result });
    }

    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    if sid.is_none()
        && let Some(new_sid) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok())
    {
        state.sessions.insert(new_sid.to_string(), pid);
    }
    resp
}

/// 403 `insufficient_scope`: the identity holds `scope` but the token does
/// not; ask for the scopes already granted plus the missing one.
fn step_up(o: &OAuthGate, caller: &Caller, scope: Scope, id: Value) -> Response {
    let mut want: Vec<String> = caller.token_scopes.iter().flat_map(|t| t.iter().map(|s| s.to_string())).collect();
    want.push(scope.to_string());
    let desc = format!("the token lacks scope {scope}");
    let mut r = o.challenge(
        StatusCode::FORBIDDEN,
        Some(&want.join(" ")),
        Some(("insufficient_scope", desc.as_str())),
        &format!("insufficient_scope: {desc}"),
    );
    *r.body_mut() = Body::from(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32003, "message": format!("insufficient_scope: {desc}"), "data": {"required_scope": scope.as_str()}}})
            .to_string(),
    );
    r
}
