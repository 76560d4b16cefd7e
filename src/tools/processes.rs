//! Processes: `process_list` and `process_info` (`system:read`), and
//! `process_signal` (`processes:signal`).
//!
//! The list comes from the sampler's latest snapshot (no scan in the request
//! path); `process_info` reads one process live from /proc (through
//! [`crate::host::procfs`], as every /proc/PID reader does). Command lines
//! are redacted (secret-looking arguments). Signals go through a pidfd
//! (rustix), never a shell, after [`crate::host::signal::check`]: a thread
//! id is refused (a signal to it reaches its whole process), and so are PID
//! 1, tailops itself, its parent and kernel threads, by any of their thread
//! ids. After sending, the tool waits (bounded, on the pidfd) to report
//! whether the process exited.

use std::time::{Duration, Instant};

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TailopsServer;
use super::input::parse_signal;
use crate::auth::scopes::Scope;
use crate::host::{procfs, signal};
use crate::mcp::page::{self, Page};
use crate::mcp::{ToolError, ToolSpec};

pub const SPECS: &[ToolSpec] = &[
    ToolSpec { name: "process_list", domain: "processes", scope: Some(Scope::SystemRead), writes: false },
    ToolSpec { name: "process_info", domain: "processes", scope: Some(Scope::SystemRead), writes: false },
    ToolSpec { name: "process_signal", domain: "processes", scope: Some(Scope::ProcessesSignal), writes: true },
];

/// Default and largest page of `process_list`.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;
/// Children listed by `process_info`.
pub const MAX_CHILDREN: usize = 200;
/// Longest command line returned, in arguments.
pub const MAX_ARGS: usize = 256;

#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    #[default]
    Cpu,
    Memory,
    Pid,
    Name,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Sort key: cpu (default, descending), memory (descending), pid, name.
    #[serde(default)]
    pub sort_by: SortBy,
    /// Only processes whose name contains this (case-insensitive).
    #[serde(default)]
    pub name: Option<String>,
    /// Only processes of this user name.
    #[serde(default)]
    pub user: Option<String>,
    /// Only processes whose command line, as shown (redacted, arguments
    /// joined by spaces), contains this substring.
    #[serde(default)]
    pub cmdline_contains: Option<String>,
    /// Page size (1-500, default 50).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ProcessRow {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub name: String,
    pub user: Option<String>,
    pub state: String,
    /// Percent of one core.
    pub cpu_percent: f64,
    /// Resident memory.
    pub memory_bytes: u64,
    /// Command line, secret-looking arguments redacted.
    pub cmdline: Vec<String>,
    pub start_time_unix: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub summary: String,
    pub processes: Vec<ProcessRow>,
    /// Matching processes in the snapshot.
    pub total: usize,
    /// True when more pages follow.
    pub truncated: bool,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
    pub sampled_at: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InfoInput {
    pub pid: i32,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct MemoryBreakdown {
    /// Resident set (VmRSS) and its parts, bytes.
    pub rss: Option<u64>,
    pub rss_anon: Option<u64>,
    pub rss_file: Option<u64>,
    pub rss_shmem: Option<u64>,
    /// Virtual size (VmSize) and swapped-out (VmSwap), bytes.
    pub virtual_size: Option<u64>,
    pub swap: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InfoOutput {
    pub summary: String,
    pub pid: i32,
    pub ppid: Option<i32>,
    pub name: String,
    /// Command line, secret-looking arguments redacted.
    pub cmdline: Vec<String>,
    pub exe: Option<String>,
    pub cwd: Option<String>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub state: String,
    pub threads: Option<u64>,
    pub fd_count: Option<usize>,
    pub memory: MemoryBreakdown,
    /// cgroup v2 path (or v1 lines joined).
    pub cgroup: Option<String>,
    /// Container id (64 hex) when the cgroup path names one.
    pub container_id: Option<String>,
    pub start_time_unix: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub children: Vec<u32>,
}

/// The first [`MAX_ARGS`] arguments, secrets redacted.
fn redact_cmdline(args: &[String]) -> Vec<String> {
    crate::redact::redact_argv(&args[..args.len().min(MAX_ARGS)])
}

/// Whether the command line as shown ([`redact_cmdline`], arguments joined
/// by spaces) contains `needle`.
fn shown_cmdline_contains(args: &[String], needle: &str) -> bool {
    redact_cmdline(args).join(" ").contains(needle)
}

/// Longest a caller may ask to wait for the process to exit.
pub const MAX_WAIT_MS: u64 = 10_000;
/// Default wait for the process to exit.
pub const DEFAULT_WAIT_MS: u64 = 1_000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalInput {
    /// Process id to signal (1-4194303; a thread id is refused).
    pub pid: i32,
    /// Signal name: TERM, KILL, HUP, INT, QUIT, USR1, USR2, STOP, CONT
    /// (with or without the SIG prefix). Default TERM.
    #[serde(default)]
    pub signal: Option<String>,
    /// Milliseconds to wait for the process to exit (0-10000, default 1000).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SignalOutput {
    pub pid: i32,
    pub signal: String,
    /// Command name of the process (from /proc/PID/comm) before signalling.
    pub name: String,
    /// True when the process is gone (or a zombie) within the wait.
    pub exited: bool,
    /// Milliseconds waited.
    pub waited_ms: u64,
    /// One-line summary.
    pub summary: String,
}

#[tool_router(router = processes_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "process_list",
        description = "Processes from the latest sample: sort by cpu/memory/pid/name, filter by name, user or command-line substring, paginated with a cursor. Secret-looking arguments are redacted.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn process_list(&self, Parameters(input): Parameters<ListInput>) -> Result<Json<ListOutput>, ToolError> {
        let Page { limit, offset } = Page::parse(input.limit, input.cursor.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let snap = self.sampler()?.latest();
        let name = input.name.as_deref().map(str::to_lowercase);
        // Filters match only what the caller is shown: the command line is
        // redacted (and cut to MAX_ARGS) before `cmdline_contains` looks at
        // it, or the filter would reveal a hidden password one guessed
        // character at a time.
        let mut rows: Vec<&crate::host::sampler::ProcessSample> = snap
            .processes
            .iter()
            .filter(|p| name.as_deref().is_none_or(|n| p.name.to_lowercase().contains(n)))
            .filter(|p| input.user.as_deref().is_none_or(|u| p.user.as_deref() == Some(u)))
            .filter(|p| input.cmdline_contains.as_deref().is_none_or(|c| shown_cmdline_contains(&p.cmdline, c)))
            .collect();
        match input.sort_by {
            SortBy::Cpu => rows.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent).then(a.pid.cmp(&b.pid))),
            SortBy::Memory => rows.sort_by(|a, b| b.memory_bytes.cmp(&a.memory_bytes).then(a.pid.cmp(&b.pid))),
            SortBy::Pid => rows.sort_by_key(|p| p.pid),
            SortBy::Name => rows.sort_by(|a, b| a.name.cmp(&b.name).then(a.pid.cmp(&b.pid))),
        }
        let total = rows.len();
        let page: Vec<ProcessRow> = rows
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|p| ProcessRow {
                pid: p.pid,
                ppid: p.ppid,
                name: p.name.clone(),
                user: p.user.clone(),
                state: p.state.clone(),
                cpu_percent: p.cpu_percent,
                memory_bytes: p.memory_bytes,
                cmdline: redact_cmdline(&p.cmdline),
                start_time_unix: p.start_time_unix,
            })
            .collect();
        let end = offset.saturating_add(page.len());
        let truncated = end < total;
        let summary = format!("{} of {} matching processes (from {})", page.len(), total, snap.taken_at);
        Ok(Json(ListOutput {
            summary,
            processes: page,
            total,
            truncated,
            next_cursor: page::next_cursor(end, total),
            sampled_at: snap.taken_at.clone(),
        }))
    }

    #[tool(
        name = "process_info",
        description = "One process in detail, read live from /proc: command line (redacted), exe, cwd, user, state, threads, open fds, memory breakdown, cgroup and container id, start time, children.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn process_info(&self, Parameters(input): Parameters<InfoInput>) -> Result<Json<InfoOutput>, ToolError> {
        if input.pid <= 0 {
            return Err(ToolError::invalid_input(
                "pid must be a positive process id",
                "list processes to find the pid",
            ));
        }
        let pid = input.pid;
        // Positive: checked above.
        let proc_pid = pid.unsigned_abs();
        let status = procfs::status(proc_pid)
            .map_err(|_| ToolError::not_found(format!("no process {pid}"), "list processes to find the pid"))?;
        let cmdline = procfs::cmdline(proc_pid).unwrap_or_default();
        let snap = self.sampler()?.latest();
        let sample = snap.processes.iter().find(|p| p.pid == proc_pid);
        let user = sample.and_then(|p| p.user.clone());
        let cgroup = procfs::cgroup(proc_pid).ok();
        let mut children: Vec<u32> =
            snap.processes.iter().filter(|p| p.ppid == Some(proc_pid)).map(|p| p.pid).take(MAX_CHILDREN).collect();
        children.sort_unstable();
        let name = status.name.clone().unwrap_or_default();
        let state = status.state.clone().unwrap_or_default();
        let fd_count = procfs::fd_count(proc_pid).ok();
        let memory = MemoryBreakdown {
            rss: status.vm_rss,
            rss_anon: status.rss_anon,
            rss_file: status.rss_file,
            rss_shmem: status.rss_shmem,
            virtual_size: status.vm_size,
            swap: status.vm_swap,
        };
        let summary = format!(
            "{pid} {name} ({state}), {} MiB resident, {} threads",
            memory.rss.unwrap_or(0) >> 20,
            status.threads.map_or_else(|| "?".to_owned(), |t| t.to_string())
        );
        Ok(Json(InfoOutput {
            summary,
            pid,
            ppid: status.ppid,
            name,
            cmdline: redact_cmdline(&cmdline),
            exe: procfs::exe(proc_pid).ok().map(|p| p.display().to_string()),
            cwd: procfs::cwd(proc_pid).ok().map(|p| p.display().to_string()),
            uid: status.uid,
            user,
            state,
            threads: status.threads,
            fd_count,
            memory,
            container_id: cgroup.as_deref().and_then(procfs::container_id),
            cgroup,
            start_time_unix: sample.map(|p| p.start_time_unix),
            cpu_percent: sample.map(|p| p.cpu_percent),
            children,
        }))
    }

    #[tool(
        name = "process_signal",
        description = "Send a signal (TERM, KILL, HUP, INT, QUIT, USR1, USR2, STOP, CONT) to one process (by its process id, not a thread id) and report whether it exited. Refuses PID 1, tailops itself, its parent and kernel threads.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn process_signal(
        &self,
        Parameters(input): Parameters<SignalInput>,
    ) -> Result<Json<SignalOutput>, ToolError> {
        let sig_text = input.signal.as_deref().unwrap_or("TERM");
        let signal = parse_signal(sig_text)?;
        let (sig, sig_name) = (signal.to_rustix(), signal.name());
        let wait_ms = input.wait_ms.unwrap_or(DEFAULT_WAIT_MS);
        if wait_ms > MAX_WAIT_MS {
            return Err(ToolError::invalid_input(
                format!("wait_ms {wait_ms} is over {MAX_WAIT_MS}"),
                "wait at most 10000 ms",
            ));
        }
        // Checks first (thread id → its process, protected processes), then
        // the signal through a pidfd that cannot reach a successor of the
        // checked process; see host::signal for why each step is there.
        let target = signal::check(input.pid, &signal::Guard::current())?;
        let name = target.name;
        let pidfd = signal::send(target.pid, target.start_ticks, sig)?;
        let t0 = Instant::now();
        let exited = signal::wait_exit(pidfd, Duration::from_millis(wait_ms)).await;
        let waited_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let summary = format!(
            "sent SIG{sig_name} to {} ({name}); {}",
            input.pid,
            if exited {
                format!("it exited within {waited_ms} ms")
            } else {
                format!("still running after {waited_ms} ms")
            }
        );
        Ok(Json(SignalOutput { pid: input.pid, signal: sig_name.to_string(), name, exited, waited_ms, summary }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_filter_sees_only_the_redacted_command_line() {
        let args: Vec<String> = ["app", "--password=hunter2", "-v"].iter().map(|s| s.to_string()).collect();
        for probe in ["hunter", "hunter2", "--password=h", "=hunter2"] {
            assert!(!shown_cmdline_contains(&args, probe), "{probe} must not match a hidden value");
        }
        for probe in ["--password=[REDACTED]", "[REDACTED]", "--password", "app", "-v"] {
            assert!(shown_cmdline_contains(&args, probe), "{probe} is shown, so it matches");
        }
        // Arguments past MAX_ARGS are not shown, so they do not match either.
        let mut long: Vec<String> = vec!["x".into(); MAX_ARGS];
        long.push("beyond-the-cut".into());
        assert!(!shown_cmdline_contains(&long, "beyond-the-cut"));
    }

    #[test]
    fn cmdlines_are_redacted() {
        let args: Vec<String> =
            ["psql", "--password=hunter2", "DB_PASSWORD=x", "-v"].iter().map(|s| s.to_string()).collect();
        let out = redact_cmdline(&args).join(" ");
        assert!(!out.contains("hunter2") && !out.contains("=x"), "{out}");
        assert!(out.starts_with("psql"));
    }
}
