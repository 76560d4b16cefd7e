//! One configured root: a directory fd opened once at start-up, and every
//! open beneath it done by the kernel with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from that fd — never
//! a string-prefix check, never canonicalize-then-open. A `..`, an absolute
//! symlink, a symlink swapped in during the call, or `/proc/self/root` all
//! make the kernel refuse (EXDEV / ELOOP), whatever the parser let through.
//!
//! On top of the kernel's wall, each open:
//! - checks the deny/include/exclude rules on the requested path AND on the
//!   path the kernel actually resolved (read back from `/proc/self/fd`), so a
//!   symlink inside the root cannot reach a denied file inside the root;
//! - opens with `O_PATH` first and looks at the type: FIFOs, sockets and
//!   devices are never opened for reading (a FIFO would block, a device
//!   open can have side effects); the real open then uses `O_NONBLOCK` and
//!   must land on the same inode;
//! - refuses regular files with more than one hard link unless the root
//!   allows them (a hard link to an outside file is the one escape
//!   `RESOLVE_BENEATH` cannot see);
//! - checks that the root's configured path is still the directory opened
//!   at start-up: a root replaced (e.g. by a symlink to `/`) makes its
//!   tools `unavailable` instead of silently following the new path.
//!
//! Error messages name only the caller's tool path, never the host path.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode as FileMode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use serde::Serialize;

use super::config::{Mode, RootConfig};
use super::path::RelPath;
use super::rules::{Hidden, Rules};
use crate::mcp::contract::{ErrorCategory, ToolError};

/// openat2 returns EAGAIN when a rename raced the lookup; retried this
/// many times before the call fails with `conflict`.
const EAGAIN_RETRIES: usize = 16;

/// A root, opened.
#[derive(Debug)]
pub struct Root {
    pub name: String,
    pub mode: Mode,
    /// The configured path (shown to operators, never to callers).
    path: PathBuf,
    /// The real path at start-up: the prefix `/proc/self/fd` shows.
    real: PathBuf,
    /// `O_PATH | O_DIRECTORY` fd of the root.
    dir: OwnedFd,
    dev_ino: (u64, u64),
    rules: Rules,
    pub allow_hard_links: bool,
    pub allow_recursive_delete: bool,
}

/// A file type as callers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl Kind {
    pub fn of(st: &Stat) -> Kind {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            FileType::Unknown => Kind::Unknown,
        }
    }
}

/// What `stat` says about one entry, in caller terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Meta {
    pub kind: Kind,
    /// Bytes (for directories, what the filesystem reports).
    pub size: u64,
    /// Permission bits, octal (`"0644"`).
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// Last modification, Unix seconds.
    pub mtime_unix: i64,
    pub nlink: u64,
}

impl Meta {
    pub fn of(st: &Stat) -> Meta {
        Meta {
            kind: Kind::of(st),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mode: format!("{:04o}", st.st_mode & 0o7777),
            uid: st.st_uid,
            gid: st.st_gid,
            mtime_unix: st.st_mtime,
            #[allow(clippy::useless_conversion)]
            nlink: u64::from(st.st_nlink),
        }
    }
}

/// A regular file opened for reading.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub stat: Stat,
    /// The path the kernel resolved (differs from the request when a
    /// symlink inside the root was followed).
    pub resolved: RelPath,
}

/// A directory opened for listing.
#[derive(Debug)]
pub struct OpenDir {
    pub fd: OwnedFd,
    pub stat: Stat,
    pub resolved: RelPath,
}

impl Root {
    /// Opens the root directory once. Fails when the path is missing, not
    /// a directory, or the kernel lacks openat2 (Linux < 5.6).
    pub fn open(cfg: &RootConfig, default_deny: &[String]) -> Result<Root, String> {
        let deny = cfg.deny.as_deref().unwrap_or(default_deny);
        let rules = Rules::new(deny, &cfg.include, &cfg.exclude)?;
        let dir = rustix::fs::open(&cfg.path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, FileMode::empty())
            .map_err(|e| format!("cannot open {} as a directory: {e}", cfg.path.display()))?;
        let st = rustix::fs::fstat(&dir).map_err(|e| format!("cannot stat {}: {e}", cfg.path.display()))?;
        let real = std::fs::canonicalize(&cfg.path).map_err(|e| format!("{}: {e}", cfg.path.display()))?;
        let root = Root {
            name: cfg.name.clone(),
            mode: cfg.mode,
            path: cfg.path.clone(),
            real,
            dir,
            dev_ino: (st.st_dev, st.st_ino),
            rules,
            allow_hard_links: cfg.allow_hard_links,
            allow_recursive_delete: cfg.allow_recursive_delete,
        };
        // Probe openat2 itself: an old kernel must fail here, loudly, not
        // in every call.
        root.beneath(&RelPath::default(), OFlags::PATH | OFlags::DIRECTORY).map_err(|e| {
            if e == Errno::NOSYS {
                "the kernel lacks openat2 (Linux 5.6 or later is needed for file roots)".to_string()
            } else {
                format!("openat2 on {} failed: {e}", cfg.path.display())
            }
        })?;
        Ok(root)
    }

    /// The configured host path (for operators: logs, /readyz; never in
    /// tool output).
    pub fn host_path(&self) -> &Path {
        &self.path
    }

    /// `unavailable` unless the configured path is still the directory
    /// opened at start-up.
    pub fn check_in_place(&self) -> Result<(), ToolError> {
        let same = rustix::fs::statat(rustix::fs::CWD, &self.path, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| (st.st_dev, st.st_ino) == self.dev_ino && Kind::of(&st) == Kind::Dir);
        if same {
            Ok(())
        } else {
            Err(ToolError::unavailable(
                format!("root {} was moved, removed or replaced since tailops started", self.name),
                "an operator must check the root's directory and restart tailops",
            ))
        }
    }

    /// `permission_denied` unless the root is `read_write`.
    pub fn check_writable(&self) -> Result<(), ToolError> {
        match self.mode {
            Mode::ReadWrite => Ok(()),
            Mode::Read => Err(ToolError::permission_denied(
                format!("root {} is read-only", self.name),
                "write only in roots configured with mode = \"read_write\" (file_roots shows each root's mode)",
            )),
        }
    }

    /// Whether `rel` is hidden by the root's rules.
    pub fn hidden(&self, rel: &RelPath, is_dir: bool) -> Option<Hidden> {
        self.rules.hidden(rel, is_dir)
    }

    /// `permission_denied` when `rel` is hidden.
    pub fn check_visible(&self, rel: &RelPath, is_dir: bool) -> Result<(), ToolError> {
        match self.hidden(rel, is_dir) {
            None => Ok(()),
            Some(Hidden::Denied) => Err(ToolError::permission_denied(
                format!("{} is on the deny list (secrets are never served)", self.show(rel)),
                "an operator can change the deny list in [files] deny or the root's deny",
            )),
            Some(Hidden::Excluded) => Err(ToolError::permission_denied(
                format!("{} is outside what root {} shows (include/exclude)", self.show(rel), self.name),
                "file_list shows what the root makes visible",
            )),
        }
    }

    /// `root:rel` as callers write it.
    pub fn show(&self, rel: &RelPath) -> String {
        format!("{}:{}", self.name, rel.as_str())
    }

    /// The raw kernel call: `rel` beneath the root, no magic links,
    /// retried while renames race it.
    fn beneath(&self, rel: &RelPath, flags: OFlags) -> Result<OwnedFd, Errno> {
        self.beneath_at(self.dir.as_fd(), &rel.as_str(), flags)
    }

    fn beneath_at(&self, dir: BorrowedFd<'_>, path: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, FileMode::empty(), resolve) {
                Err(Errno::AGAIN) if tries < EAGAIN_RETRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// The root-relative path the kernel resolved for `fd`.
    fn resolved(&self, fd: BorrowedFd<'_>, rel: &RelPath) -> Result<RelPath, ToolError> {
        let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let real = std::fs::read_link(&link).map_err(|_| {
            ToolError::unavailable("cannot verify where the path led (/proc is not readable)", "mount /proc")
        })?;
        let Ok(inside) = real.strip_prefix(&self.real) else {
            // Only a root moved after start-up gets here (RESOLVE_BENEATH
            // holds): refuse rather than guess.
            return Err(ToolError::unavailable(
                format!("{} resolved outside the root's start-up location", self.show(rel)),
                "an operator must check the root's directory and restart tailops",
            ));
        };
        let s = inside.to_str().ok_or_else(|| {
            ToolError::new(ErrorCategory::InvalidInput, format!("{} resolves to a non-UTF-8 name", self.show(rel)), "")
        })?;
        RelPath::parse(s)
    }

    /// Maps a kernel refusal to what the caller sees.
    pub fn errno(&self, rel: &RelPath, e: Errno) -> ToolError {
        let at = self.show(rel);
        match e {
            Errno::NOENT => ToolError::not_found(format!("{at} does not exist"), "file_list shows what exists"),
            Errno::XDEV => ToolError::permission_denied(
                format!("{at} leads outside root {} (through a symlink or a mount)", self.name),
                "paths and the symlinks they pass must stay inside the root",
            ),
            Errno::LOOP => ToolError::permission_denied(
                format!("{at} passes a /proc magic link or too many symlinks"),
                "name the file by a path inside the root",
            ),
            Errno::NOTDIR => ToolError::invalid_input(format!("a component of {at} is not a directory"), ""),
            Errno::ISDIR => ToolError::invalid_input(format!("{at} is a directory"), "use file_list for directories"),
            Errno::ACCESS | Errno::PERM | Errno::ROFS => ToolError::permission_denied(
                format!("the server may not access {at} ({e})"),
                "file permissions on the host forbid it",
            ),
            Errno::NAMETOOLONG => ToolError::invalid_input(format!("{at} is too long"), "use a shorter path"),
            Errno::AGAIN => ToolError::new(
                ErrorCategory::Conflict,
                format!("{at} kept changing while it was opened"),
                "retry when renames in that directory have settled",
            ),
            Errno::EXIST => ToolError::new(ErrorCategory::Conflict, format!("{at} already exists"), ""),
            Errno::NOTEMPTY => ToolError::new(ErrorCategory::Conflict, format!("{at} is not empty"), ""),
            Errno::NOSPC | Errno::DQUOT => {
                ToolError::unavailable(format!("no space left for {at}"), "free space on the host")
            }
            e => ToolError::unavailable(format!("{at}: {e}"), ""),
        }
    }

    /// Stats `rel`, following symlinks inside the root (but not opening
    /// it: any file type may be stat'ed). Checks visibility on the
    /// requested and the resolved path, and refuses regular files with
    /// more than one hard link unless the root allows them (listings still
    /// show their metadata; their content and `stat` are refused).
    pub fn stat(&self, rel: &RelPath) -> Result<(Stat, RelPath), ToolError> {
        self.check_in_place()?;
        let fd = self.beneath(rel, OFlags::PATH).map_err(|e| self.errno(rel, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.errno(rel, e))?;
        let is_dir = Kind::of(&st) == Kind::Dir;
        self.check_visible(rel, is_dir)?;
        let resolved = self.resolved(fd.as_fd(), rel)?;
        if &resolved != rel {
            self.check_visible(&resolved, is_dir)?;
        }
        if Kind::of(&st) == Kind::File && st.st_nlink > 1 && !self.allow_hard_links {
            return Err(ToolError::permission_denied(
                format!("{} has {} hard links; a hard link could lead outside the root", self.show(rel), st.st_nlink),
                "an operator can set allow_hard_links = true on the root",
            ));
        }
        Ok((st, resolved))
    }

    /// `lstat` of `rel` itself (a symlink is reported as one), through its
    /// parent opened beneath the root.
    pub fn lstat(&self, rel: &RelPath) -> Result<Stat, ToolError> {
        let Some((parent, name)) = self.open_parent_raw(rel)? else {
            return rustix::fs::fstat(&self.dir).map_err(|e| self.errno(rel, e));
        };
        let st =
            rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| self.errno(rel, e))?;
        self.check_visible(rel, Kind::of(&st) == Kind::Dir)?;
        Ok(st)
    }

    /// A symlink's target as written (shown as text; never followed here).
    pub fn read_link(&self, rel: &RelPath) -> Result<String, ToolError> {
        let Some((parent, name)) = self.open_parent_raw(rel)? else {
            return Err(ToolError::invalid_input("the root is not a symlink", ""));
        };
        self.check_visible(rel, false)?;
        let t = rustix::fs::readlinkat(&parent, name.as_str(), Vec::new()).map_err(|e| self.errno(rel, e))?;
        Ok(t.to_string_lossy().into_owned())
    }

    /// Opens a regular file for reading (see the module doc for every
    /// check on the way).
    pub fn open_file(&self, rel: &RelPath) -> Result<OpenFile, ToolError> {
        let (st, resolved) = self.stat(rel)?;
        match Kind::of(&st) {
            Kind::File => {}
            Kind::Dir => return Err(self.errno(rel, Errno::ISDIR)),
            other => {
                return Err(ToolError::permission_denied(
                    format!("{} is a {other:?}, not a regular file; it is never opened", self.show(rel)),
                    "only regular files can be read",
                ));
            }
        }
        let fd =
            self.beneath(rel, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY).map_err(|e| self.errno(rel, e))?;
        let now = rustix::fs::fstat(&fd).map_err(|e| self.errno(rel, e))?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(ToolError::new(
                ErrorCategory::Conflict,
                format!("{} was replaced while it was opened", self.show(rel)),
                "retry",
            ));
        }
        Ok(OpenFile { file: File::from(fd), stat: now, resolved })
    }

    /// Opens a directory for listing (visibility checked as for files).
    pub fn open_dir(&self, rel: &RelPath) -> Result<OpenDir, ToolError> {
        let (st, resolved) = self.stat(rel)?;
        if Kind::of(&st) != Kind::Dir {
            return Err(ToolError::invalid_input(
                format!("{} is not a directory", self.show(rel)),
                "use file_stat or file_read for files",
            ));
        }
        let fd = self.beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| self.errno(rel, e))?;
        let now = rustix::fs::fstat(&fd).map_err(|e| self.errno(rel, e))?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(ToolError::new(
                ErrorCategory::Conflict,
                format!("{} was replaced while it was opened", self.show(rel)),
                "retry",
            ));
        }
        Ok(OpenDir { fd, stat: now, resolved })
    }

    /// For changes: the parent directory of `rel` opened beneath the root
    /// (so a parent that is a symlink leading out is refused by the
    /// kernel), and the last name, for `*at` calls that never follow it
    /// (`mkdirat`, `renameat2`, `unlinkat`, `openat(O_CREAT|O_EXCL|
    /// O_NOFOLLOW)`). Checks the root is writable and the path — requested
    /// and resolved — is visible. `None` for the root itself.
    pub fn open_parent(&self, rel: &RelPath) -> Result<(OpenDir, String), ToolError> {
        self.check_writable()?;
        self.check_visible(rel, false)?;
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(ToolError::invalid_input("the root itself cannot be changed", "name a path inside the root"));
        };
        let dir = self.open_dir(&parent)?;
        let full = dir.resolved.join(name);
        if full != *rel {
            self.check_visible(&full, false)?;
        }
        Ok((dir, name.to_string()))
    }

    fn open_parent_raw(&self, rel: &RelPath) -> Result<Option<(OwnedFd, String)>, ToolError> {
        self.check_in_place()?;
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(None);
        };
        // Deny and exclude before touching anything (the type, and so
        // `include`, is checked by the caller once it is known).
        self.check_visible(rel, true)?;
        let fd = self.beneath(&parent, OFlags::PATH | OFlags::DIRECTORY).map_err(|e| self.errno(&parent, e))?;
        Ok(Some((fd, name.to_string())))
    }

    /// Entries of an opened directory, hidden ones and non-UTF-8 names
    /// left out, sorted by name; at most `max` are read (the bool says
    /// whether the directory holds more).
    pub fn entries(&self, dir: &OpenDir, max: usize) -> Result<(Vec<Entry>, bool), ToolError> {
        let mut d = rustix::fs::Dir::read_from(&dir.fd).map_err(|e| self.errno(&dir.resolved, e))?;
        let mut out = Vec::new();
        let mut more = false;
        while let Some(ent) = d.read() {
            let ent = ent.map_err(|e| self.errno(&dir.resolved, e))?;
            let Ok(name) = ent.file_name().to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let Ok(st) = rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
            let rel = dir.resolved.join(name);
            if self.hidden(&rel, Kind::of(&st) == Kind::Dir).is_some() {
                continue;
            }
            if out.len() == max {
                more = true;
                break;
            }
            out.push(Entry { name: name.to_string(), meta: Meta::of(&st) });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((out, more))
    }
}

/// One directory entry (a symlink is listed as one, not followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub meta: Meta,
}

#[cfg(test)]
mod tests;
