//! `volume_list`.

use std::collections::HashMap;

use bollard::query_parameters as qp;

use super::client::Docker;
use super::page::{Page, Paged};
use super::redact::redact_labels;
use super::types::{VolumeListOutput, VolumeRow};
use crate::mcp::contract::ToolError;

impl Docker {
    /// Volumes whose name contains `name` (only unused ones with
    /// `dangling` true, only used ones with false), sorted by name, one page.
    pub async fn volume_list(
        &self,
        name: Option<&str>,
        dangling: Option<bool>,
        page: Page,
    ) -> Result<VolumeListOutput, ToolError> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(d) = dangling {
            filters.insert("dangling".into(), vec![d.to_string()]);
        }
        let c = self.conn().await?;
        let resp = self
            .run(&c, self.timeout(), c.api.list_volumes(Some(qp::ListVolumesOptions { filters: Some(filters) })))
            .await?;
        let mut rows: Vec<VolumeRow> = resp
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| name.is_none_or(|q| v.name.contains(q)))
            .map(|v| VolumeRow {
                labels: redact_labels(&v.labels, false),
                name: v.name,
                driver: v.driver,
                mountpoint: v.mountpoint,
                created: v.created_at,
                scope: v.scope.map(|s| s.to_string()),
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let Paged { rows: page, total, truncated, next_cursor } = page.cut(rows);
        Ok(VolumeListOutput {
            summary: format!("{} of {total} volumes", page.len()),
            volumes: page,
            total,
            truncated,
            next_cursor,
            warnings: resp.warnings.unwrap_or_default(),
        })
    }
}
