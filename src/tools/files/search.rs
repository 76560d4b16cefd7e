//! `file_search`: entries by name glob and/or lines by content regex,
//! inside one root (or a directory of it).
//!
//! - Names come from the root's in-memory index when it is ready
//!   (`source: "index"`), otherwise from a walk through the root's fds
//!   (`source: "walk"`, with `source_note` saying why). Hidden entries are
//!   in neither.
//! - Content: every candidate file is opened with `Root::open_file` (deny
//!   list, hard links, FIFOs and devices refused there), searched with
//!   ripgrep's `grep-searcher` + `grep-regex` (binary files skipped). The
//!   regex is matched against the REDACTED line, so a search cannot probe a
//!   secret: a first pass over the raw bytes finds the files that may
//!   match at all (at ripgrep speed); only those files are read again line
//!   by line through the same `LineRedactor` as container logs, and a line
//!   is reported only when its redacted text matches. Lines whose raw text
//!   does not match but whose redacted text would (a search for the
//!   redaction marker itself) are not found: a miss, never a leak.
//! - Budgets: results, bytes of files searched, seconds; `stopped_by`
//!   names the one that ended the search.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobMatcher};
use grep_matcher::Matcher;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::caller::Caller;
use crate::auth::scopes::Scope;
use crate::host::files::walk::{GitFilter, walk};
use crate::host::files::{Index, Kind, Mode, RelPath, Root};
use crate::mcp::{ToolError, ToolSpec};
use crate::redact::LineRedactor;
use crate::tools::TailopsServer;

pub const SPECS: &[ToolSpec] =
    &[ToolSpec { name: "file_search", domain: "files", scope: Some(Scope::FilesRead), writes: false }];

/// Default and largest number of results (entries or matching lines).
pub const DEFAULT_MAX_RESULTS: usize = 100;
pub const MAX_RESULTS: usize = 1000;
/// Default and largest bytes of file content searched per call.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
pub const MAX_BYTES: u64 = 4 << 30;
/// Default and largest seconds one search may take.
pub const DEFAULT_MAX_SECONDS: u64 = 10;
pub const MAX_SECONDS: u64 = 30;
/// Most context lines before and after a match.
pub const MAX_CONTEXT: usize = 5;
/// Longest glob / regex accepted (bytes).
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Compiled regex size limit (bytes).
pub const REGEX_SIZE_LIMIT: usize = 8 << 20;
/// Lines longer than this are never matched nor shown (bytes).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Characters of a line (or context line) returned; the rest is cut.
pub const MAX_LINE_CHARS: usize = 500;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchInput {
    /// Where to search: `root:` (the whole root) or `root:sub/dir`.
    pub path: String,
    /// Name glob (`*.log`, `access.log.?`); a glob with `/` matches the
    /// path below `path` (`nginx/**/*.log`). `*` never crosses `/`.
    #[serde(default)]
    pub name: Option<String>,
    /// Regex over file contents, matched line by line against the
    /// REDACTED text (Rust regex syntax).
    #[serde(default)]
    pub content: Option<String>,
    /// Case-insensitive content regex (default false).
    #[serde(default)]
    pub case_insensitive: bool,
    /// Leave out what `.gitignore` files (and `.git` directories) ignore.
    #[serde(default)]
    pub gitignore: bool,
    /// Lines of context before and after each match (0-5, default 0).
    #[serde(default)]
    pub context: Option<usize>,
    /// Most results (1-1000, default 100).
    #[serde(default)]
    pub max_results: Option<usize>,
    /// Most bytes of file content searched (1 B - 4 GiB, default 256 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Most seconds spent (1-30, default 10).
    #[serde(default)]
    pub max_seconds: Option<u64>,
    /// Unredacted lines: only for callers with files:write on a
    /// read_write root.
    #[serde(default)]
    pub raw: bool,
}

/// Where names came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The root's in-memory name index.
    Index,
    /// A walk of the tree (index not ready, over its cap, or off).
    Walk,
}

/// The budget that ended a search early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    Results,
    Bytes,
    Time,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Found {
    /// `root:relative/path`.
    pub path: String,
    pub kind: Kind,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ContentMatch {
    /// `root:relative/path`.
    pub path: String,
    /// 1-based.
    pub line_number: u64,
    /// The (redacted) line.
    pub line: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchOutput {
    pub summary: String,
    pub source: Source,
    /// Why names did not come from the index.
    pub source_note: Option<String>,
    /// Name search (no `content`): the matching entries, sorted.
    pub entries: Vec<Found>,
    /// Content search: matching lines.
    pub matches: Vec<ContentMatch>,
    /// Files whose content was searched.
    pub files_scanned: usize,
    pub bytes_scanned: u64,
    /// Files skipped as binary or because they could not be opened
    /// (hard links, changed meanwhile, permissions).
    pub files_skipped: usize,
    /// True when a budget stopped the search: more may exist.
    pub truncated: bool,
    pub stopped_by: Option<Budget>,
    /// False only for `raw: true`.
    pub redacted: bool,
}

/// The checked request.
struct Query {
    name: Option<NameGlob>,
    content: Option<RegexMatcher>,
    gitignore: bool,
    context: usize,
    max_results: usize,
    max_bytes: u64,
    deadline: Instant,
    redact: bool,
}

struct NameGlob {
    m: GlobMatcher,
    /// Matches the path below the search directory, not the name.
    by_path: bool,
    /// The same glob as a plain string test when it has that shape.
    fast: Fast,
}

/// Name globs that are a literal with at most a leading and/or trailing
/// `*` (the common ones) are tested with byte comparisons: the index scan
/// then costs a few ns per entry instead of a regex run.
#[derive(Debug, PartialEq, Eq)]
enum Fast {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Glob,
}

impl Fast {
    fn of(glob: &str) -> Fast {
        let plain = |s: &str| !s.contains(['*', '?', '[', ']', '{', '}', '\\', '/']);
        if plain(glob) {
            return Fast::Exact(glob.to_string());
        }
        let (lead, trail) = (glob.starts_with('*'), glob.ends_with('*') && glob.len() > 1);
        let mid = &glob[usize::from(lead)..glob.len() - usize::from(trail)];
        if !plain(mid) {
            return Fast::Glob;
        }
        match (lead, trail) {
            (true, true) => Fast::Contains(mid.to_string()),
            (true, false) => Fast::Suffix(mid.to_string()),
            (false, true) => Fast::Prefix(mid.to_string()),
            (false, false) => Fast::Glob,
        }
    }
}

impl NameGlob {
    fn name_matches(&self, name: &str) -> bool {
        self.name_matches_bytes(name.as_bytes())
    }

    fn name_matches_bytes(&self, name: &[u8]) -> bool {
        match &self.fast {
            Fast::Exact(s) => name == s.as_bytes(),
            Fast::Prefix(s) => name.starts_with(s.as_bytes()),
            Fast::Suffix(s) => name.ends_with(s.as_bytes()),
            Fast::Contains(s) => memchr::memmem::find(name, s.as_bytes()).is_some(),
            Fast::Glob => std::str::from_utf8(name).is_ok_and(|n| self.m.is_match(n)),
        }
    }

    fn matches(&self, name: &str, below: impl FnOnce() -> String) -> bool {
        if self.by_path { self.m.is_match(below()) } else { self.name_matches(name) }
    }
}

fn bounded<T: PartialOrd + std::fmt::Display + Copy>(
    v: Option<T>,
    default: T,
    lo: T,
    hi: T,
    what: &str,
) -> Result<T, ToolError> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return Err(ToolError::invalid_input(format!("{what} {v} out of range"), format!("use {lo}-{hi}")));
    }
    Ok(v)
}

fn pattern_len(p: &str, what: &str) -> Result<(), ToolError> {
    if p.is_empty() || p.len() > MAX_PATTERN_BYTES {
        return Err(ToolError::invalid_input(
            format!("{what} is {} bytes long", p.len()),
            format!("use 1-{MAX_PATTERN_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn query(input: &SearchInput, redact: bool) -> Result<Query, ToolError> {
    if input.name.is_none() && input.content.is_none() {
        return Err(ToolError::invalid_input(
            "nothing to search for",
            "give name (a glob), content (a regex), or both",
        ));
    }
    let name = match &input.name {
        None => None,
        Some(g) => {
            pattern_len(g, "name")?;
            let m = GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| ToolError::invalid_input(format!("name glob: {e}"), "e.g. *.log or nginx/**/*.log"))?
                .compile_matcher();
            let by_path = g.contains('/');
            Some(NameGlob { m, by_path, fast: if by_path { Fast::Glob } else { Fast::of(g) } })
        }
    };
    let content = match &input.content {
        None => None,
        Some(r) => {
            pattern_len(r, "content")?;
            let m = RegexMatcherBuilder::new()
                .case_insensitive(input.case_insensitive)
                .line_terminator(Some(b'\n'))
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build(r)
                .map_err(|e| {
                    ToolError::invalid_input(format!("content regex: {e}"), "Rust regex syntax, matched per line")
                })?;
            Some(m)
        }
    };
    let secs = bounded(input.max_seconds, DEFAULT_MAX_SECONDS, 1, MAX_SECONDS, "max_seconds")?;
    Ok(Query {
        name,
        content,
        gitignore: input.gitignore,
        context: bounded(input.context, 0, 0, MAX_CONTEXT, "context")?,
        max_results: bounded(input.max_results, DEFAULT_MAX_RESULTS, 1, MAX_RESULTS, "max_results")?,
        max_bytes: bounded(input.max_bytes, DEFAULT_MAX_BYTES, 1, MAX_BYTES, "max_bytes")?,
        deadline: Instant::now() + Duration::from_secs(secs),
        redact,
    })
}

/// The path of `rel` below `base` (`a/b` below `x` for `x/a/b`).
fn below(base: &RelPath, rel: &RelPath) -> String {
    rel.components()[base.components().len().min(rel.components().len())..].join("/")
}

/// What the name phase found.
struct Candidates {
    list: Vec<(RelPath, Kind)>,
    source: Source,
    note: Option<String>,
    stopped: Option<Budget>,
}

/// Entries below `base` matching the name glob (only files when
/// `files_only`), at most `limit`; from the index when it is ready.
fn candidates(
    root: &Root,
    index: Option<&Index>,
    base: &RelPath,
    q: &Query,
    files_only: bool,
    limit: usize,
) -> Candidates {
    let mut git = q.gitignore.then(GitFilter::new);
    let mut list = Vec::new();
    let mut stopped = None;
    let wanted = |name: &str, rel_below: &dyn Fn() -> String, kind: Kind| {
        (!files_only || kind == Kind::File) && q.name.as_ref().is_none_or(|g| g.matches(name, rel_below))
    };
    let from_index = match index {
        None => Err("the root has no index".to_string()),
        Some(ix) => ix.with_ready(|tree| {
            let Some(base_id) = tree.find(base) else { return false };
            let mut i = 0u32;
            tree.for_each(|id, name, kind| {
                i = i.wrapping_add(1);
                if i.is_multiple_of(4096) && Instant::now() >= q.deadline {
                    stopped = Some(Budget::Time);
                    return ControlFlow::Break(());
                }
                if files_only && kind != Kind::File {
                    return ControlFlow::Continue(());
                }
                if base_id != 0 && !tree.is_below(id, base_id) {
                    return ControlFlow::Continue(());
                }
                // Name-only globs are checked on the bytes, before the
                // path is built.
                if let Some(g) = &q.name
                    && !g.by_path
                    && !g.name_matches_bytes(name)
                {
                    return ControlFlow::Continue(());
                }
                let Ok(name) = std::str::from_utf8(name) else { return ControlFlow::Continue(()) };
                let Some(rel) = tree.path(id) else { return ControlFlow::Continue(()) };
                if !wanted(name, &|| below(base, &rel), kind) {
                    return ControlFlow::Continue(());
                }
                list.push((rel, kind));
                if list.len() > limit {
                    stopped = Some(Budget::Results);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            true
        }),
    };
    let note = match from_index {
        Ok(true) => {
            if let Some(g) = git.as_mut() {
                list.retain(|(rel, kind)| !g.ignored(root, rel, *kind == Kind::Dir));
            }
            return Candidates { list, source: Source::Index, note: None, stopped };
        }
        // The directory is not in the index (a file, hidden, or created a
        // moment ago): walk it, the walk says what it is.
        Ok(false) => "the directory is not in the index".to_string(),
        Err(why) => why,
    };
    list.clear();
    stopped = None;
    let mut git2 = git.take();
    let mut n = 0u32;
    let deadline = q.deadline;
    let mut descend_git = q.gitignore.then(GitFilter::new);
    walk(
        root,
        base,
        |dir| descend_git.as_mut().is_none_or(|g| !g.ignored(root, dir, true)),
        |rel, kind| {
            n = n.wrapping_add(1);
            if n.is_multiple_of(1024) && Instant::now() >= deadline {
                stopped = Some(Budget::Time);
                return ControlFlow::Break(());
            }
            let name = rel.file_name().unwrap_or_default();
            if !wanted(name, &|| below(base, rel), kind) {
                return ControlFlow::Continue(());
            }
            if git2.as_mut().is_some_and(|g| g.ignored(root, rel, kind == Kind::Dir)) {
                return ControlFlow::Continue(());
            }
            list.push((rel.clone(), kind));
            if list.len() > limit {
                stopped = Some(Budget::Results);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        },
    );
    Candidates { list, source: Source::Walk, note: Some(note), stopped }
}

/// Content search state shared by the scanning threads: budgets are
/// counted atomically, so `max_results` and `max_bytes` hold exactly.
struct Shared {
    next: AtomicUsize,
    bytes: AtomicU64,
    found: AtomicUsize,
    /// 0 = running, else the budget that stopped the search.
    stop: AtomicU8,
}

impl Shared {
    fn stopped(&self) -> Option<Budget> {
        match self.stop.load(Ordering::Relaxed) {
            1 => Some(Budget::Results),
            2 => Some(Budget::Bytes),
            3 => Some(Budget::Time),
            _ => None,
        }
    }
    fn halt(&self, b: Budget) {
        let code = match b {
            Budget::Results => 1,
            Budget::Bytes => 2,
            Budget::Time => 3,
        };
        let _ = self.stop.compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// One scanning thread's results.
#[derive(Default)]
struct Scan {
    matches: Vec<ContentMatch>,
    files_scanned: usize,
    files_skipped: usize,
}

/// Threads that search file contents (the machine's cores, at most this).
pub const SCAN_THREADS: usize = 4;

/// Reads one line (without `\n`) into `buf`, at most [`MAX_LINE_BYTES`];
/// Ok(None) at EOF, Ok(Some(false)) for an over-long line (skipped).
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(any.then_some(!too_long));
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i, true),
            None => (avail.len(), false),
        };
        if !too_long {
            if buf.len().saturating_add(take) > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..take]);
            }
        }
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Some(!too_long));
        }
    }
}

fn clip_line(s: String) -> String {
    if s.chars().count() <= MAX_LINE_CHARS { s } else { s.chars().take(MAX_LINE_CHARS).collect::<String>() + "…" }
}

/// A sink that notes the first match (and binary data) and stops the
/// search there.
#[derive(Default)]
struct FirstMatch {
    hit: bool,
    binary: bool,
}

impl Sink for FirstMatch {
    type Error = std::io::Error;
    fn matched(&mut self, _: &Searcher, _: &SinkMatch<'_>) -> Result<bool, std::io::Error> {
        self.hit = true;
        Ok(false)
    }
    fn binary_data(&mut self, _: &Searcher, _: u64) -> Result<bool, std::io::Error> {
        self.binary = true;
        Ok(false)
    }
}

/// Searches one file; false when the search must stop.
#[allow(clippy::too_many_arguments)]
fn scan_file(
    root: &Root,
    rel: &RelPath,
    m: &RegexMatcher,
    searcher: &mut Searcher,
    q: &Query,
    sh: &Shared,
    s: &mut Scan,
) -> bool {
    if Instant::now() >= q.deadline {
        sh.halt(Budget::Time);
        return false;
    }
    let Ok(mut f) = root.open_file(rel) else {
        s.files_skipped += 1;
        return true;
    };
    let size = u64::try_from(f.stat.st_size).unwrap_or(0);
    let fits = sh
        .bytes
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_add(size).filter(|t| *t <= q.max_bytes));
    if fits.is_err() {
        sh.halt(Budget::Bytes);
        return false;
    }
    s.files_scanned += 1;
    // Pass 1, raw bytes: may this file match at all?
    let mut sink = FirstMatch::default();
    let r = searcher.search_file(m, &f.file, &mut sink);
    if sink.binary {
        // Binary: skipped whole, even when text came before the NUL.
        s.files_skipped += 1;
        return true;
    }
    let hit = sink.hit;
    if let Err(e) = r {
        tracing::debug!(path = %root.show(rel), error = %e, "file_search: file not searched");
        s.files_skipped += 1;
        return true;
    }
    if !hit {
        return true;
    }
    // Pass 2: the redacted lines, with context.
    if f.file.seek(SeekFrom::Start(0)).is_err() {
        s.files_skipped += 1;
        return true;
    }
    let mut reader = BufReader::with_capacity(64 * 1024, &mut f.file);
    let mut red = LineRedactor::default();
    let mut before: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut mine: Vec<ContentMatch> = Vec::new();
    // Indices (in `mine`) still collecting after-context.
    let mut open: Vec<usize> = Vec::new();
    let mut buf = Vec::new();
    let mut lno = 0u64;
    let mut full = false;
    loop {
        let line = match read_line(&mut reader, &mut buf) {
            Ok(Some(ok)) => ok,
            Ok(None) => break,
            Err(_) => break,
        };
        lno += 1;
        if buf.contains(&0) {
            // Binary after all: nothing from this file.
            sh.found.fetch_sub(mine.len(), Ordering::Relaxed);
            s.files_skipped += 1;
            return true;
        }
        let text = if !line {
            String::new()
        } else {
            let raw = String::from_utf8_lossy(&buf);
            if q.redact { red.line(&raw) } else { raw.into_owned() }
        };
        open.retain(|&i| {
            let c: &mut ContentMatch = &mut mine[i];
            c.after.push(clip_line(text.clone()));
            c.after.len() < q.context
        });
        if full && open.is_empty() {
            break;
        }
        if !full && line && m.is_match(text.as_bytes()).unwrap_or(false) {
            if sh.stop.load(Ordering::Relaxed) != 0 || sh.found.fetch_add(1, Ordering::Relaxed) >= q.max_results {
                sh.halt(Budget::Results);
                full = true;
                if open.is_empty() {
                    break;
                }
            } else {
                mine.push(ContentMatch {
                    path: root.show(rel),
                    line_number: lno,
                    line: clip_line(text.clone()),
                    before: before.iter().cloned().collect(),
                    after: Vec::new(),
                });
                if q.context > 0 {
                    open.push(mine.len() - 1);
                }
            }
        }
        if q.context > 0 {
            if before.len() == q.context {
                before.pop_front();
            }
            before.push_back(clip_line(text));
        }
        if Instant::now() >= q.deadline {
            sh.halt(Budget::Time);
            full = true;
            break;
        }
    }
    s.matches.append(&mut mine);
    !full
}

/// Searches the contents of `list` on up to [`SCAN_THREADS`] threads.
fn scan_all(root: &Root, list: &[(RelPath, Kind)], m: &RegexMatcher, q: &Query) -> (Scan, u64, Option<Budget>) {
    let sh = Shared {
        next: AtomicUsize::new(0),
        bytes: AtomicU64::new(0),
        found: AtomicUsize::new(0),
        stop: AtomicU8::new(0),
    };
    let threads =
        std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, SCAN_THREADS).min(list.len().max(1));
    let work = || {
        let mut searcher = SearcherBuilder::new()
            .binary_detection(BinaryDetection::quit(0))
            .line_number(false)
            .max_matches(Some(1))
            .heap_limit(Some(MAX_LINE_BYTES.saturating_mul(2)))
            .build();
        let mut s = Scan::default();
        while sh.stop.load(Ordering::Relaxed) == 0 {
            let i = sh.next.fetch_add(1, Ordering::Relaxed);
            let Some((rel, _)) = list.get(i) else { break };
            if !scan_file(root, rel, m, &mut searcher, q, &sh, &mut s) {
                break;
            }
        }
        s
    };
    let mut all = Scan::default();
    std::thread::scope(|sc| {
        let handles: Vec<_> = (1..threads).map(|_| sc.spawn(work)).collect();
        let mut parts = vec![work()];
        parts.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        for mut p in parts {
            all.matches.append(&mut p.matches);
            all.files_scanned += p.files_scanned;
            all.files_skipped += p.files_skipped;
        }
    });
    all.matches.sort_by(|a, b| a.path.cmp(&b.path).then(a.line_number.cmp(&b.line_number)));
    (all, sh.bytes.load(Ordering::Relaxed), sh.stopped())
}

/// Runs a whole search (blocking).
fn run(root: &Root, index: Option<&Index>, base: &RelPath, q: &Query) -> SearchOutput {
    let show = |rel: &RelPath| root.show(rel);
    let Some(m) = &q.content else {
        let c = candidates(root, index, base, q, false, q.max_results);
        let mut list = c.list;
        list.truncate(q.max_results);
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let entries: Vec<Found> = list.iter().map(|(r, k)| Found { path: show(r), kind: *k }).collect();
        let summary = format!(
            "{} entr{} matching in {} (from the {}){}",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            show(base),
            if c.source == Source::Index { "index" } else { "walk" },
            stop_note(c.stopped)
        );
        return SearchOutput {
            summary,
            source: c.source,
            source_note: c.note,
            entries,
            matches: Vec::new(),
            files_scanned: 0,
            bytes_scanned: 0,
            files_skipped: 0,
            truncated: c.stopped.is_some(),
            stopped_by: c.stopped,
            redacted: q.redact,
        };
    };
    let c = candidates(root, index, base, q, true, usize::MAX);
    let (s, bytes, stopped) =
        if c.stopped.is_some() { (Scan::default(), 0, c.stopped) } else { scan_all(root, &c.list, m, q) };
    let summary = format!(
        "{} matching line(s) in {} file(s) searched under {} ({} bytes){}",
        s.matches.len(),
        s.files_scanned,
        show(base),
        bytes,
        stop_note(stopped)
    );
    SearchOutput {
        summary,
        source: c.source,
        source_note: c.note,
        entries: Vec::new(),
        matches: s.matches,
        files_scanned: s.files_scanned,
        bytes_scanned: bytes,
        files_skipped: s.files_skipped,
        truncated: stopped.is_some(),
        stopped_by: stopped,
        redacted: q.redact,
    }
}

fn stop_note(b: Option<Budget>) -> &'static str {
    match b {
        None => "",
        Some(Budget::Results) => "; stopped at max_results",
        Some(Budget::Bytes) => "; stopped at max_bytes",
        Some(Budget::Time) => "; stopped at max_seconds",
    }
}

#[tool_router(router = files_search_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "file_search",
        description = "Find files by name glob and/or lines by content regex under a root directory. Names come from the root's in-memory index (source: index) or a walk (source: walk). Content is matched on the redacted text; results carry line numbers and optional context. Budgets: max_results, max_bytes, max_seconds (stopped_by says which ended it). Optional .gitignore awareness.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn file_search(
        &self,
        Parameters(input): Parameters<SearchInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<SearchOutput>, ToolError> {
        let (root, base) = self.file_path(&caller, &input.path)?;
        if input.raw && !(root.mode == Mode::ReadWrite && caller.effective_scopes().contains(&Scope::FilesWrite)) {
            return Err(ToolError::permission_denied(
                "raw content needs files:write on a read_write root",
                "call again without raw: true to get redacted lines",
            ));
        }
        let q = query(&input, !input.raw)?;
        let index: Option<Arc<Index>> = self.files().index(&root.name);
        tokio::task::spawn_blocking(move || {
            // The directory itself must be visible and a directory; a
            // symlink to a directory inside the root is searched where it
            // leads (results name the resolved paths).
            let base = root.open_dir(&base)?.resolved;
            Ok(Json(run(&root, index.as_deref(), &base, &q)))
        })
        .await
        .map_err(|e| ToolError::internal(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn input(name: Option<&str>, content: Option<&str>) -> SearchInput {
        SearchInput {
            path: "t:".into(),
            name: name.map(Into::into),
            content: content.map(Into::into),
            case_insensitive: false,
            gitignore: false,
            context: None,
            max_results: None,
            max_bytes: None,
            max_seconds: None,
            raw: false,
        }
    }

    #[test]
    fn bad_queries_are_refused() {
        assert!(query(&input(None, None), true).is_err());
        assert!(query(&input(Some("a["), None), true).is_err());
        assert!(query(&input(None, Some("(")), true).is_err());
        assert!(query(&input(None, Some("a\nb")), true).is_err(), "no multi-line patterns");
        let long = "x".repeat(MAX_PATTERN_BYTES);
        assert!(query(&input(Some(&long), None), true).is_ok());
        let longer = "x".repeat(MAX_PATTERN_BYTES + 1);
        assert!(query(&input(Some(&longer), None), true).is_err());
        for (ctx, ok) in [(MAX_CONTEXT, true), (MAX_CONTEXT + 1, false)] {
            let mut i = input(Some("*"), None);
            i.context = Some(ctx);
            assert_eq!(query(&i, true).is_ok(), ok, "context {ctx}");
        }
        for (n, ok) in [(0, false), (1, true), (MAX_RESULTS, true), (MAX_RESULTS + 1, false)] {
            let mut i = input(Some("*"), None);
            i.max_results = Some(n);
            assert_eq!(query(&i, true).is_ok(), ok, "max_results {n}");
        }
        for (n, ok) in [(0, false), (MAX_SECONDS, true), (MAX_SECONDS + 1, false)] {
            let mut i = input(Some("*"), None);
            i.max_seconds = Some(n);
            assert_eq!(query(&i, true).is_ok(), ok, "max_seconds {n}");
        }
        for (n, ok) in [(0, false), (MAX_BYTES, true), (MAX_BYTES + 1, false)] {
            let mut i = input(Some("*"), None);
            i.max_bytes = Some(n);
            assert_eq!(query(&i, true).is_ok(), ok, "max_bytes {n}");
        }
    }

    #[test]
    fn fast_name_globs_agree_with_globset() {
        let names = ["a.log", "x.log.1", "log", ".log", "file_077777.txt", "file_0777", "ab*c", "abc", "", "a*b"];
        for g in ["*.log", "file_0777*", "*777*", "log", "*", "a?c", "a[bc]c", "*.{log,txt}", "ab\\*c", "**"] {
            let ng = NameGlob {
                m: GlobBuilder::new(g).literal_separator(true).build().expect("glob").compile_matcher(),
                by_path: false,
                fast: Fast::of(g),
            };
            for n in names {
                assert_eq!(ng.name_matches(n), ng.m.is_match(n), "{g} on {n:?} ({:?})", ng.fast);
            }
        }
        assert_eq!(Fast::of("*.log"), Fast::Suffix(".log".into()));
        assert_eq!(Fast::of("a?c"), Fast::Glob);
    }

    #[test]
    fn lines_are_bounded() {
        let mut data = vec![b'a'; MAX_LINE_BYTES + 1];
        data.extend_from_slice(b"\nshort\n");
        let mut r = std::io::BufReader::with_capacity(4096, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf).expect("read"), Some(false));
        assert_eq!(read_line(&mut r, &mut buf).expect("read"), Some(true));
        assert_eq!(buf, b"short");
        assert_eq!(read_line(&mut r, &mut buf).expect("read"), None);
        let exact = vec![b'b'; MAX_LINE_BYTES];
        let mut r = std::io::BufReader::with_capacity(4096, &exact[..]);
        assert_eq!(read_line(&mut r, &mut buf).expect("read"), Some(true), "exactly the limit");
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use crate::host::files::config::{Mode as RootMode, RootConfig};

    #[test]
    fn content_search_over_a_real_root() {
        let t = tempfile::tempdir().expect("tmp");
        std::fs::write(t.path().join("a.txt"), "one\ntwo ERROR\nthree\n").expect("write");
        std::fs::write(t.path().join("db.conf"), "password=hunter2\n").expect("write");
        let cfg = RootConfig {
            name: "t".into(),
            path: t.path().to_path_buf(),
            mode: RootMode::Read,
            include: vec![],
            exclude: vec![],
            deny: None,
            allow_hard_links: false,
            allow_recursive_delete: false,
        };
        let root = Root::open(&cfg, &[]).expect("root");
        let mut i = super::tests::input(None, Some("ERROR"));
        i.context = Some(1);
        let q = query(&i, true).expect("query");
        let out = run(&root, None, &RelPath::default(), &q);
        assert_eq!(out.matches.len(), 1, "{out:?}");
        assert_eq!(out.matches[0].line_number, 2);
        assert_eq!(out.matches[0].before, ["one"]);
        assert_eq!(out.matches[0].after, ["three"]);
        let q = query(&super::tests::input(None, Some("hunter2")), true).expect("query");
        assert!(run(&root, None, &RelPath::default(), &q).matches.is_empty(), "secret is an oracle");
        let q = query(&super::tests::input(None, Some("password")), true).expect("query");
        let out = run(&root, None, &RelPath::default(), &q);
        assert_eq!(out.matches.len(), 1, "{out:?}");
        assert!(!out.matches[0].line.contains("hunter2"));
    }
}
