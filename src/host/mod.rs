//! What the tools observe and change on this host, one folder or file per
//! domain: no MCP routing, no HTTP. The MCP faces of these live in
//! `tools/` (`tools/<domain>` for each `host/<domain>`).

pub mod docker;
pub mod files;
pub mod journal;
pub mod net;
pub mod procfs;
pub mod sampler;
pub mod signal;
pub mod systemd;

use std::sync::Arc;

/// The host-side handles shared by every tool call: built once by the
/// composition root (`server.rs`), cloned cheaply into each MCP session.
pub struct Host {
    /// Host metrics (None only in tests or when it failed to start).
    pub sampler: Option<Arc<sampler::Sampler>>,
    /// The Docker client (connects lazily, reconnects after daemon restarts).
    pub docker: docker::Docker,
    /// File roots (empty when none is configured: no file tools).
    pub files: Arc<files::Files>,
    /// systemd over D-Bus (connects lazily; `unavailable` without systemd).
    pub systemd: systemd::Systemd,
    /// The journal through `journalctl -o json`.
    pub journal: journal::Journal,
    /// Network: the tailnet node for the network tools, once it is up.
    pub net: net::Net,
    /// Outbound probes and their target policy (`[network]`).
    pub net_probe: Arc<net::probe::Prober>,
}

impl Host {
    /// Each domain's readiness for `/readyz` (never fatal: other domains
    /// keep working without them).
    pub async fn health(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        let (docker, systemd) = tokio::join!(self.docker.health(), self.systemd.health());
        m.insert("docker".into(), docker);
        m.insert("systemd".into(), systemd);
        m.insert("journal".into(), self.journal.health());
        m.insert("files".into(), self.files.health());
        m.insert("network".into(), self.net_probe.health());
        m
    }
}
