//! The accept loop: serves the router on a listener (the tailnet's, or
//! loopback TCP in dev mode) with bounded connections and a graceful stop.
//!
//! One peer must not be able to take every connection slot, so each
//! connection is bounded in count and in time (all `[limits]` keys):
//! - `max_connections` at once: the next accept waits for a slot;
//! - `max_connections_per_peer` from one IP (tailnet peers are identified by
//!   their IP): over it, a connection is answered 429 and closed at once,
//!   counted, and warned about at most every [`PEER_WARN_INTERVAL`] per peer;
//! - `first_byte_timeout_secs` to send anything at all. hyper-util's `auto`
//!   builder first reads the HTTP/2 preface with no timer, and hyper's
//!   `header_read_timeout` only starts once that read returned bytes: without
//!   this, a socket that never sends a byte is held forever;
//! - `header_read_timeout_secs` per HTTP/1 request head (hyper; it also runs
//!   while a kept-alive HTTP/1 connection waits for its next request);
//! - `body_read_timeout_secs` from a request's head to the end of its body
//!   (the body is wrapped; the `/mcp` gate answers 408, see [`is_body_timeout`]);
//! - `idle_timeout_secs` with no request in flight, HTTP/1 and HTTP/2: the
//!   connection is shut down gracefully. A streaming response (SSE) is a
//!   request in flight until its body ends, however quiet the socket is.
//!
//! [`ConnCounters`] counts what these limits cut; `serve` logs the totals
//! when it stops, and the counters can be exported (metrics).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::identify::ConnInfo;
use crate::config::Limits;
use crate::tailnet::Listener;

/// A peer refused for its connection cap is warned about at most this often.
pub const PEER_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Bytes of the first read (handed on to hyper before the socket's rest).
const FIRST_READ_BYTES: usize = 1024;
/// Time a refused connection gets to receive its 429 before it is dropped.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Refusals answered at once; past this, refused connections are just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Time an idle connection gets to close gracefully (HTTP/2 GOAWAY) before
/// it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Something that yields connections with the peer's address.
pub trait Accept: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Accept for Listener {
    type Io = tokio::net::UnixStream;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, SocketAddr)>> + Send {
        Listener::accept(self)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Io, SocketAddr)> {
        let (s, a) = tokio::net::TcpListener::accept(self).await?;
        // Small SSE writes stall ~40 ms without it (Nagle + delayed ACK).
        s.set_nodelay(true)?;
        Ok((s, a))
    }
}

/// What the connection limits did, since start. Cheap to share; read with
/// [`ConnCounters::snapshot`].
#[derive(Debug, Default)]
pub struct ConnCounters {
    accepted: AtomicU64,
    refused_per_peer: AtomicU64,
    first_byte_timeouts: AtomicU64,
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    idle_closed: AtomicU64,
}

/// A copy of [`ConnCounters`] (one reason per field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConnCounts {
    /// Connections accepted (refused ones included).
    pub accepted: u64,
    /// Refused: the peer already held `max_connections_per_peer`.
    pub refused_per_peer: u64,
    /// Closed: nothing sent within `first_byte_timeout_secs`.
    pub first_byte_timeouts: u64,
    /// Closed: an HTTP/1 request head not complete within `header_read_timeout_secs`.
    pub header_timeouts: u64,
    /// Requests failed: body not complete within `body_read_timeout_secs`.
    pub body_timeouts: u64,
    /// Closed: no request in flight for `idle_timeout_secs`.
    pub idle_closed: u64,
}

impl ConnCounters {
    pub fn snapshot(&self) -> ConnCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnCounts {
            accepted: get(&self.accepted),
            refused_per_peer: get(&self.refused_per_peer),
            first_byte_timeouts: get(&self.first_byte_timeouts),
            header_timeouts: get(&self.header_timeouts),
            body_timeouts: get(&self.body_timeouts),
            idle_closed: get(&self.idle_closed),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Serves `app` on `listener` until `shutdown` fires, then lets in-flight
/// requests finish for at most `limits.shutdown_grace_secs` (then drops
/// the connections still open). The connection limits are described in
/// the module docs; `counters` counts what they cut.
pub async fn serve<L: Accept>(
    listener: L,
    app: Router,
    limits: &Limits,
    counters: Arc<ConnCounters>,
    shutdown: CancellationToken,
) {
    let secs = Duration::from_secs;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(secs(limits.header_read_timeout_secs));
    let hard_stop = CancellationToken::new();
    let ctx = Arc::new(ConnCtx {
        app,
        builder,
        counters: counters.clone(),
        first_byte: secs(limits.first_byte_timeout_secs),
        body: secs(limits.body_read_timeout_secs),
        idle: secs(limits.idle_timeout_secs),
        shutdown: shutdown.clone(),
        hard_stop: hard_stop.clone(),
    });
    let peers = Arc::new(PeerTable::new(limits.max_connections_per_peer));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let tasks = TaskTracker::new();
    let mut accept_errors = 0u32;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, remote) = match accepted {
            Ok(c) => {
                accept_errors = 0;
                c
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::warn!("listener closed; no longer accepting");
                break;
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                accept_errors += 1;
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(accept_errors.min(20)))).await;
                continue;
            }
        };
        bump(&counters.accepted);
        match peers.claim(remote.ip(), Instant::now()) {
            Ok(peer_slot) => {
                let ctx = ctx.clone();
                tasks.spawn(async move {
                    serve_conn(&ctx, stream, remote).await;
                    drop(peer_slot);
                    drop(permit);
                });
            }
            Err(refused) => {
                drop(permit);
                bump(&counters.refused_per_peer);
                if let Some(refused_since_last_warn) = refused.warn {
                    tracing::warn!(
                        peer = %refused.ip,
                        open = refused.open,
                        refused_since_last_warn,
                        refused_total = counters.snapshot().refused_per_peer,
                        "connection refused: the peer holds limits.max_connections_per_peer connections"
                    );
                }
                // Answer 429 while few refusals are in flight; else just close.
                if let Ok(r) = refusals.clone().try_acquire_owned() {
                    let cap = peers.cap;
                    tasks.spawn(async move {
                        refuse(stream, cap).await;
                        drop(r);
                    });
                }
            }
        }
    }
    tasks.close();
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the grace period; dropping them");
        hard_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await;
    }
    let c = counters.snapshot();
    tracing::info!(
        accepted = c.accepted,
        refused_per_peer = c.refused_per_peer,
        first_byte_timeouts = c.first_byte_timeouts,
        header_timeouts = c.header_timeouts,
        body_timeouts = c.body_timeouts,
        idle_closed = c.idle_closed,
        "connections since start"
    );
}

/// What every connection task shares.
struct ConnCtx {
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    counters: Arc<ConnCounters>,
    first_byte: Duration,
    body: Duration,
    idle: Duration,
    /// Stop: finish in-flight requests, accept no new ones on the connection.
    shutdown: CancellationToken,
    /// The grace period is over: drop the connection.
    hard_stop: CancellationToken,
}

/// One connection: wait (bounded) for its first byte, then serve HTTP on
/// it until it ends, idles out, or the server stops.
async fn serve_conn<I>(ctx: &Arc<ConnCtx>, mut io: I, remote: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut first = [0u8; FIRST_READ_BYTES];
    let n = tokio::select! {
        r = tokio::time::timeout(ctx.first_byte, io.read(&mut first)) => match r {
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) => return, // closed or failed before sending anything
            Err(_) => {
                bump(&ctx.counters.first_byte_timeouts);
                tracing::debug!(%remote, "nothing sent within limits.first_byte_timeout_secs; closed");
                return;
            }
        },
        _ = ctx.shutdown.cancelled() => return,
    };
    let io = Prefixed { prefix: first[..n].to_vec(), pos: 0, io };

    let activity = Arc::new(Activity::new());
    let svc = {
        let (ctx, activity, info) = (ctx.clone(), activity.clone(), ConnInfo::new(remote));
        tower::service_fn(move |req: Request<Incoming>| {
            let in_flight = activity.begin();
            let deadline = Instant::now() + ctx.body;
            let mut req = req.map(|b| deadline_body(b, deadline, ctx.body, &ctx.counters));
            req.extensions_mut().insert(info.clone());
            let call = ctx.app.clone().oneshot(req);
            async move {
                let resp = call.await?;
                // In flight until the response body is done (or dropped).
                Ok::<_, Infallible>(resp.map(|b| Body::new(Tracked { inner: b, _in_flight: in_flight })))
            }
        })
    };
    let conn = ctx.builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(svc));
    let conn = conn.into_owned();
    tokio::pin!(conn);
    let mut closing = false;
    let mut drop_at: Option<Instant> = None;
    let result = loop {
        let check_at = drop_at.unwrap_or_else(|| activity.idle_deadline(ctx.idle));
        tokio::select! {
            r = conn.as_mut() => break r,
            // Closing for a stop: no idle timer (the grace period bounds it).
            _ = tokio::time::sleep_until(check_at), if !closing || drop_at.is_some() => {
                if drop_at.is_some() {
                    tracing::debug!(%remote, "idle connection did not close in time; dropped");
                    break Ok(());
                }
                if !closing && activity.is_idle_at(Instant::now(), ctx.idle) {
                    bump(&ctx.counters.idle_closed);
                    tracing::debug!(%remote, "no request within limits.idle_timeout_secs; closing");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    drop_at = Some(Instant::now() + IDLE_CLOSE_GRACE);
                }
            }
            _ = ctx.shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = ctx.hard_stop.cancelled() => break Ok(()),
        }
    };
    if let Err(e) = result {
        if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
            bump(&ctx.counters.header_timeouts);
        }
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// Answers a connection over its peer's cap with 429 and closes it, in at
/// most [`REFUSAL_TIME`].
async fn refuse<I: AsyncRead + AsyncWrite + Unpin>(mut io: I, cap: usize) {
    let body = serde_json::json!({ "error": {
        "category": "unavailable",
        "message": format!("too many connections from this address (limit {cap})"),
        "hint": "reuse connections (keep-alive) or close idle ones (limits.max_connections_per_peer)",
    }})
    .to_string();
    let resp = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        io.write_all(resp.as_bytes()).await?;
        io.shutdown().await?;
        // Read what the peer sent: closing with unread data resets the
        // connection, and the peer may lose the answer.
        let mut sink = [0u8; 1024];
        while io.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Open connections per peer IP, and when each refused peer was last warned about.
struct PeerTable {
    cap: usize,
    peers: Mutex<HashMap<IpAddr, PeerState>>,
}

#[derive(Default)]
struct PeerState {
    open: usize,
    refused_since_warn: u64,
    last_warn: Option<Instant>,
}

/// One open connection of `ip`; frees its place on drop.
struct PeerSlot {
    table: Arc<PeerTable>,
    ip: IpAddr,
}

#[derive(Debug)]
struct PeerRefused {
    ip: IpAddr,
    open: usize,
    /// Some(refusals since the last warning) when a warning is due now.
    warn: Option<u64>,
}

impl PeerTable {
    fn new(cap: usize) -> Self {
        Self { cap, peers: Mutex::new(HashMap::new()) }
    }

    fn claim(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<PeerSlot, PeerRefused> {
        // An IPv4 peer seen through an IPv6 socket is the same peer.
        let ip = ip.to_canonical();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let p = peers.entry(ip).or_default();
        if p.open < self.cap {
            p.open += 1;
            return Ok(PeerSlot { table: self.clone(), ip });
        }
        p.refused_since_warn += 1;
        let due = p.last_warn.is_none_or(|t| now.duration_since(t) >= PEER_WARN_INTERVAL);
        let open = p.open;
        let warn = due.then(|| {
            p.last_warn = Some(now);
            std::mem::take(&mut p.refused_since_warn)
        });
        if due {
            // Forget closed peers whose warning interval is over.
            peers.retain(|_, p| p.open > 0 || p.last_warn.is_some_and(|t| now.duration_since(t) < PEER_WARN_INTERVAL));
        }
        Err(PeerRefused { ip, open, warn })
    }

    fn release(&self, ip: IpAddr, now: Instant) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = peers.get_mut(&ip) {
            p.open = p.open.saturating_sub(1);
            // Keep a recently warned peer, so warnings stay rate limited.
            if p.open == 0 && p.last_warn.is_none_or(|t| now.duration_since(t) >= PEER_WARN_INTERVAL) {
                peers.remove(&ip);
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        self.table.release(self.ip, Instant::now());
    }
}

/// The socket with the bytes of the first read put back in front.
struct Prefixed<I> {
    prefix: Vec<u8>,
    pos: usize,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `born` when the last request ended.
    idle_since_ms: AtomicU64,
}

/// One request in flight; its end stamps the connection's idle clock.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self { born: Instant::now(), in_flight: AtomicUsize::new(0), idle_since_ms: AtomicU64::new(0) }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn idle_since(&self) -> Instant {
        self.born + Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst))
    }

    /// When to look again: when the idle time would be up, or (busy) one
    /// idle period from now.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::SeqCst) > 0 { Instant::now() + idle } else { self.idle_since() + idle }
    }

    fn is_idle_at(&self, now: Instant, idle: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && now >= self.idle_since() + idle
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = u64::try_from(a.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.idle_since_ms.fetch_max(ms, Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request in flight until it is done.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body failed: it was not complete within
/// `limits.body_read_timeout_secs` of the request's head.
#[derive(Debug, thiserror::Error)]
#[error("request body not complete within {secs} s (limits.body_read_timeout_secs)")]
pub struct BodyTimeout {
    pub secs: u64,
}

/// Whether `e` (or an error it wraps, e.g. from `axum::body::to_bytes`) is
/// a [`BodyTimeout`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The request body, failing with [`BodyTimeout`] once `deadline` passes
/// (an empty body is left as is).
fn deadline_body(b: Incoming, deadline: Instant, limit: Duration, counters: &Arc<ConnCounters>) -> Body {
    if b.is_end_stream() {
        return Body::new(b);
    }
    Body::new(DeadlineBody { inner: b, deadline, secs: limit.as_secs(), sleep: None, counters: Some(counters.clone()) })
}

struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    secs: u64,
    /// Armed the first time the body has nothing to give.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Taken when the deadline is counted (once).
    counters: Option<Arc<ConnCounters>>,
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.counters.is_some() {
            if let Poll::Ready(f) = Pin::new(&mut this.inner).poll_frame(cx) {
                return Poll::Ready(f.map(|r| r.map_err(Into::into)));
            }
            let deadline = this.deadline;
            let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            ready!(sleep.as_mut().poll(cx));
            if let Some(c) = this.counters.take() {
                bump(&c.body_timeouts);
            }
        }
        // Past the deadline it stays failed: never a short body that looks whole.
        Poll::Ready(Some(Err(Box::new(BodyTimeout { secs: this.secs }))))
    }

    fn is_end_stream(&self) -> bool {
        self.counters.is_some() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn per_peer_cap_admits_up_to_the_cap_and_refuses_the_next() {
        let t = Arc::new(PeerTable::new(4));
        let now = Instant::now();
        let mut held: Vec<_> =
            (0..4).map(|i| t.claim(v4("100.64.0.1"), now).unwrap_or_else(|e| panic!("{i}: {e:?}"))).collect();
        let refused = t.claim(v4("100.64.0.1"), now).err().expect("5th refused");
        assert_eq!((refused.open, refused.warn), (4, Some(1)), "first refusal is warned about");
        // Another peer is not affected.
        let other = t.claim(v4("100.64.0.2"), now).expect("other peer");
        // Closing one frees one place, and only one.
        drop(held.pop());
        let again = t.claim(v4("100.64.0.1"), now).expect("freed place");
        assert!(t.claim(v4("100.64.0.1"), now).is_err(), "full again");
        drop((again, other, held));
    }

    #[test]
    fn refusal_warnings_are_rate_limited_per_peer() {
        let t = Arc::new(PeerTable::new(1));
        let t0 = Instant::now();
        let _a = t.claim(v4("100.64.0.1"), t0).expect("a");
        let _b = t.claim(v4("100.64.0.2"), t0).expect("b");
        assert_eq!(t.claim(v4("100.64.0.1"), t0).err().expect("refused").warn, Some(1));
        // Another peer has its own interval.
        assert_eq!(t.claim(v4("100.64.0.2"), t0).err().expect("refused").warn, Some(1));
        let almost = t0 + PEER_WARN_INTERVAL - Duration::from_millis(1);
        for _ in 0..5 {
            assert_eq!(t.claim(v4("100.64.0.1"), almost).err().expect("refused").warn, None);
        }
        // At the interval: one warning carrying the 5 silent refusals + this one.
        let at = t0 + PEER_WARN_INTERVAL;
        assert_eq!(t.claim(v4("100.64.0.1"), at).err().expect("refused").warn, Some(6));
    }

    #[test]
    fn peers_are_forgotten_when_closed_unless_recently_warned() {
        let t = Arc::new(PeerTable::new(1));
        let now = Instant::now();
        drop(t.claim(v4("100.64.0.1"), now).expect("a"));
        assert_eq!(t.tracked(), 0, "closed, never warned: forgotten");
        let a = t.claim(v4("100.64.0.1"), now).expect("a");
        assert!(t.claim(v4("100.64.0.1"), now).is_err());
        drop(a);
        assert_eq!(t.tracked(), 1, "warned a moment ago: kept so the next warning waits");
        // An IPv4-mapped IPv6 address is the same peer.
        let _b = t.claim(v4("100.64.0.1"), now).expect("b");
        let mapped: IpAddr = "::ffff:100.64.0.1".parse().expect("ip");
        assert!(t.claim(mapped, now).is_err(), "mapped address counted with its IPv4 form");
    }

    #[tokio::test]
    async fn prefixed_reads_the_first_bytes_then_the_socket() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.expect("write");
        drop(a);
        let mut p = Prefixed { prefix: b"hello".to_vec(), pos: 0, io: b };
        let mut small = [0u8; 3];
        assert_eq!(p.read(&mut small).await.expect("read"), 3);
        let mut rest = Vec::new();
        p.read_to_end(&mut rest).await.expect("read");
        assert_eq!([&small[..], &rest].concat(), b"hello world");
    }

    #[test]
    fn idle_clock_starts_at_the_end_of_the_last_request() {
        let a = Arc::new(Activity::new());
        let idle = Duration::from_secs(2);
        let born = a.born;
        assert!(!a.is_idle_at(born + idle - Duration::from_millis(1), idle));
        assert!(a.is_idle_at(born + idle, idle), "no request since start");
        let req = a.begin();
        assert!(!a.is_idle_at(born + idle * 100, idle), "a request in flight is never idle");
        std::thread::sleep(Duration::from_millis(20));
        drop(req);
        assert!(a.idle_since() >= born + Duration::from_millis(20));
        assert!(!a.is_idle_at(born + idle, idle), "clock restarted when the request ended");
        assert!(a.is_idle_at(a.idle_since() + idle, idle));
    }

    /// A body whose frames never come, like a client that stopped sending.
    struct Stalled;
    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_stalled_body_fails_at_its_deadline_and_is_counted_once() {
        let counters = Arc::new(ConnCounters::default());
        let limit = Duration::from_millis(200);
        let body = DeadlineBody {
            inner: Stalled,
            deadline: Instant::now() + limit,
            secs: 0,
            sleep: None,
            counters: Some(counters.clone()),
        };
        let started = Instant::now();
        // Through axum's own reader, as the /mcp gate reads it.
        let err = axum::body::to_bytes(Body::new(body), 1 << 20).await.expect_err("must time out");
        let took = started.elapsed();
        // At its deadline, not never: the upper bound is a give-up bound
        // (50x the 200 ms), as a loaded box can delay the timer's wake-up.
        assert!(took >= limit && took < limit * 50, "failed after {took:?}");
        assert!(is_body_timeout(&err), "{err:?}");
        assert_eq!(counters.snapshot().body_timeouts, 1);
        // Other errors are not timeouts.
        let over = axum::body::to_bytes(Body::from("0123456789"), 4).await.expect_err("over the cap");
        assert!(!is_body_timeout(&over));
    }

    #[tokio::test]
    async fn a_body_in_time_is_passed_through() {
        let counters = Arc::new(ConnCounters::default());
        let body = DeadlineBody {
            inner: http_body_util::Full::new(Bytes::from_static(b"{}")),
            deadline: Instant::now() + Duration::from_secs(3),
            secs: 3,
            sleep: None,
            counters: Some(counters.clone()),
        };
        let bytes = axum::body::to_bytes(Body::new(body), 1 << 20).await.expect("in time");
        assert_eq!(&bytes[..], b"{}");
        assert_eq!(counters.snapshot(), ConnCounts::default());
    }
}
