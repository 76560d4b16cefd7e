//! `net_connections`: TCP and UDP sockets (listening and connected) with
//! their owning process, filtered and paginated. The sockets and the pid
//! map come from `host::net::sockets` (see there for /proc vs netlink and
//! what needs root).

use std::collections::HashSet;
use std::net::IpAddr;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::read;
use crate::host::net::sockets::{self, MAX_SOCKETS, Proto, STATE_NAMES, Socket};
use crate::mcp::page;
use crate::mcp::{ToolError, ToolSpec};
use crate::tools::TailopsServer;

pub const SPECS: &[ToolSpec] = &[read("net_connections")];

/// Default and largest page.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsInput {
    /// Only TCP or only UDP (both by default; IPv4 and IPv6 alike).
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Only sockets in this state: LISTEN, ESTABLISHED, TIME_WAIT,
    /// CLOSE_WAIT, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, LAST_ACK,
    /// CLOSING, CLOSE, NEW_SYN_RECV, or UNCONN (bound UDP without a peer).
    /// Case-insensitive.
    #[serde(default)]
    pub state: Option<String>,
    /// true: only listening sockets (TCP LISTEN and unconnected UDP);
    /// false: only the others.
    #[serde(default)]
    pub listening: Option<bool>,
    /// Only sockets whose local or remote port is this.
    #[serde(default)]
    pub port: Option<u16>,
    /// Only sockets owned by this process id.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Only sockets whose remote address is inside this CIDR (e.g.
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address).
    #[serde(default)]
    pub remote_cidr: Option<String>,
    /// Page size (1-1000, default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema, PartialEq)]
pub struct Connection {
    /// tcp or udp.
    pub protocol: &'static str,
    pub local_address: IpAddr,
    pub local_port: u16,
    pub remote_address: IpAddr,
    pub remote_port: u16,
    pub state: &'static str,
    /// Owning process (None: no descriptor holds it — TIME_WAIT — or its
    /// owner's descriptors were not readable; see `pid_mapping`).
    pub pid: Option<u32>,
    /// The owner's command name (/proc/PID/comm).
    pub process: Option<String>,
    /// Owner's uid as the kernel recorded it for the socket.
    pub uid: u32,
    /// Bytes queued: unsent (tx) and unread (rx); for LISTEN, rx is the
    /// accept backlog.
    pub tx_queue: u64,
    pub rx_queue: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ConnectionsOutput {
    pub summary: String,
    pub connections: Vec<Connection>,
    /// Matching sockets.
    pub total: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
    /// `complete`, or `partial` when some processes' descriptors could not
    /// be read (not root and no CAP_SYS_PTRACE): their sockets show no pid,
    /// and a `pid` filter cannot see them.
    pub pid_mapping: &'static str,
    /// Processes whose descriptors could not be read.
    pub processes_unreadable: usize,
    /// More than 200,000 sockets existed: only the first were considered.
    pub scan_truncated: bool,
}

/// A parsed `remote_cidr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, ToolError> {
        let bad = || {
            ToolError::invalid_input(
                format!("remote_cidr {s:?} is not an address or CIDR"),
                "use e.g. 10.0.0.0/8, 192.168.1.7 or 2001:db8::/32",
            )
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` is inside (IPv4 CIDRs also match v4-mapped IPv6).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The filters that need no pid map.
struct Filter {
    proto: Option<Proto>,
    state: Option<&'static str>,
    listening: Option<bool>,
    port: Option<u16>,
    remote: Option<Cidr>,
}

impl Filter {
    fn from_input(i: &ConnectionsInput) -> Result<Filter, ToolError> {
        let state = match &i.state {
            None => None,
            Some(s) => {
                let up = s.trim().to_ascii_uppercase();
                Some(STATE_NAMES.iter().copied().find(|n| *n == up).ok_or_else(|| {
                    ToolError::invalid_input(
                        format!("state {s:?} is unknown"),
                        format!("use one of {}", STATE_NAMES.join(", ")),
                    )
                })?)
            }
        };
        Ok(Filter {
            proto: i.protocol.map(|p| match p {
                Protocol::Tcp => Proto::Tcp,
                Protocol::Udp => Proto::Udp,
            }),
            state,
            listening: i.listening,
            port: i.port,
            remote: i.remote_cidr.as_deref().map(Cidr::parse).transpose()?,
        })
    }

    fn matches(&self, s: &Socket) -> bool {
        self.proto.is_none_or(|p| s.proto == p)
            && self.state.is_none_or(|st| s.state == st)
            && self.listening.is_none_or(|l| s.is_listening() == l)
            && self.port.is_none_or(|p| s.local_port == p || s.remote_port == p)
            && self.remote.is_none_or(|c| c.contains(s.remote))
    }
}

/// Stable order across calls (so offset cursors page consistently).
fn sort(v: &mut [Socket]) {
    v.sort_by(|a, b| {
        (a.proto, a.local_port, a.local, a.remote, a.remote_port, a.inode).cmp(&(
            b.proto,
            b.local_port,
            b.local,
            b.remote,
            b.remote_port,
            b.inode,
        ))
    });
}

/// The whole query, blocking (reads /proc).
fn query(input: &ConnectionsInput, filter: &Filter, limit: usize, offset: usize) -> ConnectionsOutput {
    let want_tcp = filter.proto.is_none_or(|p| p == Proto::Tcp);
    let want_udp = filter.proto.is_none_or(|p| p == Proto::Udp);
    let tables = sockets::read_tables(want_tcp, want_udp, MAX_SOCKETS);
    let scan_truncated = tables.seen > tables.sockets.len();
    let mut rows: Vec<Socket> = tables.sockets.into_iter().filter(|s| filter.matches(s)).collect();
    // The pid map: only for inodes still of interest, and only the one
    // process's descriptors when a pid is asked for.
    let wanted: HashSet<u64> = rows.iter().map(|s| s.inode).filter(|i| *i != 0).collect();
    let owners = sockets::owners(&wanted, input.pid);
    if let Some(pid) = input.pid {
        rows.retain(|s| owners.by_inode.get(&s.inode).is_some_and(|o| o.0 == pid));
    }
    sort(&mut rows);
    let total = rows.len();
    let page: Vec<Connection> = rows
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|s| {
            let owner = owners.by_inode.get(&s.inode);
            Connection {
                protocol: s.proto.as_str(),
                local_address: s.local,
                local_port: s.local_port,
                remote_address: s.remote,
                remote_port: s.remote_port,
                state: s.state,
                pid: owner.map(|o| o.0),
                process: owner.map(|o| o.1.clone()),
                uid: s.uid,
                tx_queue: s.tx_queue,
                rx_queue: s.rx_queue,
            }
        })
        .collect();
    let end = offset.saturating_add(page.len());
    let truncated = end < total;
    let partial = owners.unreadable > 0;
    let mut summary = format!("{} of {total} matching sockets", page.len());
    if partial {
        summary.push_str(&format!(
            "; owners of {} processes unknown (reading other users' /proc/PID/fd needs root or CAP_SYS_PTRACE)",
            owners.unreadable
        ));
    }
    if scan_truncated {
        summary.push_str(&format!("; only the first {MAX_SOCKETS} of {} sockets were considered", tables.seen));
    }
    ConnectionsOutput {
        summary,
        connections: page,
        total,
        truncated,
        next_cursor: page::next_cursor(end, total),
        pid_mapping: if partial { "partial" } else { "complete" },
        processes_unreadable: owners.unreadable,
        scan_truncated,
    }
}

#[tool_router(router = net_connections_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "net_connections",
        description = "TCP and UDP sockets (IPv4 and IPv6, listening and connected) with state, local and remote address, queues and the owning pid and process name; filter by protocol, state, listening, port, pid or remote CIDR; paginated with a cursor. Owners of other users' sockets need the server to run as root (the output says when the pid map was partial).",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn net_connections(
        &self,
        Parameters(input): Parameters<ConnectionsInput>,
    ) -> Result<Json<ConnectionsOutput>, ToolError> {
        let limit = page::limit_in(input.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let offset = page::offset(input.cursor.as_deref())?;
        let filter = Filter::from_input(&input)?;
        if input.pid == Some(0) {
            return Err(ToolError::invalid_input(
                "pid must be a positive process id",
                "list processes to find the pid",
            ));
        }
        tokio::task::spawn_blocking(move || query(&input, &filter, limit, offset))
            .await
            .map(Json)
            .map_err(|e| ToolError::internal(format!("reading sockets: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(proto: Proto, local: &str, lp: u16, remote: &str, rp: u16, state: &'static str) -> Socket {
        Socket {
            proto,
            local: local.parse().unwrap(),
            local_port: lp,
            remote: remote.parse().unwrap(),
            remote_port: rp,
            state,
            tx_queue: 0,
            rx_queue: 0,
            uid: 0,
            inode: 1,
        }
    }

    #[test]
    fn cidrs_parse_and_match_at_their_edges() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.255.255.255".parse().unwrap()));
        assert!(!c.contains("11.0.0.0".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()), "v4-mapped matches an IPv4 CIDR");
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("203.0.113.9".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4/32").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(!Cidr::parse("1.2.3.4/32").unwrap().contains("1.2.3.5".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(Cidr::parse("::/0").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("::1/128").is_ok());
        for bad in [
            "",
            "/",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/8/8",
            "10.0.0.0/0008",
            "10.0.0.0/999999999999",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_combine() {
        let listen = sock(Proto::Tcp, "127.0.0.1", 8080, "0.0.0.0", 0, "LISTEN");
        let est = sock(Proto::Tcp, "10.0.0.2", 40000, "10.9.8.7", 443, "ESTABLISHED");
        let udp = sock(Proto::Udp, "0.0.0.0", 53, "0.0.0.0", 0, "UNCONN");
        let f = |i: ConnectionsInput| Filter::from_input(&i).unwrap();
        let only = |flt: Filter| -> Vec<bool> { [&listen, &est, &udp].iter().map(|s| flt.matches(s)).collect() };
        assert_eq!(only(f(ConnectionsInput::default())), [true, true, true]);
        assert_eq!(only(f(ConnectionsInput { listening: Some(true), ..Default::default() })), [true, false, true]);
        assert_eq!(only(f(ConnectionsInput { listening: Some(false), ..Default::default() })), [false, true, false]);
        assert_eq!(
            only(f(ConnectionsInput { state: Some("established".into()), ..Default::default() })),
            [false, true, false]
        );
        assert_eq!(only(f(ConnectionsInput { port: Some(443), ..Default::default() })), [false, true, false]);
        assert_eq!(
            only(f(ConnectionsInput { protocol: Some(Protocol::Udp), ..Default::default() })),
            [false, false, true]
        );
        assert_eq!(
            only(f(ConnectionsInput { remote_cidr: Some("10.9.0.0/16".into()), ..Default::default() })),
            [false, true, false]
        );
        assert!(Filter::from_input(&ConnectionsInput { state: Some("OPEN".into()), ..Default::default() }).is_err());
    }

    #[test]
    fn pages_cover_every_socket_once() {
        // Real sockets of this process: 5 listeners, paged 2 at a time.
        let ls: Vec<std::net::TcpListener> =
            (0..5).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let mut ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
        ports.sort_unstable();
        let pid = std::process::id();
        let input = ConnectionsInput { pid: Some(pid), state: Some("LISTEN".into()), ..Default::default() };
        let filter = Filter::from_input(&input).unwrap();
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let out = query(&input, &filter, 2, offset);
            assert!(out.connections.len() <= 2);
            seen.extend(out.connections.iter().filter(|c| ports.contains(&c.local_port)).map(|c| c.local_port));
            assert!(out.connections.iter().all(|c| c.pid == Some(pid)));
            match out.next_cursor {
                Some(c) => offset = page::offset(Some(&c)).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, ports, "every listener once, in port order");
        // A cursor past the end is an empty last page, not an error.
        let out = query(&input, &filter, 2, 10_000);
        assert!(out.connections.is_empty() && !out.truncated && out.next_cursor.is_none());
    }
}
