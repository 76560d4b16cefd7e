//! Processes: `process_list` and `process_info` (`system:read`), and
//! `process_signal` (`processes:signal`).
//!
//! The list comes from the sampler's latest snapshot (no scan in the request
//! path); `process_info` reads one process live from /proc. Command lines
//! are redacted (secret-looking arguments). Signals go through `kill(2)`
//! (rustix), never a shell. Refused: PID 1, this server's own PID, and
//! kernel threads. After sending, the tool waits (bounded) to report whether
//! the process exited.

use std::time::{Duration, Instant};

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ToolError, ToolSpec};
use crate::auth::scopes::Scope;
use crate::mcp::TailopsServer;

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
    /// Only processes whose command line contains this substring.
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

/// `/proc/PID/status` field in kB → bytes.
fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

fn container_id(cgroup: &str) -> Option<String> {
    cgroup
        .split(['/', '-', '.', ':'])
        .find(|seg| seg.len() == 64 && seg.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
}

/// Longest a caller may ask to wait for the process to exit.
pub const MAX_WAIT_MS: u64 = 10_000;
/// Default wait for the process to exit.
pub const DEFAULT_WAIT_MS: u64 = 1_000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalInput {
    /// Process id to signal.
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

fn parse_signal(s: &str) -> Option<(rustix::process::Signal, &'static str)> {
    use rustix::process::Signal;
    let up = s.trim().to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    Some(match name {
        "TERM" => (Signal::TERM, "TERM"),
        "KILL" => (Signal::KILL, "KILL"),
        "HUP" => (Signal::HUP, "HUP"),
        "INT" => (Signal::INT, "INT"),
        "QUIT" => (Signal::QUIT, "QUIT"),
        "USR1" => (Signal::USR1, "USR1"),
        "USR2" => (Signal::USR2, "USR2"),
        "STOP" => (Signal::STOP, "STOP"),
        "CONT" => (Signal::CONT, "CONT"),
        _ => return None,
    })
}

/// Process state letter and flags from /proc/PID/stat, None if gone.
fn proc_state(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 9 of stat is flags; after comm it is index 6.
    let flags = fields.get(6)?.parse().ok()?;
    Some((state, flags))
}

const PF_KTHREAD: u64 = 0x0020_0000;

#[tool_router(router = processes_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "process_list",
        description = "Processes from the latest sample: sort by cpu/memory/pid/name, filter by name, user or command-line substring, paginated with a cursor. Secret-looking arguments are redacted.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn process_list(&self, Parameters(input): Parameters<ListInput>) -> Result<Json<ListOutput>, ToolError> {
        let limit = input.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ToolError::invalid_input(format!("limit {limit} out of range"), "use 1-500"));
        }
        let offset = match &input.cursor {
            None => 0,
            Some(c) => c.strip_prefix("o:").and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| {
                ToolError::invalid_input("cursor is not one this server issued", "pass next_cursor unchanged")
            })?,
        };
        let snap = self.sampler()?.latest();
        let name = input.name.as_deref().map(str::to_lowercase);
        let mut rows: Vec<&crate::sampler::ProcessSample> = snap
            .processes
            .iter()
            .filter(|p| name.as_deref().is_none_or(|n| p.name.to_lowercase().contains(n)))
            .filter(|p| input.user.as_deref().is_none_or(|u| p.user.as_deref() == Some(u)))
            .filter(|p| input.cmdline_contains.as_deref().is_none_or(|c| p.cmdline.join(" ").contains(c)))
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
        let end = offset + page.len();
        let truncated = end < total;
        let summary = format!("{} of {} matching processes (from {})", page.len(), total, snap.taken_at);
        Ok(Json(ListOutput {
            summary,
            processes: page,
            total,
            truncated,
            next_cursor: truncated.then(|| format!("o:{end}")),
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
        let dir = format!("/proc/{pid}");
        let status = std::fs::read_to_string(format!("{dir}/status"))
            .map_err(|_| ToolError::not_found(format!("no process {pid}"), "list processes to find the pid"))?;
        let cmdline: Vec<String> = std::fs::read(format!("{dir}/cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let uid = status_field(&status, "Uid:").and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok());
        let snap = self.sampler()?.latest();
        let sample = snap.processes.iter().find(|p| i64::from(p.pid) == i64::from(pid));
        let user = sample.and_then(|p| p.user.clone());
        let cgroup = std::fs::read_to_string(format!("{dir}/cgroup"))
            .ok()
            .map(|c| c.lines().map(|l| l.splitn(3, ':').nth(2).unwrap_or(l).to_string()).collect::<Vec<_>>().join(" "));
        let mut children: Vec<u32> = snap
            .processes
            .iter()
            .filter(|p| p.ppid.map(i64::from) == Some(i64::from(pid)))
            .map(|p| p.pid)
            .take(MAX_CHILDREN)
            .collect();
        children.sort_unstable();
        let name = status_field(&status, "Name:").unwrap_or_default().to_string();
        let state = status_field(&status, "State:").unwrap_or_default().to_string();
        let fd_count = std::fs::read_dir(format!("{dir}/fd")).ok().map(|d| d.count());
        let memory = MemoryBreakdown {
            rss: status_kb(&status, "VmRSS:"),
            rss_anon: status_kb(&status, "RssAnon:"),
            rss_file: status_kb(&status, "RssFile:"),
            rss_shmem: status_kb(&status, "RssShmem:"),
            virtual_size: status_kb(&status, "VmSize:"),
            swap: status_kb(&status, "VmSwap:"),
        };
        let summary = format!(
            "{pid} {name} ({state}), {} MiB resident, {} threads",
            memory.rss.unwrap_or(0) >> 20,
            status_field(&status, "Threads:").unwrap_or("?")
        );
        Ok(Json(InfoOutput {
            summary,
            pid,
            ppid: status_field(&status, "PPid:").and_then(|v| v.parse().ok()),
            name,
            cmdline: redact_cmdline(&cmdline),
            exe: std::fs::read_link(format!("{dir}/exe")).ok().map(|p| p.display().to_string()),
            cwd: std::fs::read_link(format!("{dir}/cwd")).ok().map(|p| p.display().to_string()),
            uid,
            user,
            state,
            threads: status_field(&status, "Threads:").and_then(|v| v.parse().ok()),
            fd_count,
            memory,
            container_id: cgroup.as_deref().and_then(container_id),
            cgroup,
            start_time_unix: sample.map(|p| p.start_time_unix),
            cpu_percent: sample.map(|p| p.cpu_percent),
            children,
        }))
    }

    #[tool(
        name = "process_signal",
        description = "Send a signal (TERM, KILL, HUP, INT, QUIT, USR1, USR2, STOP, CONT) to one process and report whether it exited. Refuses PID 1, tailops itself and kernel threads.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn process_signal(
        &self,
        Parameters(input): Parameters<SignalInput>,
    ) -> Result<Json<SignalOutput>, ToolError> {
        let sig_text = input.signal.as_deref().unwrap_or("TERM");
        let Some((sig, sig_name)) = parse_signal(sig_text) else {
            return Err(ToolError::invalid_input(
                format!("unknown signal {sig_text:?}"),
                "use one of TERM, KILL, HUP, INT, QUIT, USR1, USR2, STOP, CONT",
            ));
        };
        let wait_ms = input.wait_ms.unwrap_or(DEFAULT_WAIT_MS);
        if wait_ms > MAX_WAIT_MS {
            return Err(ToolError::invalid_input(
                format!("wait_ms {wait_ms} is over {MAX_WAIT_MS}"),
                "wait at most 10000 ms",
            ));
        }
        if input.pid <= 0 {
            return Err(ToolError::invalid_input(
                "pid must be a positive process id",
                "list processes to find the pid",
            ));
        }
        if input.pid == 1 {
            return Err(ToolError::permission_denied(
                "refusing to signal PID 1 (init)",
                "signal a specific service instead",
            ));
        }
        if u32::try_from(input.pid).ok() == Some(std::process::id()) {
            return Err(ToolError::permission_denied(
                "refusing to signal tailops itself",
                "stop tailops through systemd",
            ));
        }
        let Some((_, flags)) = proc_state(input.pid) else {
            return Err(ToolError::not_found(format!("no process {}", input.pid), "list processes to find the pid"));
        };
        if flags & PF_KTHREAD != 0 {
            return Err(ToolError::permission_denied(format!("process {} is a kernel thread", input.pid), ""));
        }
        let name = std::fs::read_to_string(format!("/proc/{}/comm", input.pid)).unwrap_or_default().trim().to_string();
        let Some(pid) = rustix::process::Pid::from_raw(input.pid) else {
            return Err(ToolError::invalid_input("pid must be a positive process id", ""));
        };
        if let Err(e) = rustix::process::kill_process(pid, sig) {
            return Err(match e {
                rustix::io::Errno::SRCH => ToolError::not_found(format!("no process {}", input.pid), ""),
                rustix::io::Errno::PERM => ToolError::permission_denied(
                    format!("not permitted to signal process {}", input.pid),
                    "tailops runs as a user that does not own that process",
                ),
                e => ToolError::internal(format!("kill failed: {e}")),
            });
        }
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_millis(wait_ms);
        let mut exited = false;
        loop {
            match proc_state(input.pid) {
                None | Some(('Z', _)) | Some(('X', _)) => {
                    exited = true;
                    break;
                }
                _ if Instant::now() >= deadline => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
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
    fn container_ids_from_cgroup_paths() {
        let id = "a".repeat(64);
        assert_eq!(container_id(&format!("/system.slice/docker-{id}.scope")), Some(id.clone()));
        assert_eq!(container_id(&format!("/docker/{id}")), Some(id));
        assert_eq!(container_id("/user.slice/user-0.slice/session-1.scope"), None);
    }

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("sigterm").map(|s| s.1), Some("TERM"));
        assert_eq!(parse_signal(" KILL ").map(|s| s.1), Some("KILL"));
        assert!(parse_signal("SEGV").is_none());
    }

    #[test]
    fn reads_own_state_and_kthreadd_flags() {
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let (state, flags) = proc_state(me).unwrap_or(('?', 0));
        assert!("RS".contains(state), "{state}");
        assert_eq!(flags & PF_KTHREAD, 0);
        assert!(proc_state(i32::MAX).is_none());
    }
}
