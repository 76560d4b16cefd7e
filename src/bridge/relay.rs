//! `tailops connect`: stdio ↔ Streamable HTTP, message for message.
//!
//! Each line on stdin is one JSON-RPC message, POSTed to the server in the
//! order read (the next is sent only once the server has answered the
//! previous one's headers, so the server sees them in order); each answer
//! body — one JSON message or an SSE stream of them (progress
//! notifications, server requests, the response) — is streamed to stdout
//! by its own task, so a long call does not hold up the next message (a
//! `notifications/cancelled` for it, say). Messages are not rewritten: the
//! bridge adds only the headers HTTP needs (`Mcp-Session-Id` learned from
//! `initialize`, `MCP-Protocol-Version` from the negotiated version or the
//! request's `_meta`). Both protocol revisions pass: 2025-11-25 with its
//! session and standalone GET stream, and the stateless 2026-07-28.
//!
//! Transient failures: a dial that fails is retried with backoff
//! ([`MAX_ATTEMPTS`]); a session the server no longer knows (404, e.g. it
//! restarted) is replaced by replaying the client's own `initialize`, then
//! the message is sent again. A request that still fails is answered with
//! a JSON-RPC error so the client never waits forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::transport::{MAX_ATTEMPTS, Transport};

/// Largest JSON-RPC message accepted on stdin or from the server.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Reopening the standalone stream: first delay, doubled per failure.
const RETRY_BASE: Duration = Duration::from_millis(250);
/// Messages waiting for stdout before readers wait.
const OUT_QUEUE: usize = 256;
/// How long answers still streaming when stdin closes may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on the DELETE that ends the session at exit.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// JSON-RPC error code the bridge uses for its own failures.
pub const BRIDGE_ERROR: i32 = -32000;

const SESSION: &str = "mcp-session-id";
const VERSION: &str = "mcp-protocol-version";
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// What the relay learned about the conversation.
#[derive(Default)]
struct State {
    session: Option<String>,
    /// Negotiated by `initialize` (2025-11-25 and older).
    protocol: Option<String>,
    /// The client's `initialize`, replayed when the session is lost.
    init: Option<Value>,
}

pub struct Relay {
    t: Transport,
    state: Mutex<State>,
    out: mpsc::Sender<String>,
}

/// Relays between `input`/`output` and the transport's target until
/// `input` ends or `shutdown` fires, then ends the session and closes the
/// transport (an ephemeral node leaves the tailnet).
pub async fn run<R, W>(t: Transport, input: R, output: W, shutdown: CancellationToken) -> anyhow::Result<()>
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<String>(OUT_QUEUE);
    let writer = tokio::spawn(write_out(rx, output));
    let relay = Arc::new(Relay { t, state: Mutex::new(State::default()), out: tx });
    let tasks = tokio_util::task::TaskTracker::new();
    let listener: Mutex<Option<tokio::task::JoinHandle<()>>> = Mutex::new(None);
    let mut lines = FramedRead::new(input, LinesCodec::new_with_max_length(MAX_MESSAGE_BYTES));
    tracing::info!(url = %relay.t.target.url(), "relaying stdio to the MCP server");
    loop {
        let line = tokio::select! {
            l = lines.next() => l,
            _ = shutdown.cancelled() => break,
        };
        let line = match line {
            None => break,
            Some(Ok(l)) => l,
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                relay.emit(rpc_error(Value::Null, -32700, &format!("message over {MAX_MESSAGE_BYTES} bytes"))).await;
                continue;
            }
            Some(Err(LinesCodecError::Io(e))) => {
                tracing::warn!(error = %e, "reading stdin");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                relay.emit(rpc_error(Value::Null, -32700, &format!("not JSON: {e}"))).await;
                continue;
            }
        };
        let r = relay.clone();
        // Sent in order; the answer streams in its own task.
        match r.post(&msg).await {
            Ok(res) => {
                let r2 = r.clone();
                let m = msg.clone();
                tasks.spawn(async move { r2.forward(&m, res).await });
            }
            Err(e) => r.fail(&msg, &e).await,
        }
        if msg["method"] == "notifications/initialized" {
            let mut slot = listener.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                let r = relay.clone();
                *slot = Some(tokio::spawn(async move { r.listen().await }));
            }
        }
    }
    if let Some(l) = listener.lock().unwrap_or_else(|p| p.into_inner()).take() {
        l.abort();
    }
    // Stdin closed: answers already streaming get a moment to arrive (a
    // piped `echo REQUEST | tailops connect` wants its answer), then the
    // session ends.
    tasks.close();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait()).await;
    relay.goodbye().await;
    drop(tasks);
    let Ok(relay) = Arc::try_unwrap(relay) else {
        anyhow::bail!("internal: relay still shared at exit");
    };
    drop(relay.out);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    relay.t.close().await;
    Ok(())
}

async fn write_out<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<String>, mut w: W) {
    while let Some(line) = rx.recv().await {
        let mut buf = line.into_bytes();
        buf.push(b'\n');
        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
}

fn rpc_error(id: Value, code: i32, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

fn is_request(msg: &Value) -> bool {
    msg.get("method").is_some() && msg.get("id").is_some_and(|i| !i.is_null())
}

impl Relay {
    async fn emit(&self, msg: Value) {
        let _ = self.out.send(msg.to_string()).await;
    }

    /// A request that could not be delivered gets an error answer.
    async fn fail(&self, msg: &Value, e: &anyhow::Error) {
        tracing::warn!(method = %msg["method"], error = %format!("{e:#}"), "message not delivered");
        if is_request(msg) {
            self.emit(rpc_error(msg["id"].clone(), BRIDGE_ERROR, &format!("tailops connect: {e:#}"))).await;
        }
    }

    fn headers_for(&self, msg: &Value) -> (Option<String>, Option<String>) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let version = msg["params"]["_meta"][META_VERSION].as_str().map(str::to_string).or_else(|| st.protocol.clone());
        (st.session.clone(), version)
    }

    /// POSTs one message: retries dials that fail, renews a lost session.
    async fn post(&self, msg: &Value) -> anyhow::Result<Response<Incoming>> {
        let is_init = msg["method"] == "initialize";
        if is_init {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            *st = State { init: Some(msg.clone()), ..State::default() };
        }
        let body = Bytes::from(msg.to_string());
        let mut renewed = false;
        loop {
            let (session, version) = self.headers_for(msg);
            let r =
                self.t.send_retry(|| self.post_request(body.clone(), session.as_deref(), version.as_deref())).await?;
            if r.status() == StatusCode::NOT_FOUND && session.is_some() && !is_init && !renewed {
                tracing::info!("the server lost our session (restarted?); initializing a new one");
                renewed = true;
                self.renew().await?;
                continue;
            }
            if is_init && let Some(s) = r.headers().get(SESSION).and_then(|v| v.to_str().ok()) {
                self.state.lock().unwrap_or_else(|p| p.into_inner()).session = Some(s.to_string());
            }
            return Ok(r);
        }
    }

    fn post_request(
        &self,
        body: Bytes,
        session: Option<&str>,
        version: Option<&str>,
    ) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let mut b = self
            .t
            .request(Method::POST)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = session {
            b = b.header(SESSION, s);
        }
        if let Some(v) = version {
            b = b.header(VERSION, v);
        }
        Ok(b.body(Full::new(body))?)
    }

    /// Replays the client's `initialize` (answer swallowed) and
    /// `notifications/initialized` for a fresh session.
    async fn renew(&self) -> anyhow::Result<()> {
        let init = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.session = None;
            st.init.clone()
        };
        let Some(init) = init else { anyhow::bail!("the session was lost and there is no initialize to replay") };
        let init = Bytes::from(init.to_string());
        let res = self.t.send_retry(|| self.post_request(init.clone(), None, None)).await?;
        anyhow::ensure!(res.status().is_success(), "re-initialize: HTTP {}", res.status());
        let session = res.headers().get(SESSION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut answer = None;
        for m in messages(res).await {
            if m.get("result").is_some() {
                answer = Some(m);
            }
        }
        let version = answer.as_ref().and_then(|a| a["result"]["protocolVersion"].as_str()).map(str::to_string);
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.session = session.clone();
            st.protocol = version.clone();
        }
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let note = Bytes::from(note.to_string());
        self.t.send_retry(|| self.post_request(note.clone(), session.as_deref(), version.as_deref())).await?;
        Ok(())
    }

    /// Streams one answer to stdout.
    async fn forward(&self, msg: &Value, res: Response<Incoming>) {
        let status = res.status();
        let is_init = msg["method"] == "initialize";
        let sse = content_type(&res).starts_with("text/event-stream");
        let mut answered = false;
        if status.is_success() || sse {
            let mut stream = body_messages(res);
            while let Some(m) = stream.next().await {
                match m {
                    Ok(m) => {
                        if m.get("id") == msg.get("id") && (m.get("result").is_some() || m.get("error").is_some()) {
                            answered = true;
                            if is_init && let Some(v) = m["result"]["protocolVersion"].as_str() {
                                self.state.lock().unwrap_or_else(|p| p.into_inner()).protocol = Some(v.to_string());
                            }
                        }
                        self.emit(m).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the server's answer");
                        break;
                    }
                }
            }
        } else {
            // A refusal before MCP (403, 429, 400 …): forward a JSON-RPC
            // body as is, describe anything else.
            let bytes = read_limited(res.into_body()).await.unwrap_or_default();
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) if v.get("jsonrpc").is_some() => {
                    answered = v.get("id") == msg.get("id");
                    self.emit(v).await;
                }
                _ => {
                    let text = String::from_utf8_lossy(&bytes);
                    let text: String = text.chars().take(500).collect();
                    if is_request(msg) {
                        self.emit(rpc_error(msg["id"].clone(), BRIDGE_ERROR, &format!("HTTP {status}: {text}"))).await;
                        answered = true;
                    }
                }
            }
        }
        if is_request(msg) && !answered {
            // The stream ended without the answer (cancelled, or the
            // connection broke): a cancelled request is never answered; for
            // the rest the client learns it here instead of waiting.
            tracing::debug!(id = %msg["id"], "the answer stream ended without a response");
        }
    }

    /// The standalone GET stream (server-initiated messages), reopened while
    /// the session lives. A server without one (405) is fine.
    async fn listen(&self) {
        let mut failures = 0u32;
        loop {
            let (session, version) = self.headers_for(&Value::Null);
            let Some(session) = session else { return };
            let mut b = self.t.request(Method::GET).header("accept", "text/event-stream").header(SESSION, &session);
            if let Some(v) = version {
                b = b.header(VERSION, v);
            }
            let Ok(req) = b.body(Full::default()) else { return };
            match self.t.send(req).await {
                Ok(res) if res.status().is_success() => {
                    failures = 0;
                    let mut stream = body_messages(res);
                    while let Some(Ok(m)) = stream.next().await {
                        self.emit(m).await;
                    }
                }
                Ok(res) => {
                    tracing::debug!(status = %res.status(), "no standalone stream");
                    if res.status() != StatusCode::NOT_FOUND {
                        return;
                    }
                    failures = failures.saturating_add(1);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "standalone stream");
                    failures = failures.saturating_add(1);
                }
            }
            if failures >= MAX_ATTEMPTS {
                return;
            }
            tokio::time::sleep(RETRY_BASE.saturating_mul(1 << failures.min(6))).await;
        }
    }

    /// Ends the session (DELETE), bounded: exit must stay quick.
    async fn goodbye(&self) {
        let (session, version) = self.headers_for(&Value::Null);
        let Some(session) = session else { return };
        let mut b = self.t.request(Method::DELETE).header(SESSION, session);
        if let Some(v) = version {
            b = b.header(VERSION, v);
        }
        if let Ok(req) = b.body(Full::default()) {
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, self.t.send(req)).await;
        }
    }
}

fn content_type(res: &Response<Incoming>) -> String {
    res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase()
}

async fn read_limited(body: Incoming) -> anyhow::Result<Bytes> {
    Limited::new(body, MAX_MESSAGE_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))
}

type MessageStream = std::pin::Pin<Box<dyn futures::Stream<Item = anyhow::Result<Value>> + Send>>;

/// The JSON-RPC messages of an answer: one JSON body, or every SSE event
/// carrying data (priming events without data are skipped).
pub(crate) fn body_messages(res: Response<Incoming>) -> MessageStream {
    if content_type(&res).starts_with("text/event-stream") {
        let events = sse_stream::SseStream::new(res.into_body());
        Box::pin(events.filter_map(|e| async move {
            match e {
                Ok(sse) => {
                    let data = sse.data?;
                    if data.trim().is_empty() {
                        return None;
                    }
                    if data.len() > MAX_MESSAGE_BYTES {
                        return Some(Err(anyhow::anyhow!("SSE event over {MAX_MESSAGE_BYTES} bytes")));
                    }
                    Some(serde_json::from_str::<Value>(&data).map_err(|e| anyhow::anyhow!("SSE event not JSON: {e}")))
                }
                Err(e) => Some(Err(anyhow::anyhow!("SSE stream: {e}"))),
            }
        }))
    } else {
        Box::pin(
            futures::stream::once(async move {
                let bytes = read_limited(res.into_body()).await?;
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Value::Null);
                }
                serde_json::from_slice::<Value>(&bytes).map_err(|e| anyhow::anyhow!("answer not JSON: {e}"))
            })
            .filter(|v| futures::future::ready(!matches!(v, Ok(Value::Null)))),
        )
    }
}

/// Every message of an answer, collected (errors end the list).
pub(crate) async fn messages(res: Response<Incoming>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut s = body_messages(res);
    while let Some(Ok(m)) = s.next().await {
        out.push(m);
    }
    out
}
