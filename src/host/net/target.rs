//! The target policy (SSRF guard): the ONE module that decides which
//! addresses and host names an outbound probe may reach. Every probe asks
//! it twice: [`TargetPolicy::check_name`] before a name is resolved, and
//! [`TargetPolicy::check_ip`] for EVERY address the name resolved to — then
//! the probe connects to that checked address, never to the name again, so
//! a DNS answer that changes between the check and the connect (rebinding)
//! cannot move the probe. Redirects are checked again per hop.
//!
//! Order for an address (the first rule that matches decides):
//! 1. never: unspecified (`0.0.0.0`, `::`), multicast, broadcast;
//! 2. `[network] deny` CIDRs;
//! 3. `[network] allow` CIDRs (lift the built-in rules below);
//! 4. built-in: cloud metadata (`169.254.169.254` is inside link-local,
//!    `fd00:ec2::254`, `100.100.100.200`), link-local (`169.254.0.0/16`,
//!    `fe80::/10`), loopback (`127.0.0.0/8`, `::1`), this node's own
//!    tailnet IPs;
//! 5. anything else is allowed.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are checked as the IPv4
//! address they are. A refusal names the rule that refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::RwLock;

use globset::{GlobBuilder, GlobMatcher};
use ipnet::IpNet;
use serde::Serialize;

use crate::mcp::{ErrorCategory, ToolError};

/// Most entries in each of `allow`, `deny`, `allow_hosts`, `deny_hosts`.
pub const MAX_POLICY_ENTRIES: usize = 256;

/// The policy's lists as configured (`[network]`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Lists<'a> {
    pub allow: &'a [String],
    pub deny: &'a [String],
    pub allow_hosts: &'a [String],
    pub deny_hosts: &'a [String],
}

/// Longest host name (RFC 1035: 253 characters without the final dot).
pub const MAX_HOST_NAME_LEN: usize = 253;
/// Longest label of a host name.
pub const MAX_LABEL_LEN: usize = 63;

/// Cloud metadata endpoints outside link-local (AWS IPv6 IMDS, Alibaba).
const METADATA: &[&str] = &["fd00:ec2::254/128", "100.100.100.200/32"];
const LINK_LOCAL: &[&str] = &["169.254.0.0/16", "fe80::/10"];
const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1/128"];
/// Tailnet address ranges (CGNAT range and Tailscale's ULA).
pub const TAILNET: &[&str] = &["100.64.0.0/10", "fd7a:115c:a1e0::/48"];

/// Why a target was refused: the rule (stable name + the entry that
/// matched) and what was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Refusal {
    /// `unspecified`, `multicast`, `broadcast`, `deny`, `cloud_metadata`,
    /// `link_local`, `loopback`, `own_tailnet_ip`, `deny_hosts`,
    /// `allow_hosts`.
    pub rule: &'static str,
    /// The config entry or built-in range that matched (e.g.
    /// `169.254.0.0/16`).
    pub entry: String,
    /// The address or name refused.
    pub target: String,
}

impl Refusal {
    /// The structured error a probe returns: category `forbidden`, the
    /// rule named in the message (which the audit log records).
    pub fn to_error(&self, context: &str) -> ToolError {
        let hint = match self.rule {
            "loopback" | "link_local" | "cloud_metadata" | "own_tailnet_ip" => {
                "the target policy refuses this by default; an operator can lift it with [network] allow"
            }
            _ => "the target policy ([network] in the config) refuses this target; probe another one",
        };
        ToolError::new(
            ErrorCategory::Forbidden,
            format!("target policy refused {} ({context}): rule {} ({})", self.target, self.rule, self.entry),
            hint,
        )
    }
}

struct Rule {
    net: IpNet,
    text: String,
}

struct HostGlob {
    text: String,
    matcher: GlobMatcher,
}

/// The compiled policy. Cheap to query; own tailnet IPs can be added once
/// the node is up.
pub struct TargetPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    allow_hosts: Vec<HostGlob>,
    deny_hosts: Vec<HostGlob>,
    metadata: Vec<Rule>,
    link_local: Vec<Rule>,
    loopback: Vec<Rule>,
    own: RwLock<Vec<IpAddr>>,
}

fn rules(list: &[String], field: &str) -> Result<Vec<Rule>, String> {
    if list.len() > MAX_POLICY_ENTRIES {
        return Err(format!("{field}: at most {MAX_POLICY_ENTRIES} entries"));
    }
    list.iter()
        .map(|s| {
            let net = parse_net(s).ok_or_else(|| format!("{field}: {s:?} is not a CIDR or IP address"))?;
            Ok(Rule { net, text: s.clone() })
        })
        .collect()
}

fn builtin(list: &[&str]) -> Vec<Rule> {
    list.iter().filter_map(|s| parse_net(s).map(|net| Rule { net, text: (*s).to_string() })).collect()
}

/// `10.0.0.0/8` or a bare address (a /32 or /128).
fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from)).map(|n| n.trunc())
}

fn globs(list: &[String], field: &str) -> Result<Vec<HostGlob>, String> {
    if list.len() > MAX_POLICY_ENTRIES {
        return Err(format!("{field}: at most {MAX_POLICY_ENTRIES} entries"));
    }
    list.iter()
        .map(|s| {
            // Labels become path segments so `*` stops at a dot.
            let pattern = s.trim_end_matches('.').to_ascii_lowercase().replace('.', "/");
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("{field}: {s:?} is not a host-name glob: {e}"))?;
            Ok(HostGlob { text: s.clone(), matcher: glob.compile_matcher() })
        })
        .collect()
}

fn find(rules: &[Rule], ip: IpAddr) -> Option<&Rule> {
    rules.iter().find(|r| r.net.contains(&ip))
}

/// `ip` as the policy sees it: IPv4-mapped IPv6 as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Whether `ip` is on a tailnet (dialed through the embedded node).
pub fn is_tailnet(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    TAILNET.iter().filter_map(|s| parse_net(s)).any(|n| n.contains(&ip))
}

impl TargetPolicy {
    /// Compiles `[network]`; `own` are this node's tailnet IPs (if known).
    pub fn new(cfg: Lists<'_>, own: &[IpAddr]) -> Result<Self, String> {
        Ok(Self {
            allow: rules(cfg.allow, "allow")?,
            deny: rules(cfg.deny, "deny")?,
            allow_hosts: globs(cfg.allow_hosts, "allow_hosts")?,
            deny_hosts: globs(cfg.deny_hosts, "deny_hosts")?,
            metadata: builtin(METADATA),
            link_local: builtin(LINK_LOCAL),
            loopback: builtin(LOOPBACK),
            own: RwLock::new(own.to_vec()),
        })
    }

    /// Adds this node's tailnet IPs (known once the node is up).
    pub fn set_own_ips(&self, ips: &[IpAddr]) {
        if let Ok(mut own) = self.own.write() {
            *own = ips.iter().copied().map(canonical).collect();
        }
    }

    /// Checks one address (see the module docs for the order).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        let refuse =
            |rule: &'static str, entry: &str| Refusal { rule, entry: entry.to_string(), target: ip.to_string() };
        if ip.is_unspecified() {
            return Err(refuse("unspecified", if ip.is_ipv4() { "0.0.0.0" } else { "::" }));
        }
        if ip.is_multicast() {
            return Err(refuse("multicast", if ip.is_ipv4() { "224.0.0.0/4" } else { "ff00::/8" }));
        }
        if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err(refuse("broadcast", "255.255.255.255"));
        }
        if let Some(r) = find(&self.deny, ip) {
            return Err(refuse("deny", &r.text));
        }
        if find(&self.allow, ip).is_some() {
            return Ok(());
        }
        if ip == IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)) {
            return Err(refuse("cloud_metadata", "169.254.169.254"));
        }
        if let Some(r) = find(&self.metadata, ip) {
            return Err(refuse("cloud_metadata", &r.text));
        }
        if let Some(r) = find(&self.link_local, ip) {
            return Err(refuse("link_local", &r.text));
        }
        if let Some(r) = find(&self.loopback, ip) {
            return Err(refuse("loopback", &r.text));
        }
        if self.own.read().map(|own| own.contains(&ip)).unwrap_or(true) {
            return Err(refuse("own_tailnet_ip", &ip.to_string()));
        }
        Ok(())
    }

    /// Checks a host name before it is resolved (`name` already validated
    /// by [`parse_host`]).
    pub fn check_name(&self, name: &str) -> Result<(), Refusal> {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let path = lower.replace('.', "/");
        let refuse =
            |rule: &'static str, entry: &str| Refusal { rule, entry: entry.to_string(), target: lower.clone() };
        if let Some(g) = self.deny_hosts.iter().find(|g| g.matcher.is_match(&path)) {
            return Err(refuse("deny_hosts", &g.text));
        }
        if !self.allow_hosts.is_empty() && !self.allow_hosts.iter().any(|g| g.matcher.is_match(&path)) {
            return Err(refuse("allow_hosts", "no allow_hosts entry matches"));
        }
        Ok(())
    }
}

/// A probe target as given: an address or a host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Parses a target host: an IPv4/IPv6 address (`[::1]` too) or a DNS name
/// (letters, digits, `-`, `_`; labels 1-63 characters; at most 253).
pub fn parse_host(s: &str) -> Result<Host, ToolError> {
    let bad = |why: &str| {
        ToolError::invalid_input(
            format!("host {:?} is not valid: {why}", s.chars().take(80).collect::<String>()),
            "give an IPv4 or IPv6 address or a DNS name such as example.com",
        )
    };
    let t = s.trim();
    let unbracketed = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(t);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if let Ok(v6) = unbracketed.parse::<Ipv6Addr>() {
        return Ok(Host::Ip(IpAddr::V6(v6)));
    }
    let name = t.strip_suffix('.').unwrap_or(t);
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_HOST_NAME_LEN {
        return Err(bad(&format!("longer than {MAX_HOST_NAME_LEN} characters")));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(bad(&format!("every label must have 1-{MAX_LABEL_LEN} characters")));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("only letters, digits, '-' and '_' are allowed in a name"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label may not start or end with '-'"));
        }
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad("looks like an IPv4 address but is not one"));
    }
    Ok(Host::Name(name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn policy(allow: &[&str], deny: &[&str]) -> TargetPolicy {
        let (allow, deny) = (strings(allow), strings(deny));
        let own = ["100.64.0.7".parse().unwrap(), "fd7a:115c:a1e0::7".parse().unwrap()];
        TargetPolicy::new(Lists { allow: &allow, deny: &deny, ..Default::default() }, &own).unwrap()
    }

    fn rule(p: &TargetPolicy, ip: &str) -> &'static str {
        match p.check_ip(ip.parse().unwrap()) {
            Ok(()) => "allowed",
            Err(r) => r.rule,
        }
    }

    /// The default table, one row per built-in rule, plus its neighbours.
    #[test]
    fn default_table() {
        let p = policy(&[], &[]);
        for (ip, want) in [
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("169.254.169.254", "cloud_metadata"),
            ("::ffff:169.254.169.254", "cloud_metadata"),
            ("fd00:ec2::254", "cloud_metadata"),
            ("fd00:ec2::253", "allowed"),
            ("100.100.100.200", "cloud_metadata"),
            ("100.100.100.201", "allowed"),
            ("169.254.0.1", "link_local"),
            ("169.253.255.255", "allowed"),
            ("169.255.0.0", "allowed"),
            ("fe80::1", "link_local"),
            ("febf:ffff::1", "link_local"),
            ("fec0::1", "allowed"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("128.0.0.1", "allowed"),
            ("100.64.0.7", "own_tailnet_ip"),
            ("::ffff:100.64.0.7", "own_tailnet_ip"),
            ("fd7a:115c:a1e0::7", "own_tailnet_ip"),
            ("100.64.0.8", "allowed"),
            ("192.0.2.1", "allowed"),
            ("2001:db8::1", "allowed"),
        ] {
            assert_eq!(rule(&p, ip), want, "{ip}");
        }
    }

    #[test]
    fn allow_lifts_builtins_but_deny_wins_and_never_stays_never() {
        let p = policy(&["127.0.0.0/8", "169.254.169.254", "0.0.0.0/0"], &["127.0.0.2/32", "10.0.0.0/8"]);
        assert_eq!(rule(&p, "127.0.0.1"), "allowed");
        assert_eq!(rule(&p, "127.0.0.2"), "deny");
        assert_eq!(rule(&p, "169.254.169.254"), "allowed");
        assert_eq!(rule(&p, "10.1.2.3"), "deny");
        assert_eq!(rule(&p, "::1"), "loopback");
        assert_eq!(rule(&p, "0.0.0.0"), "unspecified");
        assert_eq!(rule(&p, "255.255.255.255"), "broadcast");
        assert_eq!(rule(&p, "239.1.1.1"), "multicast");
    }

    #[test]
    fn refusal_names_the_rule_and_entry() {
        let p = policy(&[], &["192.0.2.0/24"]);
        let r = p.check_ip("192.0.2.9".parse().unwrap()).unwrap_err();
        assert_eq!((r.rule, r.entry.as_str(), r.target.as_str()), ("deny", "192.0.2.0/24", "192.0.2.9"));
        let e = r.to_error("resolved from x.test");
        assert_eq!(e.category, ErrorCategory::Forbidden);
        assert!(e.message.contains("rule deny (192.0.2.0/24)"), "{}", e.message);
    }

    #[test]
    fn own_ips_set_later() {
        let p = TargetPolicy::new(Lists::default(), &[]).unwrap();
        assert!(p.check_ip("100.70.0.1".parse().unwrap()).is_ok());
        p.set_own_ips(&["100.70.0.1".parse().unwrap()]);
        assert_eq!(p.check_ip("100.70.0.1".parse().unwrap()).unwrap_err().rule, "own_tailnet_ip");
    }

    #[test]
    fn host_globs_stop_at_dots() {
        let (allow_hosts, deny_hosts) = (strings(&["*.example.com", "ok.test"]), strings(&["bad.example.com"]));
        let p =
            TargetPolicy::new(Lists { allow_hosts: &allow_hosts, deny_hosts: &deny_hosts, ..Default::default() }, &[])
                .unwrap();
        assert!(p.check_name("a.example.com").is_ok());
        assert!(p.check_name("A.Example.COM.").is_ok());
        assert!(p.check_name("ok.test").is_ok());
        assert_eq!(p.check_name("a.b.example.com").unwrap_err().rule, "allow_hosts");
        assert_eq!(p.check_name("example.com").unwrap_err().rule, "allow_hosts");
        assert_eq!(p.check_name("bad.example.com").unwrap_err().rule, "deny_hosts");
        // Empty allow_hosts: any name.
        assert!(TargetPolicy::new(Lists::default(), &[]).unwrap().check_name("anything.test").is_ok());
    }

    #[test]
    fn bad_config_is_refused_with_the_field() {
        let bad = |l: Lists<'_>| TargetPolicy::new(l, &[]).err().unwrap_or_default();
        let v = strings(&["10.0.0.0/33"]);
        assert!(bad(Lists { allow: &v, ..Default::default() }).starts_with("allow:"));
        let v = strings(&["nope"]);
        assert!(bad(Lists { deny: &v, ..Default::default() }).starts_with("deny:"));
        let v = strings(&["["]);
        assert!(bad(Lists { deny_hosts: &v, ..Default::default() }).starts_with("deny_hosts:"));
        let at = |n| vec!["10.0.0.0/8".to_string(); n];
        assert!(TargetPolicy::new(Lists { deny: &at(MAX_POLICY_ENTRIES), ..Default::default() }, &[]).is_ok());
        assert!(TargetPolicy::new(Lists { deny: &at(MAX_POLICY_ENTRIES + 1), ..Default::default() }, &[]).is_err());
    }

    #[test]
    fn parse_host_accepts_addresses_and_names_only() {
        assert_eq!(parse_host("127.0.0.1").unwrap(), Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(parse_host("[::1]").unwrap(), Host::Ip("::1".parse().unwrap()));
        assert_eq!(parse_host("Example.COM.").unwrap(), Host::Name("example.com".into()));
        assert_eq!(parse_host("_sip._tcp.example.com").unwrap(), Host::Name("_sip._tcp.example.com".into()));
        let label = "a".repeat(MAX_LABEL_LEN);
        assert!(parse_host(&format!("{label}.test")).is_ok());
        assert!(parse_host(&format!("a{label}.test")).is_err());
        let long = |n: usize| format!("{}.test", "a.".repeat(n / 2).trim_end_matches('.'));
        assert!(parse_host(&long(MAX_HOST_NAME_LEN - 6)).is_ok());
        assert!(parse_host(&"a.".repeat(MAX_HOST_NAME_LEN)).is_err());
        for bad in ["", ".", "a..b", "-a.test", "a b", "http://x", "x/y", "1.2.3", "256.1.1.1", "é.test", "a:80"] {
            assert_eq!(parse_host(bad).unwrap_err().category, ErrorCategory::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn tailnet_ranges() {
        assert!(is_tailnet("100.64.0.1".parse().unwrap()));
        assert!(is_tailnet("100.127.255.255".parse().unwrap()));
        assert!(!is_tailnet("100.128.0.0".parse().unwrap()));
        assert!(is_tailnet("fd7a:115c:a1e0::1".parse().unwrap()));
        assert!(!is_tailnet("fd7a:115c:a1e1::1".parse().unwrap()));
    }
}
