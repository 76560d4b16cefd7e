//! Local images: `image_list`, `image_inspect`, `image_remove` (pulls are
//! in `pull.rs`).

use std::collections::HashMap;

use bollard::query_parameters as qp;

use super::client::Docker;
use super::convert::{rfc3339, short_id};
use super::page::{Page, Paged};
use super::redact::{redact_argv, redact_env, redact_labels};
use super::refs::image_ref;
use super::types::{ImageInspectOutput, ImageListOutput, ImageRemoveOutput, ImageRow};
use crate::mcp::contract::{ErrorCategory, ToolError};

impl Docker {
    /// Local images (intermediate ones with `all`), only those with a tag
    /// containing `reference`, dangling or tagged ones only with `dangling`;
    /// sorted by first tag, one page.
    pub async fn image_list(
        &self,
        all: bool,
        reference: Option<&str>,
        dangling: Option<bool>,
        page: Page,
    ) -> Result<ImageListOutput, ToolError> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(d) = dangling {
            filters.insert("dangling".into(), vec![d.to_string()]);
        }
        let c = self.conn().await?;
        let opts = qp::ListImagesOptions { all, filters: Some(filters), ..Default::default() };
        let list = self.run(&c, self.timeout(), c.api.list_images(Some(opts))).await?;
        let mut rows: Vec<ImageRow> = list
            .into_iter()
            .filter(|i| reference.is_none_or(|r| i.repo_tags.iter().any(|t| t.contains(r))))
            .map(|i| ImageRow {
                id: short_id(&i.id),
                tags: i.repo_tags.into_iter().filter(|t| t != "<none>:<none>").collect(),
                digests: i.repo_digests.into_iter().filter(|t| t != "<none>@<none>").collect(),
                created: rfc3339(i.created),
                size_bytes: i.size,
                containers: Some(i.containers).filter(|n| *n >= 0),
            })
            .collect();
        rows.sort_by(|a, b| (a.tags.first(), &a.id).cmp(&(b.tags.first(), &b.id)));
        let Paged { rows: page, total, truncated, next_cursor } = page.cut(rows);
        let size: i64 = page.iter().map(|i| i.size_bytes).sum();
        Ok(ImageListOutput {
            summary: format!("{} of {total} images, {:.1} MiB on this page", page.len(), size as f64 / 1048576.0),
            images: page,
            total,
            truncated,
            next_cursor,
        })
    }

    /// One local image by reference or id; env values always redacted.
    pub async fn image_inspect(&self, image: &str) -> Result<ImageInspectOutput, ToolError> {
        let r = image_ref(image)?;
        let c = self.conn().await?;
        let i = self.run(&c, self.timeout(), c.api.inspect_image(&r)).await.map_err(|e| {
            if e.category == ErrorCategory::NotFound {
                ToolError::not_found(
                    format!("no image {r:?}"),
                    "list images with image_list, or pull it with image_pull",
                )
            } else {
                e
            }
        })?;
        let cfg = i.config.clone().unwrap_or_default();
        let (env, env_redacted) = redact_env(cfg.env.as_deref().unwrap_or_default(), false);
        let tags = i.repo_tags.clone().unwrap_or_default();
        let layers = i.root_fs.as_ref().and_then(|r| r.layers.as_ref()).map(Vec::len).unwrap_or(0);
        Ok(ImageInspectOutput {
            summary: format!(
                "{} ({}), {:.1} MiB, {layers} layers, {}/{}",
                tags.first().map(String::as_str).unwrap_or("<untagged>"),
                short_id(i.id.as_deref().unwrap_or_default()),
                i.size.unwrap_or(0) as f64 / 1048576.0,
                i.os.as_deref().unwrap_or("?"),
                i.architecture.as_deref().unwrap_or("?")
            ),
            id: i.id.clone().unwrap_or_default(),
            tags,
            digests: i.repo_digests.clone().unwrap_or_default(),
            created: i.created.clone(),
            size_bytes: i.size,
            architecture: i.architecture.clone(),
            os: i.os.clone(),
            author: i.author.clone().filter(|a| !a.is_empty()),
            env,
            env_redacted,
            entrypoint: redact_argv(cfg.entrypoint.as_deref().unwrap_or_default(), false),
            cmd: redact_argv(cfg.cmd.as_deref().unwrap_or_default(), false),
            working_dir: cfg.working_dir.clone().filter(|s| !s.is_empty()),
            user: cfg.user.clone().filter(|s| !s.is_empty()),
            exposed_ports: cfg.exposed_ports.clone().unwrap_or_default(),
            labels: redact_labels(&cfg.labels.clone().unwrap_or_default(), false),
            layers,
        })
    }

    /// Removes (or untags) an image; whether the reference still resolves
    /// afterwards.
    pub async fn image_remove(&self, image: &str, force: bool, noprune: bool) -> Result<ImageRemoveOutput, ToolError> {
        let r = image_ref(image)?;
        let c = self.conn().await?;
        let opts = qp::RemoveImageOptions { force, noprune, platforms: None };
        let items =
            self.run(&c, self.timeout(), c.api.remove_image(&r, Some(opts), None)).await.map_err(|e| {
                match e.category {
                    ErrorCategory::NotFound => {
                        ToolError::not_found(format!("no image {r:?}"), "list images with image_list")
                    }
                    ErrorCategory::Conflict => ToolError::new(
                        ErrorCategory::Conflict,
                        e.message,
                        "remove the containers using it first, or pass force=true (running containers still block it)",
                    ),
                    _ => e,
                }
            })?;
        let untagged: Vec<String> = items.iter().filter_map(|i| i.untagged.clone()).collect();
        let deleted: Vec<String> = items.iter().filter_map(|i| i.deleted.clone()).collect();
        let exists = self.run(&c, self.timeout(), c.api.inspect_image(&r)).await.is_ok();
        Ok(ImageRemoveOutput {
            summary: format!("{r}: {} untagged, {} layers/images deleted", untagged.len(), deleted.len()),
            untagged,
            deleted,
            exists,
        })
    }
}
