//! `ping`: ICMP echo (datagram socket where allowed, raw otherwise) or,
//! when ICMP sockets cannot be opened or `method = tcp`, TCP connects to a
//! port (a refused connect still proves the host answers) — the output
//! says which. Bounded count, interval and per-reply timeout; progress
//! after each reply; stops early when cancelled.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::icmp::{self, SocketKind};
use super::{Prober, ProgressSink, ms};
use crate::host::net::target::Host;
use crate::mcp::{ErrorCategory, ToolError};

/// Most echo requests per call.
pub const MAX_PING_COUNT: u32 = 100;
/// Shortest and longest interval between requests, ms.
pub const MIN_PING_INTERVAL_MS: u64 = 200;
pub const MAX_PING_INTERVAL_MS: u64 = 10_000;
/// Longest a whole ping may take by its arguments (count × max(interval,
/// timeout)), ms; the spine's tool timeout applies as well.
pub const MAX_PING_TOTAL_MS: u64 = 120_000;
/// Default TCP port of the TCP-connect method.
pub const DEFAULT_TCP_PORT: u16 = 443;

/// How to ping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PingMethod {
    /// ICMP echo; TCP connects when ICMP sockets are not permitted.
    #[default]
    Auto,
    /// ICMP echo only.
    Icmp,
    /// TCP connects only.
    Tcp,
}

/// What a ping used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Used {
    IcmpDatagram,
    IcmpRaw,
    /// TCP connects to `tcp_port`: NOT an ICMP ping (a refused connect
    /// counts as a reply: the host answered).
    TcpConnect,
}

/// One request.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Reply {
    pub seq: u32,
    /// Round trip, ms; null: no reply within the timeout.
    pub rtt_ms: Option<f64>,
    /// Who answered (may differ from the target for ICMP errors).
    pub from: Option<String>,
    /// `timeout`, `unreachable`, `refused` (TCP), …
    pub note: Option<String>,
}

/// What `ping` found.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PingOutput {
    pub host: String,
    /// The address pinged (checked by the target policy).
    pub address: String,
    /// `icmp_datagram`, `icmp_raw`, or `tcp_connect` (not ICMP).
    pub method: Used,
    /// Why the TCP method was used in `auto`, if it was.
    pub fallback_reason: Option<String>,
    pub tcp_port: Option<u16>,
    pub transmitted: u32,
    pub received: u32,
    pub loss_percent: f64,
    pub min_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Mean deviation, as ping(8) prints it.
    pub mdev_ms: Option<f64>,
    pub replies: Vec<Reply>,
    /// The client cancelled: the counts cover the requests sent so far.
    pub cancelled: bool,
}

/// One `ping`.
pub struct Ping {
    pub host: Host,
    pub count: u32,
    pub interval: Duration,
    pub timeout: Duration,
    pub method: PingMethod,
    pub tcp_port: u16,
}

/// Checks count/interval/timeout against the limits.
pub fn check_bounds(count: u32, interval_ms: u64, timeout_ms: u64) -> Result<(), ToolError> {
    if !(1..=MAX_PING_COUNT).contains(&count) {
        return Err(ToolError::invalid_input(
            format!("count must be 1-{MAX_PING_COUNT}, got {count}"),
            "ask for fewer echo requests",
        ));
    }
    if !(MIN_PING_INTERVAL_MS..=MAX_PING_INTERVAL_MS).contains(&interval_ms) {
        return Err(ToolError::invalid_input(
            format!("interval_ms must be {MIN_PING_INTERVAL_MS}-{MAX_PING_INTERVAL_MS}, got {interval_ms}"),
            "give interval_ms within the range",
        ));
    }
    let total = u64::from(count).saturating_mul(interval_ms.max(timeout_ms));
    if total > MAX_PING_TOTAL_MS {
        return Err(ToolError::invalid_input(
            format!("count x max(interval_ms, timeout_ms) = {total} ms exceeds {MAX_PING_TOTAL_MS} ms"),
            "lower count, interval_ms or timeout_ms",
        ));
    }
    Ok(())
}

fn stats(out: &mut PingOutput) {
    let rtts: Vec<f64> = out.replies.iter().filter_map(|r| r.rtt_ms).collect();
    out.transmitted = u32::try_from(out.replies.len()).unwrap_or(u32::MAX);
    out.received = u32::try_from(rtts.len()).unwrap_or(u32::MAX);
    out.loss_percent = if out.transmitted == 0 {
        0.0
    } else {
        100.0 * f64::from(out.transmitted - out.received) / f64::from(out.transmitted)
    };
    if rtts.is_empty() {
        return;
    }
    let n = rtts.len() as f64;
    let avg = rtts.iter().sum::<f64>() / n;
    let sq = rtts.iter().map(|r| r * r).sum::<f64>() / n;
    out.min_ms = rtts.iter().copied().reduce(f64::min);
    out.max_ms = rtts.iter().copied().reduce(f64::max);
    out.avg_ms = Some(avg);
    out.mdev_ms = Some((sq - avg * avg).max(0.0).sqrt());
}

impl Prober {
    pub async fn ping<P: ProgressSink>(
        &self,
        q: Ping,
        cancel: &CancellationToken,
        progress: Option<&P>,
    ) -> Result<PingOutput, ToolError> {
        let resolved = self.resolve(&q.host, q.timeout).await?;
        let ip = *resolved.addrs.first().ok_or_else(|| ToolError::internal("no resolved address"))?;
        let (sock, fallback_reason) = match q.method {
            PingMethod::Tcp => (None, None),
            PingMethod::Icmp | PingMethod::Auto => match icmp::open(ip.is_ipv6(), true) {
                Ok(s) => (Some(s), None),
                Err(e) if q.method == PingMethod::Auto => {
                    (None, Some(format!("no ICMP socket ({e}): ping_group_range excludes us and no CAP_NET_RAW")))
                }
                Err(e) => {
                    return Err(ToolError::unavailable(
                        format!("cannot open an ICMP socket: {e}"),
                        "allow our group in net.ipv4.ping_group_range, grant CAP_NET_RAW, or use method tcp",
                    ));
                }
            },
        };
        let method = match &sock {
            Some(s) if s.kind == SocketKind::IcmpDatagram => Used::IcmpDatagram,
            Some(_) => Used::IcmpRaw,
            None => Used::TcpConnect,
        };
        let mut out = PingOutput {
            host: q.host.to_string(),
            address: ip.to_string(),
            method,
            fallback_reason,
            tcp_port: (method == Used::TcpConnect).then_some(q.tcp_port),
            transmitted: 0,
            received: 0,
            loss_percent: 0.0,
            min_ms: None,
            avg_ms: None,
            max_ms: None,
            mdev_ms: None,
            replies: vec![],
            cancelled: false,
        };
        let id = icmp::new_id();
        for seq in 0..q.count {
            let started = Instant::now();
            let one = async {
                match &sock {
                    Some(s) => self.echo_once(s, ip, id, seq, q.timeout).await,
                    None => Ok(self.tcp_once(ip, q.tcp_port, seq, q.timeout).await),
                }
            };
            let reply = tokio::select! {
                r = one => r?,
                _ = cancel.cancelled() => { out.cancelled = true; break; }
            };
            out.replies.push(reply);
            if let Some(p) = progress {
                let last = out.replies.last().and_then(|r| r.rtt_ms);
                let msg = match last {
                    Some(rtt) => format!("seq {seq}: {rtt:.3} ms"),
                    None => format!("seq {seq}: no reply"),
                };
                if !p.notify(f64::from(seq + 1), Some(f64::from(q.count)), msg).await {
                    out.cancelled = true;
                    break;
                }
            }
            if seq + 1 < q.count {
                let rest = q.interval.saturating_sub(started.elapsed());
                tokio::select! {
                    _ = tokio::time::sleep(rest) => {}
                    _ = cancel.cancelled() => { out.cancelled = true; break; }
                }
            }
        }
        stats(&mut out);
        Ok(out)
    }

    async fn echo_once(
        &self,
        s: &icmp::IcmpSocket,
        ip: IpAddr,
        id: u16,
        seq: u32,
        timeout: Duration,
    ) -> Result<Reply, ToolError> {
        let seq16 = (seq & 0xffff) as u16;
        let io = |e: std::io::Error| {
            ToolError::new(ErrorCategory::Unavailable, format!("ICMP to {ip}: {e}"), "check the route to the target")
        };
        let t0 = Instant::now();
        icmp::send(s, ip, &icmp::echo_request(s.v6, id, seq16)).await.map_err(io)?;
        let deadline = t0 + timeout;
        let reply_type = if s.v6 { icmp::ECHO_REPLY_V6 } else { icmp::ECHO_REPLY_V4 };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((m, at)) = icmp::recv(s, left).await.map_err(io)? else {
                return Ok(Reply { seq, rtt_ms: None, from: None, note: Some("timeout".into()) });
            };
            // Datagram sockets get only their own replies (the kernel
            // rewrites the id); raw sockets see every ICMP message.
            let ours = m.seq == seq16 && (s.kind == SocketKind::IcmpDatagram || m.id == id);
            if m.icmp_type == reply_type && ours && m.from == ip {
                return Ok(Reply { seq, rtt_ms: Some(ms(at - t0)), from: Some(m.from.to_string()), note: None });
            }
        }
    }

    async fn tcp_once(&self, ip: IpAddr, port: u16, seq: u32, timeout: Duration) -> Reply {
        let t0 = Instant::now();
        match self.connect(ip, port, timeout).await {
            Ok(_) => {
                Reply { seq, rtt_ms: Some(ms(t0.elapsed())), from: Some(ip.to_string()), note: Some("open".into()) }
            }
            Err(e) if e.kind == "refused" => {
                Reply { seq, rtt_ms: Some(ms(t0.elapsed())), from: Some(ip.to_string()), note: Some("refused".into()) }
            }
            Err(e) => Reply { seq, rtt_ms: None, from: None, note: Some(e.kind.to_string()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_at_their_edges() {
        assert!(check_bounds(MAX_PING_COUNT, MIN_PING_INTERVAL_MS, 1000).is_ok());
        assert!(check_bounds(MAX_PING_COUNT + 1, MIN_PING_INTERVAL_MS, 1000).is_err());
        assert!(check_bounds(0, 1000, 1000).is_err());
        assert!(check_bounds(1, MIN_PING_INTERVAL_MS - 1, 1000).is_err());
        assert!(check_bounds(1, MAX_PING_INTERVAL_MS, 1000).is_ok());
        assert!(check_bounds(1, MAX_PING_INTERVAL_MS + 1, 1000).is_err());
        // Total: 12 x 10 s = 120 s is the limit.
        assert!(check_bounds(12, MAX_PING_INTERVAL_MS, 1000).is_ok());
        assert!(check_bounds(13, MAX_PING_INTERVAL_MS, 1000).is_err());
    }

    #[test]
    fn stats_like_ping8() {
        let mut o = PingOutput {
            host: String::new(),
            address: String::new(),
            method: Used::IcmpRaw,
            fallback_reason: None,
            tcp_port: None,
            transmitted: 0,
            received: 0,
            loss_percent: 0.0,
            min_ms: None,
            avg_ms: None,
            max_ms: None,
            mdev_ms: None,
            replies: [Some(1.0), None, Some(3.0), None]
                .into_iter()
                .enumerate()
                .map(|(i, r)| Reply { seq: i as u32, rtt_ms: r, from: None, note: None })
                .collect(),
            cancelled: false,
        };
        stats(&mut o);
        assert_eq!((o.transmitted, o.received, o.loss_percent), (4, 2, 50.0));
        assert_eq!((o.min_ms, o.avg_ms, o.max_ms, o.mdev_ms), (Some(1.0), Some(2.0), Some(3.0), Some(1.0)));
    }
}
