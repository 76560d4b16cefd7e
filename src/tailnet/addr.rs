//! Which hosts are on the tailnet: the one rule for the tailnet dialer
//! (what to reach over the tailnet) and for the OAuth config (where plain
//! `http://` is acceptable because WireGuard already encrypts the path).

use std::net::IpAddr;

/// The domain under which Tailscale's MagicDNS names live
/// (`<node>.<tailnet>.ts.net`).
const TAILSCALE_DNS_DOMAIN: &str = "ts.net";

/// Tailnet addresses: 100.64.0.0/10 (the CGNAT range tailnets use) and
/// fd7a:115c:a1e0::/48 (Tailscale's IPv6 ULA prefix).
pub fn is_tailnet_ip(ip: IpAddr) -> bool {
    match ip {
        // 100.64.0.0/10 (CGNAT range used by tailnets)
        IpAddr::V4(v4) => v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64,
        // fd7a:115c:a1e0::/48
        IpAddr::V6(v6) => v6.segments()[..3] == [0xfd7a, 0x115c, 0xa1e0],
    }
}

/// `host` (an IP address without brackets, or a DNS name) is on the tailnet
/// whose MagicDNS suffix is `magic_dns_suffix` (e.g. `example.ts.net`): a
/// tailnet address, a name under the suffix, or a single-label (short
/// MagicDNS) name. With an empty suffix only addresses qualify.
pub fn is_tailnet_host(host: &str, magic_dns_suffix: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return is_tailnet_ip(ip);
    }
    let h = host.trim_end_matches('.');
    !magic_dns_suffix.is_empty() && (h.ends_with(&format!(".{magic_dns_suffix}")) || !h.contains('.'))
}

/// `host` is a Tailscale MagicDNS name (`….ts.net`, any letter case, with
/// or without the trailing dot), whichever tailnet it belongs to.
pub fn is_magicdns_name(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    h.len() > TAILSCALE_DNS_DOMAIN.len() + 1
        && h.get(h.len() - TAILSCALE_DNS_DOMAIN.len() - 1..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(&format!(".{TAILSCALE_DNS_DOMAIN}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tailnet_addresses() {
        for ip in ["100.64.0.0", "100.64.0.1", "100.100.100.100", "100.127.255.255", "fd7a:115c:a1e0::1"] {
            assert!(is_tailnet_ip(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["100.63.255.255", "100.128.0.1", "10.0.0.1", "127.0.0.1", "::1", "fd7a:115c:a1e1::1"] {
            assert!(!is_tailnet_ip(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn tailnet_hosts() {
        let suffix = "example.ts.net";
        assert!(is_tailnet_host("100.64.0.1", suffix));
        assert!(is_tailnet_host("100.64.0.1", ""));
        assert!(is_tailnet_host("fd7a:115c:a1e0::2", ""));
        assert!(is_tailnet_host("idp.example.ts.net", suffix));
        assert!(is_tailnet_host("idp.example.ts.net.", suffix));
        assert!(is_tailnet_host("idp", suffix), "short MagicDNS name");
        assert!(!is_tailnet_host("idp", ""), "no suffix known: names never qualify");
        assert!(!is_tailnet_host("idp.example.ts.net", ""));
        assert!(!is_tailnet_host("idp.other.ts.net", suffix));
        assert!(!is_tailnet_host("example.com", suffix));
        assert!(!is_tailnet_host("10.0.0.1", suffix));
    }

    #[test]
    fn magicdns_names() {
        for h in ["idp.example.ts.net", "IDP.Example.TS.NET", "idp.example.ts.net.", "a.ts.net"] {
            assert!(is_magicdns_name(h), "{h}");
        }
        for h in ["ts.net", ".ts.net", "evil-ts.net", "ts.net.evil.com", "example.com", "idp", "ü.ts.ne", ""] {
            assert!(!is_magicdns_name(h), "{h}");
        }
    }
}
