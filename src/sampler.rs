//! Background metric sampling, history ring buffers and alert rules.
//!
//! One tokio task refreshes the host's metrics every `interval_secs` (the
//! blocking `/proc` reads run on tokio's blocking pool) and publishes an
//! immutable [`Snapshot`] behind an `RwLock<Arc<_>>`. Tool calls only clone
//! that `Arc` ([`Sampler::latest`]): no refresh ever runs in a request.
//!
//! Sources: the `sysinfo` crate for CPU, memory, processes, networks, users
//! and temperature sensors; `/proc` directly for what it lacks:
//! `/proc/loadavg`, `/proc/pressure/{cpu,memory,io}` (PSI),
//! `/proc/diskstats` (per-disk IO rates), `/proc/self/mounts` plus
//! `statvfs(3)` (sizes and inodes) and `/proc/PID/stat` (fresh command name and
//! thread count).
//!
//! # History
//!
//! Every sample records the metrics listed by [`Sampler::metric_names`] (see
//! [`metric_values`] for the naming) in two tiers:
//!
//! - tier 1 ("full"): every sample for `full_resolution_secs`
//!   (`full_resolution_secs / interval_secs` points), 4 bytes (`f32`) per
//!   metric and point plus 8 bytes (`f64` time) per point shared by all metrics;
//! - tier 2 ("rollup"): `rollup_secs`-wide buckets (min/avg/max/count) for
//!   `rollup_retention_secs` (`rollup_retention_secs / rollup_secs` buckets),
//!   16 bytes per metric and bucket plus 8 bytes per bucket shared.
//!
//! With the defaults that is 720 × 4 + 1440 × 16 = 25 920 bytes per metric
//! plus 17 280 bytes shared; at most [`MAX_METRICS`] metrics are kept, so the
//! worst case is about 13 MiB. Rings are grown with exact reservations and
//! never beyond their capacity, so
//! [`Sampler::history_memory_bytes_at_full_retention`] is a real bound (plus
//! allocator slack). A metric that has not been seen for longer than both
//! retentions (an interface or mount that went away) is forgotten.
//!
//! # Alerts
//!
//! Each rule is evaluated on every sample, for each concrete metric it matches
//! (a rule's metric may hold one `*` segment: `disk.*.used_percent` matches
//! `disk./.used_percent`, `disk./var.used_percent`, …). Condition true →
//! pending; still true `for_secs` later → firing (at once when `for_secs` is
//! 0); false while pending → dropped without an event; false while firing (or
//! the metric gone) → resolved. Pending, firing and resolved each produce an
//! [`AlertEvent`].
//!
//! Built-in rules (when `default_alerts`; a configured rule with the same name
//! replaces the built-in one):
//!
//! | name | metric | condition | for | severity |
//! |---|---|---|---|---|
//! | `cpu_high` | `cpu.usage_percent` | > 90 | 300 s | warning |
//! | `memory_high` | `memory.used_percent` | > 90 | 300 s | warning |
//! | `swap_high` | `swap.used_percent` | > 80 | 300 s | warning |
//! | `disk_full` | `disk.*.used_percent` | > 90 | 0 s | critical |
//! | `load_high` | `load.5` | > 2 × logical cores | 600 s | warning |
//! | `memory_pressure` | `psi.memory.some.avg10` | > 20 | 120 s | warning |
//! | `io_pressure` | `psi.io.some.avg10` | > 30 | 120 s | warning |

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sysinfo::{Components, Networks, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind, Users};
use tokio_util::sync::CancellationToken;

/// Most metrics kept in history; further ones are dropped (one warning).
pub const MAX_METRICS: usize = 512;
/// Most points one [`Sampler::history`] answer may hold.
pub const MAX_HISTORY_POINTS: usize = 1000;
/// Most resolved alerts kept in [`AlertsView::recently_resolved`].
pub const MAX_RESOLVED_ALERTS: usize = 100;
/// Bytes per metric and tier-1 point (`f32` value).
pub const FULL_POINT_BYTES: usize = 4;
/// Bytes per tier-1 point shared by all metrics (`f64` time).
pub const FULL_TIME_BYTES: usize = 8;
/// Bytes per metric and tier-2 bucket (`f32` min, avg, max and `u32` count).
pub const ROLLUP_BUCKET_BYTES: usize = 16;
const _: () = assert!(std::mem::size_of::<Bucket>() == ROLLUP_BUCKET_BYTES);
/// Bytes per tier-2 bucket shared by all metrics (`f64` bucket start).
pub const ROLLUP_TIME_BYTES: usize = 8;
/// Largest history (at [`MAX_METRICS`] metrics) a configuration may ask for.
pub const MAX_HISTORY_BYTES: usize = 256 << 20;
/// Longest `for_secs` of an alert rule (7 days).
pub const MAX_FOR_SECS: u64 = 7 * 86_400;
/// Delay between the priming refresh and the first published sample, so CPU
/// percentages of the first sample are meaningful.
const PRIME_DELAY: Duration = Duration::from_millis(200);
/// How long one `statvfs` of a network filesystem may take before the mount
/// is skipped (until that call returns).
const NETWORK_FS_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the uid → user name table is re-read at most.
const USERS_REFRESH: Duration = Duration::from_secs(60);
/// diskstats counts 512-byte sectors whatever the device's sector size.
const SECTOR_BYTES: f64 = 512.0;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// `[sampler]` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SamplerConfig {
    /// Seconds between samples (1-3600). Default 5.
    pub interval_secs: u64,
    /// Tier 1 keeps every sample this long. Default 3600.
    pub full_resolution_secs: u64,
    /// Tier 2 bucket width (min/avg/max). Default 60.
    pub rollup_secs: u64,
    /// Tier 2 retention. Default 86400.
    pub rollup_retention_secs: u64,
    /// Include the built-in alert rules (see the module docs). Default true.
    pub default_alerts: bool,
    /// Extra alert rules (one with a built-in rule's name replaces it).
    pub alerts: Vec<AlertRule>,
    /// Most processes kept in a snapshot (the busiest by CPU, then memory). Default 4096.
    pub max_processes: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            interval_secs: 5,
            full_resolution_secs: 3600,
            rollup_secs: 60,
            rollup_retention_secs: 86_400,
            default_alerts: true,
            alerts: Vec::new(),
            max_processes: 4096,
        }
    }
}

impl SamplerConfig {
    /// Checks ranges, the history memory bound and the alert rules.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3600).contains(&self.interval_secs) {
            return Err(format!("sampler.interval_secs {} out of range (1-3600)", self.interval_secs));
        }
        if self.full_resolution_secs < self.interval_secs {
            return Err(format!(
                "sampler.full_resolution_secs {} is shorter than interval_secs {}",
                self.full_resolution_secs, self.interval_secs
            ));
        }
        if self.rollup_secs < self.interval_secs {
            return Err(format!(
                "sampler.rollup_secs {} is shorter than interval_secs {}",
                self.rollup_secs, self.interval_secs
            ));
        }
        if self.rollup_retention_secs < self.full_resolution_secs.max(self.rollup_secs) {
            return Err(format!(
                "sampler.rollup_retention_secs {} is shorter than full_resolution_secs or rollup_secs",
                self.rollup_retention_secs
            ));
        }
        let bound = history_bound_bytes(self.full_capacity(), self.rollup_capacity(), MAX_METRICS, 0);
        if bound > MAX_HISTORY_BYTES {
            return Err(format!(
                "sampler history would need up to {} MiB (limit {} MiB): raise interval_secs/rollup_secs or shorten the retentions",
                bound >> 20,
                MAX_HISTORY_BYTES >> 20
            ));
        }
        if !(1..=1_000_000).contains(&self.max_processes) {
            return Err(format!("sampler.max_processes {} out of range (1-1000000)", self.max_processes));
        }
        let mut names = BTreeSet::new();
        for rule in &self.alerts {
            rule.validate()?;
            if !names.insert(rule.name.as_str()) {
                return Err(format!("sampler.alerts: rule name {:?} appears twice", rule.name));
            }
        }
        Ok(())
    }

    fn full_capacity(&self) -> usize {
        usize::try_from(self.full_resolution_secs / self.interval_secs.max(1)).unwrap_or(usize::MAX).max(1)
    }

    fn rollup_capacity(&self) -> usize {
        usize::try_from(self.rollup_retention_secs / self.rollup_secs.max(1)).unwrap_or(usize::MAX).max(1)
    }
}

// ---------------------------------------------------------------------------
// Alert rules
// ---------------------------------------------------------------------------

/// One alert rule.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique rule name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Metric name as in `metrics_history`; may hold one `*` segment, e.g. `disk.*.used_percent`.
    /// `*` matches any non-empty text, dots and slashes included (mount points hold them).
    pub metric: String,
    /// How the value is compared with the threshold.
    pub comparator: Comparator,
    /// Threshold the value is compared with.
    pub threshold: f64,
    /// Seconds the condition must hold before the alert fires (0 = at once).
    #[serde(default)]
    pub for_secs: u64,
    /// Severity of the alert.
    #[serde(default)]
    pub severity: Severity,
}

/// Comparison of a metric's value with a rule's threshold.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
pub enum Comparator {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Comparator {
    fn holds(self, value: f64, threshold: f64) -> bool {
        // NaN compares false with everything: a missing value never alerts.
        match self {
            Comparator::Gt => value > threshold,
            Comparator::Ge => value >= threshold,
            Comparator::Lt => value < threshold,
            Comparator::Le => value <= threshold,
        }
    }
}

/// Alert severity.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl AlertRule {
    fn validate(&self) -> Result<(), String> {
        let valid_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(valid_name) {
            return Err(format!("alert rule name {:?}: use 1-64 letters, digits, '_', '-' or '.'", self.name));
        }
        if self.metric.is_empty() || self.metric.len() > 512 || self.metric.chars().any(char::is_control) {
            return Err(format!(
                "alert rule {}: metric {:?} is empty, too long or has control characters",
                self.name, self.metric
            ));
        }
        let stars = self.metric.matches('*').count();
        if stars > 1 {
            return Err(format!("alert rule {}: metric {:?} has more than one '*'", self.name, self.metric));
        }
        if let Some(pos) = self.metric.find('*') {
            let before_ok = pos == 0 || self.metric[..pos].ends_with('.');
            let after_ok = pos + 1 == self.metric.len() || self.metric[pos + 1..].starts_with('.');
            if !before_ok || !after_ok {
                return Err(format!(
                    "alert rule {}: '*' in {:?} must be a whole segment, as in disk.*.used_percent",
                    self.name, self.metric
                ));
            }
        }
        if !self.threshold.is_finite() {
            return Err(format!("alert rule {}: threshold must be a finite number", self.name));
        }
        if self.for_secs > MAX_FOR_SECS {
            return Err(format!("alert rule {}: for_secs {} over {MAX_FOR_SECS}", self.name, self.for_secs));
        }
        Ok(())
    }

    /// The concrete metrics of `values` this rule applies to.
    fn matches(&self, metric: &str) -> bool {
        match self.metric.split_once('*') {
            None => self.metric == metric,
            Some((prefix, suffix)) => {
                metric.len() > prefix.len() + suffix.len() && metric.starts_with(prefix) && metric.ends_with(suffix)
            }
        }
    }
}

/// The built-in rules (see the module docs); `load_high`'s threshold is
/// 2 × `logical_cores`.
pub fn default_rules(logical_cores: usize) -> Vec<AlertRule> {
    let rule = |name: &str, metric: &str, threshold: f64, for_secs: u64, severity: Severity| AlertRule {
        name: name.to_owned(),
        metric: metric.to_owned(),
        comparator: Comparator::Gt,
        threshold,
        for_secs,
        severity,
    };
    let cores = u32::try_from(logical_cores.max(1)).unwrap_or(u32::MAX);
    vec![
        rule("cpu_high", "cpu.usage_percent", 90.0, 300, Severity::Warning),
        rule("memory_high", "memory.used_percent", 90.0, 300, Severity::Warning),
        rule("swap_high", "swap.used_percent", 80.0, 300, Severity::Warning),
        rule("disk_full", "disk.*.used_percent", 90.0, 0, Severity::Critical),
        rule("load_high", "load.5", 2.0 * f64::from(cores), 600, Severity::Warning),
        rule("memory_pressure", "psi.memory.some.avg10", 20.0, 120, Severity::Warning),
        rule("io_pressure", "psi.io.some.avg10", 30.0, 120, Severity::Warning),
    ]
}

/// Built-in rules (if enabled) with configured ones replacing same-named
/// built-ins, then the other configured rules in order.
fn effective_rules(cfg: &SamplerConfig, logical_cores: usize) -> Vec<AlertRule> {
    let mut rules = if cfg.default_alerts { default_rules(logical_cores) } else { Vec::new() };
    for extra in &cfg.alerts {
        match rules.iter_mut().find(|r| r.name == extra.name) {
            Some(slot) => *slot = extra.clone(),
            None => rules.push(extra.clone()),
        }
    }
    rules
}

// ---------------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------------

/// One sample of the host.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Snapshot {
    /// When the sample was taken (RFC 3339, UTC).
    pub taken_at: String,
    /// Same, Unix seconds.
    pub taken_unix: f64,
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub uptime_secs: u64,
    pub boot_time_unix: u64,
    /// Load averages from /proc/loadavg.
    pub load: LoadAvg,
    pub cpu: CpuSnapshot,
    pub memory: MemorySnapshot,
    /// Mounted filesystems (pseudo filesystems left out).
    pub disks: Vec<DiskSnapshot>,
    pub networks: Vec<NetSnapshot>,
    /// Pressure stall information; `None` when the kernel has no PSI (see `pressure_note`).
    pub pressure: Option<Pressure>,
    /// Why `pressure` is missing.
    pub pressure_note: Option<String>,
    pub temperatures: Vec<Temperature>,
    /// Why `temperatures` is empty.
    pub temperatures_note: Option<String>,
    /// Processes sorted by pid; at most `max_processes` (the busiest by CPU, then memory).
    pub processes: Vec<ProcessSample>,
    /// How long taking this sample took, milliseconds.
    pub sample_duration_ms: f64,
}

/// Load averages (runnable + uninterruptible tasks).
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CpuSnapshot {
    /// CPU model (brand string).
    pub model: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    /// Busy share of all cores since the previous sample, percent.
    pub usage_percent: f64,
    /// Same per logical core.
    pub per_core_percent: Vec<f64>,
}

/// Memory in bytes.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MemorySnapshot {
    /// MemTotal.
    pub total: u64,
    /// `total - available`: memory not reclaimable without swapping (page cache excluded).
    pub used: u64,
    /// MemAvailable: estimate of memory available for new work without swapping.
    pub available: u64,
    /// MemFree: entirely unused memory.
    pub free: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    /// `used / total`, percent.
    pub used_percent: f64,
    /// `swap_used / swap_total`, percent (0 without swap).
    pub swap_used_percent: f64,
}

/// One mounted filesystem.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DiskSnapshot {
    pub mount_point: String,
    /// Source as in /proc/self/mounts (`/dev/vda1`, `overlay`, `tmpfs`, `server:/export`).
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    /// `total - free` (blocks reserved for root count as used).
    pub used_bytes: u64,
    /// Free for unprivileged users.
    pub available_bytes: u64,
    /// `used / (used + available)`, percent, as `df` shows it.
    pub used_percent: f64,
    pub inodes_total: u64,
    pub inodes_used: u64,
    /// `None` when the filesystem has no fixed inode count (btrfs, tmpfs on some kernels…).
    pub inodes_used_percent: Option<f64>,
    /// `None` when the device is not in /proc/diskstats (tmpfs, overlay, network).
    pub read_bytes_per_sec: Option<f64>,
    pub write_bytes_per_sec: Option<f64>,
}

/// One network interface.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NetSnapshot {
    pub interface: String,
    /// Counters since the interface came up.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Rates since the previous sample.
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

/// Pressure stall information (/proc/pressure).
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct Pressure {
    pub cpu: PsiResource,
    pub memory: PsiResource,
    pub io: PsiResource,
}

#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct PsiResource {
    /// Share of time at least one task stalled.
    pub some: PsiLine,
    /// Share of time all non-idle tasks stalled (absent for cpu on older kernels).
    pub full: Option<PsiLine>,
}

#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct PsiLine {
    /// Percent over the last 10 s.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Total stall time, microseconds.
    pub total_us: u64,
}

/// One temperature sensor.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Temperature {
    pub label: String,
    pub celsius: f64,
    pub critical_celsius: Option<f64>,
}

/// One process.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ProcessSample {
    pub pid: u32,
    pub ppid: Option<u32>,
    /// Command name (/proc/PID/comm).
    pub name: String,
    /// Raw command line (not redacted: tools redact before showing it).
    pub cmdline: Vec<String>,
    pub exe: Option<String>,
    /// User name of the real uid.
    pub user: Option<String>,
    pub uid: Option<u32>,
    /// Runnable, Sleeping, Idle, Zombie, …
    pub state: String,
    /// CPU since the previous sample, percent of one core.
    pub cpu_percent: f64,
    /// Resident set size, bytes.
    pub memory_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_unix: u64,
    pub threads: Option<u32>,
}

// ---------------------------------------------------------------------------
// History and alert views
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

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AlertsView {
    pub firing: Vec<Alert>,
    pub pending: Vec<Alert>,
    /// Newest first, at most 100.
    pub recently_resolved: Vec<Alert>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Alert {
    pub rule: String,
    /// Concrete metric (wildcard expanded).
    pub metric: String,
    pub severity: Severity,
    pub state: AlertState,
    /// Latest value seen (the value at resolution for resolved alerts).
    pub value: f64,
    pub threshold: f64,
    pub comparator: Comparator,
    pub pending_since: String,
    pub fired_at: Option<String>,
    pub resolved_at: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Pending,
    Firing,
    Resolved,
}

/// An alert state change.
#[derive(Clone, Debug, Serialize)]
pub struct AlertEvent {
    pub alert: Alert,
    pub previous: Option<AlertState>,
}

// ---------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------

/// The running sampler. Cheap to query from any thread.
pub struct Sampler {
    cfg: SamplerConfig,
    rules: Vec<AlertRule>,
    latest: RwLock<Arc<Snapshot>>,
    history: RwLock<HistoryStore>,
    alerts: Mutex<AlertEngine>,
    last_cost: Mutex<Duration>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

type AlertCallback = Arc<dyn Fn(&AlertEvent) + Send + Sync>;

impl Sampler {
    /// Takes the first sample before returning (a priming refresh, then the
    /// published sample ~200 ms later so CPU percentages are meaningful),
    /// then spawns the sampling task, which stops on `shutdown` or when the
    /// last `Arc<Sampler>` is dropped. `on_alert` is called for every alert
    /// state change, from the sampling task.
    pub async fn start(
        cfg: SamplerConfig,
        on_alert: AlertCallback,
        shutdown: CancellationToken,
    ) -> Result<Arc<Sampler>, String> {
        cfg.validate()?;
        let max_processes = cfg.max_processes;
        let collector = tokio::task::spawn_blocking(move || {
            let mut c = Collector::new(max_processes);
            c.collect();
            c
        })
        .await
        .map_err(|e| format!("sampler: first sample failed: {e}"))?;
        tokio::time::sleep(PRIME_DELAY).await;
        let (collector, snapshot, cost) = run_collect(Some(collector), max_processes)
            .await
            .map_err(|e| format!("sampler: first sample failed: {e}"))?;

        let rules = effective_rules(&cfg, snapshot.cpu.logical_cores);
        let sampler = Arc::new(Sampler {
            history: RwLock::new(HistoryStore::new(&cfg)),
            alerts: Mutex::new(AlertEngine::new(rules.clone())),
            rules,
            latest: RwLock::new(Arc::new(snapshot.clone())),
            last_cost: Mutex::new(cost),
            cfg,
        });
        for ev in sampler.ingest(snapshot, cost) {
            on_alert(&ev);
        }

        let weak = Arc::downgrade(&sampler);
        let period = Duration::from_secs(sampler.cfg.interval_secs);
        tokio::spawn(async move {
            let mut collector = Some(collector);
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                if weak.strong_count() == 0 {
                    break;
                }
                match run_collect(collector.take(), max_processes).await {
                    Ok((c, snapshot, cost)) => {
                        collector = Some(c);
                        let Some(sampler) = weak.upgrade() else { break };
                        for ev in sampler.ingest(snapshot, cost) {
                            on_alert(&ev);
                        }
                    }
                    // A panic inside the collector: start over with a fresh one next tick.
                    Err(e) => tracing::error!(error = %e, "sampler: taking a sample failed"),
                }
            }
            tracing::debug!("sampler stopped");
        });
        Ok(sampler)
    }

    /// The latest snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The metrics [`Sampler::history`] accepts right now, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        self.history.read().unwrap_or_else(PoisonError::into_inner).series.keys().cloned().collect()
    }

    /// History of `metric` between `from` and `to`, at most `max_points`
    /// points (1-1000). Tier 1 when `from` is within `full_resolution_secs`
    /// of now, else tier 2.
    pub fn history(
        &self,
        metric: &str,
        from: SystemTime,
        to: SystemTime,
        max_points: usize,
    ) -> Result<History, HistoryError> {
        let now = unix_secs(SystemTime::now());
        self.history.read().unwrap_or_else(PoisonError::into_inner).query(
            metric,
            unix_secs(from),
            unix_secs(to),
            now,
            max_points,
        )
    }

    /// Pending, firing and recently resolved alerts.
    pub fn alerts(&self) -> AlertsView {
        self.alerts.lock().unwrap_or_else(PoisonError::into_inner).view()
    }

    /// The rules being evaluated.
    pub fn rules(&self) -> Vec<AlertRule> {
        self.rules.clone()
    }

    /// Current estimate of the memory held by history.
    pub fn history_memory_bytes(&self) -> usize {
        self.history.read().unwrap_or_else(PoisonError::into_inner).memory_bytes()
    }

    /// Memory history will hold once both tiers are full, for the current metric count.
    pub fn history_memory_bytes_at_full_retention(&self) -> usize {
        self.history.read().unwrap_or_else(PoisonError::into_inner).memory_bytes_at_full_retention()
    }

    /// How long the last refresh took.
    pub fn sample_cost(&self) -> Duration {
        *self.last_cost.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a snapshot: history, alerts, then publishes it.
    fn ingest(&self, snapshot: Snapshot, cost: Duration) -> Vec<AlertEvent> {
        let values = metric_values(&snapshot);
        let t = snapshot.taken_unix;
        self.history.write().unwrap_or_else(PoisonError::into_inner).record(t, &values);
        let map: BTreeMap<String, f64> = values.into_iter().collect();
        let events = self.alerts.lock().unwrap_or_else(PoisonError::into_inner).evaluate(t, &map);
        *self.latest.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        *self.last_cost.lock().unwrap_or_else(PoisonError::into_inner) = cost;
        events
    }
}

/// Runs one collection on the blocking pool (a fresh collector when `None`).
async fn run_collect(
    collector: Option<Collector>,
    max_processes: usize,
) -> Result<(Collector, Snapshot, Duration), tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let mut c = collector.unwrap_or_else(|| Collector::new(max_processes));
        let started = Instant::now();
        let mut snapshot = c.collect();
        let cost = started.elapsed();
        snapshot.sample_duration_ms = cost.as_secs_f64() * 1000.0;
        (c, snapshot, cost)
    })
    .await
}

/// The metrics recorded in history, with their values in `s`.
///
/// `cpu.usage_percent`, `cpu.core<N>.usage_percent`, `memory.used_percent`,
/// `memory.used_bytes`, `swap.used_percent`, `load.1`, `load.5`, `load.15`,
/// `disk.<mount>.used_percent`, `disk.<mount>.{read,write}_bytes_per_sec`
/// (when the device is in /proc/diskstats), `net.<iface>.{rx,tx}_bytes_per_sec`,
/// `psi.<cpu|memory|io>.some.avg10` and `psi.<…>.full.avg10` (when present).
pub fn metric_values(s: &Snapshot) -> Vec<(String, f64)> {
    let mut v = Vec::with_capacity(16 + s.cpu.per_core_percent.len() + 3 * s.disks.len() + 2 * s.networks.len());
    v.push(("cpu.usage_percent".to_owned(), s.cpu.usage_percent));
    for (i, p) in s.cpu.per_core_percent.iter().enumerate() {
        v.push((format!("cpu.core{i}.usage_percent"), *p));
    }
    v.push(("memory.used_percent".to_owned(), s.memory.used_percent));
    v.push(("memory.used_bytes".to_owned(), s.memory.used as f64));
    v.push(("swap.used_percent".to_owned(), s.memory.swap_used_percent));
    v.push(("load.1".to_owned(), s.load.one));
    v.push(("load.5".to_owned(), s.load.five));
    v.push(("load.15".to_owned(), s.load.fifteen));
    for d in &s.disks {
        v.push((format!("disk.{}.used_percent", d.mount_point), d.used_percent));
        if let Some(r) = d.read_bytes_per_sec {
            v.push((format!("disk.{}.read_bytes_per_sec", d.mount_point), r));
        }
        if let Some(w) = d.write_bytes_per_sec {
            v.push((format!("disk.{}.write_bytes_per_sec", d.mount_point), w));
        }
    }
    for n in &s.networks {
        v.push((format!("net.{}.rx_bytes_per_sec", n.interface), n.rx_bytes_per_sec));
        v.push((format!("net.{}.tx_bytes_per_sec", n.interface), n.tx_bytes_per_sec));
    }
    if let Some(p) = &s.pressure {
        for (name, r) in [("cpu", &p.cpu), ("memory", &p.memory), ("io", &p.io)] {
            v.push((format!("psi.{name}.some.avg10"), r.some.avg10));
            if let Some(full) = &r.full {
                v.push((format!("psi.{name}.full.avg10"), full.avg10));
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Collector: sysinfo + /proc
// ---------------------------------------------------------------------------

/// Facts that do not change while running.
struct StaticInfo {
    os_name: String,
    os_version: String,
    kernel: String,
    arch: String,
}

/// Holds sysinfo's state and the previous counters between samples.
struct Collector {
    sys: System,
    networks: Networks,
    components: Components,
    users: Users,
    users_read: Instant,
    info: StaticInfo,
    max_processes: usize,
    /// Previous diskstats sector counters by device name, and when read.
    prev_disk: HashMap<String, (u64, u64)>,
    prev_disk_at: Option<Instant>,
    /// Previous interface byte counters, and when read.
    prev_net: HashMap<String, (u64, u64)>,
    prev_net_at: Option<Instant>,
    /// Network mounts whose statvfs is still stuck (flag set when it returns).
    stuck_mounts: HashMap<String, Arc<AtomicBool>>,
}

impl Collector {
    fn new(max_processes: usize) -> Self {
        // sysinfo would otherwise keep a /proc/PID/stat descriptor open per
        // process (up to half the fd limit): the server needs those fds more.
        sysinfo::set_open_files_limit(0);
        Collector {
            sys: System::new(),
            networks: Networks::new_with_refreshed_list(),
            components: Components::new_with_refreshed_list(),
            users: Users::new_with_refreshed_list(),
            users_read: Instant::now(),
            info: StaticInfo {
                os_name: System::name().unwrap_or_else(|| "Linux".to_owned()),
                os_version: System::os_version().unwrap_or_default(),
                kernel: System::kernel_version().unwrap_or_default(),
                arch: System::cpu_arch(),
            },
            max_processes,
            prev_disk: HashMap::new(),
            prev_disk_at: None,
            prev_net: HashMap::new(),
            prev_net_at: None,
            stuck_mounts: HashMap::new(),
        }
    }

    fn collect(&mut self) -> Snapshot {
        let started = Instant::now();
        let now = SystemTime::now();
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();

        let cpu = CpuSnapshot {
            model: self.sys.cpus().first().map(|c| c.brand().trim().to_owned()).unwrap_or_default(),
            physical_cores: System::physical_core_count(),
            logical_cores: self.sys.cpus().len(),
            usage_percent: widen(self.sys.global_cpu_usage()),
            per_core_percent: self.sys.cpus().iter().map(|c| widen(c.cpu_usage())).collect(),
        };

        let total = self.sys.total_memory();
        let available = self.sys.available_memory();
        let used = total.saturating_sub(available);
        let swap_total = self.sys.total_swap();
        let swap_used = swap_total.saturating_sub(self.sys.free_swap());
        let memory = MemorySnapshot {
            total,
            used,
            available,
            free: self.sys.free_memory(),
            swap_total,
            swap_used,
            used_percent: percent(used, total),
            swap_used_percent: percent(swap_used, swap_total),
        };

        let load = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| parse_loadavg(&s)).unwrap_or_else(|| {
            let l = System::load_average();
            LoadAvg { one: l.one, five: l.five, fifteen: l.fifteen }
        });

        let (pressure, pressure_note) = read_pressure();
        let disks = self.disks();
        let networks = self.networks();
        let (temperatures, temperatures_note) = self.temperatures();
        let processes = self.processes();

        let taken_unix = unix_secs(now);
        Snapshot {
            taken_at: rfc3339(taken_unix),
            taken_unix,
            hostname: System::host_name().unwrap_or_default(),
            os_name: self.info.os_name.clone(),
            os_version: self.info.os_version.clone(),
            kernel: self.info.kernel.clone(),
            arch: self.info.arch.clone(),
            uptime_secs: System::uptime(),
            boot_time_unix: System::boot_time(),
            load,
            cpu,
            memory,
            disks,
            networks,
            pressure,
            pressure_note,
            temperatures,
            temperatures_note,
            processes,
            sample_duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    fn disks(&mut self) -> Vec<DiskSnapshot> {
        let stats_text = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
        let stats = parse_diskstats(&stats_text);
        let now = Instant::now();
        let elapsed = self.prev_disk_at.map(|t| now.duration_since(t).as_secs_f64()).filter(|d| *d > 0.0);
        let rate = |name: &str, prev: &HashMap<String, (u64, u64)>, cur: (u64, u64)| -> (Option<f64>, Option<f64>) {
            match (prev.get(name), elapsed) {
                (Some(p), Some(dt)) => (
                    Some(cur.0.saturating_sub(p.0) as f64 * SECTOR_BYTES / dt),
                    Some(cur.1.saturating_sub(p.1) as f64 * SECTOR_BYTES / dt),
                ),
                _ => (None, None),
            }
        };

        let mounts_text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut out = Vec::new();
        for m in parse_mounts(&mounts_text) {
            let network = is_network_fs(&m.fs_type);
            let mut dev_id = None;
            if !network {
                // Skips mount points that are files (bind-mounted /etc/hosts…).
                match rustix::fs::stat(m.mount_point.as_str()) {
                    Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => {
                        dev_id = Some((rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)));
                    }
                    _ => continue,
                }
            }
            let Some(vfs) = self.statvfs(&m.mount_point, network) else { continue };
            let frsize = if vfs.f_frsize > 0 { vfs.f_frsize } else { vfs.f_bsize };
            let total_bytes = vfs.f_blocks.saturating_mul(frsize);
            if total_bytes == 0 {
                continue;
            }
            let used_bytes = vfs.f_blocks.saturating_sub(vfs.f_bfree).saturating_mul(frsize);
            let available_bytes = vfs.f_bavail.saturating_mul(frsize);
            let inodes_used = vfs.f_files.saturating_sub(vfs.f_ffree);

            // The device in diskstats: by the source's name (symlinks such as
            // /dev/mapper/x or /dev/disk/by-uuid/… resolved), else by the
            // mount's device number (covers /dev/root).
            let by_name = m
                .device
                .starts_with("/dev/")
                .then(|| std::fs::canonicalize(&m.device).ok())
                .flatten()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| stats.by_name.contains_key(n));
            let dev_name = by_name.or_else(|| dev_id.and_then(|id| stats.by_id.get(&id).cloned()));
            let (read_bytes_per_sec, write_bytes_per_sec) = match &dev_name {
                Some(n) => stats.by_name.get(n).map(|cur| rate(n, &self.prev_disk, *cur)).unwrap_or((None, None)),
                None => (None, None),
            };

            out.push(DiskSnapshot {
                used_percent: percent(used_bytes, used_bytes.saturating_add(available_bytes)),
                mount_point: m.mount_point,
                device: m.device,
                fs_type: m.fs_type,
                total_bytes,
                used_bytes,
                available_bytes,
                inodes_total: vfs.f_files,
                inodes_used,
                inodes_used_percent: (vfs.f_files > 0).then(|| percent(inodes_used, vfs.f_files)),
                read_bytes_per_sec,
                write_bytes_per_sec,
            });
        }
        self.prev_disk = stats.by_name;
        self.prev_disk_at = Some(now);
        out
    }

    /// statvfs; for network filesystems on a helper thread with a timeout,
    /// so a hung server stalls neither the sampler nor the next samples.
    fn statvfs(&mut self, mount_point: &str, network: bool) -> Option<rustix::fs::StatVfs> {
        if !network {
            return rustix::fs::statvfs(mount_point).ok();
        }
        if let Some(done) = self.stuck_mounts.get(mount_point) {
            if !done.load(Ordering::Acquire) {
                return None;
            }
            self.stuck_mounts.remove(mount_point);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let done = Arc::new(AtomicBool::new(false));
        let done_in_thread = done.clone();
        let path = mount_point.to_owned();
        let spawned = std::thread::Builder::new().name("tailops-statvfs".to_owned()).spawn(move || {
            let r = rustix::fs::statvfs(path.as_str()).ok();
            done_in_thread.store(true, Ordering::Release);
            let _ = tx.send(r);
        });
        if spawned.is_err() {
            return None;
        }
        match rx.recv_timeout(NETWORK_FS_TIMEOUT) {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(mount_point, "statvfs did not answer within 1 s; skipping this mount until it does");
                self.stuck_mounts.insert(mount_point.to_owned(), done);
                None
            }
        }
    }

    fn networks(&mut self) -> Vec<NetSnapshot> {
        self.networks.refresh(true);
        let now = Instant::now();
        let elapsed = self.prev_net_at.map(|t| now.duration_since(t).as_secs_f64()).filter(|d| *d > 0.0);
        let mut current = HashMap::new();
        let mut out: Vec<NetSnapshot> = self
            .networks
            .list()
            .iter()
            .map(|(name, d)| {
                let (rx, tx) = (d.total_received(), d.total_transmitted());
                current.insert(name.clone(), (rx, tx));
                let (rx_rate, tx_rate) = match (self.prev_net.get(name), elapsed) {
                    (Some(p), Some(dt)) => (rx.saturating_sub(p.0) as f64 / dt, tx.saturating_sub(p.1) as f64 / dt),
                    _ => (0.0, 0.0),
                };
                NetSnapshot {
                    interface: name.clone(),
                    rx_bytes: rx,
                    tx_bytes: tx,
                    rx_bytes_per_sec: rx_rate,
                    tx_bytes_per_sec: tx_rate,
                    rx_packets: d.total_packets_received(),
                    tx_packets: d.total_packets_transmitted(),
                    rx_errors: d.total_errors_on_received(),
                    tx_errors: d.total_errors_on_transmitted(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.interface.cmp(&b.interface));
        self.prev_net = current;
        self.prev_net_at = Some(now);
        out
    }

    fn temperatures(&mut self) -> (Vec<Temperature>, Option<String>) {
        self.components.refresh(false);
        let temps: Vec<Temperature> = self
            .components
            .list()
            .iter()
            .filter_map(|c| {
                let t = c.temperature().filter(|t| t.is_finite())?;
                Some(Temperature {
                    label: c.label().to_owned(),
                    celsius: widen(t),
                    critical_celsius: c.critical().filter(|t| t.is_finite()).map(widen),
                })
            })
            .collect();
        let note = if !temps.is_empty() {
            None
        } else if self.components.list().is_empty() {
            Some("no hardware sensors exposed (virtual machine or container)".to_owned())
        } else {
            Some("sensors are exposed but none reports a temperature".to_owned())
        };
        (temps, note)
    }

    fn processes(&mut self) -> Vec<ProcessSample> {
        let kind = ProcessRefreshKind::nothing()
            .without_tasks()
            .with_cpu()
            .with_memory()
            .with_user(UpdateKind::Always)
            .with_cmd(UpdateKind::Always)
            .with_exe(UpdateKind::Always);
        self.sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);

        let mut procs: Vec<&sysinfo::Process> =
            self.sys.processes().values().filter(|p| p.thread_kind() != Some(sysinfo::ThreadKind::Userland)).collect();
        if procs.len() > self.max_processes {
            procs.sort_by(|a, b| b.cpu_usage().total_cmp(&a.cpu_usage()).then_with(|| b.memory().cmp(&a.memory())));
            procs.truncate(self.max_processes);
        }

        // Re-read the user table when an unknown uid shows up (at most once a minute).
        let unknown_uid = procs.iter().filter_map(|p| p.user_id()).any(|u| self.users.get_user_by_id(u).is_none());
        if unknown_uid && self.users_read.elapsed() >= USERS_REFRESH {
            self.users.refresh();
            self.users_read = Instant::now();
        }

        let mut out: Vec<ProcessSample> = procs
            .into_iter()
            .map(|p| {
                let pid = p.pid().as_u32();
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
                let parsed = stat.as_deref().and_then(parse_proc_stat);
                let uid = p.user_id().map(|u| **u);
                ProcessSample {
                    pid,
                    ppid: p.parent().map(|pp| pp.as_u32()),
                    name: parsed
                        .as_ref()
                        .map(|s| s.comm.to_owned())
                        .unwrap_or_else(|| p.name().to_string_lossy().into_owned()),
                    cmdline: p.cmd().iter().map(|a| a.to_string_lossy().into_owned()).collect(),
                    exe: p.exe().map(|e| e.to_string_lossy().into_owned()),
                    user: p.user_id().and_then(|u| self.users.get_user_by_id(u)).map(|u| u.name().to_owned()),
                    uid,
                    state: p.status().to_string(),
                    cpu_percent: widen(p.cpu_usage()),
                    memory_bytes: p.memory(),
                    virtual_bytes: p.virtual_memory(),
                    start_time_unix: p.start_time(),
                    threads: parsed.and_then(|s| s.threads),
                }
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        out
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

fn unix_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn rfc3339(unix: f64) -> String {
    let secs = unix.floor();
    let nanos = ((unix - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    chrono::DateTime::from_timestamp(secs as i64, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// /proc parsers (pure)
// ---------------------------------------------------------------------------

/// `/proc/loadavg`: "0.52 0.58 0.59 1/467 12345".
fn parse_loadavg(s: &str) -> Option<LoadAvg> {
    let mut it = s.split_ascii_whitespace().map(str::parse::<f64>);
    Some(LoadAvg { one: it.next()?.ok()?, five: it.next()?.ok()?, fifteen: it.next()?.ok()? })
}

/// One `/proc/pressure/*` file.
fn parse_psi(s: &str) -> Option<PsiResource> {
    let mut some = None;
    let mut full = None;
    for line in s.lines() {
        let mut words = line.split_ascii_whitespace();
        let kind = words.next();
        let mut l = PsiLine { avg10: f64::NAN, avg60: f64::NAN, avg300: f64::NAN, total_us: 0 };
        let mut total = None;
        for w in words {
            let Some((k, v)) = w.split_once('=') else { continue };
            match k {
                "avg10" => l.avg10 = v.parse().ok()?,
                "avg60" => l.avg60 = v.parse().ok()?,
                "avg300" => l.avg300 = v.parse().ok()?,
                "total" => total = Some(v.parse().ok()?),
                _ => {}
            }
        }
        l.total_us = total?;
        if !(l.avg10.is_finite() && l.avg60.is_finite() && l.avg300.is_finite()) {
            return None;
        }
        match kind {
            Some("some") => some = Some(l),
            Some("full") => full = Some(l),
            _ => {}
        }
    }
    Some(PsiResource { some: some?, full })
}

fn read_pressure() -> (Option<Pressure>, Option<String>) {
    let read = |name: &str| -> Result<PsiResource, String> {
        let path = format!("/proc/pressure/{name}");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        parse_psi(&text).ok_or_else(|| format!("{path}: unexpected format"))
    };
    if !std::path::Path::new("/proc/pressure").is_dir() {
        return (None, Some("no /proc/pressure: the kernel lacks PSI (CONFIG_PSI, or booted with psi=0)".to_owned()));
    }
    match (read("cpu"), read("memory"), read("io")) {
        (Ok(cpu), Ok(memory), Ok(io)) => (Some(Pressure { cpu, memory, io }), None),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => (None, Some(format!("PSI unreadable: {e}"))),
    }
}

/// Sector counters from `/proc/diskstats`.
#[derive(Default)]
struct DiskStats {
    /// name → (sectors read, sectors written)
    by_name: HashMap<String, (u64, u64)>,
    /// (major, minor) → name
    by_id: HashMap<(u32, u32), String>,
}

fn parse_diskstats(s: &str) -> DiskStats {
    let mut out = DiskStats::default();
    for line in s.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Ok(major), Ok(minor), Ok(read), Ok(written)) =
            (f[0].parse::<u32>(), f[1].parse::<u32>(), f[5].parse::<u64>(), f[9].parse::<u64>())
        else {
            continue;
        };
        out.by_name.insert(f[2].to_owned(), (read, written));
        out.by_id.insert((major, minor), f[2].to_owned());
    }
    out
}

#[derive(Debug, PartialEq)]
struct Mount {
    device: String,
    mount_point: String,
    fs_type: String,
}

/// Pseudo filesystems that never hold user data.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "devtmpfs",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "fusectl",
    "configfs",
    "autofs",
    "binfmt_misc",
    "hugetlbfs",
    "nsfs",
    "rpc_pipefs",
    "selinuxfs",
    "efivarfs",
    "ramfs",
    // Read-only images (snaps): always 100 % used, would keep disk_full firing.
    "squashfs",
    "fuse.snapfuse",
];

/// Container root filesystems: overlays whose usage is the backing disk's.
const CONTAINER_MOUNT_PREFIXES: &[&str] =
    &["/var/lib/docker/", "/var/lib/containers/", "/run/containerd/", "/run/docker/", "/var/lib/containerd/"];

/// Real mounts from `/proc/self/mounts`: pseudo and container-internal
/// filesystems left out, one entry per mount point (the last, visible one).
fn parse_mounts(s: &str) -> Vec<Mount> {
    let mut by_point: BTreeMap<String, Mount> = BTreeMap::new();
    for line in s.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(point), Some(fs_type)) = (f.next(), f.next(), f.next()) else { continue };
        if PSEUDO_FS.contains(&fs_type) {
            continue;
        }
        let mount_point = unescape_mount(point);
        if fs_type == "overlay" && CONTAINER_MOUNT_PREFIXES.iter().any(|p| mount_point.starts_with(p)) {
            continue;
        }
        by_point.insert(
            mount_point.clone(),
            Mount { device: unescape_mount(device), mount_point, fs_type: fs_type.to_owned() },
        );
    }
    by_point.into_values().collect()
}

/// Undoes the octal escapes of /proc/self/mounts (`\040` space, `\011` tab, `\012`, `\134`).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = u32::from(b[i + 1] - b'0') * 64 + u32::from(b[i + 2] - b'0') * 8 + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_network_fs(fs_type: &str) -> bool {
    const NET: &[&str] =
        &["nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "davfs", "afs", "lustre", "gfs2", "ocfs2"];
    NET.contains(&fs_type) || fs_type.starts_with("fuse")
}

struct ProcStat<'a> {
    comm: &'a str,
    threads: Option<u32>,
}

/// `/proc/PID/stat`: "pid (comm) state ppid … num_threads(20) …"; comm may
/// hold spaces and parentheses, so it runs to the last ')'.
fn parse_proc_stat(s: &str) -> Option<ProcStat<'_>> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?;
    // Fields after comm start at field 3 (state); num_threads is field 20.
    let threads = s.get(close + 1..)?.split_ascii_whitespace().nth(17).and_then(|t| t.parse().ok());
    Some(ProcStat { comm, threads })
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
const SERIES_OVERHEAD: usize = std::mem::size_of::<(String, Series)>() + 32;

struct HistoryStore {
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

fn history_bound_bytes(cap_full: usize, cap_rollup: usize, metrics: usize, names_bytes: usize) -> usize {
    let shared = cap_full.saturating_mul(FULL_TIME_BYTES).saturating_add(cap_rollup.saturating_mul(ROLLUP_TIME_BYTES));
    let per_metric = cap_full
        .saturating_mul(FULL_POINT_BYTES)
        .saturating_add(cap_rollup.saturating_mul(ROLLUP_BUCKET_BYTES))
        .saturating_add(SERIES_OVERHEAD);
    shared.saturating_add(per_metric.saturating_mul(metrics)).saturating_add(names_bytes)
}

/// f32 → f64 without the binary noise (12.3f32 → 12.3, not 12.300000190734863).
fn widen(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

struct RawPoint {
    t: f64,
    min: f64,
    avg: f64,
    max: f64,
    n: u32,
}

impl HistoryStore {
    fn new(cfg: &SamplerConfig) -> Self {
        HistoryStore {
            interval_secs: cfg.interval_secs as f64,
            full_secs: cfg.full_resolution_secs as f64,
            rollup_secs: cfg.rollup_secs.max(1) as f64,
            forget_after_secs: cfg.full_resolution_secs.max(cfg.rollup_retention_secs) as f64,
            cap_full: cfg.full_capacity(),
            cap_rollup: cfg.rollup_capacity(),
            times: VecDeque::new(),
            bucket_starts: VecDeque::new(),
            series: BTreeMap::new(),
            warned_full: false,
        }
    }

    fn record(&mut self, t: f64, values: &[(String, f64)]) {
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

    fn query(&self, metric: &str, from: f64, to: f64, now: f64, max_points: usize) -> Result<History, HistoryError> {
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

    fn names_bytes(&self) -> usize {
        self.series.keys().map(String::len).sum()
    }

    fn memory_bytes(&self) -> usize {
        let shared = self.times.capacity() * FULL_TIME_BYTES + self.bucket_starts.capacity() * ROLLUP_TIME_BYTES;
        let per: usize = self
            .series
            .values()
            .map(|s| s.full.capacity() * FULL_POINT_BYTES + s.rollup.capacity() * ROLLUP_BUCKET_BYTES + SERIES_OVERHEAD)
            .sum();
        shared + per + self.names_bytes()
    }

    fn memory_bytes_at_full_retention(&self) -> usize {
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

// ---------------------------------------------------------------------------
// Alert engine
// ---------------------------------------------------------------------------

struct Active {
    alert: Alert,
    since: f64,
}

struct AlertEngine {
    rules: Vec<AlertRule>,
    /// (rule, concrete metric) → pending or firing alert.
    active: BTreeMap<(String, String), Active>,
    /// Newest first.
    resolved: VecDeque<Alert>,
}

impl AlertEngine {
    fn new(rules: Vec<AlertRule>) -> Self {
        AlertEngine { rules, active: BTreeMap::new(), resolved: VecDeque::new() }
    }

    /// Evaluates every rule against `values` at time `now` (Unix seconds).
    fn evaluate(&mut self, now: f64, values: &BTreeMap<String, f64>) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let mut seen = BTreeSet::new();
        for rule in &self.rules {
            let matching: Vec<(&String, f64)> = if rule.metric.contains('*') {
                values.iter().filter(|(m, _)| rule.matches(m)).map(|(m, v)| (m, *v)).collect()
            } else {
                values.get_key_value(&rule.metric).map(|(m, v)| (m, *v)).into_iter().collect()
            };
            for (metric, value) in matching {
                let key = (rule.name.clone(), metric.clone());
                seen.insert(key.clone());
                if rule.comparator.holds(value, rule.threshold) {
                    let entry = self.active.entry(key).or_insert_with(|| {
                        let alert = Alert {
                            rule: rule.name.clone(),
                            metric: metric.clone(),
                            severity: rule.severity,
                            state: AlertState::Pending,
                            value,
                            threshold: rule.threshold,
                            comparator: rule.comparator,
                            pending_since: rfc3339(now),
                            fired_at: None,
                            resolved_at: None,
                        };
                        events.push(AlertEvent { alert: alert.clone(), previous: None });
                        Active { alert, since: now }
                    });
                    entry.alert.value = value;
                    if entry.alert.state == AlertState::Pending && now - entry.since >= rule.for_secs as f64 {
                        entry.alert.state = AlertState::Firing;
                        entry.alert.fired_at = Some(rfc3339(now));
                        events.push(AlertEvent { alert: entry.alert.clone(), previous: Some(AlertState::Pending) });
                    }
                } else if let Some(a) = self.active.get_mut(&key) {
                    a.alert.value = value;
                    Self::clear(&mut self.active, &mut self.resolved, &key, now, &mut events);
                }
            }
        }
        // A metric that vanished (unmounted disk, removed interface) clears its alerts.
        let gone: Vec<(String, String)> = self.active.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for key in gone {
            Self::clear(&mut self.active, &mut self.resolved, &key, now, &mut events);
        }
        events
    }

    /// Condition no longer holds: pending → dropped silently, firing → resolved.
    fn clear(
        active: &mut BTreeMap<(String, String), Active>,
        resolved: &mut VecDeque<Alert>,
        key: &(String, String),
        now: f64,
        events: &mut Vec<AlertEvent>,
    ) {
        let Some(a) = active.remove(key) else { return };
        if a.alert.state != AlertState::Firing {
            return;
        }
        let mut alert = a.alert;
        alert.state = AlertState::Resolved;
        alert.resolved_at = Some(rfc3339(now));
        events.push(AlertEvent { alert: alert.clone(), previous: Some(AlertState::Firing) });
        resolved.push_front(alert);
        resolved.truncate(MAX_RESOLVED_ALERTS);
    }

    fn view(&self) -> AlertsView {
        let by_state = |s: AlertState| -> Vec<Alert> {
            self.active.values().filter(|a| a.alert.state == s).map(|a| a.alert.clone()).collect()
        };
        AlertsView {
            firing: by_state(AlertState::Firing),
            pending: by_state(AlertState::Pending),
            recently_resolved: self.resolved.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- real machine: compare with /proc read here ----

    fn read(path: &str) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn meminfo_kib(key: &str) -> u64 {
        read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} not in /proc/meminfo"))
    }

    async fn start(cfg: SamplerConfig) -> (Arc<Sampler>, CancellationToken, Arc<Mutex<Vec<AlertEvent>>>) {
        let token = CancellationToken::new();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let cb: AlertCallback = Arc::new(move |e: &AlertEvent| sink.lock().unwrap().push(e.clone()));
        let s = Sampler::start(cfg, cb, token.clone()).await.expect("sampler starts");
        (s, token, events)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshot_matches_proc() {
        let (sampler, token, _events) = start(SamplerConfig::default()).await;
        let s = sampler.latest();

        // Memory: MemTotal exact, MemAvailable within 5 %.
        assert_eq!(s.memory.total, meminfo_kib("MemTotal") * 1024);
        let avail = (meminfo_kib("MemAvailable") * 1024) as f64;
        assert!((s.memory.available as f64 - avail).abs() <= avail * 0.05, "{} vs {avail}", s.memory.available);
        assert_eq!(s.memory.used, s.memory.total - s.memory.available);
        assert_eq!(s.memory.swap_total, meminfo_kib("SwapTotal") * 1024);

        // Load within 0.5 of /proc/loadavg.
        let la: Vec<f64> = read("/proc/loadavg").split_whitespace().take(3).map(|v| v.parse().unwrap()).collect();
        assert!((s.load.one - la[0]).abs() <= 0.5, "{:?} vs {la:?}", s.load);
        assert!((s.load.five - la[1]).abs() <= 0.5, "{:?} vs {la:?}", s.load);
        assert!((s.load.fifteen - la[2]).abs() <= 0.5, "{:?} vs {la:?}", s.load);

        // CPUs: one per "cpuN" line of /proc/stat.
        let ncpu = read("/proc/stat")
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        assert_eq!(s.cpu.logical_cores, ncpu);
        assert_eq!(s.cpu.per_core_percent.len(), ncpu);
        assert!((0.0..=100.0).contains(&s.cpu.usage_percent), "{}", s.cpu.usage_percent);

        // Uptime and kernel.
        let up: f64 = read("/proc/uptime").split_whitespace().next().unwrap().parse().unwrap();
        assert!((s.uptime_secs as f64 - up).abs() <= 5.0, "{} vs {up}", s.uptime_secs);
        assert_eq!(s.kernel, read("/proc/sys/kernel/osrelease").trim());
        assert_eq!(s.hostname, read("/proc/sys/kernel/hostname").trim());

        // Root filesystem: total = f_blocks × f_frsize of "/".
        let vfs = rustix::fs::statvfs("/").unwrap();
        let root = s.disks.iter().find(|d| d.mount_point == "/").expect("/ in disks");
        assert_eq!(root.total_bytes, vfs.f_blocks * vfs.f_frsize);
        assert_eq!(root.inodes_total, vfs.f_files);
        // Every listed mount is in /proc/self/mounts; no pseudo filesystems.
        let mounts = read("/proc/self/mounts");
        for d in &s.disks {
            assert!(
                mounts
                    .lines()
                    .any(|l| l.split_whitespace().nth(1) == Some(d.mount_point.replace(' ', "\\040").as_str())),
                "{} not mounted",
                d.mount_point
            );
            assert!(!["proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue"].contains(&d.fs_type.as_str()), "{d:?}");
        }
        // Device IO rates for the root device when it is in /proc/diskstats.
        let root_dev = root.device.trim_start_matches("/dev/");
        if read("/proc/diskstats").lines().any(|l| l.split_whitespace().nth(2) == Some(root_dev)) {
            assert!(root.read_bytes_per_sec.is_some() && root.write_bytes_per_sec.is_some(), "{root:?}");
        }

        // This test process: pid, name, command line, uid.
        let me = s.processes.iter().find(|p| p.pid == std::process::id()).expect("own pid in processes");
        assert_eq!(me.name, read("/proc/self/comm").trim_end());
        let cmdline: Vec<String> =
            read("/proc/self/cmdline").split('\0').filter(|a| !a.is_empty()).map(str::to_owned).collect();
        assert_eq!(me.cmdline, cmdline);
        let status = read("/proc/self/status");
        let uid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert_eq!(me.uid, Some(uid));
        assert!(me.threads.is_some_and(|t| t >= 1));
        assert!(me.memory_bytes > 0);
        assert!(s.processes.windows(2).all(|w| w[0].pid < w[1].pid), "sorted by pid");

        // PSI present iff /proc/pressure is; totals only grow.
        match &s.pressure {
            Some(p) => {
                let total: u64 = read("/proc/pressure/cpu")
                    .lines()
                    .next()
                    .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("total=")))
                    .and_then(|v| v.parse().ok())
                    .unwrap();
                assert!(p.cpu.some.total_us <= total);
            }
            None => assert!(!std::path::Path::new("/proc/pressure/cpu").exists() && s.pressure_note.is_some()),
        }

        // Interfaces: counters no bigger than a later /proc/net/dev reading.
        for line in read("/proc/net/dev").lines().skip(2) {
            let (name, rest) = line.split_once(':').unwrap();
            let rx: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            let n = s.networks.iter().find(|n| n.interface == name.trim()).expect("interface listed");
            assert!(n.rx_bytes <= rx, "{n:?} vs {rx}");
        }
        if s.temperatures.is_empty() {
            assert!(s.temperatures_note.is_some());
        }

        // Metric names and memory bound.
        let names = sampler.metric_names();
        for m in
            ["cpu.usage_percent", "cpu.core0.usage_percent", "memory.used_percent", "load.5", "disk./.used_percent"]
        {
            assert!(names.contains(&m.to_owned()), "{m} missing from {names:?}");
        }
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        let bound = sampler.history_memory_bytes_at_full_retention();
        let names_bytes: usize = names.iter().map(String::len).sum();
        assert_eq!(bound, 720 * 8 + 1440 * 8 + names.len() * (720 * 4 + 1440 * 16 + SERIES_OVERHEAD) + names_bytes);
        assert!(sampler.history_memory_bytes() <= bound);
        assert!(sampler.sample_cost() > Duration::ZERO);
        assert_eq!(sampler.rules().len(), 7);
        assert!(sampler.rules().iter().any(|r| r.name == "load_high" && r.threshold == 2.0 * ncpu as f64));
        eprintln!(
            "sample_cost {:?}; {} metrics; history now {} B, at full retention {} B; {} processes",
            sampler.sample_cost(),
            names.len(),
            sampler.history_memory_bytes(),
            bound,
            s.processes.len()
        );
        token.cancel();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_from_a_running_sampler() {
        let lo_rx = || -> u64 {
            read("/proc/net/dev")
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("lo:"))
                .and_then(|r| r.split_whitespace().next()?.parse().ok())
                .expect("lo in /proc/net/dev")
        };
        let rx_before = lo_rx();
        let cfg = SamplerConfig { interval_secs: 1, ..SamplerConfig::default() };
        let (sampler, token, _events) = start(cfg).await;
        // Loopback traffic while sampling, for the interface rate.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = std::thread::spawn(move || {
            use std::io::Write;
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let chunk = vec![7u8; 64 * 1024];
            let end = Instant::now() + Duration::from_millis(2500);
            while Instant::now() < end {
                if c.write_all(&chunk).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let receiver = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            std::io::copy(&mut s, &mut std::io::sink()).unwrap()
        });
        tokio::time::sleep(Duration::from_millis(4500)).await;
        sender.join().unwrap();
        let received = receiver.join().unwrap();
        let rx_after = lo_rx();
        // A second back, so no sample taken before `now` is still being recorded.
        let now = SystemTime::now() - Duration::from_secs(1);
        let from = now - Duration::from_secs(60);

        let h = sampler.history("cpu.usage_percent", from, now, 1000).unwrap();
        assert_eq!(h.tier, "full");
        assert!(h.points.len() >= 2, "{h:?}");
        assert!(h.points.windows(2).all(|w| w[0].unix < w[1].unix));
        assert!(h.points.iter().all(|p| (0.0..=100.0).contains(&p.avg) && p.samples == 1));
        assert_eq!(h.resolution_secs, 1.0);

        // net.lo rate: traffic was seen, and no interval claims more than
        // /proc/net/dev counted in the whole test (shortest interval 0.2 s).
        let lo = sampler.history("net.lo.rx_bytes_per_sec", from, now, 1000).unwrap();
        let max_rate = lo.points.iter().map(|p| p.max).fold(0.0, f64::max);
        assert!(received > 0 && max_rate > 0.0, "{lo:?}");
        assert!(max_rate <= (rx_after - rx_before) as f64 / 0.15, "{max_rate} vs {}", rx_after - rx_before);

        // memory.used_bytes against MemTotal - MemAvailable read now (5 %).
        let m = sampler.history("memory.used_bytes", from, now, 1000).unwrap();
        let last = m.points.last().unwrap().avg;
        let used = ((meminfo_kib("MemTotal") - meminfo_kib("MemAvailable")) * 1024) as f64;
        assert!((last - used).abs() <= used * 0.05 + 64e6, "{last} vs {used}");

        // Downsampling keeps every sample, in at most max_points points.
        let d = sampler.history("cpu.usage_percent", from, now, 1).unwrap();
        assert_eq!(d.points.len(), 1);
        assert_eq!(d.points[0].samples as usize, h.points.len());
        let min = h.points.iter().map(|p| p.min).fold(f64::INFINITY, f64::min);
        assert_eq!(d.points[0].min, min);

        // Older than full_resolution_secs: the rollup tier.
        let r = sampler.history("load.1", now - Duration::from_secs(7200), now, 100).unwrap();
        assert_eq!(r.tier, "rollup");
        assert!(!r.points.is_empty());

        // Errors.
        assert_eq!(
            sampler.history("no.such.metric", from, now, 10).unwrap_err(),
            HistoryError::UnknownMetric("no.such.metric".into())
        );
        assert!(matches!(sampler.history("cpu.usage_percent", now, from, 10), Err(HistoryError::InvalidRange(_))));
        assert!(matches!(sampler.history("cpu.usage_percent", from, now, 0), Err(HistoryError::InvalidRange(_))));
        assert!(matches!(sampler.history("cpu.usage_percent", from, now, 1001), Err(HistoryError::InvalidRange(_))));
        let future = now + Duration::from_secs(3600);
        assert!(matches!(sampler.history("cpu.usage_percent", from, future, 10), Err(HistoryError::InvalidRange(_))));
        token.cancel();
    }

    #[tokio::test]
    async fn start_rejects_bad_config() {
        let cfg = SamplerConfig { interval_secs: 0, ..SamplerConfig::default() };
        let cb: AlertCallback = Arc::new(|_: &AlertEvent| {});
        assert!(Sampler::start(cfg, cb, CancellationToken::new()).await.is_err());
    }

    // ---- history store on synthetic values ----

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
        let mut h = HistoryStore::new(&small_cfg());
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
        let mut h = HistoryStore::new(&small_cfg());
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
        let mut h = HistoryStore::new(&small_cfg());
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
        let mut h = HistoryStore::new(&small_cfg());
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

    // ---- alert engine on synthetic values ----

    fn rule(name: &str, metric: &str, cmp: Comparator, threshold: f64, for_secs: u64) -> AlertRule {
        AlertRule {
            name: name.into(),
            metric: metric.into(),
            comparator: cmp,
            threshold,
            for_secs,
            severity: Severity::Warning,
        }
    }

    fn m(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn alert_pending_firing_resolved() {
        let mut e = AlertEngine::new(vec![rule("cpu", "cpu.usage_percent", Comparator::Gt, 90.0, 300)]);
        let ev = e.evaluate(1000.0, &m(&[("cpu.usage_percent", 95.0)]));
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].alert.state, ev[0].previous), (AlertState::Pending, None));
        assert_eq!(e.view().pending.len(), 1);

        assert!(e.evaluate(1200.0, &m(&[("cpu.usage_percent", 99.0)])).is_empty());
        assert_eq!(e.view().pending[0].value, 99.0);

        let ev = e.evaluate(1300.0, &m(&[("cpu.usage_percent", 96.0)]));
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].alert.state, ev[0].previous), (AlertState::Firing, Some(AlertState::Pending)));
        assert!(ev[0].alert.fired_at.is_some());
        let v = e.view();
        assert_eq!((v.firing.len(), v.pending.len()), (1, 0));

        assert!(e.evaluate(1305.0, &m(&[("cpu.usage_percent", 91.0)])).is_empty());
        let ev = e.evaluate(1310.0, &m(&[("cpu.usage_percent", 50.0)]));
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].alert.state, ev[0].previous), (AlertState::Resolved, Some(AlertState::Firing)));
        assert_eq!(ev[0].alert.value, 50.0);
        let v = e.view();
        assert_eq!((v.firing.len(), v.pending.len(), v.recently_resolved.len()), (0, 0, 1));
        assert!(v.recently_resolved[0].resolved_at.is_some());
        assert_eq!(v.recently_resolved[0].pending_since, rfc3339(1000.0));
    }

    #[test]
    fn alert_dropped_silently_while_pending() {
        let mut e = AlertEngine::new(vec![rule("mem", "memory.used_percent", Comparator::Ge, 90.0, 60)]);
        assert_eq!(e.evaluate(0.0, &m(&[("memory.used_percent", 90.0)])).len(), 1);
        assert!(e.evaluate(30.0, &m(&[("memory.used_percent", 89.9)])).is_empty());
        let v = e.view();
        assert!(v.pending.is_empty() && v.firing.is_empty() && v.recently_resolved.is_empty());
        // Pending again restarts the clock.
        e.evaluate(40.0, &m(&[("memory.used_percent", 95.0)]));
        assert!(e.evaluate(90.0, &m(&[("memory.used_percent", 95.0)])).is_empty());
        assert_eq!(e.evaluate(100.0, &m(&[("memory.used_percent", 95.0)])).len(), 1);
    }

    #[test]
    fn alert_for_zero_fires_at_once_and_wildcard_expands() {
        let mut e = AlertEngine::new(default_rules(2));
        let values = m(&[
            ("disk./.used_percent", 95.0),
            ("disk./var.used_percent", 50.0),
            ("disk./mnt/data.x.used_percent", 99.0),
            ("disk./.read_bytes_per_sec", 1e9),
        ]);
        let ev = e.evaluate(10.0, &values);
        // pending + firing for each of the two full mounts.
        assert_eq!(ev.len(), 4);
        let v = e.view();
        let mut metrics: Vec<&str> = v.firing.iter().map(|a| a.metric.as_str()).collect();
        metrics.sort_unstable();
        assert_eq!(metrics, ["disk./.used_percent", "disk./mnt/data.x.used_percent"]);
        assert!(v.firing.iter().all(|a| a.rule == "disk_full" && a.severity == Severity::Critical));

        // A mount that disappears while firing resolves.
        let ev = e.evaluate(20.0, &m(&[("disk./.used_percent", 95.0)]));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].alert.metric, "disk./mnt/data.x.used_percent");
        assert_eq!(ev[0].alert.state, AlertState::Resolved);
    }

    #[test]
    fn resolved_list_is_bounded_newest_first() {
        let mut e = AlertEngine::new(vec![rule("lo", "x", Comparator::Lt, 0.0, 0)]);
        for i in 0..150 {
            let t = f64::from(i) * 10.0;
            e.evaluate(t, &m(&[("x", -1.0)]));
            e.evaluate(t + 1.0, &m(&[("x", 1.0)]));
        }
        let v = e.view();
        assert_eq!(v.recently_resolved.len(), MAX_RESOLVED_ALERTS);
        assert_eq!(v.recently_resolved[0].resolved_at.as_deref(), Some(rfc3339(1491.0).as_str()));
    }

    #[test]
    fn comparators_and_nan() {
        assert!(Comparator::Gt.holds(2.0, 1.0) && !Comparator::Gt.holds(1.0, 1.0));
        assert!(Comparator::Ge.holds(1.0, 1.0) && !Comparator::Ge.holds(0.5, 1.0));
        assert!(Comparator::Lt.holds(0.5, 1.0) && !Comparator::Lt.holds(1.0, 1.0));
        assert!(Comparator::Le.holds(1.0, 1.0) && !Comparator::Le.holds(1.5, 1.0));
        assert!(!Comparator::Gt.holds(f64::NAN, 1.0) && !Comparator::Le.holds(f64::NAN, 1.0));
    }

    // ---- configuration ----

    #[test]
    fn config_parses_and_validates() {
        let cfg: SamplerConfig = toml::from_str(
            r#"
            interval_secs = 10
            default_alerts = true
            [[alerts]]
            name = "cpu_high"
            metric = "cpu.usage_percent"
            comparator = ">="
            threshold = 75
            [[alerts]]
            name = "rx_flood"
            metric = "net.*.rx_bytes_per_sec"
            comparator = ">"
            threshold = 1e8
            for_secs = 30
            severity = "critical"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.alerts[0].for_secs, 0);
        assert_eq!(cfg.alerts[0].severity, Severity::Warning);
        let rules = effective_rules(&cfg, 4);
        assert_eq!(rules.len(), 8);
        let cpu = rules.iter().find(|r| r.name == "cpu_high").unwrap();
        assert_eq!((cpu.comparator, cpu.threshold), (Comparator::Ge, 75.0));
        assert_eq!(rules.iter().find(|r| r.name == "load_high").unwrap().threshold, 8.0);
        assert!(rules[7].matches("net.eth0.rx_bytes_per_sec") && !rules[7].matches("net..rx_bytes_per_sec"));

        assert!(toml::from_str::<SamplerConfig>("intervall_secs = 5").is_err());
        assert!(
            toml::from_str::<SamplerConfig>("[[alerts]]\nname='a'\nmetric='x'\ncomparator='=='\nthreshold=1").is_err()
        );
        SamplerConfig::default().validate().unwrap();
        assert!(effective_rules(&SamplerConfig { default_alerts: false, ..SamplerConfig::default() }, 2).is_empty());

        let bad = |c: SamplerConfig| assert!(c.validate().is_err(), "{c:?}");
        let d = SamplerConfig::default;
        bad(SamplerConfig { interval_secs: 0, ..d() });
        bad(SamplerConfig { interval_secs: 3601, ..d() });
        bad(SamplerConfig { full_resolution_secs: 1, ..d() });
        bad(SamplerConfig { rollup_secs: 1, ..d() });
        bad(SamplerConfig { rollup_retention_secs: 60, ..d() });
        bad(SamplerConfig {
            interval_secs: 1,
            full_resolution_secs: 30 * 86_400,
            rollup_retention_secs: 30 * 86_400,
            ..d()
        });
        bad(SamplerConfig { max_processes: 0, ..d() });
        let with = |r: AlertRule| SamplerConfig { alerts: vec![r], ..d() };
        bad(with(rule("", "x", Comparator::Gt, 1.0, 0)));
        bad(with(rule("a b", "x", Comparator::Gt, 1.0, 0)));
        bad(with(rule("a", "disk.*.*", Comparator::Gt, 1.0, 0)));
        bad(with(rule("a", "disk.x*.used", Comparator::Gt, 1.0, 0)));
        bad(with(rule("a", "x", Comparator::Gt, f64::NAN, 0)));
        bad(with(rule("a", "x", Comparator::Gt, 1.0, MAX_FOR_SECS + 1)));
        bad(SamplerConfig {
            alerts: vec![rule("a", "x", Comparator::Gt, 1.0, 0), rule("a", "y", Comparator::Gt, 1.0, 0)],
            ..d()
        });
        with(rule("a", "*.used_percent", Comparator::Gt, 1.0, 0)).validate().unwrap();
    }

    // ---- /proc parsers on fixed text ----

    #[test]
    fn parsers() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            Some(LoadAvg { one: 0.52, five: 0.58, fifteen: 0.59 })
        );
        assert_eq!(parse_loadavg("garbage"), None);

        let psi = parse_psi(
            "some avg10=1.50 avg60=0.20 avg300=0.00 total=123\nfull avg10=0.10 avg60=0.00 avg300=0.00 total=45\n",
        )
        .unwrap();
        assert_eq!(psi.some.avg10, 1.5);
        assert_eq!(psi.full.as_ref().map(|f| f.total_us), Some(45));
        let cpu_only_some = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert!(cpu_only_some.full.is_none());
        assert!(parse_psi("some avg10=x").is_none());

        let ds =
            parse_diskstats(" 253  0 vda 100 0 2048 0 50 0 4096 0 0 0 0\n   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\nbad\n");
        assert_eq!(ds.by_name["vda"], (2048, 4096));
        assert_eq!(ds.by_id[&(253, 0)], "vda");

        let mounts = parse_mounts(
            "proc /proc proc rw 0 0\n/dev/vda / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\ntmpfs /dev/shm tmpfs ro 0 0\n\
             cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n\
             overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0\noverlay / overlay rw 0 0\n\
             /dev/loop3 /snap/core/1 squashfs ro 0 0\n",
        );
        let points: Vec<&str> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, ["/", "/dev/shm", "/mnt/my disk"]);
        assert_eq!(mounts[0].fs_type, "overlay", "the last mount on a point wins");
        assert_eq!(unescape_mount("a\\011b\\134c\\0"), "a\tb\\c\\0");

        let st = parse_proc_stat("42 (a) b) c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 7 0 100 0 0").unwrap();
        assert_eq!((st.comm, st.threads), ("a) b) c", Some(7)));
        assert!(parse_proc_stat("nonsense").is_none());
        assert!(is_network_fs("nfs4") && is_network_fs("fuse.sshfs") && !is_network_fs("ext4"));
    }
}
