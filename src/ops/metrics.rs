//! `GET /metrics`: Prometheus text (OpenMetrics) for a tailnet Prometheus,
//! with the `prometheus-client` crate. Needs scope `metrics:read`.
//!
//! What it holds: the spine's tool calls (by tool and outcome), their
//! latency, refusals by reason; MCP sessions; connections and their
//! refusals and timeouts; the audit writer (queue depth, operations and
//! their time, errors, drops, stall); the sampler's latest host sample
//! under node_exporter's names where one exists (load, memory, filesystems,
//! network, PSI, temperatures) and `tailops_*` names where node_exporter
//! has none (CPU usage as a ratio: the sampler keeps usage, not the
//! per-mode seconds of `node_cpu_seconds_total`); alerts; tool-domain
//! readiness (Docker); the tailnet's state and peer count.
//!
//! Scrape cost is bounded: no per-process series, and every per-device
//! family (filesystems, interfaces, cores, sensors, alerts) is cut at
//! [`MAX_SERIES_PER_FAMILY`]. Successful scrapes are not audited (one
//! every 15 s would drown the log); refusals are, like any denial.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::audit::{self, AuditStats, Event};
use crate::auth::caller::Caller;
use crate::auth::policy::Decision;
use crate::auth::scopes::Scope;
use crate::host::Host;
use crate::host::sampler::Snapshot;
use crate::http::{AppState, ConnCounters, ConnCounts, IdentitySource};

/// Most series one per-device family (filesystems, interfaces, cores,
/// sensors, alerts) contributes to a scrape; the rest are left out and
/// counted in `tailops_metrics_series_dropped`.
pub const MAX_SERIES_PER_FAMILY: usize = 256;
/// Bound on the tailnet status lookup of one scrape.
pub const TAILNET_STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// The OpenMetrics content type `prometheus-client` encodes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/metrics` reads besides the spine and the HTTP state.
pub struct Exporter {
    pub host: Arc<Host>,
    pub conn: Arc<ConnCounters>,
}

/// The `/metrics` route (and its authorization), for `http::router`'s
/// extra routes.
pub fn routes(exporter: Arc<Exporter>) -> Router<AppState> {
    Router::new().route(
        "/metrics",
        get(move |State(state): State<AppState>, Extension(caller): Extension<Caller>| {
            let e = exporter.clone();
            async move {
                if let Err(refused) = authorize(&state, &caller, "/metrics") {
                    return *refused;
                }
                let body = e.render(&state).await;
                ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
            }
        }),
    )
}

/// Rate limit and `metrics:read`, as the spine does for tools: a refusal is
/// audited (and counts toward the repeated-denial block).
pub fn authorize(state: &AppState, caller: &Caller, what: &str) -> Result<(), Box<Response>> {
    let spine = &state.spine;
    if let Err(r) = spine.limiter.check(&caller.rate_key(), false) {
        spine.stats.refused("rate_limited");
        let secs = r.retry_after().as_secs().max(1);
        let mut resp = crate::http::error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests",
            "scrape less often (limits.rate)",
        );
        if let Ok(v) = secs.to_string().parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(Box::new(resp));
    }
    let reason = match caller.check(what, Some(Scope::MetricsRead)) {
        Decision::Allow => return Ok(()),
        Decision::Deny(r) => r,
        Decision::StepUp(s) => format!("the OAuth token lacks scope {s}"),
    };
    spine.stats.refused("denied");
    spine.note_denial(caller, None);
    let ev = Event {
        kind: audit::kind::DECISION.into(),
        tool: Some(what.to_string()),
        decision: Some("deny".into()),
        outcome: Some("refused".into()),
        detail: Some(json!({ "message": reason, "required_scope": Scope::MetricsRead.as_str() })),
        ..Default::default()
    };
    let _ = spine.audit_event(caller, None, ev);
    Err(Box::new(crate::http::error(
        StatusCode::FORBIDDEN,
        "permission_denied",
        &reason,
        "grant this node or user the scope metrics:read (e.g. a grant value {\"scopes\": [\"metrics:read\"]})",
    )))
}

impl Exporter {
    /// One scrape: gathers the dynamic values (bounded waits), encodes.
    pub async fn render(&self, state: &AppState) -> String {
        let tailnet = match &*state.identity {
            IdentitySource::Tailnet(node) => Some(node.status(TAILNET_STATUS_TIMEOUT).await.ok()),
            IdentitySource::Local => None,
        };
        let dynamic = Dynamic {
            snapshot: self.host.sampler.as_ref().map(|s| s.latest()),
            alerts: self.host.sampler.as_ref().map(|s| s.alerts()),
            domains: self.host.health().await,
            audit: state.spine.audit.stats(),
            audit_healthy: state.spine.audit.is_healthy(),
            conn: self.conn.snapshot(),
            sessions: state.sessions.len(),
            tailnet,
            uptime: state.spine.started.elapsed(),
            go: crate::tailnet::memory::go_memory(false).ok(),
            rss_bytes: crate::host::procfs::status(std::process::id()).ok().and_then(|s| s.vm_rss),
        };
        encode(&state.spine.stats, dynamic)
    }
}

/// Encodes the spine's families and one sample of everything else.
pub fn encode(stats: &crate::mcp::SpineStats, dynamic: Dynamic) -> String {
    let mut reg = Registry::default();
    reg.register("tailops_tool_calls", "Tool calls that ran, by tool and outcome", stats.calls.clone());
    reg.register(
        "tailops_tool_call_duration_seconds",
        "Tool call latency (admission to answer), by tool",
        stats.duration.clone(),
    );
    reg.register(
        "tailops_refusals",
        "Calls refused before running, by reason (denied, step_up, unknown_tool, rate_limited, blocked, write_ahead)",
        stats.refusals.clone(),
    );
    reg.register_collector(Box::new(dynamic));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}

/// Values read at scrape time.
#[derive(Debug)]
pub struct Dynamic {
    pub snapshot: Option<Arc<Snapshot>>,
    pub alerts: Option<crate::host::sampler::AlertsView>,
    pub domains: serde_json::Map<String, serde_json::Value>,
    pub audit: AuditStats,
    pub audit_healthy: bool,
    pub conn: ConnCounts,
    pub sessions: usize,
    /// None: no tailnet (dev/stdio); Some(None): status lookup failed.
    pub tailnet: Option<Option<crate::tailnet::Status>>,
    pub uptime: Duration,
    /// The embedded Go runtime's memory (None if it could not be read).
    pub go: Option<crate::tailnet::memory::GoMemory>,
    /// This process's resident set (VmRSS).
    pub rss_bytes: Option<u64>,
}

type Fam<'a> = Vec<(Vec<(&'static str, String)>, f64)>;

struct Out<'e, 'a> {
    enc: &'e mut DescriptorEncoder<'a>,
    dropped: u64,
}

impl Out<'_, '_> {
    fn gauge(&mut self, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(v);
        let m = self.enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        g.encode(m)
    }

    fn counter(&mut self, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
        let c = ConstCounter::new(v);
        let m = self.enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        c.encode(m)
    }

    /// A labelled family, cut at [`MAX_SERIES_PER_FAMILY`].
    fn family(&mut self, name: &str, help: &str, ty: MetricType, series: Fam<'_>) -> Result<(), std::fmt::Error> {
        if series.is_empty() {
            return Ok(());
        }
        let over = series.len().saturating_sub(MAX_SERIES_PER_FAMILY);
        self.dropped = self.dropped.saturating_add(over as u64);
        let mut m = self.enc.encode_descriptor(name, help, None, ty)?;
        for (labels, v) in series.into_iter().take(MAX_SERIES_PER_FAMILY) {
            let child = m.encode_family(&labels)?;
            match ty {
                MetricType::Counter => ConstCounter::new(v).encode(child)?,
                _ => ConstGauge::new(v).encode(child)?,
            }
        }
        Ok(())
    }
}

fn l(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

impl Collector for Dynamic {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut o = Out { enc: &mut enc, dropped: 0 };
        o.family(
            "tailops_build_info",
            "tailops version",
            MetricType::Gauge,
            vec![(l(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0)],
        )?;
        o.gauge("tailops_uptime_seconds", "Seconds since the server started", self.uptime.as_secs_f64())?;
        o.gauge("tailops_mcp_sessions", "Open MCP sessions", self.sessions as f64)?;
        let c = &self.conn;
        o.counter("tailops_connections_accepted", "Connections accepted (refused ones included)", c.accepted as f64)?;
        o.family(
            "tailops_connections_closed",
            "Connections refused or closed by the server, by reason",
            MetricType::Counter,
            vec![
                (l(&[("reason", "per_peer_cap")]), c.refused_per_peer as f64),
                (l(&[("reason", "first_byte_timeout")]), c.first_byte_timeouts as f64),
                (l(&[("reason", "header_timeout")]), c.header_timeouts as f64),
                (l(&[("reason", "body_timeout")]), c.body_timeouts as f64),
                (l(&[("reason", "idle")]), c.idle_closed as f64),
            ],
        )?;

        let a = &self.audit;
        o.gauge(
            "tailops_audit_healthy",
            "1 while the audit log writes (writing tools need it)",
            b(self.audit_healthy),
        )?;
        o.gauge("tailops_audit_queue_depth", "Audit records queued for the writer", a.queued as f64)?;
        o.gauge("tailops_audit_queue_capacity", "Audit queue capacity (audit.queue)", a.capacity as f64)?;
        o.counter("tailops_audit_operations", "Audit writer operations (write, fsync, rotation)", a.ops as f64)?;
        o.counter("tailops_audit_operation_seconds", "Time spent in audit writer operations", a.op_seconds)?;
        o.counter("tailops_audit_write_errors", "Failed audit writes, fsyncs or rotations", a.write_errors as f64)?;
        o.counter("tailops_audit_dropped_records", "Audit records dropped on a full queue", a.dropped as f64)?;
        o.gauge(
            "tailops_audit_stalled_seconds",
            "How long the current audit write has run past the stall bound (0 when not stalled)",
            a.stalled_secs.unwrap_or(0.0),
        )?;

        let domains: Fam<'_> = self
            .domains
            .iter()
            .map(|(d, v)| (l(&[("domain", d)]), b(v.get("status").and_then(|s| s.as_str()) == Some("ok"))))
            .collect();
        o.family(
            "tailops_domain_up",
            "1 when a tool domain's backend answers (e.g. Docker)",
            MetricType::Gauge,
            domains,
        )?;

        if let Some(t) = &self.tailnet {
            let up = t.as_ref().is_some_and(|s| s.backend_state == "Running");
            o.gauge("tailops_tailnet_up", "1 while the tailnet node is Running", b(up))?;
            if let Some(s) = t {
                o.gauge("tailops_tailnet_peers", "Peers in this node's netmap", s.peers.len() as f64)?;
                let online = s.peers.iter().filter(|p| p.online).count();
                o.gauge("tailops_tailnet_peers_online", "Peers online", online as f64)?;
                let direct = s.peers.iter().filter(|p| p.direct).count();
                o.gauge("tailops_tailnet_peers_direct", "Peers reached directly (not relayed)", direct as f64)?;
            }
        }

        if let Some(al) = &self.alerts {
            let mut series: Fam<'_> = Vec::new();
            for (state, list) in [("pending", &al.pending), ("firing", &al.firing)] {
                for a in list {
                    series.push((l(&[("rule", &a.rule), ("metric", &a.metric), ("state", state)]), 1.0));
                }
            }
            o.gauge("tailops_alerts_firing", "Alerts firing now", al.firing.len() as f64)?;
            o.gauge("tailops_alerts_pending", "Alerts pending now", al.pending.len() as f64)?;
            o.family("tailops_alert", "Pending and firing alerts (1 per alert)", MetricType::Gauge, series)?;
        }

        if let Some(r) = self.rss_bytes {
            o.gauge("process_resident_memory_bytes", "Resident memory size in bytes", r as f64)?;
        }
        if let Some(g) = &self.go {
            go_memory(&mut o, g)?;
        }
        if let Some(s) = &self.snapshot {
            host(&mut o, s)?;
        }
        let dropped = o.dropped as f64;
        o.gauge(
            "tailops_metrics_series_dropped",
            "Series left out of this scrape (per-family cap MAX_SERIES_PER_FAMILY)",
            dropped,
        )
    }
}

fn b(v: bool) -> f64 {
    if v { 1.0 } else { 0.0 }
}

/// The embedded Go runtime's memory (tsnet, netstack, the connection
/// bridge), by runtime/metrics class: with `process_resident_memory_bytes`
/// it tells the Go side's share of the process from the Rust side's.
fn go_memory(o: &mut Out<'_, '_>, g: &crate::tailnet::memory::GoMemory) -> Result<(), std::fmt::Error> {
    let classes: Fam<'_> = [
        ("heap_objects", g.heap_objects),
        ("heap_free", g.heap_free),
        ("heap_released", g.heap_released),
        ("heap_unused", g.heap_unused),
        ("stacks", g.stacks),
        ("metadata", g.metadata),
        ("other", g.other),
    ]
    .into_iter()
    .map(|(c, v)| (l(&[("class", c)]), v as f64))
    .collect();
    o.family(
        "tailops_go_memory_bytes",
        "Memory mapped by the embedded Go runtime, by class (runtime/metrics /memory/classes; heap_released is not resident)",
        MetricType::Gauge,
        classes,
    )?;
    o.gauge("tailops_go_heap_goal_bytes", "Heap size the Go runtime's next collection aims for", g.heap_goal as f64)?;
    o.gauge("tailops_go_memory_limit_bytes", "The Go runtime's soft memory limit", g.memory_limit as f64)?;
    o.counter("tailops_go_gc_cycles", "Completed Go GC cycles", g.gc_cycles as f64)?;
    o.gauge("tailops_go_goroutines", "Live goroutines", g.goroutines as f64)
}

/// The host sample under node_exporter's names.
fn host(o: &mut Out<'_, '_>, s: &Snapshot) -> Result<(), std::fmt::Error> {
    o.gauge("tailops_sample_timestamp_seconds", "Unix time of the host sample", s.taken_unix)?;
    o.gauge("tailops_sample_duration_seconds", "How long taking the host sample took", s.sample_duration_ms / 1e3)?;
    o.gauge("node_load1", "1m load average", s.load.one)?;
    o.gauge("node_load5", "5m load average", s.load.five)?;
    o.gauge("node_load15", "15m load average", s.load.fifteen)?;
    o.gauge("node_boot_time_seconds", "Node boot time, in unixtime", s.boot_time_unix as f64)?;
    o.gauge("tailops_cpu_usage_ratio", "CPU busy share of all cores (0-1)", s.cpu.usage_percent / 100.0)?;
    let cores: Fam<'_> =
        s.cpu.per_core_percent.iter().enumerate().map(|(i, p)| (vec![("cpu", i.to_string())], p / 100.0)).collect();
    o.family("tailops_cpu_core_usage_ratio", "CPU busy share per core (0-1)", MetricType::Gauge, cores)?;
    let m = &s.memory;
    o.gauge("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes", m.total as f64)?;
    o.gauge("node_memory_MemAvailable_bytes", "Memory information field MemAvailable_bytes", m.available as f64)?;
    o.gauge("node_memory_MemFree_bytes", "Memory information field MemFree_bytes", m.free as f64)?;
    o.gauge("node_memory_SwapTotal_bytes", "Memory information field SwapTotal_bytes", m.swap_total as f64)?;
    o.gauge(
        "node_memory_SwapFree_bytes",
        "Memory information field SwapFree_bytes",
        m.swap_total.saturating_sub(m.swap_used) as f64,
    )?;

    let fs = |f: &dyn Fn(&crate::host::sampler::DiskSnapshot) -> f64| -> Fam<'_> {
        s.disks
            .iter()
            .map(|d| (l(&[("device", &d.device), ("fstype", &d.fs_type), ("mountpoint", &d.mount_point)]), f(d)))
            .collect()
    };
    o.family(
        "node_filesystem_size_bytes",
        "Filesystem size in bytes",
        MetricType::Gauge,
        fs(&|d| d.total_bytes as f64),
    )?;
    o.family(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes",
        MetricType::Gauge,
        fs(&|d| d.available_bytes as f64),
    )?;
    o.family(
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes",
        MetricType::Gauge,
        fs(&|d| d.total_bytes.saturating_sub(d.used_bytes) as f64),
    )?;
    o.family(
        "node_filesystem_files",
        "Filesystem total file nodes",
        MetricType::Gauge,
        fs(&|d| d.inodes_total as f64),
    )?;
    o.family(
        "node_filesystem_files_free",
        "Filesystem total free file nodes",
        MetricType::Gauge,
        fs(&|d| d.inodes_total.saturating_sub(d.inodes_used) as f64),
    )?;

    let net = |f: &dyn Fn(&crate::host::sampler::NetSnapshot) -> u64| -> Fam<'_> {
        s.networks.iter().map(|n| (l(&[("device", &n.interface)]), f(n) as f64)).collect()
    };
    let c = MetricType::Counter;
    o.family("node_network_receive_bytes", "Network device statistic receive_bytes", c, net(&|n| n.rx_bytes))?;
    o.family("node_network_transmit_bytes", "Network device statistic transmit_bytes", c, net(&|n| n.tx_bytes))?;
    o.family("node_network_receive_packets", "Network device statistic receive_packets", c, net(&|n| n.rx_packets))?;
    o.family("node_network_transmit_packets", "Network device statistic transmit_packets", c, net(&|n| n.tx_packets))?;
    o.family("node_network_receive_errs", "Network device statistic receive_errs", c, net(&|n| n.rx_errors))?;
    o.family("node_network_transmit_errs", "Network device statistic transmit_errs", c, net(&|n| n.tx_errors))?;

    if let Some(p) = &s.pressure {
        let secs = |us: u64| us as f64 / 1e6;
        o.counter(
            "node_pressure_cpu_waiting_seconds",
            "Total time in seconds that processes have waited for CPU time",
            secs(p.cpu.some.total_us),
        )?;
        o.counter(
            "node_pressure_memory_waiting_seconds",
            "Total time in seconds that processes have waited for memory",
            secs(p.memory.some.total_us),
        )?;
        if let Some(full) = &p.memory.full {
            o.counter(
                "node_pressure_memory_stalled_seconds",
                "Total time in seconds no process could make progress due to memory congestion",
                secs(full.total_us),
            )?;
        }
        o.counter(
            "node_pressure_io_waiting_seconds",
            "Total time in seconds that processes have waited due to IO congestion",
            secs(p.io.some.total_us),
        )?;
        if let Some(full) = &p.io.full {
            o.counter(
                "node_pressure_io_stalled_seconds",
                "Total time in seconds no process could make progress due to IO congestion",
                secs(full.total_us),
            )?;
        }
    }
    let temps: Fam<'_> = s.temperatures.iter().map(|t| (l(&[("sensor", &t.label)]), t.celsius)).collect();
    o.family("node_hwmon_temp_celsius", "Hardware monitor for temperature (input)", MetricType::Gauge, temps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic() -> Dynamic {
        Dynamic {
            snapshot: None,
            alerts: None,
            domains: serde_json::Map::new(),
            audit: AuditStats::default(),
            audit_healthy: true,
            conn: ConnCounts::default(),
            sessions: 2,
            tailnet: None,
            uptime: Duration::from_secs(5),
            go: crate::tailnet::memory::go_memory(false).ok(),
            rss_bytes: Some(7 << 20),
        }
    }

    #[test]
    fn counters_and_gauges_are_encoded_with_types() {
        let stats = crate::mcp::SpineStats::default();
        stats.call("whoami", "ok", Duration::from_millis(2));
        stats.refused("denied");
        let text = encode(&stats, dynamic());
        assert!(text.contains("# TYPE tailops_tool_calls counter"), "{text}");
        assert!(text.contains("tailops_tool_calls_total{tool=\"whoami\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("tailops_refusals_total{reason=\"denied\"} 1"), "{text}");
        assert!(text.contains("tailops_mcp_sessions 2"), "{text}");
        assert!(text.contains("process_resident_memory_bytes 7340032"), "{text}");
        assert!(text.contains("tailops_go_memory_bytes{class=\"heap_objects\"}"), "{text}");
        assert!(text.contains("tailops_go_goroutines "), "{text}");
        assert!(text.contains("tailops_tool_call_duration_seconds_bucket{le=\"0.002\",tool=\"whoami\"}"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
