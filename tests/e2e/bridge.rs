//! The client side against a real tailnet (headscale on loopback):
//! `tailops connect` bridging the Python SDK's real stdio client to a
//! TailOps node (tools, progress, cancellation, identity; the bridge node
//! is ephemeral and gone after exit), `tailops call` / `tailops tools`
//! output and exit codes, and the bridge's session renewal when the server
//! restarts (`--via-tailscaled` against a loopback dev server: the host's
//! own sockets, as with a host tailscaled).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::headscale::{BASE_DOMAIN, Headscale};
use crate::support::server::{ServeOpts, ServerProcess};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let py = root().join("target/tools/venv/bin/python");
    if !py.exists() {
        let st = Command::new("bash")
            .arg(root().join("tests/support/install-clients.sh"))
            .status()
            .expect("run install-clients.sh");
        assert!(st.success(), "installing the MCP test clients failed");
    }
    py
}

/// A tagged server node with a `logs` file root at `logs`, alice admin by
/// the headscale grants.
fn start_server(hs: &Headscale, hostname: &str, dir: &Path) -> ServerProcess {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    std::fs::write(logs.join("app.log"), "first line\n").expect("log file");
    let cfg = dir.join("tailops.toml");
    std::fs::write(&cfg, format!("[[files.roots]]\nname = \"logs\"\npath = \"{}\"\nmode = \"read\"\n", logs.display()))
        .expect("config");
    let key = hs.tagged_key("tag:tailops");
    ServerProcess::start(ServeOpts {
        hostname,
        control_url: &hs.url,
        state_dir: &dir.join("state"),
        auth_key: Some(&key),
        tags: None,
        ephemeral: false,
        extra_args: vec!["--config".into(), cfg.display().to_string()],
    })
}

/// The read-only file tools the `logs` root (mode read) adds to alice's
/// list (the server in support::mcp has no file root).
const READ_FILE_TOOLS: &[&str] =
    &["file_hash", "file_list", "file_read", "file_roots", "file_search", "file_stat", "file_tail"];

fn expected_tools() -> Vec<&'static str> {
    let mut all: Vec<&str> = crate::support::mcp::ALL_TOOLS.iter().chain(READ_FILE_TOOLS).copied().collect();
    all.sort();
    all
}

fn node_listed(hs: &Headscale, name: &str) -> bool {
    hs.nodes().as_array().is_some_and(|a| a.iter().any(|n| n["given_name"] == name))
}

fn audit_records(state: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(state.join("audit.jsonl")).expect("audit log");
    text.lines().map(|l| serde_json::from_str(l).expect("audit line")).collect()
}

#[test]
fn connect_bridges_the_python_stdio_client_across_the_tailnet() {
    let py = python();
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = start_server(&hs, "ops-b", tmp.path());
    let log = tmp.path().join("logs/app.log");

    let out = Command::new(&py)
        .arg(root().join("tests/clients/python_stdio_bridge.py"))
        .arg("--log")
        .arg(&log)
        .args(["--tail-path", "logs:app.log", "--"])
        .arg(ServerProcess::bin())
        .args(["connect", &server.dns_name, "--client-hostname", "bridge-py", "--control-url", &hs.url])
        .env("TS_AUTHKEY", hs.user_key("alice", true))
        .env("TS_DEBUG_USE_DERP_HTTP", "1")
        .env("RUST_LOG", "info")
        .output()
        .expect("run the python stdio client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python stdio client failed:\n{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stderr}"));

    // The handshake revision, alice's whole tool list, alice's identity
    // seen from the bridge's own tailnet node.
    assert_eq!(r["protocol"], "2025-11-25", "{r}");
    assert_eq!(r["tools"], json!(expected_tools()), "{r}");
    assert!(r["whoami"]["id"].as_str().is_some_and(|i| i.starts_with("user:alice")), "{r}");
    assert_eq!(r["whoami"]["node_name"], format!("bridge-py.{BASE_DOMAIN}"), "{r}");

    // Progress notifications went through, in order, carrying the lines
    // appended while the call followed; the result counts the same ones.
    let progress = r["progress"].as_array().expect("progress list");
    assert!(progress.len() >= 2, "{r}");
    let values: Vec<f64> = progress.iter().filter_map(|p| p["progress"].as_f64()).collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    assert!(progress.iter().all(|p| p["message"].as_str().is_some_and(|m| m.contains("bridge line"))), "{r}");
    assert_eq!(r["follow"]["is_error"], false, "{r}");
    assert_eq!(r["follow"]["structured"]["follow"]["progress_notifications"].as_u64(), Some(progress.len() as u64));

    // The cancelled call: progress arrived before, no result after, and the
    // session still answers.
    assert_eq!(r["cancel"]["finished"], false, "{r}");
    assert!(!r["cancel"]["progress_before_cancel"].as_array().expect("list").is_empty(), "{r}");
    assert_eq!(r["whoami_after_cancel"]["id"], r["whoami"]["id"], "{r}");

    // The bridge node was ephemeral: it logged out when the bridge exited
    // (bounded wait for the control plane to drop it).
    let deadline = Instant::now() + Duration::from_secs(20);
    while node_listed(&hs, "bridge-py") {
        assert!(Instant::now() < deadline, "bridge node still registered after exit: {}", hs.nodes());
        std::thread::sleep(Duration::from_millis(200));
    }
    // And its temp state dir is gone.
    assert!(stderr.contains("client node joined the tailnet"), "{stderr}");

    // The cancellation reached the server: the 30 s follow ended early.
    assert!(server.stop().success());
    let records = audit_records(&tmp.path().join("state"));
    let follow = records
        .iter()
        .find(|x| x["tool"] == "file_tail" && x["args"]["follow_secs"] == 30 && x.get("duration_ms").is_some())
        .unwrap_or_else(|| panic!("no record of the cancelled call: {records:?}"));
    assert!(follow["duration_ms"].as_u64().is_some_and(|ms| ms < 15_000), "ended on cancel, not after 30 s: {follow}");
    assert!(follow["principal"].as_str().is_some_and(|p| p.starts_with("user:alice")), "{follow}");
}

fn tailops(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(ServerProcess::bin())
        .args(args)
        .env_remove("TS_AUTHKEY")
        .env_remove("TS_AUTH_KEY")
        .env("TS_DEBUG_USE_DERP_HTTP", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run tailops")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn call_and_tools_print_tables_and_json_with_exit_codes() {
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let server = start_server(&hs, "ops-c", tmp.path());
    let alice = hs.user_key("alice", true);
    let bob = hs.user_key("bob", true);
    let host = server.dns_name.as_str();
    let base = |name: &'static str| -> Vec<String> {
        vec!["--client-hostname".into(), name.into(), "--control-url".into(), hs.url.clone()]
    };
    let run = |cmd: Vec<&str>, name: &'static str, key: &str| {
        let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        args.extend(base(name));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        tailops(&refs, &[("TS_AUTHKEY", key)])
    };

    // tools: a table with a header and one row per tool alice may use.
    let o = run(vec!["tools", host], "cli-tools", &alice);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("ACCESS") && lines[0].contains("DESCRIPTION"), "{table}");
    assert_eq!(lines.len(), expected_tools().len() + 1, "{table}");
    let row = lines.iter().find(|l| l.starts_with("whoami ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(" read "), "{row}");
    let row = lines.iter().find(|l| l.starts_with("process_signal ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(" write "), "{row}");

    // tools --json: the tools array, names as the server lists them.
    let o = run(vec!["tools", host, "--json"], "cli-tools-json", &alice);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let tools: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let mut names: Vec<&str> = tools.as_array().expect("array").iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, expected_tools());
    assert!(tools[0]["inputSchema"].is_object(), "{}", tools[0]);

    // bob, a viewer, sees fewer: the list is per caller.
    let o = run(vec!["tools", host, "--json"], "cli-tools-bob", &bob);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let bobs = serde_json::from_slice::<Value>(&o.stdout).expect("JSON");
    let bobs: Vec<&str> = bobs.as_array().expect("array").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(bobs.len() < names.len() && bobs.contains(&"whoami") && !bobs.contains(&"process_signal"), "{bobs:?}");

    // call: the structured result, indented, exit 0.
    let o = run(vec!["call", host, "whoami"], "cli-call", &alice);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("\n  \""), "indented for people: {out}");
    let who: Value = serde_json::from_str(&out).expect("JSON");
    assert!(who["id"].as_str().is_some_and(|i| i.starts_with("user:alice")), "{who}");
    assert_eq!(who["node_name"], format!("cli-call.{BASE_DOMAIN}"));

    // call --json: the whole CallToolResult.
    let o = run(vec!["call", host, "file_read", r#"{"path": "logs:app.log"}"#, "--json"], "cli-call-json", &alice);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let res: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(res["isError"], false, "{res}");
    assert!(res["structuredContent"].to_string().contains("first line"), "{res}");
    assert!(res["content"].is_array(), "{res}");

    // A tool error: exit 1, the structured error printed (JSON on --json).
    let o = run(vec!["call", host, "file_read", r#"{"path": "logs:missing.log"}"#, "--json"], "cli-err", &alice);
    assert_eq!(o.status.code(), Some(1), "{}{}", text(&o.stdout), text(&o.stderr));
    let res: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(res["isError"], true, "{res}");
    // Without --json too.
    let o = run(vec!["call", host, "file_read", r#"{"path": "logs:missing.log"}"#], "cli-err2", &alice);
    assert_eq!(o.status.code(), Some(1), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("not_found") || text(&o.stdout).contains("missing"), "{}", text(&o.stdout));

    // A tool bob may not use: refused, exit 1.
    let o = run(vec!["call", host, "process_signal", r#"{"pid": 1, "signal": "SIGTERM"}"#], "cli-bob", &bob);
    assert_eq!(o.status.code(), Some(1), "{}{}", text(&o.stdout), text(&o.stderr));

    // Bad arguments: exit 2 before anything joins the tailnet.
    for bad in ["[1]", "{pid"] {
        let o = tailops(&["call", host, "whoami", bad], &[]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("JSON"), "{}", text(&o.stderr));
    }
    let o = tailops(&["tools", "ops:0"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // No auth key and no state dir: a clear exit 2.
    let o = tailops(&["tools", host, "--control-url", &hs.url], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("auth key"), "{}", text(&o.stderr));

    // Every CLI node was ephemeral and is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ["cli-tools", "cli-call", "cli-err", "cli-bob"].iter().any(|n| node_listed(&hs, n)) {
        assert!(Instant::now() < deadline, "CLI nodes still registered: {}", hs.nodes());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A dev-listen server on a fixed loopback port (so a restart comes back
/// at the same address), returned once it accepts connections.
fn dev_server(dir: &Path, port: u16) -> std::process::Child {
    let cfg = dir.join("t.toml");
    std::fs::write(&cfg, "[local]\nname = \"dev\"\nroles = [\"admin\"]\n").expect("cfg");
    let child = Command::new(ServerProcess::bin())
        .args(["serve", "--dev-listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dev server");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "dev server did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn stop(mut child: std::process::Child) {
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    );
    let _ = child.wait();
}

#[test]
fn connect_renews_the_session_after_the_server_restarts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = crate::support::headscale::free_port();
    let first = dev_server(tmp.path(), port);

    let mut bridge = Command::new(ServerProcess::bin())
        .args(["connect", "--via-tailscaled", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn bridge");
    let mut stdin = bridge.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(bridge.stdout.take().expect("stdout"));
    let mut send = |v: Value| writeln!(stdin, "{v}").expect("write");
    let mut read = || -> Value {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bridge wrote non-JSON ({e}): {line:?}"))
    };

    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}));
    let init = read();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}));
    let who = read();
    assert_eq!(who["id"], 2);
    assert_eq!(who["result"]["structuredContent"]["id"], "local:dev", "{who}");

    // Garbage on stdin: a parse error, and the bridge carries on.
    writeln!(stdin, "{{not json").expect("write");
    let e = read();
    assert_eq!(e["error"]["code"], -32700, "{e}");

    // The server restarts: its sessions are gone. The next call is still
    // answered (the bridge replays initialize for a new session), and a
    // call while the server is down waits for it (dial retries).
    stop(first);
    let mut send = |v: Value| writeln!(stdin, "{v}").expect("write");
    send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}));
    std::thread::sleep(Duration::from_millis(300));
    let second = dev_server(tmp.path(), port);
    let who = read();
    assert_eq!(who["id"], 3, "{who}");
    assert_eq!(who["result"]["structuredContent"]["id"], "local:dev", "{who}");

    // EOF on stdin: the bridge ends cleanly.
    drop(stdin);
    let st = bridge.wait().expect("wait");
    assert!(st.success(), "{st:?}");
    stop(second);

    // Nothing listening any more: a request is answered with a bridge
    // error after the bounded retries, not left hanging.
    let mut bridge = Command::new(ServerProcess::bin())
        .args(["connect", "--via-tailscaled", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bridge");
    let mut stdin = bridge.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(bridge.stdout.take().expect("stdout"));
    writeln!(stdin, "{}", json!({"jsonrpc": "2.0", "id": 9, "method": "ping"})).expect("write");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    let e: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(e["id"], 9, "{e}");
    assert_eq!(e["error"]["code"], -32000, "{e}");
    drop(stdin);
    assert!(bridge.wait().expect("wait").success());
}

/// The MCP Server Card: on the tailnet it names this node's MCP endpoint,
/// both protocol revisions and tailnet-identity auth; a loopback dev
/// server has none (discovery is for the tailnet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_card_is_served_on_the_tailnet_only() {
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let server = start_server(&hs, "ops-card", tmp.path());
    let alice =
        crate::support::client::node("card-reader", &hs.url, &hs.user_key("alice", true), &tmp.path().join("a")).await;
    let res = crate::support::client::get(&alice, &server.dns_name, "/.well-known/mcp/server-card.json").await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let card = res.json();
    assert_eq!(card["$schema"], "https://static.modelcontextprotocol.io/schemas/v1/server-card.schema.json");
    assert_eq!(card["name"], format!("test.tailnet.ops-card/tailops"), "{card}");
    assert_eq!(card["version"], env!("CARGO_PKG_VERSION"));
    let remote = &card["remotes"][0];
    assert_eq!(remote["type"], "streamable-http", "{card}");
    assert_eq!(remote["url"], format!("http://{}/mcp", server.dns_name), "{card}");
    assert_eq!(remote["supportedProtocolVersions"], json!(["2025-11-25", "2026-07-28"]));
    let auth = &card["_meta"]["dev.tailops/auth"];
    assert_eq!(auth["tailnet_identity"]["required"], true, "{card}");
    assert_eq!(auth["oauth"]["required"], false, "{card}");
    // Reached by IP, the card names the endpoint as it was reached.
    let res = crate::support::client::get(&alice, &server.ips[0], "/.well-known/mcp/server-card.json").await;
    assert_eq!(res.json()["remotes"][0]["url"], format!("http://{}/mcp", server.ips[0]));
    alice.close().await.expect("close");

    let dev = tempfile::tempdir().expect("tmp");
    let (_dev, addr) = ServerProcess::start_dev(dev.path(), "[local]\nname = \"dev\"\nroles = [\"admin\"]\n", &[]);
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s)).await.expect("hs");
    tokio::spawn(conn);
    let req = hyper::Request::get("/.well-known/mcp/server-card.json")
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .expect("req");
    assert_eq!(tx.send_request(req).await.expect("response").status(), 404);
}

/// A caller on the node listener forging the serve proxy's identity
/// headers (`Tailscale-User-Login`, `Tailscale-App-Capabilities`) stays
/// who WhoIs says it is: bob claiming to be alice with admin gets bob's
/// viewer grant, on /whoami and through MCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_proxy_identity_headers_are_not_trusted_on_the_node_listener() {
    use http_body_util::{BodyExt, Full};
    let hs = Headscale::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let server = start_server(&hs, "ops-forge", tmp.path());
    let bob =
        crate::support::client::node("bob-forger", &hs.url, &hs.user_key("bob", true), &tmp.path().join("b")).await;
    let forged_caps = json!({ crate::support::headscale::CAP: [{ "roles": ["admin"] }] }).to_string();
    let stream =
        crate::support::client::dial_retry(&bob, &format!("{}:80", server.dns_name), Duration::from_secs(30)).await;
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let mut send = async |method: &str, path: &str, session: Option<&str>, body: Value| {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &server.dns_name)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("tailscale-user-login", "alice")
            .header("tailscale-user-name", "Alice")
            .header("tailscale-app-capabilities", &forged_caps);
        if let Some(s) = session {
            b = b.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25");
        }
        let body = if body.is_null() { String::new() } else { body.to_string() };
        tx.ready().await.expect("ready");
        let res = tx.send_request(b.body(Full::new(hyper::body::Bytes::from(body))).expect("req")).await.expect("res");
        let sid = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        (sid, String::from_utf8_lossy(&bytes).into_owned())
    };
    let (_, who) = send("GET", "/whoami", None, Value::Null).await;
    let who: Value = serde_json::from_str(&who).expect("JSON");
    assert_eq!(who["login_name"].as_str().map(|l| l.trim_end_matches('@')), Some("bob"), "{who}");
    assert_eq!(who["capabilities"][crate::support::headscale::CAP], json!([{"roles": ["viewer"]}]), "{who}");

    let (sid, _) = send(
        "POST",
        "/mcp",
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "forger", "version": "0"}}}),
    )
    .await;
    let sid = sid.expect("session");
    send("POST", "/mcp", Some(&sid), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    let (_, body) = send(
        "POST",
        "/mcp",
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}}),
    )
    .await;
    assert!(body.contains("user:bob"), "{body}");
    assert!(
        !body.contains("user:alice") && !body.contains("processes:signal"),
        "bob got alice's identity or scopes: {body}"
    );
    let (_, body) = send(
        "POST",
        "/mcp",
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "process_signal", "arguments": {"pid": 1, "signal": "SIGCONT"}}}),
    )
    .await;
    assert!(body.contains("\"isError\":true") || body.contains("\"error\""), "bob may not signal: {body}");
    bob.close().await.expect("close");
}

/// Environment, extra flags, and the word the refusal must contain.
type EnrollCase<'a> = (Vec<(&'a str, &'a str)>, Vec<String>, &'a str);

/// Enrollment settings are checked before the node starts (nothing here
/// may reach Tailscale's API, so only the refusals are exercised; minting a
/// key from a client secret needs Tailscale's SaaS): a client secret
/// without tags, a secret that is not one, and workload identity (not
/// linked into this build) each stop `serve` with exit 1 and the reason.
#[test]
fn enrollment_settings_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().expect("tmp");
    let secret_file = tmp.path().join("secret");
    std::fs::write(&secret_file, "tskey-client-k123\n").expect("write");
    let cases: Vec<EnrollCase> = vec![
        (vec![("TS_CLIENT_SECRET", "tskey-client-k123")], vec![], "advertise_tags"),
        (
            vec![("TS_CLIENT_SECRET", "tskey-auth-k123")],
            vec!["--advertise-tags".into(), "tag:tailops".into()],
            "tskey-client-",
        ),
        (vec![], vec!["--client-secret-file".into(), secret_file.display().to_string()], "advertise_tags"),
        (
            vec![("TS_CLIENT_ID", "abc"), ("TS_ID_TOKEN", "eyJ")],
            vec!["--advertise-tags".into(), "tag:tailops".into()],
            "identityfederation",
        ),
        (vec![("TS_AUDIENCE", "api.example")], vec![], "identityfederation"),
    ];
    for (i, (env, args, why)) in cases.into_iter().enumerate() {
        let out = Command::new(ServerProcess::bin())
            .args(["serve", "--hostname", "enroll", "--control-url", "http://127.0.0.1:9"])
            .arg("--state-dir")
            .arg(tmp.path().join(format!("s{i}")))
            .args(&args)
            .env_remove("TS_AUTHKEY")
            .env_remove("TS_AUTH_KEY")
            .env_remove("TS_CLIENT_SECRET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run serve");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "case {i}: {err}");
        assert!(err.contains(why), "case {i}: expected {why:?} in: {err}");
    }
}
