//! `docker_info`: the engine, the host it runs on, and its disk usage.

use super::client::Docker;
use super::convert::disk_usage;
use super::types::{ContainerCounts, InfoOutput};
use crate::mcp::contract::ToolError;

impl Docker {
    /// The engine and its host, container and image counts, and
    /// `docker system df` (its error instead when the daemon cannot compute it).
    pub async fn info(&self) -> Result<InfoOutput, ToolError> {
        let c = self.conn().await?;
        let i = self.run(&c, self.timeout(), c.api.info()).await?;
        let (disk_usage, disk_usage_error) = match self.raw_get(&c, "/system/df").await {
            Ok(v) => (Some(disk_usage(&v)), None),
            Err(e) => (None, Some(e.message)),
        };
        let containers = ContainerCounts {
            total: i.containers.unwrap_or(0),
            running: i.containers_running.unwrap_or(0),
            paused: i.containers_paused.unwrap_or(0),
            stopped: i.containers_stopped.unwrap_or(0),
        };
        let summary = format!(
            "Docker {} (API {}) on {}: {} containers ({} running), {} images{}",
            c.engine_version,
            c.api_version,
            i.operating_system.as_deref().unwrap_or("?"),
            containers.total,
            containers.running,
            i.images.unwrap_or(0),
            disk_usage
                .as_ref()
                .map(|d| format!(
                    ", {:.1} MiB in images ({:.1} MiB reclaimable)",
                    d.images.size_bytes as f64 / 1048576.0,
                    d.images.reclaimable_bytes as f64 / 1048576.0
                ))
                .unwrap_or_default()
        );
        Ok(InfoOutput {
            summary,
            endpoint: c.endpoint.display(),
            engine_version: c.engine_version.clone(),
            api_version: c.api_version.clone(),
            os: i.operating_system,
            kernel: i.kernel_version,
            architecture: i.architecture,
            storage_driver: i.driver,
            cgroup_driver: i.cgroup_driver.map(|v| v.to_string()),
            cgroup_version: i.cgroup_version.map(|v| v.to_string()),
            logging_driver: i.logging_driver,
            docker_root_dir: i.docker_root_dir,
            ncpu: i.ncpu,
            mem_total_bytes: i.mem_total,
            containers,
            images: i.images.unwrap_or(0),
            warnings: i.warnings.unwrap_or_default(),
            disk_usage,
            disk_usage_error,
        })
    }
}
