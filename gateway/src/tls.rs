//! TLS, with rustls on aws-lc-rs: the listener's `[tls]` table (certificate chain and key,
//! optional client certificates, ALPN `h2` and `http/1.1`) and the client that reaches
//! `https://` backends with verified certificates.
//!
//! - **Listener**: [`TlsConfig`] is read at startup and on every SIGHUP reload; files that
//!   cannot be read or parsed refuse the start (or the reload) with a message naming the key
//!   and the file. A connection's handshake must finish within `first_bytes_timeout`.
//! - **Client certificates**: with `client_ca_file`, certificates are verified against that CA;
//!   `client_auth = "required"` (the default when a CA is set) refuses a handshake without one,
//!   `"optional"` lets it through. The verified leaf certificate goes into every request of the
//!   connection as the library's [`ClientCertificate`], which plans with `confirmation` check.
//! - **Backends**: `https://` backends are verified against the system's roots, plus the API's
//!   `backend_ca_file` when set; never unverified.
//!
//! A leaf: imports nothing from the gateway.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower_jwt_plan::ClientCertificate;

/// The `[tls]` table: serve HTTPS instead of plain HTTP.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA(s) that sign client certificates. Default: none, and no client
    /// certificate is asked for.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `required` (default with `client_ca_file`) or `optional`. Needs `client_ca_file`.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

/// `client_auth = "optional" | "required"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A handshake without a client certificate is let through (a presented one is verified).
    Optional,
    /// A handshake without a valid client certificate is refused.
    Required,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("[tls] {key} `{shown}`: {}", pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("[tls] {key} `{shown}`: {}", pem_error(e)))?;
    if certs.is_empty() {
        return Err(format!("[tls] {key} `{shown}`: no PEM certificate in the file"));
    }
    Ok(certs)
}

fn pem_error(err: rustls::pki_types::pem::Error) -> String {
    match err {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read the file: {e}"),
        other => format!("not a valid PEM file ({other:?})"),
    }
}

impl TlsConfig {
    /// Read the files and build the server configuration (ALPN `h2`, `http/1.1`).
    pub fn load(&self) -> Result<Arc<ServerConfig>, String> {
        let chain = read_certs("cert_file", &self.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|e| {
            format!("[tls] key_file `{}`: {}", self.key_file.display(), pem_error(e))
        })?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("[tls]: {e}"))?;
        let builder = match (&self.client_ca_file, self.client_auth) {
            (None, None) => builder.with_no_client_auth(),
            (None, Some(_)) => return Err("[tls] client_auth needs client_ca_file".into()),
            (Some(ca_file), auth) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs("client_ca_file", ca_file)? {
                    roots.add(cert).map_err(|e| {
                        format!("[tls] client_ca_file `{}`: {e}", ca_file.display())
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let verifier = match auth.unwrap_or(ClientAuth::Required) {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("[tls] client_ca_file `{}`: {e}", ca_file.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            format!(
                "[tls] cert_file `{}` and key_file `{}`: {e}",
                self.cert_file.display(),
                self.key_file.display()
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// In a request's extensions when it came over the TLS listener (`x-forwarded-proto: https`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListenerTls;

/// The listener's TLS: the current server configuration, replaced whole on reload.
#[derive(Clone)]
pub struct TlsListener {
    config: Arc<ArcSwap<ServerConfig>>,
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener").finish_non_exhaustive()
    }
}

/// A connection after its handshake, with the client certificate it presented (verified).
pub(crate) struct Accepted {
    pub(crate) stream: TlsStream<TcpStream>,
    pub(crate) client_certificate: Option<ClientCertificate>,
}

impl TlsListener {
    /// Load `config` (refused with the reason when a file is unreadable or invalid).
    pub fn new(config: &TlsConfig) -> Result<Self, String> {
        Ok(Self { config: Arc::new(ArcSwap::new(config.load()?)) })
    }

    /// Re-read the files; on error the configuration in use stays.
    pub fn reload(&self, config: &TlsConfig) -> Result<(), String> {
        self.config.store(config.load()?);
        Ok(())
    }

    /// The TLS handshake, bounded by `timeout`.
    pub(crate) async fn accept(&self, tcp: TcpStream, timeout: Duration) -> io::Result<Accepted> {
        let acceptor = TlsAcceptor::from(self.config.load_full());
        let stream = tokio::time::timeout(timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let client_certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| ClientCertificate::from_der(leaf.as_ref()));
        Ok(Accepted { stream, client_certificate })
    }
}

/// The connector of the backend client: plain HTTP, or HTTPS verified against the system's
/// roots plus the certificates of `extra_ca_file`.
pub(crate) fn backend_connector(
    extra_ca_file: Option<&Path>,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, String> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: a custom CA file may be all that is needed.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = extra_ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("backend_ca_file `{}`: {}", path.display(), pem_error(e)))?;
        if certs.is_empty() {
            return Err(format!(
                "backend_ca_file `{}`: no PEM certificate in the file",
                path.display()
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("backend_ca_file `{}`: {e}", path.display()))?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}
