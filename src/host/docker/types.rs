//! The Docker domain's view types: what the operations return (the tools'
//! structured output, serde + schemars; doc comments become the schema's
//! descriptions), and the two words callers choose from (container states,
//! prune kinds).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Created,
    Restarting,
    Running,
    Removing,
    Paused,
    Exited,
    Dead,
}

impl ContainerStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Running => "running",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Dead => "dead",
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DiskUsageRow {
    pub count: u64,
    /// In use (images with containers, running containers, volumes with references).
    pub active: u64,
    pub size_bytes: u64,
    pub reclaimable_bytes: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DiskUsage {
    pub images: DiskUsageRow,
    pub containers: DiskUsageRow,
    pub volumes: DiskUsageRow,
    pub build_cache: DiskUsageRow,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ContainerCounts {
    pub total: i64,
    pub running: i64,
    pub paused: i64,
    pub stopped: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InfoOutput {
    pub summary: String,
    /// Where tailops reaches the daemon (`unix://…` or `tcp://…`).
    pub endpoint: String,
    pub engine_version: String,
    /// API version in use (negotiated down to the daemon's).
    pub api_version: String,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub architecture: Option<String>,
    pub storage_driver: Option<String>,
    pub cgroup_driver: Option<String>,
    pub cgroup_version: Option<String>,
    pub logging_driver: Option<String>,
    pub docker_root_dir: Option<String>,
    pub ncpu: Option<i64>,
    pub mem_total_bytes: Option<i64>,
    pub containers: ContainerCounts,
    pub images: i64,
    pub warnings: Vec<String>,
    /// `docker system df` (absent if the daemon could not compute it).
    pub disk_usage: Option<DiskUsage>,
    pub disk_usage_error: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ContainerRow {
    /// Short id (12 hex).
    pub id: String,
    pub name: String,
    pub image: String,
    /// created, running, paused, restarting, removing, exited, dead.
    pub state: String,
    /// Docker's human status ("Up 3 minutes", "Exited (0) 2 hours ago").
    pub status: String,
    pub created: Option<String>,
    /// healthy, unhealthy, starting (absent without a healthcheck).
    pub health: Option<String>,
    pub compose_project: Option<String>,
    pub compose_service: Option<String>,
    /// Published ports, e.g. `127.0.0.1:8080->80/tcp`.
    pub ports: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProjectGroup {
    /// Compose project (absent: containers outside any project).
    pub project: Option<String>,
    pub containers: Vec<ContainerRow>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ContainerListOutput {
    pub summary: String,
    /// This page, sorted by name (empty when grouped).
    pub containers: Vec<ContainerRow>,
    /// This page grouped by Compose project (only with group_by_project).
    pub groups: Option<Vec<ProjectGroup>>,
    /// Matching containers.
    pub total: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthView {
    /// healthy, unhealthy, starting, none.
    pub status: String,
    pub failing_streak: Option<i64>,
    /// Output of the latest check (redacted, at most 1 KiB).
    pub last_output: Option<String>,
    pub last_exit_code: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StateView {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub oom_killed: bool,
    pub dead: bool,
    /// Host PID of the main process (0 when not running).
    pub pid: Option<i64>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub health: Option<HealthView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RestartPolicyView {
    /// no, always, unless-stopped, on-failure.
    pub name: String,
    pub maximum_retry_count: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ResourcesView {
    /// Memory limit, bytes (0 = none).
    pub memory_bytes: Option<i64>,
    pub memory_swap_bytes: Option<i64>,
    pub memory_reservation_bytes: Option<i64>,
    /// CPU limit in CPUs (from NanoCpus, or quota/period).
    pub cpus: Option<f64>,
    pub cpu_shares: Option<i64>,
    pub cpuset_cpus: Option<String>,
    /// Pids limit (0 or -1 = none).
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MountView {
    /// bind, volume, tmpfs …
    pub kind: Option<String>,
    /// Volume name (volumes only).
    pub name: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub mode: Option<String>,
    pub rw: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PortView {
    /// `80/tcp`.
    pub container_port: String,
    pub host_ip: Option<String>,
    pub host_port: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NetworkAttachment {
    pub network: String,
    pub ip_address: Option<String>,
    pub gateway: Option<String>,
    pub mac_address: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthcheckView {
    /// The check command (redacted).
    pub test: Vec<String>,
    pub interval_secs: Option<f64>,
    pub timeout_secs: Option<f64>,
    pub retries: Option<i64>,
    pub start_period_secs: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InspectOutput {
    pub summary: String,
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub created: Option<String>,
    /// Entrypoint + command as run (secret-looking arguments redacted).
    pub command: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `NAME=value`; values redacted unless revealed (PATH, HOME, HOSTNAME,
    /// TERM, LANG, LC_*, TZ … are shown).
    pub env: Vec<String>,
    /// How many env values are hidden.
    pub env_redacted: usize,
    /// True when the caller asked for (and may see) unredacted secrets.
    pub secrets_revealed: bool,
    pub labels: BTreeMap<String, String>,
    pub state: StateView,
    pub restart_policy: Option<RestartPolicyView>,
    pub restart_count: Option<i64>,
    pub resources: ResourcesView,
    pub mounts: Vec<MountView>,
    pub ports: Vec<PortView>,
    pub network_mode: Option<String>,
    pub networks: Vec<NetworkAttachment>,
    pub healthcheck: Option<HealthcheckView>,
    pub log_driver: Option<String>,
    pub privileged: Option<bool>,
    pub read_only_rootfs: Option<bool>,
    pub compose_project: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogLine {
    /// stdout, stderr or console (TTY containers).
    pub stream: String,
    /// RFC 3339 with nanoseconds (only with timestamps=true).
    pub timestamp: Option<String>,
    /// The line, secrets redacted.
    pub text: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogsOutput {
    pub summary: String,
    pub container: String,
    pub lines: Vec<LogLine>,
    /// Bytes of `text` returned.
    pub bytes: usize,
    /// True when lines were dropped to fit `max_bytes` (the oldest go) or
    /// the scan limit was hit.
    pub truncated: bool,
    /// Lines read from the daemon (before grep and the byte cap).
    pub scanned_lines: usize,
}

/// Where a `container_stats` row's figures come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    /// The container's cgroup files on this host, read by tailops.
    Cgroup,
    /// The Docker daemon's one-shot stats (tailops does not see the
    /// container's cgroup: remote daemon, other namespace, rootless …).
    EngineApi,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatsRow {
    pub id: String,
    pub name: String,
    /// Where these figures were read.
    pub source: StatsSource,
    /// Percent of one CPU (can exceed 100 on several cores).
    pub cpu_percent: Option<f64>,
    /// Memory in use without the page cache, bytes.
    pub memory_usage_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub memory_percent: Option<f64>,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub pids: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatsOutput {
    pub summary: String,
    pub containers: Vec<StatsRow>,
    /// Rows read from cgroup files / from the Engine API.
    pub from_cgroup: usize,
    pub from_engine_api: usize,
    /// More running containers than one call samples (100).
    pub truncated: bool,
    /// Containers whose sample failed (they stopped meanwhile …).
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TopOutput {
    pub summary: String,
    pub container: String,
    /// Column names of `ps` (UID, PID, PPID, C, STIME, TTY, TIME, CMD).
    pub titles: Vec<String>,
    /// One row per process; the command column is redacted.
    pub processes: Vec<Vec<String>>,
    pub truncated: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ImageRow {
    /// `sha256:` id, short (12 hex).
    pub id: String,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    pub created: Option<String>,
    pub size_bytes: i64,
    /// Containers using it (absent when the daemon did not count).
    pub containers: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ImageListOutput {
    pub summary: String,
    pub images: Vec<ImageRow>,
    pub total: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ImageInspectOutput {
    pub summary: String,
    pub id: String,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    pub created: Option<String>,
    pub size_bytes: Option<i64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub author: Option<String>,
    /// Env baked into the image; values redacted like container_inspect's.
    pub env: Vec<String>,
    pub env_redacted: usize,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub layers: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NetworkRow {
    pub id: String,
    pub name: String,
    pub driver: Option<String>,
    pub scope: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub created: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NetworkListOutput {
    pub summary: String,
    pub networks: Vec<NetworkRow>,
    pub total: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VolumeRow {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    pub created: Option<String>,
    pub scope: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VolumeListOutput {
    pub summary: String,
    pub volumes: Vec<VolumeRow>,
    pub total: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
    pub warnings: Vec<String>,
}

/// A container's state after a write.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContainerStateOutput {
    pub summary: String,
    pub id: String,
    pub name: String,
    /// State before the action.
    pub previous_status: String,
    /// State after the action.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub exit_code: Option<i64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub health: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RemoveOutput {
    pub summary: String,
    pub id: String,
    pub name: String,
    pub previous_status: String,
    pub removed: bool,
    /// Whether the container still exists afterwards (false once removed).
    pub exists: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PullOutput {
    pub summary: String,
    /// The reference pulled (with its tag).
    pub image: String,
    /// downloaded or up_to_date.
    pub status: String,
    pub layers: usize,
    pub layers_downloaded: usize,
    /// Compressed bytes downloaded (as the daemon reported them).
    pub bytes_downloaded: u64,
    pub digest: Option<String>,
    pub progress_notifications: u32,
    pub duration_ms: u64,
    /// The image after the pull.
    pub id: Option<String>,
    pub tags: Vec<String>,
    pub size_bytes: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ImageRemoveOutput {
    pub summary: String,
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
    /// Whether the reference still resolves to an image afterwards.
    pub exists: bool,
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PruneKind {
    /// Stopped containers (created, exited, dead).
    Containers,
    /// Dangling images (all unused ones with all_images) no container uses.
    Images,
    /// Unused local volumes (on API ≥ 1.42, anonymous ones only).
    Volumes,
    /// User-defined networks no container uses.
    Networks,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PruneItem {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PruneGroup {
    /// What went (or would go with dry_run).
    pub items: Vec<PruneItem>,
    pub count: usize,
    /// More than 500 items: the list is cut.
    pub truncated: bool,
    /// Bytes freed (real runs), or the estimate of a dry run when known.
    pub space_bytes: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PruneOutput {
    pub summary: String,
    pub dry_run: bool,
    pub containers: Option<PruneGroup>,
    pub images: Option<PruneGroup>,
    pub volumes: Option<PruneGroup>,
    pub networks: Option<PruneGroup>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecOutput {
    pub summary: String,
    /// Exit code (absent if it could not be read).
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    /// Output bytes the process wrote (returned or not).
    pub output_bytes: usize,
    /// True when output beyond max_output_bytes was dropped.
    pub truncated: bool,
    pub timed_out: bool,
    /// Killed by tailops after the timeout.
    pub killed: bool,
    pub duration_ms: u64,
}
