//! What the Docker tools accept (serde + schemars; doc comments become the
//! schema's descriptions), the bounds a caller picks within, and the checks
//! that turn an input into the host's request.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::host::docker::limits::{DEFAULT_STOP_SECS, MAX_ARGV, MAX_REF_LEN};
use crate::host::docker::{ContainerListQuery, ContainerStatus, ExecRequest, LogsQuery, PruneKind};
use crate::tools::ToolError;
use crate::tools::input::parse_time;

/// Log lines asked of the daemon by default (`tail`), and at most.
pub const DEFAULT_TAIL: usize = 100;
pub const MAX_TAIL: usize = 10_000;
/// Log bytes returned by default and at most (the newest lines are kept).
pub const DEFAULT_LOG_BYTES: usize = 64 * 1024;
pub const MAX_LOG_BYTES: usize = 1024 * 1024;
/// `container_exec`: output bytes (stdout + stderr) kept by default and at
/// most; time limit by default and at most; arg size (the argv length,
/// `MAX_ARGV`, is the host's).
pub const DEFAULT_EXEC_OUTPUT_BYTES: usize = 64 * 1024;
pub const MAX_EXEC_OUTPUT_BYTES: usize = 1024 * 1024;
pub const DEFAULT_EXEC_TIMEOUT_SECS: u64 = 30;
pub const MAX_EXEC_TIMEOUT_SECS: u64 = 300;
pub const MAX_ARG_BYTES: usize = 4096;
/// Largest grace period of stop/restart before SIGKILL (the default,
/// `DEFAULT_STOP_SECS`, is the host's).
pub const MAX_STOP_SECS: u32 = 45;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerListInput {
    /// Include stopped containers (default: running only).
    #[serde(default)]
    pub all: bool,
    /// Only containers whose name contains this (case-insensitive).
    #[serde(default)]
    pub name: Option<String>,
    /// Only containers carrying every one of these labels (`key` or `key=value`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Only containers in this state (implies all=true).
    #[serde(default)]
    pub status: Option<ContainerStatus>,
    /// Only containers of this Docker Compose project.
    #[serde(default)]
    pub compose_project: Option<String>,
    /// Group the page by Compose project (`groups` instead of `containers`).
    #[serde(default)]
    pub group_by_project: bool,
    /// Page size (1-500, default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl ContainerListInput {
    /// The host's query; paging (`limit`, `cursor`) is read separately with
    /// [`page_bounds`](crate::host::docker::page_bounds).
    pub fn query(self) -> ContainerListQuery {
        ContainerListQuery {
            all: self.all,
            name: self.name,
            labels: self.labels,
            status: self.status,
            compose_project: self.compose_project,
            group_by_project: self.group_by_project,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerInput {
    /// Container name or id (or a unique id prefix).
    pub container: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectInput {
    /// Container name or id (or a unique id prefix).
    pub container: String,
    /// Show env values and secret-looking labels and arguments unredacted
    /// (needs docker:admin).
    #[serde(default)]
    pub reveal_secrets: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsInput {
    /// Container name or id.
    pub container: String,
    /// The last N lines (1-10000, default 100).
    #[serde(default)]
    pub tail: Option<usize>,
    /// Only lines after this: RFC 3339, Unix seconds, or a duration ago (`15m`, `2h`).
    #[serde(default)]
    pub since: Option<String>,
    /// Only lines before this (same forms as `since`).
    #[serde(default)]
    pub until: Option<String>,
    /// Include stdout (default true).
    #[serde(default)]
    pub stdout: Option<bool>,
    /// Include stderr (default true).
    #[serde(default)]
    pub stderr: Option<bool>,
    /// Return each line's timestamp.
    #[serde(default)]
    pub timestamps: bool,
    /// Only lines containing this text (matched after redaction).
    #[serde(default)]
    pub grep: Option<String>,
    /// Match `grep` case-insensitively.
    #[serde(default)]
    pub ignore_case: bool,
    /// Byte cap of the returned lines (1-1048576, default 65536); the newest lines are kept.
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

impl LogsInput {
    /// Checks the bounds and reads the times.
    pub fn query(self) -> Result<LogsQuery, ToolError> {
        let tail = self.tail.unwrap_or(DEFAULT_TAIL);
        if tail == 0 || tail > MAX_TAIL {
            return Err(ToolError::invalid_input(format!("tail {tail} out of range"), format!("use 1-{MAX_TAIL}")));
        }
        let max_bytes = self.max_bytes.unwrap_or(DEFAULT_LOG_BYTES);
        if max_bytes == 0 || max_bytes > MAX_LOG_BYTES {
            return Err(ToolError::invalid_input(
                format!("max_bytes {max_bytes} out of range"),
                format!("use 1-{MAX_LOG_BYTES}"),
            ));
        }
        let since = self.since.as_deref().map(|s| parse_time("since", s)).transpose()?;
        let until = self.until.as_deref().map(|s| parse_time("until", s)).transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && u <= s
        {
            return Err(ToolError::invalid_input("until must be after since", "swap or widen the range"));
        }
        let (stdout, stderr) = (self.stdout.unwrap_or(true), self.stderr.unwrap_or(true));
        if !stdout && !stderr {
            return Err(ToolError::invalid_input("both stdout and stderr are off", "ask for at least one stream"));
        }
        if self.grep.as_ref().is_some_and(|g| g.is_empty() || g.len() > 1024) {
            return Err(ToolError::invalid_input("grep must be 1-1024 characters", ""));
        }
        Ok(LogsQuery {
            container: self.container,
            tail,
            since,
            until,
            stdout,
            stderr,
            timestamps: self.timestamps,
            grep: self.grep,
            ignore_case: self.ignore_case,
            max_bytes,
        })
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsInput {
    /// One container; omit for every running container.
    #[serde(default)]
    pub container: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageListInput {
    /// Include intermediate images.
    #[serde(default)]
    pub all: bool,
    /// Only images with a tag containing this.
    #[serde(default)]
    pub reference: Option<String>,
    /// Only dangling (untagged) images, or only tagged ones.
    #[serde(default)]
    pub dangling: Option<bool>,
    /// Page size (1-500, default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// Image reference (`name[:tag]`, `name@sha256:…`) or id.
    pub image: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkListInput {
    /// Only networks whose name contains this.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeListInput {
    /// Only volumes whose name contains this.
    #[serde(default)]
    pub name: Option<String>,
    /// Only volumes no container uses (true) or only used ones (false).
    #[serde(default)]
    pub dangling: Option<bool>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopInput {
    /// Container name or id.
    pub container: String,
    /// Seconds to wait after the stop signal before SIGKILL (0-45, default 10).
    #[serde(default)]
    pub timeout_secs: Option<u32>,
}

impl StopInput {
    /// The grace period, default [`DEFAULT_STOP_SECS`], at most [`MAX_STOP_SECS`].
    pub fn grace(&self) -> Result<u32, ToolError> {
        let grace = self.timeout_secs.unwrap_or(DEFAULT_STOP_SECS);
        if grace > MAX_STOP_SECS {
            return Err(ToolError::invalid_input(format!("timeout_secs {grace} is over {MAX_STOP_SECS}"), ""));
        }
        Ok(grace)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillInput {
    /// Container name or id.
    pub container: String,
    /// Signal name (KILL, TERM, HUP, USR1 …, with or without SIG) or number; default KILL.
    #[serde(default)]
    pub signal: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveInput {
    /// Container name or id.
    pub container: String,
    /// Kill and remove a running container.
    #[serde(default)]
    pub force: bool,
    /// Also remove its anonymous volumes.
    #[serde(default)]
    pub volumes: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullInput {
    /// `name[:tag]` (tag defaults to latest) or `name@sha256:…`, with an
    /// optional registry host (`registry.example:5000/team/app:1.2`).
    pub image: String,
    /// Platform, e.g. `linux/arm64` (default: the daemon's).
    #[serde(default)]
    pub platform: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRemoveInput {
    /// Image reference or id.
    pub image: String,
    /// Remove even if tagged in several repositories or used by a stopped container.
    #[serde(default)]
    pub force: bool,
    /// Keep untagged parent images.
    #[serde(default)]
    pub noprune: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneInput {
    /// What to prune: containers, images, volumes, networks (one or more).
    pub kinds: Vec<PruneKind>,
    /// Only list what would go (default true). Pass false to remove.
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Images: every unused image, not only dangling ones.
    #[serde(default)]
    pub all_images: bool,
    /// Only objects carrying every one of these labels (`key` or `key=value`).
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecInput {
    /// Container name or id (must be running).
    pub container: String,
    /// Program and arguments, run directly (no shell): ["ls", "-l", "/data"].
    /// For a pipeline name the shell yourself: ["sh", "-c", "…"].
    pub argv: Vec<String>,
    /// Working directory inside the container.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// User (name or uid[:gid]) inside the container.
    #[serde(default)]
    pub user: Option<String>,
    /// Seconds before the process is killed (1-300, default 30).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Cap of stdout + stderr bytes returned (1-1048576, default 65536).
    #[serde(default)]
    pub max_output_bytes: Option<usize>,
    /// Return output unredacted.
    #[serde(default)]
    pub reveal_secrets: bool,
}

impl ExecInput {
    /// Checks argv, the time limit, the output cap, working_dir and user.
    pub fn request(self) -> Result<ExecRequest, ToolError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(ToolError::invalid_input(
                "argv is empty",
                "give the program and its arguments: [\"ls\", \"-l\"]",
            ));
        }
        if self.argv.len() > MAX_ARGV || self.argv.iter().any(|a| a.len() > MAX_ARG_BYTES || a.contains('\0')) {
            return Err(ToolError::invalid_input(
                format!("argv too long (at most {MAX_ARGV} arguments of {MAX_ARG_BYTES} bytes, no NUL)"),
                "",
            ));
        }
        let timeout_secs = self.timeout_secs.unwrap_or(DEFAULT_EXEC_TIMEOUT_SECS);
        if timeout_secs == 0 || timeout_secs > MAX_EXEC_TIMEOUT_SECS {
            return Err(ToolError::invalid_input(
                format!("timeout_secs {timeout_secs} out of range"),
                format!("use 1-{MAX_EXEC_TIMEOUT_SECS}"),
            ));
        }
        let cap = self.max_output_bytes.unwrap_or(DEFAULT_EXEC_OUTPUT_BYTES);
        if cap == 0 || cap > MAX_EXEC_OUTPUT_BYTES {
            return Err(ToolError::invalid_input(
                format!("max_output_bytes {cap} out of range"),
                format!("use 1-{MAX_EXEC_OUTPUT_BYTES}"),
            ));
        }
        for (field, v) in [("working_dir", &self.working_dir), ("user", &self.user)] {
            if v.as_ref().is_some_and(|s| s.is_empty() || s.len() > MAX_REF_LEN || s.chars().any(|c| c.is_control())) {
                return Err(ToolError::invalid_input(format!("bad {field}"), ""));
            }
        }
        Ok(ExecRequest {
            container: self.container,
            argv: self.argv,
            working_dir: self.working_dir,
            user: self.user,
            timeout_secs,
            max_output_bytes: cap,
        })
    }
}
