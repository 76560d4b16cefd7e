//! Which names this server answers to: the Host allow-list (DNS-rebinding
//! defence, checked on every route) and the Origin allow-list handed to
//! rmcp. Both come from the node's MagicDNS names and tailnet IPs (or
//! loopback in dev mode).

/// A lowercased host name or IP as it appears in a URL authority (IPv6 in
/// brackets).
pub(super) fn url_host(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.contains(':') && !n.starts_with('[') { format!("[{n}]") } else { n }
}

/// Host values (with and without port) under which this server is reached.
pub fn allowed_hosts(names: &[String], port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        let n = n.to_ascii_lowercase();
        let bracketed = url_host(&n);
        out.push(format!("{bracketed}:{port}"));
        if port == 80 || port == 443 {
            out.push(bracketed.clone());
        }
        out.push(n);
    }
    out.sort();
    out.dedup();
    out
}

/// Origins a browser on the tailnet may send (scheme + host + port).
pub(super) fn allowed_origins(names: &[String], port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        let host = url_host(n);
        out.push(format!("http://{host}:{port}"));
        // rmcp matches an Origin without port (`https://NAME`, as browsers
        // send it) against the scheme's default port: `:443` covers it. A
        // port-less entry would match any port.
        out.push(format!("https://{host}:443"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_cover_names_ips_and_ports() {
        let h = allowed_hosts(&["ops.tailnet.test".into(), "100.64.0.1".into(), "fd7a::1".into()], 80);
        assert!(h.contains(&"ops.tailnet.test".to_string()));
        assert!(h.contains(&"ops.tailnet.test:80".to_string()));
        assert!(h.contains(&"[fd7a::1]".to_string()));
        let h = allowed_hosts(&["127.0.0.1".into()], 8080);
        assert!(h.contains(&"127.0.0.1:8080".to_string()));
        assert!(!h.contains(&"127.0.0.1:80".to_string()));
    }

    #[test]
    fn https_port_allows_the_bare_name_and_the_https_origin() {
        let names = ["ops.tailnet.test".to_string(), "fd7a::1".to_string()];
        let h = allowed_hosts(&names, 443);
        for want in ["ops.tailnet.test", "ops.tailnet.test:443", "[fd7a::1]", "[fd7a::1]:443"] {
            assert!(h.contains(&want.to_string()), "{want}");
        }
        assert!(!h.contains(&"ops.tailnet.test:80".to_string()));
        let o = allowed_origins(&names, 443);
        assert!(o.contains(&"https://ops.tailnet.test:443".to_string()));
        assert!(o.contains(&"https://[fd7a::1]:443".to_string()));
        // Every entry names its port (a port-less one would match any port).
        assert!(o.iter().all(|x| x.rsplit(':').next().is_some_and(|p| p.parse::<u16>().is_ok())), "{o:?}");
    }
}
