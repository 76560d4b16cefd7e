//! `network_list`.

use bollard::query_parameters as qp;

use super::client::Docker;
use super::convert::short_id;
use super::page::{Page, Paged};
use super::redact::redact_labels;
use super::types::{NetworkListOutput, NetworkRow};
use crate::mcp::contract::ToolError;

impl Docker {
    /// Networks whose name contains `name`, sorted by name, one page.
    pub async fn network_list(&self, name: Option<&str>, page: Page) -> Result<NetworkListOutput, ToolError> {
        let c = self.conn().await?;
        let list =
            self.run(&c, self.timeout(), c.api.list_networks(Some(qp::ListNetworksOptions { filters: None }))).await?;
        let mut rows: Vec<NetworkRow> = list
            .into_iter()
            .filter(|n| name.is_none_or(|q| n.name.as_deref().is_some_and(|name| name.contains(q))))
            .map(|n| {
                let cfgs = n.ipam.as_ref().and_then(|i| i.config.clone()).unwrap_or_default();
                NetworkRow {
                    id: short_id(n.id.as_deref().unwrap_or_default()),
                    name: n.name.clone().unwrap_or_default(),
                    driver: n.driver.clone(),
                    scope: n.scope.clone(),
                    internal: n.internal.unwrap_or(false),
                    attachable: n.attachable.unwrap_or(false),
                    subnets: cfgs.iter().filter_map(|c| c.subnet.clone()).collect(),
                    gateways: cfgs.iter().filter_map(|c| c.gateway.clone()).collect(),
                    created: n.created.clone(),
                    labels: redact_labels(&n.labels.clone().unwrap_or_default(), false),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let Paged { rows: page, total, truncated, next_cursor } = page.cut(rows);
        Ok(NetworkListOutput {
            summary: format!(
                "{} of {total} networks: {}",
                page.len(),
                page.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
            networks: page,
            total,
            truncated,
            next_cursor,
        })
    }
}
