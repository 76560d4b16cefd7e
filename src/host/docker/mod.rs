//! Docker: the Engine API through `bollard`, one shared client that connects
//! lazily and reconnects after the daemon comes back. The MCP tools on top
//! of it are `tools::docker`.
//!
//! Every Docker call has a time limit (`timeout_secs`; pulls
//! `pull_timeout_secs`). A daemon that is down or a socket that is missing is
//! `unavailable` with a hint at once; a daemon that hangs is `unavailable`
//! after the limit, and for [`HUNG_BACKOFF`](limits::HUNG_BACKOFF) after that
//! calls fail fast so retries do not multiply the wait. Writes read the state
//! first, refuse conflicts (already running, not paused …) and return the
//! container's state after the action. Env values, labels, log lines, exec
//! output and command lines are redacted (env values entirely, unless the
//! caller may see them and asks `reveal_secrets`).
//!
//! Files: `config` (settings, endpoint), `client` (connection, time limits,
//! errors), `refs` and `page` (what callers name and page through),
//! `redact`, `types` (what the operations return), `convert` (bollard models
//! to those types), then one file per group of operations: `system`,
//! `containers`, `stats` (with `cpu` and `cgroup`), `lifecycle`, `logs`, `exec`, `images`, `pull`, `networks`,
//! `volumes`, `prune`.

mod cgroup;
mod client;
mod config;
mod containers;
mod convert;
pub mod cpu;
mod exec;
mod images;
mod lifecycle;
pub mod limits;
mod logs;
mod networks;
mod page;
mod prune;
mod pull;
mod redact;
mod refs;
mod stats;
mod system;
mod types;
mod volumes;

pub use client::Docker;
pub use config::{DEFAULT_SOCKET_CANDIDATES, DockerConfig, MAX_PULL_TIMEOUT_SECS, MAX_TIMEOUT_SECS};
pub use containers::ContainerListQuery;
pub use exec::ExecRequest;
pub use logs::LogsQuery;
pub use page::{Page, page_bounds};
pub use pull::PullProgressSink;
pub use types::*;
