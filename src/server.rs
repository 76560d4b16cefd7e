//! `tailops serve`: join the tailnet, serve HTTP on the tailnet listener
//! only, stop gracefully.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::tailnet::Node;

/// Runs the server until `shutdown` is cancelled. The node is always closed
/// on the way out (an ephemeral node logs out).
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state_dir = cfg.effective_state_dir();
    create_private_dir(&state_dir)?;
    let auth_key = cfg.auth_key()?;
    if auth_key.is_none() {
        tracing::info!(
            state_dir = %state_dir.display(),
            "no auth key (TS_AUTHKEY or authkey_file); if this node is not logged in yet, a login URL follows"
        );
    }

    let mut builder = Node::builder(&cfg.hostname)
        .state_dir(&state_dir)
        .ephemeral(cfg.ephemeral)
        .advertise_tags(cfg.advertise_tags.clone())
        .verbose_logs(cfg.tailscale_verbose)
        .up_timeout(Duration::from_secs(cfg.up_timeout_secs));
    if let Some(k) = auth_key {
        builder = builder.auth_key(k);
    }
    if let Some(u) = cfg.control_url.as_deref().filter(|u| !u.is_empty()) {
        builder = builder.control_url(u);
    }

    let node = tokio::select! {
        n = builder.start() => n.context("joining the tailnet")?,
        _ = shutdown.cancelled() => {
            // Dropping the start future closes the half-started node.
            tracing::info!("stopped before the node joined the tailnet");
            return Ok(());
        }
    };
    let info = node.info().clone();
    let listener = match node.listen(&format!(":{}", cfg.port)) {
        Ok(l) => l,
        Err(e) => {
            let _ = node.close().await;
            return Err(e).context("listening on the tailnet");
        }
    };
    let url = if cfg.port == 80 {
        format!("http://{}/", info.dns_name)
    } else {
        format!("http://{}:{}/", info.dns_name, cfg.port)
    };
    tracing::info!(
        dns_name = %info.dns_name,
        ips = ?info.ips,
        port = cfg.port,
        url = %url,
        "tailops is serving on the tailnet only"
    );

    let state = AppState {
        node: node.clone(),
        limits: cfg.limits.clone(),
        started: Instant::now(),
    };
    http::serve(listener, http::router(state), &cfg.limits, shutdown).await;

    node.close().await.context("closing the tailnet node")?;
    tracing::info!("stopped");
    Ok(())
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating state dir {}", dir.display()))
}
