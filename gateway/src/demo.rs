//! The no-argument demo: an echo upstream, a demo identity provider serving its key as a
//! JWKS, and the configuration that ties them to one API `echo` at `/echo`. Both servers run on
//! loopback ports in the background; [`set_up_catalog`] puts the same API, plan, application
//! and subscription in a catalog by the source document's steps. Imports no other module of
//! the gateway.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_jwt_plan::catalog::{
    Catalog, CatalogError, NewApi, NewApplication, NewPlan, NewSubscription, Validation,
};
use tower_jwt_plan::definition::JwtDefinition;

/// Where the demo IdP serves its keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Serve an axum router on 127.0.0.1 (a free port) in the background.
pub async fn serve_router(router: axum::Router) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::warn!(error = %err, "demo server stopped");
        }
    });
    Ok(addr)
}

/// An upstream that answers every request with a JSON description of it.
pub fn echo_router() -> axum::Router {
    axum::Router::new().fallback(echo)
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    let mut names = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<&str> =
            headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("<binary>")).collect();
        names.insert(name.to_string(), Value::String(values.join(", ")));
    }
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": names,
        "body": String::from_utf8_lossy(&body),
    }))
}

/// An ES256 signing key with its public JWK.
pub struct DemoKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl DemoKey {
    /// A fresh P-256 key.
    pub fn generate(kid: &str) -> Result<Self, String> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| "cannot generate the demo key".to_owned())?;
        Ok(Self { pair, kid: kid.to_owned() })
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        // The uncompressed SEC1 point: 0x04, then x and y, 32 bytes each.
        let point = self.pair.public_key().as_ref();
        let (x, y) = point.get(1..65).map_or((&[][..], &[][..]), |xy| xy.split_at(32));
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// Sign `claims` as a compact JWS (ES256, with this key's `kid`).
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| "cannot sign the demo token".to_owned())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

/// A demo identity provider: a key, served as a JWKS on a loopback port.
pub struct DemoIdp {
    /// The signing key.
    pub key: DemoKey,
    /// `http://127.0.0.1:PORT`, the `iss` of its tokens.
    pub issuer: String,
    /// Where its JWKS is served.
    pub jwks_url: String,
}

impl DemoIdp {
    /// Generate a key and serve it at `http://127.0.0.1:PORT/.well-known/jwks.json`.
    pub async fn start() -> Result<Self, String> {
        let key = DemoKey::generate("demo-key-1")?;
        let jwks = json!({ "keys": [key.jwk()] });
        let router = axum::Router::new().route(
            JWKS_PATH,
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let addr = serve_router(router).await?;
        Ok(Self {
            key,
            issuer: format!("http://{addr}"),
            jwks_url: format!("http://{addr}{JWKS_PATH}"),
        })
    }

    /// A token of this IdP: `client_id`, `sub`, `iss`, `aud`, `iat`, `exp` = now + `lifetime`.
    pub fn token(
        &self,
        client_id: &str,
        sub: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<String, String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.key.sign(&json!({
            "iss": self.issuer,
            "aud": audience,
            "sub": sub,
            "client_id": client_id,
            "iat": now,
            "exp": now + lifetime.as_secs(),
        }))
    }
}

/// Set up the demo in a catalog by the source document's steps: create the API, a JWT plan
/// with auto validation, publish it, delete the keyless plan, deploy, create an application
/// with its client id, subscribe (accepted at once).
pub async fn set_up_catalog(
    catalog: &Catalog,
    upstream: SocketAddr,
    idp: &DemoIdp,
) -> Result<(), CatalogError> {
    let api = NewApi::new("Echo", "/echo", format!("http://{upstream}")).with_id("echo");
    catalog.create_api(&api).await?;
    // The API starts with a keyless plan, as a new API does in the source document.
    catalog
        .create_plan("echo", &NewPlan::keyless("Default keyless plan").with_id("keyless"))
        .await?;
    let mut jwt = JwtDefinition::jwks_url(idp.jwks_url.as_str());
    jwt.algorithms = Some(vec!["ES256".into()]);
    jwt.issuer = Some(vec![idp.issuer.clone()]);
    jwt.audience = Some(vec!["api://echo".into()]);
    jwt.claims_to_headers = Some([("sub".to_owned(), "x-user-id".to_owned())].into());
    let gold = NewPlan::jwt("Gold", Validation::Auto, jwt).with_id("gold");
    catalog.create_plan("echo", &gold).await?;
    catalog.publish_plan("echo", "gold").await?;
    catalog.delete_plan("echo", "keyless").await?;
    catalog.deploy("echo", Some("demo")).await?;
    catalog
        .create_application(&NewApplication::new("Demo app", "demo-client").with_id("app-1"))
        .await?;
    catalog.subscribe("echo", &NewSubscription::new("app-1", "gold").with_id("sub-1")).await?;
    Ok(())
}
