//! Outbound probes (`network:probe`): `dns_lookup`, `tcp_check`,
//! `http_check`, `ping`, `traceroute`. Every one goes through [`Prober`],
//! which owns the target policy ([`super::target`]): names are checked
//! before they are resolved, every resolved address is checked, and the
//! probe connects to the checked address (never resolving again).
//!
//! Tailnet addresses (`100.64.0.0/10`, `fd7a:115c:a1e0::/48`) are dialed
//! through the embedded node when tailops serves on the tailnet
//! (`tcp_check`, `http_check`); ICMP/UDP probes (`ping`, `traceroute`)
//! and `dns_lookup` servers use the kernel's routes (tsnet dials TCP only;
//! `tailnet_ping` is the tailnet-path diagnostic).

pub mod dns;
pub mod http;
pub mod icmp;
pub mod ping;
pub mod tcp;
pub mod tls;
pub mod traceroute;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

use super::config::NetworkConfig;
use super::tailnet::TailnetAccess;
use super::target::{Host, TargetPolicy, canonical, is_tailnet};
use crate::mcp::{ErrorCategory, ToolError};

/// Longest time limit a probe accepts for one step (a connect, a lookup,
/// one reply), milliseconds.
pub const MAX_STEP_TIMEOUT_MS: u64 = 10_000;
/// Shortest time limit for one step, milliseconds.
pub const MIN_STEP_TIMEOUT_MS: u64 = 10;
/// Default time limit for one step, milliseconds.
pub const DEFAULT_STEP_TIMEOUT_MS: u64 = 3_000;
/// Most addresses a resolved name may have (more: only these are checked
/// and the rest reported as dropped).
pub const MAX_RESOLVED_ADDRS: usize = 32;

/// A connected probe stream: kernel TCP, or a tailnet conn from the node.
pub type Stream = Either<TcpStream, UnixStream>;

/// Progress of a long probe (MCP progress notifications); `false` from
/// `notify` means the client is gone.
pub trait ProgressSink: Sync {
    fn notify(&self, value: f64, total: Option<f64>, message: String) -> impl Future<Output = bool> + Send;
}

/// Shared state of every probe: the policy, the resolver settings, the
/// trusted CAs and (when serving on the tailnet) the node.
pub struct Prober {
    pub policy: TargetPolicy,
    resolver: Option<SocketAddr>,
    roots: Arc<tokio_rustls::rustls::RootCertStore>,
    node: OnceLock<Arc<dyn TailnetAccess>>,
}

/// How a target was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The kernel's TCP stack and routes.
    Kernel,
    /// The embedded tailnet node (tsnet).
    Tailnet,
}

/// A name resolved and checked.
pub struct Resolved {
    /// Every address the name resolved to (all passed the policy).
    pub addrs: Vec<IpAddr>,
    /// How long resolving took (zero for an address literal).
    pub elapsed: Duration,
}

/// A step's time limit from a caller's milliseconds.
pub fn step_timeout(ms: Option<u64>, field: &str) -> Result<Duration, ToolError> {
    let ms = ms.unwrap_or(DEFAULT_STEP_TIMEOUT_MS);
    if !(MIN_STEP_TIMEOUT_MS..=MAX_STEP_TIMEOUT_MS).contains(&ms) {
        return Err(ToolError::invalid_input(
            format!("{field} must be {MIN_STEP_TIMEOUT_MS}-{MAX_STEP_TIMEOUT_MS} ms, got {ms}"),
            format!("give {field} within the range"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Milliseconds as a float with microsecond precision.
pub fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

fn timeout_err(what: &str, limit: Duration) -> ToolError {
    ToolError::new(
        ErrorCategory::Timeout,
        format!("{what} did not finish within {} ms", limit.as_millis()),
        "the target may be down or black-holed; raise timeout_ms or check the route",
    )
}

/// A connect that failed: `refused`, `timeout`, `unreachable` or `error`.
#[derive(Debug)]
pub struct ConnectError {
    pub addr: SocketAddr,
    pub kind: &'static str,
    pub message: String,
    limit: Duration,
}

impl ConnectError {
    fn timeout(addr: SocketAddr, limit: Duration) -> Self {
        Self { addr, kind: "timeout", message: format!("no answer within {} ms", limit.as_millis()), limit }
    }
    fn io(addr: SocketAddr, e: &std::io::Error, limit: Duration) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::ConnectionRefused => "refused",
            K::HostUnreachable | K::NetworkUnreachable => "unreachable",
            K::TimedOut => "timeout",
            _ => "error",
        };
        Self { addr, kind, message: e.to_string(), limit }
    }
    /// As a tool error (for probes where a failed connect ends the probe).
    pub fn to_error(&self) -> ToolError {
        if self.kind == "timeout" {
            return timeout_err(&format!("connecting to {}", self.addr), self.limit);
        }
        ToolError::unavailable(
            format!("connecting to {} failed ({}): {}", self.addr, self.kind, self.message),
            "is anything listening there? tcp_check shows the connect result",
        )
    }
}

impl Prober {
    pub fn new(cfg: &NetworkConfig) -> Result<Self, String> {
        Ok(Self {
            policy: TargetPolicy::new(cfg.lists(), &[])?,
            resolver: cfg.resolver,
            roots: Arc::new(tls::roots(cfg.ca_file.as_deref())?),
            node: OnceLock::new(),
        })
    }

    /// What the probes can use right now, for `/readyz` (never failing it):
    /// which ICMP socket `ping`/`traceroute` get (datagram through
    /// `ping_group_range`, raw with CAP_NET_RAW, or none: `ping` then needs
    /// `method: tcp`), whether tailnet targets are dialed through the node,
    /// and the resolver. Opening the probe socket costs one socket(2).
    pub fn health(&self) -> serde_json::Value {
        let icmp = match icmp::open(false, true) {
            Ok(s) => serde_json::to_value(s.kind).unwrap_or_default(),
            Err(_) => serde_json::Value::String("none".into()),
        };
        serde_json::json!({
            "status": "ok",
            "icmp": icmp,
            "tailnet_dial": self.node.get().is_some(),
            "resolver": self.resolver.map_or_else(|| "system".to_string(), |a| a.to_string()),
        })
    }

    /// The node tailops serves on: its IPs join the policy's refused
    /// addresses and tailnet targets are dialed through it.
    pub fn set_node(&self, node: Arc<dyn TailnetAccess>) {
        self.policy.set_own_ips(&node.own_ips());
        let _ = self.node.set(node);
    }

    /// The resolver for probe targets and for `dns_lookup` without a
    /// server: `[network] resolver`, else the system's. No cache: each
    /// lookup asks (so what was checked is what was just answered).
    pub fn resolver(&self, server: Option<SocketAddr>, timeout: Duration) -> Result<TokioResolver, ToolError> {
        let chosen = server.or(self.resolver);
        let (config, mut opts) = match chosen {
            Some(addr) => (
                ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                ResolverOpts::default(),
            ),
            None => hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                ToolError::unavailable(
                    format!("cannot read the system resolver configuration: {e}"),
                    "set [network] resolver or give a server",
                )
            })?,
        };
        opts.cache_size = 0;
        if chosen.is_some() {
            // A chosen server answers alone: /etc/hosts is the system
            // resolver's business.
            opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        }
        opts.timeout = timeout;
        opts.attempts = 1;
        let mut b = TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
        *b.options_mut() = opts;
        Ok(b.build())
    }

    /// Checks a target and resolves it: a name against the host rules,
    /// then EVERY address it resolves to against the address rules (one
    /// refused address refuses the target).
    pub async fn resolve(&self, host: &Host, timeout: Duration) -> Result<Resolved, ToolError> {
        match host {
            Host::Ip(ip) => {
                self.policy.check_ip(*ip).map_err(|r| r.to_error("the target address"))?;
                Ok(Resolved { addrs: vec![canonical(*ip)], elapsed: Duration::ZERO })
            }
            Host::Name(name) => {
                self.policy.check_name(name).map_err(|r| r.to_error("the target name"))?;
                let t0 = Instant::now();
                let resolver = self.resolver(None, timeout)?;
                let fqdn = format!("{name}.");
                let lookup = tokio::time::timeout(timeout, resolver.lookup_ip(fqdn.as_str()))
                    .await
                    .map_err(|_| timeout_err(&format!("resolving {name}"), timeout))?
                    .map_err(|e| {
                        ToolError::not_found(
                            format!("{name} did not resolve: {e}"),
                            "check the name (dns_lookup shows what the resolver answers)",
                        )
                    })?;
                let elapsed = t0.elapsed();
                let mut addrs: Vec<IpAddr> = lookup.iter().map(canonical).take(MAX_RESOLVED_ADDRS).collect();
                addrs.dedup();
                if addrs.is_empty() {
                    return Err(ToolError::not_found(format!("{name} has no addresses"), "check the name"));
                }
                for ip in &addrs {
                    self.policy.check_ip(*ip).map_err(|r| r.to_error(&format!("{name} resolved to it")))?;
                }
                Ok(Resolved { addrs, elapsed })
            }
        }
    }

    /// Connects to a CHECKED address (from [`Self::resolve`]): through
    /// the node for tailnet addresses when serving on the tailnet,
    /// otherwise the kernel.
    pub async fn connect(&self, ip: IpAddr, port: u16, timeout: Duration) -> Result<(Stream, Via), ConnectError> {
        let addr = SocketAddr::new(ip, port);
        if is_tailnet(ip)
            && let Some(node) = self.node.get()
        {
            let s = tokio::time::timeout(timeout, node.dial(addr, timeout))
                .await
                .map_err(|_| ConnectError::timeout(addr, timeout))?
                .map_err(|e| ConnectError { addr, kind: "error", message: e.to_string(), limit: timeout })?;
            return Ok((Either::Right(s), Via::Tailnet));
        }
        let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::timeout(addr, timeout))?
            .map_err(|e| ConnectError::io(addr, &e, timeout))?;
        let _ = s.set_nodelay(true);
        Ok((Either::Left(s), Via::Kernel))
    }

    /// The trusted roots for TLS checks.
    pub fn roots(&self) -> Arc<tokio_rustls::rustls::RootCertStore> {
        self.roots.clone()
    }
}
