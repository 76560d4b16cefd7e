//! Tool paths: `root:relative/path`, parsed into a root name and a list of
//! plain components — before anything touches the filesystem.
//!
//! The parser is the first of two walls, the kernel's `openat2` with
//! `RESOLVE_BENEATH` (in [`super::root`]) is the second and the one that
//! holds against symlinks. The parser refuses what can only be an attack or
//! a mistake: absolute paths, `..`, NUL, empty components beyond a trailing
//! slash, over-long paths and names. It does NOT normalise Unicode: names
//! are bytes to Linux, so `café` in NFC and NFD are two different files,
//! both inside the root.

use super::config::{MAX_NAME_BYTES, MAX_PATH_BYTES, valid_root_name};
use crate::mcp::contract::ToolError;

const FORMAT_HINT: &str = "write paths as ROOT:relative/path (e.g. logs:nginx/access.log); file_roots lists the roots";

/// A parsed tool path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolPath {
    pub root: String,
    pub rel: RelPath,
}

/// A path relative to a root: plain components only (no `.`, `..`, `/`,
/// NUL). Empty = the root itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(Vec<String>);

impl ToolPath {
    /// Parses `root:relative/path`. `root:` and `root:.` name the root.
    pub fn parse(s: &str) -> Result<ToolPath, ToolError> {
        let Some((root, rel)) = s.split_once(':') else {
            return Err(ToolError::invalid_input(format!("path {:?} names no root", clip(s)), FORMAT_HINT));
        };
        if !valid_root_name(root) {
            return Err(ToolError::invalid_input(format!("{:?} is not a root name", clip(root)), FORMAT_HINT));
        }
        Ok(ToolPath { root: root.to_string(), rel: RelPath::parse(rel)? })
    }

    /// `root:rel` as shown to callers.
    pub fn display(&self) -> String {
        format!("{}:{}", self.root, self.rel.as_str())
    }
}

impl RelPath {
    /// Parses a root-relative path (see the module doc for what is refused).
    pub fn parse(s: &str) -> Result<RelPath, ToolError> {
        if s.len() > MAX_PATH_BYTES {
            return Err(ToolError::invalid_input(
                format!("path is {} bytes long", s.len()),
                format!("paths are at most {MAX_PATH_BYTES} bytes"),
            ));
        }
        if s.contains('\0') {
            return Err(ToolError::invalid_input("path contains a NUL byte", "remove the NUL byte"));
        }
        if s.starts_with('/') {
            return Err(ToolError::invalid_input(
                "absolute paths are not accepted",
                "paths are relative to their root: ROOT:relative/path",
            ));
        }
        let mut parts = Vec::new();
        let segments: Vec<&str> = s.split('/').collect();
        let last = segments.len().saturating_sub(1);
        for (i, seg) in segments.into_iter().enumerate() {
            match seg {
                // A trailing slash ("dir/") and "." are harmless spellings.
                "" if i == last => {}
                "." => {}
                "" => {
                    return Err(ToolError::invalid_input(
                        "path has an empty component (\"//\")",
                        "separate names with a single /",
                    ));
                }
                ".." => {
                    return Err(ToolError::invalid_input(
                        "\"..\" is not accepted in paths",
                        "name the file from its root, without ..",
                    ));
                }
                name if name.len() > MAX_NAME_BYTES => {
                    return Err(ToolError::invalid_input(
                        format!("a name in the path is {} bytes long", name.len()),
                        format!("names are at most {MAX_NAME_BYTES} bytes"),
                    ));
                }
                name => parts.push(name.to_string()),
            }
        }
        Ok(RelPath(parts))
    }

    /// The root itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The last component (None for the root).
    pub fn file_name(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }

    /// The parent (None for the root).
    pub fn parent(&self) -> Option<RelPath> {
        (!self.0.is_empty()).then(|| RelPath(self.0[..self.0.len() - 1].to_vec()))
    }

    /// This path with `name` appended (a name from a directory listing:
    /// never `.`/`..`, never containing `/` or NUL).
    pub fn join(&self, name: &str) -> RelPath {
        let mut v = self.0.clone();
        v.push(name.to_string());
        RelPath(v)
    }

    /// `a/b/c`; `.` for the root (what openat2 is given).
    pub fn as_str(&self) -> String {
        if self.0.is_empty() { ".".to_string() } else { self.0.join("/") }
    }

    /// Every prefix, shortest first: `a`, `a/b`, `a/b/c` (what the deny
    /// list is matched against, so a denied directory hides its subtree).
    pub fn prefixes(&self) -> impl Iterator<Item = String> + '_ {
        (1..=self.0.len()).map(|n| self.0[..n].join("/"))
    }
}

/// At most 64 characters of caller input, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::contract::ErrorCategory;

    fn rel(s: &str) -> Vec<String> {
        ToolPath::parse(s).expect(s).rel.components().to_vec()
    }

    #[test]
    fn parses_root_and_components() {
        assert_eq!(ToolPath::parse("logs:a/b.txt").expect("p").root, "logs");
        assert_eq!(rel("logs:a/b.txt"), ["a", "b.txt"]);
        assert!(rel("logs:").is_empty());
        assert!(rel("logs:.").is_empty());
        assert_eq!(rel("logs:./a/./b/"), ["a", "b"]);
        // A colon after the first one is part of the name.
        assert_eq!(rel("logs:a:b"), ["a:b"]);
        // Names are bytes: look-alikes and NFD stay what they are.
        assert_eq!(rel("logs:cafe\u{301}"), ["cafe\u{301}"]);
        assert_eq!(rel("logs:\u{2024}\u{2024}"), ["\u{2024}\u{2024}"]);
    }

    #[test]
    fn refuses_escapes_and_garbage() {
        for bad in [
            "a/b",
            ":a",
            "LOGS:a",
            "logs:/etc/passwd",
            "logs:..",
            "logs:a/../../b",
            "logs:a/..",
            "logs:a//b",
            "logs:a\0b",
            "logs:../",
        ] {
            let e = ToolPath::parse(bad).expect_err(bad);
            assert_eq!(e.category, ErrorCategory::InvalidInput, "{bad:?}");
            assert!(!e.hint.is_empty());
        }
    }

    #[test]
    fn length_limits_at_their_edge() {
        let name = |n: usize| "n".repeat(n);
        assert!(RelPath::parse(&name(MAX_NAME_BYTES)).is_ok());
        assert!(RelPath::parse(&name(MAX_NAME_BYTES + 1)).is_err());
        let long = |n: usize| {
            let mut s = "a/".repeat(n / 2 + 1);
            s.truncate(n);
            s
        };
        assert!(RelPath::parse(&long(MAX_PATH_BYTES)).is_ok());
        assert!(RelPath::parse(&long(MAX_PATH_BYTES + 1)).is_err());
    }

    #[test]
    fn prefixes_and_parents() {
        let p = RelPath::parse("a/b/c").expect("p");
        assert_eq!(p.prefixes().collect::<Vec<_>>(), ["a", "a/b", "a/b/c"]);
        assert_eq!(p.parent().expect("parent").as_str(), "a/b");
        assert_eq!(RelPath::default().as_str(), ".");
        assert_eq!(RelPath::default().parent(), None);
    }
}
