//! The accept loop: serves the router on a listener (the tailnet's, or
//! loopback TCP in dev mode) with bounded connections and a graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::identify::ConnInfo;
use crate::config::Limits;
use crate::tailnet::Listener;

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

/// Serves `app` on `listener` until `shutdown` fires, then lets in-flight
/// requests finish for at most `limits.shutdown_grace_secs`.
///
/// At most `limits.max_connections` connections are served at once; the
/// next accept waits for a slot, so excess connections queue in the
/// listener instead of exhausting fds.
pub async fn serve<L: Accept>(listener: L, app: Router, limits: &Limits, shutdown: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
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
        let info = ConnInfo::new(remote);
        let svc = app.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(info.clone());
            req
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the grace period; dropping them");
    }
}
