//! `traceroute`: the routers on the way to a target, hop by hop (TTL 1,
//! 2, …), by UDP datagrams to high ports (the classic way: the target
//! answers "port unreachable") or ICMP echo. The answers are ICMP
//! messages read on a raw ICMP socket (needs CAP_NET_RAW; ICMP mode may
//! use a datagram socket where `ping_group_range` allows). Progress
//! after each hop; stops early when cancelled.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::icmp::{self, IcmpSocket, SocketKind};
use super::{Prober, ProgressSink, ms};
use crate::host::net::target::Host;
use crate::mcp::{ErrorCategory, ToolError};

/// Most hops (TTLs) probed.
pub const MAX_HOPS: u32 = 64;
pub const DEFAULT_MAX_HOPS: u32 = 30;
/// Most probes per hop.
pub const MAX_PROBES_PER_HOP: u32 = 5;
/// Longest a traceroute may take by its arguments (hops × probes ×
/// timeout), ms; the spine's tool timeout applies as well.
pub const MAX_TRACEROUTE_TOTAL_MS: u64 = 120_000;
/// First UDP destination port (incremented per probe).
pub const UDP_BASE_PORT: u16 = 33434;

/// How to probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TraceMethod {
    #[default]
    Udp,
    Icmp,
}

/// One probe's answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Probe {
    /// Round trip, ms; null: no answer within the timeout.
    pub rtt_ms: Option<f64>,
    /// Who answered.
    pub from: Option<String>,
}

/// One hop (TTL).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TraceHop {
    pub ttl: u32,
    pub probes: Vec<Probe>,
    /// The target answered at this hop.
    pub reached: bool,
}

/// What `traceroute` found.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TracerouteOutput {
    pub host: String,
    pub address: String,
    pub method: TraceMethod,
    pub hops: Vec<TraceHop>,
    /// The target answered (the last hop is the target).
    pub reached: bool,
    pub cancelled: bool,
}

/// One `traceroute`.
pub struct Traceroute {
    pub host: Host,
    pub method: TraceMethod,
    pub max_hops: u32,
    pub probes_per_hop: u32,
    pub timeout: Duration,
}

pub fn check_bounds(max_hops: u32, probes: u32, timeout_ms: u64) -> Result<(), ToolError> {
    if !(1..=MAX_HOPS).contains(&max_hops) {
        return Err(ToolError::invalid_input(
            format!("max_hops must be 1-{MAX_HOPS}, got {max_hops}"),
            "ask for fewer hops",
        ));
    }
    if !(1..=MAX_PROBES_PER_HOP).contains(&probes) {
        return Err(ToolError::invalid_input(
            format!("probes_per_hop must be 1-{MAX_PROBES_PER_HOP}, got {probes}"),
            "ask for fewer probes",
        ));
    }
    let total = u64::from(max_hops).saturating_mul(u64::from(probes)).saturating_mul(timeout_ms);
    if total > MAX_TRACEROUTE_TOTAL_MS {
        return Err(ToolError::invalid_input(
            format!("max_hops x probes_per_hop x timeout_ms = {total} ms exceeds {MAX_TRACEROUTE_TOTAL_MS} ms"),
            "lower max_hops, probes_per_hop or timeout_ms",
        ));
    }
    Ok(())
}

fn io_err(what: &str) -> impl Fn(std::io::Error) -> ToolError + '_ {
    move |e| {
        ToolError::new(
            ErrorCategory::Unavailable,
            format!("{what}: {e}"),
            "traceroute reads ICMP on a raw socket: run with CAP_NET_RAW (or use method icmp where ping_group_range allows)",
        )
    }
}

impl Prober {
    pub async fn traceroute<P: ProgressSink>(
        &self,
        q: Traceroute,
        cancel: &CancellationToken,
        progress: Option<&P>,
    ) -> Result<TracerouteOutput, ToolError> {
        let resolved = self.resolve(&q.host, q.timeout).await?;
        let ip = *resolved.addrs.first().ok_or_else(|| ToolError::internal("no resolved address"))?;
        let v6 = ip.is_ipv6();
        let icmp_sock = icmp::open(v6, q.method == TraceMethod::Icmp).map_err(io_err("cannot open an ICMP socket"))?;
        let udp = match q.method {
            TraceMethod::Udp => {
                let d = if v6 { Domain::IPV6 } else { Domain::IPV4 };
                let s = Socket::new(d, Type::DGRAM, Some(Protocol::UDP)).map_err(io_err("UDP socket"))?;
                s.set_nonblocking(true).map_err(io_err("UDP socket"))?;
                let any: SocketAddr = if v6 { "[::]:0".parse() } else { "0.0.0.0:0".parse() }
                    .map_err(|_| ToolError::internal("bind address"))?;
                s.bind(&any.into()).map_err(io_err("UDP bind"))?;
                Some(UdpSocket::from_std(std::net::UdpSocket::from(s)).map_err(io_err("UDP socket"))?)
            }
            TraceMethod::Icmp => None,
        };
        let local_port = match &udp {
            Some(u) => u.local_addr().map_err(io_err("UDP socket"))?.port(),
            None => 0,
        };
        let id = icmp::new_id();
        let mut out = TracerouteOutput {
            host: q.host.to_string(),
            address: ip.to_string(),
            method: q.method,
            hops: vec![],
            reached: false,
            cancelled: false,
        };
        let mut seq: u16 = 0;
        'hops: for ttl in 1..=q.max_hops {
            let mut hop = TraceHop { ttl, probes: vec![], reached: false };
            for _ in 0..q.probes_per_hop {
                seq = seq.wrapping_add(1);
                let one = self.trace_once(&icmp_sock, udp.as_ref(), ip, ttl, id, seq, local_port, q.timeout);
                let (probe, reached) = tokio::select! {
                    r = one => r?,
                    _ = cancel.cancelled() => { out.cancelled = true; out.hops.push(hop); break 'hops; }
                };
                hop.probes.push(probe);
                hop.reached |= reached;
            }
            let reached = hop.reached;
            let from = hop.probes.iter().find_map(|p| p.from.clone()).unwrap_or_else(|| "*".into());
            out.hops.push(hop);
            if let Some(p) = progress
                && !p.notify(f64::from(ttl), Some(f64::from(q.max_hops)), format!("hop {ttl}: {from}")).await
            {
                out.cancelled = true;
                break;
            }
            if reached {
                out.reached = true;
                break;
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn trace_once(
        &self,
        s: &IcmpSocket,
        udp: Option<&UdpSocket>,
        ip: IpAddr,
        ttl: u32,
        id: u16,
        seq: u16,
        local_port: u16,
        timeout: Duration,
    ) -> Result<(Probe, bool), ToolError> {
        let dport = UDP_BASE_PORT.wrapping_add(seq);
        let t0 = Instant::now();
        match udp {
            Some(u) => {
                icmp::set_ttl(u, s.v6, ttl).map_err(io_err("setting the TTL"))?;
                u.send_to(b"tailops-traceroute", SocketAddr::new(ip, dport)).await.map_err(io_err("UDP send"))?;
            }
            None => {
                icmp::set_ttl(&s.sock, s.v6, ttl).map_err(io_err("setting the TTL"))?;
                icmp::send(s, ip, &icmp::echo_request(s.v6, id, seq)).await.map_err(io_err("ICMP send"))?;
            }
        }
        let deadline = t0 + timeout;
        let (exceeded, unreach, reply) =
            if s.v6 { (3u8, 1u8, icmp::ECHO_REPLY_V6) } else { (11u8, 3u8, icmp::ECHO_REPLY_V4) };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((m, at)) = icmp::recv(s, left).await.map_err(io_err("ICMP receive"))? else {
                return Ok((Probe { rtt_ms: None, from: None }, false));
            };
            let rtt = Some(ms(at - t0));
            let from = Some(m.from.to_string());
            // Echo reply: ours when id/seq match (datagram sockets: seq).
            if udp.is_none()
                && m.icmp_type == reply
                && m.seq == seq
                && (s.kind == SocketKind::IcmpDatagram || m.id == id)
            {
                return Ok((Probe { rtt_ms: rtt, from }, true));
            }
            if m.icmp_type != exceeded && m.icmp_type != unreach {
                continue;
            }
            let Some(q) = &m.quoted else { continue };
            if q.dst != ip {
                continue;
            }
            let ours = match udp {
                Some(_) => {
                    q.protocol == 17
                        && u16::from_be_bytes([q.l4[0], q.l4[1]]) == local_port
                        && u16::from_be_bytes([q.l4[2], q.l4[3]]) == dport
                }
                None => {
                    let proto = if s.v6 { 58 } else { 1 };
                    q.protocol == proto && u16::from_be_bytes([q.l4[6], q.l4[7]]) == seq
                }
            };
            if !ours {
                continue;
            }
            // Unreachable from the target itself (port unreachable) means
            // we got there.
            let reached = m.icmp_type == unreach && m.from == ip;
            return Ok((Probe { rtt_ms: rtt, from }, reached));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_at_their_edges() {
        assert!(check_bounds(MAX_HOPS, 1, 1000).is_ok());
        assert!(check_bounds(MAX_HOPS + 1, 1, 1000).is_err());
        assert!(check_bounds(0, 1, 1000).is_err());
        assert!(check_bounds(1, MAX_PROBES_PER_HOP, 1000).is_ok());
        assert!(check_bounds(1, MAX_PROBES_PER_HOP + 1, 1000).is_err());
        assert!(check_bounds(1, 0, 1000).is_err());
        assert!(check_bounds(24, 5, 1000).is_ok());
        assert!(check_bounds(25, 5, 1000).is_err());
    }
}
