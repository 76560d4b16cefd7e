//! The per-call wrapper around an admitted tool: the write-ahead intent
//! record of writing tools (fail closed), the time limit, panic
//! containment, a bounded retry of read-only tools that failed
//! `unavailable`, and the audit record of the outcome. A tool cannot skip
//! any of it: the transport-facing handler runs every tool through
//! [`run_admitted`].

use std::future::Future;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, CallToolResult, ErrorCode};
use serde_json::{Value, json};

use super::admit::{Admitted, AuditDecision, Outcome, cap_refused_args, decision_event};
use super::contract::{AUDIT_OUTPUT_KEY, ErrorCategory, MAX_AUDIT_OUTPUT_BYTES, ToolError};
use super::spine::Spine;
use crate::audit::{self, Event};
use crate::auth::caller::Caller;

/// Retries of a read-only tool that failed `unavailable`, and the first
/// backoff (doubled each time).
pub const READ_RETRIES: u32 = 2;
pub const READ_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Runs an admitted call through the spine. `input_check` is the result of
/// checking the arguments against the tool's schema ([`super::validate`]):
/// bad input is answered (and audited) without running the tool. `run`
/// starts one attempt of the tool (it may be called again for a retry).
pub async fn run_admitted<F, Fut>(
    spine: &Spine,
    caller: &Caller,
    session: Option<String>,
    admitted: &Admitted,
    args: Option<Value>,
    input_check: Result<(), ToolError>,
    mut run: F,
) -> Result<CallToolResponse, ErrorData>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<CallToolResponse, ErrorData>>,
{
    let t0 = Instant::now();
    let spec = admitted.spec;
    if let Err(e) = input_check {
        return Ok(reject_input(spine, caller, session, admitted, args, &e).into());
    }
    if spec.writes {
        // Write-ahead, fail closed: the tool runs only once its intent
        // record is written (and fsynced when `fsync = always`); a stalled,
        // full or failing log, or no answer within `write_ahead_timeout_ms`,
        // refuses the call and nothing runs.
        let ev = Event { args: args.clone(), ..decision_event(spec.name, AuditDecision::Allow, None) };
        let ev = Spine::stamp(caller, session.clone(), ev);
        if let Err(e) = spine.audit.record_durable(ev, spine.cfg.audit.write_ahead_timeout()).await {
            let err = ToolError::unavailable(
                format!("the audit log cannot record this call first ({e}), so writing tools are refused"),
                "fix the audit log (disk space, permissions, a stalled device; see /readyz); read-only tools keep working",
            );
            // The intent may still reach the log later (a timed-out write
            // completes when the device recovers): say the call did not run.
            let ev = Event {
                detail: Some(json!({ "message": err.message, "write_ahead": "failed" })),
                ..call_record(spec.name, Outcome::Refused.as_str(), Some(ErrorCategory::Unavailable))
            };
            let _ = spine.audit_event(caller, session, ev);
            spine.stats.refused("write_ahead");
            spine.stats.call(spec.name, Outcome::Refused.as_str(), t0.elapsed());
            return Ok(err.to_result().into());
        }
    }

    let limit = Duration::from_secs(spine.cfg.limits.tool_timeout_secs);
    let mut attempt = 0;
    let mut resp = run_once(limit, run()).await;
    while !spec.writes && attempt < READ_RETRIES && is_unavailable(&resp) {
        tokio::time::sleep(READ_RETRY_BACKOFF * 2u32.pow(attempt)).await;
        attempt += 1;
        resp = run_once(limit, run()).await;
    }

    let (outcome, category) = outcome_of(&resp);
    spine.stats.call(spec.name, &outcome, t0.elapsed());
    let mut detail = serde_json::Map::new();
    if attempt > 0 {
        detail.insert("retries".into(), json!(attempt));
    }
    if let Some(result) = audited_output(&resp) {
        detail.insert("result".into(), result);
    }
    if let Some(message) = error_message(&resp) {
        detail.insert("message".into(), json!(message));
    }
    let ev = Event {
        args,
        duration_ms: Some(u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX)),
        detail: (!detail.is_empty()).then_some(Value::Object(detail)),
        ..call_record(spec.name, &outcome, category)
    };
    let _ = spine.audit_event(caller, session, ev);
    resp
}

/// The value a successful result offers the audit log under
/// [`AUDIT_OUTPUT_KEY`], capped at [`MAX_AUDIT_OUTPUT_BYTES`].
fn audited_output(resp: &Result<CallToolResponse, ErrorData>) -> Option<Value> {
    let Ok(CallToolResponse::Complete(r)) = resp else { return None };
    if r.is_error == Some(true) {
        return None;
    }
    let v = r.structured_content.as_ref()?.get(AUDIT_OUTPUT_KEY)?;
    let bytes = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    Some(if bytes <= MAX_AUDIT_OUTPUT_BYTES { v.clone() } else { json!({ "truncated": true, "bytes": bytes }) })
}

/// A failed call's error message, for the audit record's `detail.message`
/// (why a call failed — e.g. the target-policy rule that refused a probe —
/// is part of what the log must say; redacted like every detail).
fn error_message(resp: &Result<CallToolResponse, ErrorData>) -> Option<String> {
    let Ok(CallToolResponse::Complete(r)) = resp else { return None };
    ToolError::from_result(r).map(|e| e.message)
}

/// The `tool_call` audit record of an admitted call that ended with
/// `outcome` (and `category` when it failed).
pub fn call_record(tool: &str, outcome: &str, category: Option<ErrorCategory>) -> Event {
    Event {
        kind: audit::kind::TOOL_CALL.into(),
        tool: Some(tool.to_string()),
        decision: Some(AuditDecision::Allow.as_str().into()),
        outcome: Some(outcome.to_string()),
        error_category: category.map(|c| c.as_str().to_string()),
        ..Default::default()
    }
}

/// The answer to an admitted call whose `arguments` is present but not an
/// object: it never reaches rmcp (which would answer a bare protocol error
/// that nothing audits), on HTTP nor on stdio. None when `args` is an
/// object.
pub fn reject_non_object(
    spine: &Spine,
    caller: &Caller,
    session: Option<String>,
    admitted: &Admitted,
    args: &Value,
) -> Option<CallToolResult> {
    let err = super::validate::check_args(&serde_json::Map::new(), Some(args)).err().filter(|_| !args.is_object())?;
    Some(reject_input(spine, caller, session, admitted, Some(args.clone()), &err))
}

/// Answers an admitted call whose arguments are malformed, without running
/// the tool: a tool result with `invalid_input`, audited like a call that
/// failed (the arguments are capped as for a refused call: they were not
/// accepted).
pub fn reject_input(
    spine: &Spine,
    caller: &Caller,
    session: Option<String>,
    admitted: &Admitted,
    args: Option<Value>,
    err: &ToolError,
) -> CallToolResult {
    let ev = Event {
        args: cap_refused_args(args.as_ref()),
        detail: Some(json!({ "message": err.message })),
        ..call_record(admitted.spec.name, Outcome::Error.as_str(), Some(ErrorCategory::InvalidInput))
    };
    let _ = spine.audit_event(caller, session, ev);
    spine.stats.call(admitted.spec.name, Outcome::Error.as_str(), Duration::ZERO);
    err.to_result()
}

/// One attempt with the time limit, containing panics. A parameter error
/// the router still raises (a nested field serde rejects) becomes
/// `invalid_input`.
async fn run_once<Fut>(limit: Duration, fut: Fut) -> Result<CallToolResponse, ErrorData>
where
    Fut: Future<Output = Result<CallToolResponse, ErrorData>>,
{
    let fut = std::panic::AssertUnwindSafe(fut).catch_unwind();
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Ok(ToolError::new(
            ErrorCategory::Timeout,
            format!("the tool did not finish within {} s", limit.as_secs()),
            "narrow the request or retry later",
        )
        .to_result()
        .into()),
        Ok(Err(_panic)) => Ok(ToolError::internal("the tool failed unexpectedly").to_result().into()),
        Ok(Ok(Err(e))) if e.code == ErrorCode::INVALID_PARAMS => Ok(ToolError::invalid_input(
            e.message.replace("failed to deserialize parameters: ", "invalid arguments: "),
            "check the argument types against the tool's input schema (tools/list)",
        )
        .to_result()
        .into()),
        Ok(Ok(Ok(CallToolResponse::Complete(r)))) if is_param_error(&r) => {
            let text = r.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default();
            Ok(ToolError::invalid_input(
                text.replace("failed to deserialize parameters: ", "invalid arguments: "),
                "check the argument values against the tool's input schema (tools/list)",
            )
            .to_result()
            .into())
        }
        Ok(Ok(r)) => r,
    }
}

/// rmcp answers some parameter errors (e.g. an unknown enum value behind a
/// schema `$ref`, which [`super::validate`] does not follow) as an error
/// result with plain text instead of `INVALID_PARAMS`: those are the
/// caller's `invalid_input` too, not a tool failure.
fn is_param_error(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
        && r.structured_content.is_none()
        && r.content
            .first()
            .and_then(|c| c.as_text())
            .is_some_and(|t| t.text.starts_with("failed to deserialize parameters"))
}

fn outcome_of(resp: &Result<CallToolResponse, ErrorData>) -> (String, Option<ErrorCategory>) {
    match resp {
        Ok(CallToolResponse::Complete(r)) => match ToolError::from_result(r) {
            None => (Outcome::Ok.as_str().into(), None),
            Some(e) => (Outcome::Error.as_str().into(), Some(e.category)),
        },
        Ok(_) => (Outcome::InputRequired.as_str().into(), None),
        Err(e) => (format!("protocol_error {}", e.code.0), Some(ErrorCategory::InvalidInput)),
    }
}

fn is_unavailable(resp: &Result<CallToolResponse, ErrorData>) -> bool {
    matches!(resp, Ok(CallToolResponse::Complete(r)) if ToolError::from_result(r).is_some_and(|e| e.category == ErrorCategory::Unavailable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: Value) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::structured(v).into())
    }

    #[test]
    fn audit_output_is_copied_from_successes_only_and_capped() {
        let small = json!({"old_sha256": null, "new_sha256": "ab"});
        assert_eq!(audited_output(&ok(json!({"summary": "s", "audit": small.clone()}))), Some(small));
        assert_eq!(audited_output(&ok(json!({"summary": "s"}))), None);
        let err = ToolError::invalid_input("no", "").to_result();
        assert_eq!(audited_output(&Ok(err.clone().into())), None);
        assert_eq!(error_message(&Ok(err.into())).as_deref(), Some("no"));
        assert_eq!(error_message(&ok(json!({"summary": "s"}))), None);
        // At the cap as is; one byte over: a stub.
        let at = |n: usize| json!({"audit": "x".repeat(n - 2)});
        assert_eq!(
            audited_output(&ok(at(MAX_AUDIT_OUTPUT_BYTES))),
            Some(json!("x".repeat(MAX_AUDIT_OUTPUT_BYTES - 2)))
        );
        assert_eq!(
            audited_output(&ok(at(MAX_AUDIT_OUTPUT_BYTES + 1))),
            Some(json!({"truncated": true, "bytes": MAX_AUDIT_OUTPUT_BYTES + 1}))
        );
    }
}
