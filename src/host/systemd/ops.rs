//! What the tools ask of systemd: list units, one unit's status, timers,
//! and jobs (start, stop, restart, reload) waited for with a bound.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use schemars::JsonSchema;
use serde::Serialize;
use zbus::zvariant::{OwnedValue, Value};

use super::bus::{SERVICE_IFACE, TIMER_IFACE, UNIT_IFACE, UnitTuple};
use super::client::Systemd;
use super::units::{UNIT_TYPES, check_change, unit_name, valid_pattern};
use crate::mcp::contract::ToolError;
use crate::mcp::page::{Page, Paged};

/// Default and largest page of `service_list`, `failed_units`, `timer_list`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// Load/active/sub states a list may filter by at once.
pub const MAX_STATES: usize = 16;
/// Names (aliases) and drop-ins shown per unit.
pub const MAX_NAMES: usize = 64;

/// One unit in a list.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct UnitRow {
    pub name: String,
    pub description: String,
    /// loaded, not-found, masked, error …
    pub load_state: String,
    /// active, inactive, failed, activating, deactivating, reloading.
    pub active_state: String,
    /// Type-specific state: running, exited, dead, waiting …
    pub sub_state: String,
    /// Type of a job queued for the unit (start, stop …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// A page of units.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct UnitListOutput {
    pub units: Vec<UnitRow>,
    /// Units matching the filters (all pages).
    pub total: usize,
    pub truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters of `service_list`.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Load, active or sub states (any matches).
    pub states: Vec<String>,
    /// A unit name pattern (`*`, `?`).
    pub pattern: Option<String>,
    /// A unit type (`service`, `timer` …).
    pub unit_type: Option<String>,
}

/// Service-specific state (services only).
#[derive(Clone, Debug, Serialize, JsonSchema, Default)]
pub struct ServiceState {
    /// simple, exec, forking, oneshot, notify …
    pub service_type: String,
    /// Main process (a PID on the host systemd runs on), when running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_pid: Option<u32>,
    /// success, exit-code, signal, timeout, core-dump …
    pub result: String,
    /// Automatic restarts since the unit was last started by hand.
    pub restarts: u32,
    /// Exit status (or signal number) of the main process's last run.
    pub exec_main_status: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_nsec: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u64>,
}

/// Timer-specific state (timers only).
#[derive(Clone, Debug, Serialize, JsonSchema, Default, PartialEq)]
pub struct TimerState {
    /// The unit the timer starts.
    pub activates: String,
    /// Next elapse, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// Last trigger, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
}

/// One unit in detail.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct UnitStatus {
    pub name: String,
    /// Every name of the unit (aliases included).
    pub names: Vec<String>,
    pub description: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// enabled, disabled, static, masked … (empty for transient units).
    pub unit_file_state: String,
    /// The unit file.
    pub fragment_path: String,
    pub drop_in_paths: Vec<String>,
    /// When the active state last changed, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub can_start: bool,
    pub can_stop: bool,
    pub can_reload: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timer: Option<TimerState>,
}

/// One timer.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct TimerRow {
    pub name: String,
    pub active_state: String,
    #[serde(flatten)]
    pub timer: TimerState,
}

/// A page of timers, soonest next run first.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TimerListOutput {
    pub timers: Vec<TimerRow>,
    pub total: usize,
    pub truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A job's verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Reload,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Reload => "reload",
        }
    }
}

/// A unit's state before or after a job.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct StateBrief {
    pub active_state: String,
    pub sub_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_pid: Option<u32>,
    /// The service's result (success, exit-code …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// What a start/stop/restart/reload did.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct JobOutput {
    pub unit: String,
    pub action: String,
    /// systemd's job result: done, failed, canceled, timeout, dependency,
    /// skipped, invalid — or `pending` when the job had not finished within
    /// the wait limit (it keeps running; see service_status).
    pub job_result: String,
    /// How long the job was waited for, milliseconds.
    pub waited_ms: u64,
    pub before: StateBrief,
    pub after: StateBrief,
}

/// The page asked for by a systemd list tool's `limit` and `cursor` (the
/// paging itself is the shared contract in [`crate::mcp::page`]).
pub fn page_bounds(limit: Option<usize>, cursor: &Option<String>) -> Result<Page, ToolError> {
    Page::parse(limit, cursor.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
}

/// A state filter value: letters, digits and `-`.
fn valid_state(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl ListQuery {
    pub fn check(&self) -> Result<(), ToolError> {
        if self.states.len() > MAX_STATES || !self.states.iter().all(|s| valid_state(s)) {
            return Err(ToolError::invalid_input(
                "states must be at most 16 state names",
                "use load/active/sub states like running, failed, active, inactive, loaded",
            ));
        }
        if let Some(p) = &self.pattern
            && !valid_pattern(p)
        {
            return Err(ToolError::invalid_input(
                format!("pattern {p:?} is not a unit pattern"),
                "use unit name characters with * and ?, e.g. nginx* or *.timer",
            ));
        }
        if let Some(t) = &self.unit_type
            && !UNIT_TYPES.contains(&t.as_str())
        {
            return Err(ToolError::invalid_input(format!("unknown unit type {t:?}"), UNIT_TYPES.join(", ")));
        }
        Ok(())
    }
}

fn row(t: UnitTuple) -> UnitRow {
    UnitRow {
        name: t.0,
        description: crate::redact::redact_line(&t.1),
        load_state: t.2,
        active_state: t.3,
        sub_state: t.4,
        job: (t.7 != 0).then_some(t.8),
    }
}

fn text(p: &HashMap<String, OwnedValue>, k: &str) -> String {
    match p.get(k).map(|v| &**v) {
        Some(Value::Str(s)) => s.to_string(),
        Some(Value::ObjectPath(s)) => s.to_string(),
        _ => String::new(),
    }
}

fn texts(p: &HashMap<String, OwnedValue>, k: &str) -> Vec<String> {
    match p.get(k).map(|v| &**v) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                Value::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .take(MAX_NAMES)
            .collect(),
        _ => Vec::new(),
    }
}

fn num(p: &HashMap<String, OwnedValue>, k: &str) -> Option<u64> {
    match p.get(k).map(|v| &**v) {
        Some(Value::U64(n)) => Some(*n),
        Some(Value::U32(n)) => Some(u64::from(*n)),
        _ => None,
    }
}

fn flag(p: &HashMap<String, OwnedValue>, k: &str) -> bool {
    matches!(p.get(k).map(|v| &**v), Some(Value::Bool(true)))
}

/// A counter systemd reports as `UINT64_MAX` when it has none.
fn counter(p: &HashMap<String, OwnedValue>, k: &str) -> Option<u64> {
    num(p, k).filter(|n| *n != u64::MAX)
}

/// Microseconds since the epoch (0 = never) as RFC 3339.
pub fn usec_time(us: u64) -> Option<String> {
    if us == 0 || us == u64::MAX {
        return None;
    }
    let us = i64::try_from(us).ok()?;
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// A CLOCK_MONOTONIC microsecond value (a timer's next elapse) as wall time.
fn monotonic_time(us: u64) -> Option<String> {
    if us == 0 || us == u64::MAX {
        return None;
    }
    let now_mono = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let now_mono_us = i128::from(now_mono.tv_sec) * 1_000_000 + i128::from(now_mono.tv_nsec) / 1000;
    let now_us = i128::from(chrono::Utc::now().timestamp_micros());
    let at = now_us.checked_add(i128::from(us).checked_sub(now_mono_us)?)?;
    usec_time(u64::try_from(at).ok()?)
}

fn timer_state(t: &HashMap<String, OwnedValue>) -> TimerState {
    let next = num(t, "NextElapseUSecRealtime").and_then(usec_time);
    TimerState {
        activates: text(t, "Unit"),
        next_run: next.or_else(|| num(t, "NextElapseUSecMonotonic").and_then(monotonic_time)),
        last_run: num(t, "LastTriggerUSec").and_then(usec_time),
    }
}

impl Systemd {
    /// Units matching the filters, by name, one page.
    pub async fn list_units(&self, q: &ListQuery, page: Page) -> Result<UnitListOutput, ToolError> {
        q.check()?;
        let m = self.manager().await?;
        let states: Vec<&str> = q.states.iter().map(String::as_str).collect();
        let patterns: Vec<&str> = q.pattern.iter().map(String::as_str).collect();
        let mut rows: Vec<UnitRow> = self
            .call(m.list_units_by_patterns(&states, &patterns))
            .await?
            .into_iter()
            .map(row)
            .filter(|r| q.unit_type.as_ref().is_none_or(|t| r.name.ends_with(&format!(".{t}"))))
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let Paged { rows: units, total, truncated, next_cursor } = page.cut(rows);
        Ok(UnitListOutput { units, total, truncated, next_cursor })
    }

    /// The object path of a unit that exists (loaded or loadable).
    async fn unit_path(&self, name: &str) -> Result<(String, HashMap<String, OwnedValue>), ToolError> {
        let m = self.manager().await?;
        let path = self.call(m.load_unit(name)).await?;
        let props = self.props(path.as_str(), UNIT_IFACE).await?;
        if text(&props, "LoadState") == "not-found" {
            return Err(ToolError::not_found(
                format!("unit {name} does not exist"),
                "service_list shows the units systemd knows",
            ));
        }
        Ok((path.to_string(), props))
    }

    /// One unit's states, file, drop-ins and (services) process and cgroup
    /// figures; (timers) next and last run.
    pub async fn unit_status(&self, unit: &str) -> Result<UnitStatus, ToolError> {
        let name = unit_name(unit)?;
        let (path, u) = self.unit_path(&name).await?;
        let id = text(&u, "Id");
        let service = if id.ends_with(".service") {
            let s = self.props(&path, SERVICE_IFACE).await?;
            Some(ServiceState {
                service_type: text(&s, "Type"),
                main_pid: num(&s, "MainPID").and_then(|p| u32::try_from(p).ok()).filter(|p| *p != 0),
                result: text(&s, "Result"),
                restarts: num(&s, "NRestarts").and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
                exec_main_status: match s.get("ExecMainStatus").map(|v| &**v) {
                    Some(Value::I32(n)) => *n,
                    _ => 0,
                },
                memory_bytes: counter(&s, "MemoryCurrent"),
                cpu_nsec: counter(&s, "CPUUsageNSec"),
                tasks: counter(&s, "TasksCurrent"),
            })
        } else {
            None
        };
        let timer =
            if id.ends_with(".timer") { Some(timer_state(&self.props(&path, TIMER_IFACE).await?)) } else { None };
        Ok(UnitStatus {
            names: texts(&u, "Names"),
            description: crate::redact::redact_line(&text(&u, "Description")),
            load_state: text(&u, "LoadState"),
            active_state: text(&u, "ActiveState"),
            sub_state: text(&u, "SubState"),
            unit_file_state: text(&u, "UnitFileState"),
            fragment_path: text(&u, "FragmentPath"),
            drop_in_paths: texts(&u, "DropInPaths"),
            since: num(&u, "StateChangeTimestamp").and_then(usec_time),
            can_start: flag(&u, "CanStart"),
            can_stop: flag(&u, "CanStop"),
            can_reload: flag(&u, "CanReload"),
            name: id,
            service,
            timer,
        })
    }

    /// Timers with their next and last run, soonest first.
    pub async fn timer_list(&self, page: Page) -> Result<TimerListOutput, ToolError> {
        let m = self.manager().await?;
        let units = self.call(m.list_units_by_patterns(&[], &["*.timer"])).await?;
        let mut rows = Vec::new();
        for t in units.into_iter().take(MAX_LIMIT) {
            let props = self.props(t.6.as_str(), TIMER_IFACE).await?;
            rows.push(TimerRow { name: t.0, active_state: t.3, timer: timer_state(&props) });
        }
        rows.sort_by(|a, b| {
            (a.timer.next_run.is_none(), &a.timer.next_run, &a.name).cmp(&(
                b.timer.next_run.is_none(),
                &b.timer.next_run,
                &b.name,
            ))
        });
        let Paged { rows: timers, total, truncated, next_cursor } = page.cut(rows);
        Ok(TimerListOutput { timers, total, truncated, next_cursor })
    }

    async fn brief(&self, path: &str) -> Result<StateBrief, ToolError> {
        let u = self.props(path, UNIT_IFACE).await?;
        let service =
            if text(&u, "Id").ends_with(".service") { Some(self.props(path, SERVICE_IFACE).await?) } else { None };
        Ok(StateBrief {
            active_state: text(&u, "ActiveState"),
            sub_state: text(&u, "SubState"),
            main_pid: service
                .as_ref()
                .and_then(|s| num(s, "MainPID"))
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p != 0),
            result: service.as_ref().map(|s| text(s, "Result")),
        })
    }

    /// Whether a unit named `unit` may be changed: refused before anything
    /// is asked of systemd when the name itself is denied.
    pub fn check_name(&self, unit: &str) -> Result<String, ToolError> {
        let name = unit_name(unit)?;
        check_change(std::slice::from_ref(&name), &self.cfg().allow_units, self.deny())?;
        Ok(name)
    }

    /// Runs a job (mode `replace`) and waits for it at most `wait` (and
    /// `[systemd] job_wait_secs`); the unit is checked against the allow
    /// and deny lists under every name it has.
    pub async fn job(&self, action: Action, unit: &str, wait: Duration) -> Result<JobOutput, ToolError> {
        let name = self.check_name(unit)?;
        let (path, u) = self.unit_path(&name).await?;
        let mut names = vec![name.clone(), text(&u, "Id")];
        names.extend(texts(&u, "Names"));
        check_change(&names, &self.cfg().allow_units, self.deny())?;
        let before = self.brief(&path).await?;
        let m = self.manager().await?;
        // Listen before asking, so the job's end cannot be missed.
        let mut ends = self.call(m.receive_job_removed()).await?;
        let job = match action {
            Action::Start => self.call(m.start_unit(&name, "replace")).await?,
            Action::Stop => self.call(m.stop_unit(&name, "replace")).await?,
            Action::Restart => self.call(m.restart_unit(&name, "replace")).await?,
            Action::Reload => self.call(m.reload_unit(&name, "replace")).await?,
        };
        let wait = wait.min(Duration::from_secs(self.cfg().job_wait_secs));
        let t0 = Instant::now();
        let result = tokio::time::timeout(wait, async {
            while let Some(sig) = ends.next().await {
                if let Ok(a) = sig.args()
                    && a.job == job
                {
                    return Some(a.result);
                }
            }
            None
        })
        .await;
        let job_result = match result {
            Ok(Some(r)) => r,
            Ok(None) => return Err(ToolError::unavailable("the system bus closed while waiting for the job", "")),
            Err(_) => "pending".to_string(),
        };
        let waited_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let after = self.brief(&path).await?;
        Ok(JobOutput { unit: text(&u, "Id"), action: action.as_str().into(), job_result, waited_ms, before, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_paging() {
        assert_eq!(usec_time(0), None);
        assert_eq!(usec_time(u64::MAX), None);
        assert_eq!(usec_time(1_700_000_000_000_000).as_deref(), Some("2023-11-14T22:13:20.000000Z"));
        assert!(monotonic_time(1).is_some());
        assert_eq!(page_bounds(None, &None).ok(), Some(Page { limit: DEFAULT_LIMIT, offset: 0 }));
        assert!(page_bounds(Some(MAX_LIMIT), &None).is_ok());
        assert!(page_bounds(Some(MAX_LIMIT + 1), &None).is_err());
        assert!(page_bounds(Some(0), &None).is_err());
        assert!(page_bounds(None, &Some("x".into())).is_err());
    }

    #[test]
    fn list_filters_are_checked() {
        assert!(ListQuery::default().check().is_ok());
        let q =
            ListQuery { states: vec!["failed".into()], pattern: Some("web*".into()), unit_type: Some("timer".into()) };
        assert!(q.check().is_ok());
        for bad in [
            ListQuery { states: vec!["FAILED; x".into()], ..Default::default() },
            ListQuery { states: vec!["a".into(); MAX_STATES + 1], ..Default::default() },
            ListQuery { pattern: Some("a b".into()), ..Default::default() },
            ListQuery { unit_type: Some("exe".into()), ..Default::default() },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(ListQuery { states: vec!["a".into(); MAX_STATES], ..Default::default() }.check().is_ok());
        assert!(super::super::units::glob_match("*.timer", "x.timer"));
    }
}
