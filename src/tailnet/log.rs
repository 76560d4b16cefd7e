//! Forwards the Go side's log lines into `tracing`.
//!
//! The node writes one line per `write(2)` into a pipe: `U …` for what a
//! person should see (login URL, state changes), `D …` for backend chatter
//! (only when verbose). A plain thread reads the pipe, because it must keep
//! draining even while the tokio runtime is shutting down; it ends when the
//! Go side closes its copy of the write end (node closed).

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};

use super::{Error, Result, ffi};

/// Creates the pipe, hands its write end to node `sd`, and starts the
/// forwarding thread.
pub(crate) fn attach(sd: ffi::Handle, hostname: &str, verbose: bool) -> Result<()> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::Io { op: "log pipe", source: e.into() })?;
    ffi::set_logfd(sd, write.as_raw_fd(), verbose)?;
    drop(write); // the Go side holds its own dup
    let node = hostname.to_string();
    std::thread::Builder::new()
        .name(format!("tslog-{node}"))
        .spawn(move || forward(read, &node))
        .map_err(|e| Error::Io { op: "log thread", source: e })?;
    Ok(())
}

fn forward(read: OwnedFd, node: &str) {
    let reader = BufReader::new(std::fs::File::from(read));
    for line in reader.lines() {
        let Ok(line) = line else { break };
        match line.split_once(' ') {
            Some(("U", msg)) => tracing::info!(target: "tailscale", node, "{msg}"),
            Some(("D", msg)) => tracing::debug!(target: "tailscale", node, "{msg}"),
            _ => tracing::debug!(target: "tailscale", node, "{line}"),
        }
    }
}
