//! `container_exec`: argv only (never a shell string), a time limit, an
//! output cap, the exit code; off unless `[docker] exec_enabled = true`.

use std::time::{Duration, Instant};

use bollard::models as m;
use futures::StreamExt;

use super::client::Docker;
use super::config::Endpoint;
use super::convert::{name_of, state_view};
use super::types::ExecOutput;
use crate::mcp::contract::{ErrorCategory, ToolError};
use crate::redact::redact_text;

/// A `container_exec` request, checked by the caller: a non-empty argv of
/// bounded size without NUL, a working directory and user without control
/// characters, a time limit and output cap within the tool's bounds.
#[derive(Debug)]
pub struct ExecRequest {
    /// Container name or id (must be running).
    pub container: String,
    /// Program and arguments, run directly (no shell).
    pub argv: Vec<String>,
    /// Working directory inside the container.
    pub working_dir: Option<String>,
    /// User (name or uid[:gid]) inside the container.
    pub user: Option<String>,
    /// Seconds before the process is killed.
    pub timeout_secs: u64,
    /// Cap of stdout + stderr bytes returned.
    pub max_output_bytes: usize,
}

/// Exec output: the first `cap` bytes of stdout and stderr together.
struct ExecCollector {
    cap: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    seen: usize,
}

impl ExecCollector {
    fn push(&mut self, err: bool, data: &[u8]) {
        self.seen += data.len();
        let room = self.cap.saturating_sub(self.stdout.len() + self.stderr.len());
        let take = &data[..data.len().min(room)];
        if err {
            self.stderr.extend_from_slice(take);
        } else {
            self.stdout.extend_from_slice(take);
        }
    }
}

/// Whether `pid` (host PID) belongs to the container `id`, by its cgroup.
fn pid_in_container(pid: i64, id: &str) -> bool {
    pid > 1 && id.len() == 64 && std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(id))
}

impl Docker {
    /// `container_exec` is refused unless `[docker] exec_enabled = true`.
    pub fn check_exec_enabled(&self) -> Result<(), ToolError> {
        if !self.cfg().exec_enabled {
            return Err(ToolError::permission_denied(
                "container_exec is switched off on this server",
                "an operator can enable it with [docker] exec_enabled = true",
            ));
        }
        Ok(())
    }

    /// Runs `req.argv` in a running container, stdout and stderr kept up to
    /// `req.max_output_bytes`, killed after `req.timeout_secs` when its host
    /// PID provably belongs to the container; output redacted unless
    /// `reveal`. `spine_secs` is the spine's limit for the whole call.
    pub async fn container_exec(
        &self,
        req: ExecRequest,
        reveal: bool,
        spine_secs: u64,
    ) -> Result<ExecOutput, ToolError> {
        self.check_exec_enabled()?;
        let (timeout_secs, cap) = (req.timeout_secs, req.max_output_bytes);
        let program = req.argv.first().cloned().unwrap_or_default();
        // Leave time to kill the process and read its exit code.
        let run_for = Duration::from_secs(timeout_secs).min(Self::budget(spine_secs).saturating_sub(self.timeout()));
        let c = self.conn().await?;
        let i = self.inspect(&c, &req.container).await?;
        let st = state_view(i.state.as_ref());
        if !st.running || st.paused {
            return Err(ToolError::new(
                ErrorCategory::Conflict,
                format!("{} is {}: exec needs a running container", name_of(&i), st.status),
                "start or unpause it first",
            ));
        }
        let id = i.id.clone().unwrap_or_default();
        let t0 = Instant::now();
        let cfg = m::ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(false),
            tty: Some(false),
            cmd: Some(req.argv.clone()),
            working_dir: req.working_dir.clone(),
            user: req.user.clone(),
            ..Default::default()
        };
        let exec = self.run(&c, self.timeout(), c.api.create_exec(&id, cfg)).await?;
        let start = bollard::exec::StartExecOptions { detach: false, tty: false, output_capacity: None };
        let started = self.run(&c, self.timeout(), c.api.start_exec(&exec.id, Some(start))).await?;
        let mut col = ExecCollector { cap, stdout: Vec::new(), stderr: Vec::new(), seen: 0 };
        let mut timed_out = false;
        if let bollard::exec::StartExecResults::Attached { mut output, input: stdin } = started {
            drop(stdin);
            let deadline = tokio::time::Instant::now() + run_for;
            loop {
                match tokio::time::timeout_at(deadline, output.next()).await {
                    Err(_) => {
                        timed_out = true;
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => return Err(self.classify(&c, e)),
                    Ok(Some(Ok(frame))) => {
                        use bollard::container::LogOutput;
                        match &frame {
                            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                                col.push(false, &message[..])
                            }
                            LogOutput::StdErr { message } => col.push(true, &message[..]),
                            LogOutput::StdIn { .. } => {}
                        }
                    }
                }
            }
        }
        // Exit code: the stream ends a moment before the daemon records it.
        let mut killed = false;
        let mut exit_code = None;
        let wait_until = Instant::now() + Duration::from_secs(2);
        loop {
            let ins = self.run(&c, self.timeout(), c.api.inspect_exec(&exec.id)).await?;
            if ins.running != Some(true) {
                exit_code = ins.exit_code;
                break;
            }
            if timed_out && !killed {
                // Kill it only when its host PID provably belongs to this
                // container (local daemon, same PID namespace).
                if matches!(c.endpoint, Endpoint::Unix(_))
                    && let Some(pid) = ins.pid
                    && pid_in_container(pid, &id)
                    && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
                {
                    killed = rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok();
                }
                if !killed {
                    break;
                }
            }
            if Instant::now() > wait_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let stdout = redact_text(&String::from_utf8_lossy(&col.stdout), reveal);
        let stderr = redact_text(&String::from_utf8_lossy(&col.stderr), reveal);
        let truncated = col.seen > col.stdout.len() + col.stderr.len();
        let duration_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let summary = if timed_out {
            format!(
                "{:?} timed out after {} s in {}{}",
                program,
                run_for.as_secs(),
                name_of(&i),
                if killed { "; killed" } else { "; it may still be running" }
            )
        } else {
            format!(
                "{:?} exited {} in {} ms ({} output bytes{})",
                program,
                exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
                duration_ms,
                col.seen,
                if truncated { ", truncated" } else { "" }
            )
        };
        Ok(ExecOutput {
            summary,
            exit_code,
            stdout,
            stderr,
            output_bytes: col.seen,
            truncated,
            timed_out,
            killed,
            duration_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_output_is_capped() {
        let mut col = ExecCollector { cap: 5, stdout: Vec::new(), stderr: Vec::new(), seen: 0 };
        col.push(false, b"abc");
        col.push(true, b"defg");
        col.push(false, b"hij");
        assert_eq!((col.stdout.as_slice(), col.stderr.as_slice(), col.seen), (&b"abc"[..], &b"de"[..], 10));
    }
}
