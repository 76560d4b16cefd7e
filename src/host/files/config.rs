//! `[files]` settings: the roots file tools may touch, and what inside them
//! stays hidden.
//!
//! ```toml
//! [[files.roots]]
//! name = "logs"              # tool paths are "logs:relative/path"
//! path = "/var/log"
//! mode = "read"              # or "read_write"
//! include = ["**/*.log"]     # optional: only matching files are visible
//! exclude = ["**/*.gz"]      # optional: matching files and dirs are hidden
//! ```
//!
//! No root configured → no file tools are offered at all (deny by default).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Names and paths never shown or opened unless a root overrides `deny`:
/// private keys, password hashes, dotenv files, cloud/kube/docker
/// credentials, and Tailscale node state. Glob syntax (`globset`), matched
/// case-insensitively against the root-relative path of the file AND of
/// every directory above it, so a denied directory hides its whole subtree.
pub const DEFAULT_DENY: &[&str] = &[
    // Private keys and key stores.
    "**/id_*",
    "**/*.pem",
    "**/*.key",
    "**/*.p12",
    "**/*.pfx",
    "**/*.jks",
    "**/*.keystore",
    "**/ssh_host_*",
    "**/.gnupg",
    // Password hashes.
    "**/shadow",
    "**/shadow-",
    "**/gshadow",
    "**/gshadow-",
    "**/master.passwd",
    // dotenv files and other credential stores.
    "**/.env*",
    "**/.netrc",
    "**/.pgpass",
    "**/.git-credentials",
    "**/.htpasswd",
    // Cloud, Kubernetes and Docker credentials.
    "**/.aws",
    "**/.azure",
    "**/.config/gcloud",
    "**/.kube",
    "**/kubeconfig",
    "**/.docker/config.json",
    // Tailscale node keys (ours and tailscaled's).
    "**/tailscaled.state",
];

/// Default of `[files] index_max_entries`: most entries one root's name
/// index holds.
pub const DEFAULT_INDEX_MAX_ENTRIES: usize = 1_000_000;

/// Longest tool path accepted, bytes (Linux PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single path component, bytes (Linux NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;
/// Most roots in one config.
pub const MAX_ROOTS: usize = 64;
/// Most glob patterns in one include/exclude/deny list.
pub const MAX_PATTERNS: usize = 256;

/// What a root allows.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Browse, read, tail, hash and search.
    #[default]
    Read,
    /// Also write, create directories, move and delete (`files:write`).
    ReadWrite,
}

/// `[files]`.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    pub roots: Vec<RootConfig>,
    /// The deny list of every root that does not set its own (default
    /// [`DEFAULT_DENY`]).
    pub deny: Vec<String>,
    /// Most entries a root's in-memory name index holds (default
    /// 1,000,000); a larger root is not indexed and `file_search` walks it.
    /// 0 turns indexing off.
    pub index_max_entries: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            deny: DEFAULT_DENY.iter().map(|s| s.to_string()).collect(),
            index_max_entries: DEFAULT_INDEX_MAX_ENTRIES,
        }
    }
}

/// `[[files.roots]]`.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RootConfig {
    /// Name used in tool paths (`name:relative/path`): 1-32 of `a-z 0-9 _ -`.
    pub name: String,
    /// Absolute path of an existing directory, opened once at start-up.
    pub path: PathBuf,
    #[serde(default)]
    pub mode: Mode,
    /// When not empty, only files matching one of these globs are visible
    /// (directories stay browsable).
    #[serde(default)]
    pub include: Vec<String>,
    /// Files and directories matching any of these are hidden.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Replaces `[files] deny` for this root (e.g. `[]` for a root that
    /// deliberately shares certificates). Unset: `[files] deny`.
    #[serde(default)]
    pub deny: Option<Vec<String>>,
    /// Serve regular files with more than one hard link. Off by default: a
    /// hard link inside a root to a file outside it (made by anyone who can
    /// write into the root) would otherwise bypass the root.
    #[serde(default)]
    pub allow_hard_links: bool,
    /// `file_delete` may remove non-empty directories (`recursive`); only
    /// in `read_write` roots. Off by default.
    #[serde(default)]
    pub allow_recursive_delete: bool,
}

impl FilesConfig {
    /// Checks names, paths and patterns (opening the roots happens at
    /// start-up, in [`super::Files::open`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.roots.len() > MAX_ROOTS {
            return Err(format!("{} roots configured; at most {MAX_ROOTS}", self.roots.len()));
        }
        check_patterns("deny", &self.deny)?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.roots.iter().enumerate() {
            let at = format!("roots[{i}]");
            if !valid_root_name(&r.name) {
                return Err(format!("{at}.name {:?}: use 1-32 of a-z, 0-9, _ and -", r.name));
            }
            if !seen.insert(r.name.as_str()) {
                return Err(format!("{at}.name {:?} is used by two roots", r.name));
            }
            if !r.path.is_absolute() {
                return Err(format!("{at}.path {:?} must be absolute", r.path));
            }
            if r.allow_recursive_delete && r.mode != Mode::ReadWrite {
                return Err(format!("{at}.allow_recursive_delete needs mode = \"read_write\""));
            }
            check_patterns(&format!("{at}.include"), &r.include)?;
            check_patterns(&format!("{at}.exclude"), &r.exclude)?;
            if let Some(d) = &r.deny {
                check_patterns(&format!("{at}.deny"), d)?;
            }
        }
        Ok(())
    }
}

/// Root names: short, lowercase, and free of the `:` that ends them.
pub fn valid_root_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn check_patterns(key: &str, patterns: &[String]) -> Result<(), String> {
    if patterns.len() > MAX_PATTERNS {
        return Err(format!("{key}: {} patterns; at most {MAX_PATTERNS}", patterns.len()));
    }
    for p in patterns {
        globset::Glob::new(p).map_err(|e| format!("{key}: pattern {p:?}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> RootConfig {
        RootConfig {
            name: name.into(),
            path: "/tmp".into(),
            mode: Mode::Read,
            include: vec![],
            exclude: vec![],
            deny: None,
            allow_hard_links: false,
            allow_recursive_delete: false,
        }
    }

    #[test]
    fn validates_names_paths_and_patterns() {
        let ok = FilesConfig { roots: vec![root("logs"), root("www-1")], ..Default::default() };
        assert_eq!(ok.validate(), Ok(()));
        for bad in ["", "Logs", "a:b", "a/b", &"x".repeat(33)] {
            let c = FilesConfig { roots: vec![root(bad)], ..Default::default() };
            assert!(c.validate().is_err(), "{bad:?} accepted");
        }
        let dup = FilesConfig { roots: vec![root("a"), root("a")], ..Default::default() };
        assert!(dup.validate().unwrap_err().contains("two roots"));
        let mut rel = root("a");
        rel.path = "var/log".into();
        assert!(FilesConfig { roots: vec![rel], ..Default::default() }.validate().unwrap_err().contains("absolute"));
        let mut pat = root("a");
        pat.exclude = vec!["a[".into()];
        assert!(FilesConfig { roots: vec![pat], ..Default::default() }.validate().unwrap_err().contains("exclude"));
        let mut rd = root("a");
        rd.allow_recursive_delete = true;
        assert!(FilesConfig { roots: vec![rd], ..Default::default() }.validate().unwrap_err().contains("read_write"));
    }

    #[test]
    fn limits_at_their_edge() {
        let many =
            |n: usize| FilesConfig { roots: (0..n).map(|i| root(&format!("r{i}"))).collect(), ..Default::default() };
        assert!(many(MAX_ROOTS).validate().is_ok());
        assert!(many(MAX_ROOTS + 1).validate().is_err());
        let pats = |n: usize| FilesConfig { deny: vec!["*.x".into(); n], ..Default::default() };
        assert!(pats(MAX_PATTERNS).validate().is_ok());
        assert!(pats(MAX_PATTERNS + 1).validate().is_err());
    }

    #[test]
    fn default_deny_compiles() {
        assert_eq!(FilesConfig::default().validate(), Ok(()));
    }
}
