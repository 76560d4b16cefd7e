//! Process control: `process_signal`.
//!
//! Signals go through `kill(2)` (rustix), never a shell. Refused: PID 1,
//! this server's own PID, and kernel threads. After sending, the tool waits
//! (bounded) to report whether the process exited.

use std::time::{Duration, Instant};

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ToolError, ToolSpec};
use crate::auth::scopes::Scope;
use crate::mcp::TailopsServer;

pub const SPECS: &[ToolSpec] =
    &[ToolSpec { name: "process_signal", domain: "processes", scope: Some(Scope::ProcessesSignal), writes: true }];

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
