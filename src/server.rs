//! `tailops serve`: the three ways to serve the same MCP tools.
//!
//! - tailnet (default): join the tailnet, serve HTTP on the tailnet listener
//!   only; callers identified by WhoIs.
//! - `--dev-listen 127.0.0.1:PORT`: HTTP on loopback TCP, no tailnet, the
//!   fixed `[local]` principal. Refuses non-loopback addresses. Loud.
//! - `--stdio`: MCP over stdin/stdout for a local client, `[local]` principal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::audit::{self, AuditConfig, AuditLog, Event};
use crate::auth::oauth::{AsyncIo, ConnectFuture, Connector, TcpConnector};
use crate::config::Config;
use crate::http::{self, IdentitySource, OAuthGate};
use crate::mcp::{Spine, TailopsServer};
use crate::sampler::{AlertEvent, Sampler};
use crate::tailnet::Node;

/// How to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Tailnet,
    DevListen(SocketAddr),
    Stdio,
}

/// Opens the audit log from config (the caller closes it).
pub async fn open_audit(cfg: &Config) -> anyhow::Result<AuditLog> {
    let path = cfg.audit_path();
    let (log, _task) = AuditLog::start(AuditConfig { path: Some(path.clone()), ..cfg.audit.clone() })
        .await
        .with_context(|| format!("opening the audit log {}", path.display()))?;
    Ok(log)
}

fn lifecycle(audit: &AuditLog, event: &str, detail: serde_json::Value) {
    let mut d = serde_json::json!({ "event": event, "version": env!("CARGO_PKG_VERSION") });
    if let (Some(obj), Some(extra)) = (d.as_object_mut(), detail.as_object()) {
        obj.extend(extra.clone());
    }
    let _ = audit.record(Event { kind: audit::kind::LIFECYCLE.into(), detail: Some(d), ..Default::default() });
}

/// Runs the server until `shutdown` is cancelled.
pub async fn run(cfg: Config, mode: Mode, shutdown: CancellationToken) -> anyhow::Result<()> {
    TailopsServer::check_registry().map_err(anyhow::Error::msg)?;
    let cfg = Arc::new(cfg);
    if mode != Mode::Stdio {
        create_private_dir(&cfg.effective_state_dir())?;
    }
    let audit = open_audit(&cfg).await?;
    let sampler = start_sampler(&cfg, &audit, shutdown.clone()).await?;
    let result = match mode.clone() {
        Mode::Tailnet => run_tailnet(cfg.clone(), audit.clone(), sampler, shutdown).await,
        Mode::DevListen(addr) => run_dev(cfg.clone(), audit.clone(), sampler, addr, shutdown).await,
        Mode::Stdio => run_stdio(cfg.clone(), audit.clone(), sampler, shutdown).await,
    };
    lifecycle(&audit, "stop", serde_json::json!({}));
    audit.close().await;
    result
}

/// Starts the metrics sampler; alert state changes go to the audit log.
async fn start_sampler(cfg: &Config, audit: &AuditLog, shutdown: CancellationToken) -> anyhow::Result<Arc<Sampler>> {
    let log = audit.clone();
    let on_alert: Arc<dyn Fn(&AlertEvent) + Send + Sync> = Arc::new(move |ev: &AlertEvent| {
        let a = &ev.alert;
        tracing::info!(rule = %a.rule, metric = %a.metric, state = ?a.state, value = a.value, "alert state change");
        let _ = log.record(Event {
            kind: audit::kind::ALERT.into(),
            detail: serde_json::to_value(ev).ok(),
            ..Default::default()
        });
    });
    Sampler::start(cfg.sampler.clone(), on_alert, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("starting the sampler: {e}"))
}

async fn run_tailnet(
    cfg: Arc<Config>,
    audit: AuditLog,
    sampler: Arc<Sampler>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state_dir = cfg.effective_state_dir();
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
        format!("http://{}/mcp", info.dns_name)
    } else {
        format!("http://{}:{}/mcp", info.dns_name, cfg.port)
    };
    let mut names = vec![info.dns_name.clone(), info.hostname.clone()];
    if let Some(short) = info.dns_name.split('.').next() {
        names.push(short.to_string());
    }
    names.extend(info.ips.iter().map(|ip| ip.to_string()));
    lifecycle(&audit, "start", serde_json::json!({ "mode": "tailnet", "node": info.dns_name }));
    tracing::info!(
        dns_name = %info.dns_name,
        ips = ?info.ips,
        port = cfg.port,
        url = %url,
        "tailops is serving on the tailnet only"
    );
    let oauth = if cfg.oauth.enabled {
        let mut o = cfg.oauth.clone();
        if o.resource.is_empty() {
            o.resource = url.clone();
        }
        let connector = Arc::new(TailnetConnector { node: node.clone(), suffix: info.magic_dns_suffix.clone() });
        match OAuthGate::new(o, connector) {
            Ok(g) => Some(Arc::new(g)),
            Err(e) => {
                let _ = node.close().await;
                anyhow::bail!("oauth: {e}");
            }
        }
    } else {
        None
    };
    let spine = Arc::new(Spine::new(cfg.clone(), audit, info.dns_name.clone(), Some(sampler)));
    let app =
        http::router(spine.clone(), IdentitySource::Tailnet(node.clone()), oauth, &names, cfg.port, shutdown.clone());
    let housekeeping = spawn_housekeeping(spine, shutdown.clone());
    http::serve(listener, app, &cfg.limits, shutdown).await;
    housekeeping.abort();
    node.close().await.context("closing the tailnet node")?;
    tracing::info!("stopped");
    Ok(())
}

async fn run_dev(
    cfg: Arc<Config>,
    audit: AuditLog,
    sampler: Arc<Sampler>,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        anyhow::bail!("--dev-listen only accepts a loopback address (127.0.0.1:PORT or [::1]:PORT), not {addr}");
    }
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::warn!(
        addr = %local,
        principal = %format!("local:{}", cfg.local.name),
        "DEV MODE: serving on loopback TCP without the tailnet; every caller is the [local] principal. Not for production."
    );
    lifecycle(&audit, "start", serde_json::json!({ "mode": "dev-listen", "addr": local.to_string() }));
    let names = vec!["localhost".to_string(), local.ip().to_string()];
    let oauth = if cfg.oauth.enabled {
        let mut o = cfg.oauth.clone();
        if o.resource.is_empty() {
            o.resource = format!("http://{local}/mcp");
        }
        Some(Arc::new(OAuthGate::new(o, Arc::new(TcpConnector)).map_err(|e| anyhow::anyhow!("oauth: {e}"))?))
    } else {
        None
    };
    let spine = Arc::new(Spine::new(cfg.clone(), audit, format!("dev-listen {local}"), Some(sampler)));
    let app = http::router(spine.clone(), IdentitySource::Local, oauth, &names, local.port(), shutdown.clone());
    tracing::info!(url = %format!("http://{local}/mcp"), listen_addr = %local, "tailops dev server ready");
    let housekeeping = spawn_housekeeping(spine, shutdown.clone());
    http::serve(listener, app, &cfg.limits, shutdown).await;
    housekeeping.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn run_stdio(
    cfg: Arc<Config>,
    audit: AuditLog,
    sampler: Arc<Sampler>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    lifecycle(&audit, "start", serde_json::json!({ "mode": "stdio" }));
    let spine = Arc::new(Spine::new(cfg.clone(), audit, "stdio".into(), Some(sampler)));
    let caller = http::local_caller(&cfg, SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = TailopsServer::new(spine, Some(caller));
    let running = server.serve(rmcp::transport::stdio()).await.context("starting the stdio MCP server")?;
    let ct = running.cancellation_token();
    tokio::select! {
        r = running.waiting() => { r.context("stdio MCP server")?; }
        _ = shutdown.cancelled() => { ct.cancel(); }
    }
    Ok(())
}

/// Reaches the authorization server: over the tailnet for tailnet names
/// and addresses (e.g. tsidp's introspection endpoint), over plain TCP
/// otherwise.
struct TailnetConnector {
    node: Node,
    /// MagicDNS suffix, e.g. `example.ts.net`.
    suffix: String,
}

impl TailnetConnector {
    fn on_tailnet(&self, host: &str) -> bool {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return match ip {
                // 100.64.0.0/10 (CGNAT range used by tailnets)
                std::net::IpAddr::V4(v4) => v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64,
                // fd7a:115c:a1e0::/48
                std::net::IpAddr::V6(v6) => v6.segments()[..3] == [0xfd7a, 0x115c, 0xa1e0],
            };
        }
        let h = host.trim_end_matches('.');
        !self.suffix.is_empty() && (h.ends_with(&format!(".{}", self.suffix)) || !h.contains('.'))
    }
}

impl Connector for TailnetConnector {
    fn connect(&self, host: &str, port: u16) -> ConnectFuture {
        if !self.on_tailnet(host) {
            return TcpConnector.connect(host, port);
        }
        let node = self.node.clone();
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        Box::pin(async move {
            let s = node.dial(&addr, Duration::from_secs(10)).await.map_err(std::io::Error::other)?;
            Ok(Box::new(s) as Box<dyn AsyncIo>)
        })
    }
}

fn spawn_housekeeping(spine: Arc<Spine>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => spine.limiter.housekeep(),
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating state dir {}", dir.display()))
}
