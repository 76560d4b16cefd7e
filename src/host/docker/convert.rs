//! Conversions from bollard's models (and the raw `/system/df` JSON) to
//! our view types.

use bollard::models as m;
use serde_json::Value;

use super::redact::redact_line;
use super::types::{
    ContainerRow, ContainerStateOutput, DiskUsage, DiskUsageRow, HealthView, StateView, StatsRow, StatsSource,
};

/// Label Compose sets on its containers.
pub(super) const COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub(super) const COMPOSE_SERVICE: &str = "com.docker.compose.service";

pub(super) fn rfc3339(unix: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(unix, 0).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

pub(super) fn short_id(id: &str) -> String {
    let bare = id.strip_prefix("sha256:").unwrap_or(id);
    bare.chars().take(12).collect()
}

pub(super) fn state_view(s: Option<&m::ContainerState>) -> StateView {
    let Some(s) = s else {
        return StateView {
            status: "unknown".into(),
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: None,
            exit_code: None,
            error: None,
            started_at: None,
            finished_at: None,
            health: None,
        };
    };
    let nonzero_time = |t: &Option<String>| t.clone().filter(|v| !v.starts_with("0001-"));
    StateView {
        status: s.status.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into()),
        running: s.running.unwrap_or(false),
        paused: s.paused.unwrap_or(false),
        restarting: s.restarting.unwrap_or(false),
        oom_killed: s.oom_killed.unwrap_or(false),
        dead: s.dead.unwrap_or(false),
        pid: s.pid,
        exit_code: s.exit_code,
        error: s.error.clone().filter(|e| !e.is_empty()),
        started_at: nonzero_time(&s.started_at),
        finished_at: nonzero_time(&s.finished_at),
        health: s.health.as_ref().map(|h| {
            let last = h.log.as_ref().and_then(|l| l.last());
            HealthView {
                status: h.status.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
                failing_streak: h.failing_streak,
                last_output: last
                    .and_then(|r| r.output.as_deref())
                    .map(|o| redact_line(&o.chars().take(1024).collect::<String>())),
                last_exit_code: last.and_then(|r| r.exit_code),
            }
        }),
    }
}

pub(super) fn name_of(i: &m::ContainerInspectResponse) -> String {
    i.name.as_deref().unwrap_or_default().trim_start_matches('/').to_string()
}

pub(super) fn state_output(
    before: &m::ContainerInspectResponse,
    after: &m::ContainerInspectResponse,
    verb: &str,
) -> ContainerStateOutput {
    let prev = state_view(before.state.as_ref()).status;
    let s = state_view(after.state.as_ref());
    let name = name_of(after);
    ContainerStateOutput {
        summary: format!("{verb} {name}: {prev} → {}", s.status),
        id: short_id(after.id.as_deref().unwrap_or_default()),
        name,
        previous_status: prev,
        status: s.status,
        running: s.running,
        paused: s.paused,
        restarting: s.restarting,
        exit_code: s.exit_code,
        started_at: s.started_at,
        finished_at: s.finished_at,
        health: s.health.map(|h| h.status),
    }
}

fn ports_of(p: &[m::PortSummary]) -> Vec<String> {
    p.iter()
        .map(|p| {
            let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
            match p.public_port {
                Some(pub_port) => {
                    format!("{}:{pub_port}->{}/{proto}", p.ip.as_deref().unwrap_or("0.0.0.0"), p.private_port)
                }
                None => format!("{}/{proto}", p.private_port),
            }
        })
        .collect()
}

pub(super) fn container_row(c: &m::ContainerSummary) -> ContainerRow {
    let labels = c.labels.clone().unwrap_or_default();
    ContainerRow {
        id: short_id(c.id.as_deref().unwrap_or_default()),
        name: c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: c.image.clone().unwrap_or_default(),
        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        status: c.status.clone().unwrap_or_default(),
        created: c.created.and_then(rfc3339),
        health: c
            .health
            .as_ref()
            .and_then(|h| h.status.map(|s| s.to_string()))
            .filter(|s| !s.is_empty() && s != "none")
            .or_else(|| health_from_status(c.status.as_deref().unwrap_or_default())),
        compose_project: labels.get(COMPOSE_PROJECT).cloned(),
        compose_service: labels.get(COMPOSE_SERVICE).cloned(),
        ports: ports_of(c.ports.as_deref().unwrap_or_default()),
    }
}

/// Health from the human status ("Up 2 minutes (healthy)"), for daemons
/// that do not send it as a field.
fn health_from_status(status: &str) -> Option<String> {
    let inner = status.rsplit_once('(')?.1.strip_suffix(')')?;
    let h = inner.strip_prefix("health: ").unwrap_or(inner);
    ["healthy", "unhealthy", "starting"].contains(&h).then(|| h.to_string())
}

/// Seconds from Docker's nanosecond durations.
pub(super) fn ns_secs(v: Option<i64>) -> Option<f64> {
    v.filter(|n| *n > 0).map(|n| n as f64 / 1e9)
}

pub(super) fn stats_row(s: &m::ContainerStatsResponse, fallback_name: &str) -> StatsRow {
    let cpu = s.cpu_stats.as_ref();
    let pre = s.precpu_stats.as_ref();
    let total = |c: Option<&m::ContainerCpuStats>| c.and_then(|c| c.cpu_usage.as_ref()).and_then(|u| u.total_usage);
    // A one-shot reply's `precpu_stats` is empty (zeros): no figure from it.
    let system = |c: Option<&m::ContainerCpuStats>| c.and_then(|c| c.system_cpu_usage).filter(|s| *s > 0);
    let cpu_percent = match (total(cpu), total(pre), system(cpu), system(pre)) {
        (Some(t1), Some(t0), Some(s1), Some(s0)) if s1 > s0 && t1 >= t0 => {
            let cores = cpu
                .and_then(|c| c.online_cpus.filter(|n| *n > 0).map(u64::from))
                .or_else(|| {
                    cpu.and_then(|c| c.cpu_usage.as_ref()).and_then(|u| u.percpu_usage.as_ref()).map(|p| p.len() as u64)
                })
                .unwrap_or(1);
            Some(((t1 - t0) as f64 / (s1 - s0) as f64) * cores as f64 * 100.0)
        }
        _ => None,
    };
    let mem = s.memory_stats.as_ref();
    let cache = mem
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| st.get("total_inactive_file").or_else(|| st.get("inactive_file")).copied());
    let usage = mem.and_then(|m| m.usage).map(|u| u.saturating_sub(cache.unwrap_or(0)));
    let limit = mem.and_then(|m| m.limit).filter(|l| *l > 0);
    let memory_percent = match (usage, limit) {
        (Some(u), Some(l)) => Some(u as f64 / l as f64 * 100.0),
        _ => None,
    };
    let (mut rx, mut tx) = (0, 0);
    for n in s.networks.as_ref().map(|n| n.values().collect::<Vec<_>>()).unwrap_or_default() {
        rx += n.rx_bytes.unwrap_or(0);
        tx += n.tx_bytes.unwrap_or(0);
    }
    let (mut br, mut bw) = (0, 0);
    for e in s.blkio_stats.as_ref().and_then(|b| b.io_service_bytes_recursive.as_ref()).into_iter().flatten() {
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => br += e.value.unwrap_or(0),
            Some("write") => bw += e.value.unwrap_or(0),
            _ => {}
        }
    }
    StatsRow {
        id: short_id(s.id.as_deref().unwrap_or_default()),
        name: s.name.as_deref().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_else(|| fallback_name.into()),
        source: StatsSource::EngineApi,
        cpu_percent: cpu_percent.map(|p| (p * 100.0).round() / 100.0),
        memory_usage_bytes: usage,
        memory_limit_bytes: limit,
        memory_percent: memory_percent.map(|p| (p * 100.0).round() / 100.0),
        net_rx_bytes: rx,
        net_tx_bytes: tx,
        block_read_bytes: br,
        block_write_bytes: bw,
        pids: s.pids_stats.as_ref().and_then(|p| p.current),
    }
}

/// `docker system df` from either shape of `/system/df`: the legacy lists
/// (API < 1.52) or the `*Usage` summaries.
pub(super) fn disk_usage(v: &Value) -> DiskUsage {
    let u = |x: &Value| x.as_u64().or_else(|| x.as_i64().map(|n| n.max(0) as u64)).unwrap_or(0);
    let summary = |x: &Value| DiskUsageRow {
        count: u(&x["TotalCount"]),
        active: u(&x["ActiveCount"]),
        size_bytes: u(&x["TotalSize"]),
        reclaimable_bytes: u(&x["Reclaimable"]),
    };
    if v.get("ImageUsage").is_some() {
        return DiskUsage {
            images: summary(&v["ImageUsage"]),
            containers: summary(&v["ContainerUsage"]),
            volumes: summary(&v["VolumeUsage"]),
            build_cache: summary(&v["BuildCacheUsage"]),
        };
    }
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let images = list("Images");
    let used: Vec<&Value> = images.iter().filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0).collect();
    let layers = u(&v["LayersSize"]);
    let used_bytes: u64 = used
        .iter()
        .map(|i| u(&i["Size"]).saturating_sub(i["SharedSize"].as_i64().filter(|s| *s > 0).unwrap_or(0) as u64))
        .sum();
    let containers = list("Containers");
    let volumes = list("Volumes");
    let vol_size = |x: &Value| x["UsageData"]["Size"].as_i64().filter(|s| *s > 0).unwrap_or(0) as u64;
    let vol_used = |x: &Value| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0;
    let cache = list("BuildCache");
    DiskUsage {
        images: DiskUsageRow {
            count: images.len() as u64,
            active: used.len() as u64,
            size_bytes: layers,
            reclaimable_bytes: layers.saturating_sub(used_bytes),
        },
        containers: DiskUsageRow {
            count: containers.len() as u64,
            active: containers.iter().filter(|c| c["State"] == "running").count() as u64,
            size_bytes: containers.iter().map(|c| u(&c["SizeRw"])).sum(),
            reclaimable_bytes: containers.iter().filter(|c| c["State"] != "running").map(|c| u(&c["SizeRw"])).sum(),
        },
        volumes: DiskUsageRow {
            count: volumes.len() as u64,
            active: volumes.iter().filter(|x| vol_used(x)).count() as u64,
            size_bytes: volumes.iter().map(vol_size).sum(),
            reclaimable_bytes: volumes.iter().filter(|x| !vol_used(x)).map(vol_size).sum(),
        },
        build_cache: DiskUsageRow {
            count: cache.len() as u64,
            active: cache.iter().filter(|c| c["InUse"] == true).count() as u64,
            size_bytes: cache.iter().map(|c| u(&c["Size"])).sum(),
            reclaimable_bytes: cache
                .iter()
                .filter(|c| c["InUse"] != true && c["Shared"] != true)
                .map(|c| u(&c["Size"]))
                .sum(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn disk_usage_from_both_shapes() {
        let legacy = json!({
            "LayersSize": 1000,
            "Images": [{"Size": 600, "SharedSize": 0, "Containers": 1}, {"Size": 400, "SharedSize": -1, "Containers": 0}],
            "Containers": [{"SizeRw": 10, "State": "running"}, {"SizeRw": 5, "State": "exited"}],
            "Volumes": [{"UsageData": {"Size": 7, "RefCount": 0}}, {"UsageData": {"Size": -1, "RefCount": 1}}],
            "BuildCache": null
        });
        let d = disk_usage(&legacy);
        assert_eq!(
            (d.images.count, d.images.active, d.images.size_bytes, d.images.reclaimable_bytes),
            (2, 1, 1000, 400)
        );
        assert_eq!((d.containers.size_bytes, d.containers.reclaimable_bytes, d.containers.active), (15, 5, 1));
        assert_eq!((d.volumes.count, d.volumes.size_bytes, d.volumes.reclaimable_bytes), (2, 7, 7));
        let modern = json!({"ImageUsage": {"TotalCount": 3, "ActiveCount": 1, "TotalSize": 50, "Reclaimable": 20}});
        let d = disk_usage(&modern);
        assert_eq!((d.images.count, d.images.reclaimable_bytes, d.containers.count), (3, 20, 0));
    }

    #[test]
    fn health_is_read_from_the_human_status() {
        assert_eq!(health_from_status("Up 2 seconds (healthy)").as_deref(), Some("healthy"));
        assert_eq!(health_from_status("Up 1 second (health: starting)").as_deref(), Some("starting"));
        assert_eq!(health_from_status("Exited (0) 3 minutes ago"), None);
    }
}
