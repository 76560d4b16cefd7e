//! Accepting tailnet connections without a thread per accept.
//!
//! The listener fd is one end of a `SOCK_SEQPACKET` pair fed by the Go side:
//! one message per connection, the conn's fd in SCM_RIGHTS and the remote
//! `ip:port` as the payload. The fd is registered with tokio's reactor
//! (`AsyncFd`), so `accept()` is just `recvmsg` when it is readable.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use tokio::io::unix::AsyncFd;
use tokio::net::UnixStream;

use super::{Error, Result};

/// Largest payload we accept: "[ipv6%zone]:port" fits easily.
const MAX_ADDR_LEN: usize = 256;

/// Tailnet connections, accepted asynchronously. Dropping the listener
/// closes the tailnet listener on the Go side.
pub struct Listener {
    fd: AsyncFd<OwnedFd>,
}

impl Listener {
    pub(crate) fn new(fd: OwnedFd) -> Result<Self> {
        rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| Error::Io { op: "listener nonblocking", source: e.into() })?;
        // SAFETY: OwnedFd owns an open fd, always returns that same fd from
        // as_raw_fd, and only closes it when the AsyncFd drops it.
        let fd =
            unsafe { AsyncFd::register(fd) }.map_err(|e| Error::Io { op: "listener register", source: e.into() })?;
        Ok(Self { fd })
    }

    /// Waits for the next connection. Returns an error of kind
    /// `UnexpectedEof` once the node or listener has closed.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_conn(fd.get_ref())) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

fn recv_conn(fd: &OwnedFd) -> io::Result<(UnixStream, SocketAddr)> {
    let mut payload = [0u8; MAX_ADDR_LEN];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(&mut payload)];
    let msg = rustix::net::recvmsg(fd, &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT)?;
    let mut conn: Option<OwnedFd> = None;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for f in fds {
                // Keep the first; any extra fds are closed by dropping them.
                if conn.is_none() {
                    conn = Some(f);
                }
            }
        }
    }
    let Some(conn) = conn else {
        if msg.bytes == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "tailnet listener closed"));
        }
        return Err(io::Error::new(io::ErrorKind::InvalidData, "listener message without a connection fd"));
    };
    let addr_text = std::str::from_utf8(&payload[..msg.bytes])
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "remote address is not UTF-8"))?;
    let remote: SocketAddr = addr_text
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad remote address {addr_text:?}")))?;
    let std = std::os::unix::net::UnixStream::from(conn);
    std.set_nonblocking(true)?;
    Ok((UnixStream::from_std(std)?, remote))
}
