//! Docker tools: the MCP face of `host::docker` (the client, its time
//! limits and redaction are there).
//!
//! Read (`docker:read`): `docker_info`, `container_list`,
//! `container_inspect`, `container_logs`, `container_stats`,
//! `container_top`, `image_list`, `image_inspect`, `network_list`,
//! `volume_list`. Write (`docker:write`): `container_start`, `_stop`,
//! `_restart`, `_pause`, `_unpause`, `_kill`, and `image_pull` (MCP progress
//! notifications, cancellable). Admin (`docker:admin`): `container_remove`,
//! `image_remove`, `prune` (a dry run unless told otherwise) and
//! `container_exec` (argv only, never a shell string; off unless
//! `[docker] exec_enabled = true`).

use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, tool, tool_router};

use crate::auth::caller::Caller;
use crate::auth::scopes::Scope;
use crate::host::docker::{
    ContainerListOutput, ContainerStateOutput, Docker, ExecOutput, ImageInspectOutput, ImageListOutput,
    ImageRemoveOutput, InfoOutput, InspectOutput, LogsOutput, NetworkListOutput, PruneOutput, PullOutput,
    PullProgressSink, RemoveOutput, StatsOutput, TopOutput, VolumeListOutput, page_bounds,
};
use crate::tools::TailopsServer;
use crate::tools::{ToolError, ToolSpec};

mod inputs;

use super::input::parse_signal;
pub use inputs::*;

const fn read(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "docker", scope: Some(Scope::DockerRead), writes: false }
}
const fn write(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "docker", scope: Some(Scope::DockerWrite), writes: true }
}
const fn admin(name: &'static str) -> ToolSpec {
    ToolSpec { name, domain: "docker", scope: Some(Scope::DockerAdmin), writes: true }
}

pub const SPECS: &[ToolSpec] = &[
    read("docker_info"),
    read("container_list"),
    read("container_inspect"),
    read("container_logs"),
    read("container_stats"),
    read("container_top"),
    read("image_list"),
    read("image_inspect"),
    read("network_list"),
    read("volume_list"),
    write("container_start"),
    write("container_stop"),
    write("container_restart"),
    write("container_pause"),
    write("container_unpause"),
    write("container_kill"),
    write("image_pull"),
    admin("container_remove"),
    admin("image_remove"),
    admin("prune"),
    admin("container_exec"),
];

/// `reveal_secrets` needs docker:admin in effect for this call.
fn reveal_allowed(asked: bool, caller: &Caller) -> Result<bool, ToolError> {
    if !asked {
        return Ok(false);
    }
    if caller.effective_scopes().contains(&Scope::DockerAdmin) {
        Ok(true)
    } else {
        Err(ToolError::permission_denied(
            "reveal_secrets needs scope docker:admin",
            "call again without reveal_secrets to see the redacted view",
        ))
    }
}

/// Pull progress as MCP progress notifications, for a client that asked
/// for them with a progress token.
struct McpProgress<'a> {
    token: ProgressToken,
    peer: &'a Peer<RoleServer>,
}

impl PullProgressSink for McpProgress<'_> {
    fn notify(&self, value: f64, total: Option<f64>, message: String) -> impl Future<Output = bool> + Send {
        let mut p = ProgressNotificationParam::new(self.token.clone(), value).with_message(message);
        if let Some(total) = total {
            p = p.with_total(total);
        }
        async move { self.peer.notify_progress(p).await.is_ok() }
    }
}

impl TailopsServer {
    fn docker(&self) -> &Docker {
        &self.host.docker
    }

    fn spine_secs(&self) -> u64 {
        self.spine.cfg.limits.tool_timeout_secs
    }
}

#[tool_router(router = docker_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "docker_info",
        description = "Docker engine: version, API version, storage and cgroup drivers, container/image counts, and disk usage (docker system df).",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn docker_info(&self) -> Result<Json<InfoOutput>, ToolError> {
        self.docker().info().await.map(Json)
    }

    #[tool(
        name = "container_list",
        description = "Containers (running, or all): filter by name, labels, status or Compose project; optionally grouped by Compose project; paginated with a cursor.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn container_list(
        &self,
        Parameters(input): Parameters<ContainerListInput>,
    ) -> Result<Json<ContainerListOutput>, ToolError> {
        let page = page_bounds(input.limit, &input.cursor)?;
        self.docker().container_list(input.query(), page).await.map(Json)
    }

    #[tool(
        name = "container_inspect",
        description = "One container in detail: state and health, command, env (values redacted unless reveal_secrets with docker:admin), labels, mounts, ports, networks, restart policy, resource limits.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn container_inspect(
        &self,
        Parameters(input): Parameters<InspectInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<InspectOutput>, ToolError> {
        let reveal = reveal_allowed(input.reveal_secrets, &caller)?;
        self.docker().container_inspect(&input.container, reveal).await.map(Json)
    }

    #[tool(
        name = "container_logs",
        description = "A container's log lines: tail N, since/until, stdout/stderr, timestamps, grep filter, byte cap keeping the newest lines (truncated flag). Secret-looking values are redacted.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn container_logs(&self, Parameters(input): Parameters<LogsInput>) -> Result<Json<LogsOutput>, ToolError> {
        let q = input.query()?;
        self.docker().container_logs(q).await.map(Json)
    }

    #[tool(
        name = "container_stats",
        description = "Resource usage: CPU %, memory used/limit, network and block I/O, pids — for one container, or every running container. Read from the containers' cgroup files on this host, else one-shot Engine API readings; each row names its source.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn container_stats(&self, Parameters(input): Parameters<StatsInput>) -> Result<Json<StatsOutput>, ToolError> {
        self.docker().container_stats(input.container.as_deref()).await.map(Json)
    }

    #[tool(
        name = "container_top",
        description = "Processes running inside a container (ps -ef view), command lines redacted.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn container_top(&self, Parameters(input): Parameters<ContainerInput>) -> Result<Json<TopOutput>, ToolError> {
        self.docker().container_top(&input.container).await.map(Json)
    }

    #[tool(
        name = "image_list",
        description = "Local images: tags, digests, size, containers using them; filter by tag substring or dangling; paginated.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn image_list(
        &self,
        Parameters(input): Parameters<ImageListInput>,
    ) -> Result<Json<ImageListOutput>, ToolError> {
        let page = page_bounds(input.limit, &input.cursor)?;
        self.docker().image_list(input.all, input.reference.as_deref(), input.dangling, page).await.map(Json)
    }

    #[tool(
        name = "image_inspect",
        description = "One local image: id, tags, digests, size, platform, layers, entrypoint/cmd, env (values redacted), labels, exposed ports.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn image_inspect(
        &self,
        Parameters(input): Parameters<ImageInput>,
    ) -> Result<Json<ImageInspectOutput>, ToolError> {
        self.docker().image_inspect(&input.image).await.map(Json)
    }

    #[tool(
        name = "network_list",
        description = "Docker networks: driver, scope, internal, subnets and gateways, labels; paginated.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn network_list(
        &self,
        Parameters(input): Parameters<NetworkListInput>,
    ) -> Result<Json<NetworkListOutput>, ToolError> {
        let page = page_bounds(input.limit, &input.cursor)?;
        self.docker().network_list(input.name.as_deref(), page).await.map(Json)
    }

    #[tool(
        name = "volume_list",
        description = "Docker volumes: driver, mountpoint, labels; filter by name or dangling; paginated.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn volume_list(
        &self,
        Parameters(input): Parameters<VolumeListInput>,
    ) -> Result<Json<VolumeListOutput>, ToolError> {
        let page = page_bounds(input.limit, &input.cursor)?;
        self.docker().volume_list(input.name.as_deref(), input.dangling, page).await.map(Json)
    }

    #[tool(
        name = "container_start",
        description = "Start a stopped container; returns its state after. Refuses a container that is already running or paused.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn container_start(
        &self,
        Parameters(input): Parameters<ContainerInput>,
    ) -> Result<Json<ContainerStateOutput>, ToolError> {
        self.docker().container_start(&input.container).await.map(Json)
    }

    #[tool(
        name = "container_stop",
        description = "Stop a running container (stop signal, then SIGKILL after timeout_secs, default 10); returns its state after. Refuses one that is not running.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn container_stop(
        &self,
        Parameters(input): Parameters<StopInput>,
    ) -> Result<Json<ContainerStateOutput>, ToolError> {
        let grace = input.grace()?;
        self.docker().container_stop(&input.container, grace, self.spine_secs()).await.map(Json)
    }

    #[tool(
        name = "container_restart",
        description = "Restart a container (stop with timeout_secs grace, default 10, then start); returns its state after.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn container_restart(
        &self,
        Parameters(input): Parameters<StopInput>,
    ) -> Result<Json<ContainerStateOutput>, ToolError> {
        let grace = input.grace()?;
        self.docker().container_restart(&input.container, grace, self.spine_secs()).await.map(Json)
    }

    #[tool(
        name = "container_pause",
        description = "Freeze every process of a running container (cgroup freezer); returns its state after. Refuses one that is not running or already paused.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn container_pause(
        &self,
        Parameters(input): Parameters<ContainerInput>,
    ) -> Result<Json<ContainerStateOutput>, ToolError> {
        self.docker().container_pause(&input.container).await.map(Json)
    }

    #[tool(
        name = "container_unpause",
        description = "Resume a paused container; returns its state after. Refuses one that is not paused.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn container_unpause(
        &self,
        Parameters(input): Parameters<ContainerInput>,
    ) -> Result<Json<ContainerStateOutput>, ToolError> {
        self.docker().container_unpause(&input.container).await.map(Json)
    }

    #[tool(
        name = "container_kill",
        description = "Send a signal (default KILL) to a running container's main process; returns its state after. Refuses one that is not running.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn container_kill(
        &self,
        Parameters(input): Parameters<KillInput>,
    ) -> Result<Json<ContainerStateOutput>, ToolError> {
        let signal = parse_signal(input.signal.as_deref().unwrap_or("KILL"))?;
        self.docker().container_kill(&input.container, &format!("SIG{}", signal.name())).await.map(Json)
    }

    #[tool(
        name = "image_pull",
        description = "Pull an image from its registry (name[:tag] or name@digest), with progress notifications while layers download; cancellable. Returns the image after the pull.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn image_pull(
        &self,
        Parameters(input): Parameters<PullInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<PullOutput>, ToolError> {
        let progress = ctx.meta.get_progress_token().map(|token| McpProgress { token, peer: &ctx.peer });
        self.docker()
            .image_pull(&input.image, input.platform.as_deref(), &ctx.ct, progress.as_ref(), self.spine_secs())
            .await
            .map(Json)
    }

    #[tool(
        name = "container_remove",
        description = "Remove a container (force kills a running one; volumes also removes its anonymous volumes). Refuses a running container without force.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn container_remove(
        &self,
        Parameters(input): Parameters<RemoveInput>,
    ) -> Result<Json<RemoveOutput>, ToolError> {
        self.docker().container_remove(&input.container, input.force, input.volumes, self.spine_secs()).await.map(Json)
    }

    #[tool(
        name = "image_remove",
        description = "Remove a local image or untag it (force, noprune). Refuses an image in use by a container unless force (running containers always block it).",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn image_remove(
        &self,
        Parameters(input): Parameters<ImageRemoveInput>,
    ) -> Result<Json<ImageRemoveOutput>, ToolError> {
        self.docker().image_remove(&input.image, input.force, input.noprune).await.map(Json)
    }

    #[tool(
        name = "prune",
        description = "Remove unused Docker objects — stopped containers, dangling (or all unused) images, unused volumes, unused networks — optionally only those with given labels. dry_run (the default) lists what would go.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn prune(&self, Parameters(input): Parameters<PruneInput>) -> Result<Json<PruneOutput>, ToolError> {
        self.docker().prune(&input.kinds, input.dry_run, input.all_images, &input.labels).await.map(Json)
    }

    #[tool(
        name = "container_exec",
        description = "Run a program in a running container: argv only (no shell string), time limit, output byte cap, exit code. Off unless the server enables it.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn container_exec(
        &self,
        Parameters(input): Parameters<ExecInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<ExecOutput>, ToolError> {
        let d = self.docker();
        // The switch is refused first, before any argument is judged.
        d.check_exec_enabled()?;
        let reveal = reveal_allowed(input.reveal_secrets, &caller)?;
        let req = input.request()?;
        d.container_exec(req, reveal, self.spine_secs()).await.map(Json)
    }
}
