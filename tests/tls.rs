//! The JWKS client over real TLS: a server on 127.0.0.1 with a self-signed certificate made at
//! test time. Untrusted, it is a failed fetch (never an insecure fallback) and tokens get 503
//! within the timeout; trusted through `add_root_certificate_pem`, the same server works, which
//! proves the failure came from certificate verification and nothing else. When a trusted
//! endpoint starts presenting an untrusted certificate, refetches fail and the cached keys keep
//! serving.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tower_jwt_plan::*;

struct TlsIdp {
    url: String,
    ca_pem: String,
    handshakes: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
    certs: Arc<SwitchableCert>,
}

/// Serves the first certificate until told to switch to the second (an untrusted impostor).
#[derive(Debug)]
struct SwitchableCert {
    trusted: Arc<rustls::sign::CertifiedKey>,
    impostor: Arc<rustls::sign::CertifiedKey>,
    switched: std::sync::atomic::AtomicBool,
}

impl rustls::server::ResolvesServerCert for SwitchableCert {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(if self.switched.load(Ordering::SeqCst) {
            self.impostor.clone()
        } else {
            self.trusted.clone()
        })
    }
}

fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
) -> (Arc<rustls::sign::CertifiedKey>, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![made.cert.der().clone()], signing);
    (Arc::new(certified), made.cert.pem())
}

/// An HTTPS JWKS endpoint for `localhost`, with fresh self-signed certificates.
async fn tls_idp(body: String) -> TlsIdp {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (trusted, ca_pem) = certified_key(&provider);
    let (impostor, _) = certified_key(&provider);
    let certs = Arc::new(SwitchableCert { trusted, impostor, switched: Default::default() });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
    // Full handshakes only: a resumed session would skip the certificate the test switches.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (handshakes, served) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, s) = (handshakes.clone(), served.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, body, h, s) = (acceptor.clone(), body.clone(), h.clone(), s.clone());
            tokio::spawn(async move {
                h.fetch_add(1, Ordering::SeqCst);
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                s.fetch_add(1, Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsIdp { url: format!("https://localhost:{port}/jwks"), ca_pem, handshakes, served, certs }
}

fn layer(cache: JwksCache) -> JwtPlanLayer<CountingStore> {
    JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", JwtSettings::new(KeySource::jwks(cache)).issuer(ISS)))
        .resolver(CountingStore::with([accepted("gold", CLIENT)]))
        .build()
        .unwrap()
}

#[tokio::test]
async fn untrusted_certificate_fails_closed_and_trusted_one_works() {
    let idp = tls_idp(jwks_of(&[(rsa(), "k1")]).to_string()).await;
    let token = rsa().token("k1", &claims());

    let untrusted = JwksCache::builder(&idp.url)
        .fetch_timeout(Duration::from_secs(2))
        .min_refetch_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let started = Instant::now();
    let res = send(&layer(untrusted.clone()), &Seen::default(), bearer(&token)).await;
    assert_eq!((res.status, res.code()), (503, "JWKS_UNAVAILABLE"));
    assert!(started.elapsed() < Duration::from_secs(3), "answered within the fetch timeout");
    assert!(idp.handshakes.load(Ordering::SeqCst) >= 1, "the client did try the TLS endpoint");
    assert_eq!(
        idp.served.load(Ordering::SeqCst),
        0,
        "no request was sent over an untrusted channel"
    );
    assert!(!untrusted.is_ready());
    assert!(untrusted.stats().failures >= 1);

    let trusted = JwksCache::builder(&idp.url)
        .add_root_certificate_pem(idp.ca_pem.as_bytes())
        .build()
        .unwrap();
    assert!(
        trusted.wait_ready(Duration::from_secs(5)).await,
        "the same endpoint works once trusted"
    );
    let res = send(&layer(trusted), &Seen::default(), bearer(&token)).await;
    assert_eq!(res.status, 200);
    assert!(idp.served.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn certificate_turning_untrusted_after_caching_keeps_the_known_keys() {
    let idp = tls_idp(jwks_of(&[(rsa(), "k1")]).to_string()).await;
    let cache = JwksCache::builder(&idp.url)
        .add_root_certificate_pem(idp.ca_pem.as_bytes())
        .min_refetch_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(cache.wait_ready(Duration::from_secs(5)).await);
    let layer = layer(cache.clone());
    let served = idp.served.load(Ordering::SeqCst);

    idp.certs.switched.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // An unknown kid forces a refetch, which meets the impostor's certificate and fails.
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("rotated", &claims()))).await;
    assert_eq!(res.reason(), Some(InvalidReason::UnknownKey));
    assert!(cache.stats().failures >= 1, "the refetch failed on the untrusted certificate");
    assert_eq!(idp.served.load(Ordering::SeqCst), served, "nothing was sent to the impostor");
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &claims()))).await;
    assert_eq!(res.status, 200, "known keys keep working");
}

#[test]
fn a_bad_root_certificate_is_a_config_error() {
    let err = JwksCache::builder("https://localhost/jwks")
        .add_root_certificate_pem(
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .build_with_worker()
        .unwrap_err();
    // reqwest parses the PEM either at once or when the client is built: both are refusals.
    assert!(
        matches!(err, ConfigError::InvalidSetting { .. } | ConfigError::HttpClient(_)),
        "{err}"
    );
}
