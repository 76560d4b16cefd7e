//! A deliberately small MCP-over-HTTP client for the tests: raw JSON-RPC
//! POSTs to `/mcp` (over the tailnet or loopback TCP), answers read from
//! JSON or SSE. Small on purpose: tests need to send malformed, hijacked and
//! rebinding requests that a real SDK would refuse to send. Real SDK
//! clients are tested separately (Python SDK, conformance suite).

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tailops::tailnet::Node;

pub const PROTOCOL: &str = "2025-11-25";

/// How long a request waits for its response head and then its body before
/// the test gives up: beyond the server's own 60 s `tool_timeout_secs`
/// default (and its read retries), so a call that is merely slow on a loaded
/// box (a grep over a 120k-entry journal once took over 30 s) gets the
/// server's answer instead of failing the test.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Every tool the server has, sorted (an admin sees all of them).
pub const ALL_TOOLS: &[&str] = &[
    "alerts",
    "audit_tail",
    "container_exec",
    "container_inspect",
    "container_kill",
    "container_list",
    "container_logs",
    "container_pause",
    "container_remove",
    "container_restart",
    "container_start",
    "container_stats",
    "container_stop",
    "container_top",
    "container_unpause",
    "cpu_usage",
    "disk_usage",
    "dns_lookup",
    "docker_info",
    "failed_units",
    "http_check",
    "image_inspect",
    "image_list",
    "image_pull",
    "image_remove",
    "journal_query",
    "journal_tail",
    "memory_usage",
    "metrics_history",
    "net_bandwidth",
    "net_connections",
    "net_interfaces",
    "network_list",
    "ping",
    "pressure",
    "process_info",
    "process_list",
    "process_signal",
    "prune",
    "sensors",
    "server_info",
    "service_list",
    "service_reload",
    "service_restart",
    "service_start",
    "service_status",
    "service_stop",
    "system_overview",
    "tailnet_ping",
    "tailnet_status",
    "tcp_check",
    "timer_list",
    "traceroute",
    "volume_list",
    "whoami",
];

/// Tools a viewer does not see (writes, admin, audit).
pub const VIEWER_HIDDEN: &[&str] = &[
    "audit_tail",
    "process_signal",
    "container_start",
    "container_stop",
    "container_restart",
    "container_pause",
    "container_unpause",
    "container_kill",
    "image_pull",
    "container_remove",
    "image_remove",
    "prune",
    "container_exec",
    "service_start",
    "service_stop",
    "service_restart",
    "service_reload",
    "tailnet_ping",
    "dns_lookup",
    "tcp_check",
    "http_check",
    "ping",
    "traceroute",
];

/// Tools an operator does not see (admin, audit).
pub const OPERATOR_HIDDEN: &[&str] = &["audit_tail", "container_remove", "image_remove", "prune", "container_exec"];

/// How to reach the server. The dial target is separate from the Host
/// header, so tests can send a foreign Host without resolving it.
#[derive(Clone)]
pub enum Via {
    /// Over the tailnet to this MagicDNS name or IP (port 80).
    Tailnet(Node, String),
    Tcp(std::net::SocketAddr),
}

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    /// The JSON-RPC response (last `data:` event for SSE), or the JSON body.
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    /// `result.structuredContent` of a tools/call.
    pub fn structured(&self) -> &Value {
        &self.body["result"]["structuredContent"]
    }
    pub fn is_tool_error(&self) -> bool {
        self.body["result"]["isError"] == json!(true)
    }
    pub fn error_category(&self) -> Option<&str> {
        self.structured()["error"]["category"].as_str()
    }
}

pub struct Client {
    pub via: Via,
    /// Value of the Host header (the server's name).
    pub host: String,
    pub session: Option<String>,
    pub extra_headers: Vec<(String, String)>,
    next_id: u64,
}

impl Client {
    pub fn new(via: Via, host: &str) -> Self {
        Self { via, host: host.to_string(), session: None, extra_headers: Vec::new(), next_id: 1 }
    }

    /// POSTs one JSON-RPC message with this client's session and headers.
    pub async fn post(&mut self, msg: Value) -> Reply {
        let mut headers = self.extra_headers.clone();
        if let Some(s) = &self.session {
            headers.push(("mcp-session-id".into(), s.clone()));
            headers.push(("mcp-protocol-version".into(), PROTOCOL.into()));
        }
        raw(&self.via, "POST", &self.host, msg.to_string().into_bytes(), &headers).await
    }

    pub async fn initialize(&mut self) -> Reply {
        let r = self
            .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "tailops-tests", "version": "1"}}}))
            .await;
        if r.status == 200 {
            self.session = r.header("mcp-session-id");
            let n = self.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
            assert!(n.status == 202 || n.status == 200, "initialized notification: {}", n.status);
        }
        r
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Reply {
        self.next_id += 1;
        let id = self.next_id;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await
    }

    pub async fn tool_names(&mut self) -> Vec<String> {
        let r = self.request("tools/list", json!({})).await;
        assert_eq!(r.status, 200, "tools/list: {}", r.body);
        let mut names: Vec<String> = r.body["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list result: {}", r.body))
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    pub async fn call(&mut self, tool: &str, args: Value) -> Reply {
        self.request("tools/call", json!({"name": tool, "arguments": args})).await
    }
}

/// One HTTP request to /mcp on a fresh connection.
pub async fn raw(via: &Via, method: &str, host: &str, body: Vec<u8>, headers: &[(String, String)]) -> Reply {
    request(via, method, host, "/mcp", body, headers).await
}

/// A GET of any path (e.g. /readyz).
pub async fn get(via: &Via, host: &str, path: &str) -> Reply {
    request(via, "GET", host, path, Vec::new(), &[]).await
}

pub async fn request(
    via: &Via,
    method: &str,
    host: &str,
    path: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> Reply {
    match via {
        Via::Tailnet(node, target) => {
            let s = crate::support::client::dial_retry(node, &format!("{target}:80"), Duration::from_secs(30)).await;
            exchange(s, method, host, path, body, headers).await
        }
        Via::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            exchange(s, method, host, path, body, headers).await
        }
    }
}

async fn exchange<S>(
    stream: S,
    method: &str,
    host: &str,
    path: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    let res = tokio::time::timeout(REPLY_TIMEOUT, sender.send_request(req))
        .await
        .unwrap_or_else(|_| panic!("no response within {REPLY_TIMEOUT:?}"))
        .expect("response");
    let reply = read_reply(res).await;
    drop(sender);
    driver.abort();
    reply
}

/// A response as a [`Reply`]: the JSON-RPC message (last `data:` event for
/// SSE) or the JSON body, read within [`REPLY_TIMEOUT`].
pub async fn read_reply(res: hyper::Response<hyper::body::Incoming>) -> Reply {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = tokio::time::timeout(REPLY_TIMEOUT, res.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("no body within {REPLY_TIMEOUT:?}"))
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let body = if headers.get("content-type").is_some_and(|c| c.to_str().unwrap_or("").starts_with("text/event-stream"))
    {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .next_back()
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text.into_owned()))
    };
    Reply { status, headers, body }
}

/// POSTs one JSON-RPC message on `session` (Host = the dial target) and
/// returns every SSE `data:` message — progress notifications and the
/// response —, waiting at most `within` for the body to end. Owned
/// arguments, so a test can `tokio::spawn` it and cancel meanwhile.
pub async fn post_sse(via: Via, session: String, body: Value, within: Duration) -> Vec<Value> {
    match via {
        Via::Tailnet(node, target) => {
            let s = crate::support::client::dial_retry(&node, &format!("{target}:80"), Duration::from_secs(30)).await;
            sse_exchange(s, &target, &session, body, within).await
        }
        Via::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            sse_exchange(s, &addr.to_string(), &session, body, within).await
        }
    }
}

async fn sse_exchange<S>(stream: S, host: &str, session: &str, body: Value, within: Duration) -> Vec<Value>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    let driver = tokio::spawn(conn);
    let req = hyper::Request::post("/mcp")
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let res = tx.send_request(req).await.expect("response");
    let bytes = tokio::time::timeout(within, res.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("body within {within:?}"))
        .expect("body")
        .to_bytes();
    driver.abort();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .collect()
}

/// Cancels request `id` of `c`'s session (`notifications/cancelled`, with
/// `reason` when given) and waits, up to `within`, for that call's
/// `tool_call` record of `tool` (the one `pick` selects) in `audit_tail`,
/// which it returns. The notification is sent again on every poll: one that
/// reaches the server before the request itself (its POST still on the way
/// on a loaded box) is ignored, and the call would run to its end.
pub async fn cancel_until_recorded(
    c: &mut Client,
    id: u64,
    reason: Option<&str>,
    tool: &str,
    within: Duration,
    pick: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + within;
    let mut params = json!({"requestId": id});
    if let Some(r) = reason {
        params["reason"] = json!(r);
    }
    loop {
        let r = c.post(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params})).await;
        assert!(r.status == 202 || r.status == 200, "cancel: {}", r.status);
        let t = ok(c, "audit_tail", json!({"tool": tool, "kind": "tool_call", "limit": 50})).await;
        if let Some(rec) = t["records"].as_array().and_then(|r| r.iter().find(|x| pick(x))).cloned() {
            return rec;
        }
        assert!(std::time::Instant::now() < deadline, "cancelled {tool} call never finished: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An initialized MCP client of the dev-listen server at `addr`.
pub async fn client(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::new(Via::Tcp(addr), &addr.to_string());
    assert_eq!(c.initialize().await.status, 200);
    c
}

/// The structured result of a call that must succeed.
pub async fn ok(c: &mut Client, tool: &str, args: Value) -> Value {
    let r = c.call(tool, args.clone()).await;
    assert_eq!(r.status, 200, "{tool} {args}: {}", r.body);
    assert!(!r.is_tool_error(), "{tool} {args}: {}", r.body);
    r.structured().clone()
}

/// The error of a call that must fail as a tool error (HTTP 200, a
/// structured error with a category and a message): (category, error).
pub async fn fails(c: &mut Client, tool: &str, args: Value) -> (String, Value) {
    let r = c.call(tool, args.clone()).await;
    assert_eq!(r.status, 200, "{tool} {args}: {}", r.body);
    assert!(r.is_tool_error(), "{tool} {args} should fail: {}", r.body);
    let e = r.structured()["error"].clone();
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    let cat = e["category"].as_str().unwrap_or_else(|| panic!("structured error for {args}: {}", r.body)).to_string();
    (cat, e)
}
