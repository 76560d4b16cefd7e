//! The resolver's promise as a checkable function, shared by the property
//! test (below) and the cargo-fuzz target (`fuzz/fuzz_targets/path.rs`):
//! whatever string a caller sends, anything the resolver opens lies inside
//! the root and is visible. A fixture tree full of traps (symlinks out, up,
//! into /proc, loops, hard links, a FIFO, denied files) gives the resolver
//! something to be wrong about.

use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::config::{DEFAULT_DENY, Mode, RootConfig};
use super::path::ToolPath;
use super::root::Root;

/// Builds the trap tree under `dir` (`dir/root` is the root, `dir/outside`
/// holds what must never be reached) and opens the root.
pub fn fixture(dir: &Path) -> Result<Root, String> {
    let (root, outside) = (dir.join("root"), dir.join("outside"));
    let io = |e: std::io::Error| e.to_string();
    for d in [root.join("sub/deeper"), outside.join("d")] {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    std::fs::write(outside.join("secret"), "outside").map_err(io)?;
    std::fs::write(root.join("a"), "a").map_err(io)?;
    std::fs::write(root.join("sub/b"), "b").map_err(io)?;
    std::fs::write(root.join("sub/.env"), "K=v").map_err(io)?;
    let links: [(&str, PathBuf); 9] = [
        ("abs_link", outside.join("secret")),
        ("rel_link", "../outside/secret".into()),
        ("dir_link", outside.clone()),
        ("up_link", "..".into()),
        ("proc_link", "/proc/self/root".into()),
        ("loop", "loop".into()),
        ("in_link", "sub/b".into()),
        ("env_link", "sub/.env".into()),
        ("sub/deeper/back", "../..".into()),
    ];
    for (name, target) in links {
        symlink(target, root.join(name)).map_err(io)?;
    }
    std::fs::hard_link(outside.join("secret"), root.join("hard")).map_err(io)?;
    let fifo_mode = rustix::fs::Mode::from_raw_mode(0o600);
    rustix::fs::mknodat(rustix::fs::CWD, root.join("fifo"), rustix::fs::FileType::Fifo, fifo_mode, 0)
        .map_err(|e| e.to_string())?;
    let cfg = RootConfig {
        name: "r".into(),
        path: root,
        mode: Mode::ReadWrite,
        include: vec![],
        exclude: vec![],
        deny: None,
        allow_hard_links: false,
        allow_recursive_delete: false,
    };
    let deny: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
    Root::open(&cfg, &deny)
}

/// Resolves `input` (a whole tool path, `r:...`) every way the tools do;
/// `Err` describes a broken promise.
pub fn check(root: &Root, real_root: &Path, input: &str) -> Result<(), String> {
    let Ok(p) = ToolPath::parse(input) else { return Ok(()) };
    if p.root != root.name {
        return Ok(());
    }
    let inside = |fd: i32, what: &str| -> Result<(), String> {
        let real = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|e| e.to_string())?;
        if real.starts_with(real_root) {
            Ok(())
        } else {
            Err(format!("{what} of {input:?} opened {} outside the root", real.display()))
        }
    };
    if let Ok(f) = root.open_file(&p.rel) {
        inside(f.file.as_raw_fd(), "open_file")?;
        if root.hidden(&f.resolved, false).is_some() {
            return Err(format!("open_file of {input:?} opened the hidden {}", f.resolved.as_str()));
        }
        if f.stat.st_nlink > 1 {
            return Err(format!("open_file of {input:?} opened a hard-linked file"));
        }
    }
    if let Ok(d) = root.open_dir(&p.rel) {
        inside(d.fd.as_raw_fd(), "open_dir")?;
    }
    if let Ok((d, name)) = root.open_parent(&p.rel) {
        inside(d.fd.as_raw_fd(), "open_parent")?;
        if name.contains('/') || name == ".." || name == "." || name.is_empty() {
            return Err(format!("open_parent of {input:?} gave the name {name:?}"));
        }
    }
    if let Ok((_, resolved)) = root.stat(&p.rel)
        && root.hidden(&resolved, true).is_some()
    {
        return Err(format!("stat of {input:?} reached the hidden {}", resolved.as_str()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PARTS: &[&str] = &[
        "a",
        "sub",
        "b",
        "deeper",
        "back",
        "..",
        ".",
        "",
        "abs_link",
        "rel_link",
        "dir_link",
        "up_link",
        "proc_link",
        "loop",
        "in_link",
        "env_link",
        "hard",
        "fifo",
        ".env",
        "outside",
        "secret",
        "self",
        "root",
        "etc",
        "\0",
        "é",
    ];

    fn tool_path() -> impl Strategy<Value = String> {
        (any::<bool>(), prop::collection::vec(prop::sample::select(PARTS), 0..8))
            .prop_map(|(abs, parts)| format!("r:{}{}", if abs { "/" } else { "" }, parts.join("/")))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Paths built from the trap tree's own names.
        #[test]
        fn resolver_never_leaves_the_root(input in tool_path()) {
            let tmp = FIXTURE.with(|f| f.clone());
            prop_assert_eq!(check(&tmp.0, &tmp.1, &input), Ok(()));
        }

        /// Any string at all: the parser never panics and what it accepts
        /// has only plain components.
        #[test]
        fn parser_accepts_only_plain_components(input in ".{0,64}") {
            if let Ok(p) = ToolPath::parse(&input) {
                for c in p.rel.components() {
                    prop_assert!(!c.is_empty() && c != "." && c != ".." && !c.contains('/') && !c.contains('\0'));
                }
            }
        }
    }

    type Shared = std::rc::Rc<(Root, PathBuf, tempfile::TempDir)>;

    thread_local! {
        static FIXTURE: Shared = {
            let tmp = tempfile::tempdir().expect("tmp");
            let root = fixture(tmp.path()).expect("fixture");
            let real = std::fs::canonicalize(tmp.path().join("root")).expect("real");
            std::rc::Rc::new((root, real, tmp))
        };
    }

    #[test]
    fn the_traps_are_armed() {
        // The property above is only worth something if the traps exist.
        let tmp = tempfile::tempdir().expect("tmp");
        let root = fixture(tmp.path()).expect("fixture");
        let real = std::fs::canonicalize(tmp.path().join("root")).expect("real");
        for p in ["r:a", "r:in_link", "r:sub/deeper/back/a"] {
            let path = ToolPath::parse(p).expect("p");
            assert!(root.open_file(&path.rel).is_ok(), "{p} should open");
            assert_eq!(check(&root, &real, p), Ok(()));
        }
        for p in ["r:abs_link", "r:rel_link", "r:dir_link/secret", "r:up_link/outside/secret", "r:hard", "r:env_link"] {
            let path = ToolPath::parse(p).expect("p");
            assert!(root.open_file(&path.rel).is_err(), "{p} should be refused");
        }
    }
}
