//! Admission: the ONE decision whether a `tools/call` (or `resources/read`)
//! may run — decided once per call, by [`Spine::admit`], whichever
//! transport carried it. HTTP renders a refusal as 403/429 before rmcp
//! sees the request; stdio renders it as a JSON-RPC error or a tool error.
//!
//! Order, and why:
//! 1. the repeated-denial block (a blocked caller is charged nothing more);
//! 2. the call is charged to the caller's `calls` bucket — every call, also
//!    unknown tools and malformed ones, so a flood of refused calls is as
//!    rate limited as a flood of good ones (it would otherwise fill and
//!    rotate the audit log for free);
//! 3. the tool must exist (and not be hidden by `read_only`); an unknown
//!    name counts as an authorization failure;
//! 4. authorization from the tool's declared scope (deny, or step-up when
//!    only the OAuth token lacks the scope);
//! 5. writing tools are charged to the stricter `writes` bucket.
//!
//! Every refusal is audited here, with the arguments capped at
//! [`REFUSED_ARGS_MAX_BYTES`]; only admitted calls keep their full arguments.

use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, ErrorCode};
use serde_json::{Value, json};

use super::contract::RATE_LIMITED_CODE;
use super::contract::{ErrorCategory, ToolError, ToolSpec};
use super::spine::Spine;
use crate::audit::{self, Event};
use crate::auth::caller::Caller;
use crate::auth::policy::Decision;
use crate::auth::ratelimit::Refusal as RateRefusal;
use crate::auth::scopes::Scope;

/// Arguments of a refused call are kept in the audit log up to this many
/// bytes of JSON (then replaced by a truncation marker): refused calls must
/// not be a cheap way to write large records.
pub const REFUSED_ARGS_MAX_BYTES: usize = 1024;

/// The audit words for a decision (stable: they are in the log format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditDecision {
    Allow,
    Deny,
    StepUp,
    RateLimited,
}

impl AuditDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allow => "allow",
            AuditDecision::Deny => "deny",
            AuditDecision::StepUp => "step_up",
            AuditDecision::RateLimited => "rate_limited",
        }
    }
}

/// The audit words for how a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Refused,
    UnknownTool,
    InputRequired,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Refused => "refused",
            Outcome::UnknownTool => "unknown_tool",
            Outcome::InputRequired => "input_required",
        }
    }
}

/// A call that may run.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub spec: ToolSpec,
}

/// Why a call may not run. Already audited (and counted as a denial where
/// that applies) when [`Spine::admit`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// No such tool (or hidden by `read_only`).
    UnknownTool { name: String },
    /// The caller lacks the scope or the tool is denied by name.
    Denied { reason: String },
    /// The identity holds the scope but the OAuth token lacks it.
    StepUp { scope: Scope },
    /// Over the rate limit.
    RateLimited { retry_after: Duration },
    /// Blocked after repeated authorization failures.
    Blocked { retry_after: Duration },
}

impl Refusal {
    /// The tool-level error for refusals answered as a tool result.
    pub fn to_tool_error(&self) -> ToolError {
        match self {
            Refusal::UnknownTool { name } => {
                ToolError::not_found(format!("unknown tool: {name}"), "call tools/list for the tools you may call")
            }
            Refusal::Denied { reason } => ToolError::permission_denied(
                reason.clone(),
                "ask a tailnet admin for a grant (call whoami to see your scopes)",
            ),
            Refusal::StepUp { scope } => ToolError::permission_denied(
                format!("the access token lacks scope {scope}"),
                format!("obtain a token with scope {scope} and retry"),
            ),
            Refusal::RateLimited { retry_after } | Refusal::Blocked { retry_after } => ToolError::new(
                ErrorCategory::Unavailable,
                self.rate_message(),
                format!("retry after {} s", retry_after.as_secs_f64().ceil()),
            ),
        }
    }

    /// Seconds to wait, for rate refusals.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::RateLimited { retry_after } | Refusal::Blocked { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// How a refusal reaches an MCP client past the HTTP gate (or on
    /// stdio): unknown tools and rate limits as JSON-RPC errors, denials as
    /// tool results with a structured error.
    pub fn to_response(&self) -> Result<CallToolResponse, ErrorData> {
        match self {
            Refusal::UnknownTool { name } => Err(ErrorData::invalid_params(format!("unknown tool: {name}"), None)),
            Refusal::RateLimited { retry_after } | Refusal::Blocked { retry_after } => {
                Err(self.rate_error(*retry_after))
            }
            Refusal::Denied { .. } | Refusal::StepUp { .. } => Ok(self.to_tool_error().to_result().into()),
        }
    }

    /// The JSON-RPC error of a rate refusal (`RATE_LIMITED_CODE`).
    pub fn rate_error(&self, retry_after: Duration) -> ErrorData {
        let secs = retry_after.as_secs_f64().ceil();
        ErrorData::new(
            ErrorCode(RATE_LIMITED_CODE),
            format!("{}; retry after {secs} s", self.rate_message()),
            Some(json!({ "retry_after_secs": secs })),
        )
    }

    pub fn rate_message(&self) -> String {
        match self {
            Refusal::Blocked { .. } => "temporarily blocked after repeated authorization failures".into(),
            _ => "rate limit exceeded".into(),
        }
    }
}

/// `args` as kept in the audit log of a refused call: at most
/// [`REFUSED_ARGS_MAX_BYTES`] of JSON, else a marker with the original size.
pub fn cap_refused_args(args: Option<&Value>) -> Option<Value> {
    let a = args?;
    let len = serde_json::to_vec(a).map(|v| v.len()).unwrap_or(usize::MAX);
    if len <= REFUSED_ARGS_MAX_BYTES {
        Some(a.clone())
    } else {
        Some(json!({ "truncated": true, "original_bytes": len }))
    }
}

impl Spine {
    /// Decides whether `caller` may call `name` now; audits every refusal.
    /// `args` are the call's arguments as received (any JSON, or none).
    pub fn admit(
        &self,
        caller: &Caller,
        session: Option<&str>,
        name: &str,
        args: Option<&Value>,
    ) -> Result<Admitted, Refusal> {
        self.admit_as(caller, session, name, name, args)
    }

    /// [`Spine::admit`] for something authorized like the tool `spec_name`
    /// but audited as `name` (a resource read: `resource:<uri>`).
    pub fn admit_as(
        &self,
        caller: &Caller,
        session: Option<&str>,
        name: &str,
        spec_name: &str,
        args: Option<&Value>,
    ) -> Result<Admitted, Refusal> {
        let key = caller.rate_key();
        let refuse = |refusal: Refusal, decision: AuditDecision, outcome: Outcome, category: ErrorCategory| {
            self.stats.refused(match &refusal {
                Refusal::UnknownTool { .. } => "unknown_tool",
                Refusal::Denied { .. } => "denied",
                Refusal::StepUp { .. } => "step_up",
                Refusal::RateLimited { .. } => "rate_limited",
                Refusal::Blocked { .. } => "blocked",
            });
            let detail = match &refusal {
                Refusal::StepUp { scope } => json!({ "required_scope": scope.as_str() }),
                Refusal::RateLimited { retry_after } | Refusal::Blocked { retry_after } => {
                    let Some(refusals) = self.rate_refusals.admit_record(&key) else {
                        return refusal;
                    };
                    json!({
                        "retry_after_secs": retry_after.as_secs_f64().ceil(),
                        "message": refusal.rate_message(),
                        "refusals": refusals,
                    })
                }
                other => json!({ "message": other.to_tool_error().message }),
            };
            let ev = Event {
                args: cap_refused_args(args),
                error_category: Some(category.as_str().into()),
                detail: Some(detail),
                ..decision_event(name, decision, Some(outcome))
            };
            let _ = self.audit_event(caller, session.map(str::to_string), ev);
            refusal
        };

        if let Err(r) = self.limiter.check(&key, false) {
            let refusal = match r {
                RateRefusal::Blocked { retry_after } => Refusal::Blocked { retry_after },
                RateRefusal::RateLimited { retry_after, .. } => Refusal::RateLimited { retry_after },
            };
            return Err(refuse(refusal, AuditDecision::RateLimited, Outcome::Refused, ErrorCategory::Unavailable));
        }
        let Some(spec) = self.spec(spec_name) else {
            self.note_denial(caller, session.map(str::to_string));
            let r = Refusal::UnknownTool { name: name.chars().take(128).collect() };
            return Err(refuse(r, AuditDecision::Deny, Outcome::UnknownTool, ErrorCategory::InvalidInput));
        };
        match caller.check(spec.name, spec.scope) {
            Decision::Allow => {}
            Decision::Deny(reason) => {
                self.note_denial(caller, session.map(str::to_string));
                let r = Refusal::Denied { reason };
                return Err(refuse(r, AuditDecision::Deny, Outcome::Refused, ErrorCategory::PermissionDenied));
            }
            Decision::StepUp(scope) => {
                let r = Refusal::StepUp { scope };
                return Err(refuse(r, AuditDecision::StepUp, Outcome::Refused, ErrorCategory::PermissionDenied));
            }
        }
        if spec.writes
            && let Err(r) = self.limiter.check_writes(&key)
        {
            let refusal = Refusal::RateLimited { retry_after: r.retry_after() };
            return Err(refuse(refusal, AuditDecision::RateLimited, Outcome::Refused, ErrorCategory::Unavailable));
        }
        Ok(Admitted { spec })
    }
}

/// An audit record of an authorization decision about `tool`.
pub fn decision_event(tool: &str, decision: AuditDecision, outcome: Option<Outcome>) -> Event {
    Event {
        kind: audit::kind::DECISION.into(),
        tool: Some(tool.to_string()),
        decision: Some(decision.as_str().into()),
        outcome: outcome.map(|o| o.as_str().to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_arguments_are_capped_at_the_limit_edge() {
        // {"a":"…"} is 8 bytes of JSON around the string.
        let at = json!({ "a": "x".repeat(REFUSED_ARGS_MAX_BYTES - 8) });
        assert_eq!(cap_refused_args(Some(&at)), Some(at.clone()));
        let over = json!({ "a": "x".repeat(REFUSED_ARGS_MAX_BYTES - 7) });
        assert_eq!(
            cap_refused_args(Some(&over)),
            Some(json!({ "truncated": true, "original_bytes": REFUSED_ARGS_MAX_BYTES + 1 }))
        );
        assert_eq!(cap_refused_args(None), None);
    }
}
