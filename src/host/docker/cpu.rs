//! CPU % of containers from one-shot readings: the Engine API's
//! (`stats?one-shot=true`) or the container's cgroup (`super::cgroup`).
//!
//! The figure is docker's: container CPU time over the host's CPU time in
//! the same window, times the online CPUs, in percent of one CPU (a
//! container using two cores fully shows 200 %). Engine API readings carry
//! the host's CPU time (`system_cpu_usage`, from `/proc/stat`, which counts
//! every online CPU's busy and idle time: wall time × online CPUs), sampled
//! by dockerd with the container's; cgroup readings are timed by tailops's
//! monotonic clock right after the counter is read, so there the host's
//! CPU time is wall time × online CPUs and the figure is container CPU
//! time over wall time × 100. The two kinds are never compared with each
//! other (a switch starts over).
//!
//! A non-one-shot `stats?stream=false` makes the daemon wait for a second
//! CPU reading (≈1-2 s per container). With `one-shot=true` (Engine API
//! ≥ 1.41) it answers at once with one reading and no previous one, so the
//! percentage needs a previous reading of our own: [`Readings`] keeps the
//! last one per container. A reading is only compared with one at least
//! [`CPU_MIN_WINDOW`] older (the host's CPU time comes from `/proc/stat` in
//! clock ticks, too coarse for shorter windows); a younger one reports the
//! last figure computed again. With no usable previous reading (first call,
//! or older than [`CPU_MAX_WINDOW`]) the caller takes two readings
//! [`CPU_FIRST_WINDOW`] apart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models as m;

/// Wait between the two readings when no previous reading is kept.
pub const CPU_FIRST_WINDOW: Duration = Duration::from_millis(250);
/// A previous reading younger than this is not compared with (the last
/// figure is reported again).
pub const CPU_MIN_WINDOW: Duration = Duration::from_millis(250);
/// A previous reading older than this is stale: two fresh readings are taken.
pub const CPU_MAX_WINDOW: Duration = Duration::from_secs(60);
/// Containers whose readings are kept; beyond it stale ones are dropped
/// first, then all (the next call samples twice).
pub const MAX_CPU_READINGS: usize = 1024;

/// What a reading's window is measured against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clock {
    /// Host CPU time (all online cores, ns) and the online cores, from the
    /// Engine API.
    Host { system: u64, cores: u64 },
    /// Wall time: `Reading::at` was taken right after the counter was read
    /// (cgroup readings).
    Wall,
}

/// One container's CPU counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    /// Container CPU time, ns.
    pub total: u64,
    pub clock: Clock,
    pub at: Instant,
}

impl Reading {
    /// The CPU counters of a stats reply (`cpu_stats`), if complete.
    pub fn of(s: &m::ContainerStatsResponse, at: Instant) -> Option<Self> {
        let cpu = s.cpu_stats.as_ref()?;
        let total = cpu.cpu_usage.as_ref()?.total_usage?;
        let system = cpu.system_cpu_usage.filter(|s| *s > 0)?;
        let cores = cpu
            .online_cpus
            .filter(|n| *n > 0)
            .map(u64::from)
            .or_else(|| cpu.cpu_usage.as_ref().and_then(|u| u.percpu_usage.as_ref()).map(|p| p.len() as u64))
            .filter(|n| *n > 0)
            .unwrap_or(1);
        Some(Self { total, clock: Clock::Host { system, cores }, at })
    }

    /// A cgroup reading: `total` ns of CPU time read just before `at`.
    pub fn wall(total: u64, at: Instant) -> Self {
        Self { total, clock: Clock::Wall, at }
    }

    /// Percent of one CPU between `before` and `self` (docker's formula);
    /// None when a counter went backwards, no time passed, or the two
    /// readings are of different kinds.
    pub fn percent_since(&self, before: &Reading) -> Option<f64> {
        let dt = self.total.checked_sub(before.total)?;
        match (self.clock, before.clock) {
            (Clock::Host { system, cores }, Clock::Host { system: s0, .. }) => {
                let ds = system.checked_sub(s0).filter(|d| *d > 0)?;
                Some(dt as f64 / ds as f64 * cores as f64 * 100.0)
            }
            (Clock::Wall, Clock::Wall) => {
                let wall = self.at.checked_duration_since(before.at).filter(|d| !d.is_zero())?;
                Some(dt as f64 / wall.as_nanos() as f64 * 100.0)
            }
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Kept {
    base: Reading,
    last_percent: Option<f64>,
}

/// The last reading per container id.
#[derive(Default)]
pub struct Readings {
    kept: Mutex<HashMap<String, Kept>>,
}

/// What a new reading yields against the kept one.
#[derive(Debug, PartialEq)]
pub enum Cpu {
    Percent(f64),
    /// No usable previous reading: sample again after [`CPU_FIRST_WINDOW`].
    NeedSecond,
}

impl Readings {
    /// Records `now` for container `id` and says what the CPU % is.
    pub fn observe(&self, id: &str, now: Reading) -> Cpu {
        let Ok(mut kept) = self.kept.lock() else {
            return Cpu::NeedSecond;
        };
        let prev = kept.get(id).copied();
        let age = prev.map(|k| now.at.saturating_duration_since(k.base.at));
        match (prev, age) {
            (Some(k), Some(age)) if age < CPU_MIN_WINDOW => match k.last_percent {
                Some(p) => Cpu::Percent(p),
                // Too young to compare and nothing computed yet: the caller
                // samples again; keep the older base.
                None => Cpu::NeedSecond,
            },
            (Some(k), Some(age)) if age <= CPU_MAX_WINDOW => match now.percent_since(&k.base) {
                Some(p) => {
                    kept.insert(id.to_string(), Kept { base: now, last_percent: Some(p) });
                    Cpu::Percent(p)
                }
                None => {
                    // Counters went backwards (container restarted): start over.
                    kept.insert(id.to_string(), Kept { base: now, last_percent: None });
                    Cpu::NeedSecond
                }
            },
            _ => {
                if kept.len() >= MAX_CPU_READINGS && !kept.contains_key(id) {
                    kept.retain(|_, k| now.at.saturating_duration_since(k.base.at) <= CPU_MAX_WINDOW);
                    if kept.len() >= MAX_CPU_READINGS {
                        kept.clear();
                    }
                }
                kept.insert(id.to_string(), Kept { base: now, last_percent: None });
                Cpu::NeedSecond
            }
        }
    }

    /// The percentage between two readings taken by one call (no kept one
    /// was usable); the later becomes the kept one.
    pub fn pair(&self, id: &str, first: &Reading, second: Reading) -> Option<f64> {
        let p = second.percent_since(first);
        if let Ok(mut kept) = self.kept.lock() {
            kept.insert(id.to_string(), Kept { base: second, last_percent: p });
        }
        p
    }

    /// Forgets containers not in `live` (called with the running set).
    pub fn retain(&self, live: &[&str]) {
        if let Ok(mut kept) = self.kept.lock() {
            kept.retain(|id, _| live.contains(&id.as_str()));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.lock().map(|k| k.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(total: u64, system: u64, at: Instant) -> Reading {
        Reading { total, clock: Clock::Host { system, cores: 2 }, at }
    }

    #[test]
    fn first_reading_asks_for_a_second_and_pair_computes_dockers_formula() {
        let rs = Readings::default();
        let t0 = Instant::now();
        let a = r(1_000, 10_000, t0);
        assert_eq!(rs.observe("c", a), Cpu::NeedSecond);
        // 500 ns of container time over 2_000 ns of host time on 2 cores = 50 %.
        let b = r(1_500, 12_000, t0 + CPU_FIRST_WINDOW);
        assert_eq!(rs.pair("c", &a, b), Some(50.0));
    }

    #[test]
    fn window_edges() {
        let rs = Readings::default();
        let t0 = Instant::now();
        rs.pair("c", &r(0, 1, t0), r(0, 1, t0));
        // MIN_WINDOW - 1 ms: the last figure (none yet) → sample again, base kept.
        let young = r(100, 201, t0 + CPU_MIN_WINDOW - Duration::from_millis(1));
        assert_eq!(rs.observe("c", young), Cpu::NeedSecond);
        // Exactly MIN_WINDOW: compared with the base.
        let at_min = r(100, 201, t0 + CPU_MIN_WINDOW);
        assert_eq!(rs.observe("c", at_min), Cpu::Percent(100.0));
        // Younger than MIN after that: the last figure again.
        let again = r(150, 211, t0 + CPU_MIN_WINDOW + Duration::from_millis(1));
        assert_eq!(rs.observe("c", again), Cpu::Percent(100.0));
        // Exactly MAX_WINDOW after the base: still compared.
        let at_max = r(300, 601, t0 + CPU_MIN_WINDOW + CPU_MAX_WINDOW);
        assert_eq!(rs.observe("c", at_max), Cpu::Percent(100.0));
        // MAX_WINDOW + 1 ms: stale → two fresh readings.
        let stale = r(400, 801, t0 + CPU_MIN_WINDOW + CPU_MAX_WINDOW * 2 + Duration::from_millis(1));
        assert_eq!(rs.observe("c", stale), Cpu::NeedSecond);
    }

    #[test]
    fn counters_going_backwards_start_over() {
        let rs = Readings::default();
        let t0 = Instant::now();
        rs.pair("c", &r(0, 1, t0), r(10_000, 100, t0));
        assert_eq!(rs.observe("c", r(5, 300, t0 + CPU_MIN_WINDOW)), Cpu::NeedSecond);
        // Host time not advancing gives no figure either.
        assert_eq!(r(5, 300, t0).percent_since(&r(0, 300, t0)), None);
    }

    #[test]
    fn wall_readings_are_cpu_time_over_wall_time() {
        let t0 = Instant::now();
        // 150 ms of CPU in 300 ms: half a core, whatever the host's core count.
        let a = Reading::wall(1_000_000_000, t0);
        let b = Reading::wall(1_150_000_000, t0 + Duration::from_millis(300));
        assert_eq!(b.percent_since(&a), Some(50.0));
        // Two cores busy: 200 %.
        let c = Reading::wall(1_750_000_000, t0 + Duration::from_millis(600));
        assert_eq!(c.percent_since(&b), Some(200.0));
        // No time passed, time backwards, counter backwards: no figure.
        assert_eq!(Reading::wall(2_000_000_000, t0).percent_since(&a), None);
        assert_eq!(a.percent_since(&b), None);
        assert_eq!(Reading::wall(0, t0 + Duration::from_secs(1)).percent_since(&a), None);
        // A kept Engine API reading and a cgroup one are never compared:
        // the kept one is replaced and two fresh readings are taken.
        assert_eq!(b.percent_since(&r(0, 1, t0)), None);
        let rs = Readings::default();
        rs.pair("c", &r(0, 1, t0), r(10, 100, t0));
        assert_eq!(rs.observe("c", Reading::wall(5_000, t0 + CPU_MIN_WINDOW)), Cpu::NeedSecond);
        assert_eq!(
            rs.pair(
                "c",
                &Reading::wall(5_000, t0 + CPU_MIN_WINDOW),
                Reading::wall(5_000 + 125_000_000, t0 + CPU_MIN_WINDOW * 2)
            ),
            Some(50.0)
        );
    }

    #[test]
    fn readings_are_bounded_and_retained_by_the_live_set() {
        let rs = Readings::default();
        let t0 = Instant::now();
        for i in 0..MAX_CPU_READINGS {
            rs.observe(&format!("c{i}"), r(0, 1, t0));
        }
        assert_eq!(rs.len(), MAX_CPU_READINGS);
        // One more, all fresh: cleared, then the new one kept.
        rs.observe("new", r(0, 1, t0));
        assert_eq!(rs.len(), 1);
        rs.observe("other", r(0, 1, t0));
        rs.retain(&["new"]);
        assert_eq!(rs.len(), 1);
    }
}
