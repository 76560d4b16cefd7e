//! `tailops serve`: the composition root. Builds the audit log, the host
//! handles, the tool router and the spine, then serves them one of three ways.
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
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use rmcp::handler::server::router::tool::ToolRouter;

use crate::audit::{self, AuditConfig, AuditLog, Event};
use crate::auth::caller::Caller;
use crate::auth::oauth::{AsyncIo, ConnectFuture, Connector, TcpConnector};
use crate::config::Config;
use crate::host::Host;
use crate::host::docker::Docker;
use crate::host::files::Files;
use crate::host::journal::Journal;
use crate::host::sampler::{AlertEvent, Sampler};
use crate::host::systemd::Systemd;
use crate::http::{self, Accept, DomainHealth, Endpoint, IdentitySource, OAuthGate};
use crate::mcp::Spine;
use crate::tailnet::Node;
use crate::tools::extension::Extension;
use crate::tools::{self, TailopsServer};

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

/// What every mode shares: config, the audit log, the host handles and the
/// tool router (built once).
struct Parts {
    cfg: Arc<Config>,
    audit: AuditLog,
    host: Arc<Host>,
    router: Arc<ToolRouter<TailopsServer>>,
    reload: Option<ReloadSource>,
    extension: Option<Arc<dyn Extension>>,
}

impl Parts {
    fn spine(&self, node_label: String) -> Arc<Spine> {
        Arc::new(
            Spine::new(self.cfg.clone(), self.audit.clone(), node_label, &all_specs(self.extension.as_deref()))
                .hide(tools::not_offered(&self.cfg)),
        )
    }

    fn server(&self, spine: Arc<Spine>, local_caller: Option<Caller>) -> TailopsServer {
        TailopsServer::new(spine, self.host.clone(), self.router.clone(), local_caller)
            .with_extension(self.extension.clone())
    }
}

/// The built-in specs and the extension's.
fn all_specs(extension: Option<&dyn Extension>) -> Vec<crate::mcp::ToolSpec> {
    let mut specs = tools::all_specs();
    specs.extend(extension.map(|e| e.specs()).unwrap_or_default());
    specs
}

/// Where a SIGHUP reload reads the configuration from: the same file and
/// overrides `serve` started with.
#[derive(Clone, Debug)]
pub struct ReloadSource {
    pub file: Option<std::path::PathBuf>,
    pub overrides: crate::config::Overrides,
}

/// Runs the server until `shutdown` is cancelled.
pub async fn run(cfg: Config, mode: Mode, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with_reload(cfg, mode, shutdown, None).await
}

/// [`run`], reloading the policy from `reload` on SIGHUP.
pub async fn run_with_reload(
    cfg: Config,
    mode: Mode,
    shutdown: CancellationToken,
    reload: Option<ReloadSource>,
) -> anyhow::Result<()> {
    run_extended(cfg, mode, shutdown, reload, None).await
}

/// [`run_with_reload`] serving `extension`'s tools, resources and prompts
/// too, through the same spine (the conformance fixture server uses it;
/// the `tailops` binary passes none).
pub async fn run_extended(
    cfg: Config,
    mode: Mode,
    shutdown: CancellationToken,
    reload: Option<ReloadSource>,
    extension: Option<Arc<dyn Extension>>,
) -> anyhow::Result<()> {
    TailopsServer::check_registry(extension.as_deref()).map_err(anyhow::Error::msg)?;
    // Typos in the local policy parse fine but match nothing (a misspelt
    // deny denies nothing): say so before serving.
    let specs = all_specs(extension.as_deref());
    let policy_problems = cfg.policy.warnings(|name| specs.iter().any(|t| t.name == name));
    if !policy_problems.is_empty() {
        tracing::warn!(problems = ?policy_problems, "the local policy names tools or groups that do not exist, or rules that match nobody");
    }
    let cfg = Arc::new(cfg);
    if mode != Mode::Stdio {
        create_private_dir(&cfg.effective_state_dir())?;
    }
    let audit = open_audit(&cfg).await?;
    let sampler = start_sampler(&cfg, &audit, shutdown.clone()).await?;
    let files = Arc::new(Files::open(&cfg.files));
    let host = Arc::new(Host {
        sampler: Some(sampler),
        docker: Docker::new(&cfg.docker),
        files,
        systemd: Systemd::new(&cfg.systemd),
        journal: Journal::new(cfg.systemd.journal_dir.as_deref()),
        net: Default::default(),
        net_probe: Arc::new(
            crate::host::net::probe::Prober::new(&cfg.network).map_err(|e| anyhow::anyhow!("[network]: {e}"))?,
        ),
    });
    let mut router = tools::router();
    if let Some(ext) = &extension {
        router += ext.router();
    }
    let parts = Parts { cfg: cfg.clone(), audit: audit.clone(), host, router: Arc::new(router), reload, extension };
    let result = match mode.clone() {
        Mode::Tailnet => run_tailnet(&parts, shutdown).await,
        Mode::DevListen(addr) => run_dev(&parts, addr, shutdown).await,
        Mode::Stdio => run_stdio(&parts, shutdown).await,
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

/// Where and how HTTP is served: the part that differs between the
/// tailnet and dev-listen modes.
struct Site {
    identity: IdentitySource,
    /// Host/Origin allow-list: names and IPs this server is reached by.
    names: Vec<String>,
    port: u16,
    /// The MCP URL (the OAuth resource, unless configured).
    url: String,
    /// Shown in server_info and /healthz.
    label: String,
    /// How to reach the OAuth authorization server.
    connector: Arc<dyn Connector>,
    /// More tailnet listeners served beside the main one.
    extra: Extras,
}

/// Tailnet listeners beside the main one (tailnet mode only).
#[derive(Default)]
struct Extras {
    /// `--https`: responses get HSTS.
    https: bool,
    /// `--https`: the plain-HTTP port, answering a redirect to HTTPS.
    redirect: Option<crate::tailnet::Listener>,
    /// `--register-as-service`: the serve proxy's listener (its identity
    /// headers count there only).
    service: Option<crate::tailnet::Listener>,
}

/// The HTTP modes' shared sequence: OAuth gate, spine, router, serve until
/// `shutdown`.
async fn serve_http<L: Accept>(p: &Parts, listener: L, site: Site, shutdown: CancellationToken) -> anyhow::Result<()> {
    let oauth = if p.cfg.oauth.enabled {
        let mut o = p.cfg.oauth.clone();
        if o.resource.is_empty() {
            o.resource = site.url.clone();
        }
        Some(Arc::new(OAuthGate::new(o, site.connector).map_err(|e| anyhow::anyhow!("oauth: {e}"))?))
    } else {
        None
    };
    let spine = p.spine(site.label);
    let reloader =
        p.reload.clone().map(|src| spawn_reloader(spine.clone(), p.host.sampler.clone(), src, shutdown.clone()));
    let server = p.server(spine.clone(), None);
    let make_server = move || server.clone();
    let health_host = p.host.clone();
    let domain_health: DomainHealth = Arc::new(move || {
        let h = health_host.clone();
        Box::pin(async move { h.health().await })
    });
    let endpoint = Endpoint { names: &site.names, port: site.port };
    // Connection-limit counters: logged when serving stops, exported on /metrics.
    let conn_counters = Arc::new(http::ConnCounters::default());
    let exporter = Arc::new(crate::ops::metrics::Exporter { host: p.host.clone(), conn: conn_counters.clone() });
    let extra = crate::ops::metrics::routes(exporter).merge(crate::ops::sd::routes());
    // rmcp's sessions end only after the HTTP side drained: a call in
    // flight when SIGTERM arrives runs to its end and its answer is sent
    // (`shutdown` itself ends only the listen-only streams).
    let sessions_stop = CancellationToken::new();
    tokio::spawn(crate::tailnet::memory::trim_periodically(
        Duration::from_secs(crate::tailnet::memory::MALLOC_TRIM_SECS),
        shutdown.clone(),
    ));
    let app = http::router(
        spine.clone(),
        site.identity,
        oauth,
        endpoint,
        make_server,
        domain_health,
        shutdown.clone(),
        sessions_stop.clone(),
        extra,
    );
    let app = if site.extra.https {
        app.layer(axum::middleware::from_fn(http::tls::hsts)).layer(axum::Extension(http::tls::Https))
    } else {
        app
    };
    let redirect_app = http::tls::redirect_router(&site.names);
    let housekeeping = spawn_housekeeping(spine, shutdown.clone());
    tracing::info!(url = %site.url, "serving MCP");
    crate::ops::notify::ready(&format!("serving {}", site.url));
    let watchdog = crate::ops::notify::spawn_watchdog(p.audit.clone(), shutdown.clone());
    let stopping = shutdown.clone();
    let notify_stop = tokio::spawn(async move {
        stopping.cancelled().await;
        crate::ops::notify::stopping();
    });
    let service = site.extra.service.map(|l| {
        let app = app.clone().layer(axum::Extension(http::identify::Via::Service));
        http::serve(l, app, &p.cfg.limits, conn_counters.clone(), shutdown.clone())
    });
    let redirect = site
        .extra
        .redirect
        .map(|l| http::serve(l, redirect_app, &p.cfg.limits, conn_counters.clone(), shutdown.clone()));
    tokio::join!(
        http::serve(listener, app, &p.cfg.limits, conn_counters, shutdown),
        futures::future::OptionFuture::from(service),
        futures::future::OptionFuture::from(redirect),
    );
    sessions_stop.cancel();
    housekeeping.abort();
    if let Some(r) = reloader {
        r.abort();
    }
    // STOPPING=1 went out when `shutdown` fired; if serving ended another
    // way, say it now (the task has no await after its send, so it has
    // either sent or not started to).
    if !notify_stop.is_finished() {
        notify_stop.abort();
        crate::ops::notify::stopping();
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    Ok(())
}

async fn run_tailnet(p: &Parts, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = &p.cfg;
    let state_dir = cfg.effective_state_dir();
    // An auth key, or an OAuth client secret tsnet turns into one.
    let auth_key = cfg.enrollment_key()?;
    if auth_key.is_none() {
        tracing::info!(
            state_dir = %state_dir.display(),
            "no auth key (TS_AUTHKEY or authkey_file) or OAuth client secret (TS_CLIENT_SECRET); if this node is not logged in yet, a login URL follows"
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
    let access: Arc<dyn crate::host::net::tailnet::TailnetAccess> = Arc::new(NodeAccess(node.clone()));
    p.host.net.tailnet.set(access.clone());
    // Probes refuse this node's own IPs and dial tailnet targets through it.
    p.host.net_probe.set_node(access);
    let listeners = match tailnet_listeners(cfg, &node).await {
        Ok(l) => l,
        Err(e) => {
            let _ = node.close().await;
            return Err(e);
        }
    };
    let (listener, extra, service_name) = listeners;
    let port = if cfg.https { crate::config::HTTPS_PORT } else { cfg.port };
    let url = mcp_url(cfg.https, &info.dns_name, port);
    let mut names = vec![info.dns_name.clone(), info.hostname.clone()];
    if let Some(short) = info.dns_name.split('.').next() {
        names.push(short.to_string());
    }
    names.extend(info.ips.iter().map(|ip| ip.to_string()));
    if let Some(fqdn) = &service_name {
        let fqdn = fqdn.trim_end_matches('.');
        tracing::info!(service = %fqdn, url = %mcp_url(cfg.https, fqdn, port), "also serving as a Tailscale Service");
        names.push(fqdn.to_string());
    }
    lifecycle(
        &p.audit,
        "start",
        serde_json::json!({ "mode": "tailnet", "node": info.dns_name, "https": cfg.https, "service": service_name }),
    );
    tracing::info!(
        dns_name = %info.dns_name,
        ips = ?info.ips,
        port,
        url = %url,
        "tailops is serving on the tailnet only"
    );
    let site = Site {
        identity: IdentitySource::Tailnet(node.clone()),
        names,
        port,
        url,
        label: info.dns_name.clone(),
        connector: Arc::new(TailnetConnector { node: node.clone(), suffix: info.magic_dns_suffix.clone() }),
        extra,
    };
    let served = serve_http(p, listener, site, shutdown).await;
    let closed = node.close().await.context("closing the tailnet node");
    tracing::info!("stopped");
    served.and(closed)
}

/// The network tools' and probes' access to the node (`host::net` cannot
/// name the tailnet layer's types: the documents cross by their field
/// names, checked by `tailnet_documents_cross_every_field`).
struct NodeAccess(Node);

impl crate::host::net::tailnet::TailnetAccess for NodeAccess {
    fn status(&self, timeout: Duration) -> BoxFuture<'_, Result<crate::host::net::tailnet::Status, String>> {
        Box::pin(async move { cross(self.0.status(timeout).await.map_err(|e| e.to_string())?) })
    }

    fn ping(
        &self,
        ip: std::net::IpAddr,
        kind: crate::host::net::tailnet::PingKind,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<crate::host::net::tailnet::PingReply, String>> {
        let kind = match kind {
            crate::host::net::tailnet::PingKind::Disco => crate::tailnet::PingKind::Disco,
            crate::host::net::tailnet::PingKind::Tsmp => crate::tailnet::PingKind::Tsmp,
        };
        Box::pin(async move { cross(self.0.ping(ip, kind, timeout).await.map_err(|e| e.to_string())?) })
    }

    fn own_ips(&self) -> Vec<std::net::IpAddr> {
        self.0.info().ips.clone()
    }

    fn dial(&self, addr: SocketAddr, timeout: Duration) -> BoxFuture<'_, std::io::Result<tokio::net::UnixStream>> {
        Box::pin(async move { self.0.dial(&addr.to_string(), timeout).await.map_err(std::io::Error::other) })
    }
}

/// A tailnet-layer document read as its host-side type, by field names.
fn cross<T: serde::Serialize, U: serde::de::DeserializeOwned>(doc: T) -> Result<U, String> {
    serde_json::to_value(doc).and_then(serde_json::from_value).map_err(|e| e.to_string())
}

/// The MCP URL for a scheme, name and port (the scheme's default port left out).
fn mcp_url(https: bool, name: &str, port: u16) -> String {
    match (https, port) {
        (true, crate::config::HTTPS_PORT) => format!("https://{name}/mcp"),
        (true, _) => format!("https://{name}:{port}/mcp"),
        (false, 80) => format!("http://{name}/mcp"),
        (false, _) => format!("http://{name}:{port}/mcp"),
    }
}

/// Why `--https` cannot start on a node without a certificate.
pub const NO_CERT: &str = "--https needs a MagicDNS TLS certificate, but this tailnet offers none for this node (HTTPS certificates are off, or the control server, e.g. headscale, does not issue them): enable HTTPS in the tailnet's DNS settings, or serve without --https";
/// Why `--register-as-service` cannot start on an untagged node.
pub const UNTAGGED_SERVICE: &str = "--register-as-service needs a tagged node (Tailscale Services are hosted by tagged nodes only): start with --advertise-tags tag:NAME (or a tagged auth key) and allow that tag to host the Service";

/// The main listener, the extra ones, and the Service's MagicDNS name.
async fn tailnet_listeners(
    cfg: &Config,
    node: &Node,
) -> anyhow::Result<(crate::tailnet::Listener, Extras, Option<String>)> {
    let info = node.info();
    if cfg.https && info.cert_domains.as_ref().is_none_or(Vec::is_empty) {
        anyhow::bail!(NO_CERT);
    }
    if cfg.register_as_service.is_some() {
        let st = node
            .status(Duration::from_secs(cfg.limits.whois_timeout_secs))
            .await
            .context("reading this node's tags")?;
        if st.self_node.as_ref().is_none_or(|s| s.tags.is_empty()) {
            anyhow::bail!(UNTAGGED_SERVICE);
        }
    }
    let (main, redirect) = if cfg.https {
        let tls = node
            .listen_tls(&format!(":{}", crate::config::HTTPS_PORT))
            .context("listening for HTTPS on the tailnet")?;
        (tls, Some(node.listen(&format!(":{}", cfg.port)).context("listening on the tailnet")?))
    } else {
        (node.listen(&format!(":{}", cfg.port)).context("listening on the tailnet")?, None)
    };
    let mut service_name = None;
    let service = match &cfg.register_as_service {
        Some(name) => {
            let port = if cfg.https { crate::config::HTTPS_PORT } else { cfg.port };
            let (l, fqdn) = node
                .listen_service_caps(name, port, cfg.https, std::slice::from_ref(&cfg.capability))
                .with_context(|| format!("hosting the Tailscale Service {name}"))?;
            service_name = Some(fqdn);
            Some(l)
        }
        None => None,
    };
    Ok((main, Extras { https: cfg.https, redirect, service }, service_name))
}

async fn run_dev(p: &Parts, addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        anyhow::bail!("--dev-listen only accepts a loopback address (127.0.0.1:PORT or [::1]:PORT), not {addr}");
    }
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::warn!(
        addr = %local,
        principal = %format!("local:{}", p.cfg.local.name),
        "DEV MODE: serving on loopback TCP without the tailnet; every caller is the [local] principal. Not for production."
    );
    lifecycle(&p.audit, "start", serde_json::json!({ "mode": "dev-listen", "addr": local.to_string() }));
    let site = Site {
        identity: IdentitySource::Local,
        names: vec!["localhost".to_string(), local.ip().to_string()],
        port: local.port(),
        url: format!("http://{local}/mcp"),
        label: format!("dev-listen {local}"),
        connector: Arc::new(TcpConnector),
        extra: Extras::default(),
    };
    tracing::info!(url = %site.url, listen_addr = %local, "tailops dev server ready");
    let served = serve_http(p, listener, site, shutdown).await;
    tracing::info!("stopped");
    served
}

async fn run_stdio(p: &Parts, shutdown: CancellationToken) -> anyhow::Result<()> {
    lifecycle(&p.audit, "start", serde_json::json!({ "mode": "stdio" }));
    let caller = Caller::local(&p.cfg.local, SocketAddr::from(([127, 0, 0, 1], 0)));
    let spine = p.spine("stdio".into());
    let server = p.server(spine.clone(), Some(caller.clone()));
    crate::mcp::stdio::serve(server, spine, caller, tokio::io::stdin(), tokio::io::stdout(), shutdown)
        .await
        .context("stdio MCP server")
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
        crate::tailnet::is_tailnet_host(host, &self.suffix)
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

/// What a reload applies live (the audit record's `applied`).
const RELOADED: [&str; 5] = ["policy", "local", "capability", "limits.rate", "sampler.alerts"];

/// On SIGHUP: load and validate the config again; a good one replaces the
/// policy, `[local]`, capability, `[limits.rate]` and the alert rules
/// (`sampler.default_alerts`, `[[sampler.alerts]]`) live (sessions and
/// connections stay; alerts of unchanged rules keep their state),
/// a bad one is refused and the old one kept. Either way a log line and a
/// `lifecycle` audit record (`event: reload`) say what happened, including
/// the changed sections that need a restart to take effect.
fn spawn_reloader(
    spine: Arc<Spine>,
    sampler: Option<Arc<crate::host::sampler::Sampler>>,
    src: ReloadSource,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = crate::shutdown::reload_requested() => {}
                _ = shutdown.cancelled() => return,
            }
            let loaded = Config::load(src.file.as_deref(), src.overrides.clone());
            match loaded {
                Ok(new) => {
                    let restart = restart_needed(&spine.cfg, &new);
                    let generation = spine.reload(&new);
                    // Config::load validated the rules: this cannot refuse
                    // them after the policy was applied.
                    let rules = sampler.as_ref().map(|s| s.reload_rules(&new.sampler));
                    if let Some(Err(e)) = &rules {
                        tracing::error!(error = %e, "alert rules not reloaded; the running rules are kept");
                    }
                    tracing::info!(generation, restart_required = ?restart, alert_rules = ?rules, "configuration reloaded: policy, [local], capability, [limits.rate] and alert rules applied");
                    lifecycle(
                        &spine.audit,
                        "reload",
                        serde_json::json!({ "ok": true, "generation": generation, "applied": RELOADED, "restart_required": restart }),
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload refused; the running configuration is kept");
                    lifecycle(&spine.audit, "reload", serde_json::json!({ "ok": false, "error": e.to_string() }));
                }
            }
        }
    })
}

/// Top-level sections that differ between `old` and `new` but are not
/// applied by a reload (`limits` counts without its live `rate` table,
/// `sampler` without its live alert rules).
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(serde_json::Value::Object(mut a)), Ok(serde_json::Value::Object(mut b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    for m in [&mut a, &mut b] {
        if let Some(serde_json::Value::Object(limits)) = m.get_mut("limits") {
            limits.remove("rate");
        }
        if let Some(serde_json::Value::Object(sampler)) = m.get_mut("sampler") {
            sampler.remove("alerts");
            sampler.remove("default_alerts");
        }
    }
    let live = ["policy", "local", "capability"];
    a.iter().filter(|(k, v)| !live.contains(&k.as_str()) && b.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect()
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating state dir {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::cross;
    use crate::host::net::tailnet as host;
    use crate::tailnet;

    /// Every field the network tools show must cross from the tailnet layer
    /// to `host::net::tailnet` (the host side defaults a missing field, so a
    /// rename on either side would otherwise blank it silently).
    #[test]
    fn tailnet_documents_cross_every_field() {
        let peer = |n: u8| tailnet::PeerStatus {
            id: format!("id{n}"),
            hostname: format!("host{n}"),
            dns_name: format!("host{n}.tailnet.test"),
            ips: vec![std::net::IpAddr::from([100, 64, 0, n])],
            os: "linux".into(),
            tags: vec!["tag:a".into()],
            user: "u@x".into(),
            online: true,
            active: true,
            last_seen: Some("2026-01-01T00:00:00Z".into()),
            relay: "nyc".into(),
            cur_addr: "1.2.3.4:41641".into(),
            direct: true,
            rx_bytes: 7,
            tx_bytes: 9,
            key_expiry: Some("2027-01-01T00:00:00Z".into()),
            last_handshake: Some("2026-01-01T00:00:01Z".into()),
            peer_relay: "5.6.7.8:7:1".into(),
        };
        let src = tailnet::Status {
            backend_state: "Running".into(),
            auth_url: None,
            magic_dns_suffix: "tailnet.test".into(),
            tailnet_name: "example".into(),
            self_node: Some(peer(1)),
            peers: vec![peer(2)],
            health: vec!["warn".into()],
        };
        let got: host::Status = cross(src.clone()).expect("crosses");
        assert_eq!(
            (got.backend_state.as_str(), got.magic_dns_suffix.as_str(), got.tailnet_name.as_str(), &got.health),
            ("Running", "tailnet.test", "example", &src.health)
        );
        let pairs = [(got.self_node.as_ref().expect("self"), &peer(1)), (&got.peers[0], &peer(2))];
        for (h, t) in pairs {
            assert_eq!(
                (&h.hostname, &h.dns_name, &h.ips, &h.os, &h.tags),
                (&t.hostname, &t.dns_name, &t.ips, &t.os, &t.tags)
            );
            assert_eq!((&h.user, h.online, h.active, &h.last_seen), (&t.user, t.online, t.active, &t.last_seen));
            assert_eq!(
                (&h.relay, &h.cur_addr, h.direct, h.rx_bytes, h.tx_bytes),
                (&t.relay, &t.cur_addr, t.direct, t.rx_bytes, t.tx_bytes)
            );
            assert_eq!(
                (&h.key_expiry, &h.last_handshake, &h.peer_relay),
                (&t.key_expiry, &t.last_handshake, &t.peer_relay)
            );
        }
        let ping = tailnet::PingReply {
            ip: "100.64.0.2".into(),
            node_ip: "100.64.0.2".into(),
            node_name: "host2".into(),
            err: "e".into(),
            latency_seconds: 0.25,
            endpoint: "1.2.3.4:41641".into(),
            peer_relay: "r".into(),
            derp_region_id: 3,
            derp_region_code: "nyc".into(),
            is_local_ip: false,
        };
        let h: host::PingReply = cross(ping.clone()).expect("crosses");
        assert_eq!((&h.ip, &h.node_name, &h.err, h.latency_seconds), (&ping.ip, &ping.node_name, &ping.err, 0.25));
        assert_eq!(
            (&h.endpoint, &h.peer_relay, h.derp_region_id, &h.derp_region_code),
            (&ping.endpoint, &ping.peer_relay, 3, &ping.derp_region_code)
        );
    }
}
