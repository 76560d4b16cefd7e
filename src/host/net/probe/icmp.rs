//! ICMP sockets and packets for `ping` and `traceroute`: an unprivileged
//! ICMP datagram socket where `net.ipv4.ping_group_range` allows it, a
//! raw socket (CAP_NET_RAW) otherwise; echo requests built and replies
//! (and the time-exceeded / unreachable errors traceroute reads) parsed
//! here. socket2 opens the sockets (no unsafe); tokio's UdpSocket drives
//! them (send_to/recv_from are the same syscalls for ICMP sockets).
//! Hand-written because the packets are 8-byte headers: a crate such as
//! surge-ping covers echo only, not traceroute's quoted packets.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Largest packet read.
pub const MAX_PACKET: usize = 1500;
/// Echo payload size (bytes after the 8-byte ICMP header).
pub const PAYLOAD_LEN: usize = 24;

/// Which socket a probe used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SocketKind {
    /// Unprivileged ICMP datagram socket (`ping_group_range`).
    IcmpDatagram,
    /// Raw ICMP socket (CAP_NET_RAW).
    IcmpRaw,
}

pub struct IcmpSocket {
    pub sock: UdpSocket,
    pub kind: SocketKind,
    pub v6: bool,
}

fn domain(v6: bool) -> (Domain, Protocol) {
    if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) }
}

fn into_tokio(s: Socket) -> io::Result<UdpSocket> {
    s.set_nonblocking(true)?;
    UdpSocket::from_std(std::net::UdpSocket::from(s))
}

/// Opens an ICMP socket: datagram first (when `datagram_ok`), raw
/// otherwise.
pub fn open(v6: bool, datagram_ok: bool) -> io::Result<IcmpSocket> {
    let (d, p) = domain(v6);
    if datagram_ok && let Ok(s) = Socket::new(d, Type::DGRAM, Some(p)) {
        return Ok(IcmpSocket { sock: into_tokio(s)?, kind: SocketKind::IcmpDatagram, v6 });
    }
    let s = Socket::new(d, Type::RAW, Some(p))?;
    Ok(IcmpSocket { sock: into_tokio(s)?, kind: SocketKind::IcmpRaw, v6 })
}

/// Sets the TTL (IPv4) or hop limit (IPv6) of packets sent on `s`.
pub fn set_ttl(s: &UdpSocket, v6: bool, ttl: u32) -> io::Result<()> {
    let sock = socket2::SockRef::from(s);
    if v6 { sock.set_unicast_hops_v6(ttl) } else { sock.set_ttl_v4(ttl) }
}

/// The Internet checksum (RFC 1071).
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], 0]) };
        sum = sum.wrapping_add(u32::from(w));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub const ECHO_REQUEST_V4: u8 = 8;
pub const ECHO_REPLY_V4: u8 = 0;
pub const ECHO_REQUEST_V6: u8 = 128;
pub const ECHO_REPLY_V6: u8 = 129;

/// An echo request (the kernel fills in the IPv6 checksum).
pub fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 8 + PAYLOAD_LEN];
    p[0] = if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 };
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[8..].iter_mut().enumerate() {
        *b = b"tailops-ping-payload-abc"[i % 24];
    }
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// A received ICMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who sent it.
    pub from: IpAddr,
    pub icmp_type: u8,
    pub code: u8,
    /// Echo id/seq (for echo replies).
    pub id: u16,
    pub seq: u16,
    /// For errors: the quoted packet's protocol and first 8 bytes of its
    /// transport header, and its destination.
    pub quoted: Option<Quoted>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    pub protocol: u8,
    pub dst: IpAddr,
    pub l4: [u8; 8],
}

fn quoted(v6: bool, b: &[u8]) -> Option<Quoted> {
    if v6 {
        let h = b.get(..40)?;
        let dst: [u8; 16] = h[24..40].try_into().ok()?;
        let l4: [u8; 8] = b.get(40..48)?.try_into().ok()?;
        Some(Quoted { protocol: h[6], dst: IpAddr::from(dst), l4 })
    } else {
        let ihl = usize::from(*b.first()? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        let dst: [u8; 4] = b.get(16..20)?.try_into().ok()?;
        let l4: [u8; 8] = b.get(ihl..ihl + 8)?.try_into().ok()?;
        Some(Quoted { protocol: *b.get(9)?, dst: IpAddr::from(dst), l4 })
    }
}

/// Parses what an ICMP socket received from `from`. Raw IPv4 sockets
/// deliver the IP header too (its source is the sender).
pub fn parse(kind: SocketKind, v6: bool, buf: &[u8], from: IpAddr) -> Option<Message> {
    let (icmp, from) = if !v6 && kind == SocketKind::IcmpRaw {
        let ihl = usize::from(*buf.first()? & 0x0f) * 4;
        let src: [u8; 4] = buf.get(12..16)?.try_into().ok()?;
        (buf.get(ihl..)?, IpAddr::from(src))
    } else {
        (buf, from)
    };
    let h = icmp.get(..8)?;
    let (icmp_type, code) = (h[0], h[1]);
    let id = u16::from_be_bytes([h[4], h[5]]);
    let seq = u16::from_be_bytes([h[6], h[7]]);
    let is_error = if v6 { icmp_type < 128 } else { matches!(icmp_type, 3 | 11) };
    let quoted = if is_error { quoted(v6, &icmp[8..]) } else { None };
    Some(Message { from: from.to_canonical(), icmp_type, code, id, seq, quoted })
}

/// Receives the next ICMP message within `limit` (None: timed out).
pub async fn recv(s: &IcmpSocket, limit: Duration) -> io::Result<Option<(Message, std::time::Instant)>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let r = tokio::time::timeout_at(deadline, s.sock.recv_from(&mut buf)).await;
        let (n, from) = match r {
            Err(_) => return Ok(None),
            Ok(r) => r?,
        };
        let at = std::time::Instant::now();
        if let Some(m) = buf.get(..n).and_then(|b| parse(s.kind, s.v6, b, from.ip())) {
            return Ok(Some((m, at)));
        }
    }
}

/// Sends `packet` to `ip`.
pub async fn send(s: &IcmpSocket, ip: IpAddr, packet: &[u8]) -> io::Result<()> {
    s.sock.send_to(packet, SocketAddr::new(ip, 0)).await.map(|_| ())
}

/// An echo id for this probe (raw sockets see every reply on the host).
pub fn new_id() -> u16 {
    let mut b = [0u8; 2];
    if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).is_err() {
        return (std::process::id() & 0xffff) as u16;
    }
    u16::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(checksum(&p), 0);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        // Odd length.
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn parses_raw_v4_reply_and_quoted_errors() {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let mut reply = echo_request(false, 9, 3);
        reply[0] = ECHO_REPLY_V4;
        ip.extend_from_slice(&reply);
        let m = parse(SocketKind::IcmpRaw, false, &ip, "0.0.0.0".parse().unwrap()).unwrap();
        assert_eq!((m.from, m.icmp_type, m.id, m.seq), ("10.0.0.1".parse().unwrap(), 0, 9, 3));
        // Time exceeded quoting a UDP packet to 192.0.2.5 port 33435.
        let mut te = vec![11, 0, 0, 0, 0, 0, 0, 0];
        te.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 1, 17, 0, 0, 10, 0, 0, 2, 192, 0, 2, 5]);
        te.extend_from_slice(&[0x80, 0x00, 0x82, 0x9b, 0, 8, 0, 0]);
        let m = parse(SocketKind::IcmpDatagram, false, &te, "10.0.0.9".parse().unwrap()).unwrap();
        let q = m.quoted.unwrap();
        assert_eq!(
            (q.protocol, q.dst, u16::from_be_bytes([q.l4[2], q.l4[3]])),
            (17, "192.0.2.5".parse().unwrap(), 33435)
        );
        // Truncated packets parse to nothing, never panic.
        for n in 0..te.len() {
            let _ = parse(SocketKind::IcmpRaw, false, &te[..n], "10.0.0.9".parse().unwrap());
            let _ = parse(SocketKind::IcmpRaw, true, &te[..n], "::1".parse().unwrap());
        }
    }
}
