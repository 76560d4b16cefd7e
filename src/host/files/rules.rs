//! What inside a root is visible: the deny list, `include` and `exclude`.
//!
//! Patterns are globs (`globset`, the ripgrep crate; `*` stops at `/`).
//! As in `.gitignore`, a pattern without `/` matches a name at any depth
//! (`*.pem`), one with `/` matches the root-relative path (`**/.aws/config`,
//! `nginx/*.log`). Deny and exclude are checked on every directory above a
//! file too, so hiding a directory hides everything below it, including
//! through a symlink that points into it (the check runs on the resolved
//! path as well, see [`super::root`]). Deny patterns ignore case: `ID_RSA`
//! and `.ENV` are as secret as their lowercase twins.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::path::RelPath;

/// Names starting with this are tailops' own temporary files (atomic
/// writes, see [`super::write`]): hidden from every tool in every root,
/// refused as names to write, and swept at start-up.
pub const TEMP_PREFIX: &str = ".tailops-tmp-";

/// One list of patterns, split by what they match.
#[derive(Clone, Debug)]
struct Patterns {
    /// Patterns without `/`: matched against each name.
    names: GlobSet,
    /// Patterns with `/`: matched against the root-relative path.
    paths: GlobSet,
    empty: bool,
}

impl Patterns {
    fn new(patterns: &[String], case_insensitive: bool) -> Result<Patterns, String> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .case_insensitive(case_insensitive)
                .build()
                .map_err(|e| format!("pattern {p:?}: {e}"))?;
            if p.contains('/') {
                paths.add(glob)
            } else {
                names.add(glob)
            };
        }
        Ok(Patterns {
            names: names.build().map_err(|e| e.to_string())?,
            paths: paths.build().map_err(|e| e.to_string())?,
            empty: patterns.is_empty(),
        })
    }

    /// Whether `path` (whose last name is `name`) matches.
    fn matches(&self, path: &str, name: &str) -> bool {
        !self.empty && (self.names.is_match(name) || self.paths.is_match(path))
    }

    /// Whether `rel` or any directory above it matches.
    fn matches_any_prefix(&self, rel: &RelPath) -> bool {
        !self.empty && rel.prefixes().zip(rel.components()).any(|(path, name)| self.matches(&path, name))
    }
}

/// Why a path is hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hidden {
    /// The deny list (secrets).
    Denied,
    /// The root's `exclude`, or a file outside its `include`.
    Excluded,
}

/// A root's compiled visibility rules.
#[derive(Clone, Debug)]
pub struct Rules {
    deny: Patterns,
    include: Patterns,
    exclude: Patterns,
}

impl Rules {
    pub fn new(deny: &[String], include: &[String], exclude: &[String]) -> Result<Rules, String> {
        Ok(Rules {
            deny: Patterns::new(deny, true)?,
            include: Patterns::new(include, false)?,
            exclude: Patterns::new(exclude, false)?,
        })
    }

    /// Whether `rel` is hidden; `is_dir` says whether it names a directory
    /// (`include` applies to files only, so directories stay browsable).
    pub fn hidden(&self, rel: &RelPath, is_dir: bool) -> Option<Hidden> {
        if rel.components().iter().any(|c| c.starts_with(TEMP_PREFIX)) {
            return Some(Hidden::Excluded);
        }
        if self.deny.matches_any_prefix(rel) {
            return Some(Hidden::Denied);
        }
        if self.exclude.matches_any_prefix(rel) {
            return Some(Hidden::Excluded);
        }
        if !is_dir && !self.include.empty {
            let name = rel.file_name().unwrap_or_default();
            if !self.include.matches(&rel.as_str(), name) {
                return Some(Hidden::Excluded);
            }
        }
        None
    }

    /// Whether a directory's subtree may hold visible entries at all (a
    /// walk skips denied and excluded directories without reading them).
    pub fn dir_hidden(&self, rel: &RelPath) -> bool {
        self.hidden(rel, true).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::DEFAULT_DENY;
    use super::*;

    fn defaults() -> Rules {
        let deny: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
        Rules::new(&deny, &[], &[]).expect("rules")
    }

    fn p(s: &str) -> RelPath {
        RelPath::parse(s).expect("path")
    }

    #[test]
    fn default_deny_hides_secrets_at_any_depth_and_case() {
        let r = defaults();
        for secret in [
            "id_rsa",
            "home/u/.ssh/id_ed25519",
            "etc/shadow",
            "etc/gshadow-",
            "app/.env",
            "app/.env.production",
            "APP/.ENV",
            "certs/server.pem",
            "certs/Server.KEY",
            "home/u/.aws/credentials",
            "home/u/.kube/config",
            "home/u/.docker/config.json",
            "home/u/.config/gcloud/application_default_credentials.json",
            "var/lib/tailops/tailscaled.state",
            "home/u/.gnupg/private-keys-v1.d/x",
        ] {
            assert_eq!(r.hidden(&p(secret), false), Some(Hidden::Denied), "{secret} visible");
        }
        for fine in ["var/log/syslog", "app/env.txt", "app/README.md", "home/u/.docker/daemon.json", "keys.txt"] {
            assert_eq!(r.hidden(&p(fine), false), None, "{fine} hidden");
        }
    }

    #[test]
    fn include_applies_to_files_exclude_to_everything() {
        let r = Rules::new(&[], &["*.log".into()], &["old".into(), "nginx/*.gz".into()]).expect("rules");
        assert_eq!(r.hidden(&p("a/b/x.log"), false), None);
        assert_eq!(r.hidden(&p("a/b/x.txt"), false), Some(Hidden::Excluded));
        assert_eq!(r.hidden(&p("a/b"), true), None, "directories stay browsable");
        assert_eq!(r.hidden(&p("old/x.log"), false), Some(Hidden::Excluded), "excluded dir hides its subtree");
        assert_eq!(r.hidden(&p("nginx/a.gz"), false), Some(Hidden::Excluded));
        assert!(r.dir_hidden(&p("old")));
    }

    #[test]
    fn temporary_names_are_hidden_everywhere() {
        let r = Rules::new(&[], &[], &[]).expect("rules");
        assert_eq!(r.hidden(&p(".tailops-tmp-0123abcd"), false), Some(Hidden::Excluded));
        assert_eq!(r.hidden(&p("a/.tailops-tmp-x/b"), false), Some(Hidden::Excluded));
        assert_eq!(r.hidden(&p("a/.tailops-tm"), false), None);
    }

    #[test]
    fn empty_deny_overrides_defaults() {
        let r = Rules::new(&[], &[], &[]).expect("rules");
        assert_eq!(r.hidden(&p("certs/server.pem"), false), None);
    }
}
