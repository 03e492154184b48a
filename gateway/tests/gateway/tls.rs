//! TLS through the binary, with rcgen certificates: the HTTPS listener (ALPN h2 and
//! http/1.1), startup refusal of an unreadable certificate, required client certificates,
//! certificate-bound tokens (RFC 8705) checked against the connection's certificate, and
//! `https://` backends verified against the system's roots or the API's `backend_ca_file`.

use std::sync::Arc;

use hyper_util::client::legacy::connect::HttpConnector;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tower_jwt_plan::ClientCertificate;

use super::*;

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A leaf certificate and its key, PEM, plus the certificate's DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
    }
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().expect("PEM certs")
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("PEM key")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client TLS configuration trusting `ca`, presenting `client` when given.
fn client_tls(ca: &Ca, client: Option<&Leaf>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(&ca.pem) {
        roots.add(cert).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    match client {
        Some(leaf) => builder
            .with_client_auth_cert(certs(&leaf.cert_pem), key(&leaf.key_pem))
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, ClientBody>;

fn https_client(ca: &Ca, client: Option<&Leaf>) -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(ca, client))
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// GET `url` with an optional bearer token; `Err` when the exchange fails (e.g. a refused
/// handshake).
async fn https_get(client: &HttpsClient, url: &str, token: Option<&str>) -> Result<Reply, String> {
    let mut req = Request::get(url);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let exchange = async {
        let response = client
            .request(req.body(empty()).expect("request"))
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    };
    tokio::time::timeout(EXCHANGE, exchange).await.expect("exchange within bound")
}

/// The echo upstream served over TLS with `leaf`.
async fn https_upstream(leaf: &Leaf) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs(&leaf.cert_pem), key(&leaf.key_pem))
        .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(echo_router());
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// A token of the fixture IdP bound to `cert` (`cnf.x5t#S256`).
fn bound_token(f: &Fixture, cert: &Leaf) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let thumbprint = ClientCertificate::from_der(&cert.der).thumbprint_b64();
    f.idp
        .key
        .sign(&json!({
            "iss": f.idp.issuer, "aud": AUDIENCE, "sub": "user-1", "client_id": "client-1",
            "iat": now, "exp": now + 600, "cnf": { "x5t#S256": thumbprint },
        }))
        .expect("token")
}

#[tokio::test]
async fn tls_listener_client_certificates_and_bound_tokens_through_the_binary() {
    let f = Fixture::start().await;
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server = server_ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let alice = client_ca.leaf("alice", ExtendedKeyUsagePurpose::ClientAuth);
    let mallory = client_ca.leaf("mallory", ExtendedKeyUsagePurpose::ClientAuth);
    let cert_file = f.write("server.pem", &server.cert_pem);
    let key_file = f.write("server.key", &server.key_pem);
    let client_ca_file = f.write("client-ca.pem", &client_ca.pem);
    let tls = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\nclient_auth = \"required\"\n\n",
        cert_file.display(),
        key_file.display(),
        client_ca_file.display()
    );
    let text = [
        tls,
        f.api("echo", "/echo", "", &f.jwt_plan("gold", "")),
        f.api("bound", "/bound", "", &f.jwt_plan("bound", "confirmation = \"required\"")),
        app("app-1", "client-1"),
        sub("sub-1", "echo", "gold", "app-1"),
        sub("sub-2", "bound", "bound", "app-1"),
    ]
    .concat();
    let config = f.write("tls.toml", &text);
    let mut gateway = GatewayProcess::spawn(&["--config", config.to_str().expect("utf-8")]).await;
    assert!(gateway.base.starts_with("https://127.0.0.1:"), "{}", gateway.base);
    let base = gateway.base.replace("127.0.0.1", "localhost");

    // The listener: HTTPS with a client certificate; x-forwarded-proto says https.
    let as_alice = https_client(&server_ca, Some(&alice));
    let reply = https_get(&as_alice, &format!("{base}/echo/x"), Some(&f.token("client-1")))
        .await
        .expect("served over TLS");
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.echoed_header("x-forwarded-proto").as_deref(), Some("https"));

    // ALPN offers h2 and http/1.1.
    let port = base.rsplit(':').next().expect("port").to_owned();
    for (offer, chosen) in [(&b"h2"[..], &b"h2"[..]), (b"http/1.1", b"http/1.1")] {
        let mut config = client_tls(&server_ca, Some(&alice));
        config.alpn_protocols = vec![offer.to_vec()];
        let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.expect("tcp");
        let name = ServerName::try_from("localhost").expect("name");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(chosen));
    }

    // Required client certificates: without one, no answer.
    let anonymous = https_client(&server_ca, None);
    let refused =
        https_get(&anonymous, &format!("{base}/echo/x"), Some(&f.token("client-1"))).await;
    assert!(refused.is_err(), "served without a client certificate: {refused:?}");
    // A client certificate from another CA is refused too.
    let stranger = Ca::new("other CA").leaf("alice", ExtendedKeyUsagePurpose::ClientAuth);
    let foreign = https_client(&server_ca, Some(&stranger));
    assert!(https_get(&foreign, &format!("{base}/echo/x"), None).await.is_err());

    // Certificate-bound tokens: accepted with the certificate they are bound to, refused with
    // another one, and a token without `cnf` is refused on a `required` plan.
    let token = bound_token(&f, &alice);
    let url = format!("{base}/bound/x");
    let ok = https_get(&as_alice, &url, Some(&token)).await.expect("answer");
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let as_mallory = https_client(&server_ca, Some(&mallory));
    let stolen = https_get(&as_mallory, &url, Some(&token)).await.expect("answer");
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stolen.code(), "JWT_INVALID_TOKEN");
    let unbound = https_get(&as_alice, &url, Some(&f.token("client-1"))).await.expect("answer");
    assert_eq!(unbound.status, StatusCode::UNAUTHORIZED);

    // SIGHUP re-reads the files: an unreadable key refuses the reload, the old one serves.
    let lines = gateway.lines(Stream::Err).len();
    std::fs::write(&key_file, "not a key").expect("break the key");
    gateway.signal("HUP");
    let refused = gateway.wait_for(Stream::Err, lines, |l| l.contains("reload refused")).await;
    assert!(refused.contains("key_file"), "{refused}");
    let still = https_get(&as_alice, &format!("{base}/echo/x"), Some(&f.token("client-1")))
        .await
        .expect("still served");
    assert_eq!(still.status, StatusCode::OK);
}

#[tokio::test]
async fn unreadable_certificate_refused_at_start() {
    let f = Fixture::start().await;
    let missing = f.dir.0.join("missing.pem");
    let bad_key = f.write("bad.key", "-----BEGIN NOTHING-----\n");
    let leaf = Ca::new("ca").leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let cert = f.write("cert.pem", &leaf.cert_pem);
    for (cert_file, key_file, expected) in [
        (missing.clone(), bad_key.clone(), "[tls] cert_file"),
        (cert.clone(), bad_key.clone(), "[tls] key_file"),
        (cert.clone(), missing.clone(), "[tls] key_file"),
    ] {
        let text = format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n{}",
            cert_file.display(),
            key_file.display(),
            f.simple_config()
        );
        let config = f.write("bad-tls.toml", &text);
        let (status, _, stderr) =
            run_to_exit(&["--config", config.to_str().expect("utf-8"), "--listen", "127.0.0.1:0"])
                .await;
        assert!(!status.success());
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    // client_auth without a CA is refused.
    let key = f.write("ok.key", &leaf.key_pem);
    let text = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_auth = \"optional\"\n\n{}",
        cert.display(),
        key.display(),
        f.simple_config()
    );
    let config = f.write("no-ca.toml", &text);
    let (status, _, stderr) =
        run_to_exit(&["--config", config.to_str().expect("utf-8"), "--check"]).await;
    assert!(!status.success());
    assert!(stderr.contains("client_auth needs client_ca_file"), "{stderr}");
}

#[tokio::test]
async fn https_backends_are_verified() {
    let f = Fixture::start().await;
    let backend_ca = Ca::new("backend CA");
    let upstream =
        https_upstream(&backend_ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth)).await;
    let ca_file = f.write("backend-ca.pem", &backend_ca.pem);
    let backend = format!("https://localhost:{}", upstream.port());
    let trusted = format!(
        "[[api]]\nid = \"trusted\"\ncontext_path = \"/trusted\"\nbackend = \"{backend}\"\n\
         backend_ca_file = \"{}\"\n\n{}",
        ca_file.display(),
        f.jwt_plan("gold", "")
    );
    let text = [
        api_with_backend("unknown", "/unknown", &backend, &f.jwt_plan("gold", "")),
        trusted,
        app("app-1", "client-1"),
        sub("sub-1", "unknown", "gold", "app-1"),
        sub("sub-2", "trusted", "gold", "app-1"),
    ]
    .concat();
    let config = f.write("https-backend.toml", &text);
    let gateway = GatewayProcess::spawn(&["--config", config.to_str().expect("utf-8")]).await;
    let token = f.token("client-1");
    let unknown = get(&format!("{}/unknown/x", gateway.base), Some(&token)).await;
    assert_eq!(unknown.status, StatusCode::BAD_GATEWAY, "{:?}", unknown.body);
    assert_eq!(unknown.code(), "BACKEND_UNAVAILABLE");
    let trusted = get(&format!("{}/trusted/x", gateway.base), Some(&token)).await;
    assert_eq!(trusted.status, StatusCode::OK, "{:?}", trusted.body);
    assert_eq!(trusted.json()["path"], "/x", "{:?}", trusted.body);

    // A CA file on a plain-http backend is a configuration error.
    let plain = format!(
        "[[api]]\nid = \"a\"\ncontext_path = \"/a\"\nbackend = \"http://127.0.0.1:1\"\nbackend_ca_file = \"{}\"\n",
        ca_file.display()
    );
    let err = check_config_text(&plain);
    assert!(err.contains("backend_ca_file needs an https:// backend"), "{err}");
}

fn check_config_text(text: &str) -> String {
    tower_jwt_plan_gateway::config::parse_config(text)
        .and_then(|config| tower_jwt_plan_gateway::compile::check_config(&config))
        .expect_err("refused")
}
