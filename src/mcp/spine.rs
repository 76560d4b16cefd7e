//! The spine's shared state: config, audit log, rate limiter and the
//! table of tool specs. One per server process, shared by every transport
//! (HTTP sessions, stateless requests, stdio). Knows no tool domain: the
//! composition root (`server.rs`) hands it the specs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::contract::ToolSpec;
use crate::audit::{self, AuditLog, Event};
use crate::auth::caller::Caller;
use crate::auth::ratelimit::Limiter;
use crate::config::Config;

/// Rate-limited refusals of one caller (principal on its node) are written
/// to the audit log at most once per this many seconds; the record carries
/// how many refusals it stands for. Without it, a caller whose block just
/// expired could write a record per request at network speed.
pub const RATE_REFUSAL_AUDIT_SECS: u64 = 10;
/// Callers whose rate-limited refusals are tracked for that summary at once.
const MAX_RATE_REFUSAL_KEYS: usize = 10_000;

/// Per caller: when its last rate-limited refusal was written, and how many
/// have been refused since without a record.
#[derive(Default)]
pub struct RateRefusalLog {
    map: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

impl RateRefusalLog {
    /// `Some(n)`: write a record now, standing for `n` refusals (this one
    /// included); `None`: counted, not written.
    pub(super) fn admit_record(&self, key: &str) -> Option<u64> {
        let now = std::time::Instant::now();
        let every = Duration::from_secs(RATE_REFUSAL_AUDIT_SECS);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_RATE_REFUSAL_KEYS && !map.contains_key(key) {
            map.retain(|_, (at, _)| now.duration_since(*at) < every);
        }
        match map.get_mut(key) {
            Some((at, n)) if now.duration_since(*at) < every => {
                *n = n.saturating_add(1);
                None
            }
            Some((at, n)) => {
                let total = n.saturating_add(1);
                *at = now;
                *n = 0;
                Some(total)
            }
            None => {
                if map.len() < MAX_RATE_REFUSAL_KEYS {
                    map.insert(key.to_string(), (now, 0));
                }
                Some(1)
            }
        }
    }
}

pub struct Spine {
    pub cfg: Arc<Config>,
    pub audit: AuditLog,
    pub limiter: Limiter,
    pub started: Instant,
    /// MagicDNS name (or local label) for server_info.
    pub node_name: String,
    specs: HashMap<&'static str, ToolSpec>,
    /// Tools the configuration does not offer (e.g. file tools without a
    /// file root): unlisted and uncallable, as if they did not exist.
    hidden: HashSet<&'static str>,
    /// Summarizes rate-limited refusals in the audit log (see
    /// [`RATE_REFUSAL_AUDIT_SECS`]).
    pub(super) rate_refusals: RateRefusalLog,
    /// Call and refusal counters for `/metrics`.
    pub stats: super::stats::SpineStats,
    /// What SIGHUP replaces: the policy, the `[local]` principal and the
    /// grant capability name ([`Self::reload`]).
    live: std::sync::RwLock<Arc<Live>>,
}

/// The settings a SIGHUP reload replaces; `generation` tells cached
/// identities they are stale.
#[derive(Debug)]
pub struct Live {
    pub policy: crate::auth::policy::PolicyConfig,
    pub local: crate::auth::caller::LocalPrincipal,
    pub capability: String,
    pub generation: u64,
}

impl Spine {
    pub fn new(cfg: Arc<Config>, audit: AuditLog, node_name: String, specs: &[ToolSpec]) -> Self {
        let limiter = Limiter::new(cfg.limits.rate.clone());
        let specs = specs.iter().map(|s| (s.name, *s)).collect();
        Self {
            audit,
            limiter,
            started: Instant::now(),
            node_name,
            specs,
            hidden: HashSet::new(),
            rate_refusals: Default::default(),
            stats: Default::default(),
            live: std::sync::RwLock::new(Arc::new(Live {
                policy: cfg.policy.clone(),
                local: cfg.local.clone(),
                capability: cfg.capability.clone(),
                generation: 0,
            })),
            cfg,
        }
    }

    /// The current policy, `[local]` principal and capability.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the policy, `[local]`, capability and `[limits.rate]` with
    /// `new`'s (already validated); identities cached on open connections
    /// are looked up again on their next request. Returns the new
    /// generation.
    pub fn reload(&self, new: &Config) -> u64 {
        self.limiter.reconfigure(new.limits.rate.clone());
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let generation = live.generation.saturating_add(1);
        *live = Arc::new(Live {
            policy: new.policy.clone(),
            local: new.local.clone(),
            capability: new.capability.clone(),
            generation,
        });
        generation
    }

    /// Hides tools the configuration does not offer (the composition root
    /// asks `tools::not_offered`).
    pub fn hide(mut self, names: impl IntoIterator<Item = &'static str>) -> Self {
        self.hidden.extend(names);
        self
    }

    /// The spec of a callable tool (`read_only` hides writing tools; the
    /// configuration may hide whole domains).
    pub fn spec(&self, name: &str) -> Option<ToolSpec> {
        self.specs
            .get(name)
            .copied()
            .filter(|s| !self.hidden.contains(s.name))
            .filter(|s| !(self.cfg.read_only && s.writes))
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
            self.blocked(caller, session, "repeated_denials", ("max_denials", self.limiter.config().max_denials));
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
                ("max_token_failures", self.limiter.config().max_token_failures),
            );
        }
    }

    fn blocked(&self, caller: &Caller, session: Option<String>, event: &str, (max_key, max): (&str, u32)) {
        let rate = self.limiter.config();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_refusals_are_summarized_per_caller() {
        let log = RateRefusalLog::default();
        assert_eq!(log.admit_record("a@n1"), Some(1), "the first refusal is written");
        for _ in 0..50 {
            assert_eq!(log.admit_record("a@n1"), None, "then counted, not written, for 10 s");
        }
        assert_eq!(log.admit_record("a@n2"), Some(1), "another node of the same principal has its own");
    }
}
