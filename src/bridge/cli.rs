//! `tailops tools HOST` and `tailops call HOST TOOL [JSON]`: one MCP
//! session (2025-11-25 handshake, ended with DELETE) per command.
//!
//! Output is for people by default (a table of tools; a call's structured
//! result as indented JSON, or its text), `--json` for scripts (the
//! `tools/list` tools array; the whole `CallToolResult`). Exit codes: 0 ok,
//! 1 the tool reported an error (`isError`) or the server refused the
//! request (JSON-RPC error), 2 anything else (bad arguments, unreachable).

use http_body_util::Full;
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Map, Value, json};

use super::relay::messages;
use super::transport::Transport;

/// The protocol revision the CLI speaks.
pub const PROTOCOL: &str = "2025-11-25";
/// Pages of `tools/list` followed at most (a server looping on cursors stops here).
pub const MAX_PAGES: usize = 100;
/// Width of the DESCRIPTION column in the tools table.
const DESCRIPTION_WIDTH: usize = 90;

/// How a command ended, as the process exit code says.
#[derive(Debug)]
pub enum Failure {
    /// The tool or the server said no (exit 1).
    Refused(String),
    /// Could not ask (exit 2).
    Broken(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Broken(e)
    }
}

/// An initialized MCP session over a transport.
pub struct Session<'a> {
    t: &'a Transport,
    id: Option<String>,
    next: u64,
}

impl<'a> Session<'a> {
    pub async fn open(t: &'a Transport) -> Result<Session<'a>, Failure> {
        let mut s = Session { t, id: None, next: 1 };
        let init = json!({
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": { "name": "tailops-cli", "version": env!("CARGO_PKG_VERSION") }
        });
        let (res, sid) = s.rpc("initialize", init).await?;
        s.id = sid;
        let got = res["protocolVersion"].as_str().unwrap_or_default();
        if got != PROTOCOL {
            return Err(Failure::Broken(anyhow::anyhow!("the server speaks MCP {got:?}, this client {PROTOCOL}")));
        }
        s.notify("notifications/initialized").await?;
        Ok(s)
    }

    fn post(&self, body: &Value) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let mut b = self
            .t
            .request(Method::POST)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(id) = &self.id {
            b = b.header("mcp-session-id", id).header("mcp-protocol-version", PROTOCOL);
        }
        Ok(b.body(Full::new(Bytes::from(body.to_string())))?)
    }

    async fn notify(&self, method: &str) -> Result<(), Failure> {
        let msg = json!({ "jsonrpc": "2.0", "method": method });
        let res = self.t.send_retry(|| self.post(&msg)).await?;
        if !res.status().is_success() {
            return Err(Failure::Broken(anyhow::anyhow!("{method}: HTTP {}", res.status())));
        }
        Ok(())
    }

    /// One request; the result, and the session id the answer carried.
    async fn rpc(&mut self, method: &str, params: Value) -> Result<(Value, Option<String>), Failure> {
        let id = self.next;
        self.next = self.next.saturating_add(1);
        let msg = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let res = self.t.send_retry(|| self.post(&msg)).await?;
        let status = res.status();
        let sid = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let answer = messages(res).await.into_iter().find(|m| m["id"] == json!(id));
        match answer {
            Some(m) if m.get("result").is_some() => Ok((m["result"].clone(), sid)),
            Some(m) if m.get("error").is_some() => {
                let e = &m["error"];
                let mut text = format!("{method}: {} (code {})", e["message"].as_str().unwrap_or("error"), e["code"]);
                if let Some(d) = e.get("data").filter(|d| !d.is_null()) {
                    text.push_str(&format!(": {d}"));
                }
                Err(Failure::Refused(text))
            }
            _ if status == hyper::StatusCode::FORBIDDEN || status == hyper::StatusCode::TOO_MANY_REQUESTS => {
                Err(Failure::Refused(format!("{method}: HTTP {status}")))
            }
            _ => Err(Failure::Broken(anyhow::anyhow!("{method}: HTTP {status} without an answer"))),
        }
    }

    /// Every tool, following cursors.
    pub async fn tools(&mut self) -> Result<Vec<Value>, Failure> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let (page, _) = self.rpc("tools/list", params).await?;
            out.extend(page["tools"].as_array().cloned().unwrap_or_default());
            match page["nextCursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                _ => return Ok(out),
            }
        }
        Err(Failure::Broken(anyhow::anyhow!("tools/list: more than {MAX_PAGES} pages")))
    }

    pub async fn call(&mut self, tool: &str, args: Map<String, Value>) -> Result<Value, Failure> {
        Ok(self.rpc("tools/call", json!({ "name": tool, "arguments": args })).await?.0)
    }

    /// Ends the session (DELETE); errors do not matter any more.
    pub async fn close(self) {
        if let Some(id) = &self.id {
            let req = self
                .t
                .request(Method::DELETE)
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", PROTOCOL)
                .body(Full::default());
            if let Ok(req) = req {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.t.send(req)).await;
            }
        }
    }
}

/// Parses the call's arguments: a JSON object (none = `{}`).
pub fn parse_args(raw: Option<&str>) -> Result<Map<String, Value>, String> {
    let Some(raw) = raw else { return Ok(Map::new()) };
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!("the arguments must be a JSON object like '{{\"pid\": 1}}', not {other}")),
        Err(e) => Err(format!("the arguments are not JSON ({e}); e.g. '{{\"pid\": 1}}'")),
    }
}

/// The tools as a table: NAME, ACCESS (read/write from the annotations),
/// DESCRIPTION (first sentence, cut to fit).
pub fn tools_table(tools: &[Value]) -> String {
    let width = tools.iter().filter_map(|t| t["name"].as_str()).map(str::len).max().unwrap_or(4).max(4);
    let mut out = format!("{:<width$}  {:<6}  DESCRIPTION\n", "NAME", "ACCESS");
    for t in tools {
        let name = t["name"].as_str().unwrap_or("?");
        let access = match t["annotations"]["readOnlyHint"].as_bool() {
            Some(true) => "read",
            Some(false) => "write",
            None => "-",
        };
        let desc = t["description"].as_str().unwrap_or_default();
        let first = desc.split_inclusive(". ").next().unwrap_or(desc).trim();
        let cut: String = if first.chars().count() > DESCRIPTION_WIDTH {
            first.chars().take(DESCRIPTION_WIDTH.saturating_sub(1)).chain(std::iter::once('…')).collect()
        } else {
            first.to_string()
        };
        out.push_str(&format!("{name:<width$}  {access:<6}  {cut}\n"));
    }
    out
}

/// A call's result for people: the structured content as indented JSON,
/// else the text parts.
pub fn result_text(result: &Value) -> String {
    if let Some(s) = result.get("structuredContent").filter(|s| !s.is_null()) {
        return serde_json::to_string_pretty(s).unwrap_or_default();
    }
    let parts: Vec<&str> =
        result["content"].as_array().map(|c| c.iter().filter_map(|p| p["text"].as_str()).collect()).unwrap_or_default();
    parts.join("\n")
}

/// `tailops tools`.
pub async fn tools(t: &Transport, as_json: bool) -> Result<String, Failure> {
    let mut s = Session::open(t).await?;
    let listed = s.tools().await;
    s.close().await;
    let listed = listed?;
    Ok(if as_json { serde_json::to_string_pretty(&listed).unwrap_or_default() + "\n" } else { tools_table(&listed) })
}

/// `tailops call`: the output, and whether the tool reported an error.
pub async fn call(
    t: &Transport,
    tool: &str,
    args: Map<String, Value>,
    as_json: bool,
) -> Result<(String, bool), Failure> {
    let mut s = Session::open(t).await?;
    let result = s.call(tool, args).await;
    s.close().await;
    let result = result?;
    let is_error = result["isError"].as_bool().unwrap_or(false);
    let text = if as_json { serde_json::to_string_pretty(&result).unwrap_or_default() } else { result_text(&result) };
    Ok((text + "\n", is_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_must_be_an_object() {
        assert!(parse_args(None).expect("none").is_empty());
        assert_eq!(parse_args(Some(r#"{"pid": 1}"#)).expect("obj")["pid"], 1);
        assert!(parse_args(Some("[1]")).expect_err("array").contains("JSON object"));
        assert!(parse_args(Some("{pid")).expect_err("bad").contains("not JSON"));
    }

    #[test]
    fn table_has_a_row_per_tool_and_cuts_long_descriptions() {
        let long = "x".repeat(DESCRIPTION_WIDTH + 10);
        let tools = vec![
            json!({"name": "whoami", "description": "Who you are. More text.", "annotations": {"readOnlyHint": true}}),
            json!({"name": "process_signal", "description": long, "annotations": {"readOnlyHint": false}}),
            json!({"name": "bare"}),
        ];
        let t = tools_table(&tools);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].contains("whoami") && lines[1].contains("read") && lines[1].ends_with("Who you are."));
        assert!(lines[2].contains("write") && lines[2].ends_with('…'));
        assert_eq!(lines[2].chars().rev().take_while(|c| *c == 'x' || *c == '…').count(), DESCRIPTION_WIDTH);
        assert!(lines[3].contains("bare") && lines[3].contains(" - "));
    }

    #[test]
    fn result_text_prefers_structured_content() {
        assert_eq!(result_text(&json!({"structuredContent": {"a": 1}, "content": []})), "{\n  \"a\": 1\n}");
        assert_eq!(result_text(&json!({"content": [{"type": "text", "text": "hi"}]})), "hi");
    }
}
