//! Walking a root's subtree through its fds ([`Root::open_dir`] +
//! [`Root::entries`]: hidden entries never appear, symlinks are reported
//! and never followed), and `.gitignore` rules read through the root.
//!
//! `.gitignore` matching is ripgrep's (`ignore::gitignore`), fed with the
//! lines of each `.gitignore` file we opened with [`Root::open_file`] —
//! never the `ignore` crate's own walker, which opens string paths.

use std::collections::HashMap;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::path::RelPath;
use super::root::{Kind, Root};

/// Largest `.gitignore` read (bytes); a larger one is ignored whole.
pub const MAX_GITIGNORE_BYTES: u64 = 1 << 20;

/// Visits every visible entry below `start` (depth first, names sorted),
/// calling `f(path, kind)`; `f` returns `Break` to stop, and a directory
/// for which `descend` says false is not entered.
pub fn walk(
    root: &Root,
    start: &RelPath,
    mut descend: impl FnMut(&RelPath) -> bool,
    mut f: impl FnMut(&RelPath, Kind) -> ControlFlow<()>,
) {
    let mut stack = vec![start.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(d) = root.open_dir(&dir) else { continue };
        if d.resolved != dir {
            continue; // a symlink swapped in: never followed
        }
        let Ok((entries, _)) = root.entries(&d, usize::MAX) else { continue };
        let mut subdirs = Vec::new();
        for e in entries {
            let rel = dir.join(&e.name);
            if f(&rel, e.meta.kind).is_break() {
                return;
            }
            if e.meta.kind == Kind::Dir && descend(&rel) {
                subdirs.push(rel);
            }
        }
        // Reverse so the stack pops them in name order.
        stack.extend(subdirs.into_iter().rev());
    }
}

/// `.gitignore` rules of one root, loaded lazily per directory.
#[derive(Default)]
pub struct GitFilter {
    /// Directory → its `.gitignore` (None when it has none).
    files: HashMap<RelPath, Option<Gitignore>>,
    /// Directory → whether it (or a directory above it) is ignored.
    dirs: HashMap<RelPath, bool>,
}

impl GitFilter {
    pub fn new() -> GitFilter {
        GitFilter::default()
    }

    fn load(&mut self, root: &Root, dir: &RelPath) -> Option<&Gitignore> {
        if !self.files.contains_key(dir) {
            let gi = read_gitignore(root, dir);
            self.files.insert(dir.clone(), gi);
        }
        self.files.get(dir).and_then(Option::as_ref)
    }

    /// Whether `rel` is ignored: by a `.gitignore` in any directory above
    /// it, or because a directory above it is. `.git` directories are
    /// always ignored.
    pub fn ignored(&mut self, root: &Root, rel: &RelPath, is_dir: bool) -> bool {
        if let Some(parent) = rel.parent()
            && !parent.is_root()
            && self.dir_ignored(root, &parent)
        {
            return true;
        }
        self.matched_here(root, rel, is_dir)
    }

    fn dir_ignored(&mut self, root: &Root, dir: &RelPath) -> bool {
        if let Some(&v) = self.dirs.get(dir) {
            return v;
        }
        let v = self.ignored(root, dir, true);
        self.dirs.insert(dir.clone(), v);
        v
    }

    /// The nearest `.gitignore` with an opinion on `rel` decides.
    fn matched_here(&mut self, root: &Root, rel: &RelPath, is_dir: bool) -> bool {
        if is_dir && rel.file_name() == Some(".git") {
            return true;
        }
        let comps = rel.components();
        for depth in (0..comps.len()).rev() {
            let dir = RelPath::parse(&comps[..depth].join("/")).unwrap_or_default();
            let Some(gi) = self.load(root, &dir) else { continue };
            let below: PathBuf = comps[depth..].iter().collect();
            match gi.matched(&below, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }
}

/// The `.gitignore` of `dir`, read through the root (None when missing,
/// hidden, too large or unreadable).
fn read_gitignore(root: &Root, dir: &RelPath) -> Option<Gitignore> {
    let rel = dir.join(".gitignore");
    let mut f = root.open_file(&rel).ok()?;
    if f.stat.st_size < 0 || f.stat.st_size as u64 > MAX_GITIGNORE_BYTES {
        return None;
    }
    let mut text = String::new();
    f.file.by_ref().take(MAX_GITIGNORE_BYTES).read_to_string(&mut text).ok()?;
    let mut b = GitignoreBuilder::new(Path::new("."));
    for line in text.lines() {
        // A line that is not a valid glob is skipped, as git does.
        let _ = b.add_line(None, line);
    }
    b.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::files::config::{Mode, RootConfig};

    fn root(dir: &Path) -> Root {
        let cfg = RootConfig {
            name: "t".into(),
            path: dir.to_path_buf(),
            mode: Mode::Read,
            include: vec![],
            exclude: vec![],
            deny: None,
            allow_hard_links: false,
            allow_recursive_delete: false,
        };
        let deny: Vec<String> = super::super::config::DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
        Root::open(&cfg, &deny).expect("root")
    }

    fn p(s: &str) -> RelPath {
        RelPath::parse(s).expect("path")
    }

    #[test]
    fn walk_skips_hidden_and_never_follows_symlinks() {
        let t = tempfile::tempdir().expect("tmp");
        let outside = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(t.path().join("a/b")).expect("mkdir");
        std::fs::write(t.path().join("a/b/x.txt"), "x").expect("write");
        std::fs::write(t.path().join("a/.env"), "SECRET=1").expect("write");
        std::fs::write(outside.path().join("o.txt"), "o").expect("write");
        std::os::unix::fs::symlink(outside.path(), t.path().join("a/out")).expect("symlink");
        let r = root(t.path());
        let mut seen = Vec::new();
        walk(
            &r,
            &RelPath::default(),
            |_| true,
            |rel, k| {
                seen.push((rel.as_str(), k));
                ControlFlow::Continue(())
            },
        );
        assert_eq!(
            seen,
            [
                ("a".to_string(), Kind::Dir),
                ("a/b".to_string(), Kind::Dir),
                ("a/out".to_string(), Kind::Symlink),
                ("a/b/x.txt".to_string(), Kind::File)
            ]
        );
    }

    #[test]
    fn gitignore_nearest_file_decides_and_dirs_hide_subtrees() {
        let t = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(t.path().join("src/gen")).expect("mkdir");
        std::fs::create_dir_all(t.path().join("target/debug")).expect("mkdir");
        std::fs::write(t.path().join(".gitignore"), "target/\n*.log\n").expect("write");
        std::fs::write(t.path().join("src/.gitignore"), "gen\n!keep.log\n").expect("write");
        let r = root(t.path());
        let mut g = GitFilter::new();
        assert!(g.ignored(&r, &p("target"), true));
        assert!(g.ignored(&r, &p("target/debug/x"), false));
        assert!(g.ignored(&r, &p("a.log"), false));
        assert!(g.ignored(&r, &p("src/gen/x.rs"), false));
        assert!(!g.ignored(&r, &p("src/keep.log"), false), "whitelisted below");
        assert!(!g.ignored(&r, &p("src/main.rs"), false));
        assert!(g.ignored(&r, &p(".git"), true));
    }
}
