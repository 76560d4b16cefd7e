//! `[network]` settings: the target policy every outbound probe obeys
//! (which addresses and host names `dns_lookup`, `tcp_check`,
//! `http_check`, `ping` and `traceroute` may reach) and where probe
//! targets are resolved.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[network]` settings.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// CIDRs (`10.0.0.0/8`, `::1/128`) probes may reach even though a
    /// built-in rule refuses them: loopback (`127.0.0.0/8`, `::1/128`),
    /// link-local and cloud metadata, this node's own tailnet IPs.
    /// Unspecified, multicast and broadcast addresses stay refused.
    pub allow: Vec<String>,
    /// CIDRs probes never reach (checked first: a deny wins over an allow).
    pub deny: Vec<String>,
    /// Host-name globs (`*.example.com`; `*` matches within one label)
    /// that may be probed by name; empty: any name. Names are checked
    /// before they are resolved, and every address they resolve to is
    /// still checked against the CIDR rules.
    pub allow_hosts: Vec<String>,
    /// Host-name globs never probed (checked before `allow_hosts`).
    pub deny_hosts: Vec<String>,
    /// The DNS server (`IP:port`) that resolves probe targets and answers
    /// `dns_lookup` without a `server`; unset: the system resolver
    /// (`/etc/resolv.conf`). The server itself must pass the policy.
    pub resolver: Option<SocketAddr>,
    /// PEM file of CA certificates that `tcp_check`/`http_check` trust
    /// besides the built-in web PKI roots (an internal CA).
    pub ca_file: Option<PathBuf>,
}

impl NetworkConfig {
    /// The target policy's lists.
    pub fn lists(&self) -> super::target::Lists<'_> {
        super::target::Lists {
            allow: &self.allow,
            deny: &self.deny,
            allow_hosts: &self.allow_hosts,
            deny_hosts: &self.deny_hosts,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        super::target::TargetPolicy::new(self.lists(), &[]).map(|_| ())?;
        if let Some(path) = &self.ca_file {
            super::probe::tls::load_ca_file(path)?;
        }
        Ok(())
    }
}
