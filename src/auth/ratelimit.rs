//! Per-principal rate limits (governor, GCRA) and the repeated-denial
//! tripwire.
//!
//! - Every tool call costs one cell of the principal's `calls` bucket;
//!   writing tools also cost one of the stricter `writes` bucket.
//! - `max_denials` authorization failures inside `denial_window_secs` block
//!   the principal for `block_secs` (every request refused), and the caller
//!   of [`Limiter::denied`] writes an audit `anomaly` record.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

/// `[limits.rate]` in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
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
    cfg: RateConfig,
    calls: DefaultKeyedRateLimiter<String>,
    writes: DefaultKeyedRateLimiter<String>,
    denials: Mutex<HashMap<String, Denials>>,
}

#[derive(Default)]
struct Denials {
    times: Vec<Instant>,
    blocked_until: Option<Instant>,
}

/// Most principals tracked for denials at once; the oldest are dropped.
const MAX_TRACKED: usize = 10_000;

fn nz(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN)
}

impl Limiter {
    pub fn new(cfg: RateConfig) -> Self {
        let calls = RateLimiter::keyed(Quota::per_minute(nz(cfg.calls_per_minute)).allow_burst(nz(cfg.burst)));
        let writes = RateLimiter::keyed(Quota::per_minute(nz(cfg.writes_per_minute)).allow_burst(nz(cfg.write_burst)));
        Self { cfg, calls, writes, denials: Mutex::new(HashMap::new()) }
    }

    /// Charges one call (and one write) to `principal`, or says why not.
    pub fn check(&self, principal: &str, writes: bool) -> Result<(), Refusal> {
        if let Some(retry_after) = self.blocked_for(principal) {
            return Err(Refusal::Blocked { retry_after });
        }
        let key = principal.to_string();
        let now = DefaultClock::default().now();
        if let Err(nu) = self.calls.check_key(&key) {
            return Err(Refusal::RateLimited { retry_after: nu.wait_time_from(now), bucket: "calls" });
        }
        if writes && let Err(nu) = self.writes.check_key(&key) {
            return Err(Refusal::RateLimited { retry_after: nu.wait_time_from(now), bucket: "writes" });
        }
        Ok(())
    }

    /// Charges one call to the stricter `writes` bucket (after [`check`]
    /// charged the `calls` bucket and the tool turned out to write).
    ///
    /// [`check`]: Limiter::check
    pub fn check_writes(&self, principal: &str) -> Result<(), Refusal> {
        let now = DefaultClock::default().now();
        self.writes
            .check_key(&principal.to_string())
            .map_err(|nu| Refusal::RateLimited { retry_after: nu.wait_time_from(now), bucket: "writes" })
    }

    /// How long `principal` stays blocked, if it is.
    pub fn blocked_for(&self, principal: &str) -> Option<Duration> {
        let map = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        let until = map.get(principal)?.blocked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Records an authorization failure. Returns true when this one trips
    /// the block (the caller audits an anomaly).
    pub fn denied(&self, principal: &str) -> bool {
        let now = Instant::now();
        let window = Duration::from_secs(self.cfg.denial_window_secs);
        let mut map = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(principal) {
            map.retain(|_, d| d.blocked_until.is_some_and(|u| u > now));
        }
        let d = map.entry(principal.to_string()).or_default();
        d.times.retain(|t| now.duration_since(*t) < window);
        d.times.push(now);
        let already = d.blocked_until.is_some_and(|u| u > now);
        if !already && d.times.len() >= self.cfg.max_denials as usize {
            d.blocked_until = Some(now + Duration::from_secs(self.cfg.block_secs));
            d.times.clear();
            return true;
        }
        false
    }

    /// Drops idle rate-limiter state (call periodically).
    pub fn housekeep(&self) {
        self.calls.retain_recent();
        self.writes.retain_recent();
        let now = Instant::now();
        let window = Duration::from_secs(self.cfg.denial_window_secs);
        let mut map = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, d| {
            d.blocked_until.is_some_and(|u| u > now) || d.times.iter().any(|t| now.duration_since(*t) < window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_principal() {
        let l = Limiter::new(RateConfig { calls_per_minute: 60, burst: 3, ..Default::default() });
        for _ in 0..3 {
            assert_eq!(l.check("alice", false), Ok(()));
        }
        match l.check("alice", false) {
            Err(Refusal::RateLimited { retry_after, bucket: "calls" }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1), "{retry_after:?}")
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
}
