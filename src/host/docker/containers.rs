//! Reading containers: `container_list`, `container_inspect`,
//! `container_top` (`container_stats` is `stats`).

use std::collections::HashMap;

use bollard::models as m;
use bollard::query_parameters as qp;

use super::client::{Conn, Docker};
use super::convert::{COMPOSE_PROJECT, container_row, name_of, ns_secs, short_id, state_view};
use super::limits::{MAX_ENTRIES, MAX_TOP_PROCESSES};
use super::page::{Page, Paged};
use super::redact::{redact_argv, redact_env, redact_labels, redact_line};
use super::refs::label_filters;
use super::types::{
    ContainerListOutput, ContainerRow, ContainerStatus, HealthcheckView, InspectOutput, MountView, NetworkAttachment,
    PortView, ProjectGroup, ResourcesView, RestartPolicyView, TopOutput,
};
use crate::mcp::contract::{ErrorCategory, ToolError};

/// What `container_list` selects, and how it orders the page.
#[derive(Debug, Default)]
pub struct ContainerListQuery {
    /// Include stopped containers (default: running only).
    pub all: bool,
    /// Only containers whose name contains this (case-insensitive).
    pub name: Option<String>,
    /// Only containers carrying every one of these labels (`key` or `key=value`).
    pub labels: Vec<String>,
    /// Only containers in this state (implies `all`).
    pub status: Option<ContainerStatus>,
    /// Only containers of this Docker Compose project.
    pub compose_project: Option<String>,
    /// Order by Compose project and group the page (`groups`).
    pub group_by_project: bool,
}

/// A `key=value` label filter may only name a value the caller is shown:
/// the daemon matches the real value, so a filter on a hidden one
/// (`api_token=guess`, `note=DB_PASSWORD=guess`) would confirm guesses of
/// it. Filtering by the key alone (`api_token`) stays allowed.
fn shown_label_filter(filter: &str) -> Result<(), ToolError> {
    let Some((key, value)) = filter.split_once('=') else {
        return Ok(());
    };
    let labels = [(key.to_string(), value.to_string())];
    let shown = crate::redact::redact_labels(labels.iter().map(|(k, v)| (k, v)), false);
    if shown.get(key).is_some_and(|v| v == value) {
        Ok(())
    } else {
        Err(ToolError::invalid_input(
            format!("label filter on {key:?} names a value that is redacted"),
            "filter by the label key alone; values of secret-looking labels are hidden",
        ))
    }
}

impl Docker {
    /// Containers as the daemon lists them (`prune` chooses from these too).
    pub(super) async fn list_containers_raw(
        &self,
        c: &Conn,
        all: bool,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<Vec<m::ContainerSummary>, ToolError> {
        let opts = qp::ListContainersOptions { all, limit: None, size: false, filters: Some(filters) };
        self.run(c, self.timeout(), c.api.list_containers(Some(opts))).await
    }

    /// Containers matching `q`, sorted by name (or project, name), one page.
    pub async fn container_list(&self, q: ContainerListQuery, page: Page) -> Result<ContainerListOutput, ToolError> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        let mut labels = label_filters(&q.labels)?;
        for l in &labels {
            shown_label_filter(l)?;
        }
        if let Some(p) = &q.compose_project {
            labels.extend(label_filters(&[format!("{COMPOSE_PROJECT}={p}")])?);
        }
        if !labels.is_empty() {
            filters.insert("label".into(), labels);
        }
        if let Some(s) = q.status {
            filters.insert("status".into(), vec![s.as_str().into()]);
        }
        let c = self.conn().await?;
        let list = self.list_containers_raw(&c, q.all || q.status.is_some(), filters).await?;
        let needle = q.name.as_deref().map(str::to_lowercase);
        let mut rows: Vec<ContainerRow> = list
            .iter()
            .map(container_row)
            .filter(|r| needle.as_deref().is_none_or(|n| r.name.to_lowercase().contains(n)))
            .collect();
        if q.group_by_project {
            rows.sort_by(|a, b| (&a.compose_project, &a.name).cmp(&(&b.compose_project, &b.name)));
        } else {
            rows.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let Paged { rows: page, total, truncated, next_cursor } = page.cut(rows);
        let running = page.iter().filter(|r| r.state == "running").count();
        let summary = format!("{} of {total} containers ({running} of them running on this page)", page.len());
        let (containers, groups) = if q.group_by_project {
            let mut groups: Vec<ProjectGroup> = Vec::new();
            for r in page {
                match groups.last_mut() {
                    Some(g) if g.project == r.compose_project => g.containers.push(r),
                    _ => groups.push(ProjectGroup { project: r.compose_project.clone(), containers: vec![r] }),
                }
            }
            (Vec::new(), Some(groups))
        } else {
            (page, None)
        };
        Ok(ContainerListOutput { summary, containers, groups, total, truncated, next_cursor })
    }

    /// One container in detail; env values, secret-looking labels and
    /// arguments redacted unless `reveal`.
    pub async fn container_inspect(&self, container: &str, reveal: bool) -> Result<InspectOutput, ToolError> {
        let c = self.conn().await?;
        let i = self.inspect(&c, container).await?;
        let cfg = i.config.clone().unwrap_or_default();
        let hc = i.host_config.clone().unwrap_or_default();
        let (env, env_redacted) = redact_env(cfg.env.as_deref().unwrap_or_default(), reveal);
        let mut command: Vec<String> = i.path.clone().into_iter().filter(|p| !p.is_empty()).collect();
        command.extend(i.args.clone().unwrap_or_default());
        let state = state_view(i.state.as_ref());
        let name = name_of(&i);
        let cpus =
            hc.nano_cpus.filter(|n| *n > 0).map(|n| n as f64 / 1e9).or_else(|| match (hc.cpu_quota, hc.cpu_period) {
                (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
                _ => None,
            });
        let mut ports: Vec<PortView> = Vec::new();
        for (port, binds) in i.network_settings.as_ref().and_then(|n| n.ports.clone()).unwrap_or_default() {
            match binds {
                Some(b) if !b.is_empty() => ports.extend(b.into_iter().map(|b| PortView {
                    container_port: port.clone(),
                    host_ip: b.host_ip,
                    host_port: b.host_port,
                })),
                _ => ports.push(PortView { container_port: port, host_ip: None, host_port: None }),
            }
        }
        ports.sort_by(|a, b| a.container_port.cmp(&b.container_port));
        let mut networks: Vec<NetworkAttachment> = i
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, e)| NetworkAttachment {
                network: k,
                ip_address: e.ip_address.filter(|s| !s.is_empty()),
                gateway: e.gateway.filter(|s| !s.is_empty()),
                mac_address: e.mac_address.filter(|s| !s.is_empty()),
            })
            .collect();
        networks.sort_by(|a, b| a.network.cmp(&b.network));
        let labels = cfg.labels.clone().unwrap_or_default();
        let summary = format!(
            "{name} ({}) {}{}, image {}, {} env ({} hidden), {} mounts",
            short_id(i.id.as_deref().unwrap_or_default()),
            state.status,
            state.health.as_ref().map(|h| format!(" [{}]", h.status)).unwrap_or_default(),
            cfg.image.as_deref().unwrap_or("?"),
            env.len(),
            env_redacted,
            i.mounts.as_ref().map(Vec::len).unwrap_or(0)
        );
        Ok(InspectOutput {
            summary,
            id: i.id.clone().unwrap_or_default(),
            name,
            image: cfg.image.clone(),
            image_id: i.image.clone(),
            created: i.created.clone(),
            command: redact_argv(&command, reveal),
            working_dir: cfg.working_dir.clone().filter(|s| !s.is_empty()),
            user: cfg.user.clone().filter(|s| !s.is_empty()),
            env,
            env_redacted,
            secrets_revealed: reveal,
            compose_project: labels.get(COMPOSE_PROJECT).cloned(),
            labels: redact_labels(&labels, reveal),
            state,
            restart_policy: hc.restart_policy.as_ref().map(|r| RestartPolicyView {
                name: r.name.map(|n| n.to_string()).filter(|n| !n.is_empty()).unwrap_or_else(|| "no".into()),
                maximum_retry_count: r.maximum_retry_count,
            }),
            restart_count: i.restart_count,
            resources: ResourcesView {
                memory_bytes: hc.memory,
                memory_swap_bytes: hc.memory_swap,
                memory_reservation_bytes: hc.memory_reservation,
                cpus,
                cpu_shares: hc.cpu_shares,
                cpuset_cpus: hc.cpuset_cpus.clone().filter(|s| !s.is_empty()),
                pids_limit: hc.pids_limit,
            },
            mounts: i
                .mounts
                .clone()
                .unwrap_or_default()
                .into_iter()
                .take(MAX_ENTRIES)
                .map(|mp| MountView {
                    kind: mp.typ.map(|t| t.to_string()),
                    name: mp.name.filter(|s| !s.is_empty()),
                    source: mp.source,
                    destination: mp.destination,
                    mode: mp.mode,
                    rw: mp.rw,
                })
                .collect(),
            ports,
            network_mode: hc.network_mode.clone(),
            networks,
            healthcheck: cfg.healthcheck.as_ref().filter(|h| h.test.as_ref().is_some_and(|t| !t.is_empty())).map(|h| {
                HealthcheckView {
                    test: redact_argv(h.test.as_deref().unwrap_or_default(), reveal),
                    interval_secs: ns_secs(h.interval),
                    timeout_secs: ns_secs(h.timeout),
                    retries: h.retries,
                    start_period_secs: ns_secs(h.start_period),
                }
            }),
            log_driver: hc.log_config.as_ref().and_then(|l| l.typ.clone()),
            privileged: hc.privileged,
            read_only_rootfs: hc.readonly_rootfs,
        })
    }

    /// The processes of a running container (`ps`), command column redacted.
    pub async fn container_top(&self, container: &str) -> Result<TopOutput, ToolError> {
        let c = self.conn().await?;
        let i = self.inspect(&c, container).await?;
        let st = state_view(i.state.as_ref());
        if !st.running {
            return Err(ToolError::new(
                ErrorCategory::Conflict,
                format!("{} is {}, not running", name_of(&i), st.status),
                "start it with container_start",
            ));
        }
        let id = i.id.clone().unwrap_or_default();
        let top = self.run(&c, self.timeout(), c.api.top_processes(&id, None::<qp::TopOptions>)).await?;
        let titles = top.titles.unwrap_or_default();
        let cmd_col = titles.iter().position(|t| t == "CMD" || t == "COMMAND");
        let all = top.processes.unwrap_or_default();
        let truncated = all.len() > MAX_TOP_PROCESSES;
        let processes: Vec<Vec<String>> = all
            .into_iter()
            .take(MAX_TOP_PROCESSES)
            .map(|mut row| {
                if let Some(ci) = cmd_col
                    && let Some(cell) = row.get_mut(ci)
                {
                    *cell = redact_line(cell);
                }
                row
            })
            .collect();
        let name = name_of(&i);
        Ok(TopOutput {
            summary: format!("{} processes in {name}", processes.len()),
            container: name,
            titles,
            processes,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_filters_cannot_probe_hidden_values() {
        for hidden in ["api_token=tok-guess", "note=DB_PASSWORD=hunter2", "db.password=x", "url=https://u:pw@h"] {
            let e = shown_label_filter(hidden).expect_err(hidden);
            assert_eq!(e.category, ErrorCategory::InvalidInput, "{hidden}");
        }
        for shown in ["api_token", "app=web", "com.docker.compose.project=shop", "tier"] {
            assert!(shown_label_filter(shown).is_ok(), "{shown}");
        }
    }
}
