//! The MCP conformance suite's fixture server: `tailops serve --dev-listen`
//! plus the tools, resources and prompts the suite's server scenarios call
//! (`test_simple_text`, `test://static-text`, `test_simple_prompt` …),
//! modelled on the suite's own reference "everything" server. Everything
//! here goes through tailops's real spine: identity, authorization from
//! [`SPECS`], rate limit and audit, like any tool.
//!
//! Test-only: `cargo test` builds examples (tests/e2e/clients.rs runs the
//! suite against this one); `cargo build --release` / `cargo install` of the
//! `tailops` binary never contain it.
//!
//!   cargo run --example conformance_fixtures -- serve --dev-listen 127.0.0.1:8080 --config F --state-dir D

// Logging and sampling are deprecated by SEP-2577 but still exercised by the suite.
#![allow(deprecated)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use clap::{Parser, Subcommand};
use futures::future::BoxFuture;
use rmcp::ErrorData;
use rmcp::handler::server::router::tool::{ToolRoute, ToolRouter};
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolResponse, CallToolResult, ClientCapabilities, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, InputRequiredResult, LoggingMessageNotificationParam,
    ProgressNotificationParam, Prompt, ReadResourceResponse, ReadResourceResult, Resource, ResourceTemplate,
    ServerCapabilities, ServerRequest, Tool,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use tailops::auth::scopes::Scope;
use tailops::config::{Config, Overrides};
use tailops::mcp::{ErrorCategory, ToolError, ToolSpec};
use tailops::server::Mode;
use tailops::telemetry::{self, LogFormat};
use tailops::tools::TailopsServer;
use tailops::tools::extension::Extension;

/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==";
/// Eight samples of 8-bit mono WAV silence.
const WAV: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

/// Every fixture tool: read-only, `system:read` (any admin or viewer).
const NAMES: &[&str] = &[
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_custom_headers",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
];

type Reply<'a> = BoxFuture<'a, Result<CallToolResponse, ErrorData>>;
type Ctx<'a> = ToolCallContext<'a, TailopsServer>;

fn de<T: DeserializeOwned>(v: Value) -> Result<T, ErrorData> {
    serde_json::from_value(v).map_err(|e| ErrorData::internal_error(format!("fixture: {e}"), None))
}

fn content(v: Value) -> Result<CallToolResponse, ErrorData> {
    Ok(de::<CallToolResult>(json!({ "content": v, "resultType": "complete" }))?.into())
}

fn text(t: impl Into<String>) -> Result<CallToolResponse, ErrorData> {
    content(json!([{ "type": "text", "text": t.into() }]))
}

fn input_required(requests: Value, state: Option<String>) -> Result<CallToolResponse, ErrorData> {
    let mut v = json!({ "resultType": "input_required", "inputRequests": requests });
    if let Some(s) = state {
        v["requestState"] = json!(s);
    }
    Ok(CallToolResponse::InputRequired(de::<InputRequiredResult>(v)?))
}

fn ready<'a>(r: Result<CallToolResponse, ErrorData>) -> Reply<'a> {
    Box::pin(std::future::ready(r))
}

fn elicit(message: &str, field: &str, ty: &str) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": { "type": "object", "properties": { field: { "type": ty } }, "required": [field] },
        },
    })
}

fn sample(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": max_tokens,
        },
    })
}

/// `content.<key>` of an elicitation response.
fn answer(r: Option<&Value>, key: &str) -> String {
    r.and_then(|r| r.get("content")).and_then(|c| c.get(key)).and_then(Value::as_str).unwrap_or("unknown").to_string()
}

fn nonce() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
    hex::encode(b)
}

/// The key `requestState` is signed with (per process).
fn state_key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut b = [0u8; 32];
        let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
        hmac::Key::new(hmac::HMAC_SHA256, &b)
    })
}

/// `requestState`: the JSON state, base64, a dot and its HMAC-SHA256.
fn sign(state: Value) -> String {
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state.to_string());
    let tag = hmac::sign(state_key(), body.as_bytes());
    format!("{body}.{}", hex::encode(tag.as_ref()))
}

/// The state a [`sign`]ed `requestState` carries; None when tampered with.
fn verify(s: &str) -> Option<Value> {
    let (body, tag) = s.rsplit_once('.')?;
    hmac::verify(state_key(), body.as_bytes(), &hex::decode(tag).ok()?).ok()?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).ok()?;
    serde_json::from_slice(&raw).ok()
}

fn tool(name: &str, description: &str, schema: Value) -> Tool {
    serde_json::from_value(json!({ "name": name, "description": description, "inputSchema": schema }))
        .unwrap_or_else(|e| panic!("fixture tool {name}: {e}"))
}

fn no_args() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn route(t: Tool, f: for<'a> fn(Ctx<'a>) -> Reply<'a>) -> ToolRoute<TailopsServer> {
    ToolRoute::new_dyn(t, f)
}

fn simple_text(_: Ctx<'_>) -> Reply<'_> {
    ready(text("This is a simple text response for testing."))
}

fn image(_: Ctx<'_>) -> Reply<'_> {
    ready(content(json!([{ "type": "image", "data": PNG, "mimeType": "image/png" }])))
}

fn audio(_: Ctx<'_>) -> Reply<'_> {
    ready(content(json!([{ "type": "audio", "data": WAV, "mimeType": "audio/wav" }])))
}

fn embedded(_: Ctx<'_>) -> Reply<'_> {
    ready(content(json!([{ "type": "resource", "resource": {
        "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."
    } }])))
}

fn mixed(_: Ctx<'_>) -> Reply<'_> {
    ready(content(json!([
        { "type": "text", "text": "Multiple content types test:" },
        { "type": "image", "data": PNG, "mimeType": "image/png" },
        { "type": "resource", "resource": {
            "uri": "test://mixed-content-resource", "mimeType": "application/json",
            "text": json!({ "test": "data", "value": 123 }).to_string()
        } },
    ])))
}

fn error(_: Ctx<'_>) -> Reply<'_> {
    let e = ToolError::new(
        ErrorCategory::Internal,
        "This tool intentionally returns an error for testing",
        "nothing to fix: the conformance suite checks isError",
    );
    ready(Ok(e.to_result().into()))
}

/// Three log messages 50 ms apart (the suite checks they arrive during the call).
fn logging(c: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let peer = &c.request_context.peer;
        for (i, msg) in
            ["Tool execution started", "Tool processing data", "Tool execution completed"].iter().enumerate()
        {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let p: LoggingMessageNotificationParam =
                de(json!({ "level": "info", "logger": "conformance-fixtures", "data": msg }))?;
            let _ = peer.notify_logging_message(p).await;
        }
        text("Tool with logging executed successfully")
    })
}

fn progress(c: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let token = c.request_context.meta.get_progress_token();
        if let Some(token) = &token {
            for (i, step) in [0u32, 50, 100].into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let p = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(100.0)
                    .with_message(format!("Completed step {step} of 100"));
                let _ = c.request_context.peer.notify_progress(p).await;
            }
        }
        text(token.map(|t| serde_json::to_string(&t).unwrap_or_default()).unwrap_or_else(|| "no token".into()))
    })
}

fn sampling(c: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let prompt = c.arguments.as_ref().and_then(|a| a.get("prompt")).and_then(Value::as_str).unwrap_or("");
        let params = de(sample(prompt, 100)["params"].take())?;
        match c.request_context.peer.create_message(params).await {
            Ok(r) => {
                let v = serde_json::to_value(&r).unwrap_or_default();
                text(format!("LLM response: {}", v["content"]["text"].as_str().unwrap_or("No response")))
            }
            Err(e) => text(format!("Sampling not supported or error: {e}")),
        }
    })
}

async fn elicitation_reply(c: &Ctx<'_>, params: Value, label: &str) -> Result<CallToolResponse, ErrorData> {
    // rmcp's `elicitation` feature (typed `create_elicitation`) is off in
    // tailops: send the request as the wire shape.
    let request: ServerRequest = de(json!({ "method": "elicitation/create", "params": params }))?;
    match c.request_context.peer.send_request(request).await {
        Ok(r) => {
            let v = serde_json::to_value(&r).unwrap_or_default();
            text(format!("{label}: action={}, content={}", v["action"].as_str().unwrap_or(""), v["content"]))
        }
        Err(e) => text(format!("Elicitation not supported or error: {e}")),
    }
}

fn elicitation(c: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let message = c.arguments.as_ref().and_then(|a| a.get("message")).and_then(Value::as_str).unwrap_or("");
        let params = json!({
            "mode": "form",
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": { "response": { "type": "string", "description": "User's response" } },
                "required": ["response"],
            },
        });
        elicitation_reply(&c, params, "User response").await
    })
}

fn elicitation_defaults(c: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let params = json!({
            "mode": "form",
            "message": "Please review and update the form fields with defaults",
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "name": { "type": "string", "description": "User name", "default": "John Doe" },
                    "age": { "type": "integer", "description": "User age", "default": 30 },
                    "score": { "type": "number", "description": "User score", "default": 95.5 },
                    "status": { "type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active" },
                    "verified": { "type": "boolean", "description": "Verification status", "default": true },
                },
                "required": [],
            },
        });
        elicitation_reply(&c, params, "Elicitation completed").await
    })
}

fn elicitation_enums(c: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        let params = json!({
            "mode": "form",
            "message": "Please select options from the enum fields",
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "untitledSingle": { "type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"] },
                    "titledSingle": { "type": "string", "description": "Select one option with titles", "oneOf": [
                        { "const": "value1", "title": "First Option" },
                        { "const": "value2", "title": "Second Option" },
                        { "const": "value3", "title": "Third Option" },
                    ] },
                    "legacyEnum": { "type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"] },
                    "untitledMulti": { "type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                        "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
                    "titledMulti": { "type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                        "items": { "anyOf": [
                            { "const": "value1", "title": "First Choice" },
                            { "const": "value2", "title": "Second Choice" },
                            { "const": "value3", "title": "Third Choice" },
                        ] } },
                },
                "required": [],
            },
        });
        elicitation_reply(&c, params, "Elicitation completed").await
    })
}

fn json_schema_tool(c: Ctx<'_>) -> Reply<'_> {
    let args = c.arguments.clone().map(Value::Object).unwrap_or_else(|| json!({}));
    ready(text(format!("JSON Schema 2020-12 tool called with: {args}")))
}

fn custom_headers(c: Ctx<'_>) -> Reply<'_> {
    let region = c.arguments.as_ref().and_then(|a| a.get("region")).cloned().unwrap_or(Value::Null);
    ready(text(format!("region: {region}")))
}

/// Needs the client's `sampling` capability: without it, -32021 (HTTP 400).
fn missing_capability(c: Ctx<'_>) -> Reply<'_> {
    let has = c.request_context.client_capabilities().is_some_and(|caps| caps.sampling.is_some());
    if !has {
        let mut need = ClientCapabilities::default();
        need.sampling = Some(Default::default());
        return ready(Err(ErrorData::missing_required_client_capability(need)));
    }
    ready(text("Success"))
}

/// A progress notification on the response stream, then the result (no
/// server-to-client request on it).
fn streaming(c: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        if let Some(token) = c.request_context.meta.get_progress_token() {
            let _ = c
                .request_context
                .peer
                .notify_progress(ProgressNotificationParam::new(token, 50.0).with_total(100.0))
                .await;
        }
        text("Streaming complete")
    })
}

/// Logs only when the request asked for a log level (2026-07-28 `_meta`).
fn logging_tool(c: Ctx<'_>) -> Reply<'_> {
    Box::pin(async move {
        if c.request_context.meta.log_level().is_some() {
            let p: LoggingMessageNotificationParam =
                de(json!({ "level": "info", "data": "Diagnostic trace logging activated" }))?;
            let _ = c.request_context.peer.notify_logging_message(p).await;
        }
        text("Logging evaluated")
    })
}

/// The client's answers; one that is not an object (every elicitation,
/// sampling and roots result is) counts as missing and is asked again.
fn responses(c: &Ctx<'_>) -> std::collections::BTreeMap<String, Value> {
    let mut r = c.input_responses.clone().unwrap_or_default();
    r.retain(|_, v| v.is_object());
    r
}

fn irr_elicitation(c: Ctx<'_>) -> Reply<'_> {
    let r = responses(&c);
    ready(match r.get("user_name") {
        Some(_) => text(format!("Hello, {}!", answer(r.get("user_name"), "name"))),
        None => input_required(json!({ "user_name": elicit("What is your name?", "name", "string") }), None),
    })
}

fn irr_sampling(c: Ctx<'_>) -> Reply<'_> {
    let r = responses(&c);
    ready(match r.get("sample_request") {
        Some(s) => text(format!("Sampling result: {}", s["content"]["text"].as_str().unwrap_or("no response"))),
        None => input_required(json!({ "sample_request": sample("What is the capital of France?", 100) }), None),
    })
}

fn irr_roots(c: Ctx<'_>) -> Reply<'_> {
    let r = responses(&c);
    ready(match r.get("roots_request") {
        Some(s) => text(format!("Found {} root(s)", s["roots"].as_array().map_or(0, Vec::len))),
        None => input_required(json!({ "roots_request": { "method": "roots/list", "params": {} } }), None),
    })
}

fn irr_request_state(c: Ctx<'_>) -> Reply<'_> {
    let r = responses(&c);
    let state = c.request_state.as_deref().and_then(verify);
    let ok = r.get("confirm").is_some_and(|v| v["content"]["ok"] == json!(true));
    ready(if state.is_some_and(|s| s["kind"] == "request-state") && ok {
        text("state-ok: requestState validated")
    } else {
        input_required(
            json!({ "confirm": elicit("Please confirm", "ok", "boolean") }),
            Some(sign(json!({ "kind": "request-state", "nonce": nonce() }))),
        )
    })
}

fn irr_multiple(c: Ctx<'_>) -> Reply<'_> {
    let r = responses(&c);
    let state = c.request_state.as_deref().and_then(verify);
    let all = ["user_name", "greeting", "client_roots"].iter().all(|k| r.contains_key(*k));
    ready(if all && state.is_some_and(|s| s["kind"] == "multiple-inputs") {
        let greeting = r["greeting"]["content"]["text"].as_str().unwrap_or("Hello there!");
        let roots = r["client_roots"]["roots"].as_array().map_or(0, Vec::len);
        text(format!("Name: {}; Greeting: {greeting}; Roots: {roots}", answer(r.get("user_name"), "name")))
    } else {
        input_required(
            json!({
                "user_name": elicit("What is your name?", "name", "string"),
                "greeting": sample("Generate a greeting", 50),
                "client_roots": { "method": "roots/list", "params": {} },
            }),
            Some(sign(json!({ "kind": "multiple-inputs", "nonce": nonce() }))),
        )
    })
}

fn irr_multi_round(c: Ctx<'_>) -> Reply<'_> {
    let r = responses(&c);
    let state = c.request_state.as_deref().and_then(verify).unwrap_or(Value::Null);
    let round1 = || {
        input_required(
            json!({ "step1": elicit("Step 1: What is your name?", "name", "string") }),
            Some(sign(json!({ "round": 1, "nonce": nonce() }))),
        )
    };
    ready(if state["round"] == 1 && r.contains_key("step1") {
        let name = answer(r.get("step1"), "name");
        input_required(
            json!({ "step2": elicit("Step 2: What is your favorite color?", "color", "string") }),
            Some(sign(json!({ "round": 2, "name": name, "nonce": nonce() }))),
        )
    } else if state["round"] == 2 && r.contains_key("step2") {
        let name = state["name"].as_str().unwrap_or("friend");
        text(format!("Multi-round complete for {name} who likes {}", answer(r.get("step2"), "color")))
    } else {
        round1()
    })
}

fn irr_tampered(c: Ctx<'_>) -> Reply<'_> {
    let r = responses(&c);
    ready(match c.request_state.as_deref() {
        Some(s) => match verify(s) {
            // Not -32602: the spine answers INVALID_PARAMS from a tool as an
            // `invalid_input` tool result, and the suite wants a JSON-RPC error.
            None => Err(ErrorData::invalid_request("requestState integrity check failed", None)),
            Some(v) if v["kind"] == "tamper-test" && r.contains_key("confirm") => text("integrity-ok: state verified"),
            Some(_) => tamper_round1(),
        },
        None => tamper_round1(),
    })
}

fn tamper_round1() -> Result<CallToolResponse, ErrorData> {
    input_required(
        json!({ "confirm": elicit("Please confirm", "ok", "boolean") }),
        Some(sign(json!({ "kind": "tamper-test", "nonce": nonce() }))),
    )
}

/// Asks only for what the client declared it can answer.
fn irr_capabilities(c: Ctx<'_>) -> Reply<'_> {
    let r = responses(&c);
    let caps = c.request_context.client_capabilities().unwrap_or_default();
    let mut requests = serde_json::Map::new();
    if caps.elicitation.is_some() {
        requests.insert("elicit_input".into(), elicit("Elicitation input", "value", "string"));
    }
    if caps.sampling.is_some() {
        requests.insert("sample_input".into(), sample("Sample request", 50));
    }
    ready(if !r.is_empty() {
        text(format!("capabilities-ok: received {}", r.keys().cloned().collect::<Vec<_>>().join(",")))
    } else if requests.is_empty() {
        text("No supported capabilities declared")
    } else {
        input_required(Value::Object(requests), Some(sign(json!({ "kind": "capabilities-test", "nonce": nonce() }))))
    })
}

fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } },
            },
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" },
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false,
    })
}

struct Fixtures;

impl Extension for Fixtures {
    fn specs(&self) -> Vec<ToolSpec> {
        NAMES
            .iter()
            .map(|name| ToolSpec { name, domain: "conformance", scope: Some(Scope::SystemRead), writes: false })
            .collect()
    }

    fn router(&self) -> ToolRouter<TailopsServer> {
        let string = |d: &str| json!({ "type": "string", "description": d });
        let routes = [
            route(tool("test_simple_text", "Tests simple text content response", no_args()), simple_text),
            route(tool("test_image_content", "Tests image content response", no_args()), image),
            route(tool("test_audio_content", "Tests audio content response", no_args()), audio),
            route(tool("test_embedded_resource", "Tests embedded resource content response", no_args()), embedded),
            route(tool("test_multiple_content_types", "Tests response with multiple content types", no_args()), mixed),
            route(
                tool("test_tool_with_logging", "Tests tool that emits log messages during execution", no_args()),
                logging,
            ),
            route(
                tool("test_tool_with_progress", "Tests tool that reports progress notifications", no_args()),
                progress,
            ),
            route(tool("test_error_handling", "Tests error response handling", no_args()), error),
            route(
                tool(
                    "test_sampling",
                    "Tests server-initiated sampling",
                    json!({ "type": "object", "properties": { "prompt": string("The prompt to send to the LLM") }, "required": ["prompt"] }),
                ),
                sampling,
            ),
            route(
                tool(
                    "test_elicitation",
                    "Tests server-initiated elicitation",
                    json!({ "type": "object", "properties": { "message": string("The message to show the user") }, "required": ["message"] }),
                ),
                elicitation,
            ),
            route(
                tool(
                    "test_elicitation_sep1034_defaults",
                    "Tests elicitation with default values per SEP-1034",
                    no_args(),
                ),
                elicitation_defaults,
            ),
            route(
                tool("test_elicitation_sep1330_enums", "Tests elicitation with enum schemas per SEP-1330", no_args()),
                elicitation_enums,
            ),
            route(
                tool(
                    "json_schema_2020_12_tool",
                    "Tool with JSON Schema 2020-12 features (SEP-1613, SEP-2106)",
                    json_schema_2020_12(),
                ),
                json_schema_tool,
            ),
            route(
                tool(
                    "test_custom_headers",
                    "Tests Mcp-Param-* custom headers (SEP-2243)",
                    json!({ "type": "object", "properties": { "region": { "type": "string", "x-mcp-header": "Region" } }, "required": ["region"] }),
                ),
                custom_headers,
            ),
            route(tool("test_missing_capability", "Test tool requiring sampling", no_args()), missing_capability),
            route(
                tool("test_streaming_elicitation", "Diagnostic tool validating response progress streams", no_args()),
                streaming,
            ),
            route(tool("test_logging_tool", "Diagnostic logging validator tool", no_args()), logging_tool),
            route(
                tool("test_input_required_result_elicitation", "MRTR: elicitation input request", no_args()),
                irr_elicitation,
            ),
            route(tool("test_input_required_result_sampling", "MRTR: sampling input request", no_args()), irr_sampling),
            route(
                tool("test_input_required_result_list_roots", "MRTR: roots/list input request", no_args()),
                irr_roots,
            ),
            route(
                tool("test_input_required_result_request_state", "MRTR: requestState round trip", no_args()),
                irr_request_state,
            ),
            route(
                tool("test_input_required_result_multiple_inputs", "MRTR: several input requests", no_args()),
                irr_multiple,
            ),
            route(
                tool("test_input_required_result_multi_round", "MRTR: multi-round workflow", no_args()),
                irr_multi_round,
            ),
            route(
                tool("test_input_required_result_tampered_state", "MRTR: HMAC-signed requestState", no_args()),
                irr_tampered,
            ),
            route(
                tool("test_input_required_result_capabilities", "MRTR: respects client capabilities", no_args()),
                irr_capabilities,
            ),
        ];
        let mut router = ToolRouter::new();
        for r in routes {
            router.add_route(r);
        }
        router
    }

    fn authorized_as(&self) -> &'static str {
        "test_simple_text"
    }

    fn capabilities(&self, caps: &mut ServerCapabilities) {
        let mut v = serde_json::to_value(&*caps).unwrap_or_default();
        v["prompts"] = json!({});
        v["completions"] = json!({});
        v["logging"] = json!({});
        if let Ok(c) = serde_json::from_value(v) {
            *caps = c;
        }
    }

    fn resources(&self) -> Vec<Resource> {
        let r = |uri: &str, name: &str, title: &str, mime: &str| -> Resource {
            serde_json::from_value(
                json!({ "uri": uri, "name": name, "title": title, "description": title, "mimeType": mime }),
            )
            .unwrap_or_else(|e| panic!("fixture resource {uri}: {e}"))
        };
        vec![
            r("test://static-text", "static-text", "Static Text Resource", "text/plain"),
            r("test://static-binary", "static-binary", "Static Binary Resource", "image/png"),
            r("test://watched-resource", "watched-resource", "Watched Resource", "text/plain"),
        ]
    }

    fn resource_templates(&self) -> Vec<ResourceTemplate> {
        vec![
            serde_json::from_value(json!({
                "uriTemplate": "test://template/{id}/data",
                "name": "template",
                "title": "Resource Template",
                "description": "A resource template with parameter substitution",
                "mimeType": "application/json",
            }))
            .unwrap_or_else(|e| panic!("fixture template: {e}")),
        ]
    }

    fn owns_resource(&self, uri: &str) -> bool {
        uri.starts_with("test://")
    }

    fn read_resource(&self, uri: &str) -> Result<ReadResourceResponse, ErrorData> {
        let contents = match uri {
            "test://static-text" => {
                json!({ "uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource." })
            }
            "test://static-binary" => json!({ "uri": uri, "mimeType": "image/png", "blob": PNG }),
            "test://watched-resource" => {
                json!({ "uri": uri, "mimeType": "text/plain", "text": "Watched resource content" })
            }
            _ => match uri.strip_prefix("test://template/").and_then(|r| r.strip_suffix("/data")) {
                Some(id) if !id.is_empty() && !id.contains('/') => json!({
                    "uri": uri,
                    "mimeType": "application/json",
                    "text": json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") }).to_string(),
                }),
                _ => {
                    return Err(ErrorData::resource_not_found(
                        format!("no resource {uri}"),
                        Some(json!({ "uri": uri })),
                    ));
                }
            },
        };
        Ok(de::<ReadResourceResult>(json!({ "contents": [contents], "resultType": "complete" }))?.into())
    }

    fn prompts(&self) -> Vec<Prompt> {
        let arg = |name: &str, d: &str| json!({ "name": name, "description": d, "required": true });
        [
            json!({ "name": "test_simple_prompt", "title": "Simple Test Prompt", "description": "A simple prompt without arguments" }),
            json!({ "name": "test_prompt_with_arguments", "title": "Prompt With Arguments", "description": "A prompt with required arguments",
                "arguments": [arg("arg1", "First test argument"), arg("arg2", "Second test argument")] }),
            json!({ "name": "test_prompt_with_embedded_resource", "title": "Prompt With Embedded Resource",
                "description": "A prompt that includes an embedded resource",
                "arguments": [arg("resourceUri", "URI of the resource to embed")] }),
            json!({ "name": "test_prompt_with_image", "title": "Prompt With Image", "description": "A prompt that includes image content" }),
            json!({ "name": "test_input_required_result_prompt", "description": "MRTR: prompt that requires elicitation input" }),
        ]
        .into_iter()
        .map(|p| serde_json::from_value(p).unwrap_or_else(|e| panic!("fixture prompt: {e}")))
        .collect()
    }

    fn get_prompt(&self, request: &GetPromptRequestParams) -> Result<GetPromptResponse, ErrorData> {
        let arg = |k: &str| request.arguments.as_ref().and_then(|a| a.get(k)).and_then(Value::as_str).unwrap_or("");
        let user = |content: Value| json!({ "role": "user", "content": content });
        let text = |t: String| json!({ "type": "text", "text": t });
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![user(text("This is a simple prompt for testing.".into()))],
            "test_prompt_with_arguments" => {
                vec![user(text(format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2"))))]
            }
            "test_prompt_with_embedded_resource" => vec![
                user(json!({ "type": "resource", "resource": {
                    "uri": arg("resourceUri"), "mimeType": "text/plain", "text": "Embedded resource content for testing."
                } })),
                user(text("Please process the embedded resource above.".into())),
            ],
            "test_prompt_with_image" => vec![
                user(json!({ "type": "image", "data": PNG, "mimeType": "image/png" })),
                user(text("Please analyze the image above.".into())),
            ],
            "test_input_required_result_prompt" => {
                let responses = request.input_responses.clone().unwrap_or_default();
                if !responses.contains_key("user_context") {
                    let v = json!({ "resultType": "input_required", "inputRequests": {
                        "user_context": elicit("What context should the prompt use?", "context", "string")
                    } });
                    return Ok(GetPromptResponse::InputRequired(de(v)?));
                }
                vec![user(text(format!("Prompt with context: {}", answer(responses.get("user_context"), "context"))))]
            }
            other => return Err(ErrorData::invalid_params(format!("no prompt {other}"), None)),
        };
        Ok(de::<GetPromptResult>(json!({ "messages": messages, "resultType": "complete" }))?.into())
    }

    fn complete(&self, _request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
        de(json!({ "completion": { "values": [], "total": 0, "hasMore": false }, "resultType": "complete" }))
    }
}

#[derive(Parser)]
#[command(name = "conformance_fixtures", about = "tailops with the MCP conformance suite's fixtures (test only)")]
struct Cli {
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// `tailops serve --dev-listen` with the fixtures.
    Serve {
        /// Loopback address to serve on.
        #[arg(long)]
        dev_listen: SocketAddr,
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, "info");
    let Command::Serve { dev_listen, config, overrides } = cli.command;
    let cfg = Config::load(config.as_deref(), overrides)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let shutdown = tailops::shutdown::on_signals()?;
        let fixtures: Arc<dyn Extension> = Arc::new(Fixtures);
        tailops::server::run_extended(cfg, Mode::DevListen(dev_listen), shutdown, None, Some(fixtures)).await
    })
}
