//! `image_pull`: the daemon pulls from the registry; we follow its layer
//! progress, report it, and honour cancellation and the time limit.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::models as m;
use bollard::query_parameters as qp;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::client::Docker;
use super::limits::PROGRESS_INTERVAL;
use super::redact::redact_line;
use super::refs::{image_ref, split_reference};
use super::types::PullOutput;
use crate::mcp::contract::{ErrorCategory, ToolError};

/// Where a pull reports its progress (the tool layer sends them as MCP
/// progress notifications).
pub trait PullProgressSink: Sync {
    /// Bytes downloaded so far, of `total` when known, and a line for
    /// people; true when the update was delivered.
    fn notify(&self, value: f64, total: Option<f64>, message: String) -> impl Future<Output = bool> + Send;
}

/// Category for a failed pull, from the daemon's message.
fn pull_error(message: &str, image: &str) -> ToolError {
    let msg = redact_line(message.trim());
    let low = msg.to_ascii_lowercase();
    if ["not found", "manifest unknown", "does not exist", "pull access denied", "repository name not known"]
        .iter()
        .any(|k| low.contains(k))
    {
        ToolError::not_found(format!("cannot pull {image}: {msg}"), "check the image name and tag in the registry")
    } else if ["invalid reference", "invalid tag", "invalid platform", "unknown operating system"]
        .iter()
        .any(|k| low.contains(k))
    {
        ToolError::invalid_input(format!("cannot pull {image}: {msg}"), "fix the image reference or platform")
    } else if low.contains("unauthorized") || low.contains("authentication required") || low.contains("denied") {
        ToolError::permission_denied(
            format!("cannot pull {image}: {msg}"),
            "the registry needs credentials; log the daemon in (docker login) on the host",
        )
    } else {
        ToolError::unavailable(
            format!("cannot pull {image}: {msg}"),
            "the registry is not reachable from the Docker daemon (network, DNS, TLS); retry later",
        )
    }
}

/// Layer progress of a pull.
#[derive(Default)]
struct PullProgress {
    /// layer id → (downloaded bytes, total bytes, done)
    layers: BTreeMap<String, (u64, u64, bool)>,
    downloaded_layers: usize,
    digest: Option<String>,
    up_to_date: bool,
}

impl PullProgress {
    /// Applies one status line; true when the picture changed.
    fn apply(&mut self, info: &m::CreateImageInfo) -> bool {
        let status = info.status.as_deref().unwrap_or_default();
        if let Some(d) = status.strip_prefix("Digest: ") {
            self.digest = Some(d.trim().to_string());
        }
        if status.contains("Image is up to date") {
            self.up_to_date = true;
        }
        let Some(id) = info.id.as_deref().filter(|i| i.len() >= 12 && i.chars().all(|c| c.is_ascii_hexdigit())) else {
            return false;
        };
        let e = self.layers.entry(id.to_string()).or_insert((0, 0, false));
        let detail = info.progress_detail.as_ref();
        match status {
            "Downloading" => {
                let cur = detail.and_then(|d| d.current).unwrap_or(0).max(0) as u64;
                let tot = detail.and_then(|d| d.total).unwrap_or(0).max(0) as u64;
                e.0 = e.0.max(cur);
                e.1 = e.1.max(tot);
                true
            }
            "Download complete" | "Verifying Checksum" => {
                if e.1 > 0 {
                    e.0 = e.1;
                }
                if !e.2 && status == "Download complete" {
                    e.2 = true;
                    self.downloaded_layers += 1;
                }
                true
            }
            "Already exists" | "Pull complete" => {
                e.2 = true;
                if e.1 > 0 {
                    e.0 = e.1;
                }
                true
            }
            _ => false,
        }
    }

    fn bytes(&self) -> (u64, u64) {
        self.layers.values().fold((0, 0), |(c, t), l| (c + l.0, t + l.1))
    }
}

impl Docker {
    /// Pulls `image` (tag `latest` unless given) for `platform` (default:
    /// the daemon's), reporting progress to `progress` at most every
    /// [`PROGRESS_INTERVAL`]; stops when `cancel` fires or the time limit
    /// (`pull_timeout_secs`, within `spine_secs`) passes.
    pub async fn image_pull(
        &self,
        image: &str,
        platform: Option<&str>,
        cancel: &CancellationToken,
        progress: Option<&impl PullProgressSink>,
        spine_secs: u64,
    ) -> Result<PullOutput, ToolError> {
        let r = image_ref(image)?;
        if let Some(p) = platform
            && (p.is_empty()
                || p.len() > 64
                || !p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.')))
        {
            return Err(ToolError::invalid_input(
                format!("bad platform {p:?}"),
                "use os/arch[/variant], e.g. linux/arm64",
            ));
        }
        let (name, tag) = split_reference(&r);
        let full = if r.contains('@') { r.clone() } else { format!("{name}:{tag}") };
        let limit = Duration::from_secs(self.cfg().pull_timeout_secs).min(Self::budget(spine_secs));
        let c = self.conn().await?;
        let t0 = Instant::now();
        let opts = qp::CreateImageOptions {
            from_image: Some(name.clone()),
            tag: Some(tag.clone()),
            platform: platform.map(str::to_string).unwrap_or_default(),
            ..Default::default()
        };
        let mut stream = c.api.create_image(Some(opts), None, None);
        let mut prog = PullProgress::default();
        let mut sent: u32 = 0;
        let mut last_value = 0.0_f64;
        let mut last_sent = Instant::now() - PROGRESS_INTERVAL;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => {
                    return Err(ToolError::new(
                        ErrorCategory::Timeout,
                        format!("the pull of {full} was cancelled by the client"),
                        "the daemon stops the download when the request goes away",
                    ));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ToolError::new(
                        ErrorCategory::Timeout,
                        format!("the pull of {full} did not finish within {} s", limit.as_secs()),
                        "raise [docker] pull_timeout_secs (and [limits] tool_timeout_secs) or retry",
                    ));
                }
                n = stream.next() => n,
            };
            match next {
                None => break,
                Some(Err(BollardError::DockerResponseServerError { message, .. }))
                | Some(Err(BollardError::DockerStreamError { error: message })) => {
                    return Err(pull_error(&message, &full));
                }
                Some(Err(e)) => return Err(self.classify(&c, e)),
                Some(Ok(info)) => {
                    if let Some(msg) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
                        return Err(pull_error(&msg, &full));
                    }
                    let changed = prog.apply(&info);
                    if changed && let Some(sink) = progress {
                        let (cur, total) = prog.bytes();
                        let value = cur as f64;
                        if value > last_value && last_sent.elapsed() >= PROGRESS_INTERVAL {
                            let done = prog.layers.values().filter(|l| l.2).count();
                            let message = format!(
                                "{full}: {done}/{} layers, {:.1}/{:.1} MiB",
                                prog.layers.len(),
                                cur as f64 / 1048576.0,
                                total as f64 / 1048576.0
                            );
                            let total = (total >= cur && total > 0).then_some(total as f64);
                            if sink.notify(value, total, message).await {
                                sent += 1;
                            }
                            last_value = value;
                            last_sent = Instant::now();
                        }
                    }
                }
            }
        }
        let img = self.run(&c, self.timeout(), c.api.inspect_image(&full)).await.ok();
        let (bytes, _) = prog.bytes();
        let status = if prog.up_to_date { "up_to_date" } else { "downloaded" };
        let duration_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(PullOutput {
            summary: format!(
                "pulled {full}: {} ({} layers, {} downloaded, {:.1} MiB) in {} ms",
                status.replace('_', " "),
                prog.layers.len(),
                prog.downloaded_layers,
                bytes as f64 / 1048576.0,
                duration_ms
            ),
            image: full,
            status: status.into(),
            layers: prog.layers.len(),
            layers_downloaded: prog.downloaded_layers,
            bytes_downloaded: bytes,
            digest: prog.digest,
            progress_notifications: sent,
            duration_ms,
            id: img.as_ref().and_then(|i| i.id.clone()),
            tags: img.as_ref().and_then(|i| i.repo_tags.clone()).unwrap_or_default(),
            size_bytes: img.as_ref().and_then(|i| i.size),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_errors_are_categorised() {
        let cat = |m: &str| pull_error(m, "x").category;
        assert_eq!(cat("manifest for x:1 not found: manifest unknown"), ErrorCategory::NotFound);
        assert_eq!(
            cat("Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused"),
            ErrorCategory::Unavailable
        );
        assert_eq!(cat("invalid reference format"), ErrorCategory::InvalidInput);
        assert_eq!(cat("unauthorized: authentication required"), ErrorCategory::PermissionDenied);
    }

    #[test]
    fn pull_progress_counts_bytes() {
        let mut p = PullProgress::default();
        let ev = |id: &str, status: &str, cur: Option<i64>, tot: Option<i64>| m::CreateImageInfo {
            id: Some(id.into()),
            status: Some(status.into()),
            progress_detail: Some(m::ProgressDetail { current: cur, total: tot }),
            error_detail: None,
        };
        assert!(!p.apply(&ev("aaaaaaaaaaaa", "Pulling fs layer", None, None)));
        assert!(p.apply(&ev("aaaaaaaaaaaa", "Downloading", Some(10), Some(100))));
        assert!(p.apply(&ev("bbbbbbbbbbbb", "Already exists", None, None)));
        assert_eq!(p.bytes(), (10, 100));
        assert!(p.apply(&ev("aaaaaaaaaaaa", "Download complete", None, None)));
        assert_eq!((p.bytes(), p.downloaded_layers), ((100, 100), 1));
        p.apply(&m::CreateImageInfo { status: Some("Digest: sha256:abc".into()), ..Default::default() });
        assert_eq!(p.digest.as_deref(), Some("sha256:abc"));
    }
}
