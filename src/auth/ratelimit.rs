//! Per-principal rate limits (governor, GCRA) and the repeated-denial
//! tripwire.
//!
//! - Every tool call costs one cell of the principal's `calls` bucket;
//!   writing tools also cost one of the stricter `writes` bucket.
//! - `max_denials` authorization failures inside `denial_window_secs` block
//!   the principal for `block_secs` (every request refused), and the caller
//!   of [`Limiter::denied`] writes an audit `anomaly` record.
//! - Invalid or expired OAuth tokens are counted apart, against their own,
//!   higher `max_token_failures`: a client retrying a stale token is a
//!   nuisance, not an attack on scopes, and must not be blocked as one —
//!   but a stream of bad tokens is still bounded.
//! - A SIGHUP reload applies a changed `[limits.rate]` live
//!   ([`Limiter::reconfigure`]): the buckets start full under the new
//!   quotas (GCRA state cannot be carried across quotas), while blocks and
//!   the failures counted so far are kept — a reload never frees a blocked
//!   principal.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

/// `[limits.rate]` in the config file.
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Tool calls per minute per principal.
    pub calls_per_minute: u32,
    /// Calls allowed at once above the steady rate.
    pub burst: u32,
    /// Writing-tool calls per minute per principal.
    pub writes_per_minute: u32,
    pub write_burst: u32,
    /// Authorization failures that trigger a temporary block…
    pub max_denials: u32,
    /// …within this many seconds…
    pub denial_window_secs: u64,
    /// …for this many seconds.
    pub block_secs: u64,
    /// Invalid/expired OAuth tokens within `denial_window_secs` that block
    /// the principal (counted apart from authorization denials).
    pub max_token_failures: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            calls_per_minute: 100,
            burst: 20,
            writes_per_minute: 20,
            write_burst: 5,
            max_denials: 10,
            denial_window_secs: 60,
            block_secs: 300,
            max_token_failures: 50,
        }
    }
}

impl RateConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("calls_per_minute", self.calls_per_minute),
            ("burst", self.burst),
            ("writes_per_minute", self.writes_per_minute),
            ("write_burst", self.write_burst),
            ("max_denials", self.max_denials),
            ("max_token_failures", self.max_token_failures),
        ] {
            if v == 0 {
                return Err(format!("limits.rate.{name} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Why a call was refused before it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over the rate; retry after this long.
    RateLimited { retry_after: Duration, bucket: &'static str },
    /// Blocked after repeated denials, for this long.
    Blocked { retry_after: Duration },
}

impl Refusal {
    pub fn retry_after(&self) -> Duration {
        match self {
            Refusal::RateLimited { retry_after, .. } | Refusal::Blocked { retry_after } => *retry_after,
        }
    }
}

pub struct Limiter {
    buckets: RwLock<Arc<Buckets>>,
    /// Authorization denials (unknown tools included).
    denials: Tripwire,
    /// Invalid or expired OAuth tokens.
    token_failures: Tripwire,
}

/// The token buckets of one `[limits.rate]` generation.
struct Buckets {
    cfg: RateConfig,
    calls: DefaultKeyedRateLimiter<String>,
    writes: DefaultKeyedRateLimiter<String>,
}

impl Buckets {
    fn new(cfg: RateConfig) -> Self {
        let calls = RateLimiter::keyed(Quota::per_minute(nz(cfg.calls_per_minute)).allow_burst(nz(cfg.burst)));
        let writes = RateLimiter::keyed(Quota::per_minute(nz(cfg.writes_per_minute)).allow_burst(nz(cfg.write_burst)));
        Self { cfg, calls, writes }
    }
}

/// Counts failures per key in a sliding window; `max` of them block the
/// key for `block`.
struct Tripwire {
    map: Mutex<TripState>,
}

struct TripState {
    max: usize,
    window: Duration,
    block: Duration,
    failures: HashMap<String, Failures>,
}

#[derive(Default)]
struct Failures {
    times: Vec<Instant>,
    blocked_until: Option<Instant>,
}

impl Tripwire {
    fn new(max: u32, window_secs: u64, block_secs: u64) -> Self {
        let t = Self {
            map: Mutex::new(TripState {
                max: 0,
                window: Duration::ZERO,
                block: Duration::ZERO,
                failures: HashMap::new(),
            }),
        };
        t.set(max, window_secs, block_secs);
        t
    }

    /// New thresholds; the failures and blocks recorded so far stay.
    fn set(&self, max: u32, window_secs: u64, block_secs: u64) {
        let mut st = self.map.lock().unwrap_or_else(|e| e.into_inner());
        st.max = usize::try_from(max).unwrap_or(usize::MAX);
        st.window = Duration::from_secs(window_secs);
        st.block = Duration::from_secs(block_secs);
    }

    fn blocked_for(&self, key: &str) -> Option<Duration> {
        let st = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let until = st.failures.get(key)?.blocked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Records one failure; true when it trips the block.
    fn fail(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut st = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (max, window, block) = (st.max, st.window, st.block);
        let map = &mut st.failures;
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.retain(|_, d| d.blocked_until.is_some_and(|u| u > now));
        }
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            // Every tracked key is blocked: count nothing new rather than
            // grow without bound.
            return false;
        }
        let d = map.entry(key.to_string()).or_default();
        d.times.retain(|t| now.duration_since(*t) < window);
        d.times.push(now);
        let already = d.blocked_until.is_some_and(|u| u > now);
        if !already && d.times.len() >= max {
            d.blocked_until = now.checked_add(block);
            d.times.clear();
            return true;
        }
        false
    }

    fn housekeep(&self) {
        let now = Instant::now();
        let mut st = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let window = st.window;
        st.failures.retain(|_, d| {
            d.blocked_until.is_some_and(|u| u > now) || d.times.iter().any(|t| now.duration_since(*t) < window)
        });
    }
}

/// Most principals tracked for denials at once; the oldest are dropped.
const MAX_TRACKED: usize = 10_000;

fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN)
}

impl Limiter {
    pub fn new(cfg: RateConfig) -> Self {
        let denials = Tripwire::new(cfg.max_denials, cfg.denial_window_secs, cfg.block_secs);
        let token_failures = Tripwire::new(cfg.max_token_failures, cfg.denial_window_secs, cfg.block_secs);
        Self { buckets: RwLock::new(Arc::new(Buckets::new(cfg))), denials, token_failures }
    }

    fn buckets(&self) -> Arc<Buckets> {
        self.buckets.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `[limits.rate]` in force.
    pub fn config(&self) -> RateConfig {
        self.buckets().cfg.clone()
    }

    /// Applies a new (validated) `[limits.rate]`; false when it equals the
    /// one in force (nothing is reset then). See the module doc for what a
    /// change keeps.
    pub fn reconfigure(&self, cfg: RateConfig) -> bool {
        let mut b = self.buckets.write().unwrap_or_else(|e| e.into_inner());
        if b.cfg == cfg {
            return false;
        }
        self.denials.set(cfg.max_denials, cfg.denial_window_secs, cfg.block_secs);
        self.token_failures.set(cfg.max_token_failures, cfg.denial_window_secs, cfg.block_secs);
        *b = Arc::new(Buckets::new(cfg));
        true
    }

    /// Charges one call (and one write) to `principal`, or says why not.
    pub fn check(&self, principal: &str, writes: bool) -> Result<(), Refusal> {
        if let Some(retry_after) = self.blocked_for(principal) {
            return Err(Refusal::Blocked { retry_after });
        }
        let key = principal.to_string();
        // The limiters' own clock: `DefaultClock::default()` builds (and
        // calibrates) a new quanta clock, which cost more than the rest of
        // the admission decision together (issue 15's profile).
        let b = self.buckets();
        if let Err(nu) = b.calls.check_key(&key) {
            let now = b.calls.clock().now();
            return Err(Refusal::RateLimited { retry_after: nu.wait_time_from(now), bucket: "calls" });
        }
        if writes && let Err(nu) = b.writes.check_key(&key) {
            let now = b.writes.clock().now();
            return Err(Refusal::RateLimited { retry_after: nu.wait_time_from(now), bucket: "writes" });
        }
        Ok(())
    }

    /// Charges one call to the stricter `writes` bucket (after [`check`]
    /// charged the `calls` bucket and the tool turned out to write).
    ///
    /// [`check`]: Limiter::check
    pub fn check_writes(&self, principal: &str) -> Result<(), Refusal> {
        let b = self.buckets();
        b.writes.check_key(&principal.to_string()).map_err(|nu| Refusal::RateLimited {
            retry_after: nu.wait_time_from(b.writes.clock().now()),
            bucket: "writes",
        })
    }

    /// How long `principal` stays blocked (by denials or by bad tokens),
    /// if it is.
    pub fn blocked_for(&self, principal: &str) -> Option<Duration> {
        match (self.denials.blocked_for(principal), self.token_failures.blocked_for(principal)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records an authorization failure. Returns true when this one trips
    /// the block (the caller audits an anomaly).
    pub fn denied(&self, principal: &str) -> bool {
        self.denials.fail(principal)
    }

    /// Records an invalid or expired OAuth token (its own, higher
    /// threshold). Returns true when this one trips the block.
    pub fn token_failed(&self, principal: &str) -> bool {
        self.token_failures.fail(principal)
    }

    /// Drops idle rate-limiter state (call periodically).
    pub fn housekeep(&self) {
        let b = self.buckets();
        b.calls.retain_recent();
        b.writes.retain_recent();
        self.denials.housekeep();
        self.token_failures.housekeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_principal() {
        // One call a minute refills: with one a second, a test thread
        // preempted for a second between the checks (a loaded box) got a
        // refilled token where the refusal was expected.
        let l = Limiter::new(RateConfig { calls_per_minute: 1, burst: 3, ..Default::default() });
        for _ in 0..3 {
            assert_eq!(l.check("alice", false), Ok(()));
        }
        match l.check("alice", false) {
            Err(Refusal::RateLimited { retry_after, bucket: "calls" }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60), "{retry_after:?}")
            }
            other => panic!("expected rate limit, got {other:?}"),
        }
        assert_eq!(l.check("bob", false), Ok(()), "bob has his own bucket");
    }

    #[test]
    fn writes_have_a_stricter_bucket() {
        let l = Limiter::new(RateConfig { write_burst: 1, writes_per_minute: 1, ..Default::default() });
        assert_eq!(l.check("a", true), Ok(()));
        assert!(matches!(l.check("a", true), Err(Refusal::RateLimited { bucket: "writes", .. })));
        assert_eq!(l.check("a", false), Ok(()), "reads still pass");
    }

    #[test]
    fn repeated_denials_block() {
        let l = Limiter::new(RateConfig { max_denials: 3, block_secs: 60, ..Default::default() });
        assert!(!l.denied("eve"));
        assert!(!l.denied("eve"));
        assert!(l.denied("eve"), "third denial trips the block");
        assert!(!l.denied("eve"), "trips once");
        assert!(matches!(l.check("eve", false), Err(Refusal::Blocked { .. })));
        assert_eq!(l.check("alice", false), Ok(()));
    }

    #[test]
    fn token_failures_are_counted_apart_with_their_own_threshold() {
        let l = Limiter::new(RateConfig { max_denials: 3, max_token_failures: 5, ..Default::default() });
        for _ in 0..4 {
            assert!(!l.token_failed("carol"));
        }
        assert!(!l.denied("carol"), "token failures do not count as denials");
        assert_eq!(l.check("carol", false), Ok(()), "4 bad tokens: not blocked");
        assert!(l.token_failed("carol"), "the 5th trips the token block");
        assert!(matches!(l.check("carol", false), Err(Refusal::Blocked { .. })));
        assert!(l.blocked_for("carol").is_some());
    }

    /// A reload's new quotas apply at once; a block survives it.
    #[test]
    fn reconfigure_applies_new_quotas_and_keeps_blocks() {
        // One call a minute refills (not one a second): the spent buckets
        // below must stay spent however slowly a loaded box runs the test.
        let old = RateConfig { calls_per_minute: 1, burst: 1, max_denials: 2, ..Default::default() };
        let l = Limiter::new(old.clone());
        assert_eq!(l.check("dan", false), Ok(()));
        assert!(l.check("dan", false).is_err(), "burst 1 spent");
        assert!(!l.denied("eve"));
        assert!(l.denied("eve"), "eve blocked");

        assert!(!l.reconfigure(old.clone()), "the same config changes nothing");
        assert!(l.check("dan", false).is_err(), "…not even the buckets");

        let new = RateConfig { burst: 3, max_denials: 5, ..old };
        assert!(l.reconfigure(new.clone()));
        assert_eq!(l.config(), new);
        for i in 0..3 {
            assert_eq!(l.check("dan", false), Ok(()), "call {i} under burst 3");
        }
        assert!(l.check("dan", false).is_err(), "the 4th is over the new burst");
        assert!(matches!(l.check("eve", false), Err(Refusal::Blocked { .. })), "the block survives a reload");
        for _ in 0..4 {
            assert!(!l.denied("frank"), "under the new max_denials 5");
        }
        assert!(l.denied("frank"), "the 5th trips it");
    }
}
