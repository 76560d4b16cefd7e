//! Host monitoring tools, all `system:read`, all served from the sampler's
//! latest snapshot (no refresh in the request path: a call costs
//! microseconds): `system_overview`, `cpu_usage`, `memory_usage`,
//! `disk_usage`, `sensors`, `pressure`, `metrics_history`, `alerts`.

use std::time::{Duration, SystemTime};

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TailopsServer;
use super::input::parse_system_time;
use crate::auth::scopes::Scope;
use crate::host::sampler::{
    AlertRule, AlertsView, CpuSnapshot, DiskSnapshot, History, HistoryError, LoadAvg, MemorySnapshot, Pressure,
    Sampler, Snapshot, Temperature,
};
use crate::mcp::{ToolError, ToolSpec};

const fn read(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "system", scope: Some(Scope::SystemRead), writes: false }
}

pub const SPECS: &[ToolSpec] = &[
    read("system_overview"),
    read("cpu_usage"),
    read("memory_usage"),
    read("disk_usage"),
    read("sensors"),
    read("pressure"),
    read("metrics_history"),
    read("alerts"),
];

/// The `system_overview` result as a resource.
pub const OVERVIEW_URI: &str = "system://overview";
pub const OVERVIEW_RESOURCE: super::ResourceSpec = super::ResourceSpec {
    uri: OVERVIEW_URI,
    name: "system-overview",
    title: "System overview",
    description: "The system_overview tool's result as a JSON resource",
    tool: "system_overview",
    scope: Scope::SystemRead,
};

/// The body of [`OVERVIEW_URI`].
pub fn overview_resource(host: &crate::host::Host) -> Result<OverviewOutput, ToolError> {
    let Some(sampler) = host.sampler.as_ref() else {
        return Err(ToolError::unavailable("the metrics sampler is not running", "check the server logs"));
    };
    Ok(overview(&sampler.latest(), &sampler.alerts()))
}

/// Processes shown in the overview's top list.
pub const TOP_PROCESSES: usize = 5;
/// Most points a history query may return.
pub const MAX_HISTORY_POINTS: usize = 1000;
/// Longest relative window (`minutes`) a history query may ask for: 24 h.
pub const MAX_HISTORY_MINUTES: u64 = 1440;

impl TailopsServer {
    pub(crate) fn sampler(&self) -> Result<&std::sync::Arc<Sampler>, ToolError> {
        self.host.sampler.as_ref().ok_or_else(|| {
            ToolError::unavailable("the metrics sampler is not running", "it starts with the server; check the logs")
        })
    }
}

/// Seconds since the snapshot was taken.
fn age_secs(s: &Snapshot) -> f64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    (now - s.taken_unix).max(0.0)
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TopProcess {
    pub pid: u32,
    pub name: String,
    pub user: Option<String>,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OverviewOutput {
    pub summary: String,
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    pub uptime_secs: u64,
    pub boot_time_unix: u64,
    pub load: LoadAvg,
    pub cpu: CpuSummary,
    pub memory: MemorySnapshot,
    /// The filesystem mounted at `/` (absent if not visible).
    pub root_disk: Option<DiskSnapshot>,
    /// Top processes by CPU.
    pub top_processes: Vec<TopProcess>,
    pub alerts_firing: usize,
    pub alerts_pending: usize,
    /// Age of the snapshot these numbers come from.
    pub sample_age_secs: f64,
    pub sampled_at: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CpuSummary {
    pub model: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    pub usage_percent: f64,
}

/// Builds the overview (also served as the `system://overview` resource).
pub fn overview(s: &Snapshot, alerts: &AlertsView) -> OverviewOutput {
    let mut top: Vec<&crate::host::sampler::ProcessSample> = s.processes.iter().collect();
    top.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    let top_processes = top
        .into_iter()
        .take(TOP_PROCESSES)
        .map(|p| TopProcess {
            pid: p.pid,
            name: p.name.clone(),
            user: p.user.clone(),
            cpu_percent: p.cpu_percent,
            memory_bytes: p.memory_bytes,
        })
        .collect();
    let root_disk = s.disks.iter().find(|d| d.mount_point == "/").cloned();
    let summary = format!(
        "{}: up {}h, load {:.2}/{:.2}/{:.2}, CPU {:.0}% of {} cores, memory {:.1}/{:.1} GiB ({:.0}%){}, {} alert(s) firing",
        s.hostname,
        s.uptime_secs / 3600,
        s.load.one,
        s.load.five,
        s.load.fifteen,
        s.cpu.usage_percent,
        s.cpu.logical_cores,
        gib(s.memory.used),
        gib(s.memory.total),
        s.memory.used_percent,
        root_disk.as_ref().map(|d| format!(", / {:.0}% used", d.used_percent)).unwrap_or_default(),
        alerts.firing.len()
    );
    OverviewOutput {
        summary,
        hostname: s.hostname.clone(),
        os: format!("{} {}", s.os_name, s.os_version).trim().to_string(),
        kernel: s.kernel.clone(),
        arch: s.arch.clone(),
        uptime_secs: s.uptime_secs,
        boot_time_unix: s.boot_time_unix,
        load: s.load.clone(),
        cpu: CpuSummary {
            model: s.cpu.model.clone(),
            physical_cores: s.cpu.physical_cores,
            logical_cores: s.cpu.logical_cores,
            usage_percent: s.cpu.usage_percent,
        },
        memory: s.memory.clone(),
        root_disk,
        top_processes,
        alerts_firing: alerts.firing.len(),
        alerts_pending: alerts.pending.len(),
        sample_age_secs: age_secs(s),
        sampled_at: s.taken_at.clone(),
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CpuInput {
    /// Also return total CPU usage history for the last N minutes (1-1440).
    #[serde(default)]
    pub history_minutes: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CpuOutput {
    pub summary: String,
    pub cpu: CpuSnapshot,
    pub load: LoadAvg,
    pub history: Option<History>,
    pub sample_age_secs: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MemoryOutput {
    pub summary: String,
    pub memory: MemorySnapshot,
    pub sample_age_secs: f64,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskInput {
    /// Only filesystems whose mount point starts with this path.
    #[serde(default)]
    pub mount_prefix: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DiskOutput {
    pub summary: String,
    pub disks: Vec<DiskSnapshot>,
    pub sample_age_secs: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SensorsOutput {
    pub summary: String,
    pub temperatures: Vec<Temperature>,
    /// Why the list is empty, when it is.
    pub note: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PressureOutput {
    pub summary: String,
    pub pressure: Option<Pressure>,
    /// Why pressure info is missing, when it is.
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryInput {
    /// Metric name, e.g. `cpu.usage_percent`, `memory.used_percent`,
    /// `load.1`, `disk./.used_percent`, `net.eth0.rx_bytes_per_sec`,
    /// `psi.memory.some.avg10`. `metrics_history` with an unknown name lists
    /// the known ones in its error.
    pub metric: String,
    /// Window: the last N minutes (1-1440). Default 60. Ignored when `from` is set.
    #[serde(default)]
    pub minutes: Option<u64>,
    /// Window start, RFC 3339 (e.g. 2026-11-24T10:00:00Z).
    #[serde(default)]
    pub from: Option<String>,
    /// Window end, RFC 3339; default now.
    #[serde(default)]
    pub to: Option<String>,
    /// Most points to return (1-1000, default 100); each has min/avg/max.
    #[serde(default)]
    pub max_points: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AlertsOutput {
    pub summary: String,
    pub alerts: AlertsView,
    /// The rules being evaluated.
    pub rules: Vec<AlertRule>,
}

#[tool_router(router = system_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "system_overview",
        description = "One-call host status: OS, kernel, uptime, load, CPU, memory, swap, root disk, top 5 processes by CPU, alert counts, sample age.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn system_overview(&self) -> Result<Json<OverviewOutput>, ToolError> {
        let sampler = self.sampler()?;
        Ok(Json(overview(&sampler.latest(), &sampler.alerts())))
    }

    #[tool(
        name = "cpu_usage",
        description = "CPU usage in total and per core, load averages, and optionally total usage history for the last N minutes.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn cpu_usage(&self, Parameters(input): Parameters<CpuInput>) -> Result<Json<CpuOutput>, ToolError> {
        let sampler = self.sampler()?;
        let s = sampler.latest();
        let history = match input.history_minutes {
            None => None,
            Some(m) if m == 0 || m > MAX_HISTORY_MINUTES => {
                return Err(ToolError::invalid_input(format!("history_minutes {m} out of range"), "use 1-1440"));
            }
            Some(m) => {
                let to = SystemTime::now();
                let from = to - Duration::from_secs(m * 60);
                Some(sampler.history("cpu.usage_percent", from, to, 120).map_err(history_error)?)
            }
        };
        let summary = format!(
            "CPU {:.0}% over {} cores (busiest core {:.0}%), load {:.2}/{:.2}/{:.2}",
            s.cpu.usage_percent,
            s.cpu.logical_cores,
            s.cpu.per_core_percent.iter().copied().fold(0.0, f64::max),
            s.load.one,
            s.load.five,
            s.load.fifteen
        );
        Ok(Json(CpuOutput {
            summary,
            cpu: s.cpu.clone(),
            load: s.load.clone(),
            history,
            sample_age_secs: age_secs(&s),
        }))
    }

    #[tool(
        name = "memory_usage",
        description = "Memory and swap: total, used (total minus available), available, free, percentages.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn memory_usage(&self) -> Result<Json<MemoryOutput>, ToolError> {
        let s = self.sampler()?.latest();
        let m = &s.memory;
        let summary = format!(
            "memory {:.2}/{:.2} GiB used ({:.0}%), {:.2} GiB available; swap {:.2}/{:.2} GiB",
            gib(m.used),
            gib(m.total),
            m.used_percent,
            gib(m.available),
            gib(m.swap_used),
            gib(m.swap_total)
        );
        Ok(Json(MemoryOutput { summary, memory: m.clone(), sample_age_secs: age_secs(&s) }))
    }

    #[tool(
        name = "disk_usage",
        description = "Every mounted filesystem: size, used, available, inodes, and read/write rates of its device.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn disk_usage(&self, Parameters(input): Parameters<DiskInput>) -> Result<Json<DiskOutput>, ToolError> {
        let s = self.sampler()?.latest();
        let disks: Vec<DiskSnapshot> = s
            .disks
            .iter()
            .filter(|d| input.mount_prefix.as_deref().is_none_or(|p| d.mount_point.starts_with(p)))
            .cloned()
            .collect();
        let fullest = disks.iter().max_by(|a, b| a.used_percent.total_cmp(&b.used_percent));
        let summary = match fullest {
            Some(d) => format!("{} filesystems; fullest {} at {:.0}%", disks.len(), d.mount_point, d.used_percent),
            None => "no matching filesystems".to_string(),
        };
        Ok(Json(DiskOutput { summary, disks, sample_age_secs: age_secs(&s) }))
    }

    #[tool(
        name = "sensors",
        description = "Hardware temperatures where the host exposes them (empty with a reason on VMs and containers).",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn sensors(&self) -> Result<Json<SensorsOutput>, ToolError> {
        let s = self.sampler()?.latest();
        let hottest = s.temperatures.iter().max_by(|a, b| a.celsius.total_cmp(&b.celsius));
        let summary = match hottest {
            Some(t) => format!("{} sensors; hottest {} at {:.0} °C", s.temperatures.len(), t.label, t.celsius),
            None => format!("no temperature sensors: {}", s.temperatures_note.clone().unwrap_or_default()),
        };
        Ok(Json(SensorsOutput { summary, temperatures: s.temperatures.clone(), note: s.temperatures_note.clone() }))
    }

    #[tool(
        name = "pressure",
        description = "Pressure stall information (PSI) for CPU, memory and IO: share of time tasks were stalled, averaged over 10/60/300 s.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn pressure(&self) -> Result<Json<PressureOutput>, ToolError> {
        let s = self.sampler()?.latest();
        let summary = match &s.pressure {
            Some(p) => format!(
                "stalled (some, avg10): cpu {:.1}%, memory {:.1}%, io {:.1}%",
                p.cpu.some.avg10, p.memory.some.avg10, p.io.some.avg10
            ),
            None => format!("no PSI: {}", s.pressure_note.clone().unwrap_or_default()),
        };
        Ok(Json(PressureOutput { summary, pressure: s.pressure.clone(), note: s.pressure_note.clone() }))
    }

    #[tool(
        name = "metrics_history",
        description = "History of one sampled metric over a time range, downsampled to at most max_points points with min/avg/max each.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn metrics_history(&self, Parameters(input): Parameters<HistoryInput>) -> Result<Json<History>, ToolError> {
        let sampler = self.sampler()?;
        let max_points = input.max_points.unwrap_or(100);
        if max_points == 0 || max_points > MAX_HISTORY_POINTS {
            return Err(ToolError::invalid_input(format!("max_points {max_points} out of range"), "use 1-1000"));
        }
        let to = match &input.to {
            Some(t) => parse_system_time("to", t)?,
            None => SystemTime::now(),
        };
        let from = match (&input.from, input.minutes) {
            (Some(f), _) => parse_system_time("from", f)?,
            (None, Some(m)) if m == 0 || m > MAX_HISTORY_MINUTES => {
                return Err(ToolError::invalid_input(format!("minutes {m} out of range"), "use 1-1440"));
            }
            (None, m) => to.checked_sub(Duration::from_secs(m.unwrap_or(60) * 60)).unwrap_or(SystemTime::UNIX_EPOCH),
        };
        sampler.history(&input.metric, from, to, max_points).map(Json).map_err(|e| match e {
            HistoryError::UnknownMetric(m) => {
                let mut known = sampler.metric_names();
                known.truncate(50);
                ToolError::invalid_input(
                    format!("unknown metric {m:?}"),
                    format!("known metrics include: {}", known.join(", ")),
                )
            }
            e => history_error(e),
        })
    }

    #[tool(
        name = "alerts",
        description = "Alert rules and their state: firing, pending, and recently resolved alerts with start/end times.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn alerts(&self) -> Result<Json<AlertsOutput>, ToolError> {
        let sampler = self.sampler()?;
        let alerts = sampler.alerts();
        let summary = format!(
            "{} firing, {} pending, {} recently resolved",
            alerts.firing.len(),
            alerts.pending.len(),
            alerts.recently_resolved.len()
        );
        Ok(Json(AlertsOutput { summary, alerts, rules: sampler.rules() }))
    }
}

fn history_error(e: HistoryError) -> ToolError {
    match e {
        HistoryError::UnknownMetric(m) => ToolError::invalid_input(format!("unknown metric {m:?}"), ""),
        HistoryError::InvalidRange(msg) => {
            ToolError::invalid_input(msg, "give from < to, not in the future, and max_points 1-1000")
        }
    }
}
