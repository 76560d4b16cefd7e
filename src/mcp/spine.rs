//! The spine's shared state: config, audit log, rate limiter and the
//! table of tool specs. One per server process, shared by every transport
//! (HTTP sessions, stateless requests, stdio). Knows no tool domain: the
//! composition root (`server.rs`) hands it the specs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::contract::ToolSpec;
use crate::audit::{self, AuditLog, Event};
use crate::auth::caller::Caller;
use crate::auth::ratelimit::Limiter;
use crate::config::Config;

pub struct Spine {
    pub cfg: Arc<Config>,
    pub audit: AuditLog,
    pub limiter: Limiter,
    pub started: Instant,
    /// MagicDNS name (or local label) for server_info.
    pub node_name: String,
    specs: HashMap<&'static str, ToolSpec>,
    /// Summarizes rate-limited refusals in the audit log (see
    /// [`super::admit::RATE_REFUSAL_AUDIT_SECS`]).
    pub(super) rate_refusals: super::admit::RateRefusalLog,
}

impl Spine {
    pub fn new(cfg: Arc<Config>, audit: AuditLog, node_name: String, specs: &[ToolSpec]) -> Self {
        let limiter = Limiter::new(cfg.limits.rate.clone());
        let specs = specs.iter().map(|s| (s.name, *s)).collect();
        Self { cfg, audit, limiter, started: Instant::now(), node_name, specs, rate_refusals: Default::default() }
    }

    /// The spec of a callable tool (`read_only` hides writing tools).
    pub fn spec(&self, name: &str) -> Option<ToolSpec> {
        self.specs.get(name).copied().filter(|s| !(self.cfg.read_only && s.writes))
    }

    /// Audit helper: fills principal fields from the caller.
    pub fn audit_event(&self, caller: &Caller, session: Option<String>, ev: Event) -> Result<(), String> {
        self.audit.record(Self::stamp(caller, session, ev)).map_err(|e| e.to_string())
    }

    /// `ev` with the caller's principal fields and the session filled in
    /// (what [`Self::audit_event`] records; the write-ahead intent uses it
    /// with [`AuditLog::record_durable`]).
    pub fn stamp(caller: &Caller, session: Option<String>, mut ev: Event) -> Event {
        ev.principal = Some(caller.principal.id.clone());
        ev.node = Some(caller.principal.node_name.clone());
        ev.source = Some(caller.principal.source.to_string());
        ev.session = session;
        ev
    }

    /// Records a denial; when it trips the repeated-denial block, also an
    /// `anomaly` record.
    pub fn note_denial(&self, caller: &Caller, session: Option<String>) {
        if self.limiter.denied(&caller.rate_key()) {
            self.blocked(caller, session, "repeated_denials", ("max_denials", self.cfg.limits.rate.max_denials));
        }
    }

    /// Records an invalid or expired OAuth token (counted apart from
    /// denials, against `max_token_failures`).
    pub fn note_token_failure(&self, caller: &Caller) {
        if self.limiter.token_failed(&caller.rate_key()) {
            self.blocked(
                caller,
                None,
                "repeated_token_failures",
                ("max_token_failures", self.cfg.limits.rate.max_token_failures),
            );
        }
    }

    fn blocked(&self, caller: &Caller, session: Option<String>, event: &str, (max_key, max): (&str, u32)) {
        let rate = &self.cfg.limits.rate;
        tracing::warn!(principal = %caller.principal.id, node = %caller.principal.node_name, event, "principal blocked");
        let _ = self.audit_event(
            caller,
            session,
            Event {
                kind: audit::kind::ANOMALY.into(),
                detail: Some(json!({
                    "event": event,
                    max_key: max,
                    "window_secs": rate.denial_window_secs,
                    "blocked_secs": rate.block_secs,
                })),
                ..Default::default()
            },
        );
    }
}
