//! MCP over stdin/stdout (`serve --stdio`), with the same front door as
//! HTTP: every line is checked before rmcp sees it. A line that is not
//! JSON gets a JSON-RPC parse error (-32700) instead of silence; a line
//! over the request-size limit gets -32600; a `tools/call` whose
//! `arguments` is not an object is admitted (rate limit, authorization,
//! audit) and answered `invalid_input` here, because rmcp would reject it
//! with a bare protocol error that nothing audits. Everything else is
//! passed to rmcp unchanged.

use std::sync::Arc;

use rmcp::{ServerHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Spine;
use super::call::reject_non_object;
use super::contract::PARSE_ERROR;
use crate::auth::caller::Caller;

/// JSON-RPC "invalid request" (here: a line over the size limit).
const INVALID_REQUEST: i32 = -32600;

/// Serves `server` on `input`/`output` until input ends or `shutdown`.
pub async fn serve<S, R, W>(
    server: S,
    spine: Arc<Spine>,
    caller: Caller,
    input: R,
    output: W,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: ServerHandler,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    const PIPE: usize = 256 * 1024;
    let (to_rmcp, rmcp_in) = tokio::io::duplex(PIPE);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(PIPE);
    // The pumps run before `serve`: it answers `initialize` before it
    // returns, and that request comes through them.
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(64);
    // One writer owns stdout, so our answers and rmcp's never interleave
    // inside a line.
    let writer = tokio::spawn(write_lines(out_rx, output));
    let relay = tokio::spawn(relay_lines(from_rmcp, out_tx.clone()));
    let limit = spine.cfg.limits.max_request_body_bytes;
    let pump = tokio::spawn(pump(input, to_rmcp, out_tx, spine, caller, limit));
    let running = tokio::select! {
        r = server.serve((rmcp_in, rmcp_out)) => r?,
        _ = shutdown.cancelled() => {
            pump.abort();
            return Ok(());
        }
    };
    let ct = running.cancellation_token();

    tokio::select! {
        r = running.waiting() => { r?; }
        _ = shutdown.cancelled() => { ct.cancel(); }
    }
    pump.abort();
    let _ = relay.await;
    let _ = writer.await;
    Ok(())
}

async fn write_lines<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<Vec<u8>>, mut out: W) {
    while let Some(mut line) = rx.recv().await {
        line.push(b'\n');
        if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
            return;
        }
    }
}

async fn relay_lines<R: AsyncRead + Unpin>(from: R, tx: mpsc::Sender<Vec<u8>>) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        if tx.send(l.into_bytes()).await.is_err() {
            return;
        }
    }
}

fn rpc_error(id: Value, code: i32, message: &str) -> Vec<u8> {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }).to_string().into_bytes()
}

/// Reads input lines (each at most `limit` bytes), answers the ones that
/// must not reach rmcp, forwards the rest.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    input: R,
    mut to_rmcp: W,
    out: mpsc::Sender<Vec<u8>>,
    spine: Arc<Spine>,
    caller: Caller,
    limit: usize,
) {
    let mut reader = BufReader::new(input);
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    loop {
        let mut line = Vec::new();
        match (&mut reader).take(cap).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return, // EOF: dropping `to_rmcp` ends rmcp's input
            Ok(_) => {}
        }
        if line.len() > limit && line.last() != Some(&b'\n') {
            // Skip the rest of the over-long line, then say why.
            let mut sink = Vec::new();
            let _ = reader.read_until(b'\n', &mut sink).await;
            let msg = format!("message over {limit} bytes (limits.max_request_body_bytes)");
            if out.send(rpc_error(Value::Null, INVALID_REQUEST, &msg)).await.is_err() {
                return;
            }
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let answer = match serde_json::from_slice::<Value>(&line) {
            Err(e) => Some(rpc_error(Value::Null, PARSE_ERROR, &format!("parse error: the line is not JSON ({e})"))),
            Ok(msg) => non_object_arguments(&spine, &caller, &msg),
        };
        let sent = match answer {
            Some(a) => out.send(a).await.is_ok(),
            None => {
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                to_rmcp.write_all(&line).await.is_ok()
            }
        };
        if !sent {
            return;
        }
    }
}

/// The answer to a `tools/call` whose `arguments` is present but not an
/// object (admitted and audited like any call); None for anything else.
fn non_object_arguments(spine: &Spine, caller: &Caller, msg: &Value) -> Option<Vec<u8>> {
    if msg.get("method").and_then(Value::as_str) != Some("tools/call") {
        return None;
    }
    let args = msg.pointer("/params/arguments").filter(|a| !a.is_object())?;
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or_default();
    let body = match spine.admit(caller, None, name, Some(args)) {
        Ok(admitted) => {
            let result = reject_non_object(spine, caller, None, &admitted, args)?;
            json!({ "jsonrpc": "2.0", "id": id, "result": result })
        }
        // Refusals as everywhere else: a JSON-RPC error, or (denials) a
        // tool result with the structured error.
        Err(r) => match r.to_response() {
            Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e }),
            Ok(_) => json!({ "jsonrpc": "2.0", "id": id, "result": r.to_tool_error().to_result() }),
        },
    };
    Some(body.to_string().into_bytes())
}
