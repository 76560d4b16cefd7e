//! File-root fixtures: a dev-listen server with `[[files.roots]]` and an
//! admin `[local]` caller (high rate limits, so attack loops are not
//! throttled), and small helpers to build trees.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::mcp::{Client, Reply};
use super::server::ServerProcess;

/// One `[[files.roots]]` entry.
pub struct RootSpec<'a> {
    pub name: &'a str,
    pub path: &'a Path,
    /// `read` or `read_write`.
    pub mode: &'a str,
    /// Extra TOML lines for this root (e.g. `allow_recursive_delete = true`).
    pub extra: &'a str,
}

/// The config text: `[local]` with `roles` (e.g. `"\"admin\""`), high
/// limits, the roots, and `extra` appended.
pub fn config(roles: &str, roots: &[RootSpec<'_>], extra: &str) -> String {
    config_local(&format!("roles = [{roles}]"), roots, extra)
}

/// As [`config`], with `local` as the `[local]` section's lines (roles,
/// scopes, `files = { roots = [..] }`).
pub fn config_local(local: &str, roots: &[RootSpec<'_>], extra: &str) -> String {
    let mut s = format!(
        "[local]\nname = \"files\"\n{local}\n\
         [limits.rate]\ncalls_per_minute = 60000\nburst = 10000\nwrites_per_minute = 60000\nwrite_burst = 10000\n\
         max_denials = 100000\n"
    );
    for r in roots {
        s.push_str(&format!(
            "[[files.roots]]\nname = \"{}\"\npath = \"{}\"\nmode = \"{}\"\n{}\n",
            r.name,
            r.path.display(),
            r.mode,
            r.extra
        ));
    }
    s.push_str(extra);
    s
}

/// Starts a dev-listen server (state in `dir`) with `config`.
pub fn start(dir: &Path, config: &str) -> (ServerProcess, std::net::SocketAddr) {
    ServerProcess::start_dev(dir, config, &[])
}

/// Calls `tool` and asserts the HTTP exchange worked (the tool may fail).
pub async fn call(c: &mut Client, tool: &str, args: Value) -> Reply {
    let r = c.call(tool, args.clone()).await;
    assert_eq!(r.status, 200, "{tool} {args}: {}", r.body);
    r
}

/// The error category of a tool result (None on success).
pub fn category(r: &Reply) -> Option<String> {
    r.is_tool_error().then(|| r.error_category().unwrap_or("?").to_string())
}

/// Writes `files` (relative path → content) under `dir`, creating parents.
pub fn tree(dir: &Path, files: &[(&str, &str)]) {
    for (p, content) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
    }
}

/// Every entry under `dir`: files with their content, directories as
/// `<dir>`, symlinks as `-> target`, others as `<other>` (what "nothing
/// changed" is checked against).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                out.push((p.clone(), b"<dir>".to_vec()));
                stack.push(p);
            } else if ft.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&p).unwrap_or_default();
                out.push((p.clone(), format!("-> {}", target.display()).into_bytes()));
            } else {
                out.push((p.clone(), b"<other>".to_vec()));
            }
        }
    }
    out.sort();
    out
}

/// `{"path": p}`.
pub fn at(p: &str) -> Value {
    json!({ "path": p })
}
