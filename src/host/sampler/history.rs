//! Two-tier metric history (see the module docs of [`super`] for the tiers
//! and their memory bound): every sample for `full_resolution_secs`, then
//! min/avg/max buckets of `rollup_secs` for `rollup_retention_secs`.

use std::collections::{BTreeMap, VecDeque};

use schemars::JsonSchema;
use serde::Serialize;

use super::{rfc3339, widen};

/// Most metrics kept in history; further ones are dropped (one warning).
pub const MAX_METRICS: usize = 512;
/// Most points one [`Sampler::history`](super::Sampler::history) answer may hold.
pub const MAX_HISTORY_POINTS: usize = 1000;
/// Bytes per metric and tier-1 point (`f32` value).
pub const FULL_POINT_BYTES: usize = 4;
/// Bytes per tier-1 point shared by all metrics (`f64` time).
pub const FULL_TIME_BYTES: usize = 8;
/// Bytes per metric and tier-2 bucket (`f32` min, avg, max and `u32` count).
pub const ROLLUP_BUCKET_BYTES: usize = 16;
const _: () = assert!(std::mem::size_of::<Bucket>() == ROLLUP_BUCKET_BYTES);
/// Bytes per tier-2 bucket shared by all metrics (`f64` bucket start).
pub const ROLLUP_TIME_BYTES: usize = 8;

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HistoryError {
    #[error("unknown metric {0:?}")]
    UnknownMetric(String),
    #[error("{0}")]
    InvalidRange(String),
}

/// A metric's history over a time range.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct History {
    pub metric: String,
    /// Oldest first.
    pub points: Vec<HistoryPoint>,
    /// Width of one point, seconds.
    pub resolution_secs: f64,
    /// "full" (every sample) or "rollup" (`rollup_secs` buckets).
    pub tier: String,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct HistoryPoint {
    /// Start of the point's time span (RFC 3339, UTC).
    pub t: String,
    pub unix: f64,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
    /// Samples merged into this point.
    pub samples: u32,
}

// ---------------------------------------------------------------------------
// History store (two tiers)
// ---------------------------------------------------------------------------

/// One tier-2 bucket of one metric. `count == 0`: no sample.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    min: f32,
    avg: f32,
    max: f32,
    count: u32,
}

const EMPTY_BUCKET: Bucket = Bucket { min: f32::NAN, avg: f32::NAN, max: f32::NAN, count: 0 };

struct Series {
    /// Tier 1, aligned with `HistoryStore::times`; NaN = no sample.
    full: VecDeque<f32>,
    /// Tier 2, aligned with `HistoryStore::bucket_starts`.
    rollup: VecDeque<Bucket>,
    /// Exact sum of the open (last) bucket, for its average.
    open_sum: f64,
    last_seen: f64,
}

/// Fixed per-metric overhead beyond the rings: the map entry and the name.
pub(super) const SERIES_OVERHEAD: usize = std::mem::size_of::<(String, Series)>() + 32;

pub(super) struct HistoryStore {
    interval_secs: f64,
    full_secs: f64,
    rollup_secs: f64,
    /// Forget a metric not seen for this long.
    forget_after_secs: f64,
    cap_full: usize,
    cap_rollup: usize,
    times: VecDeque<f64>,
    bucket_starts: VecDeque<f64>,
    series: BTreeMap<String, Series>,
    warned_full: bool,
}

/// Pushes `v`, dropping the oldest element at `cap`, growing with exact
/// reservations so capacity never exceeds `cap`.
fn push_bounded<T>(q: &mut VecDeque<T>, cap: usize, v: T) {
    if q.len() >= cap {
        q.pop_front();
    } else if q.len() == q.capacity() {
        let target = q.capacity().saturating_mul(2).max(16).min(cap);
        q.reserve_exact(target.saturating_sub(q.len()).max(1));
    }
    q.push_back(v);
}

pub(super) fn history_bound_bytes(cap_full: usize, cap_rollup: usize, metrics: usize, names_bytes: usize) -> usize {
    let shared = cap_full.saturating_mul(FULL_TIME_BYTES).saturating_add(cap_rollup.saturating_mul(ROLLUP_TIME_BYTES));
    let per_metric = cap_full
        .saturating_mul(FULL_POINT_BYTES)
        .saturating_add(cap_rollup.saturating_mul(ROLLUP_BUCKET_BYTES))
        .saturating_add(SERIES_OVERHEAD);
    shared.saturating_add(per_metric.saturating_mul(metrics)).saturating_add(names_bytes)
}

struct RawPoint {
    t: f64,
    min: f64,
    avg: f64,
    max: f64,
    n: u32,
}

impl HistoryStore {
    /// Seconds: sample interval, full-resolution window, rollup bucket,
    /// rollup retention; then the two tiers' capacities in points.
    pub(super) fn new(secs: [u64; 4], cap_full: usize, cap_rollup: usize) -> Self {
        let [interval, full, rollup, retention] = secs;
        HistoryStore {
            interval_secs: interval as f64,
            full_secs: full as f64,
            rollup_secs: rollup.max(1) as f64,
            forget_after_secs: full.max(retention) as f64,
            cap_full,
            cap_rollup,
            times: VecDeque::new(),
            bucket_starts: VecDeque::new(),
            series: BTreeMap::new(),
            warned_full: false,
        }
    }

    pub(super) fn record(&mut self, t: f64, values: &[(String, f64)]) {
        if !t.is_finite() {
            return;
        }
        if let Some(&last) = self.times.back() {
            if t < last - self.interval_secs.max(1.0) {
                tracing::warn!(from = last, to = t, "wall clock went backwards: metric history cleared");
                self.times.clear();
                self.bucket_starts.clear();
                self.series.clear();
            } else if t <= last {
                return;
            }
        }
        let bucket_start = (t / self.rollup_secs).floor() * self.rollup_secs;
        let new_bucket = self.bucket_starts.back() != Some(&bucket_start);
        if new_bucket {
            push_bounded(&mut self.bucket_starts, self.cap_rollup, bucket_start);
        }
        push_bounded(&mut self.times, self.cap_full, t);
        for s in self.series.values_mut() {
            if new_bucket {
                push_bounded(&mut s.rollup, self.cap_rollup, EMPTY_BUCKET);
                s.open_sum = 0.0;
            }
            push_bounded(&mut s.full, self.cap_full, f32::NAN);
        }

        for (name, v) in values {
            if !v.is_finite() {
                continue;
            }
            if !self.series.contains_key(name) {
                if self.series.len() >= MAX_METRICS {
                    if !self.warned_full {
                        tracing::warn!(metric = %name, max = MAX_METRICS, "too many metrics: further ones get no history");
                        self.warned_full = true;
                    }
                    continue;
                }
                let mut full = VecDeque::new();
                full.reserve_exact(self.times.len());
                full.extend(std::iter::repeat_n(f32::NAN, self.times.len()));
                let mut rollup = VecDeque::new();
                rollup.reserve_exact(self.bucket_starts.len());
                rollup.extend(std::iter::repeat_n(EMPTY_BUCKET, self.bucket_starts.len()));
                self.series.insert(name.clone(), Series { full, rollup, open_sum: 0.0, last_seen: t });
            }
            let Some(s) = self.series.get_mut(name) else { continue };
            if let Some(slot) = s.full.back_mut() {
                *slot = *v as f32;
            }
            if let Some(b) = s.rollup.back_mut() {
                let v32 = *v as f32;
                b.count = b.count.saturating_add(1);
                s.open_sum += v;
                b.avg = (s.open_sum / f64::from(b.count)) as f32;
                b.min = if b.count == 1 { v32 } else { b.min.min(v32) };
                b.max = if b.count == 1 { v32 } else { b.max.max(v32) };
            }
            s.last_seen = t;
        }
        let horizon = t - self.forget_after_secs;
        self.series.retain(|_, s| s.last_seen >= horizon);
    }

    pub(super) fn query(
        &self,
        metric: &str,
        from: f64,
        to: f64,
        now: f64,
        max_points: usize,
    ) -> Result<History, HistoryError> {
        if max_points == 0 || max_points > MAX_HISTORY_POINTS {
            return Err(HistoryError::InvalidRange(format!(
                "max_points {max_points} out of range (1-{MAX_HISTORY_POINTS})"
            )));
        }
        if from >= to {
            return Err(HistoryError::InvalidRange(format!(
                "from ({}) must be before to ({})",
                rfc3339(from),
                rfc3339(to)
            )));
        }
        if to > now + self.interval_secs {
            return Err(HistoryError::InvalidRange(format!("to ({}) is in the future", rfc3339(to))));
        }
        let series = self.series.get(metric).ok_or_else(|| HistoryError::UnknownMetric(metric.to_owned()))?;

        let use_full = now - from <= self.full_secs;
        let raw: Vec<RawPoint> = if use_full {
            self.times
                .iter()
                .zip(series.full.iter())
                .filter(|(t, v)| **t >= from && **t <= to && v.is_finite())
                .map(|(t, v)| {
                    let v = widen(*v);
                    RawPoint { t: *t, min: v, avg: v, max: v, n: 1 }
                })
                .collect()
        } else {
            self.bucket_starts
                .iter()
                .zip(series.rollup.iter())
                .filter(|(t, b)| b.count > 0 && **t + self.rollup_secs > from && **t <= to)
                .map(|(t, b)| RawPoint { t: *t, min: widen(b.min), avg: widen(b.avg), max: widen(b.max), n: b.count })
                .collect()
        };
        let native = if use_full { self.interval_secs } else { self.rollup_secs };
        let (points, resolution_secs) = downsample(raw, max_points, native);
        Ok(History {
            metric: metric.to_owned(),
            points,
            resolution_secs,
            tier: if use_full { "full" } else { "rollup" }.to_owned(),
        })
    }

    /// The metrics with history, sorted.
    pub(super) fn metric_names(&self) -> Vec<String> {
        self.series.keys().cloned().collect()
    }

    fn names_bytes(&self) -> usize {
        self.series.keys().map(String::len).sum()
    }

    pub(super) fn memory_bytes(&self) -> usize {
        let shared = self.times.capacity() * FULL_TIME_BYTES + self.bucket_starts.capacity() * ROLLUP_TIME_BYTES;
        let per: usize = self
            .series
            .values()
            .map(|s| s.full.capacity() * FULL_POINT_BYTES + s.rollup.capacity() * ROLLUP_BUCKET_BYTES + SERIES_OVERHEAD)
            .sum();
        shared + per + self.names_bytes()
    }

    pub(super) fn memory_bytes_at_full_retention(&self) -> usize {
        history_bound_bytes(self.cap_full, self.cap_rollup, self.series.len(), self.names_bytes())
    }
}

/// Merges `raw` (oldest first) into at most `max_points` equal-width buckets
/// spanning the data: min of mins, sample-weighted average, max of maxes.
fn downsample(raw: Vec<RawPoint>, max_points: usize, native_secs: f64) -> (Vec<HistoryPoint>, f64) {
    let to_point =
        |p: RawPoint| HistoryPoint { t: rfc3339(p.t), unix: p.t, min: p.min, avg: p.avg, max: p.max, samples: p.n };
    if raw.len() <= max_points {
        return (raw.into_iter().map(to_point).collect(), native_secs);
    }
    let (Some(first), Some(last)) = (raw.first().map(|p| p.t), raw.last().map(|p| p.t)) else {
        return (Vec::new(), native_secs);
    };
    // Each raw point covers `native_secs` from its start.
    let width = (last - first + native_secs) / max_points as f64;
    let mut merged: Vec<Option<(RawPoint, f64)>> = (0..max_points).map(|_| None).collect();
    for p in raw {
        let idx = if width > 0.0 { (((p.t - first) / width).floor() as usize).min(max_points - 1) } else { 0 };
        match &mut merged[idx] {
            Some((m, sum)) => {
                m.min = m.min.min(p.min);
                m.max = m.max.max(p.max);
                *sum += p.avg * f64::from(p.n);
                m.n = m.n.saturating_add(p.n);
            }
            slot @ None => {
                let sum = p.avg * f64::from(p.n);
                *slot = Some((RawPoint { t: first + idx as f64 * width, ..p }, sum));
            }
        }
    }
    let points = merged
        .into_iter()
        .flatten()
        .map(|(mut m, sum)| {
            if m.n > 0 {
                m.avg = sum / f64::from(m.n);
            }
            to_point(m)
        })
        .collect();
    (points, width.max(native_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- history store on synthetic values ----

    use super::super::config::SamplerConfig;

    fn small_cfg() -> SamplerConfig {
        SamplerConfig {
            interval_secs: 1,
            full_resolution_secs: 10,
            rollup_secs: 10,
            rollup_retention_secs: 100,
            ..SamplerConfig::default()
        }
    }

    fn vals(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn rollup_buckets_hold_min_avg_max() {
        let mut h = small_cfg().history_store();
        // t = 1000..1030, value = t - 1000: buckets [1000,1010) = 0..9, …
        for i in 0..30 {
            h.record(1000.0 + f64::from(i), &vals(&[("x", f64::from(i))]));
        }
        assert_eq!(h.times.len(), 10);
        assert!(h.times.capacity() <= 10);
        assert_eq!(h.bucket_starts, [1000.0, 1010.0, 1020.0]);
        let b = &h.series["x"].rollup;
        assert_eq!(b[0], Bucket { min: 0.0, avg: 4.5, max: 9.0, count: 10 });
        assert_eq!(b[2], Bucket { min: 20.0, avg: 24.5, max: 29.0, count: 10 });

        // now = 1029: from 1025 is within 10 s → full tier, 5 points.
        let full = h.query("x", 1025.0, 1029.0, 1029.0, 100).unwrap();
        assert_eq!(full.tier, "full");
        assert_eq!(full.points.iter().map(|p| p.avg).collect::<Vec<_>>(), [25.0, 26.0, 27.0, 28.0, 29.0]);
        // from 1000 is older → rollup tier, 3 buckets.
        let roll = h.query("x", 1000.0, 1029.0, 1029.0, 100).unwrap();
        assert_eq!(roll.tier, "rollup");
        assert_eq!(roll.resolution_secs, 10.0);
        assert_eq!(roll.points.iter().map(|p| p.avg).collect::<Vec<_>>(), [4.5, 14.5, 24.5]);
        assert_eq!(roll.points[1].min, 10.0);
        assert_eq!(roll.points[1].max, 19.0);
        assert_eq!(roll.points[1].samples, 10);
        // Downsampled to 2 points: every sample kept, min of mins, max of maxes.
        let two = h.query("x", 1000.0, 1029.0, 1029.0, 2).unwrap();
        assert_eq!(two.points.len(), 2);
        assert_eq!(two.points.iter().map(|p| p.samples).sum::<u32>(), 30);
        assert_eq!(two.points[0].min, 0.0);
        assert_eq!(two.points[1].max, 29.0);
        assert_eq!(two.points[0].avg, 9.5); // buckets 0 and 1: (4.5·10 + 14.5·10) / 20
        assert_eq!(two.points[0].samples, 20);
        assert_eq!(two.points[1].avg, 24.5);
        assert_eq!(two.resolution_secs, 15.0);
    }

    #[test]
    fn downsample_weights_by_samples() {
        let raw = vec![
            RawPoint { t: 0.0, min: 1.0, avg: 2.0, max: 3.0, n: 1 },
            RawPoint { t: 1.0, min: 0.0, avg: 5.0, max: 9.0, n: 3 },
            RawPoint { t: 2.0, min: 4.0, avg: 4.0, max: 4.0, n: 2 },
        ];
        let (points, res) = downsample(raw, 1, 1.0);
        assert_eq!(points.len(), 1);
        let p = &points[0];
        assert_eq!((p.min, p.max, p.samples), (0.0, 9.0, 6));
        assert!((p.avg - (2.0 + 15.0 + 8.0) / 6.0).abs() < 1e-12);
        assert_eq!(res, 3.0);
        let raw: Vec<RawPoint> =
            (0..100).map(|i| RawPoint { t: f64::from(i), min: 1.0, avg: 1.0, max: 1.0, n: 1 }).collect();
        let (points, _) = downsample(raw, 7, 1.0);
        assert!(points.len() <= 7);
        assert_eq!(points.iter().map(|p| p.samples).sum::<u32>(), 100);
    }

    #[test]
    fn history_gaps_late_metrics_and_forgetting() {
        let mut h = small_cfg().history_store();
        h.record(1000.0, &vals(&[("a", 1.0)]));
        h.record(1001.0, &vals(&[("a", 2.0), ("b", 7.0)]));
        h.record(1002.0, &vals(&[("a", f64::NAN)]));
        let b = h.query("b", 995.0, 1002.0, 1002.0, 100).unwrap();
        assert_eq!(b.points.len(), 1);
        assert_eq!(b.points[0].unix, 1001.0);
        let a = h.query("a", 995.0, 1002.0, 1002.0, 100).unwrap();
        assert_eq!(a.points.len(), 2, "NaN is not a point");
        // Not seen for longer than both retentions (100 s): forgotten.
        h.record(1200.0, &vals(&[("a", 1.0)]));
        assert!(h.series.contains_key("a"));
        assert!(!h.series.contains_key("b"));
        // Clock going back more than an interval clears history.
        h.record(900.0, &vals(&[("a", 1.0)]));
        assert_eq!(h.times.len(), 1);
    }

    #[test]
    fn metric_count_is_bounded() {
        let mut h = small_cfg().history_store();
        let many: Vec<(String, f64)> = (0..MAX_METRICS + 100).map(|i| (format!("m{i:04}"), 1.0)).collect();
        h.record(1000.0, &many);
        assert_eq!(h.series.len(), MAX_METRICS);
        assert!(h.warned_full);
    }

    #[test]
    fn memory_bound_numbers() {
        // Defaults: 720 full points, 1440 buckets.
        let cfg = SamplerConfig::default();
        assert_eq!((cfg.full_capacity(), cfg.rollup_capacity()), (720, 1440));
        assert_eq!(history_bound_bytes(720, 1440, 0, 0), 720 * 8 + 1440 * 8);
        assert_eq!(
            history_bound_bytes(720, 1440, 1, 0) - history_bound_bytes(720, 1440, 0, 0),
            25_920 + SERIES_OVERHEAD
        );
        // Worst case at MAX_METRICS stays under 14 MiB.
        assert!(history_bound_bytes(720, 1440, MAX_METRICS, MAX_METRICS * 64) < 14 << 20);

        // Filled past capacity, the rings never exceed the bound.
        let mut h = small_cfg().history_store();
        for i in 0..2000 {
            h.record(1000.0 + f64::from(i), &vals(&[("a", 1.0), ("bb", 2.0)]));
        }
        assert_eq!(h.series["a"].full.len(), 10);
        assert_eq!(h.series["a"].rollup.len(), 10);
        assert!(h.memory_bytes() <= h.memory_bytes_at_full_retention());
        assert_eq!(h.memory_bytes_at_full_retention(), 10 * 8 + 10 * 8 + 2 * (10 * 4 + 10 * 16 + SERIES_OVERHEAD) + 3);
    }

    #[test]
    fn push_bounded_never_grows_past_cap() {
        let mut q = VecDeque::new();
        for i in 0..1000 {
            push_bounded(&mut q, 720, i);
            assert!(q.capacity() <= 720 || q.len() == 720, "cap {} at len {}", q.capacity(), q.len());
        }
        assert_eq!(q.len(), 720);
        assert_eq!(q.front(), Some(&280));
    }
}
