//! `prune`: what `docker system prune` removes, by kind and label; a dry
//! run computes the same choice from the lists without removing anything.

use std::collections::{HashMap, HashSet};

use bollard::models as m;
use bollard::query_parameters as qp;

use super::client::Docker;
use super::convert::{container_row, short_id};
use super::limits::MAX_PRUNE_ITEMS;
use super::refs::label_filters;
use super::types::{PruneGroup, PruneItem, PruneKind, PruneOutput};
use crate::mcp::contract::ToolError;

impl Docker {
    /// Removes unused objects of `kinds` (only those carrying every one of
    /// `labels`); with `dry_run` only lists what would go. `all_images`:
    /// every unused image, not only dangling ones.
    pub async fn prune(
        &self,
        kinds: &[PruneKind],
        dry_run: bool,
        all_images: bool,
        labels: &[String],
    ) -> Result<PruneOutput, ToolError> {
        if kinds.is_empty() {
            return Err(ToolError::invalid_input(
                "kinds is empty",
                "name what to prune: containers, images, volumes, networks",
            ));
        }
        let kinds: HashSet<PruneKind> = kinds.iter().copied().collect();
        let labels = label_filters(labels)?;
        let filters = |extra: Option<(&str, &str)>| {
            let mut f: HashMap<String, Vec<String>> = HashMap::new();
            if !labels.is_empty() {
                f.insert("label".into(), labels.clone());
            }
            if let Some((k, v)) = extra {
                f.insert(k.into(), vec![v.into()]);
            }
            f
        };
        let group = |items: Vec<PruneItem>, space: Option<u64>| {
            let count = items.len();
            PruneGroup {
                truncated: count > MAX_PRUNE_ITEMS,
                items: items.into_iter().take(MAX_PRUNE_ITEMS).collect(),
                count,
                space_bytes: space,
            }
        };
        let c = self.conn().await?;
        let t = self.timeout();
        let mut out = PruneOutput {
            summary: String::new(),
            dry_run,
            containers: None,
            images: None,
            volumes: None,
            networks: None,
        };
        // Same order as `docker system prune`: containers, networks, volumes, images.
        if dry_run {
            let all = self.list_containers_raw(&c, true, HashMap::new()).await?;
            let stopped = |s: &m::ContainerSummary| {
                matches!(s.state.map(|v| v.to_string()).as_deref(), Some("created" | "exited" | "dead"))
            };
            let pruned: Vec<m::ContainerSummary> = if kinds.contains(&PruneKind::Containers) {
                self.list_containers_raw(&c, true, filters(None)).await?.into_iter().filter(stopped).collect()
            } else {
                Vec::new()
            };
            let gone: HashSet<String> = pruned.iter().filter_map(|s| s.id.clone()).collect();
            let remaining: Vec<&m::ContainerSummary> =
                all.iter().filter(|s| !s.id.as_ref().is_some_and(|i| gone.contains(i))).collect();
            if kinds.contains(&PruneKind::Containers) {
                out.containers = Some(group(
                    pruned
                        .iter()
                        .map(|s| PruneItem {
                            id: short_id(s.id.as_deref().unwrap_or_default()),
                            name: Some(container_row(s).name),
                        })
                        .collect(),
                    None,
                ));
            }
            if kinds.contains(&PruneKind::Networks) {
                let used: HashSet<String> = remaining
                    .iter()
                    .filter_map(|s| s.network_settings.as_ref().and_then(|n| n.networks.as_ref()))
                    .flat_map(|n| n.keys().cloned())
                    .collect();
                let nets = self
                    .run(&c, t, c.api.list_networks(Some(qp::ListNetworksOptions { filters: Some(filters(None)) })))
                    .await?;
                let items = nets
                    .into_iter()
                    .filter(|n| {
                        let name = n.name.as_deref().unwrap_or_default();
                        !["bridge", "host", "none"].contains(&name)
                            && n.scope.as_deref() != Some("swarm")
                            && !n.ingress.unwrap_or(false)
                            && !used.contains(name)
                    })
                    .map(|n| PruneItem { id: short_id(n.id.as_deref().unwrap_or_default()), name: n.name })
                    .collect();
                out.networks = Some(group(items, None));
            }
            if kinds.contains(&PruneKind::Volumes) {
                let resp = self
                    .run(
                        &c,
                        t,
                        c.api.list_volumes(Some(qp::ListVolumesOptions {
                            filters: Some(filters(Some(("dangling", "true")))),
                        })),
                    )
                    .await?;
                let anonymous_only = api_at_least(&c.api_version, 1, 42);
                let used: HashSet<String> = remaining
                    .iter()
                    .filter_map(|s| s.mounts.as_ref())
                    .flatten()
                    .filter_map(|mp| mp.name.clone())
                    .collect();
                let items = resp
                    .volumes
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|v| !anonymous_only || v.labels.contains_key("com.docker.volume.anonymous"))
                    .filter(|v| !used.contains(&v.name))
                    .map(|v| PruneItem { id: v.name.clone(), name: Some(v.name) })
                    .collect();
                out.volumes = Some(group(items, None));
            }
            if kinds.contains(&PruneKind::Images) {
                let used: HashSet<String> = remaining.iter().filter_map(|s| s.image_id.clone()).collect();
                let dangling = if all_images { None } else { Some(("dangling", "true")) };
                let opts = qp::ListImagesOptions { all: false, filters: Some(filters(dangling)), ..Default::default() };
                let imgs = self.run(&c, t, c.api.list_images(Some(opts))).await?;
                let chosen: Vec<m::ImageSummary> = imgs.into_iter().filter(|i| !used.contains(&i.id)).collect();
                let size: i64 = chosen.iter().map(|i| i.size.max(0)).sum();
                let items = chosen
                    .into_iter()
                    .map(|i| PruneItem {
                        id: short_id(&i.id),
                        name: i.repo_tags.into_iter().find(|t| t != "<none>:<none>"),
                    })
                    .collect();
                out.images = Some(group(items, Some(size as u64)));
            }
        } else {
            if kinds.contains(&PruneKind::Containers) {
                let r = self
                    .run(
                        &c,
                        t,
                        c.api.prune_containers(Some(qp::PruneContainersOptions { filters: Some(filters(None)) })),
                    )
                    .await?;
                let items = r
                    .containers_deleted
                    .unwrap_or_default()
                    .into_iter()
                    .map(|id| PruneItem { id: short_id(&id), name: None })
                    .collect();
                out.containers = Some(group(items, r.space_reclaimed.map(|s| s.max(0) as u64)));
            }
            if kinds.contains(&PruneKind::Networks) {
                let r = self
                    .run(&c, t, c.api.prune_networks(Some(qp::PruneNetworksOptions { filters: Some(filters(None)) })))
                    .await?;
                let items = r
                    .networks_deleted
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| PruneItem { id: n.clone(), name: Some(n) })
                    .collect();
                out.networks = Some(group(items, None));
            }
            if kinds.contains(&PruneKind::Volumes) {
                let r = self
                    .run(&c, t, c.api.prune_volumes(Some(qp::PruneVolumesOptions { filters: Some(filters(None)) })))
                    .await?;
                let items = r
                    .volumes_deleted
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| PruneItem { id: n.clone(), name: Some(n) })
                    .collect();
                out.volumes = Some(group(items, r.space_reclaimed.map(|s| s.max(0) as u64)));
            }
            if kinds.contains(&PruneKind::Images) {
                let dangling = if all_images { "false" } else { "true" };
                let opts = qp::PruneImagesOptions { filters: Some(filters(Some(("dangling", dangling)))) };
                let r = self.run(&c, t, c.api.prune_images(Some(opts))).await?;
                let items = r
                    .images_deleted
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|d| d.deleted.map(|id| PruneItem { id: short_id(&id), name: None }))
                    .collect();
                out.images = Some(group(items, r.space_reclaimed.map(|s| s.max(0) as u64)));
            }
        }
        let part = |label: &str, g: &Option<PruneGroup>| g.as_ref().map(|g| format!("{} {label}", g.count));
        let parts: Vec<String> = [
            part("containers", &out.containers),
            part("networks", &out.networks),
            part("volumes", &out.volumes),
            part("images", &out.images),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.summary = format!("{}: {}", if dry_run { "would remove (dry run)" } else { "removed" }, parts.join(", "));
        Ok(out)
    }
}

fn api_at_least(v: &str, major: u32, minor: u32) -> bool {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare() {
        assert!(api_at_least("1.42", 1, 42) && api_at_least("1.47", 1, 42) && !api_at_least("1.41", 1, 42));
    }
}
