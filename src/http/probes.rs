//! Plain HTTP endpoints beside `/mcp`: `/whoami` (the caller's identity),
//! `/healthz` (liveness) and `/readyz` (readiness and degradations).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppState, IdentitySource};
use crate::auth::caller::Caller;
use crate::auth::identity::Principal;

/// `GET /whoami`: the caller's identity as the tailnet reports it.
pub(super) async fn whoami(axum::Extension(c): axum::Extension<Caller>) -> Json<Principal> {
    Json((*c.principal).clone())
}

/// `GET /healthz`: liveness. The process answers, so it is alive.
pub(super) async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.spine.started.elapsed().as_secs(),
        "node": state.spine.node_name,
    }))
}

/// `GET /readyz`: readiness and degradations, as JSON. Only the tailnet
/// and the audit log decide the status code (issue 13): 503 when the node
/// is not connected ("unavailable") or the audit log cannot write
/// ("degraded": reads still work, writing tools are refused, so a fleet
/// check must see it); tool domains (Docker …) are reported with their
/// state and reason but never make it non-200.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let health = state.spine.audit.health();
    let audit_ok = health.healthy;
    let mut audit = if audit_ok {
        json!({ "status": "ok" })
    } else {
        json!({
            "status": "failing",
            "reason": health.reason.map(|r| r.as_str()),
            "error": health.error,
            "effect": "writing tools refused",
        })
    };
    if let Some(ms) = health.stalled_ms {
        audit["stalled_ms"] = json!(ms);
    }
    audit["journald"] = match &health.journald {
        Some(j) => json!({ "status": "on", "socket": j.socket, "sent": j.sent, "dropped": j.dropped }),
        None => json!({ "status": "off" }),
    };
    let (tailnet_ok, tailnet) = match &*state.identity {
        IdentitySource::Tailnet(node) => match node.status(Duration::from_secs(2)).await {
            Ok(st) if st.backend_state == "Running" => (true, json!({ "status": "ok", "state": st.backend_state })),
            Ok(st) => (false, json!({ "status": "failing", "state": st.backend_state })),
            Err(e) => (false, json!({ "status": "failing", "error": e.to_string() })),
        },
        IdentitySource::Local => (true, json!({ "status": "not_used", "mode": "local" })),
    };
    // Tool domains (Docker …) are reported, never fatal: other domains keep
    // working without them.
    let mut checks = (state.domain_health)().await;
    let status = match (tailnet_ok, audit_ok) {
        (false, _) => "unavailable",
        (true, false) => "degraded",
        (true, true) => "ok",
    };
    let code = if tailnet_ok && audit_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    checks.insert("tailnet".into(), tailnet);
    checks.insert("audit".into(), audit);
    (code, Json(json!({ "status": status, "checks": checks }))).into_response()
}
