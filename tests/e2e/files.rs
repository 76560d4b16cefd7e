//! File roots through the real server: no root → no file tools, roots and
//! their narrowing per caller, listings (pagination, depth, sort, hidden
//! secrets), stat through symlinks.

use std::os::unix::fs::symlink;

use serde_json::{Value, json};

use crate::support::files::{self, RootSpec, at, call, category};

fn names(v: &Value) -> Vec<String> {
    v["entries"].as_array().expect("entries").iter().map(|e| e["name"].as_str().expect("name").to_string()).collect()
}

/// Deny by default: without a root the file tools do not exist, in the
/// list and when called by name.
#[tokio::test]
async fn no_root_no_file_tools() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut server, addr) = files::start(tmp.path(), &files::config("\"admin\"", &[], ""));
    let mut c = crate::support::mcp::client(addr).await;
    let tools = c.tool_names().await;
    assert!(tools.iter().all(|t| !t.starts_with("file_")), "file tools offered without a root: {tools:?}");
    assert!(tools.iter().any(|t| t == "whoami"), "{tools:?}");
    let r = c.call("file_list", at("x:")).await;
    let text = r.body.to_string();
    assert!(r.is_tool_error() || text.contains("error"), "file_list callable without a root: {text}");
    assert!(!text.contains("\"entries\""), "{text}");
    server.stop();
}

#[tokio::test]
async fn roots_are_narrowed_per_caller() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    files::tree(&a, &[("x.txt", "a")]);
    files::tree(&b, &[("y.txt", "b")]);
    let roots = [
        RootSpec { name: "aa", path: &a, mode: "read", extra: "" },
        RootSpec { name: "bb", path: &b, mode: "read", extra: "" },
    ];
    let cfg = files::config_local("roles = [\"admin\"]\nfiles = { roots = [\"aa\"] }", &roots, "");
    let (mut server, addr) = files::start(tmp.path(), &cfg);
    let mut c = crate::support::mcp::client(addr).await;
    let r = call(&mut c, "file_roots", json!({})).await;
    let shown: Vec<&str> =
        r.structured()["roots"].as_array().expect("roots").iter().map(|r| r["name"].as_str().expect("n")).collect();
    assert_eq!(shown, ["aa"]);
    assert_eq!(names(call(&mut c, "file_list", at("aa:")).await.structured()), ["x.txt"]);
    // The other root is reported exactly like a root that does not exist.
    let hidden = call(&mut c, "file_list", at("bb:")).await;
    let missing = call(&mut c, "file_list", at("zz:")).await;
    assert_eq!(category(&hidden).as_deref(), Some("not_found"), "{}", hidden.body);
    assert_eq!(hidden.structured()["error"]["hint"], missing.structured()["error"]["hint"]);
    assert!(!hidden.body.to_string().contains("y.txt"));
    server.stop();
}

#[tokio::test]
async fn listing_pages_sorts_descends_and_hides_secrets() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("root");
    // Sizes up to 24,000 bytes: larger than a directory (4,096).
    let mut tree: Vec<(String, String)> = (0..25).map(|i| (format!("f{i:02}.log"), "x".repeat(i * 1000))).collect();
    tree.push(("deep/a/b/c.txt".into(), "c".into()));
    tree.push((".env".into(), "TOKEN=1".into()));
    tree.push(("keys/id_ed25519".into(), "k".into()));
    tree.push(("home/.aws/credentials".into(), "k".into()));
    let refs: Vec<(&str, &str)> = tree.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    files::tree(&root, &refs);
    let spec = [RootSpec { name: "r", path: &root, mode: "read", extra: "" }];
    let (mut server, addr) = files::start(tmp.path(), &files::config("\"admin\"", &spec, ""));
    let mut c = crate::support::mcp::client(addr).await;

    // Pages of 10 cover every visible entry exactly once, in name order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = json!({"path": "r:", "limit": 10});
        if let Some(cur) = &cursor {
            args["cursor"] = json!(cur);
        }
        let r = call(&mut c, "file_list", args).await;
        let v = r.structured();
        assert!(!r.is_tool_error(), "{}", r.body);
        seen.extend(names(v));
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            assert_eq!(v["truncated"], false);
            assert_eq!(v["total"].as_u64(), Some(seen.len() as u64));
            break;
        }
    }
    let mut want: Vec<String> = (0..25).map(|i| format!("f{i:02}.log")).collect();
    want.extend(["deep".to_string(), "home".to_string(), "keys".to_string()]);
    want.sort();
    assert_eq!(seen, want, ".env must never be listed");

    // Sorted by size: largest first.
    let r = call(&mut c, "file_list", json!({"path": "r:", "sort_by": "size", "limit": 1})).await;
    assert_eq!(names(r.structured()), ["f24.log"]);
    // Depth: the nested file appears with its root-relative path; the
    // denied ones never do, at any depth.
    let r = call(&mut c, "file_list", json!({"path": "r:", "depth": 8, "limit": 1000})).await;
    let paths: Vec<&str> =
        r.structured()["entries"].as_array().expect("e").iter().map(|e| e["path"].as_str().expect("p")).collect();
    assert!(paths.contains(&"r:deep/a/b/c.txt"), "{paths:?}");
    for secret in ["id_ed25519", "credentials", ".env", ".aws"] {
        assert!(!r.body.to_string().contains(secret), "{secret} listed: {paths:?}");
    }
    // Limits at their edges.
    for (args, ok) in [
        (json!({"path": "r:", "limit": 1000}), true),
        (json!({"path": "r:", "limit": 1001}), false),
        (json!({"path": "r:", "limit": 0}), false),
        (json!({"path": "r:", "depth": 8}), true),
        (json!({"path": "r:", "depth": 9}), false),
        (json!({"path": "r:", "cursor": "nope"}), false),
    ] {
        let r = call(&mut c, "file_list", args.clone()).await;
        assert_eq!(category(&r).is_none(), ok, "{args}: {}", r.body);
        if !ok {
            assert_eq!(category(&r).as_deref(), Some("invalid_input"), "{args}");
        }
    }
    server.stop();
}

#[tokio::test]
async fn stat_follows_inside_symlinks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("root");
    files::tree(&root, &[("logs/app.log", "hello"), ("logs/.env.local", "K=v")]);
    symlink("logs/app.log", root.join("current")).expect("symlink");
    let spec = [RootSpec { name: "r", path: &root, mode: "read", extra: "" }];
    let (mut server, addr) = files::start(tmp.path(), &files::config("\"viewer\"", &spec, ""));
    let mut c = crate::support::mcp::client(addr).await;
    let r = call(&mut c, "file_stat", at("r:current")).await;
    let v = r.structured();
    assert_eq!(v["entry"]["kind"], "file", "{}", r.body);
    assert_eq!(v["entry"]["size"], 5);
    assert_eq!(v["entry"]["symlink_target"], "logs/app.log");
    assert_eq!(v["resolved_path"], "r:logs/app.log");
    assert_eq!(v["entry"]["owner"], "root");
    let r = call(&mut c, "file_list", at("r:logs")).await;
    assert_eq!(names(r.structured()), ["app.log"]);
    server.stop();
}
