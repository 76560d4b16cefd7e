//! `tailnet_status` (`network:read`) and `tailnet_ping` (`network:probe`):
//! this node's view of its tailnet and how it reaches a peer, through the
//! embedded node (`host::net::tailnet`).
//!
//! What a caller sees: exactly this node's network map, which the control
//! plane has already filtered by the tailnet's ACLs (a peer this node may
//! not reach is not in it). Not shown: the login URL of a node waiting for
//! interactive login (it would let the caller enrol the node to their own
//! account), node keys and stable node IDs.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{probe, read};
use crate::host::net::tailnet::{Peer, PingKind, Status, TailnetAccess};
use crate::mcp::page;
use crate::mcp::{ErrorCategory, ToolError, ToolSpec};
use crate::tools::TailopsServer;

pub const SPECS: &[ToolSpec] = &[read("tailnet_status"), probe("tailnet_ping")];

/// How long a status read of the node may take.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Peers per page of `tailnet_status`: default and largest.
pub const DEFAULT_PEERS: usize = 100;
pub const MAX_PEERS: usize = 1000;
/// `tailnet_ping`: most pings per call, per-ping timeout bounds and
/// default, pause between pings.
pub const MAX_PING_COUNT: u32 = 10;
pub const DEFAULT_PING_COUNT: u32 = 3;
pub const MIN_PING_TIMEOUT_MS: u64 = 100;
pub const MAX_PING_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_PING_TIMEOUT_MS: u64 = 2_000;
pub const MAX_PING_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_PING_INTERVAL_MS: u64 = 200;
/// Longest target string (a MagicDNS name is at most 253 bytes).
pub const MAX_TARGET_LEN: usize = 253;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// Only peers that are online.
    #[serde(default)]
    pub online_only: bool,
    /// Only peers whose name contains this (case-insensitive).
    #[serde(default)]
    pub name: Option<String>,
    /// Peers per page (1-1000, default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// How this node reaches a peer right now.
#[derive(Debug, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// Direct UDP (see `endpoint`).
    Direct,
    /// Through a peer relay.
    PeerRelay,
    /// Through a DERP relay (see `derp_region`).
    Derp,
    /// No path yet (no traffic since the peer came up).
    Idle,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SelfNode {
    pub name: String,
    pub dns_name: String,
    pub ips: Vec<IpAddr>,
    pub tags: Vec<String>,
    pub os: String,
    /// Node key expiry (RFC 3339; None when expiry is disabled).
    pub key_expiry: Option<String>,
    /// Home DERP region code.
    pub home_derp: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PeerRow {
    pub name: String,
    pub dns_name: String,
    pub os: String,
    pub ips: Vec<IpAddr>,
    pub tags: Vec<String>,
    /// Owner's login (untagged nodes only).
    pub user: String,
    pub online: bool,
    /// Traffic was exchanged recently.
    pub active: bool,
    pub last_seen: Option<String>,
    pub last_handshake: Option<String>,
    pub key_expiry: Option<String>,
    pub path: Path,
    /// Direct UDP endpoint in use.
    pub endpoint: Option<String>,
    /// DERP region the peer is reached through (its home region) when not
    /// direct.
    pub derp_region: Option<String>,
    pub peer_relay: Option<String>,
    pub rx_bytes: i64,
    pub tx_bytes: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusOutput {
    pub summary: String,
    /// `Running`, `NeedsLogin`, `Starting`, …
    pub backend_state: String,
    pub magic_dns_suffix: String,
    pub tailnet_name: String,
    #[serde(rename = "self")]
    pub self_node: Option<SelfNode>,
    pub peers: Vec<PeerRow>,
    /// Matching peers.
    pub total: usize,
    pub online: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
    /// Health warnings of the node (empty when healthy).
    pub health: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Over magicsock: says whether the path is direct or through DERP.
    #[default]
    Disco,
    /// Through WireGuard and the peer's network stack: proves the
    /// encrypted path end to end, reports no path.
    Tsmp,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingInput {
    /// A tailnet peer: its tailnet IP, MagicDNS name, short name or
    /// hostname. Anything that is not a peer of this node is refused.
    pub target: String,
    /// disco (default) or tsmp.
    #[serde(default)]
    pub kind: Kind,
    /// Pings to send (1-10, default 3). More than one sends progress
    /// notifications when the client asked for them.
    #[serde(default)]
    pub count: Option<u32>,
    /// Wait for each reply, ms (100-5000, default 2000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Pause between pings, ms (0-1000, default 200).
    #[serde(default)]
    pub interval_ms: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PingRow {
    pub seq: u32,
    /// None when no reply came.
    pub latency_ms: Option<f64>,
    pub path: Option<Path>,
    pub endpoint: Option<String>,
    pub derp_region: Option<String>,
    pub derp_region_id: Option<i64>,
    pub peer_relay: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PingOutput {
    pub summary: String,
    pub target: String,
    pub ip: IpAddr,
    pub peer: String,
    pub kind: &'static str,
    pub sent: u32,
    pub received: u32,
    pub min_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Path of the last reply (disco only).
    pub path: Option<Path>,
    pub pings: Vec<PingRow>,
}

fn path_of(p: &Peer) -> (Path, Option<String>, Option<String>) {
    if !p.cur_addr.is_empty() {
        (Path::Direct, Some(p.cur_addr.clone()), None)
    } else if !p.peer_relay.is_empty() {
        (Path::PeerRelay, None, None)
    } else if !p.relay.is_empty() && (p.active || p.last_handshake.is_some()) {
        (Path::Derp, None, Some(p.relay.clone()))
    } else {
        (Path::Idle, None, (!p.relay.is_empty()).then(|| p.relay.clone()))
    }
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn peer_row(p: &Peer) -> PeerRow {
    let (path, endpoint, derp_region) = path_of(p);
    PeerRow {
        name: p.short_name().to_owned(),
        dns_name: p.dns_name.clone(),
        os: p.os.clone(),
        ips: p.ips.clone(),
        tags: p.tags.clone(),
        user: p.user.clone(),
        online: p.online,
        active: p.active,
        last_seen: p.last_seen.clone(),
        last_handshake: p.last_handshake.clone(),
        key_expiry: p.key_expiry.clone(),
        path,
        endpoint,
        derp_region,
        peer_relay: nonempty(&p.peer_relay),
        rx_bytes: p.rx_bytes,
        tx_bytes: p.tx_bytes,
    }
}

/// The status document as the caller sees it, one page of peers.
pub fn status_view(st: Status, input: &StatusInput, limit: usize, offset: usize) -> StatusOutput {
    let needle = input.name.as_deref().map(str::to_lowercase);
    let mut peers: Vec<&Peer> = st
        .peers
        .iter()
        .filter(|p| !input.online_only || p.online)
        .filter(|p| {
            needle
                .as_deref()
                .is_none_or(|n| p.dns_name.to_lowercase().contains(n) || p.hostname.to_lowercase().contains(n))
        })
        .collect();
    peers.sort_by(|a, b| a.dns_name.cmp(&b.dns_name).then(a.hostname.cmp(&b.hostname)));
    let total = peers.len();
    let online = peers.iter().filter(|p| p.online).count();
    let page: Vec<PeerRow> = peers.into_iter().skip(offset).take(limit).map(peer_row).collect();
    let end = offset.saturating_add(page.len());
    let truncated = end < total;
    let self_node = st.self_node.as_ref().map(|s| SelfNode {
        name: s.short_name().to_owned(),
        dns_name: s.dns_name.clone(),
        ips: s.ips.clone(),
        tags: s.tags.clone(),
        os: s.os.clone(),
        key_expiry: s.key_expiry.clone(),
        home_derp: s.relay.clone(),
    });
    let direct = page.iter().filter(|p| p.path == Path::Direct).count();
    let summary = format!(
        "{} ({}): {total} peers, {online} online; this page {} peers, {direct} direct",
        self_node.as_ref().map_or("this node", |s| s.dns_name.as_str()),
        st.backend_state,
        page.len()
    );
    StatusOutput {
        summary,
        backend_state: st.backend_state,
        magic_dns_suffix: st.magic_dns_suffix,
        tailnet_name: st.tailnet_name,
        self_node,
        peers: page,
        total,
        online,
        truncated,
        next_cursor: page::next_cursor(end, total),
        health: st.health,
    }
}

/// The peer `target` names and the IP to ping. Only peers of this node are
/// valid; this node itself and anything else are refused.
pub fn resolve_target(st: &Status, target: &str) -> Result<(IpAddr, String), ToolError> {
    let t = target.trim().trim_end_matches('.');
    if t.is_empty() || t.len() > MAX_TARGET_LEN || target.chars().any(char::is_control) {
        return Err(ToolError::invalid_input(
            "target must be a tailnet peer's IP or name (1-253 characters)",
            "call tailnet_status to list peers",
        ));
    }
    let not_peer = || {
        ToolError::invalid_input(
            format!("{target:?} is not a peer on this tailnet"),
            "tailnet_ping reaches only tailnet peers (tailnet IP, MagicDNS name or hostname); call tailnet_status to list them",
        )
    };
    let is_self = |p: &Peer| -> bool {
        match t.parse::<IpAddr>() {
            Ok(ip) => p.ips.contains(&ip),
            Err(_) => names_match(p, t),
        }
    };
    if st.self_node.as_ref().is_some_and(is_self) {
        return Err(ToolError::invalid_input(
            format!("{target:?} is this node itself"),
            "ping another peer; call tailnet_status to list them",
        ));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        let p = st.peers.iter().find(|p| p.ips.contains(&ip)).ok_or_else(not_peer)?;
        return Ok((ip, p.dns_name.clone()));
    }
    let matches: Vec<&Peer> = st.peers.iter().filter(|p| names_match(p, t)).collect();
    match matches.as_slice() {
        [] => Err(not_peer()),
        [p] => {
            // Prefer the IPv4 address (the one every peer has).
            let ip = p.ips.iter().find(|i| i.is_ipv4()).or(p.ips.first()).copied().ok_or_else(not_peer)?;
            Ok((ip, p.dns_name.clone()))
        }
        _ => Err(ToolError::invalid_input(
            format!("{target:?} names {} peers", matches.len()),
            "use the full MagicDNS name or the tailnet IP",
        )),
    }
}

fn names_match(p: &Peer, t: &str) -> bool {
    let t = t.to_lowercase();
    p.dns_name.to_lowercase() == t || p.short_name().to_lowercase() == t || p.hostname.to_lowercase() == t
}

/// Checks the ping bounds; returns (count, timeout, interval).
pub fn ping_bounds(input: &PingInput, tool_timeout_secs: u64) -> Result<(u32, Duration, Duration), ToolError> {
    let count = input.count.unwrap_or(DEFAULT_PING_COUNT);
    if count == 0 || count > MAX_PING_COUNT {
        return Err(ToolError::invalid_input(format!("count {count} out of range"), format!("use 1-{MAX_PING_COUNT}")));
    }
    let timeout = input.timeout_ms.unwrap_or(DEFAULT_PING_TIMEOUT_MS);
    if !(MIN_PING_TIMEOUT_MS..=MAX_PING_TIMEOUT_MS).contains(&timeout) {
        return Err(ToolError::invalid_input(
            format!("timeout_ms {timeout} out of range"),
            format!("use {MIN_PING_TIMEOUT_MS}-{MAX_PING_TIMEOUT_MS}"),
        ));
    }
    let interval = input.interval_ms.unwrap_or(DEFAULT_PING_INTERVAL_MS);
    if interval > MAX_PING_INTERVAL_MS {
        return Err(ToolError::invalid_input(
            format!("interval_ms {interval} out of range"),
            format!("use 0-{MAX_PING_INTERVAL_MS}"),
        ));
    }
    // The worst case must end before the server's tool timeout.
    let worst_ms = u64::from(count).saturating_mul(timeout.saturating_add(interval));
    if worst_ms >= tool_timeout_secs.saturating_mul(1000) {
        return Err(ToolError::invalid_input(
            format!(
                "{count} pings × ({timeout} + {interval}) ms could outlast the server's {tool_timeout_secs} s tool timeout"
            ),
            "lower count, timeout_ms or interval_ms",
        ));
    }
    Ok((count, Duration::from_millis(timeout), Duration::from_millis(interval)))
}

fn row(seq: u32, r: &crate::host::net::tailnet::PingReply, kind: Kind) -> PingRow {
    if !r.err.is_empty() {
        return PingRow {
            seq,
            latency_ms: None,
            path: None,
            endpoint: None,
            derp_region: None,
            derp_region_id: None,
            peer_relay: None,
            error: Some(r.err.clone()),
        };
    }
    let path = match kind {
        Kind::Tsmp => None,
        Kind::Disco if !r.endpoint.is_empty() => Some(Path::Direct),
        Kind::Disco if !r.peer_relay.is_empty() => Some(Path::PeerRelay),
        Kind::Disco if r.derp_region_id != 0 => Some(Path::Derp),
        Kind::Disco => None,
    };
    PingRow {
        seq,
        latency_ms: Some(r.latency_seconds * 1000.0),
        path,
        endpoint: nonempty(&r.endpoint),
        derp_region: nonempty(&r.derp_region_code),
        derp_region_id: (r.derp_region_id != 0).then_some(r.derp_region_id),
        peer_relay: nonempty(&r.peer_relay),
        error: None,
    }
}

impl TailopsServer {
    fn tailnet_node(&self) -> Result<&std::sync::Arc<dyn TailnetAccess>, ToolError> {
        self.host.net.tailnet.get().ok_or_else(|| {
            ToolError::unavailable(
                "this server has no tailnet node (dev-listen or stdio mode, or the node is not up yet)",
                "run `tailops serve` on the tailnet",
            )
        })
    }
}

fn node_error(e: String) -> ToolError {
    ToolError::unavailable(format!("the tailnet node did not answer: {e}"), "retry; check the node's health in /readyz")
}

#[tool_router(router = net_tailnet_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "tailnet_status",
        description = "This node's view of its tailnet: itself (name, IPs, tags, key expiry, home DERP), MagicDNS suffix, and its peers (name, OS, IPs, online, last seen, direct endpoint or DERP region, bytes in/out), paginated. Shows only this node's ACL-filtered network map; never login URLs or keys.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn tailnet_status(
        &self,
        Parameters(input): Parameters<StatusInput>,
    ) -> Result<Json<StatusOutput>, ToolError> {
        let limit = page::limit_in(input.limit, DEFAULT_PEERS, MAX_PEERS)?;
        let offset = page::offset(input.cursor.as_deref())?;
        let st = self.tailnet_node()?.status(STATUS_TIMEOUT).await.map_err(node_error)?;
        Ok(Json(status_view(st, &input, limit, offset)))
    }

    #[tool(
        name = "tailnet_ping",
        description = "Ping a tailnet peer through this node (disco: says direct UDP or which DERP region relays, and the latency; tsmp: through WireGuard end to end). Only tailnet peers are valid targets. 1-10 pings with progress notifications; cancellable.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn tailnet_ping(
        &self,
        Parameters(input): Parameters<PingInput>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<PingOutput>, ToolError> {
        let (count, timeout, interval) = ping_bounds(&input, self.spine.cfg.limits.tool_timeout_secs)?;
        let node = self.tailnet_node()?;
        let st = node.status(STATUS_TIMEOUT).await.map_err(node_error)?;
        let (ip, peer) = resolve_target(&st, &input.target)?;
        let kind = match input.kind {
            Kind::Disco => PingKind::Disco,
            Kind::Tsmp => PingKind::Tsmp,
        };
        let token = ctx.meta.get_progress_token();
        let cancelled = || {
            ToolError::new(
                ErrorCategory::Timeout,
                format!("the ping of {peer} was cancelled by the client"),
                "pings already sent are not reported",
            )
        };
        let mut rows = Vec::new();
        for seq in 1..=count {
            if seq > 1 {
                tokio::select! {
                    _ = ctx.ct.cancelled() => return Err(cancelled()),
                    _ = tokio::time::sleep(interval) => {}
                }
            }
            let t0 = Instant::now();
            let reply = tokio::select! {
                _ = ctx.ct.cancelled() => return Err(cancelled()),
                r = node.ping(ip, kind, timeout) => r.map_err(node_error)?,
            };
            let r = row(seq, &reply, input.kind);
            tracing::debug!(seq, took_ms = t0.elapsed().as_millis() as u64, "tailnet ping");
            if let (Some(token), true) = (&token, count > 1) {
                let msg = match r.latency_ms {
                    Some(ms) => format!("ping {seq}/{count} to {peer}: {ms:.1} ms"),
                    None => format!("ping {seq}/{count} to {peer}: no reply"),
                };
                let p = ProgressNotificationParam::new(token.clone(), f64::from(seq))
                    .with_total(f64::from(count))
                    .with_message(msg);
                let _ = ctx.peer.notify_progress(p).await;
            }
            rows.push(r);
        }
        let lat: Vec<f64> = rows.iter().filter_map(|r| r.latency_ms).collect();
        let received = u32::try_from(lat.len()).unwrap_or(u32::MAX);
        let min = lat.iter().copied().reduce(f64::min);
        let max = lat.iter().copied().reduce(f64::max);
        let avg = (!lat.is_empty()).then(|| lat.iter().sum::<f64>() / lat.len() as f64);
        let last = rows.iter().rev().find(|r| r.latency_ms.is_some());
        let path = last.and_then(|r| match r.path {
            Some(Path::Direct) => Some(Path::Direct),
            Some(Path::Derp) => Some(Path::Derp),
            Some(Path::PeerRelay) => Some(Path::PeerRelay),
            _ => None,
        });
        let how = match (&path, last) {
            (Some(Path::Direct), Some(r)) => format!("direct via {}", r.endpoint.as_deref().unwrap_or("?")),
            (Some(Path::Derp), Some(r)) => {
                format!("relayed by DERP region {}", r.derp_region.as_deref().unwrap_or("?"))
            }
            (Some(Path::PeerRelay), _) => "through a peer relay".to_owned(),
            _ => "path not reported".to_owned(),
        };
        let summary = match avg {
            Some(a) => format!("{received}/{count} replies from {peer} ({ip}), avg {a:.1} ms, {how}"),
            None => format!("0/{count} replies from {peer} ({ip})"),
        };
        Ok(Json(PingOutput {
            summary,
            target: input.target,
            ip,
            peer,
            kind: match input.kind {
                Kind::Disco => "disco",
                Kind::Tsmp => "tsmp",
            },
            sent: count,
            received,
            min_ms: min,
            avg_ms: avg,
            max_ms: max,
            path,
            pings: rows,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, ip: &str, online: bool) -> Peer {
        Peer {
            hostname: name.into(),
            dns_name: format!("{name}.tail.example"),
            ips: vec![ip.parse().unwrap(), "fd7a:115c:a1e0::9".parse().unwrap()],
            online,
            relay: "hs".into(),
            ..Default::default()
        }
    }

    fn status() -> Status {
        Status {
            backend_state: "Running".into(),
            self_node: Some(peer("ops", "100.64.0.1", true)),
            peers: vec![
                peer("web", "100.64.0.2", true),
                peer("db", "100.64.0.3", false),
                peer("web2", "100.64.0.4", true),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn only_peers_are_ping_targets() {
        let st = status();
        assert_eq!(resolve_target(&st, "100.64.0.2").unwrap().0, "100.64.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(resolve_target(&st, "web").unwrap().1, "web.tail.example");
        assert_eq!(resolve_target(&st, "WEB.tail.example.").unwrap().0, "100.64.0.2".parse::<IpAddr>().unwrap());
        for bad in
            ["127.0.0.1", "169.254.169.254", "8.8.8.8", "example.com", "100.64.0.99", "", "web\n", "ops", "100.64.0.1"]
        {
            let e = resolve_target(&st, bad).unwrap_err();
            assert_eq!(e.category, ErrorCategory::InvalidInput, "{bad:?}");
        }
        let long = "a".repeat(MAX_TARGET_LEN + 1);
        assert!(resolve_target(&st, &long).is_err());
    }

    #[test]
    fn ping_bounds_at_their_edges() {
        let i = |count: Option<u32>, t: Option<u64>, iv: Option<u64>| PingInput {
            target: "x".into(),
            kind: Kind::Disco,
            count,
            timeout_ms: t,
            interval_ms: iv,
        };
        assert!(ping_bounds(&i(None, None, None), 60).is_ok());
        assert!(ping_bounds(&i(Some(0), None, None), 60).is_err());
        assert!(ping_bounds(&i(Some(1), None, None), 60).is_ok());
        assert!(ping_bounds(&i(Some(MAX_PING_COUNT), None, None), 60).is_ok());
        assert!(ping_bounds(&i(Some(MAX_PING_COUNT + 1), None, None), 60).is_err());
        assert!(ping_bounds(&i(None, Some(MIN_PING_TIMEOUT_MS - 1), None), 60).is_err());
        assert!(ping_bounds(&i(None, Some(MIN_PING_TIMEOUT_MS), None), 60).is_ok());
        assert!(ping_bounds(&i(None, Some(MAX_PING_TIMEOUT_MS), None), 60).is_ok());
        assert!(ping_bounds(&i(None, Some(MAX_PING_TIMEOUT_MS + 1), None), 60).is_err());
        assert!(ping_bounds(&i(None, None, Some(MAX_PING_INTERVAL_MS)), 60).is_ok());
        assert!(ping_bounds(&i(None, None, Some(MAX_PING_INTERVAL_MS + 1)), 60).is_err());
        // 10 × (5000 + 1000) = 60 s: not under a 60 s tool timeout.
        assert!(ping_bounds(&i(Some(10), Some(5000), Some(1000)), 60).is_err());
        assert!(ping_bounds(&i(Some(10), Some(5000), Some(900)), 60).is_ok());
    }

    #[test]
    fn status_pages_and_filters() {
        let st = status();
        let all = status_view(st.clone(), &StatusInput::default(), 100, 0);
        assert_eq!((all.total, all.online, all.peers.len()), (3, 2, 3));
        assert_eq!(all.self_node.as_ref().unwrap().name, "ops");
        let names: Vec<&str> = all.peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["db", "web", "web2"]);
        let on = status_view(st.clone(), &StatusInput { online_only: true, ..Default::default() }, 100, 0);
        assert_eq!(on.total, 2);
        let p1 = status_view(st.clone(), &StatusInput::default(), 2, 0);
        assert_eq!((p1.peers.len(), p1.next_cursor.as_deref()), (2, Some("o:2")));
        let p2 = status_view(st.clone(), &StatusInput::default(), 2, 2);
        assert_eq!((p2.peers.len(), p2.truncated), (1, false));
        let web = status_view(st, &StatusInput { name: Some("WEB".into()), ..Default::default() }, 100, 0);
        assert_eq!(web.total, 2);
    }

    #[test]
    fn paths_from_status_and_pings() {
        let mut p = peer("a", "100.64.0.5", true);
        assert_eq!(path_of(&p).0, Path::Idle);
        p.active = true;
        assert_eq!(path_of(&p), (Path::Derp, None, Some("hs".into())));
        p.cur_addr = "127.0.0.1:41641".into();
        assert_eq!(path_of(&p).0, Path::Direct);
        let r = crate::host::net::tailnet::PingReply {
            latency_seconds: 0.002,
            derp_region_id: 999,
            derp_region_code: "hs".into(),
            ..Default::default()
        };
        let row = row(1, &r, Kind::Disco);
        assert_eq!((row.path, row.derp_region.as_deref()), (Some(Path::Derp), Some("hs")));
        let r = crate::host::net::tailnet::PingReply { err: "timeout".into(), ..Default::default() };
        assert_eq!(super::row(1, &r, Kind::Disco).latency_ms, None);
    }
}
