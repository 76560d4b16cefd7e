//! The layer rule, checked on the sources (a unit test, no runtime code):
//! each top-level module imports only the layers below it, and no two files
//! import each other in a circle. A newcomer who adds `use crate::tools` to
//! `http/` finds out here, not in review.
//!
//! It reads `src/**/*.rs` as text: every `crate::a::b` path and every
//! `super::x` path outside comments and `#[cfg(test)]` code is an edge from
//! the file's module to the longest module prefix it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// For each top-level module, the top-level modules it may import.
const ALLOWED: &[(&str, &[&str])] = &[
    ("redact", &[]),
    ("tailnet", &[]),
    ("shutdown", &["tailnet"]),
    ("telemetry", &[]),
    ("audit", &["redact"]),
    ("auth", &["tailnet"]),
    ("mcp", &["audit", "auth", "config"]),
    // host may use the tool contract's error type (mcp::contract), never
    // routing, HTTP or the tools.
    ("host", &["mcp", "redact"]),
    ("config", &["audit", "auth", "host"]),
    ("http", &["audit", "auth", "config", "mcp", "tailnet"]),
    ("tools", &["audit", "auth", "config", "host", "mcp", "redact"]),
    // ops: the operator's side (systemd notify, metrics, discovery).
    ("ops", &["audit", "auth", "config", "host", "http", "mcp", "tailnet"]),
    // bridge: the client side; it speaks the wire protocol, so it needs
    // only the tailnet.
    ("bridge", &["tailnet"]),
    ("server", &["audit", "auth", "config", "host", "http", "mcp", "ops", "shutdown", "tailnet", "tools"]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `host/sampler/mod.rs` → `host::sampler`; `lib.rs` → ``.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib" || l == "main") {
        parts.pop();
    }
    parts.join("::")
}

/// Code without comments and without the test module(s).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Paths following `prefix` (`crate::` or `super::`) in `code`.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i + prefix.len()..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(tail[..end].trim_end_matches(':'));
        }
        rest = &tail[end..];
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mods: BTreeMap<String, PathBuf> = files.iter().map(|f| (module_of(&root, f), f.clone())).collect();
    let resolve = |path: &str| -> Option<String> {
        let segs: Vec<&str> = path.split("::").collect();
        (1..=segs.len()).rev().map(|n| segs[..n].join("::")).find(|m| mods.contains_key(m))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, f) in &mods {
        let text = code(&std::fs::read_to_string(f).unwrap_or_default());
        let parent: Vec<&str> = m.split("::").collect();
        let parent = parent[..parent.len().saturating_sub(1)].join("::");
        let mut targets: Vec<String> = paths_after(&text, "crate::").into_iter().filter_map(resolve).collect();
        for p in paths_after(&text, "super::") {
            let full = if parent.is_empty() { p.to_string() } else { format!("{parent}::{p}") };
            targets.extend(resolve(&full));
        }
        let set = edges.entry(m.clone()).or_default();
        for t in targets {
            // A module naming its own ancestor (e.g. a re-export in the
            // parent's mod.rs) is the folder's own API, not a layer edge.
            if t != *m && !m.starts_with(&format!("{t}::")) && !t.is_empty() {
                set.insert(t);
            }
        }
    }
    edges
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut bad = Vec::new();
    for (m, ts) in graph() {
        let from = top(&m);
        for t in ts {
            let to = top(&t);
            if from == to || from.is_empty() || from == "main" || from == "layers" {
                continue;
            }
            if !allowed.get(from).is_some_and(|ok| ok.contains(&to)) {
                bad.push(format!("{m} → {t}"));
            }
        }
    }
    assert!(bad.is_empty(), "imports against the layer rule (see ALLOWED in src/layers.rs):\n{}", bad.join("\n"));
}

#[test]
fn no_two_files_import_each_other_in_a_circle() {
    let g = graph();
    // Tarjan's strongly connected components, iteratively small enough to
    // recurse on ~100 modules.
    struct St<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        cycles: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        let ws: Vec<&'a str> = s.g.get(v).map(|w| w.iter().map(String::as_str).collect()).unwrap_or_default();
        for w in ws {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.cycles.push(comp);
            }
        }
    }
    let mut s = St {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        cycles: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    assert!(s.cycles.is_empty(), "import circles between files: {:?}", s.cycles);
    assert!(g.len() > 50, "the sources were read ({} modules)", g.len());
}
