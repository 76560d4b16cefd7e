//! Graceful stop: the first SIGINT or SIGTERM cancels one token that every
//! long-running task watches; a second signal exits at once. SIGHUP asks
//! for a configuration reload ([`reload_requested`]).

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

static RELOAD: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Completes when a SIGHUP arrived (one stored wake-up: a SIGHUP during a
/// reload is not lost).
pub async fn reload_requested() {
    RELOAD.notified().await;
}

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
    // SIGHUP's handler is among those `install` fixed (SA_ONSTACK); this
    // listener shares it.
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(signal = "SIGHUP", "configuration reload requested");
            RELOAD.notify_one();
        }
    });
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
