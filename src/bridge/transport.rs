//! How the client side reaches a TailOps server: a pooled HTTP/1.1 client
//! whose connections are dialed over an embedded tailnet node of our own
//! (default) or over the host's network stack (`--via-tailscaled`), with
//! TLS for `https://` targets.
//!
//! `--via-tailscaled` is the cleanest way to use a host `tailscaled`: it
//! already routes the tailnet's 100.x / fd7a: addresses through its tun
//! device and answers MagicDNS names through the system resolver, so plain
//! sockets reach the server and the caller is that host's identity. Talking
//! to tailscaled's LocalAPI instead would need its socket's permissions and
//! re-implement what the kernel route already does.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::tailnet::Node;

/// How long one dial (tailnet or TCP) may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the client node may take to join the tailnet.
pub const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries per request while the server cannot be reached.
pub const MAX_ATTEMPTS: u32 = 6;
/// First retry delay; doubled per try (0.25 + 0.5 + 1 + 2 + 4 s).
const RETRY_BASE: Duration = Duration::from_millis(250);
/// Idle pooled connections are closed after this.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Where to reach the client's tailnet and how to identify on it. Every
/// flag also reads a variable; the auth key is never a flag (`TS_AUTHKEY`
/// or `--authkey-file`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ReachArgs {
    /// Tailnet hostname of this client node.
    #[arg(long = "client-hostname", env = "TAILOPS_CLIENT_HOSTNAME", default_value = "tailops-client")]
    pub hostname: String,
    /// Control server URL (default: Tailscale's).
    #[arg(long, env = "TAILOPS_CONTROL_URL")]
    pub control_url: Option<String>,
    /// Keep this client node's identity in DIR: a regular (non-ephemeral)
    /// node that needs an auth key only the first time. Without it the node
    /// is ephemeral, its state in a private temp dir removed on exit.
    #[arg(long = "client-state-dir", env = "TAILOPS_CLIENT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// File holding the auth key (else `TS_AUTHKEY` / `TS_AUTH_KEY`).
    #[arg(long, env = "TAILOPS_AUTHKEY_FILE", value_name = "FILE")]
    pub authkey_file: Option<PathBuf>,
    /// Use the host's tailscaled (its routes and MagicDNS) instead of
    /// joining the tailnet as a node of our own. The caller is then that
    /// host's identity.
    #[arg(long, conflicts_with_all = ["state_dir", "authkey_file", "control_url"])]
    pub via_tailscaled: bool,
    /// Extra CA certificate(s) (PEM) trusted for `https://` targets, beside
    /// the public roots Let's Encrypt's MagicDNS certificates chain to.
    #[arg(long, env = "TAILOPS_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// A TailOps server: `HOST[:PORT]`, or a URL `http(s)://HOST[:PORT][/path]`
/// (path defaults to `/mcp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if s.contains("://") {
            return Err(format!("{s:?}: only http:// and https:// targets are supported"));
        } else {
            (false, s)
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = if path.is_empty() || path == "/" { "/mcp".to_string() } else { path.to_string() };
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return Err(format!("{s:?}: unclosed [ in an IPv6 address"));
            };
            match after.strip_prefix(':') {
                Some(p) => (h.to_string(), parse_port(s, p)?),
                None if after.is_empty() => (h.to_string(), default_port),
                None => return Err(format!("{s:?}: unexpected {after:?} after the IPv6 address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(s, p)?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{s:?}: no host (e.g. tailops.example.ts.net or tailops:8080)"));
        }
        if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')) {
            return Err(format!("{s:?}: the host {host:?} is not a name or IP address"));
        }
        Ok(Self { https, host, port, path })
    }

    /// `host:port` (IPv6 in brackets), as dialed.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The Host header / URI authority (port omitted when it is the default).
    pub fn authority(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }

    pub fn url(&self) -> String {
        format!("{}://{}{}", if self.https { "https" } else { "http" }, self.authority(), self.path)
    }
}

fn parse_port(s: &str, p: &str) -> Result<u16, String> {
    p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("{s:?}: port {p:?} is not 1-65535"))
}

/// The byte streams a dial yields.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One dialed connection, whatever carries it.
pub struct Conn(Box<dyn Io>);

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Dials the target for hyper's pool.
#[derive(Clone)]
pub struct Dialer {
    node: Option<Node>,
    tls: Option<TlsConnector>,
    target: Arc<Target>,
}

impl tower::Service<Uri> for Dialer {
    type Response = TokioIo<Conn>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Conn>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        // Every request goes to the one target: the URI's authority is the
        // same, so it is not parsed again here.
        let (node, tls, target) = (self.node.clone(), self.tls.clone(), self.target.clone());
        Box::pin(async move {
            let addr = target.addr();
            let plain: Box<dyn Io> = match node {
                Some(n) => Box::new(n.dial(&addr, DIAL_TIMEOUT).await.map_err(io::Error::other)?),
                None => {
                    let s = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(&addr))
                        .await
                        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr}")))??;
                    // Small SSE writes and JSON-RPC posts: no Nagle delay.
                    s.set_nodelay(true)?;
                    Box::new(s)
                }
            };
            let io: Box<dyn Io> = match tls {
                Some(tls) => {
                    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    Box::new(tls.connect(name, plain).await?)
                }
                None => plain,
            };
            Ok(TokioIo::new(Conn(io)))
        })
    }
}

/// The HTTP client for one target, and the tailnet node under it.
pub struct Transport {
    client: Client<Dialer, Full<Bytes>>,
    pub target: Target,
    node: Option<Node>,
    temp_state: Option<PathBuf>,
}

impl Transport {
    /// Joins the tailnet (unless `--via-tailscaled`) and builds the client.
    pub async fn open(args: &ReachArgs, target: Target) -> anyhow::Result<Self> {
        let tls = if target.https { Some(tls_connector(args.ca_file.as_deref())?) } else { None };
        let (node, temp_state) = if args.via_tailscaled { (None, None) } else { join(args).await? };
        let dialer = Dialer { node: node.clone(), tls, target: Arc::new(target.clone()) };
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(POOL_IDLE).build(dialer);
        Ok(Self { client, target, node, temp_state })
    }

    /// The client node (none with `--via-tailscaled`).
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    /// A request builder for the target's MCP path with Host set.
    pub fn request(&self, method: hyper::Method) -> hyper::http::request::Builder {
        Request::builder().method(method).uri(self.target.url()).header(hyper::header::HOST, self.target.authority())
    }

    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }

    /// Sends the request `make` builds, dialing again (with backoff, at
    /// most [`MAX_ATTEMPTS`] tries) while the server cannot be reached: the
    /// first dial after the node joins may fail until its DERP home and the
    /// peer are known, and a restarting server comes back. Only failed
    /// dials are retried: a request that reached the server is never sent
    /// twice by this.
    pub async fn send_retry(
        &self,
        make: impl Fn() -> anyhow::Result<Request<Full<Bytes>>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            match self.send(make()?).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_connect() && attempt < MAX_ATTEMPTS => {
                    let wait = RETRY_BASE.saturating_mul(1 << (attempt - 1).min(8));
                    tracing::warn!(error = %e, attempt, ?wait, "server unreachable; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(anyhow::Error::new(e).context(self.target.url())),
            }
        }
    }

    /// Closes the node (an ephemeral node leaves the tailnet) and removes a
    /// temporary state dir.
    pub async fn close(self) {
        if let Some(n) = &self.node
            && let Err(e) = n.close().await
        {
            tracing::warn!(error = %e, "closing the client node");
        }
        if let Some(dir) = &self.temp_state {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn auth_key(args: &ReachArgs) -> anyhow::Result<Option<String>> {
    if let Some(f) = &args.authkey_file {
        let k = std::fs::read_to_string(f).with_context(|| format!("reading the auth key file {}", f.display()))?;
        let k = k.trim().to_string();
        anyhow::ensure!(!k.is_empty(), "the auth key file {} is empty", f.display());
        return Ok(Some(k));
    }
    Ok(["TS_AUTHKEY", "TS_AUTH_KEY"].iter().find_map(|v| std::env::var(v).ok().filter(|k| !k.trim().is_empty())))
}

async fn join(args: &ReachArgs) -> anyhow::Result<(Option<Node>, Option<PathBuf>)> {
    let key = auth_key(args)?;
    let (dir, temp, ephemeral) = match &args.state_dir {
        Some(d) => (d.clone(), None, false),
        None => {
            anyhow::ensure!(
                key.is_some(),
                "an ephemeral client node needs an auth key: set TS_AUTHKEY or --authkey-file, or give --client-state-dir of a logged-in node"
            );
            let d = private_temp_dir()?;
            (d.clone(), Some(d), true)
        }
    };
    let mut b = Node::builder(&args.hostname).state_dir(&dir).ephemeral(ephemeral).up_timeout(UP_TIMEOUT);
    if let Some(k) = key {
        b = b.auth_key(k);
    }
    if let Some(u) = args.control_url.as_deref().filter(|u| !u.is_empty()) {
        b = b.control_url(u);
    }
    match b.start().await {
        Ok(n) => {
            tracing::info!(node = %n.info().dns_name, ephemeral, "client node joined the tailnet");
            Ok((Some(n), temp))
        }
        Err(e) => {
            if let Some(d) = &temp {
                let _ = std::fs::remove_dir_all(d);
            }
            Err(anyhow::anyhow!("joining the tailnet: {e}"))
        }
    }
}

/// A fresh 0700 dir under the temp dir (create fails rather than reuse).
fn private_temp_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut rnd = [0u8; 8];
    rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty()).context("getrandom")?;
    let dir = std::env::temp_dir().join(format!("tailops-client-{}", hex::encode(rnd)));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn tls_connector(ca_file: Option<&std::path::Path>) -> anyhow::Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(f) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(f)
            .with_context(|| format!("reading {}", f.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing {}", f.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{} holds no PEM certificate", f.display());
        for c in certs {
            roots.add(c).with_context(|| format!("adding a CA from {}", f.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_defaults() {
        let t = Target::parse("ops").expect("ok");
        assert_eq!((t.https, t.host.as_str(), t.port, t.path.as_str()), (false, "ops", 80, "/mcp"));
        assert_eq!(t.url(), "http://ops/mcp");
        let t = Target::parse("ops.tailnet.ts.net:8080").expect("ok");
        assert_eq!((t.port, t.authority().as_str()), (8080, "ops.tailnet.ts.net:8080"));
        let t = Target::parse("https://ops.tailnet.ts.net").expect("ok");
        assert_eq!((t.https, t.port, t.url().as_str()), (true, 443, "https://ops.tailnet.ts.net/mcp"));
        let t = Target::parse("http://[fd7a:115c:a1e0::1]:81/other").expect("ok");
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("fd7a:115c:a1e0::1", 81, "/other"));
        assert_eq!(t.addr(), "[fd7a:115c:a1e0::1]:81");
        assert_eq!(Target::parse("100.64.0.1:65535").expect("ok").port, 65535);
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "no host"),
            (":80", "no host"),
            ("ops:0", "not 1-65535"),
            ("ops:65536", "not 1-65535"),
            ("ops:x", "not 1-65535"),
            ("ftp://ops", "only http"),
            ("[::1", "unclosed"),
            ("ops@evil", "not a name"),
            ("op s", "not a name"),
        ] {
            let e = Target::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
