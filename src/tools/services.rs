//! systemd services: the MCP face of `host::systemd` (D-Bus, never
//! `systemctl` text).
//!
//! Read (`services:read`): `service_list`, `service_status` (with the
//! unit's last journal lines), `failed_units`, `timer_list`. Write
//! (`services:write`): `service_start`, `service_stop`, `service_restart`,
//! `service_reload`, each waiting (bounded) for its job and returning the
//! job result and the state before and after. Units on the built-in deny
//! list (`host::systemd::BUILTIN_DENY`, tailops' own unit) or the
//! configured one, or outside a configured allow list, are refused under
//! any of their names; the refusal is audited like every call.

use std::time::Duration;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TailopsServer;
use crate::auth::scopes::Scope;
use crate::host::journal::{Entry, JournalQuery};
use crate::host::systemd::{
    Action, JobOutput, ListQuery, Systemd, TimerListOutput, UnitListOutput, UnitStatus, page_bounds,
};
use crate::mcp::{ToolError, ToolSpec};

const fn read(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "services", scope: Some(Scope::ServicesRead), writes: false }
}
const fn write(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "services", scope: Some(Scope::ServicesWrite), writes: true }
}

pub const SPECS: &[ToolSpec] = &[
    read("service_list"),
    read("service_status"),
    read("failed_units"),
    read("timer_list"),
    write("service_start"),
    write("service_stop"),
    write("service_restart"),
    write("service_reload"),
];

/// Default and largest number of journal lines `service_status` adds.
pub const DEFAULT_STATUS_LOG_LINES: usize = 10;
pub const MAX_STATUS_LOG_LINES: usize = 100;
/// Bytes of journal lines `service_status` adds at most.
pub const STATUS_LOG_BYTES: usize = 64 * 1024;
/// Seconds kept free inside the spine's per-tool time limit when waiting
/// for a job, so the answer (with the state after) still gets out.
pub const JOB_MARGIN_SECS: u64 = 5;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceListInput {
    /// Only units in one of these load, active or sub states (running,
    /// failed, active, inactive, loaded, not-found …).
    #[serde(default)]
    pub states: Vec<String>,
    /// Unit name pattern with `*` and `?` (e.g. `nginx*`).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Unit type: service (default), timer, socket, target, mount, path,
    /// slice, scope, device, swap, automount, or `all`.
    #[serde(default)]
    pub unit_type: Option<String>,
    /// Page size (1-1000, default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageInput {
    /// Page size (1-1000, default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// Unit name (`nginx` means `nginx.service`).
    pub unit: String,
    /// Last journal lines of the unit to include (0-100, default 10).
    #[serde(default)]
    pub log_lines: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitInput {
    /// Unit name (`nginx` means `nginx.service`).
    pub unit: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusOutput {
    #[serde(flatten)]
    pub status: UnitStatus,
    /// The unit's last journal lines, oldest first (secrets redacted).
    pub log: Vec<Entry>,
    /// Why `log` is empty when the journal could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
}

impl TailopsServer {
    fn systemd(&self) -> &Systemd {
        &self.host.systemd
    }

    /// How long a job may be waited for inside the spine's time limit.
    fn job_wait(&self) -> Duration {
        Duration::from_secs(self.spine.cfg.limits.tool_timeout_secs.saturating_sub(JOB_MARGIN_SECS).max(1))
    }

    async fn job(&self, action: Action, unit: &str) -> Result<Json<JobOutput>, ToolError> {
        self.systemd().job(action, unit, self.job_wait()).await.map(Json)
    }
}

#[tool_router(router = services_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "service_list",
        description = "systemd units (services by default) with load/active/sub state and description; filter by states, name pattern and type; paginated.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn service_list(
        &self,
        Parameters(input): Parameters<ServiceListInput>,
    ) -> Result<Json<UnitListOutput>, ToolError> {
        let page = page_bounds(input.limit, &input.cursor)?;
        let unit_type = match input.unit_type.as_deref() {
            None => Some("service".to_string()),
            Some("all") => None,
            Some(t) => Some(t.to_string()),
        };
        let q = ListQuery { states: input.states, pattern: input.pattern, unit_type };
        self.systemd().list_units(&q, page).await.map(Json)
    }

    #[tool(
        name = "service_status",
        description = "One unit in detail: load/active/sub state and since when, main PID, memory/CPU/tasks from its cgroup, restart count, result, unit file and enablement, drop-ins, timer runs, and its last journal lines (redacted).",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn service_status(
        &self,
        Parameters(input): Parameters<StatusInput>,
    ) -> Result<Json<StatusOutput>, ToolError> {
        let lines = input.log_lines.unwrap_or(DEFAULT_STATUS_LOG_LINES);
        if lines > MAX_STATUS_LOG_LINES {
            return Err(ToolError::invalid_input(
                format!("log_lines {lines} out of range"),
                format!("use 0-{MAX_STATUS_LOG_LINES}; journal_query reads more"),
            ));
        }
        let status = self.systemd().unit_status(&input.unit).await?;
        let (log, log_error) = if lines == 0 {
            (Vec::new(), None)
        } else {
            let q = JournalQuery {
                unit: Some(status.name.clone()),
                max_lines: lines,
                max_bytes: STATUS_LOG_BYTES,
                ..Default::default()
            };
            match self.host.journal.query(&q).await {
                Ok(o) => (o.entries, None),
                Err(e) => (Vec::new(), Some(e.message)),
            }
        };
        Ok(Json(StatusOutput { status, log, log_error }))
    }

    #[tool(
        name = "failed_units",
        description = "Units in the failed state (any type), with their states and description; paginated.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn failed_units(&self, Parameters(input): Parameters<PageInput>) -> Result<Json<UnitListOutput>, ToolError> {
        let page = page_bounds(input.limit, &input.cursor)?;
        let q = ListQuery { states: vec!["failed".into()], ..Default::default() };
        self.systemd().list_units(&q, page).await.map(Json)
    }

    #[tool(
        name = "timer_list",
        description = "systemd timers with the unit each starts, next and last run (RFC 3339), soonest first; paginated.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn timer_list(&self, Parameters(input): Parameters<PageInput>) -> Result<Json<TimerListOutput>, ToolError> {
        let page = page_bounds(input.limit, &input.cursor)?;
        self.systemd().timer_list(page).await.map(Json)
    }

    #[tool(
        name = "service_start",
        description = "Start a unit and wait (bounded) for the job: returns the job result (done, failed, … or pending) and the state before and after. Units on the deny list are refused.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn service_start(&self, Parameters(input): Parameters<UnitInput>) -> Result<Json<JobOutput>, ToolError> {
        self.job(Action::Start, &input.unit).await
    }

    #[tool(
        name = "service_stop",
        description = "Stop a unit and wait (bounded) for the job: returns the job result and the state before and after. Units on the deny list are refused.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn service_stop(&self, Parameters(input): Parameters<UnitInput>) -> Result<Json<JobOutput>, ToolError> {
        self.job(Action::Stop, &input.unit).await
    }

    #[tool(
        name = "service_restart",
        description = "Restart a unit (starts it if stopped) and wait (bounded) for the job: returns the job result and the state before and after (a new main PID). Units on the deny list are refused.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn service_restart(&self, Parameters(input): Parameters<UnitInput>) -> Result<Json<JobOutput>, ToolError> {
        self.job(Action::Restart, &input.unit).await
    }

    #[tool(
        name = "service_reload",
        description = "Ask a running unit to reload its configuration (ExecReload) and wait (bounded) for the job. A unit that cannot reload is a conflict. Units on the deny list are refused.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn service_reload(&self, Parameters(input): Parameters<UnitInput>) -> Result<Json<JobOutput>, ToolError> {
        self.job(Action::Reload, &input.unit).await
    }
}
