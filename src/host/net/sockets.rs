//! TCP and UDP sockets of this host's network namespace, with the process
//! that owns each one.
//!
//! Source: the text tables `/proc/net/{tcp,tcp6,udp,udp6}` (one line per
//! socket: addresses, state, queues, uid, inode) joined with a map from
//! socket inode to pid built from the `/proc/PID/fd/*` links
//! (`socket:[INODE]`). That is what `ss -p` and `netstat -p` do too.
//!
//! Why /proc and not `sock_diag` netlink: the text tables need no new crate
//! and no unsafe code, are readable without privilege, and their cost at
//! 10,000 sockets is measured in BENCHMARKS.md (the fd walk, which netlink
//! would not remove, dominates). The pid join needs to read other users'
//! `/proc/PID/fd`: without root (or CAP_SYS_PTRACE) only the caller's own
//! processes are mapped; the result says when the map was partial.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most sockets read from the tables in one call; the rest are counted but
/// not listed (the output says so).
pub const MAX_SOCKETS: usize = 200_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One socket row of a /proc/net table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// TCP state name as `ss` prints it (`LISTEN`, `ESTAB` is spelled out as
    /// `ESTABLISHED` …); UDP: `UNCONN` (bound, not connected) or
    /// `ESTABLISHED` (connected).
    pub state: &'static str,
    pub tx_queue: u64,
    pub rx_queue: u64,
    pub uid: u32,
    /// 0 for sockets no descriptor holds (TIME_WAIT, orphans).
    pub inode: u64,
}

impl Socket {
    /// Listening TCP, or bound-but-unconnected UDP.
    pub fn is_listening(&self) -> bool {
        self.state == "LISTEN" || (self.proto == Proto::Udp && self.state == "UNCONN")
    }
}

/// TCP states by their number in include/net/tcp_states.h.
const TCP_STATES: [&str; 13] = [
    "UNKNOWN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

/// Every state name a filter may use.
pub const STATE_NAMES: &[&str] = &[
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
    "UNCONN",
];

fn state_name(proto: Proto, n: u8) -> &'static str {
    match (proto, n) {
        // UDP reuses TCP_CLOSE (7) for a bound socket with no peer.
        (Proto::Udp, 7) => "UNCONN",
        (_, n) => TCP_STATES.get(usize::from(n)).copied().unwrap_or("UNKNOWN"),
    }
}

/// `0100007F:1F90` → (127.0.0.1, 8080). The address is the kernel's
/// in-memory (network order) bytes printed as native-endian 32-bit words.
fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(w, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            // Show v4-mapped addresses (dual-stack sockets) as IPv4.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// One data line of a /proc/net/{tcp,udp}[6] table (`None` for the header
/// or a line in a shape proc(5) does not describe).
pub fn parse_line(proto: Proto, line: &str) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().take(10).collect();
    if f.len() < 10 || !f[0].ends_with(':') {
        return None;
    }
    let (local, local_port) = parse_endpoint(f[1])?;
    let (remote, remote_port) = parse_endpoint(f[2])?;
    let state = state_name(proto, u8::from_str_radix(f[3], 16).ok()?);
    let (tx, rx) = f[4].split_once(':')?;
    Some(Socket {
        proto,
        local,
        local_port,
        remote,
        remote_port,
        state,
        tx_queue: u64::from_str_radix(tx, 16).ok()?,
        rx_queue: u64::from_str_radix(rx, 16).ok()?,
        uid: f[7].parse().ok()?,
        inode: f[9].parse().ok()?,
    })
}

/// Every socket of one table's text, at most `cap` (the count of all
/// parseable rows is returned beside them).
pub fn parse_table(proto: Proto, text: &str, cap: usize, out: &mut Vec<Socket>) -> usize {
    let mut seen = 0usize;
    for s in text.lines().skip(1).filter_map(|l| parse_line(proto, l)) {
        seen = seen.saturating_add(1);
        if out.len() < cap {
            out.push(s);
        }
    }
    seen
}

/// The socket tables of this network namespace.
pub struct Tables {
    pub sockets: Vec<Socket>,
    /// Rows in the tables, listed or not (more than `sockets.len()` when
    /// [`MAX_SOCKETS`] cut the list).
    pub seen: usize,
    /// Tables that could not be read (e.g. no IPv6 in the kernel).
    pub missing: Vec<&'static str>,
}

/// Reads the four tables (TCP before UDP, IPv4 before IPv6), at most `cap`
/// sockets in all.
pub fn read_tables(tcp: bool, udp: bool, cap: usize) -> Tables {
    let mut t = Tables { sockets: Vec::new(), seen: 0, missing: Vec::new() };
    let all: [(&'static str, Proto, bool); 4] = [
        ("/proc/net/tcp", Proto::Tcp, tcp),
        ("/proc/net/tcp6", Proto::Tcp, tcp),
        ("/proc/net/udp", Proto::Udp, udp),
        ("/proc/net/udp6", Proto::Udp, udp),
    ];
    for (path, proto, wanted) in all {
        if !wanted {
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => t.seen = t.seen.saturating_add(parse_table(proto, &text, cap, &mut t.sockets)),
            Err(_) => t.missing.push(path),
        }
    }
    t
}

/// `socket:[12345]` → 12345.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Who holds which socket inode.
#[derive(Default)]
pub struct Owners {
    /// inode → (pid, command name). A socket shared by several processes
    /// (after fork) maps to the lowest pid.
    pub by_inode: HashMap<u64, (u32, String)>,
    /// Processes whose descriptors we were not allowed to read.
    pub unreadable: usize,
}

/// Walks `/proc/PID/fd` of every process (or only of `only`) for socket
/// links. `wanted` limits the work to inodes of interest (no readlink
/// result is kept for any other inode); processes that exit meanwhile are
/// skipped.
pub fn owners(wanted: &std::collections::HashSet<u64>, only: Option<u32>) -> Owners {
    let mut o = Owners::default();
    let pids: Vec<u32> = match only {
        Some(pid) => vec![pid],
        None => match std::fs::read_dir("/proc") {
            Ok(d) => d.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())).collect(),
            Err(_) => return o,
        },
    };
    if wanted.is_empty() {
        return o;
    }
    for pid in pids {
        let fd_dir = std::path::PathBuf::from(format!("/proc/{pid}/fd"));
        let fds = match std::fs::read_dir(&fd_dir) {
            Ok(d) => d,
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                o.unreadable = o.unreadable.saturating_add(1);
                continue;
            }
            Err(_) => continue,
        };
        let mut name: Option<String> = None;
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else { continue };
            let Some(inode) = link.to_str().and_then(socket_inode) else { continue };
            if !wanted.contains(&inode) {
                continue;
            }
            let name = name.get_or_insert_with(|| crate::host::procfs::comm(pid).unwrap_or_default()).clone();
            o.by_inode
                .entry(inode)
                .and_modify(|cur| {
                    if pid < cur.0 {
                        *cur = (pid, name.clone())
                    }
                })
                .or_insert((pid, name));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from this machine: a Python listener on 127.0.0.1, a client
    // connected to it (both ends), a listener on ::1, a bound UDP socket
    // and a connected UDP6 socket.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 0100007F:9F69 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1091598 1 00000000b9dd9d38 100 0 0 10 0                   
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1528 1 000000009b7016a9 100 0 0 10 0                      
   2: 0100007F:A7C0 0100007F:9F69 01 00000000:00000000 00:00000000 00000000     0        0 1091599 2 0000000029ce76f2 20 0 0 10 -1                   
   3: 0100007F:9F69 0100007F:A7C0 01 00000000:00000000 00:00000000 00000000     0        0 1091600 1 0000000082dd73d5 20 0 0 10 -1                   
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:A72B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1091601 1 00000000f6de303f 100 0 0 10 0
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
 6243: 0100007F:C60A 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1091602 2 000000004fe0b914 0       
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
13910: 00000000000000000000000001000000:E3FD 00000000000000000000000001000000:0035 01 00000000:00000000 00:00000000 00000000     0        0 1091603 2 00000000217bb9ba 0
";

    fn all(text: &str, proto: Proto) -> Vec<Socket> {
        let mut v = Vec::new();
        parse_table(proto, text, usize::MAX, &mut v);
        v
    }

    #[test]
    fn parses_captured_tcp_table() {
        let v = all(TCP, Proto::Tcp);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].local, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(v[0].local_port, 0x9F69);
        assert_eq!(v[0].state, "LISTEN");
        assert!(v[0].is_listening());
        assert_eq!(v[0].inode, 1_091_598);
        assert_eq!(v[1].local, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(v[1].local_port, 2024);
        assert_eq!((v[2].remote, v[2].remote_port, v[2].state), (IpAddr::from([127, 0, 0, 1]), 0x9F69, "ESTABLISHED"));
        assert!(!v[2].is_listening());
    }

    #[test]
    fn parses_captured_v6_and_udp_tables() {
        let v = all(TCP6, Proto::Tcp);
        assert_eq!(v[0].local, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(v[0].local_port, 0xA72B);
        assert_eq!(v[0].remote, "::".parse::<IpAddr>().unwrap());
        let u = all(UDP, Proto::Udp);
        assert_eq!((u[0].state, u[0].local_port), ("UNCONN", 0xC60A));
        assert!(u[0].is_listening());
        let u6 = all(UDP6, Proto::Udp);
        assert_eq!((u6[0].state, u6[0].remote_port), ("ESTABLISHED", 53));
        assert!(!u6[0].is_listening());
    }

    #[test]
    fn v4_mapped_addresses_show_as_ipv4() {
        // ::ffff:127.0.0.1 as the kernel prints it on little-endian.
        let line = "   0: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 77 1 0 100 0 0 10 0";
        let s = parse_line(Proto::Tcp, line).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(s.local, IpAddr::from([127, 0, 0, 1]));
        }
        assert_eq!((s.local_port, s.uid), (8080, 1000));
    }

    #[test]
    fn malformed_lines_are_skipped_not_fatal() {
        for bad in [
            "",
            "garbage",
            "   0: 0100007F 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
            "   0: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
            "   0: 0100007:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
            "   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 notanumber 1",
        ] {
            assert_eq!(parse_line(Proto::Tcp, bad), None, "{bad:?}");
        }
        assert_eq!(state_name(Proto::Tcp, 0xEE), "UNKNOWN");
    }

    #[test]
    fn the_cap_bounds_the_list_not_the_count() {
        let mut v = Vec::new();
        assert_eq!(parse_table(Proto::Tcp, TCP, 3, &mut v), 4);
        assert_eq!(v.len(), 3);
        let mut v = Vec::new();
        assert_eq!(parse_table(Proto::Tcp, TCP, 4, &mut v), 4);
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode("socket:[1091598]"), Some(1_091_598));
        for bad in ["pipe:[12]", "socket:[]", "socket:[12", "/dev/null", "socket:[-1]"] {
            assert_eq!(socket_inode(bad), None, "{bad}");
        }
    }

    #[test]
    fn owners_finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = read_tables(true, false, MAX_SOCKETS);
        let s = t.sockets.iter().find(|s| s.local_port == port && s.state == "LISTEN").expect("listener listed");
        let o = owners(&[s.inode].into_iter().collect(), None);
        if rustix::process::geteuid().is_root() {
            assert_eq!(o.unreadable, 0, "root reads every process");
        }
        let mine = owners(&[s.inode].into_iter().collect(), Some(std::process::id()));
        assert_eq!(mine.by_inode.get(&s.inode).map(|p| p.0), Some(std::process::id()));
        assert_eq!(o.by_inode.get(&s.inode).map(|p| p.0), Some(std::process::id()));
    }
}
