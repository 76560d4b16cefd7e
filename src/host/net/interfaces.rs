//! Network interfaces: addresses, MTU, state, speed, counters, errors and
//! drops.
//!
//! Why `/sys/class/net` and not netlink (`rtnetlink`/`netlink-packet-route`):
//! every field we report is a one-value text file there (operstate, mtu,
//! speed, address, flags, statistics/*), readable without privilege, with
//! no new crates and no async netlink socket to own. The one thing /sys does
//! not list is the IP addresses; those come from `getifaddrs(3)` through
//! the `sysinfo` crate the sampler already uses.

use std::net::IpAddr;
use std::path::Path;

use schemars::JsonSchema;
use serde::Serialize;

/// Most interfaces listed (a host with thousands of veths still answers).
pub const MAX_INTERFACES: usize = 1024;

/// One address of an interface.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    pub prefix_len: u8,
}

/// Counters since the interface came up (statistics/*).
#[derive(Clone, Debug, Default, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Counters {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub multicast: u64,
    pub collisions: u64,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Interface {
    pub name: String,
    /// Kernel operational state: up, down, unknown (loopback and many
    /// virtual devices), dormant, lowerlayerdown, notpresent, testing.
    pub oper_state: String,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    pub loopback: bool,
    /// Carrier present (None when the device is down: the kernel refuses
    /// to say).
    pub carrier: Option<bool>,
    pub mtu: Option<u32>,
    /// Link speed in Mbit/s (None for virtual devices and links without a
    /// negotiated speed).
    pub speed_mbps: Option<u32>,
    /// Hardware address (None when all zero, e.g. loopback).
    pub mac: Option<String>,
    pub addresses: Vec<Address>,
    pub counters: Counters,
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn read_u64(p: &Path) -> Option<u64> {
    read_trim(p)?.parse().ok()
}

/// `speed` is -1 (or unreadable, EINVAL) when unknown.
pub fn parse_speed(text: &str) -> Option<u32> {
    text.trim().parse::<i64>().ok().filter(|v| *v > 0).and_then(|v| u32::try_from(v).ok())
}

/// `flags` is hex (`0x1003`): IFF_UP = 0x1, IFF_LOOPBACK = 0x8.
pub fn parse_flags(text: &str) -> Option<(bool, bool)> {
    let v = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()?;
    Some((v & 0x1 != 0, v & 0x8 != 0))
}

/// One interface from its /sys/class/net directory.
pub fn read_sys(dir: &Path, name: &str) -> Interface {
    let stat = |f: &str| read_u64(&dir.join("statistics").join(f)).unwrap_or(0);
    let (admin_up, loopback) = read_trim(&dir.join("flags")).as_deref().and_then(parse_flags).unwrap_or_default();
    let mac = read_trim(&dir.join("address")).filter(|m| !m.is_empty() && !m.chars().all(|c| c == '0' || c == ':'));
    Interface {
        name: name.to_owned(),
        oper_state: read_trim(&dir.join("operstate")).unwrap_or_else(|| "unknown".into()),
        admin_up,
        loopback,
        carrier: read_trim(&dir.join("carrier")).and_then(|c| match c.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }),
        mtu: read_u64(&dir.join("mtu")).and_then(|m| u32::try_from(m).ok()),
        speed_mbps: read_trim(&dir.join("speed")).as_deref().and_then(parse_speed),
        mac,
        addresses: Vec::new(),
        counters: Counters {
            rx_bytes: stat("rx_bytes"),
            tx_bytes: stat("tx_bytes"),
            rx_packets: stat("rx_packets"),
            tx_packets: stat("tx_packets"),
            rx_errors: stat("rx_errors"),
            tx_errors: stat("tx_errors"),
            rx_dropped: stat("rx_dropped"),
            tx_dropped: stat("tx_dropped"),
            multicast: stat("multicast"),
            collisions: stat("collisions"),
        },
    }
}

/// Every interface (sorted by name, at most [`MAX_INTERFACES`]) and whether
/// more existed.
pub fn list() -> (Vec<Interface>, bool) {
    let root = Path::new("/sys/class/net");
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    let more = names.len() > MAX_INTERFACES;
    names.truncate(MAX_INTERFACES);
    let nets = sysinfo::Networks::new_with_refreshed_list();
    let out = names
        .iter()
        .map(|n| {
            let mut i = read_sys(&root.join(n), n);
            if let Some(d) = nets.list().get(n) {
                i.addresses = d.ip_networks().iter().map(|a| Address { ip: a.addr, prefix_len: a.prefix }).collect();
                i.addresses.sort_by_key(|a| a.ip);
            }
            i
        })
        .collect();
    (out, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_and_flags() {
        assert_eq!(parse_speed("1000\n"), Some(1000));
        assert_eq!(parse_speed("-1\n"), None);
        assert_eq!(parse_speed(""), None);
        assert_eq!(parse_flags("0x1003\n"), Some((true, false)));
        assert_eq!(parse_flags("0x9"), Some((true, true)));
        assert_eq!(parse_flags("0x1002"), Some((false, false)));
        assert_eq!(parse_flags("zz"), None);
    }

    #[test]
    fn loopback_is_listed_with_its_address() {
        let (all, more) = list();
        assert!(!more);
        let lo = all.iter().find(|i| i.name == "lo").expect("lo");
        assert!(lo.loopback && lo.admin_up, "{lo:?}");
        assert_eq!(lo.mac, None);
        assert!(lo.addresses.iter().any(|a| a.ip == IpAddr::from([127, 0, 0, 1]) && a.prefix_len == 8), "{lo:?}");
        assert!(lo.mtu.is_some());
    }
}
