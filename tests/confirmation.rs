//! Certificate-bound tokens (RFC 8705) through the layer: the server puts the connection's
//! client certificate (here real rcgen certificates) in the request as a `ClientCertificate`;
//! a token's `cnf.x5t#S256` must match it. Matching, mismatching, missing `cnf`, no client
//! certificate, each policy, and a cached token replayed from another connection.

mod common;

use std::sync::OnceLock;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use serde_json::json;
use tower_jwt_plan::*;

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

/// Two real client certificates (DER).
fn certs() -> &'static (Vec<u8>, Vec<u8>) {
    static CERTS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    CERTS.get_or_init(|| {
        let make = |name: &str| {
            rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap().cert.der().to_vec()
        };
        (make("client-a.test"), make("client-b.test"))
    })
}

fn layer(policy: Confirmation) -> JwtPlanLayer<InMemoryResolver> {
    let settings = JwtSettings::new(KeySource::hmac_secret(SECRET))
        .algorithms([Algorithm::HS256])
        .confirmation(policy);
    gold_builder(settings).build().unwrap()
}

/// A token bound to this certificate (DER), or unbound.
fn token(bound_to: Option<&[u8]>) -> String {
    let mut claims = claims();
    if let Some(der) = bound_to {
        claims["cnf"] = json!({"x5t#S256": ClientCertificate::from_der(der).thumbprint_b64()});
    }
    Signer::hmac(SECRET).token("k", &claims)
}

/// A request as the TLS server hands it on: with the connection's certificate, if any.
fn request(token: &str, cert: Option<&[u8]>) -> http::Request<Full<Bytes>> {
    let mut req = bearer(token);
    if let Some(der) = cert {
        req.extensions_mut().insert(ClientCertificate::from_der(der));
    }
    req
}

#[tokio::test]
async fn bound_tokens_must_match_the_connections_certificate() {
    let (a, b) = certs();
    for policy in [Confirmation::Optional, Confirmation::Required] {
        let layer = layer(policy);
        let seen = Seen::default();
        let bound = token(Some(a));
        assert_eq!(send(&layer, &seen, request(&bound, Some(a))).await.status, 200);
        let res = send(&layer, &seen, request(&bound, Some(b))).await;
        assert_eq!((res.status, res.code()), (401, "JWT_INVALID_TOKEN"), "{policy:?}");
        assert_eq!(res.reason(), Some(InvalidReason::CertificateMismatch));
        assert!(res.challenge().unwrap().contains("client certificate does not match"));
        let res = send(&layer, &seen, request(&bound, None)).await;
        assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::NoClientCertificate)));
        assert_eq!(seen.calls(), 1);
    }
}

#[tokio::test]
async fn required_refuses_unbound_tokens_optional_and_off_accept_them() {
    let (a, b) = certs();
    let unbound = token(None);
    let res =
        send(&layer(Confirmation::Required), &Seen::default(), request(&unbound, Some(a))).await;
    assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::NotCertificateBound)));
    for policy in [Confirmation::Optional, Confirmation::Off] {
        let res = send(&layer(policy), &Seen::default(), request(&unbound, None)).await;
        assert_eq!(res.status, 200, "{policy:?}");
    }
    // Off ignores cnf entirely, as a resource server that does not support RFC 8705 would.
    let res =
        send(&layer(Confirmation::Off), &Seen::default(), request(&token(Some(a)), Some(b))).await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn a_cached_bound_token_replayed_on_another_connection_is_refused() {
    let (a, b) = certs();
    let layer = layer(Confirmation::Required);
    let seen = Seen::default();
    let bound = token(Some(a));
    assert_eq!(send(&layer, &seen, request(&bound, Some(a))).await.status, 200);
    assert_eq!(layer.cached_tokens(), 1);
    let res = send(&layer, &seen, request(&bound, Some(b))).await;
    assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::CertificateMismatch)));
    assert_eq!(send(&layer, &seen, request(&bound, Some(a))).await.status, 200);
    assert_eq!(seen.calls(), 2);
}
