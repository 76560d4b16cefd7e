//! `GET /sd`: Prometheus `http_sd_configs` JSON listing the tailnet nodes
//! that carry `[sd] tag` (this node included), so ONE Prometheus on the
//! tailnet scrapes a whole fleet through any TailOps node. Needs scope
//! `metrics:read`, like `/metrics`.
//!
//! One target group per node: `targets` is its MagicDNS name and port;
//! labels: `__metrics_path__` (`/metrics`) and `__meta_tailops_*` (node,
//! hostname, os, tags — comma-wrapped like Prometheus' own SDs —, online)
//! for relabelling.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};

use crate::auth::caller::Caller;
use crate::config::Config;
use crate::http::{AppState, IdentitySource};
use crate::tailnet::{PeerStatus, Status};

/// Bound on the status lookup behind one `/sd` answer.
pub const SD_STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The `/sd` route.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/sd",
        get(|State(state): State<AppState>, Extension(caller): Extension<Caller>| async move {
            if let Err(refused) = super::metrics::authorize(&state, &caller, "/sd") {
                return *refused;
            }
            let groups = match &*state.identity {
                IdentitySource::Tailnet(node) => match node.status(SD_STATUS_TIMEOUT).await {
                    Ok(st) => targets(&st, &state.spine.cfg),
                    Err(e) => {
                        return crate::http::error(
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            &format!("tailnet status: {e}"),
                            "retry; see /readyz",
                        );
                    }
                },
                // No tailnet (dev mode): nothing to discover.
                IdentitySource::Local => Vec::new(),
            };
            Json(groups).into_response()
        }),
    )
}

/// The target groups for the nodes of `st` carrying the configured tag,
/// sorted by DNS name.
pub fn targets(st: &Status, cfg: &Arc<Config>) -> Vec<Value> {
    let tag = &cfg.sd.tag;
    let port = cfg.sd.port.unwrap_or(cfg.port);
    let mut nodes: Vec<&PeerStatus> =
        st.self_node.iter().chain(st.peers.iter()).filter(|p| p.tags.iter().any(|t| t == tag)).collect();
    nodes.sort_by(|a, b| a.dns_name.cmp(&b.dns_name));
    nodes.dedup_by(|a, b| a.dns_name == b.dns_name);
    nodes
        .into_iter()
        .filter(|p| !p.dns_name.is_empty())
        .map(|p| {
            let dns = p.dns_name.trim_end_matches('.');
            let mut labels = Map::new();
            labels.insert("__metrics_path__".into(), json!("/metrics"));
            labels.insert("__meta_tailops_node".into(), json!(dns));
            labels.insert("__meta_tailops_hostname".into(), json!(p.hostname));
            labels.insert("__meta_tailops_os".into(), json!(p.os));
            labels.insert("__meta_tailops_tags".into(), json!(format!(",{},", p.tags.join(","))));
            labels.insert("__meta_tailops_online".into(), json!(p.online.to_string()));
            json!({ "targets": [format!("{dns}:{port}")], "labels": labels })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(dns: &str, tags: &[&str], online: bool) -> PeerStatus {
        PeerStatus {
            dns_name: dns.into(),
            hostname: dns.split('.').next().unwrap_or_default().into(),
            os: "linux".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            online,
            ..Default::default()
        }
    }

    #[test]
    fn only_tagged_nodes_are_listed_with_labels() {
        let st = Status {
            self_node: Some(peer("ops.ts.net.", &["tag:tailops"], true)),
            peers: vec![
                peer("web.ts.net", &["tag:tailops", "tag:web"], false),
                peer("db.ts.net", &["tag:db"], true),
                peer("alice.ts.net", &[], true),
            ],
            ..Default::default()
        };
        let cfg = Arc::new(Config::default());
        let groups = targets(&st, &cfg);
        let names: Vec<&str> = groups.iter().filter_map(|g| g["targets"][0].as_str()).collect();
        assert_eq!(names, ["ops.ts.net:80", "web.ts.net:80"]);
        assert_eq!(groups[1]["labels"]["__meta_tailops_tags"], ",tag:tailops,tag:web,");
        assert_eq!(groups[1]["labels"]["__meta_tailops_online"], "false");
        let cfg = Arc::new(Config {
            sd: crate::config::SdConfig { tag: "tag:db".into(), port: Some(9100) },
            ..Config::default()
        });
        let groups = targets(&st, &cfg);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0]["targets"][0], "db.ts.net:9100");
    }
}
