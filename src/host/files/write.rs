//! Changes inside `read_write` roots: write (atomic create/overwrite,
//! append), mkdir, move, delete. Every change starts from the parent
//! directory fd that [`Root::open_parent`] returned (opened beneath the
//! root by the kernel, visibility checked on the requested and the
//! resolved path) and names the last component only in `*at` calls that
//! never follow it (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `renameat2`,
//! `unlinkat`, `mkdirat`). Nothing here opens a path string.
//!
//! Atomic writes (create, overwrite): the new content goes into an unnamed
//! `O_TMPFILE` inode in the target's directory (a named
//! `.tailops-tmp-<random>` file, `O_CREAT|O_EXCL|O_NOFOLLOW`, where the
//! filesystem lacks `O_TMPFILE`), is written, given its mode bits and
//! owner, fsynced, and only then published: `linkat` straight to the
//! target name when the target does not exist (fails if it appeared
//! meanwhile: create is create-only), otherwise linked under a temporary
//! name and `renameat` over the target; finally the directory is fsynced.
//! A crash (even SIGKILL) at any moment leaves the target entirely old or
//! entirely new. An unnamed inode vanishes with the process; a named
//! temporary can only survive a crash between the link and the rename (or
//! mid-write on a filesystem without `O_TMPFILE`): such names are hidden
//! from every file tool (see [`super::rules::TEMP_PREFIX`]) and removed by
//! [`sweep_temps`] when tailops next starts.
//!
//! Writes are serialized within the process (one lock), so the
//! compare-and-swap (`expected_sha256`) holds among tailops callers; a
//! writer outside tailops that replaces the file between the hash and the
//! rename is caught by an inode check right before the rename (`conflict`),
//! one that rewrites it in place is not (Linux has no lock such writers
//! must honour).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode as FileMode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::path::RelPath;
use super::root::{Kind, OpenDir, Root};
use super::rules::TEMP_PREFIX;
use crate::mcp::contract::{ErrorCategory, ToolError};

/// Largest content one `file_write` call writes (also bounded by
/// `limits.max_request_body_bytes`, which must be raised to reach it).
pub const MAX_WRITE_BYTES: usize = 16 * 1024 * 1024;
/// Files larger than this are not hashed: their sha256 is reported as
/// unknown and `expected_sha256` cannot be used on them.
pub const MAX_HASH_BYTES: u64 = 256 * 1024 * 1024;
/// Deepest path `file_mkdir` creates with `parents: true` (components).
pub const MAX_MKDIR_DEPTH: usize = 64;
/// Most entries a recursive delete (or a directory move's hidden-entry
/// check) reads; a larger tree is refused before anything is removed.
pub const MAX_TREE_ENTRIES: usize = 10_000;
/// Deepest directory nesting a recursive delete descends.
pub const MAX_TREE_DEPTH: usize = 64;
/// Most entries the start-up sweep of leftover temporary files reads per
/// root.
pub const MAX_SWEEP_ENTRIES: usize = 100_000;
/// Mode bits of a new file / directory when the caller names none.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
pub const DEFAULT_DIR_MODE: u32 = 0o755;
/// Random bytes in a temporary name (hex-encoded).
const TEMP_RANDOM_BYTES: usize = 12;
/// Attempts to find an unused temporary name.
const TEMP_TRIES: usize = 8;

/// One change at a time in this process (see the module doc).
static WRITE_LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// How `file_write` treats an existing file.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Fail with `conflict` when the file exists (default).
    #[default]
    Create,
    /// Replace the file atomically (create it when missing).
    Overwrite,
    /// Add to the end (create it when missing); not atomic.
    Append,
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    /// None when the file was new (or too large to hash).
    pub old_sha256: Option<String>,
    /// None only when the file is too large to hash (append).
    pub new_sha256: Option<String>,
    pub created: bool,
    /// Permission bits the file has now.
    pub mode: u32,
}

/// The existing target of a write.
struct Old {
    st: Stat,
    sha256: Option<String>,
}

/// Parses mode bits written in octal (`"0644"`, `"755"`). Only the
/// permission bits are accepted: setuid, setgid and sticky are refused (a
/// caller must not be able to make a set-user-ID program).
pub fn parse_mode(s: &str) -> Result<u32, ToolError> {
    let hint = "write permission bits in octal, 3 or 4 digits, at most 0777 (e.g. \"0644\")";
    if !(3..=4).contains(&s.len()) || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(ToolError::invalid_input(format!("mode {:?} is not octal permission bits", clip(s)), hint));
    }
    let m = u32::from_str_radix(s, 8).map_err(|_| ToolError::invalid_input("mode is not octal", hint))?;
    if m > 0o777 {
        return Err(ToolError::invalid_input(
            format!("mode {s} sets setuid, setgid or sticky bits, which are refused"),
            hint,
        ));
    }
    Ok(m)
}

/// A lowercase 64-hex-digit sha256, or `invalid_input`.
pub fn parse_sha256(s: &str) -> Result<String, ToolError> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ToolError::invalid_input(
            "expected_sha256 is not a sha256 (64 hex digits)",
            "pass the sha256 file_write, file_hash or a previous write returned",
        ));
    }
    Ok(s.to_ascii_lowercase())
}

/// `invalid_input` when a component uses the temporary-file prefix.
pub fn check_not_reserved(root: &Root, rel: &RelPath) -> Result<(), ToolError> {
    if rel.components().iter().any(|c| c.starts_with(TEMP_PREFIX)) {
        return Err(ToolError::invalid_input(
            format!("{}: names starting with {TEMP_PREFIX} are reserved for tailops' temporary files", root.show(rel)),
            "choose another name",
        ));
    }
    Ok(())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// sha256 of everything `f` holds from its start, or None when it is
/// larger than [`MAX_HASH_BYTES`].
fn hash_file(f: &mut File, size: u64) -> std::io::Result<Option<String>> {
    if size > MAX_HASH_BYTES {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total = total.saturating_add(n as u64);
        if total > MAX_HASH_BYTES {
            return Ok(None);
        }
        h.update(&buf[..n]);
    }
    Ok(Some(hex::encode(h.finalize())))
}

fn io_err(root: &Root, rel: &RelPath, e: &std::io::Error) -> ToolError {
    root.errno(rel, Errno::from_io_error(e).unwrap_or(Errno::IO))
}

/// `lstat` of `name` in `dir`; None when it does not exist.
fn lstat_at(root: &Root, rel: &RelPath, dir: BorrowedFd<'_>, name: &str) -> Result<Option<Stat>, ToolError> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(root.errno(rel, e)),
    }
}

/// The existing target of a write, checked (a regular file with one
/// link) and hashed; None when it does not exist.
fn existing(root: &Root, rel: &RelPath, dir: &OpenDir, name: &str) -> Result<Option<Old>, ToolError> {
    let Some(st) = lstat_at(root, rel, dir.fd.as_fd(), name)? else { return Ok(None) };
    check_replaceable(root, rel, &st)?;
    let fd = rustix::fs::openat(
        &dir.fd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        FileMode::empty(),
    )
    .map_err(|e| root.errno(rel, e))?;
    let now = rustix::fs::fstat(&fd).map_err(|e| root.errno(rel, e))?;
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
        return Err(changed(root, rel));
    }
    let mut f = File::from(fd);
    let sha256 =
        hash_file(&mut f, u64::try_from(now.st_size).unwrap_or(u64::MAX)).map_err(|e| io_err(root, rel, &e))?;
    Ok(Some(Old { st: now, sha256 }))
}

/// A write may replace only a regular file with a single link.
fn check_replaceable(root: &Root, rel: &RelPath, st: &Stat) -> Result<(), ToolError> {
    match Kind::of(st) {
        Kind::File => {}
        Kind::Dir => {
            return Err(ToolError::invalid_input(format!("{} is a directory", root.show(rel)), "name a file"));
        }
        Kind::Symlink => {
            return Err(ToolError::invalid_input(
                format!("{} is a symlink; writes never follow or replace symlinks", root.show(rel)),
                "write to the file it points to by that file's own path (file_stat shows it)",
            ));
        }
        other => {
            return Err(ToolError::permission_denied(
                format!("{} is a {other:?}, not a regular file; it is never written", root.show(rel)),
                "only regular files can be written",
            ));
        }
    }
    if st.st_nlink > 1 {
        return Err(ToolError::permission_denied(
            format!(
                "{} has {} hard links; tailops never writes a file that is also elsewhere",
                root.show(rel),
                st.st_nlink
            ),
            "remove the other links first, or write a new file",
        ));
    }
    Ok(())
}

fn changed(root: &Root, rel: &RelPath) -> ToolError {
    ToolError::new(ErrorCategory::Conflict, format!("{} changed while it was written", root.show(rel)), "retry")
}

fn fsync_dir(root: &Root, rel: &RelPath, dir: &OpenDir) -> Result<(), ToolError> {
    rustix::fs::fsync(&dir.fd).map_err(|e| root.errno(rel, e))
}

/// Writes `data` to `rel` (see the module doc). `perm`: mode bits (default:
/// the old file's permission bits on overwrite, 0644 for a new file);
/// `expected`: the sha256 the current content must have.
pub fn write_file(
    root: &Root,
    rel: &RelPath,
    data: &[u8],
    how: WriteMode,
    perm: Option<u32>,
    expected: Option<&str>,
) -> Result<Written, ToolError> {
    if data.len() > MAX_WRITE_BYTES {
        return Err(ToolError::invalid_input(
            format!("content is {} bytes", data.len()),
            format!("file_write writes at most {MAX_WRITE_BYTES} bytes per call (append the rest)"),
        ));
    }
    check_not_reserved(root, rel)?;
    let expected = expected.map(parse_sha256).transpose()?;
    if how == WriteMode::Create && expected.is_some() {
        return Err(ToolError::invalid_input(
            "expected_sha256 cannot be used with mode create (the file must not exist)",
            "use mode overwrite or append to compare and swap",
        ));
    }
    let _guard = lock();
    let (dir, name) = root.open_parent(rel)?;
    let old = existing(root, rel, &dir, &name)?;
    if how == WriteMode::Create && old.is_some() {
        return Err(root.errno(rel, Errno::EXIST));
    }
    if let Some(want) = &expected {
        match &old {
            None => {
                return Err(ToolError::new(
                    ErrorCategory::Conflict,
                    format!("{} does not exist, so it cannot have the expected sha256", root.show(rel)),
                    "use mode create for a new file",
                ));
            }
            Some(Old { sha256: None, .. }) => {
                return Err(ToolError::invalid_input(
                    format!("{} is larger than {MAX_HASH_BYTES} bytes and is not hashed", root.show(rel)),
                    "write without expected_sha256",
                ));
            }
            Some(Old { sha256: Some(have), .. }) if have != want => {
                return Err(ToolError::new(
                    ErrorCategory::Conflict,
                    format!("{} has sha256 {have}, not the expected {want}", root.show(rel)),
                    "read the current content and retry with its sha256",
                ));
            }
            Some(_) => {}
        }
    }
    let written = match how {
        WriteMode::Append => append(root, rel, &dir, &name, data, perm, old)?,
        _ => replace(root, rel, &dir, &name, data, perm, old)?,
    };
    fsync_dir(root, rel, &dir)?;
    Ok(written)
}

/// A temporary inode in `dir`: unnamed (`O_TMPFILE`) when the filesystem
/// supports it, else a named, exclusive, never-followed file.
struct Temp<'a> {
    dir: &'a OpenDir,
    fd: Option<OwnedFd>,
    /// The name it is linked under now, if any (removed on drop).
    name: Option<String>,
}

impl<'a> Temp<'a> {
    fn new(root: &Root, rel: &RelPath, dir: &'a OpenDir) -> Result<Temp<'a>, ToolError> {
        let mode = FileMode::from_raw_mode(0o600);
        match rustix::fs::openat(&dir.fd, ".", OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC, mode) {
            Ok(fd) => return Ok(Temp { dir, fd: Some(fd), name: None }),
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => {}
            Err(e) => return Err(root.errno(rel, e)),
        }
        for _ in 0..TEMP_TRIES {
            let name = temp_name(root, rel)?;
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
            match rustix::fs::openat(&dir.fd, name.as_str(), flags, mode) {
                Ok(fd) => return Ok(Temp { dir, fd: Some(fd), name: Some(name) }),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(root.errno(rel, e)),
            }
        }
        Err(ToolError::unavailable("no unused temporary name was found", "retry"))
    }

    fn fd(&self) -> Result<BorrowedFd<'_>, ToolError> {
        self.fd.as_ref().map(|f| f.as_fd()).ok_or_else(|| ToolError::internal("temporary file already closed"))
    }

    /// Gives the inode `target` (it must not exist) and forgets it.
    fn link_as(&mut self, root: &Root, rel: &RelPath, target: &str, noreplace: bool) -> Result<(), ToolError> {
        let fd = self.fd()?;
        match self.name.clone() {
            None => {
                // The documented unprivileged way to name an O_TMPFILE inode.
                let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                rustix::fs::linkat(rustix::fs::CWD, proc.as_str(), &self.dir.fd, target, AtFlags::SYMLINK_FOLLOW)
                    .map_err(|e| root.errno(rel, e))?;
            }
            Some(tmp) => {
                let r = if noreplace {
                    rustix::fs::renameat_with(&self.dir.fd, tmp.as_str(), &self.dir.fd, target, RenameFlags::NOREPLACE)
                } else {
                    rustix::fs::renameat(&self.dir.fd, tmp.as_str(), &self.dir.fd, target)
                };
                r.map_err(|e| root.errno(rel, e))?;
            }
        }
        self.name = None;
        Ok(())
    }

    /// Makes sure the inode has a (temporary) name, for a rename over an
    /// existing file.
    fn ensure_named(&mut self, root: &Root, rel: &RelPath) -> Result<(), ToolError> {
        if self.name.is_some() {
            return Ok(());
        }
        let fd = self.fd()?;
        let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
        for _ in 0..TEMP_TRIES {
            let name = temp_name(root, rel)?;
            match rustix::fs::linkat(
                rustix::fs::CWD,
                proc.as_str(),
                &self.dir.fd,
                name.as_str(),
                AtFlags::SYMLINK_FOLLOW,
            ) {
                Ok(()) => {
                    self.name = Some(name);
                    return Ok(());
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(root.errno(rel, e)),
            }
        }
        Err(ToolError::unavailable("no unused temporary name was found", "retry"))
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.name.take() {
            let _ = rustix::fs::unlinkat(&self.dir.fd, n.as_str(), AtFlags::empty());
        }
    }
}

fn temp_name(root: &Root, rel: &RelPath) -> Result<String, ToolError> {
    let mut buf = [0u8; TEMP_RANDOM_BYTES];
    rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()).map_err(|e| root.errno(rel, e))?;
    Ok(format!("{TEMP_PREFIX}{}", hex::encode(buf)))
}

/// Create or overwrite, atomically.
fn replace(
    root: &Root,
    rel: &RelPath,
    dir: &OpenDir,
    name: &str,
    data: &[u8],
    perm: Option<u32>,
    old: Option<Old>,
) -> Result<Written, ToolError> {
    // The old file's permission bits only: setuid/setgid never carry over
    // to content the caller wrote.
    let mode = perm.or(old.as_ref().map(|o| o.st.st_mode & 0o777)).unwrap_or(DEFAULT_FILE_MODE);
    let created = old.is_none();
    let mut tmp = Temp::new(root, rel, dir)?;
    {
        let fd = tmp.fd()?;
        let mut f = File::from(fd.try_clone_to_owned().map_err(|e| io_err(root, rel, &e))?);
        f.write_all(data).map_err(|e| io_err(root, rel, &e))?;
        rustix::fs::fchmod(&f, FileMode::from_raw_mode(mode)).map_err(|e| root.errno(rel, e))?;
        if let Some(o) = &old {
            // Keep the owner (possible when tailops runs as root; otherwise
            // the file belongs to tailops' user, as any new file would).
            let (uid, gid) = (rustix::fs::Uid::from_raw(o.st.st_uid), rustix::fs::Gid::from_raw(o.st.st_gid));
            let _ = rustix::fs::fchown(&f, Some(uid), Some(gid));
            // chown clears setuid/setgid; put the mode back as asked.
            rustix::fs::fchmod(&f, FileMode::from_raw_mode(mode)).map_err(|e| root.errno(rel, e))?;
        }
        f.sync_all().map_err(|e| io_err(root, rel, &e))?;
    }
    match &old {
        None => tmp.link_as(root, rel, name, true)?,
        Some(o) => {
            tmp.ensure_named(root, rel)?;
            // The target must still be the file that was hashed.
            let now = lstat_at(root, rel, dir.fd.as_fd(), name)?;
            if now.is_none_or(|st| (st.st_dev, st.st_ino) != (o.st.st_dev, o.st.st_ino)) {
                return Err(changed(root, rel));
            }
            tmp.link_as(root, rel, name, false)?;
        }
    }
    Ok(Written {
        bytes: data.len() as u64,
        old_sha256: old.and_then(|o| o.sha256),
        new_sha256: Some(sha256_hex(data)),
        created,
        mode,
    })
}

/// Append (not atomic: a crash may leave part of `data` appended).
fn append(
    root: &Root,
    rel: &RelPath,
    dir: &OpenDir,
    name: &str,
    data: &[u8],
    perm: Option<u32>,
    old: Option<Old>,
) -> Result<Written, ToolError> {
    let mut flags =
        OFlags::RDWR | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    if old.is_none() {
        flags |= OFlags::CREATE | OFlags::EXCL;
    }
    let create_mode = FileMode::from_raw_mode(perm.unwrap_or(DEFAULT_FILE_MODE));
    let fd = rustix::fs::openat(&dir.fd, name, flags, create_mode).map_err(|e| root.errno(rel, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| root.errno(rel, e))?;
    if let Some(o) = &old
        && (st.st_dev, st.st_ino) != (o.st.st_dev, o.st.st_ino)
    {
        return Err(changed(root, rel));
    }
    check_replaceable(root, rel, &st)?;
    let mut f = File::from(fd);
    if let Some(m) = perm {
        // Also after creation: the umask may have cleared bits.
        rustix::fs::fchmod(&f, FileMode::from_raw_mode(m)).map_err(|e| root.errno(rel, e))?;
    }
    f.write_all(data).map_err(|e| io_err(root, rel, &e))?;
    f.sync_all().map_err(|e| io_err(root, rel, &e))?;
    let now = rustix::fs::fstat(&f).map_err(|e| root.errno(rel, e))?;
    let new_sha256 =
        hash_file(&mut f, u64::try_from(now.st_size).unwrap_or(u64::MAX)).map_err(|e| io_err(root, rel, &e))?;
    Ok(Written {
        bytes: data.len() as u64,
        created: old.is_none(),
        old_sha256: old.and_then(|o| o.sha256),
        new_sha256,
        mode: now.st_mode & 0o7777,
    })
}

/// Creates the directory `rel` (and, with `parents`, the missing ones above
/// it, each through its own parent fd). Returns the directories created.
/// With `parents`, an existing directory is fine (like `mkdir -p`);
/// without, it is a `conflict`.
pub fn mkdir(root: &Root, rel: &RelPath, parents: bool, perm: Option<u32>) -> Result<Vec<RelPath>, ToolError> {
    check_not_reserved(root, rel)?;
    let mode = FileMode::from_raw_mode(perm.unwrap_or(DEFAULT_DIR_MODE));
    let n = rel.components().len();
    if parents && n > MAX_MKDIR_DEPTH {
        return Err(ToolError::invalid_input(
            format!("{} is {n} levels deep", root.show(rel)),
            format!("file_mkdir creates paths at most {MAX_MKDIR_DEPTH} levels deep"),
        ));
    }
    let _guard = lock();
    let steps: Vec<RelPath> = if parents {
        (1..=n).map(|k| RelPath::parse(&rel.components()[..k].join("/"))).collect::<Result<_, _>>()?
    } else {
        vec![rel.clone()]
    };
    if steps.is_empty() {
        return Err(ToolError::invalid_input("the root itself cannot be created", "name a path inside the root"));
    }
    let mut created = Vec::new();
    let last = steps.len().saturating_sub(1);
    for (i, step) in steps.into_iter().enumerate() {
        let (dir, name) = root.open_parent(&step)?;
        match rustix::fs::mkdirat(&dir.fd, name.as_str(), mode) {
            Ok(()) => {
                if let Some(m) = perm {
                    // mkdirat applies the umask; the caller asked for these bits.
                    let fd = rustix::fs::openat(
                        &dir.fd,
                        name.as_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        FileMode::empty(),
                    )
                    .map_err(|e| root.errno(&step, e))?;
                    rustix::fs::fchmod(&fd, FileMode::from_raw_mode(m)).map_err(|e| root.errno(&step, e))?;
                }
                fsync_dir(root, &step, &dir)?;
                created.push(step);
            }
            // Not the last: the next step opens it as a parent, beneath the
            // root (a symlink leading out, or a file, is refused there).
            Err(Errno::EXIST) if parents && i < last => {}
            Err(Errno::EXIST) if parents => {
                let st = lstat_at(root, &step, dir.fd.as_fd(), &name)?;
                if !st.is_some_and(|st| Kind::of(&st) == Kind::Dir) {
                    return Err(ToolError::new(
                        ErrorCategory::Conflict,
                        format!("{} exists and is not a directory", root.show(&step)),
                        "",
                    ));
                }
            }
            Err(e) => return Err(root.errno(&step, e)),
        }
    }
    Ok(created)
}

/// What a move did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    pub kind: Kind,
    /// Whether an existing destination was replaced.
    pub replaced: bool,
}

/// Renames `from` to `to` within one root: `renameat2(RENAME_NOREPLACE)`
/// unless `overwrite`. Refuses the root, a directory into itself, and a
/// directory whose subtree holds hidden entries (moving it could make them
/// visible under the new name).
pub fn rename(root: &Root, from: &RelPath, to: &RelPath, overwrite: bool) -> Result<Moved, ToolError> {
    check_not_reserved(root, from)?;
    check_not_reserved(root, to)?;
    let _guard = lock();
    let (sdir, sname) = root.open_parent(from)?;
    let (tdir, tname) = root.open_parent(to)?;
    let st = lstat_at(root, from, sdir.fd.as_fd(), &sname)?.ok_or_else(|| root.errno(from, Errno::NOENT))?;
    let kind = Kind::of(&st);
    let sfull = sdir.resolved.join(&sname);
    let tfull = tdir.resolved.join(&tname);
    if sfull == tfull {
        return Err(ToolError::invalid_input(
            format!("{} and {} are the same entry", root.show(from), root.show(to)),
            "name a different destination",
        ));
    }
    if kind == Kind::Dir {
        if tfull.components().starts_with(sfull.components()) {
            return Err(ToolError::invalid_input(
                format!("{} cannot be moved into itself ({})", root.show(from), root.show(to)),
                "choose a destination outside the directory",
            ));
        }
        let sub = open_subdir(root, from, sdir.fd.as_fd(), &sname, &st)?;
        scan_tree(root, &sfull, sub, st.st_dev)?;
    }
    let existing = lstat_at(root, to, tdir.fd.as_fd(), &tname)?;
    let r = if overwrite {
        rustix::fs::renameat(&sdir.fd, sname.as_str(), &tdir.fd, tname.as_str())
    } else {
        rustix::fs::renameat_with(&sdir.fd, sname.as_str(), &tdir.fd, tname.as_str(), RenameFlags::NOREPLACE)
    };
    r.map_err(|e| match e {
        Errno::EXIST => ToolError::new(
            ErrorCategory::Conflict,
            format!("{} already exists", root.show(to)),
            "pass overwrite: true to replace it",
        ),
        Errno::XDEV => ToolError::invalid_input(
            format!("{} and {} are on different filesystems", root.show(from), root.show(to)),
            "copy with file_read and file_write instead",
        ),
        Errno::INVAL => ToolError::invalid_input(format!("{} cannot be moved into itself", root.show(from)), ""),
        Errno::NOTEMPTY | Errno::ISDIR | Errno::NOTDIR => ToolError::new(
            ErrorCategory::Conflict,
            format!("{} cannot replace {} ({e})", root.show(from), root.show(to)),
            "a directory replaces only an empty directory, a file only a file",
        ),
        e => root.errno(to, e),
    })?;
    fsync_dir(root, to, &tdir)?;
    fsync_dir(root, from, &sdir)?;
    Ok(Moved { kind, replaced: existing.is_some() })
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    pub kind: Kind,
    /// Entries removed, the named one included.
    pub entries: usize,
}

/// Removes a file (any non-directory: a symlink itself, never its target)
/// or an empty directory; a non-empty directory only with `recursive` on a
/// root with `allow_recursive_delete`, at most [`MAX_TREE_ENTRIES`] entries,
/// none hidden, none on another filesystem, never following symlinks.
pub fn delete(root: &Root, rel: &RelPath, recursive: bool) -> Result<Deleted, ToolError> {
    check_not_reserved(root, rel)?;
    let _guard = lock();
    let (dir, name) = root.open_parent(rel)?;
    let st = lstat_at(root, rel, dir.fd.as_fd(), &name)?.ok_or_else(|| root.errno(rel, Errno::NOENT))?;
    let kind = Kind::of(&st);
    if kind != Kind::Dir {
        rustix::fs::unlinkat(&dir.fd, name.as_str(), AtFlags::empty()).map_err(|e| root.errno(rel, e))?;
        fsync_dir(root, rel, &dir)?;
        return Ok(Deleted { kind, entries: 1 });
    }
    match rustix::fs::unlinkat(&dir.fd, name.as_str(), AtFlags::REMOVEDIR) {
        Ok(()) => {
            fsync_dir(root, rel, &dir)?;
            return Ok(Deleted { kind, entries: 1 });
        }
        Err(Errno::NOTEMPTY | Errno::EXIST) => {}
        Err(e) => return Err(root.errno(rel, e)),
    }
    if !recursive {
        return Err(ToolError::new(
            ErrorCategory::Conflict,
            format!("{} is not empty", root.show(rel)),
            "delete its entries first, or pass recursive: true (on a root that allows it)",
        ));
    }
    if !root.allow_recursive_delete {
        return Err(ToolError::permission_denied(
            format!("root {} does not allow recursive deletes", root.name),
            "an operator can set allow_recursive_delete = true on the root",
        ));
    }
    let full = dir.resolved.join(&name);
    let sub = open_subdir(root, rel, dir.fd.as_fd(), &name, &st)?;
    let tree = scan_tree(root, &full, sub, st.st_dev)?;
    let sub = open_subdir(root, rel, dir.fd.as_fd(), &name, &st)?;
    let mut removed = 0usize;
    remove_tree(root, &full, sub.as_fd(), &tree, &mut removed)?;
    rustix::fs::unlinkat(&dir.fd, name.as_str(), AtFlags::REMOVEDIR).map_err(|e| root.errno(rel, e))?;
    fsync_dir(root, rel, &dir)?;
    Ok(Deleted { kind, entries: removed.saturating_add(1) })
}

/// A directory read for a recursive operation: its entries, with the
/// subdirectories read too (no fds kept: at most one per level is open).
struct Tree {
    entries: Vec<Node>,
}

struct Node {
    name: String,
    ino: u64,
    sub: Option<Tree>,
}

/// Opens `name` in `dir` as a directory, never following a symlink, and
/// checks it is the inode `st` described.
fn open_subdir(root: &Root, rel: &RelPath, dir: BorrowedFd<'_>, name: &str, st: &Stat) -> Result<OwnedFd, ToolError> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        FileMode::empty(),
    )
    .map_err(|e| root.errno(rel, e))?;
    let now = rustix::fs::fstat(&fd).map_err(|e| root.errno(rel, e))?;
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
        return Err(changed(root, rel));
    }
    Ok(fd)
}

/// Reads the tree below `fd` (at `rel`): refuses more than
/// [`MAX_TREE_ENTRIES`] entries, deeper than [`MAX_TREE_DEPTH`], a hidden
/// entry, a reserved name, or another filesystem (`dev`).
fn scan_tree(root: &Root, rel: &RelPath, fd: OwnedFd, dev: u64) -> Result<Tree, ToolError> {
    let mut count = 0usize;
    scan_level(root, rel, fd, dev, 1, &mut count)
}

fn scan_level(
    root: &Root,
    rel: &RelPath,
    fd: OwnedFd,
    dev: u64,
    depth: usize,
    count: &mut usize,
) -> Result<Tree, ToolError> {
    if depth > MAX_TREE_DEPTH {
        return Err(ToolError::invalid_input(
            format!("{} is nested deeper than {MAX_TREE_DEPTH} levels", root.show(rel)),
            "remove the deepest directories first",
        ));
    }
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(&fd).map_err(|e| root.errno(rel, e))?;
    while let Some(ent) = d.read() {
        let ent = ent.map_err(|e| root.errno(rel, e))?;
        let raw = ent.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(raw) else {
            return Err(ToolError::invalid_input(
                format!("{} holds a non-UTF-8 name", root.show(rel)),
                "remove it on the host",
            ));
        };
        *count = count.saturating_add(1);
        if *count > MAX_TREE_ENTRIES {
            return Err(ToolError::invalid_input(
                format!("{} holds more than {MAX_TREE_ENTRIES} entries", root.show(rel)),
                "delete or move subdirectories one by one",
            ));
        }
        names.push(name.to_string());
    }
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let child = rel.join(&name);
        let st = lstat_at(root, &child, fd.as_fd(), &name)?.ok_or_else(|| changed(root, &child))?;
        let is_dir = Kind::of(&st) == Kind::Dir;
        if root.hidden(&child, is_dir).is_some() || name.starts_with(TEMP_PREFIX) {
            return Err(ToolError::permission_denied(
                format!("{} holds entries you cannot see (deny list or include/exclude)", root.show(rel)),
                "only trees whose every entry is visible can be deleted or moved as a whole",
            ));
        }
        if st.st_dev != dev {
            return Err(ToolError::permission_denied(
                format!("{} holds a mount point", root.show(rel)),
                "unmount it first; tailops never crosses filesystems here",
            ));
        }
        let sub = if is_dir {
            let sfd = open_subdir(root, &child, fd.as_fd(), &name, &st)?;
            Some(scan_level(root, &child, sfd, dev, depth.saturating_add(1), count)?)
        } else {
            None
        };
        entries.push(Node { name, ino: st.st_ino, sub });
    }
    Ok(Tree { entries })
}

/// Removes what [`scan_tree`] read below `fd`; a directory is re-opened
/// without following symlinks and must be the inode that was scanned.
fn remove_tree(
    root: &Root,
    rel: &RelPath,
    fd: BorrowedFd<'_>,
    tree: &Tree,
    removed: &mut usize,
) -> Result<(), ToolError> {
    for node in &tree.entries {
        let child = rel.join(&node.name);
        let flags = match &node.sub {
            Some(t) => {
                let st = lstat_at(root, &child, fd, &node.name)?.ok_or_else(|| changed(root, &child))?;
                if st.st_ino != node.ino {
                    return Err(changed(root, &child));
                }
                let sfd = open_subdir(root, &child, fd, &node.name, &st)?;
                remove_tree(root, &child, sfd.as_fd(), t, removed)?;
                AtFlags::REMOVEDIR
            }
            None => AtFlags::empty(),
        };
        rustix::fs::unlinkat(fd, node.name.as_str(), flags).map_err(|e| root.errno(&child, e))?;
        *removed = removed.saturating_add(1);
    }
    Ok(())
}

/// Removes temporary files a crashed tailops left in `root` (names
/// starting with [`TEMP_PREFIX`], regular files only), reading at most
/// [`MAX_SWEEP_ENTRIES`] entries and [`MAX_TREE_DEPTH`] levels, never
/// following symlinks or crossing filesystems. Returns how many it
/// removed. Run at start-up, before any call, on `read_write` roots.
pub fn sweep_temps(root: &Root) -> usize {
    let Ok(top) = root.open_dir(&RelPath::default()) else { return 0 };
    let dev = top.stat.st_dev;
    let (mut removed, mut seen) = (0usize, 0usize);
    sweep_level(top.fd.as_fd(), dev, 1, &mut seen, &mut removed);
    removed
}

fn sweep_level(fd: BorrowedFd<'_>, dev: u64, depth: usize, seen: &mut usize, removed: &mut usize) {
    if depth > MAX_TREE_DEPTH {
        return;
    }
    let Ok(mut d) = rustix::fs::Dir::read_from(fd) else { return };
    let mut subdirs = Vec::new();
    while let Some(Ok(ent)) = d.read() {
        *seen = seen.saturating_add(1);
        if *seen > MAX_SWEEP_ENTRIES {
            return;
        }
        let raw = ent.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let Ok(st) = rustix::fs::statat(fd, ent.file_name(), AtFlags::SYMLINK_NOFOLLOW) else { continue };
        match Kind::of(&st) {
            Kind::File
                if raw.starts_with(TEMP_PREFIX.as_bytes())
                    && rustix::fs::unlinkat(fd, ent.file_name(), AtFlags::empty()).is_ok() =>
            {
                *removed = removed.saturating_add(1);
            }
            Kind::Dir if st.st_dev == dev => subdirs.push(ent.file_name().to_owned()),
            _ => {}
        }
    }
    for name in subdirs {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if let Ok(sub) = rustix::fs::openat(fd, name.as_c_str(), flags, FileMode::empty()) {
            sweep_level(sub.as_fd(), dev, depth.saturating_add(1), seen, removed);
        }
    }
}

/// At most 64 characters of caller input, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
