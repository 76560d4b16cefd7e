//! Files inside configured roots. No root configured → no file tools at
//! all. Every path is `root:relative/path` ([`path`]), every open goes
//! through the root's directory fd with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` ([`root`]), and the deny/include/exclude rules
//! ([`rules`]) hide secrets on the requested and on the resolved path.
//!
//! A caller's grant can narrow the roots it sees (`{"files": {"roots":
//! ["logs"]}}`, see `auth::policy`); [`Files::root_for`] applies that.

pub mod config;
pub mod content;
pub mod index;
#[doc(hidden)]
pub mod invariant;
pub mod path;
pub mod root;
pub mod rules;
pub mod tail;
pub mod walk;
pub mod watch;
pub mod write;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use config::{FilesConfig, Mode, RootConfig};
pub use index::{Index, IndexInfo, IndexState};
pub use path::{RelPath, ToolPath};
pub use root::{Kind, Meta, Root};

use crate::mcp::contract::ToolError;

/// The configured roots, opened at start-up.
#[derive(Debug, Default)]
pub struct Files {
    roots: Vec<Arc<Root>>,
    /// Each opened root's name index (same order as `roots`).
    indexes: Vec<Arc<Index>>,
    /// Roots that could not be opened at start-up, with the reason.
    broken: Vec<(String, String)>,
    /// inotify for resource subscriptions, started by the first one.
    watcher: std::sync::OnceLock<Result<watch::Watcher, String>>,
}

impl Files {
    /// Opens every configured root; one that fails is reported (logs,
    /// `/readyz`, `unavailable` from its tools), the others work.
    pub fn open(cfg: &FilesConfig) -> Files {
        let mut f = Files::default();
        for rc in &cfg.roots {
            match Root::open(rc, &cfg.deny) {
                Ok(r) => {
                    if r.mode == Mode::ReadWrite {
                        // Temporary files a crash left behind (see write.rs).
                        let swept = write::sweep_temps(&r);
                        if swept > 0 {
                            tracing::info!(root = %rc.name, swept, "removed leftover temporary files");
                        }
                    }
                    let r = Arc::new(r);
                    f.indexes.push(Index::start(r.clone(), cfg.index_max_entries));
                    f.roots.push(r);
                }
                Err(e) => {
                    tracing::warn!(root = %rc.name, error = %e, "file root unavailable");
                    f.broken.push((rc.name.clone(), e));
                }
            }
        }
        f
    }

    /// Whether any root is configured (opened or not).
    pub fn configured(&self) -> bool {
        !self.roots.is_empty() || !self.broken.is_empty()
    }

    /// The opened roots `allowed` lets a caller see (None = all).
    pub fn visible<'a>(&'a self, allowed: Option<&'a BTreeSet<String>>) -> impl Iterator<Item = &'a Arc<Root>> + 'a {
        self.roots.iter().filter(move |r| allowed.is_none_or(|a| a.contains(&r.name)))
    }

    /// The root named `name`, if the caller may see it. A root the caller
    /// may not see is reported as missing, like one that does not exist
    /// (so the list of roots does not leak).
    pub fn root_for(&self, name: &str, allowed: Option<&BTreeSet<String>>) -> Result<Arc<Root>, ToolError> {
        if allowed.is_some_and(|a| !a.contains(name)) {
            return Err(no_root(name));
        }
        if let Some(r) = self.roots.iter().find(|r| r.name == name) {
            return Ok(r.clone());
        }
        if let Some((_, why)) = self.broken.iter().find(|(n, _)| n == name) {
            tracing::debug!(root = %name, %why, "call to a broken root");
            return Err(ToolError::unavailable(
                format!("root {name} could not be opened at start-up"),
                "an operator can see why in /readyz and the server log",
            ));
        }
        Err(no_root(name))
    }

    /// The change watcher (started on first use).
    pub fn watcher(&self) -> Result<&watch::Watcher, ToolError> {
        match self.watcher.get_or_init(watch::Watcher::start) {
            Ok(w) => Ok(w),
            Err(e) => Err(ToolError::unavailable(format!("file change watches are unavailable: {e}"), "")),
        }
    }

    /// The name index of the opened root `name`.
    pub fn index(&self, name: &str) -> Option<Arc<Index>> {
        self.roots.iter().position(|r| r.name == name).and_then(|i| self.indexes.get(i).cloned())
    }

    /// `/readyz` entry: each root's state.
    pub fn health(&self) -> serde_json::Value {
        if !self.configured() {
            return serde_json::json!({"state": "disabled", "reason": "no [[files.roots]] configured"});
        }
        let mut roots = serde_json::Map::new();
        for (i, r) in self.roots.iter().enumerate() {
            let index = self.indexes.get(i).map(|x| x.info());
            let state = match r.check_in_place() {
                Ok(()) => serde_json::json!({"state": "ok", "mode": r.mode, "index": index}),
                Err(e) => serde_json::json!({"state": "unavailable", "reason": e.message}),
            };
            roots.insert(r.name.clone(), state);
        }
        for (name, why) in &self.broken {
            roots.insert(name.clone(), serde_json::json!({"state": "unavailable", "reason": why}));
        }
        let ok = self.broken.is_empty() && self.roots.iter().all(|r| r.check_in_place().is_ok());
        let subscriptions = match self.watcher.get() {
            Some(Ok(w)) => w.count(),
            _ => 0,
        };
        serde_json::json!({"state": if ok { "ok" } else { "degraded" }, "roots": roots, "subscriptions": subscriptions})
    }
}

fn no_root(name: &str) -> ToolError {
    ToolError::not_found(format!("no root named {name}"), "file_roots lists the roots you can use")
}
