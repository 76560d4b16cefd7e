//! One disco or TSMP ping through the embedded node (tsnet's LocalClient
//! `Ping`): how this node reaches a peer — directly (UDP endpoint), through
//! a peer relay, or through a DERP region — and the round-trip time.

use std::net::IpAddr;
use std::os::raw::c_char;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::node::blocking;
use super::{Error, Node, Result, ffi, timeout_ms};

/// Which ping: `Disco` goes over magicsock (says direct or DERP); `Tsmp`
/// goes through WireGuard and the peer's network stack (proves the
/// encrypted path end to end, but reports no path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingKind {
    Disco,
    Tsmp,
}

impl PingKind {
    fn as_str(self) -> &'static str {
        match self {
            PingKind::Disco => "disco",
            PingKind::Tsmp => "tsmp",
        }
    }
}

/// tsnet's `ipnstate.PingResult`, as the Go side encodes it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PingReply {
    #[serde(rename = "IP", default)]
    pub ip: String,
    #[serde(rename = "NodeIP", default)]
    pub node_ip: String,
    #[serde(default)]
    pub node_name: String,
    /// Non-empty when the peer did not answer (timeout, unknown peer …).
    #[serde(default)]
    pub err: String,
    #[serde(default)]
    pub latency_seconds: f64,
    /// `ip:port` when the reply came over a direct UDP path (disco only).
    #[serde(default)]
    pub endpoint: String,
    /// `ip:port:vni:N` when a peer relay carried it (disco only).
    #[serde(default)]
    pub peer_relay: String,
    /// Non-zero when a DERP region carried it (disco only).
    #[serde(rename = "DERPRegionID", default)]
    pub derp_region_id: i64,
    #[serde(rename = "DERPRegionCode", default)]
    pub derp_region_code: String,
    #[serde(rename = "IsLocalIP", default)]
    pub is_local_ip: bool,
}

impl Node {
    /// Sends one ping to the tailnet address `ip` and waits at most
    /// `timeout` for the answer. No answer is `Ok` with `err` set.
    pub async fn ping(&self, ip: IpAddr, kind: PingKind, timeout: Duration) -> Result<PingReply> {
        let sd = self.sd()?;
        let doc = blocking(move || {
            let ip = ffi::cstring("ping ip", &ip.to_string())?;
            let k = ffi::cstring("ping kind", kind.as_str())?;
            let mut out: *mut c_char = std::ptr::null_mut();
            // SAFETY: ip and k outlive the call; out is a valid slot on our
            // stack that the Go side sets to a C.CString or leaves null.
            let rc =
                unsafe { libtailscale_sys::tailscale_ping(sd, ip.as_ptr(), k.as_ptr(), timeout_ms(timeout), &mut out) };
            // SAFETY: out is null or a C.CString from the Go side, freed here.
            let doc = unsafe { ffi::take_string(out) };
            ffi::check(sd, "ping", rc)?;
            Ok(doc)
        })
        .await?;
        serde_json::from_str(&doc).map_err(|source| Error::Decode { op: "ping", source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_go_ping_results() {
        // As tsnet v1.102.3 encodes ipnstate.PingResult (field names are Go's).
        let direct = r#"{"IP":"100.64.0.2","NodeIP":"100.64.0.2","NodeName":"peer-a","Err":"","LatencySeconds":0.0012,"Endpoint":"127.0.0.1:41641","PeerRelay":"","DERPRegionID":0,"DERPRegionCode":""}"#;
        let r: PingReply = serde_json::from_str(direct).unwrap();
        assert_eq!(r.endpoint, "127.0.0.1:41641");
        assert_eq!(r.derp_region_id, 0);
        assert!((r.latency_seconds - 0.0012).abs() < 1e-9);
        let derp = r#"{"IP":"100.64.0.3","NodeIP":"100.64.0.3","NodeName":"peer-b","Err":"","LatencySeconds":0.004,"Endpoint":"","PeerRelay":"","DERPRegionID":999,"DERPRegionCode":"headscale"}"#;
        let r: PingReply = serde_json::from_str(derp).unwrap();
        assert_eq!((r.derp_region_id, r.derp_region_code.as_str()), (999, "headscale"));
        let err = r#"{"IP":"100.64.0.9","Err":"timeout: no reply"}"#;
        assert_eq!(serde_json::from_str::<PingReply>(err).unwrap().err, "timeout: no reply");
    }
}
