//! Writes, moves and deletes against real files, symlinks and hard links
//! in a temp dir.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::*;
use crate::host::files::config::{DEFAULT_DENY, Mode, RootConfig};

struct Fixture {
    tmp: tempfile::TempDir,
    root: Root,
}

impl Fixture {
    fn inside(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }
}

fn open(path: &Path, mode: Mode, recursive: bool) -> Root {
    let cfg = RootConfig {
        name: "w".into(),
        path: path.to_path_buf(),
        mode,
        include: vec![],
        exclude: vec![],
        deny: None,
        allow_hard_links: false,
        allow_recursive_delete: recursive,
    };
    let deny: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
    Root::open(&cfg, &deny).expect("open root")
}

fn fixture_with(mode: Mode, recursive: bool) -> Fixture {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(tmp.path().join("root/sub")).expect("mkdir");
    std::fs::create_dir_all(tmp.path().join("outside")).expect("mkdir");
    std::fs::write(tmp.path().join("root/a.txt"), "old").expect("write");
    let root = open(&tmp.path().join("root"), mode, recursive);
    Fixture { tmp, root }
}

fn fixture() -> Fixture {
    fixture_with(Mode::ReadWrite, false)
}

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).expect("rel")
}

fn cat(e: ToolError) -> ErrorCategory {
    e.category
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).expect("ls").map(|e| e.expect("e").file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn modes_parse_at_their_edges() {
    assert_eq!(parse_mode("0644").expect("m"), 0o644);
    assert_eq!(parse_mode("755").expect("m"), 0o755);
    assert_eq!(parse_mode("0777").expect("m"), 0o777);
    for bad in ["1777", "4755", "2755", "0800", "64", "00644", "", "rwx", "+644", "0x1f"] {
        assert_eq!(cat(parse_mode(bad).expect_err(bad)), ErrorCategory::InvalidInput, "{bad}");
    }
}

#[test]
fn create_overwrite_append_and_hashes() {
    let f = fixture();
    let w = write_file(&f.root, &rel("new.txt"), b"hi", WriteMode::Create, None, None).expect("create");
    assert_eq!((w.created, w.old_sha256.clone(), w.new_sha256.clone()), (true, None, Some(sha256_hex(b"hi"))));
    assert_eq!(std::fs::metadata(f.inside().join("new.txt")).expect("md").permissions().mode() & 0o7777, 0o644);
    let e = write_file(&f.root, &rel("new.txt"), b"x", WriteMode::Create, None, None).expect_err("exists");
    assert_eq!(cat(e), ErrorCategory::Conflict);
    std::fs::set_permissions(f.inside().join("a.txt"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let w = write_file(&f.root, &rel("a.txt"), b"new", WriteMode::Overwrite, None, None).expect("overwrite");
    assert_eq!(w.old_sha256, Some(sha256_hex(b"old")));
    assert_eq!(w.mode, 0o640, "overwrite keeps the old mode bits");
    assert_eq!(std::fs::read(f.inside().join("a.txt")).expect("read"), b"new");
    let w = write_file(&f.root, &rel("a.txt"), b"+", WriteMode::Append, None, None).expect("append");
    assert_eq!(w.new_sha256, Some(sha256_hex(b"new+")));
    assert_eq!(std::fs::read(f.inside().join("a.txt")).expect("read"), b"new+");
    // No temporary file left behind.
    assert_eq!(names(&f.inside()), ["a.txt", "new.txt", "sub"]);
}

#[test]
fn compare_and_swap() {
    let f = fixture();
    let wrong = sha256_hex(b"other");
    let e = write_file(&f.root, &rel("a.txt"), b"x", WriteMode::Overwrite, None, Some(&wrong)).expect_err("cas");
    assert_eq!(e.category, ErrorCategory::Conflict);
    assert!(e.message.contains(&sha256_hex(b"old")), "{}", e.message);
    assert_eq!(std::fs::read(f.inside().join("a.txt")).expect("read"), b"old");
    let right = sha256_hex(b"old").to_uppercase();
    write_file(&f.root, &rel("a.txt"), b"x", WriteMode::Overwrite, None, Some(&right)).expect("cas ok");
    let e = write_file(&f.root, &rel("missing"), b"x", WriteMode::Overwrite, None, Some(&wrong)).expect_err("none");
    assert_eq!(e.category, ErrorCategory::Conflict);
    assert!(!f.inside().join("missing").exists());
    let e = write_file(&f.root, &rel("n"), b"x", WriteMode::Create, None, Some(&wrong)).expect_err("create+cas");
    assert_eq!(e.category, ErrorCategory::InvalidInput);
    let e = write_file(&f.root, &rel("a.txt"), b"x", WriteMode::Overwrite, None, Some("abc")).expect_err("short");
    assert_eq!(e.category, ErrorCategory::InvalidInput);
}

#[test]
fn size_cap_at_its_edge() {
    let f = fixture();
    let at = vec![b'a'; MAX_WRITE_BYTES];
    write_file(&f.root, &rel("big"), &at, WriteMode::Create, None, None).expect("at the cap");
    let over = vec![b'a'; MAX_WRITE_BYTES + 1];
    let e = write_file(&f.root, &rel("big2"), &over, WriteMode::Create, None, None).expect_err("over");
    assert_eq!(e.category, ErrorCategory::InvalidInput);
    assert!(!f.inside().join("big2").exists());
}

#[test]
fn refuses_non_regular_linked_and_reserved_targets() {
    let f = fixture();
    symlink(f.outside().join("t"), f.inside().join("out-link")).expect("symlink");
    symlink("a.txt", f.inside().join("in-link")).expect("symlink");
    std::fs::hard_link(f.inside().join("a.txt"), f.inside().join("hard")).expect("link");
    for (p, want) in [
        ("out-link", ErrorCategory::InvalidInput),
        ("in-link", ErrorCategory::InvalidInput),
        ("hard", ErrorCategory::PermissionDenied),
        ("a.txt", ErrorCategory::PermissionDenied),
        ("sub", ErrorCategory::InvalidInput),
        (".tailops-tmp-abc", ErrorCategory::InvalidInput),
    ] {
        for how in [WriteMode::Overwrite, WriteMode::Append] {
            let e = write_file(&f.root, &rel(p), b"x", how, None, None).expect_err(p);
            assert_eq!(e.category, want, "{p} {how:?}: {e:?}");
        }
    }
    assert!(!f.outside().join("t").exists(), "nothing created through the symlink");
    assert_eq!(std::fs::read(f.inside().join("a.txt")).expect("read"), b"old");
}

#[test]
fn symlinked_parent_leading_out_is_refused_and_nothing_is_created() {
    let f = fixture();
    symlink(f.outside(), f.inside().join("escape")).expect("symlink");
    for how in [WriteMode::Create, WriteMode::Overwrite, WriteMode::Append] {
        let e = write_file(&f.root, &rel("escape/x"), b"x", how, None, None).expect_err("escape");
        assert_eq!(e.category, ErrorCategory::PermissionDenied, "{how:?}");
    }
    assert_eq!(cat(mkdir(&f.root, &rel("escape/d"), false, None).expect_err("mkdir")), ErrorCategory::PermissionDenied);
    assert_eq!(
        cat(mkdir(&f.root, &rel("escape/d/e"), true, None).expect_err("mkdir")),
        ErrorCategory::PermissionDenied
    );
    let e = rename(&f.root, &rel("a.txt"), &rel("escape/a.txt"), false).expect_err("move out");
    assert_eq!(e.category, ErrorCategory::PermissionDenied);
    assert!(names(&f.outside()).is_empty(), "nothing created outside: {:?}", names(&f.outside()));
    // Deleting the symlink removes the link, not its target.
    delete(&f.root, &rel("escape"), false).expect("delete link");
    assert!(f.outside().exists());
}

#[test]
fn read_only_root_refuses_every_change() {
    let f = fixture_with(Mode::Read, false);
    let e = write_file(&f.root, &rel("n"), b"x", WriteMode::Create, None, None).expect_err("ro");
    assert_eq!(e.category, ErrorCategory::PermissionDenied);
    assert_eq!(cat(mkdir(&f.root, &rel("d"), true, None).expect_err("ro")), ErrorCategory::PermissionDenied);
    assert_eq!(cat(rename(&f.root, &rel("a.txt"), &rel("b"), false).expect_err("ro")), ErrorCategory::PermissionDenied);
    assert_eq!(cat(delete(&f.root, &rel("a.txt"), false).expect_err("ro")), ErrorCategory::PermissionDenied);
    assert_eq!(names(&f.inside()), ["a.txt", "sub"]);
}

#[test]
fn deny_list_applies_to_new_names() {
    let f = fixture();
    for p in ["id_rsa", "sub/.env", "x.pem"] {
        let e = write_file(&f.root, &rel(p), b"x", WriteMode::Create, None, None).expect_err(p);
        assert_eq!(e.category, ErrorCategory::PermissionDenied);
    }
    let e = rename(&f.root, &rel("a.txt"), &rel("server.key"), false).expect_err("deny");
    assert_eq!(e.category, ErrorCategory::PermissionDenied);
}

#[test]
fn mkdir_parents_and_depth_edge() {
    let f = fixture();
    let made = mkdir(&f.root, &rel("x/y/z"), true, Some(0o700)).expect("mkdir -p");
    assert_eq!(made.len(), 3);
    assert_eq!(std::fs::metadata(f.inside().join("x/y/z")).expect("md").mode() & 0o777, 0o700);
    assert!(mkdir(&f.root, &rel("x/y/z"), true, None).expect("again").is_empty());
    assert_eq!(cat(mkdir(&f.root, &rel("x"), false, None).expect_err("exists")), ErrorCategory::Conflict);
    assert_eq!(cat(mkdir(&f.root, &rel("q/r"), false, None).expect_err("no parent")), ErrorCategory::NotFound);
    assert_eq!(cat(mkdir(&f.root, &rel("a.txt/d"), true, None).expect_err("file")), ErrorCategory::InvalidInput);
    let deep = |n: usize| vec!["d"; n].join("/");
    mkdir(&f.root, &rel(&deep(MAX_MKDIR_DEPTH)), true, None).expect("at the edge");
    let e = mkdir(&f.root, &rel(&deep(MAX_MKDIR_DEPTH + 1)), true, None).expect_err("over");
    assert_eq!(e.category, ErrorCategory::InvalidInput);
    assert!(!f.inside().join(deep(MAX_MKDIR_DEPTH + 1)).exists());
}

#[test]
fn move_noreplace_overwrite_and_into_itself() {
    let f = fixture();
    std::fs::write(f.inside().join("b.txt"), "b").expect("write");
    let e = rename(&f.root, &rel("a.txt"), &rel("b.txt"), false).expect_err("noreplace");
    assert_eq!(e.category, ErrorCategory::Conflict);
    assert_eq!(std::fs::read(f.inside().join("b.txt")).expect("read"), b"b");
    let m = rename(&f.root, &rel("a.txt"), &rel("b.txt"), true).expect("overwrite");
    assert!(m.replaced);
    assert_eq!(std::fs::read(f.inside().join("b.txt")).expect("read"), b"old");
    std::fs::create_dir_all(f.inside().join("sub/inner")).expect("mkdir");
    let e = rename(&f.root, &rel("sub"), &rel("sub/inner/sub"), false).expect_err("into itself");
    assert_eq!(e.category, ErrorCategory::InvalidInput);
    assert_eq!(cat(rename(&f.root, &rel(""), &rel("x"), false).expect_err("root")), ErrorCategory::InvalidInput);
    assert_eq!(cat(rename(&f.root, &rel("nope"), &rel("x"), false).expect_err("missing")), ErrorCategory::NotFound);
    rename(&f.root, &rel("sub"), &rel("moved"), false).expect("dir move");
    assert!(f.inside().join("moved/inner").is_dir());
}

#[test]
fn moving_a_directory_with_hidden_entries_is_refused() {
    let f = fixture();
    std::fs::write(f.inside().join("sub/.env"), "TOKEN=x").expect("write");
    let e = rename(&f.root, &rel("sub"), &rel("other"), false).expect_err("hidden inside");
    assert_eq!(e.category, ErrorCategory::PermissionDenied);
    assert!(f.inside().join("sub/.env").exists());
}

#[test]
fn delete_files_empty_dirs_and_recursive_only_where_allowed() {
    let f = fixture();
    std::fs::create_dir_all(f.inside().join("sub/deep/er")).expect("mkdir");
    std::fs::write(f.inside().join("sub/deep/er/f"), "x").expect("write");
    delete(&f.root, &rel("a.txt"), false).expect("file");
    assert_eq!(cat(delete(&f.root, &rel("sub"), false).expect_err("non-empty")), ErrorCategory::Conflict);
    assert_eq!(cat(delete(&f.root, &rel("sub"), true).expect_err("not allowed")), ErrorCategory::PermissionDenied);
    assert!(f.inside().join("sub/deep/er/f").exists());
    assert_eq!(cat(delete(&f.root, &rel(""), true).expect_err("root")), ErrorCategory::InvalidInput);

    let g = fixture_with(Mode::ReadWrite, true);
    std::fs::create_dir_all(g.inside().join("sub/deep/er")).expect("mkdir");
    std::fs::write(g.inside().join("sub/deep/er/f"), "x").expect("write");
    std::fs::write(g.outside().join("keep"), "x").expect("write");
    symlink(g.outside(), g.inside().join("sub/deep/link")).expect("symlink");
    let d = delete(&g.root, &rel("sub"), true).expect("recursive");
    assert_eq!(d.entries, 5, "sub, deep, er, f, link");
    assert!(g.outside().join("keep").exists(), "a symlink inside is removed, never followed");
    assert_eq!(names(&g.inside()), ["a.txt"]);
}

#[test]
fn recursive_delete_refuses_hidden_entries_and_is_bounded() {
    let g = fixture_with(Mode::ReadWrite, true);
    std::fs::write(g.inside().join("sub/id_rsa"), "k").expect("write");
    assert_eq!(cat(delete(&g.root, &rel("sub"), true).expect_err("hidden")), ErrorCategory::PermissionDenied);
    assert!(g.inside().join("sub/id_rsa").exists());
    std::fs::remove_file(g.inside().join("sub/id_rsa")).expect("rm");
    // MAX_TREE_ENTRIES entries below the directory: allowed; one more: refused.
    std::fs::create_dir(g.inside().join("many")).expect("mkdir");
    for i in 0..MAX_TREE_ENTRIES {
        std::fs::write(g.inside().join(format!("many/{i}")), "").expect("write");
    }
    std::fs::create_dir(g.inside().join("more")).expect("mkdir");
    for i in 0..=MAX_TREE_ENTRIES {
        std::fs::write(g.inside().join(format!("more/{i}")), "").expect("write");
    }
    assert_eq!(cat(delete(&g.root, &rel("more"), true).expect_err("over")), ErrorCategory::InvalidInput);
    assert_eq!(std::fs::read_dir(g.inside().join("more")).expect("ls").count(), MAX_TREE_ENTRIES + 1);
    assert_eq!(delete(&g.root, &rel("many"), true).expect("at the edge").entries, MAX_TREE_ENTRIES + 1);
}

#[test]
fn leftover_temporaries_are_swept_and_hidden() {
    let f = fixture();
    std::fs::write(f.inside().join(".tailops-tmp-0011"), "partial").expect("write");
    std::fs::write(f.inside().join("sub/.tailops-tmp-2233"), "partial").expect("write");
    std::fs::create_dir(f.inside().join("sub/.tailops-tmp-dir")).expect("mkdir");
    let dir = f.root.open_dir(&RelPath::default()).expect("dir");
    let (entries, _) = f.root.entries(&dir, 100).expect("entries");
    assert!(entries.iter().all(|e| !e.name.starts_with(TEMP_PREFIX)), "hidden from listings");
    assert_eq!(sweep_temps(&f.root), 2, "regular files only");
    assert_eq!(names(&f.inside()), ["a.txt", "sub"]);
    assert_eq!(names(&f.inside().join("sub")), [".tailops-tmp-dir"]);
}
