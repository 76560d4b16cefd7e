//! The resolver against real files, symlinks, hard links and FIFOs in a
//! temp dir (the e2e attack suite runs the same attacks through the tools).

use std::os::unix::fs::symlink;

use super::*;
use crate::host::files::config::DEFAULT_DENY;

struct Fixture {
    _tmp: tempfile::TempDir,
    outside: PathBuf,
    root: Root,
}

fn cfg(path: &Path) -> RootConfig {
    RootConfig {
        name: "r".into(),
        path: path.to_path_buf(),
        mode: Mode::Read,
        include: vec![],
        exclude: vec![],
        deny: None,
        allow_hard_links: false,
        allow_recursive_delete: false,
    }
}

fn deny() -> Vec<String> {
    DEFAULT_DENY.iter().map(|s| s.to_string()).collect()
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tmp");
    let outside = tmp.path().join("outside");
    let inside = tmp.path().join("root");
    std::fs::create_dir_all(inside.join("sub")).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), "outside").expect("write");
    std::fs::write(inside.join("hello.txt"), "hello").expect("write");
    std::fs::write(inside.join("sub/.env"), "TOKEN=x").expect("write");
    let root = Root::open(&cfg(&inside), &deny()).expect("open root");
    Fixture { _tmp: tmp, outside, root }
}

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).expect("rel")
}

fn category(r: Result<OpenFile, ToolError>) -> ErrorCategory {
    r.expect_err("should be refused").category
}

#[test]
fn reads_inside() {
    let f = fixture();
    let o = f.root.open_file(&rel("hello.txt")).expect("open");
    assert_eq!(std::io::read_to_string(o.file).expect("read"), "hello");
    assert_eq!(o.resolved, rel("hello.txt"));
}

#[test]
fn symlinks_leading_out_are_refused_by_the_kernel() {
    let f = fixture();
    let inside = f.root.real.clone();
    symlink(f.outside.join("secret.txt"), inside.join("abs")).expect("symlink");
    symlink("../outside/secret.txt", inside.join("rel")).expect("symlink");
    symlink(&f.outside, inside.join("dirlink")).expect("symlink");
    symlink("/proc/self/root/etc/passwd", inside.join("magic")).expect("symlink");
    for p in ["abs", "rel", "dirlink/secret.txt", "magic"] {
        assert_eq!(category(f.root.open_file(&rel(p))), ErrorCategory::PermissionDenied, "{p}");
    }
    assert_eq!(f.root.open_dir(&rel("dirlink")).expect_err("dir").category, ErrorCategory::PermissionDenied);
}

#[test]
fn symlinks_inside_work_but_not_into_denied_files() {
    let f = fixture();
    let inside = f.root.real.clone();
    symlink("hello.txt", inside.join("ok")).expect("symlink");
    symlink("sub/.env", inside.join("innocent")).expect("symlink");
    let o = f.root.open_file(&rel("ok")).expect("inside symlink");
    assert_eq!(o.resolved, rel("hello.txt"));
    let e = f.root.open_file(&rel("innocent")).expect_err("denied through a symlink");
    assert_eq!(e.category, ErrorCategory::PermissionDenied);
    assert!(e.message.contains("deny list"), "{}", e.message);
    assert!(!e.message.contains(inside.to_str().expect("utf8")), "host path leaked: {}", e.message);
}

#[test]
fn hard_links_fifos_and_devices_are_never_served() {
    let f = fixture();
    let inside = f.root.real.clone();
    std::fs::hard_link(f.outside.join("secret.txt"), inside.join("hl")).expect("hard link");
    assert_eq!(category(f.root.open_file(&rel("hl"))), ErrorCategory::PermissionDenied);
    rustix::fs::mknodat(rustix::fs::CWD, inside.join("fifo"), FileType::Fifo, FileMode::from_raw_mode(0o600), 0)
        .expect("mkfifo");
    // Would block forever if it were opened for reading without O_NONBLOCK.
    assert_eq!(category(f.root.open_file(&rel("fifo"))), ErrorCategory::PermissionDenied);
    // A device node reached by a symlink: refused because it leaves the
    // root (and would be refused as a device inside it).
    symlink("/dev/zero", inside.join("zero")).expect("symlink");
    assert_eq!(category(f.root.open_file(&rel("zero"))), ErrorCategory::PermissionDenied);
    // With allow_hard_links the same file is served.
    let mut c = cfg(&inside);
    c.allow_hard_links = true;
    let r = Root::open(&c, &deny()).expect("root");
    assert!(r.open_file(&rel("hl")).is_ok());
}

#[test]
fn a_replaced_root_makes_calls_unavailable() {
    let f = fixture();
    let inside = f.root.real.clone();
    let moved = inside.with_file_name("moved");
    std::fs::rename(&inside, &moved).expect("rename");
    symlink("/", &inside).expect("root replaced by a symlink");
    assert_eq!(category(f.root.open_file(&rel("etc/passwd"))), ErrorCategory::Unavailable);
    assert_eq!(category(f.root.open_file(&rel("hello.txt"))), ErrorCategory::Unavailable);
}

#[test]
fn missing_and_wrong_kind() {
    let f = fixture();
    assert_eq!(category(f.root.open_file(&rel("nope"))), ErrorCategory::NotFound);
    assert_eq!(category(f.root.open_file(&rel("sub"))), ErrorCategory::InvalidInput);
    assert_eq!(category(f.root.open_file(&rel("hello.txt/x"))), ErrorCategory::InvalidInput);
    assert_eq!(f.root.open_dir(&rel("hello.txt")).expect_err("not a dir").category, ErrorCategory::InvalidInput);
}

#[test]
fn listing_hides_denied_entries_and_parents_refuse_writes_in_read_roots() {
    let f = fixture();
    let d = f.root.open_dir(&rel("sub")).expect("dir");
    let (entries, more) = f.root.entries(&d, 100).expect("entries");
    assert!(entries.is_empty(), "{entries:?}");
    assert!(!more);
    let d = f.root.open_dir(&RelPath::default()).expect("root dir");
    let names: Vec<String> = f.root.entries(&d, 100).expect("entries").0.into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["hello.txt", "sub"]);
    assert_eq!(f.root.open_parent(&rel("new.txt")).expect_err("read root").category, ErrorCategory::PermissionDenied);
}

#[test]
fn writable_root_parent_checks() {
    let f = fixture();
    let inside = f.root.real.clone();
    let mut c = cfg(&inside);
    c.mode = Mode::ReadWrite;
    let r = Root::open(&c, &deny()).expect("root");
    symlink(&f.outside, inside.join("out")).expect("symlink");
    let (dir, name) = r.open_parent(&rel("sub/new.txt")).expect("parent");
    assert_eq!((dir.resolved, name.as_str()), (rel("sub"), "new.txt"));
    // A new file whose parent is a symlink leading out.
    assert_eq!(r.open_parent(&rel("out/new.txt")).expect_err("escape").category, ErrorCategory::PermissionDenied);
    assert_eq!(r.open_parent(&rel("sub/.env.new")).expect_err("deny").category, ErrorCategory::PermissionDenied);
    assert_eq!(r.open_parent(&RelPath::default()).expect_err("root").category, ErrorCategory::InvalidInput);
}

/// A root over `/proc/PID` holds magic links (`root`, `cwd`, `exe`,
/// `fd/N`): RESOLVE_NO_MAGICLINKS makes the kernel refuse every one.
#[test]
fn magic_links_are_refused() {
    let own = PathBuf::from(format!("/proc/{}", std::process::id()));
    let mut c = cfg(&own);
    c.deny = Some(vec![]);
    let r = Root::open(&c, &[]).expect("root over /proc/self");
    for p in ["root/etc/passwd", "cwd", "exe", "fd/0", "root"] {
        let e = r.stat(&rel(p)).expect_err(p);
        assert_eq!(e.category, ErrorCategory::PermissionDenied, "{p}: {e:?}");
    }
    assert!(r.stat(&rel("status")).is_ok(), "plain files under /proc/self are fine");
}
