//! A minimal HTTP/1.1 client over a [`Connector`]: plain for `http://`,
//! rustls (aws-lc-rs) for `https://`; bounded in time and size, no
//! redirects. Used for the JWKS and introspection endpoints only.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::Connector;

/// Largest JWKS or introspection response body read (1 MiB).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug)]
pub(super) struct HttpTarget {
    pub(super) https: bool,
    /// For the connector and TLS server name: no IPv6 brackets.
    pub(super) host: String,
    port: u16,
    /// For the `Host` header.
    authority: String,
    path_and_query: String,
}

impl HttpTarget {
    pub(super) fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{url:?} must be an http:// or https:// URL")),
        };
        let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{url:?}: credentials in URLs are not supported"));
        }
        if url.contains('#') {
            return Err(format!("{url:?} must not have a fragment"));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query =
            uri.path_and_query().map(|p| p.as_str()).filter(|p| !p.is_empty()).unwrap_or("/").to_owned();
        Ok(Self { https, host: host.to_owned(), port, authority: authority.as_str().to_owned(), path_and_query })
    }

    pub(super) fn request(&self, method: Method) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(self.path_and_query.as_str())
            .header(header::HOST, self.authority.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::CONNECTION, "close")
            .header(header::USER_AGENT, concat!("tailops/", env!("CARGO_PKG_VERSION")))
    }
}

pub(super) struct HttpClient {
    connector: Arc<dyn Connector>,
    tls: TlsConnector,
    pub(super) timeout: Duration,
}

impl HttpClient {
    pub(super) fn new(connector: Arc<dyn Connector>, roots: RootCertStore, timeout: Duration) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { connector, tls: TlsConnector::from(Arc::new(config)), timeout })
    }

    /// One request, bounded by the timeout and [`MAX_RESPONSE_BYTES`].
    /// Errors describe the endpoint, never the request body.
    pub(super) async fn send(
        &self,
        target: &HttpTarget,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let url =
            format!("{}://{}{}", if target.https { "https" } else { "http" }, target.authority, target.path_and_query);
        match tokio::time::timeout(self.timeout, self.send_inner(target, req)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("{url}: {e}")),
            Err(_) => Err(format!("{url}: no answer within {:?}", self.timeout)),
        }
    }

    async fn send_inner(&self, target: &HttpTarget, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let stream = self.connector.connect(&target.host, target.port).await.map_err(|e| format!("connect: {e}"))?;
        if target.https {
            let name = ServerName::try_from(target.host.clone()).map_err(|_| "invalid TLS server name".to_string())?;
            let tls = self.tls.connect(name, stream).await.map_err(|e| format!("TLS: {e}"))?;
            exchange(tls, req).await
        } else {
            exchange(stream, req).await
        }
    }
}

async fn exchange<T>(io: T, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| format!("HTTP: {e}"))?;
    let response = async move {
        let resp = sender.send_request(req).await.map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status();
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("response larger than {MAX_RESPONSE_BYTES} bytes")
                } else {
                    format!("reading response: {e}")
                }
            })?
            .to_bytes();
        Ok((status, body))
    };
    tokio::pin!(response);
    tokio::pin!(conn);
    let mut conn_done = false;
    // Drive the connection in this task (no spawned task outlives a
    // timeout); once it ends the response future finishes on its own.
    loop {
        tokio::select! {
            r = &mut response => return r,
            c = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = c {
                    return Err(format!("HTTP: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use serde_json::{Value, json};
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    use crate::auth::oauth::testkit::*;
    use crate::auth::oauth::{ConnectFuture, OAuthConfig, TcpConnector, TokenError, TokenValidator, lock};

    #[test]
    fn url_targets() {
        let t = HttpTarget::parse("https://idp.example.ts.net/oauth/introspect?x=1").expect("url");
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("idp.example.ts.net", 443));
        assert_eq!(t.authority, "idp.example.ts.net");
        assert_eq!(t.path_and_query, "/oauth/introspect?x=1");
        let t = HttpTarget::parse("http://[::1]:8080").expect("url");
        assert_eq!((t.host.as_str(), t.port, t.path_and_query.as_str()), ("::1", 8080, "/"));
        assert_eq!(t.authority, "[::1]:8080");
        assert!(HttpTarget::parse("http://h/x#frag").is_err());
        assert!(HttpTarget::parse("//h/x").is_err());
    }

    // --- HTTPS --------------------------------------------------------------

    /// Dials 127.0.0.1:port whatever host is asked (like the tailnet dialer
    /// resolves names itself), recording the hosts.
    struct LoopbackConnector {
        hosts: Mutex<Vec<String>>,
    }

    impl Connector for LoopbackConnector {
        fn connect(&self, host: &str, port: u16) -> ConnectFuture {
            lock(&self.hosts).push(host.to_owned());
            TcpConnector.connect("127.0.0.1", port)
        }
    }

    async fn start_tls_jwks(jwks: Value) -> (u16, CertificateDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec!["idp.test".to_string()]).expect("self-signed cert");
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = Bytes::from(jwks.to_string());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |_req| {
                        let body = body.clone();
                        async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(body))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                });
            }
        });
        (port, cert)
    }

    #[tokio::test]
    async fn https_jwks_through_a_custom_connector() {
        let key = TestKey::ed("ed-1");
        let (port, cert) = start_tls_jwks(json!({"keys": [key.jwk(true)]})).await;
        let cfg = OAuthConfig {
            jwks_url: Some(format!("https://idp.test:{port}/.well-known/jwks.json")),
            ..jwt_cfg(SocketAddr::from(([127, 0, 0, 1], port)))
        };
        let token = key.token(&claims(json!({})));

        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("root");
        let connector = Arc::new(LoopbackConnector { hosts: Mutex::new(Vec::new()) });
        let v = TokenValidator::with_roots(cfg.clone(), connector.clone(), roots).expect("validator");
        v.validate(&token).await.expect("valid over https");
        assert_eq!(lock(&connector.hosts).clone(), vec!["idp.test".to_string()]);

        // With the public (webpki) roots the self-signed server is refused.
        let v = TokenValidator::new(cfg, connector).expect("validator");
        let r = v.validate(&token).await;
        assert!(matches!(r, Err(TokenError::Unavailable(ref m)) if m.contains("TLS")), "{r:?}");
    }
}
