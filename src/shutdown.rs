//! Graceful stop: the first SIGINT or SIGTERM cancels one token that every
//! long-running task watches; a second signal exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Spawns the signal watcher and returns the token it cancels.
///
/// The tokio handlers are registered here, and then the process-wide
/// SA_ONSTACK fix is applied (see `tailnet::signals`), so this must run
/// before the tailnet node starts handling traffic.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    crate::tailnet::signals::install()?;
    let t = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "stopping gracefully (send it again to exit now)");
        t.cancel();
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    Ok(token)
}
