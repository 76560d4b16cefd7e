//! Limits of what one Docker call reads, keeps and waits for. The bounds a
//! caller picks within (log tail and bytes, exec time and output, stop
//! grace) are the tool layer's, in `tools::docker::inputs`.

use std::time::Duration;

/// Default and largest page of the list tools (containers, images,
/// networks, volumes).
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 500;
/// Longest log line kept; longer lines are cut and marked.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Most log bytes read from the daemon in one call.
pub const MAX_LOG_SCAN_BYTES: usize = 32 * 1024 * 1024;
/// Containers sampled by one `container_stats` call, and how many Engine
/// API calls (one-shot readings, or inspects for the init PIDs of the
/// cgroup path) run at once. A container with no kept reading is read a
/// second time `cpu::CPU_FIRST_WINDOW` later.
pub const MAX_STATS_CONTAINERS: usize = 100;
pub const STATS_CONCURRENCY: usize = 32;
/// Process rows returned by `container_top`.
pub const MAX_TOP_PROCESSES: usize = 500;
/// Longest `container_exec` argv; command lines shown are cut to it too.
pub const MAX_ARGV: usize = 256;
/// Grace period of stop/restart before SIGKILL by default (`container_remove`
/// allows a forced removal this much longer than one call).
pub const DEFAULT_STOP_SECS: u32 = 10;
/// Items listed per kind by `prune`.
pub const MAX_PRUNE_ITEMS: usize = 500;
/// Env entries, labels and mounts shown per container or image.
pub const MAX_ENTRIES: usize = 500;
/// Longest container name, image reference or label accepted.
pub const MAX_REF_LEN: usize = 255;
/// `/readyz` waits at most this long for the daemon.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// After a call timed out, calls fail fast for this long (the spine's
/// retries then do not multiply the wait).
pub const HUNG_BACKOFF: Duration = Duration::from_secs(2);
/// Least time between two progress notifications of one pull.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Seconds kept free inside the spine's per-tool time limit, so a long
/// Docker operation ends with our own error first.
pub const SPINE_MARGIN_SECS: u64 = 5;
/// bollard's own (response-head) timeout; every call gets a shorter one.
pub(super) const CLIENT_TIMEOUT_SECS: u64 = 3600;
