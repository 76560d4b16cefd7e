//! One embedded tailnet node.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::UnixStream;

use super::{Error, Listener, PeerIdentity, Result, Status, ffi, log, timeout_ms};

/// How to create a node; `start()` joins the tailnet.
#[derive(Clone, Debug, Default)]
pub struct NodeBuilder {
    hostname: String,
    state_dir: Option<PathBuf>,
    auth_key: Option<String>,
    control_url: Option<String>,
    ephemeral: bool,
    advertise_tags: Vec<String>,
    verbose_logs: bool,
    up_timeout: Option<Duration>,
}

/// What the node reports once it is connected.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpInfo {
    /// Tailnet IPs (100.x IPv4 first, then the fd7a: IPv6).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Full MagicDNS name without the trailing dot, e.g. `tailops.example.ts.net`.
    pub dns_name: String,
    pub hostname: String,
    #[serde(default)]
    pub magic_dns_suffix: String,
    pub backend_state: String,
    /// Domains the node can get TLS certificates for (empty without HTTPS).
    #[serde(default)]
    pub cert_domains: Option<Vec<String>>,
}

impl NodeBuilder {
    pub fn new(hostname: impl Into<String>) -> Self {
        Self { hostname: hostname.into(), ..Self::default() }
    }
    /// Where the node keeps its keys and state; the same dir on restart keeps
    /// the same identity. Defaults to tsnet's per-program config dir.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
    pub fn auth_key(mut self, key: impl Into<String>) -> Self {
        self.auth_key = Some(key.into());
        self
    }
    pub fn control_url(mut self, url: impl Into<String>) -> Self {
        self.control_url = Some(url.into());
        self
    }
    /// An ephemeral node is removed from the tailnet when it closes.
    pub fn ephemeral(mut self, on: bool) -> Self {
        self.ephemeral = on;
        self
    }
    pub fn advertise_tags(mut self, tags: Vec<String>) -> Self {
        self.advertise_tags = tags;
        self
    }
    /// Forward tailscale's backend logs at debug level (quiet otherwise).
    pub fn verbose_logs(mut self, on: bool) -> Self {
        self.verbose_logs = on;
        self
    }
    /// How long `start()` waits for the node to be connected (default 60 s).
    pub fn up_timeout(mut self, d: Duration) -> Self {
        self.up_timeout = Some(d);
        self
    }

    /// Creates the node and waits until it is connected to the tailnet. The
    /// Go calls block, so they run on tokio's blocking pool.
    pub async fn start(self) -> Result<Node> {
        let timeout = self.up_timeout.unwrap_or(Duration::from_secs(60));
        let sd = ffi::new_node();
        let inner = Arc::new(Inner { sd, closed: AtomicBool::new(false) });
        let configured = (|| -> Result<()> {
            if let Some(dir) = &self.state_dir {
                ffi::set_dir(sd, &dir.to_string_lossy())?;
            }
            ffi::set_hostname(sd, &self.hostname)?;
            if let Some(k) = &self.auth_key {
                ffi::set_authkey(sd, k)?;
            }
            if let Some(u) = &self.control_url {
                ffi::set_control_url(sd, u)?;
            }
            ffi::set_ephemeral(sd, self.ephemeral)?;
            if !self.advertise_tags.is_empty() {
                ffi::set_advertise_tags(sd, &self.advertise_tags.join(","))?;
            }
            log::attach(sd, &self.hostname, self.verbose_logs)
        })();
        configured?;
        let doc = blocking(move || ffi::up(sd, timeout_ms(timeout))).await?;
        let info: UpInfo = serde_json::from_str(&doc).map_err(|source| Error::Decode { op: "up", source })?;
        Ok(Node { inner, info })
    }
}

struct Inner {
    sd: ffi::Handle,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = ffi::close(self.sd);
        }
    }
}

/// A running tailnet node. Cheap to clone; the node closes (and an ephemeral
/// node logs out) on [`Node::close`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
    info: UpInfo,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("dns_name", &self.info.dns_name).field("ips", &self.info.ips).finish()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io { op: "blocking task", source: std::io::Error::other(e) })?
}

impl Node {
    pub fn builder(hostname: impl Into<String>) -> NodeBuilder {
        NodeBuilder::new(hostname)
    }

    /// What the node reported when it came up (IPs, MagicDNS name).
    pub fn info(&self) -> &UpInfo {
        &self.info
    }

    pub(super) fn sd(&self) -> Result<ffi::Handle> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(self.inner.sd)
    }

    /// Listens for TCP on the tailnet only, e.g. `listen(":80")`.
    pub fn listen(&self, addr: &str) -> Result<Listener> {
        Listener::new(ffi::listen(self.sd()?, "tcp", addr, false)?)
    }

    /// Like [`Node::listen`] but TLS is terminated by the node with its
    /// MagicDNS certificate (needs HTTPS enabled on the tailnet).
    pub fn listen_tls(&self, addr: &str) -> Result<Listener> {
        Listener::new(ffi::listen(self.sd()?, "tcp", addr, true)?)
    }

    /// Hosts the Tailscale Service `name` (`svc:…`) in HTTP mode on `port`.
    /// Returns the listener and the Service's MagicDNS name.
    pub fn listen_service(&self, name: &str, port: u16, https: bool) -> Result<(Listener, String)> {
        let (fd, fqdn) = ffi::listen_service(self.sd()?, name, port, https)?;
        Ok((Listener::new(fd)?, fqdn))
    }

    /// Who is behind a tailnet address (`ip:port` of an accepted conn).
    pub async fn whois(&self, remote: std::net::SocketAddr, timeout: Duration) -> Result<PeerIdentity> {
        let sd = self.sd()?;
        let doc = blocking(move || ffi::whois(sd, &remote.to_string(), timeout_ms(timeout))).await?;
        serde_json::from_str(&doc).map_err(|source| Error::Decode { op: "whois", source })
    }

    /// This node's view of the tailnet.
    pub async fn status(&self, timeout: Duration) -> Result<Status> {
        let sd = self.sd()?;
        let doc = blocking(move || ffi::status(sd, timeout_ms(timeout))).await?;
        serde_json::from_str(&doc).map_err(|source| Error::Decode { op: "status", source })
    }

    /// Opens a TCP connection over the tailnet (`host:port`, MagicDNS names
    /// resolve).
    pub async fn dial(&self, addr: &str, timeout: Duration) -> Result<UnixStream> {
        let sd = self.sd()?;
        let addr = addr.to_string();
        let fd = blocking(move || ffi::dial(sd, "tcp", &addr, timeout_ms(timeout))).await?;
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true).map_err(|source| Error::Io { op: "dial", source })?;
        UnixStream::from_std(std).map_err(|source| Error::Io { op: "dial", source })
    }

    /// Closes the node: listeners stop, an ephemeral node is removed from the
    /// tailnet. Other clones become unusable ([`Error::Closed`]).
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let sd = self.inner.sd;
        blocking(move || ffi::close(sd)).await
    }
}
