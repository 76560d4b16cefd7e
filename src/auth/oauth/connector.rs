//! How outbound fetches reach a host: a [`Connector`] opens a byte stream
//! ([`AsyncIo`]) to `host:port`. The server supplies one that dials tailnet
//! hosts over the tailnet; [`TcpConnector`] dials ordinary hosts.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream an HTTP/1.1 exchange can run over.
pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncIo for T {}

/// The future a [`Connector`] returns (the same type as
/// `futures::future::BoxFuture<'static, _>`).
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn AsyncIo>>> + Send>>;

/// How to open a byte stream to `host:port` (host without IPv6 brackets).
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, host: &str, port: u16) -> ConnectFuture;
}

/// Dials with tokio's `TcpStream` (system resolver), TCP_NODELAY set.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, host: &str, port: u16) -> ConnectFuture {
        let host = host.to_owned();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn AsyncIo>)
        })
    }
}
