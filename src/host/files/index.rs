//! Per-root NAME index: every visible entry of a root, in memory, built by
//! a background thread at start-up and kept current with inotify, so
//! `file_search` by name answers without walking the tree.
//!
//! - Built only through the root's fds ([`Root::open_dir`] +
//!   [`Root::entries`]): hidden entries (deny, exclude, include) are never
//!   indexed, symlinks are indexed as entries and never followed.
//! - inotify is used directly (rustix's `inotify` module, the same wrapper
//!   that does our openat2) rather than the `notify` crate: a watch must be
//!   put on the directory WE opened beneath the root (`/proc/self/fd/N` of
//!   that fd), its descriptor mapped to our compact directory id, and
//!   queue overflow / watch-limit exhaustion seen as such. notify's
//!   recursive mode walks string paths itself (walkdir) and keeps its own
//!   path map, which would duplicate the index and sidestep the resolver.
//! - Compact: one 12-byte [`Node`] per entry (parent id, name offset and
//!   length in one shared name arena, kind), a `HashTable<u32>` over
//!   (parent, name) that stores no key copies, watch maps for directories
//!   only. [`Tree::heap_bytes`] computes the size; the bench measures it.
//! - A root with more than `[files] index_max_entries` visible entries is
//!   not indexed (state `over_cap`): searches walk and say so. The same
//!   when the inotify watch limit runs out (`watch_limit`) or while the
//!   index is still being built.
//! - Queue overflow (`IN_Q_OVERFLOW`): everything is dropped and rebuilt.
//! - Renames are a removal plus a creation (a directory moved in is
//!   scanned afresh, so rules that match by path are applied to its new
//!   place); removed directories are swept with their subtree at the end of
//!   each batch of events.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, RwLock};

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;
use serde::Serialize;
use std::hash::BuildHasher;

use super::path::RelPath;
use super::root::{Kind, Root};

pub use super::config::DEFAULT_INDEX_MAX_ENTRIES;
/// Bytes read from the inotify fd at once.
const EVENT_BUFFER_BYTES: usize = 256 * 1024;
/// Names longer than this cannot exist on Linux (NAME_MAX); kept as u16.
const MAX_NAME: usize = 255;

/// What an index can do for searches right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IndexState {
    /// Being built (searches walk meanwhile).
    Building,
    /// Current: searches by name answer from memory.
    Ready,
    /// More entries than `index_max_entries`: not indexed, searches walk.
    OverCap,
    /// The inotify watch limit ran out: not kept, searches walk.
    WatchLimit,
    /// Indexing is off (`index_max_entries = 0`) or failed.
    Off,
}

/// Index state as `/readyz` and `file_roots` show it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct IndexInfo {
    pub state: IndexState,
    /// Entries indexed (0 unless ready).
    pub entries: usize,
    /// Bytes the index holds in memory (computed).
    pub bytes: usize,
    /// Why the index is not ready, when it is not.
    pub reason: Option<String>,
}

const K_FILE: u8 = 0;
const K_DIR: u8 = 1;
const K_SYMLINK: u8 = 2;
const K_OTHER: u8 = 3;
const K_FREE: u8 = 0xff;
/// A removed directory whose subtree waits for the sweep.
const K_DEAD_DIR: u8 = 0xfe;

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::File => K_FILE,
        Kind::Dir => K_DIR,
        Kind::Symlink => K_SYMLINK,
        _ => K_OTHER,
    }
}

/// The kind an index entry has.
pub fn kind_of(code: u8) -> Kind {
    match code {
        K_FILE => Kind::File,
        K_DIR => Kind::Dir,
        K_SYMLINK => Kind::Symlink,
        _ => Kind::Unknown,
    }
}

/// One entry: 12 bytes.
#[derive(Clone, Copy, Debug)]
struct Node {
    parent: u32,
    name_off: u32,
    name_len: u16,
    kind: u8,
}

/// The entries of one root. Node 0 is the root itself.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    names: Vec<u8>,
    by_name: HashTable<u32>,
    hasher: DefaultHashBuilder,
    free: Vec<u32>,
    live: usize,
    dead_dirs: usize,
    garbage: usize,
    /// Watch descriptor → directory, and back.
    wd_dir: HashMap<i32, u32>,
    dir_wd: HashMap<u32, i32>,
}

/// Why an insert failed.
#[derive(Debug, PartialEq, Eq)]
enum Full {
    Cap,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            nodes: vec![Node { parent: 0, name_off: 0, name_len: 0, kind: K_DIR }],
            names: Vec::new(),
            by_name: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            free: Vec::new(),
            live: 0,
            dead_dirs: 0,
            garbage: 0,
            wd_dir: HashMap::new(),
            dir_wd: HashMap::new(),
        }
    }
}

impl Tree {
    /// Entries (the root not counted).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Bytes held on the heap (capacities, not just lengths).
    pub fn heap_bytes(&self) -> usize {
        let maps = (self.wd_dir.capacity() + self.dir_wd.capacity()) * (4 + 4 + 1);
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.names.capacity()
            + self.by_name.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.free.capacity() * 4
            + maps
    }

    fn name(&self, id: u32) -> &[u8] {
        let n = &self.nodes[id as usize];
        let off = n.name_off as usize;
        &self.names[off..off + n.name_len as usize]
    }

    fn hash(&self, parent: u32, name: &[u8]) -> u64 {
        self.hasher.hash_one((parent, name))
    }

    /// The entry `name` in directory `parent`.
    pub fn lookup(&self, parent: u32, name: &str) -> Option<u32> {
        let h = self.hash(parent, name.as_bytes());
        self.by_name
            .find(h, |&id| self.nodes[id as usize].parent == parent && self.name(id) == name.as_bytes())
            .copied()
    }

    /// Adds (or updates the kind of) `name` in `parent`; at most `cap`
    /// live entries.
    fn insert(&mut self, parent: u32, name: &str, kind: u8, cap: usize) -> Result<u32, Full> {
        if let Some(id) = self.lookup(parent, name) {
            self.nodes[id as usize].kind = kind;
            return Ok(id);
        }
        if self.live >= cap || name.len() > MAX_NAME {
            return Err(Full::Cap);
        }
        let name_off = u32::try_from(self.names.len()).map_err(|_| Full::Cap)?;
        self.names.extend_from_slice(name.as_bytes());
        let node = Node { parent, name_off, name_len: name.len() as u16, kind };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                let id = u32::try_from(self.nodes.len()).map_err(|_| Full::Cap)?;
                self.nodes.push(node);
                id
            }
        };
        let h = self.hash(parent, name.as_bytes());
        let (nodes, names, hasher) = (&self.nodes, &self.names, &self.hasher);
        self.by_name.insert_unique(h, id, |&i| {
            let n = &nodes[i as usize];
            let off = n.name_off as usize;
            hasher.hash_one((n.parent, &names[off..off + n.name_len as usize]))
        });
        self.live += 1;
        Ok(id)
    }

    /// Removes one entry; a directory is marked dead and its subtree goes
    /// in the next [`Tree::sweep`].
    fn remove(&mut self, id: u32) {
        if id == 0 || self.nodes[id as usize].kind >= K_DEAD_DIR {
            return;
        }
        let n = self.nodes[id as usize];
        let h = self.hash(n.parent, self.name(id));
        if let Ok(e) = self.by_name.find_entry(h, |&i| i == id) {
            e.remove();
        }
        self.live -= 1;
        self.garbage += n.name_len as usize;
        if n.kind == K_DIR {
            self.nodes[id as usize].kind = K_DEAD_DIR;
            self.dead_dirs += 1;
        } else {
            self.nodes[id as usize].kind = K_FREE;
            self.free.push(id);
        }
    }

    /// Whether `id` is live and so are all its ancestors.
    fn attached(&self, mut id: u32) -> bool {
        loop {
            let n = &self.nodes[id as usize];
            if n.kind >= K_DEAD_DIR {
                return false;
            }
            if id == 0 {
                return true;
            }
            id = n.parent;
        }
    }

    /// Frees every entry below a dead directory; returns the watches to
    /// remove.
    fn sweep(&mut self) -> Vec<i32> {
        if self.dead_dirs == 0 {
            return Vec::new();
        }
        // 0 = unknown, 1 = attached, 2 = detached.
        let mut state = vec![0u8; self.nodes.len()];
        state[0] = 1;
        let mut chain = Vec::new();
        for i in 1..self.nodes.len() {
            let mut id = i;
            while state[id] == 0 {
                let n = self.nodes[id];
                if n.kind == K_FREE || n.kind == K_DEAD_DIR {
                    state[id] = 2;
                    break;
                }
                chain.push(id);
                id = n.parent as usize;
            }
            let s = state[id];
            for c in chain.drain(..) {
                state[c] = s;
            }
        }
        let mut unwatch = Vec::new();
        for (i, s) in state.iter().enumerate() {
            let k = self.nodes[i].kind;
            if *s != 2 || k == K_FREE {
                continue;
            }
            let id = i as u32;
            if k != K_DEAD_DIR {
                let n = self.nodes[i];
                let h = self.hash(n.parent, self.name(id));
                if let Ok(e) = self.by_name.find_entry(h, |&x| x == id) {
                    e.remove();
                }
                self.live -= 1;
                self.garbage += n.name_len as usize;
            }
            if let Some(wd) = self.dir_wd.remove(&id)
                && self.wd_dir.get(&wd) == Some(&id)
            {
                self.wd_dir.remove(&wd);
                unwatch.push(wd);
            }
            self.nodes[i].kind = K_FREE;
            self.free.push(id);
        }
        self.dead_dirs = 0;
        if self.garbage > self.names.len() / 2 && self.garbage > 1 << 20 {
            self.compact_names();
        }
        unwatch
    }

    /// Rewrites the name arena without the names of removed entries.
    fn compact_names(&mut self) {
        let mut names = Vec::with_capacity(self.names.len() - self.garbage);
        for n in self.nodes.iter_mut() {
            if n.kind == K_FREE {
                n.name_len = 0;
                n.name_off = 0;
                continue;
            }
            let off = n.name_off as usize;
            let new_off = names.len() as u32;
            names.extend_from_slice(&self.names[off..off + n.name_len as usize]);
            n.name_off = new_off;
        }
        self.names = names;
        self.garbage = 0;
    }

    fn set_watch(&mut self, dir: u32, wd: i32) {
        if let Some(old) = self.wd_dir.insert(wd, dir)
            && old != dir
        {
            self.dir_wd.remove(&old);
        }
        self.dir_wd.insert(dir, wd);
    }

    /// The root-relative path of `id` (None when it is detached).
    pub fn path(&self, id: u32) -> Option<RelPath> {
        let mut names = Vec::new();
        let mut cur = id;
        while cur != 0 {
            let n = &self.nodes[cur as usize];
            if n.kind >= K_DEAD_DIR {
                return None;
            }
            names.push(std::str::from_utf8(self.name(cur)).ok()?);
            cur = n.parent;
        }
        let mut p = RelPath::default();
        for n in names.iter().rev() {
            p = p.join(n);
        }
        Some(p)
    }

    /// The directory entry at `rel`, if indexed.
    pub fn find(&self, rel: &RelPath) -> Option<u32> {
        let mut id = 0;
        for c in rel.components() {
            id = self.lookup(id, c)?;
        }
        Some(id)
    }

    /// Calls `f(id, name, kind)` for every live entry, in id order. Names
    /// are bytes (they were `&str` when inserted): the scan validates
    /// nothing, a matcher converts only what it needs.
    pub fn for_each(&self, mut f: impl FnMut(u32, &[u8], Kind) -> std::ops::ControlFlow<()>) {
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            if n.kind >= K_DEAD_DIR {
                continue;
            }
            let off = n.name_off as usize;
            if f(i as u32, &self.names[off..off + n.name_len as usize], kind_of(n.kind)).is_break() {
                return;
            }
        }
    }

    /// Whether `id` lies below `ancestor` (and is attached).
    pub fn is_below(&self, mut id: u32, ancestor: u32) -> bool {
        while id != 0 {
            let n = &self.nodes[id as usize];
            if n.kind >= K_DEAD_DIR {
                return false;
            }
            id = n.parent;
            if id == ancestor {
                return self.attached(id);
            }
        }
        false
    }
}

/// Why a build stopped.
#[derive(Debug)]
enum Stop {
    OverCap,
    WatchLimit(String),
}

struct Shared {
    state: IndexState,
    reason: Option<String>,
    tree: Tree,
}

/// One root's index.
pub struct Index {
    root: Arc<Root>,
    cap: usize,
    shared: RwLock<Shared>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("root", &self.root.name).field("cap", &self.cap).finish()
    }
}

impl Index {
    /// Starts indexing `root` in a background thread (`cap` = 0: off).
    pub fn start(root: Arc<Root>, cap: usize) -> Arc<Index> {
        let state = if cap == 0 { IndexState::Off } else { IndexState::Building };
        let reason = (cap == 0).then(|| "indexing is off ([files] index_max_entries = 0)".to_string());
        let idx = Arc::new(Index { root, cap, shared: RwLock::new(Shared { state, reason, tree: Tree::default() }) });
        if cap > 0 {
            let me = idx.clone();
            let spawned = std::thread::Builder::new().name(format!("index-{}", idx.root.name)).spawn(move || me.run());
            if let Err(e) = spawned {
                idx.set(IndexState::Off, Some(format!("cannot start the index thread: {e}")), None);
            }
        }
        idx
    }

    fn set(&self, state: IndexState, reason: Option<String>, tree: Option<Tree>) {
        let mut s = self.shared.write().unwrap_or_else(|p| p.into_inner());
        s.state = state;
        s.reason = reason;
        if let Some(t) = tree {
            s.tree = t;
        }
    }

    /// State, entries and size.
    pub fn info(&self) -> IndexInfo {
        let s = self.shared.read().unwrap_or_else(|p| p.into_inner());
        let ready = s.state == IndexState::Ready;
        IndexInfo {
            state: s.state,
            entries: if ready { s.tree.len() } else { 0 },
            bytes: if ready { s.tree.heap_bytes() } else { 0 },
            reason: s.reason.clone(),
        }
    }

    /// Runs `f` on the tree when the index is ready; otherwise returns
    /// why not.
    pub fn with_ready<T>(&self, f: impl FnOnce(&Tree) -> T) -> Result<T, String> {
        let s = self.shared.read().unwrap_or_else(|p| p.into_inner());
        if s.state == IndexState::Ready {
            Ok(f(&s.tree))
        } else {
            let why = match s.state {
                IndexState::Building => "the index is still being built".to_string(),
                IndexState::OverCap => format!("the root has more than {} entries (index_max_entries)", self.cap),
                _ => s.reason.clone().unwrap_or_else(|| "the index is not available".to_string()),
            };
            Err(why)
        }
    }

    /// The thread: build, follow events, rebuild after an overflow.
    fn run(self: Arc<Self>) {
        loop {
            self.set(IndexState::Building, None, Some(Tree::default()));
            let ino = match inotify::init(CreateFlags::CLOEXEC) {
                Ok(fd) => fd,
                Err(e) => {
                    self.set(IndexState::Off, Some(format!("inotify unavailable: {e}")), Some(Tree::default()));
                    return;
                }
            };
            let started = std::time::Instant::now();
            let mut tree = Tree::default();
            match self.scan(&ino, &mut tree, 0, &RelPath::default()) {
                Ok(()) => {}
                Err(Stop::OverCap) => {
                    tracing::warn!(root = %self.root.name, cap = self.cap, "file root over index_max_entries: searches walk");
                    self.set(IndexState::OverCap, None, Some(Tree::default()));
                    return;
                }
                Err(Stop::WatchLimit(why)) => {
                    tracing::warn!(root = %self.root.name, %why, "inotify watch limit: searches walk");
                    self.set(IndexState::WatchLimit, Some(why), Some(Tree::default()));
                    return;
                }
            }
            tracing::info!(root = %self.root.name, entries = tree.len(), bytes = tree.heap_bytes(),
                ms = started.elapsed().as_millis() as u64, "file index ready");
            self.set(IndexState::Ready, None, Some(tree));
            match self.follow(&ino) {
                Ok(()) => continue, // overflow: rebuild
                Err(Stop::OverCap) => {
                    self.set(IndexState::OverCap, None, Some(Tree::default()));
                    return;
                }
                Err(Stop::WatchLimit(why)) => {
                    self.set(IndexState::WatchLimit, Some(why), Some(Tree::default()));
                    return;
                }
            }
        }
    }

    /// Adds a watch on the directory `rel` (node `dir`) and indexes its
    /// subtree. A directory that vanished or changed meanwhile is skipped
    /// (its events say what happened).
    fn scan(&self, ino: &OwnedFd, tree: &mut Tree, dir: u32, rel: &RelPath) -> Result<(), Stop> {
        let mut stack = vec![(dir, rel.clone())];
        while let Some((id, rel)) = stack.pop() {
            let Ok(d) = self.root.open_dir(&rel) else { continue };
            if d.resolved != rel {
                continue; // swapped for a symlink meanwhile
            }
            let proc = format!("/proc/self/fd/{}", d.fd.as_raw_fd());
            let mask = WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::ONLYDIR
                | WatchFlags::EXCL_UNLINK;
            match inotify::add_watch(ino.as_fd(), proc.as_str(), mask) {
                Ok(wd) => tree.set_watch(id, wd),
                Err(e @ (Errno::NOSPC | Errno::NOMEM)) => {
                    return Err(Stop::WatchLimit(format!(
                        "inotify watches exhausted ({e}; raise fs.inotify.max_user_watches)"
                    )));
                }
                Err(_) => continue,
            }
            let room = self.cap.saturating_sub(tree.len()).saturating_add(1);
            let Ok((entries, _)) = self.root.entries(&d, room) else { continue };
            for e in entries {
                let child = tree.insert(id, &e.name, kind_code(e.meta.kind), self.cap).map_err(|_| Stop::OverCap)?;
                if e.meta.kind == Kind::Dir {
                    stack.push((child, rel.join(&e.name)));
                }
            }
        }
        Ok(())
    }

    /// Applies events until the queue overflows (Ok) or the index must stop.
    fn follow(&self, ino: &OwnedFd) -> Result<(), Stop> {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); EVENT_BUFFER_BYTES];
        let mut reader = inotify::Reader::new(ino.as_fd(), &mut buf);
        loop {
            let (wd, flags, name) = match reader.next() {
                Ok(ev) => (ev.wd(), ev.events(), ev.file_name().and_then(|n| n.to_str().ok()).map(str::to_string)),
                Err(Errno::INTR) => continue,
                Err(e) => {
                    tracing::warn!(root = %self.root.name, error = %e, "inotify read failed: rebuilding");
                    return Ok(());
                }
            };
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                tracing::info!(root = %self.root.name, "inotify queue overflow: rebuilding the index");
                return Ok(());
            }
            let mut s = self.shared.write().unwrap_or_else(|p| p.into_inner());
            let tree = &mut s.tree;
            if flags.contains(ReadFlags::IGNORED) {
                if let Some(dir) = tree.wd_dir.remove(&wd) {
                    tree.dir_wd.remove(&dir);
                }
            } else if let (Some(&dir), Some(name)) = (tree.wd_dir.get(&wd), name)
                && tree.attached(dir)
            {
                if flags.intersects(ReadFlags::DELETE | ReadFlags::MOVED_FROM) {
                    if let Some(id) = tree.lookup(dir, &name) {
                        tree.remove(id);
                    }
                } else if flags.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO) {
                    self.created(ino, tree, dir, &name)?;
                }
            }
            if reader.is_buffer_empty() {
                for wd in tree.sweep() {
                    let _ = inotify::remove_watch(ino.as_fd(), wd);
                }
            }
        }
    }

    /// A name appeared in `dir`: index it if visible (a directory with its
    /// subtree, which may have filled before its watch existed).
    fn created(&self, ino: &OwnedFd, tree: &mut Tree, dir: u32, name: &str) -> Result<(), Stop> {
        let Some(parent) = tree.path(dir) else { return Ok(()) };
        let rel = parent.join(name);
        // lstat checks deny/exclude (and include, once the type is known).
        let Ok(st) = self.root.lstat(&rel) else { return Ok(()) };
        let kind = Kind::of(&st);
        if let Some(old) = tree.lookup(dir, name)
            && tree.nodes[old as usize].kind != kind_code(kind)
        {
            tree.remove(old);
        }
        let id = match tree.insert(dir, name, kind_code(kind), self.cap) {
            Ok(id) => id,
            Err(Full::Cap) => return Err(Stop::OverCap),
        };
        if kind == Kind::Dir {
            self.scan(ino, tree, id, &rel)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_insert_lookup_remove_and_sweep() {
        let mut t = Tree::default();
        let a = t.insert(0, "a", K_DIR, 10).expect("a");
        let b = t.insert(a, "b", K_DIR, 10).expect("b");
        let f = t.insert(b, "f.txt", K_FILE, 10).expect("f");
        let g = t.insert(0, "g.txt", K_FILE, 10).expect("g");
        assert_eq!(t.len(), 4);
        assert_eq!(t.lookup(b, "f.txt"), Some(f));
        assert_eq!(t.insert(b, "f.txt", K_FILE, 10), Ok(f), "idempotent");
        assert_eq!(t.path(f).expect("path").as_str(), "a/b/f.txt");
        assert_eq!(t.find(&RelPath::parse("a/b").expect("p")), Some(b));
        assert!(t.is_below(f, a) && !t.is_below(g, a));
        t.set_watch(b, 7);
        t.remove(a);
        assert_eq!(t.path(f), None, "detached until the sweep");
        assert_eq!(t.sweep(), vec![7]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(0, "a"), None);
        assert_eq!(t.lookup(0, "g.txt"), Some(g));
        // Freed slots are reused without resurrecting the old subtree.
        let h = t.insert(0, "h", K_DIR, 10).expect("h");
        assert!(h == a || h == b || h == f);
        assert_eq!(t.len(), 2);
        let mut seen = Vec::new();
        t.for_each(|_, n, _| {
            seen.push(String::from_utf8_lossy(n).into_owned());
            std::ops::ControlFlow::Continue(())
        });
        seen.sort();
        assert_eq!(seen, ["g.txt", "h"]);
    }

    #[test]
    fn cap_at_its_edge() {
        let mut t = Tree::default();
        for i in 0..3 {
            t.insert(0, &format!("f{i}"), K_FILE, 3).expect("under the cap");
        }
        assert_eq!(t.insert(0, "f3", K_FILE, 3), Err(Full::Cap));
        assert!(t.insert(0, "f2", K_FILE, 3).is_ok(), "existing entry is not new");
    }

    #[test]
    fn node_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 12);
    }
}
