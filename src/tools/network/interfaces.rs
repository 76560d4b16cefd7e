//! `net_interfaces` (read live from /sys) and `net_bandwidth` (rates from
//! the sampler: the latest sample and the history over a window).

use std::time::SystemTime;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::read;
use crate::host::net::interfaces::{self, Interface};
use crate::mcp::{ToolError, ToolSpec};
use crate::tools::TailopsServer;
use crate::tools::input::parse_system_time;

pub const SPECS: &[ToolSpec] = &[read("net_interfaces"), read("net_bandwidth")];

/// Default bandwidth window.
pub const DEFAULT_WINDOW: &str = "5m";
/// History points read per metric for the window (the sampler merges
/// samples into at most this many points).
pub const WINDOW_POINTS: usize = 1000;
/// Longest interface name a filter may name (IFNAMSIZ - 1 is 15; a longer
/// name cannot exist).
pub const MAX_IFNAME: usize = 15;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfacesInput {
    /// Only this interface (exact name, e.g. `eth0`).
    #[serde(default)]
    pub interface: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InterfacesOutput {
    pub summary: String,
    pub interfaces: Vec<Interface>,
    /// True when the host has more than 1024 interfaces (the rest are not
    /// listed).
    pub truncated: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandwidthInput {
    /// Only this interface (exact name).
    #[serde(default)]
    pub interface: Option<String>,
    /// Start of the window: a duration ago (`90s`, `15m`, `2h`, `7d`),
    /// RFC 3339 or Unix seconds. Default `5m`.
    #[serde(default)]
    pub since: Option<String>,
}

/// Bytes and packets per second.
#[derive(Debug, Default, Serialize, JsonSchema, Clone, Copy, PartialEq)]
pub struct Rates {
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
    pub rx_packets_per_sec: f64,
    pub tx_packets_per_sec: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct InterfaceBandwidth {
    pub interface: String,
    /// Rates between the last two samples.
    pub now: Rates,
    /// Mean rates over the window (None when history has no sample in it).
    pub window_avg: Option<Rates>,
    /// Highest per-sample (or per-rollup-bucket average) rates in the window.
    pub window_peak: Option<Rates>,
    /// Samples in the window.
    pub window_samples: u64,
    /// Counters since the interface came up.
    pub rx_bytes_total: u64,
    pub tx_bytes_total: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BandwidthOutput {
    pub summary: String,
    pub interfaces: Vec<InterfaceBandwidth>,
    /// When the latest sample was taken (RFC 3339).
    pub sampled_at: String,
    /// Window start and end (Unix seconds).
    pub window_from_unix: u64,
    pub window_to_unix: u64,
}

fn check_ifname(name: &Option<String>) -> Result<(), ToolError> {
    if let Some(n) = name
        && (n.is_empty() || n.len() > MAX_IFNAME || n.contains('/') || n.chars().any(char::is_control))
    {
        return Err(ToolError::invalid_input(
            format!("{n:?} is not an interface name"),
            "interface names are 1-15 characters without '/'; call net_interfaces to list them",
        ));
    }
    Ok(())
}

const METRICS: [&str; 4] = ["rx_bytes_per_sec", "tx_bytes_per_sec", "rx_packets_per_sec", "tx_packets_per_sec"];

fn rates(v: [f64; 4]) -> Rates {
    Rates { rx_bytes_per_sec: v[0], tx_bytes_per_sec: v[1], rx_packets_per_sec: v[2], tx_packets_per_sec: v[3] }
}

/// Sample-weighted mean and peak of history points.
fn summarize(points: &[crate::host::sampler::HistoryPoint]) -> (Option<f64>, Option<f64>, u64) {
    let mut n: u64 = 0;
    let mut sum = 0.0;
    let mut peak: Option<f64> = None;
    for p in points {
        let s = u64::from(p.samples);
        n = n.saturating_add(s);
        sum += p.avg * s as f64;
        peak = Some(peak.map_or(p.max, |m: f64| m.max(p.max)));
    }
    if n == 0 { (None, None, 0) } else { (Some(sum / n as f64), peak, n) }
}

#[tool_router(router = net_interfaces_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "net_interfaces",
        description = "Network interfaces read live: addresses with prefix length, MTU, operational and admin state, carrier, link speed, MAC, and counters (bytes, packets, errors, drops, multicast, collisions).",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn net_interfaces(
        &self,
        Parameters(input): Parameters<InterfacesInput>,
    ) -> Result<Json<InterfacesOutput>, ToolError> {
        check_ifname(&input.interface)?;
        let (mut all, truncated) = tokio::task::spawn_blocking(interfaces::list)
            .await
            .map_err(|e| ToolError::internal(format!("listing interfaces: {e}")))?;
        if let Some(name) = &input.interface {
            all.retain(|i| &i.name == name);
            if all.is_empty() {
                return Err(ToolError::not_found(format!("no interface {name:?}"), "call net_interfaces to list them"));
            }
        }
        let up = all.iter().filter(|i| i.admin_up).count();
        let summary = format!("{} interfaces, {up} administratively up", all.len());
        Ok(Json(InterfacesOutput { summary, interfaces: all, truncated }))
    }

    #[tool(
        name = "net_bandwidth",
        description = "Per-interface receive/transmit bytes and packets per second: now (between the last two samples) and the mean and peak over a window (default 5m) from the sampler's history.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn net_bandwidth(
        &self,
        Parameters(input): Parameters<BandwidthInput>,
    ) -> Result<Json<BandwidthOutput>, ToolError> {
        check_ifname(&input.interface)?;
        let from = parse_system_time("since", input.since.as_deref().unwrap_or(DEFAULT_WINDOW))?;
        let to = SystemTime::now();
        if from > to {
            return Err(ToolError::invalid_input("since is in the future", crate::tools::input::TIME_SYNTAX));
        }
        let sampler = self.sampler()?;
        let snap = sampler.latest();
        let nets: Vec<&crate::host::sampler::NetSnapshot> =
            snap.networks.iter().filter(|n| input.interface.as_ref().is_none_or(|i| &n.interface == i)).collect();
        if let Some(name) = &input.interface
            && nets.is_empty()
        {
            return Err(ToolError::not_found(
                format!("no interface {name:?} in the latest sample"),
                "call net_interfaces to list them",
            ));
        }
        let mut out = Vec::with_capacity(nets.len().min(interfaces::MAX_INTERFACES));
        for n in nets.into_iter().take(interfaces::MAX_INTERFACES) {
            let mut avg = [0.0; 4];
            let mut peak = [0.0; 4];
            let mut samples = 0u64;
            let mut have = true;
            for (i, m) in METRICS.iter().enumerate() {
                let metric = format!("net.{}.{m}", n.interface);
                // A metric not yet in history (interface just appeared) is
                // "no window", not an error.
                let (a, p, s) = match sampler.history(&metric, from, to, WINDOW_POINTS) {
                    Ok(h) => summarize(&h.points),
                    Err(_) => (None, None, 0),
                };
                match (a, p) {
                    (Some(a), Some(p)) => {
                        avg[i] = a;
                        peak[i] = p;
                        samples = samples.max(s);
                    }
                    _ => have = false,
                }
            }
            out.push(InterfaceBandwidth {
                interface: n.interface.clone(),
                now: Rates {
                    rx_bytes_per_sec: n.rx_bytes_per_sec,
                    tx_bytes_per_sec: n.tx_bytes_per_sec,
                    rx_packets_per_sec: n.rx_packets_per_sec,
                    tx_packets_per_sec: n.tx_packets_per_sec,
                },
                window_avg: have.then(|| rates(avg)),
                window_peak: have.then(|| rates(peak)),
                window_samples: samples,
                rx_bytes_total: n.rx_bytes,
                tx_bytes_total: n.tx_bytes,
            });
        }
        let busiest = out
            .iter()
            .max_by(|a, b| {
                (a.now.rx_bytes_per_sec + a.now.tx_bytes_per_sec)
                    .total_cmp(&(b.now.rx_bytes_per_sec + b.now.tx_bytes_per_sec))
            })
            .map(|b| {
                format!(
                    "; busiest now: {} ({:.0} B/s in, {:.0} B/s out)",
                    b.interface, b.now.rx_bytes_per_sec, b.now.tx_bytes_per_sec
                )
            })
            .unwrap_or_default();
        let unix = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ok(Json(BandwidthOutput {
            summary: format!("{} interfaces{busiest}", out.len()),
            interfaces: out,
            sampled_at: snap.taken_at.clone(),
            window_from_unix: unix(from),
            window_to_unix: unix(to),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::sampler::HistoryPoint;

    fn pt(avg: f64, max: f64, samples: u32) -> HistoryPoint {
        HistoryPoint { t: String::new(), unix: 0.0, min: 0.0, avg, max, samples }
    }

    #[test]
    fn window_is_sample_weighted() {
        assert_eq!(summarize(&[]), (None, None, 0));
        let (a, p, n) = summarize(&[pt(10.0, 30.0, 1), pt(40.0, 50.0, 3)]);
        assert_eq!((a, p, n), (Some(32.5), Some(50.0), 4));
        // Points without samples do not count.
        assert_eq!(summarize(&[pt(5.0, 5.0, 0)]), (None, None, 0));
    }

    #[test]
    fn interface_names_are_checked_at_their_edges() {
        assert!(check_ifname(&None).is_ok());
        assert!(check_ifname(&Some("a".repeat(MAX_IFNAME))).is_ok());
        assert!(check_ifname(&Some("a".repeat(MAX_IFNAME + 1))).is_err());
        for bad in ["", "../etc", "a/b", "lo\n"] {
            assert!(check_ifname(&Some(bad.into())).is_err(), "{bad:?}");
        }
    }
}
