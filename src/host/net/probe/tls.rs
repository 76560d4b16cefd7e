//! The TLS handshake of `tcp_check` and `http_check` (rustls): what was
//! negotiated and what the server's certificate says, and whether its
//! chain is valid against the web PKI roots (plus `[network] ca_file`).
//! A diagnostic must see a broken chain, not just fail: the chain check's
//! verdict is recorded and the handshake completes anyway (the handshake
//! signatures are still verified); nothing secret is ever sent.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};

use crate::mcp::{ErrorCategory, ToolError};

/// Most CA certificates read from `[network] ca_file`.
pub const MAX_CA_CERTS: usize = 1000;
/// Most subject alternative names reported.
pub const MAX_SANS: usize = 100;

/// What a TLS handshake negotiated and what the certificate says.
#[derive(Clone, Debug, Default, Serialize, schemars::JsonSchema)]
pub struct TlsInfo {
    /// `TLSv1_3`, `TLSv1_2`.
    pub protocol: String,
    /// The negotiated cipher suite.
    pub cipher: String,
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// The leaf certificate's subject (RFC 4514 string).
    pub subject: String,
    pub issuer: String,
    /// DNS names and IPs the certificate is valid for (first 100).
    pub sans: Vec<String>,
    /// Validity end, RFC 3339.
    pub not_after: String,
    /// Whole days until the certificate expires (negative: expired).
    pub days_to_expiry: i64,
    /// Certificates the server sent (leaf first).
    pub chain_length: usize,
    /// Whether the chain is valid for the name checked, against the web
    /// PKI roots and `[network] ca_file`.
    pub chain_valid: bool,
    /// Why not, when not.
    pub chain_error: Option<String>,
}

/// The trusted roots: webpki-roots plus the PEM certificates in `ca_file`.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        for cert in load_ca_file(path)? {
            store.add(cert).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
    }
    Ok(store)
}

/// Reads `[network] ca_file` (PEM certificates, at most [`MAX_CA_CERTS`]).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?
        .take(MAX_CA_CERTS + 1)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {}: no PEM certificates", path.display()));
    }
    if certs.len() > MAX_CA_CERTS {
        return Err(format!("ca_file {}: more than {MAX_CA_CERTS} certificates", path.display()));
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Verifies the chain with webpki, records the verdict, and lets the
/// handshake go on.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    verdict: Arc<Mutex<Option<Result<(), String>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let v = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(v.map(|_| ()).map_err(|e| e.to_string()));
        }
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The name the certificate is checked for: a DNS name, or the address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, ToolError> {
    ServerName::try_from(name.to_string())
        .map_err(|e| ToolError::invalid_input(format!("{name:?} is not a TLS server name: {e}"), "give a DNS name"))
}

/// Runs the handshake over `io` within `timeout`.
pub async fn handshake<IO>(
    io: IO,
    name: ServerName<'static>,
    roots: Arc<RootCertStore>,
    alpn: &[&[u8]],
    timeout: Duration,
) -> Result<(TlsStream<IO>, TlsInfo), ToolError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let internal = |e: TlsError| ToolError::internal(format!("TLS setup: {e}"));
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| ToolError::internal(format!("TLS verifier: {e}")))?;
    let verdict = Arc::new(Mutex::new(None));
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(internal)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording { inner, verdict: verdict.clone() }))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = TlsConnector::from(Arc::new(cfg));
    let tls = tokio::time::timeout(timeout, connector.connect(name, io))
        .await
        .map_err(|_| {
            ToolError::new(
                ErrorCategory::Timeout,
                format!("the TLS handshake did not finish within {} ms", timeout.as_millis()),
                "is this port speaking TLS?",
            )
        })?
        .map_err(|e| ToolError::unavailable(format!("the TLS handshake failed: {e}"), "is this port speaking TLS?"))?;
    let (_, conn) = tls.get_ref();
    let mut info = TlsInfo {
        protocol: conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
        cipher: conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default(),
        alpn: conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
        ..Default::default()
    };
    let certs = conn.peer_certificates().unwrap_or_default();
    info.chain_length = certs.len();
    if let Some(leaf) = certs.first() {
        describe(leaf, &mut info);
    }
    let verdict = verdict.lock().ok().and_then(|v| v.clone());
    match verdict {
        Some(Ok(())) => info.chain_valid = true,
        Some(Err(e)) => info.chain_error = Some(e),
        None => info.chain_error = Some("the server's certificate was not checked".into()),
    }
    Ok((tls, info))
}

fn describe(leaf: &CertificateDer<'_>, info: &mut TlsInfo) {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(leaf.as_ref()) else {
        info.subject = "(unparsable certificate)".into();
        return;
    };
    info.subject = cert.subject().to_string();
    info.issuer = cert.issuer().to_string();
    let not_after = cert.validity().not_after.timestamp();
    info.not_after = chrono::DateTime::from_timestamp(not_after, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    info.days_to_expiry = not_after.saturating_sub(now).div_euclid(86_400);
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        info.sans = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => <[u8; 4]>::try_from(*b).ok().map(|a| std::net::IpAddr::from(a).to_string()),
                    16 => <[u8; 16]>::try_from(*b).ok().map(|a| std::net::IpAddr::from(a).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .take(MAX_SANS)
            .collect();
    }
}
