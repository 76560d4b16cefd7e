//! `container_stats`: each row from the container's cgroup files when
//! tailops sees them on this host ([`super::cgroup`]), else from the
//! Engine API's one-shot stats; CPU % against the kept previous reading
//! ([`super::cpu`]). Every row says which (`source`).
//!
//! The cgroup path needs the container's init PID: inspect `State.Pid`
//! once, then kept per container id ([`super::cgroup::Pids`]) and checked
//! on every read (the PID's cgroup must still name the container). A
//! container whose cgroup cannot be read goes to the Engine API, and stays
//! there for [`super::cgroup::CGROUP_RETRY`]; a daemon that is not on this host (TCP to a
//! non-loopback address) is always asked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bollard::models as m;
use bollard::query_parameters as qp;
use futures::StreamExt;

use super::cgroup::{Host, Known, Roots, Usage};
use super::client::{Conn, Docker};
use super::config::Endpoint;
use super::convert::{container_row, name_of, short_id, state_view, stats_row};
use super::cpu::{CPU_FIRST_WINDOW, Cpu, Reading};
use super::limits::{MAX_STATS_CONTAINERS, STATS_CONCURRENCY};
use super::types::{StatsOutput, StatsRow, StatsSource};
use crate::mcp::contract::{ErrorCategory, ToolError};

/// A running container to sample.
struct Target {
    id: String,
    name: String,
    /// Its init PID when the caller just inspected it.
    pid: Option<i64>,
}

/// Whether the daemon may run on this host: a unix socket, or TCP to a
/// loopback address (anything else never shows its containers' cgroups
/// here, so no inspect is spent looking).
fn daemon_local(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Unix(_) => true,
        Endpoint::Tcp(a) => {
            a.parse::<SocketAddr>().map(|s| s.ip().is_loopback()).unwrap_or(false)
                || a.rsplit_once(':').is_some_and(|(h, _)| {
                    h == "localhost" || h.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
                })
        }
    }
}

/// Percent to two decimals, as the rest of the stats row.
fn round2(p: f64) -> f64 {
    (p * 100.0).round() / 100.0
}

fn cgroup_row(t: &Target, u: &Usage, cpu: Option<f64>) -> StatsRow {
    let limit = u.memory_limit_bytes.filter(|l| *l > 0);
    StatsRow {
        id: short_id(&t.id),
        name: t.name.clone(),
        source: StatsSource::Cgroup,
        cpu_percent: cpu.map(round2),
        memory_usage_bytes: Some(u.memory_bytes),
        memory_limit_bytes: limit,
        memory_percent: limit.map(|l| round2(u.memory_bytes as f64 / l as f64 * 100.0)),
        net_rx_bytes: u.net_rx_bytes,
        net_tx_bytes: u.net_tx_bytes,
        block_read_bytes: u.block_read_bytes,
        block_write_bytes: u.block_write_bytes,
        pids: u.pids,
    }
}

/// Reads `(index, pid, id)` from cgroup files, off the async threads.
async fn read_batch(host: &Arc<Host>, batch: Vec<(usize, i64, String)>) -> Vec<(usize, Option<Usage>)> {
    if batch.is_empty() {
        return Vec::new();
    }
    let host = Arc::clone(host);
    tokio::task::spawn_blocking(move || batch.into_iter().map(|(i, pid, id)| (i, host.read(pid, &id))).collect())
        .await
        .unwrap_or_default()
}

impl Docker {
    /// One one-shot stats reading (no 2 s wait for the daemon's second sample).
    async fn stats_once(&self, c: &Conn, id: &str, name: &str) -> Result<m::ContainerStatsResponse, ToolError> {
        let opts = qp::StatsOptions { stream: false, one_shot: true };
        let mut s = c.api.stats(id, Some(opts));
        match self.run(c, self.timeout(), async { s.next().await.transpose() }).await? {
            Some(v) => Ok(v),
            None => Err(ToolError::unavailable(format!("no stats for {name}"), "retry")),
        }
    }

    /// A container's usage from a one-shot Engine API reading; CPU %
    /// against the kept previous reading, or against a second reading
    /// [`CPU_FIRST_WINDOW`] later when none is usable (see [`super::cpu`]).
    async fn api_stats(&self, c: &Conn, id: &str, name: &str) -> Result<StatsRow, ToolError> {
        let v = self.stats_once(c, id, name).await?;
        let mut row = stats_row(&v, name);
        if row.cpu_percent.is_some() {
            // A daemon that ignores one-shot sent its own previous sample.
            return Ok(row);
        }
        let Some(first) = Reading::of(&v, Instant::now()) else {
            return Ok(row);
        };
        match self.readings().observe(id, first) {
            Cpu::Percent(p) => {
                row.cpu_percent = Some(round2(p));
                Ok(row)
            }
            Cpu::NeedSecond => {
                tokio::time::sleep(CPU_FIRST_WINDOW).await;
                let v = self.stats_once(c, id, name).await?;
                let mut row = stats_row(&v, name);
                if row.cpu_percent.is_none()
                    && let Some(second) = Reading::of(&v, Instant::now())
                {
                    row.cpu_percent = self.readings().pair(id, &first, second).map(round2);
                }
                Ok(row)
            }
        }
    }

    /// The init PID of a running container, by inspect.
    async fn init_pid(&self, c: &Conn, id: &str) -> Option<i64> {
        let opts = None::<qp::InspectContainerOptions>;
        let i = self.run(c, self.timeout(), c.api.inspect_container(id, opts)).await.ok()?;
        i.state.as_ref().filter(|s| s.running == Some(true)).and_then(|s| s.pid).filter(|p| *p > 0)
    }

    /// The rows of `targets` read from their cgroups, and the targets that
    /// could not be (for the Engine API).
    async fn cgroup_stats(&self, c: &Conn, mut targets: Vec<Target>) -> (Vec<StatsRow>, Vec<Target>) {
        if targets.is_empty() || !daemon_local(&c.endpoint) {
            return (Vec::new(), targets);
        }
        let Some(host) = tokio::task::spawn_blocking(|| Host::load(Roots::default())).await.ok().flatten() else {
            return (Vec::new(), targets);
        };
        let host = Arc::new(host);
        let pids = self.cgroup_pids();
        let now = Instant::now();
        // The PID of each: given, kept, or inspected (concurrently).
        let mut cached = vec![false; targets.len()];
        let mut unknown = Vec::new();
        let mut api = vec![false; targets.len()];
        for (i, t) in targets.iter_mut().enumerate() {
            if t.pid.is_some() {
                continue;
            }
            match pids.get(&t.id, now) {
                Some(Known::Pid(p)) => {
                    t.pid = Some(p);
                    cached[i] = true;
                }
                Some(Known::Api(_)) => api[i] = true,
                None => unknown.push(i),
            }
        }
        let inspect = |idx: Vec<usize>, targets: &Vec<Target>| {
            let ids: Vec<(usize, String)> = idx.into_iter().map(|i| (i, targets[i].id.clone())).collect();
            futures::stream::iter(ids)
                .map(|(i, id)| {
                    let c = c.clone();
                    async move { (i, self.init_pid(&c, &id).await) }
                })
                .buffer_unordered(STATS_CONCURRENCY)
                .collect::<Vec<_>>()
        };
        for (i, pid) in inspect(unknown, &targets).await {
            targets[i].pid = pid;
        }
        let batch = |targets: &Vec<Target>, api: &[bool], only: Option<&[usize]>| -> Vec<(usize, i64, String)> {
            targets
                .iter()
                .enumerate()
                .filter(|(i, _)| !api[*i] && only.is_none_or(|o| o.contains(i)))
                .filter_map(|(i, t)| t.pid.map(|p| (i, p, t.id.clone())))
                .collect()
        };
        let mut usage: Vec<Option<Usage>> = vec![None; targets.len()];
        let mut stale = Vec::new();
        for (i, u) in read_batch(&host, batch(&targets, &api, None)).await {
            match u {
                Some(u) => usage[i] = Some(u),
                // A kept PID that no longer leads to the container (it was
                // restarted): inspect again, once.
                None if cached[i] => stale.push(i),
                None => {}
            }
        }
        if !stale.is_empty() {
            for &i in &stale {
                pids.forget(&targets[i].id);
            }
            for (i, pid) in inspect(stale.clone(), &targets).await {
                targets[i].pid = pid;
            }
            for (i, u) in read_batch(&host, batch(&targets, &api, Some(&stale))).await {
                usage[i] = u;
            }
        }
        // CPU % against the kept reading, or two readings CPU_FIRST_WINDOW apart.
        let mut cpu: Vec<Option<f64>> = vec![None; targets.len()];
        let mut second = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            match (usage[i], t.pid) {
                (Some(u), Some(p)) => {
                    pids.set(&t.id, Known::Pid(p));
                    match self.readings().observe(&t.id, Reading::wall(u.cpu_ns, u.at)) {
                        Cpu::Percent(p) => cpu[i] = Some(p),
                        Cpu::NeedSecond => second.push(i),
                    }
                }
                _ if !api[i] => pids.set(&t.id, Known::Api(now)),
                _ => {}
            }
        }
        if !second.is_empty() {
            tokio::time::sleep(CPU_FIRST_WINDOW).await;
            for (i, u2) in read_batch(&host, batch(&targets, &api, Some(&second))).await {
                if let (Some(first), Some(u2)) = (usage[i], u2) {
                    cpu[i] = self.readings().pair(
                        &targets[i].id,
                        &Reading::wall(first.cpu_ns, first.at),
                        Reading::wall(u2.cpu_ns, u2.at),
                    );
                    usage[i] = Some(u2);
                } else {
                    // Gone between the two readings: the Engine API says why.
                    usage[i] = None;
                }
            }
        }
        let mut rows = Vec::new();
        let mut rest = Vec::new();
        for (i, t) in targets.into_iter().enumerate() {
            match usage[i] {
                Some(u) => rows.push(cgroup_row(&t, &u, cpu[i])),
                None => rest.push(t),
            }
        }
        (rows, rest)
    }

    /// Usage of one container, or of every running one (at most
    /// [`MAX_STATS_CONTAINERS`]); from cgroup files where tailops sees
    /// them, the rest by one-shot Engine API readings
    /// ([`STATS_CONCURRENCY`] at a time).
    pub async fn container_stats(&self, container: Option<&str>) -> Result<StatsOutput, ToolError> {
        let c = self.conn().await?;
        if let Some(name) = container {
            let i = self.inspect(&c, name).await?;
            let st = state_view(i.state.as_ref());
            if !st.running {
                return Err(ToolError::new(
                    ErrorCategory::Conflict,
                    format!("{} is {}, not running: no stats", name_of(&i), st.status),
                    "start it with container_start",
                ));
            }
            let id = i.id.clone().unwrap_or_default();
            let pid = i.state.as_ref().and_then(|s| s.pid).filter(|p| *p > 0);
            let t = Target { id: id.clone(), name: name_of(&i), pid };
            let (mut rows, _) = self.cgroup_stats(&c, vec![t]).await;
            let row = match rows.pop() {
                Some(r) => r,
                None => self.api_stats(&c, &id, &name_of(&i)).await?,
            };
            let summary = format!(
                "{}: CPU {}%, memory {} MiB, {} pids (from {})",
                row.name,
                row.cpu_percent.map(|p| format!("{p:.1}")).unwrap_or_else(|| "?".into()),
                row.memory_usage_bytes.unwrap_or(0) >> 20,
                row.pids.unwrap_or(0),
                source_name(row.source),
            );
            let (from_cgroup, from_engine_api) = counts(std::slice::from_ref(&row));
            return Ok(StatsOutput {
                summary,
                containers: vec![row],
                from_cgroup,
                from_engine_api,
                truncated: false,
                errors: Vec::new(),
            });
        }
        let list = self.list_containers_raw(&c, false, HashMap::new()).await?;
        let truncated = list.len() > MAX_STATS_CONTAINERS;
        let targets: Vec<Target> = list
            .iter()
            .take(MAX_STATS_CONTAINERS)
            .map(|s| Target { id: s.id.clone().unwrap_or_default(), name: container_row(s).name, pid: None })
            .collect();
        let live: Vec<&str> = list.iter().filter_map(|s| s.id.as_deref()).collect();
        self.readings().retain(&live);
        self.cgroup_pids().retain(&live);
        let (mut rows, rest) = self.cgroup_stats(&c, targets).await;
        let results: Vec<(String, Result<StatsRow, ToolError>)> = futures::stream::iter(rest)
            .map(|t| {
                let c = c.clone();
                async move {
                    let r = self.api_stats(&c, &t.id, &t.name).await;
                    (t.name, r)
                }
            })
            .buffer_unordered(STATS_CONCURRENCY)
            .collect()
            .await;
        let mut errors = Vec::new();
        for (name, r) in results {
            match r {
                Ok(row) => rows.push(row),
                Err(e) if e.category == ErrorCategory::NotFound || e.category == ErrorCategory::Conflict => {
                    errors.push(format!("{name}: {}", e.message))
                }
                Err(e) if rows.is_empty() && errors.is_empty() && e.category == ErrorCategory::Unavailable => {
                    return Err(e);
                }
                Err(e) => errors.push(format!("{name}: {}", e.message)),
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let cpu: f64 = rows.iter().filter_map(|r| r.cpu_percent).sum();
        let mem: u64 = rows.iter().filter_map(|r| r.memory_usage_bytes).sum();
        let (from_cgroup, from_engine_api) = counts(&rows);
        let summary = format!(
            "{} running containers: CPU {cpu:.1}% in total, memory {} MiB in total ({from_cgroup} read from cgroups, \
             {from_engine_api} from the Engine API)",
            rows.len(),
            mem >> 20
        );
        Ok(StatsOutput { summary, containers: rows, from_cgroup, from_engine_api, truncated, errors })
    }
}

fn source_name(s: StatsSource) -> &'static str {
    match s {
        StatsSource::Cgroup => "its cgroup",
        StatsSource::EngineApi => "the Engine API",
    }
}

fn counts(rows: &[StatsRow]) -> (usize, usize) {
    let cg = rows.iter().filter(|r| r.source == StatsSource::Cgroup).count();
    (cg, rows.len() - cg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_local_daemon_is_looked_for_in_cgroups() {
        assert!(daemon_local(&Endpoint::Unix("/var/run/docker.sock".into())));
        for a in ["127.0.0.1:2375", "[::1]:2375", "localhost:2375", "127.8.9.1:1"] {
            assert!(daemon_local(&Endpoint::Tcp(a.into())), "{a}");
        }
        for a in ["10.0.0.5:2375", "docker.example:2376", "[fd00::1]:2375", "garbage"] {
            assert!(!daemon_local(&Endpoint::Tcp(a.into())), "{a}");
        }
    }
}
