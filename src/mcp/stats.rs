//! The spine's counters for `/metrics`: every tool call by tool and
//! outcome with its latency, and every refusal by reason. Kept here, where
//! the decisions are made, so no transport can forget them; `ops::metrics`
//! only encodes them. Label values are bounded: tool names come from the
//! spec table (refusals carry no tool label, since an unknown tool's name is
//! the caller's text), outcomes and reasons are fixed words.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Latency buckets of tool calls: 1 ms … ~33 s, doubling (16 buckets).
pub const CALL_BUCKETS_START_SECS: f64 = 0.001;
pub const CALL_BUCKETS: u16 = 16;

fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(CALL_BUCKETS_START_SECS, 2.0, CALL_BUCKETS))
}

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone)]
pub struct SpineStats {
    /// `tailops_tool_calls_total{tool, outcome}`.
    pub calls: Family<Labels, Counter>,
    /// `tailops_tool_call_duration_seconds{tool}`.
    pub duration: Family<Labels, Histogram, fn() -> Histogram>,
    /// `tailops_refusals_total{reason}`: unknown_tool, denied, step_up,
    /// rate_limited, blocked, write_ahead.
    pub refusals: Family<Labels, Counter>,
}

impl Default for SpineStats {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(call_histogram),
            refusals: Family::default(),
        }
    }
}

impl SpineStats {
    /// An admitted call ended with `outcome` after `took`.
    pub fn call(&self, tool: &str, outcome: &str, took: Duration) {
        // Outcomes are fixed words; a protocol error's code is dropped so
        // the label set stays bounded.
        let outcome = outcome.split(' ').next().unwrap_or(outcome).to_string();
        self.calls.get_or_create(&vec![("tool", tool.to_string()), ("outcome", outcome)]).inc();
        self.duration.get_or_create(&vec![("tool", tool.to_string())]).observe(took.as_secs_f64());
    }

    /// A call refused before it ran.
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&vec![("reason", reason.to_string())]).inc();
    }

    /// Calls counted so far for `tool` with `outcome` (tests, benches).
    pub fn calls_of(&self, tool: &str, outcome: &str) -> u64 {
        self.calls.get_or_create(&vec![("tool", tool.to_string()), ("outcome", outcome.to_string())]).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_with_codes_are_cut_to_their_word() {
        let s = SpineStats::default();
        s.call("whoami", "protocol_error -32602", Duration::from_millis(3));
        s.call("whoami", "protocol_error -32000", Duration::from_millis(3));
        assert_eq!(s.calls_of("whoami", "protocol_error"), 2);
        s.refused("denied");
        assert_eq!(s.refusals.get_or_create(&vec![("reason", "denied".to_string())]).get(), 1);
    }
}
