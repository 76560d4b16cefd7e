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
//! thread count, through [`crate::host::procfs`]).
//!
//! Files: `config.rs` (settings), `snapshot.rs` (what a sample holds and
//! [`metric_values`]), `collect.rs` (taking a sample), `parse.rs` (the
//! system-wide /proc files), `history.rs` (the two tiers), `alerts.rs`
//! (rules and the engine); this file runs the task and answers queries.
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

mod alerts;
mod collect;
mod config;
mod history;
mod parse;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

pub use alerts::{
    Alert, AlertEvent, AlertRule, AlertState, AlertsView, Comparator, MAX_FOR_SECS, MAX_RESOLVED_ALERTS, Severity,
    default_rules,
};
pub use config::{MAX_HISTORY_BYTES, SamplerConfig};
pub use history::{
    FULL_POINT_BYTES, FULL_TIME_BYTES, History, HistoryError, HistoryPoint, MAX_HISTORY_POINTS, MAX_METRICS,
    ROLLUP_BUCKET_BYTES, ROLLUP_TIME_BYTES,
};
pub use snapshot::{
    CpuSnapshot, DiskSnapshot, LoadAvg, MemorySnapshot, NetSnapshot, Pressure, ProcessSample, PsiLine, PsiResource,
    Snapshot, Temperature, metric_values,
};

use alerts::AlertEngine;
use collect::Collector;
use history::HistoryStore;

/// Delay between the priming refresh and the first published sample, so CPU
/// percentages of the first sample are meaningful.
const PRIME_DELAY: Duration = Duration::from_millis(200);

/// The running sampler. Cheap to query from any thread.
pub struct Sampler {
    cfg: SamplerConfig,
    /// Called for every alert state change (the audit log).
    on_alert: AlertCallback,
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

        let rules = cfg.effective_rules(snapshot.cpu.logical_cores);
        let sampler = Arc::new(Sampler {
            history: RwLock::new(cfg.history_store()),
            alerts: Mutex::new(AlertEngine::new(rules)),
            on_alert: on_alert.clone(),
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
        self.history.read().unwrap_or_else(PoisonError::into_inner).metric_names()
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
        self.alerts.lock().unwrap_or_else(PoisonError::into_inner).rules().to_vec()
    }

    /// Applies the alert rules of `cfg` (`default_alerts` and `alerts`; a
    /// configuration reload), keeping the state of rules left unchanged;
    /// the other settings of `cfg` need a restart. Returns the number of
    /// rules now evaluated.
    pub fn reload_rules(&self, cfg: &SamplerConfig) -> Result<usize, String> {
        cfg.validate()?;
        let rules = cfg.effective_rules(self.latest().cpu.logical_cores);
        let n = rules.len();
        let now = unix_secs(SystemTime::now());
        let events = self.alerts.lock().unwrap_or_else(PoisonError::into_inner).replace_rules(rules, now);
        for ev in &events {
            (self.on_alert)(ev);
        }
        Ok(n)
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

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

fn unix_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Unix seconds → RFC 3339 (UTC, milliseconds); empty when out of range.
fn rfc3339(unix: f64) -> String {
    let secs = unix.floor();
    let nanos = ((unix - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    chrono::DateTime::from_timestamp(secs as i64, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// f32 → f64 without the binary noise (12.3f32 → 12.3, not 12.300000190734863).
fn widen(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

#[cfg(test)]
mod tests {
    use super::history::SERIES_OVERHEAD;
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
        // MemAvailable and the load averages are read just before and just
        // after the first sample, and the sample is checked against that
        // bracket: a build beside the tests moves memory by hundreds of MB
        // a second, and the kernel updates the load every 5 s (on a busy
        // box by more than 0.5 at once), so one reading taken after the
        // sample could disagree with it.
        let loadavg =
            || -> Vec<f64> { read("/proc/loadavg").split_whitespace().take(3).map(|v| v.parse().unwrap()).collect() };
        let (avail_before, la_before) = ((meminfo_kib("MemAvailable") * 1024) as f64, loadavg());
        let (sampler, token, _events) = start(SamplerConfig::default()).await;
        let (avail_after, la_after) = ((meminfo_kib("MemAvailable") * 1024) as f64, loadavg());
        let s = sampler.latest();
        let within = |v: f64, a: f64, b: f64, slack: f64| v >= a.min(b) - slack && v <= a.max(b) + slack;

        // Memory: MemTotal exact, MemAvailable within 5 % of the bracket.
        assert_eq!(s.memory.total, meminfo_kib("MemTotal") * 1024);
        let avail = s.memory.available as f64;
        assert!(
            within(avail, avail_before, avail_after, avail_before.max(avail_after) * 0.05),
            "{avail} vs ({avail_before}, {avail_after})"
        );
        assert_eq!(s.memory.used, s.memory.total - s.memory.available);
        assert_eq!(s.memory.swap_total, meminfo_kib("SwapTotal") * 1024);

        // Load within 0.5 of /proc/loadavg (the bracket).
        let (b, a) = (&la_before, &la_after);
        assert!(within(s.load.one, b[0], a[0], 0.5), "{:?} vs {b:?} / {a:?}", s.load);
        assert!(within(s.load.five, b[1], a[1], 0.5), "{:?} vs {b:?} / {a:?}", s.load);
        assert!(within(s.load.fifteen, b[2], a[2], 0.5), "{:?} vs {b:?} / {a:?}", s.load);

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
        sender.join().unwrap();
        let received = receiver.join().unwrap();
        // Wait (bounded) until the history holds two CPU points and a
        // loopback rate, instead of sleeping a fixed 4.5 s and assuming the
        // 1 s sampler kept pace (a loaded box delays it). `now` is a second
        // back, so no sample taken before it is still being recorded.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (now, h) = loop {
            let now = SystemTime::now() - Duration::from_secs(1);
            let from = now - Duration::from_secs(60);
            let h = sampler.history("cpu.usage_percent", from, now, 1000).unwrap();
            let lo = sampler.history("net.lo.rx_bytes_per_sec", from, now, 1000).unwrap();
            if (h.points.len() >= 2 && lo.points.iter().any(|p| p.max > 0.0)) || Instant::now() > deadline {
                break (now, h);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // After every sample up to `now` was taken.
        let rx_after = lo_rx();
        let from = now - Duration::from_secs(60);

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

        // memory.used_bytes against MemTotal - MemAvailable read just
        // before and just after a new sample (within 5 % of that bracket).
        // Other processes (a build beside the tests) move memory by
        // hundreds of MB a second, so a bracket that moved too much is
        // taken again, a few times at most.
        let used = || ((meminfo_kib("MemTotal") - meminfo_kib("MemAvailable")) * 1024) as f64;
        let points = || sampler.history("memory.used_bytes", from, SystemTime::now(), 1000).unwrap().points;
        let mut tries = Vec::new();
        for _ in 0..5 {
            let n = points().len();
            let before = used();
            let deadline = Instant::now() + Duration::from_secs(10);
            while points().len() == n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let after = used();
            let last = points().last().unwrap().avg;
            let (lo, hi) = (before.min(after), before.max(after));
            let ok = last >= lo * 0.95 - 64e6 && last <= hi * 1.05 + 64e6;
            tries.push((last, before, after));
            if ok {
                break;
            }
        }
        let (last, before, after) = *tries.last().unwrap();
        assert!(
            last >= before.min(after) * 0.95 - 64e6 && last <= before.max(after) * 1.05 + 64e6,
            "sample vs (before, after): {tries:?}"
        );

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
}
