//! Corpus section A: Header and algorithm.
//! Row ids are explained in `CORPUS.md`, beside this file.

use super::*;

// B-A. Header and algorithm
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn b_a_header_and_algorithm() {
    let h = harness().await;
    let attacker = JwksServer::start(Jwks::Keys(jwks_of(&[(evil(), "evil")]))).await;
    let claims = good();
    let body = claims.to_string();
    let valid = rs(&claims);
    let (_, _, rs_sig) = split(&valid);
    let unsigned = |header: &str, sig: &str| format!("{}.{}.{sig}", b64(header), b64(&body));

    let Signer::Rsa(kp) = rsa() else { unreachable!() };
    let spki = kp.public_key().as_der().unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, spki.as_ref())
    );
    let Signer::P256(ec_kp) = p256() else { unreachable!() };
    let ec_point = ec_kp.public_key().as_ref().to_vec();
    let n_bytes = aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key()).n;
    let hs_with = |secret: &[u8], kid: &str| {
        Signer::hmac(secret).token_raw(Algorithm::HS256, &hdr("HS256", kid), &body)
    };

    let mut cases = vec![
        tcase("A0 control: RS256 with k1", &valid, Want::Pass),
        tcase(
            "A0 control: PS256 with k1 (no alg on the key)",
            &rsa().token_with(Algorithm::PS256, "k1", &unique(1)),
            Want::Pass,
        ),
        tcase(
            "A0 control: RS256 with rs-pinned",
            &rsa2().token_with(Algorithm::RS256, "rs-pinned", &unique(2)),
            Want::Pass,
        ),
        tcase("A0 control: ES256 with ec1", &p256().token("ec1", &unique(3)), Want::Pass),
        tcase("A0 control: ES384 with ec384", &p384().token("ec384", &unique(4)), Want::Pass),
        // A1-A3: alg none.
        tcase(
            "A1 alg none, empty signature",
            &unsigned(r#"{"alg":"none"}"#, ""),
            invalid(&[R::Malformed, R::AlgorithmNotAllowed]),
        ),
        tcase(
            "A1 alg none + kid, empty signature",
            &unsigned(r#"{"alg":"none","kid":"k1"}"#, ""),
            invalid(&[R::Malformed, R::AlgorithmNotAllowed]),
        ),
    ];
    for alg in ["None", "NONE", "nOnE", "none "] {
        let header = json!({"alg": alg, "kid": "k1"}).to_string();
        cases.push(tcase(
            format!("A2 alg {alg:?}"),
            &unsigned(&header, &rs_sig),
            invalid(&[R::AlgorithmNotAllowed]),
        ));
    }
    cases.push(tcase(
        "A3 alg none with a real RS256 signature",
        &unsigned(r#"{"alg":"none","kid":"k1"}"#, &rs_sig),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    cases.push(tcase(
        "A3 alg none with a non-empty garbage signature",
        &unsigned(r#"{"alg":"none"}"#, "c2ln"),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    // A4: alg missing or not a string.
    for header in [
        r#"{"kid":"k1"}"#,
        r#"{"alg":null,"kid":"k1"}"#,
        r#"{"alg":123,"kid":"k1"}"#,
        r#"{"alg":["RS256"],"kid":"k1"}"#,
        r#"{"alg":{},"kid":"k1"}"#,
        r#"{"alg":"","kid":"k1"}"#,
    ] {
        cases.push(tcase(
            format!("A4 {header}"),
            &rs_header(header, &claims),
            invalid(&[R::AlgorithmNotAllowed]),
        ));
    }
    // A5: unknown, weak or unconfigured algorithms.
    for alg in ["HS1", "RS1", "ES256K", "ES512", "PS1", "RS256 ", "rs256"] {
        cases.push(tcase(
            format!("A5 alg {alg:?}"),
            &rs_header(&hdr(alg, "k1"), &claims),
            invalid(&[R::AlgorithmNotAllowed]),
        ));
    }
    cases.push(tcase(
        "A5 EdDSA (not configured) with the published ed1 key",
        &ed().token_raw(Algorithm::EdDSA, &hdr("EdDSA", "ed1"), &body),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    cases.push(tcase(
        "A5 RS384 (not configured) with k1",
        &rsa().token_with(Algorithm::RS384, "k1", &claims),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    // A6: HS256 keyed with public key bytes.
    let confusions: [(&str, Vec<u8>, &str); 6] = [
        ("A6 HS256 keyed with the RSA public key PEM", pem.clone().into_bytes(), "k1"),
        ("A6 HS256 keyed with the RSA public key DER", spki.as_ref().to_vec(), "k1"),
        ("A6 HS256 keyed with the RSA JWK JSON", rsa().jwk("k1").to_string().into_bytes(), "k1"),
        ("A6 HS256 keyed with the RSA modulus", n_bytes, "k1"),
        ("A6 HS256 keyed with the EC point (Wycheproof tcId 31)", ec_point, "ec1"),
        ("A6 HS256 keyed with the EC JWK JSON", p256().jwk("ec1").to_string().into_bytes(), "ec1"),
    ];
    for (name, secret, kid) in confusions {
        cases.push(tcase(name, &hs_with(&secret, kid), invalid(&[R::AlgorithmNotAllowed])));
    }
    // A7: alg of the wrong family for the key named by kid.
    cases.push(tcase(
        "A7 RS256 header on the EC key ec1",
        &rsa().token_with(Algorithm::RS256, "ec1", &claims),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    cases.push(tcase(
        "A7 ES256 header on the RSA key k1",
        &p256().token_with(Algorithm::ES256, "k1", &claims),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    cases.push(tcase(
        "A7 PS256 on a JWK pinned to RS256",
        &rsa2().token_with(Algorithm::PS256, "rs-pinned", &claims),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    // A8: curve and alg mismatch.
    cases.push(tcase(
        "A8 ES256 header on the P-384 key",
        &p384().token_raw(Algorithm::ES384, &hdr("ES256", "ec384"), &body),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    cases.push(tcase(
        "A8 ES384 header on the P-256 key",
        &p256().token_raw(Algorithm::ES256, &hdr("ES384", "ec1"), &body),
        invalid(&[R::UnknownKey, R::BadSignature]),
    ));
    cases.push(tcase(
        "A8 ES512 header on the P-256 key",
        &p256().token_raw(Algorithm::ES256, &hdr("ES512", "ec1"), &body),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    // A9: embedded jwk with the attacker's key.
    for (name, kid) in [
        ("A9 embedded jwk, kid of a real key", Some("ec1")),
        ("A9 embedded jwk, no kid", None),
        ("A9 embedded jwk, kid only in the jwk", Some("attacker")),
    ] {
        let mut header = json!({"alg": "ES256", "jwk": evil().jwk(kid.unwrap_or("attacker"))});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        cases.push(tcase(
            name,
            &evil().token_raw(Algorithm::ES256, &header.to_string(), &body),
            invalid(&[R::BadSignature, R::UnknownKey]),
        ));
    }
    // A10: jku / x5u to an attacker URL: never fetched (the attacker's server counts hits).
    for (member, url, kid) in [
        ("jku", attacker.url(), "evil"),
        ("jku", attacker.url(), "ec1"),
        ("x5u", attacker.url(), "evil"),
        ("jku", "file:///etc/passwd".to_string(), "ec1"),
        ("jku", "http://169.254.169.254/latest/meta-data/".to_string(), "ec1"),
        ("x5u", "http://127.0.0.1:1/redirect".to_string(), "ec1"),
    ] {
        let header = json!({"alg": "ES256", "kid": kid, member: url}).to_string();
        cases.push(tcase(
            format!("A10 {member} {url} kid {kid}"),
            &evil().token_raw(Algorithm::ES256, &header, &body),
            invalid(&[R::BadSignature, R::UnknownKey]),
        ));
    }
    // A11: x5c with the attacker's self-made "chain".
    let Signer::P256(evil_kp) = evil() else { unreachable!() };
    let evil_der = evil_kp.public_key().as_der().unwrap();
    let x5c = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, evil_der.as_ref());
    for kid in [Some("ec1"), None] {
        let mut header = json!({"alg": "ES256", "x5c": [x5c.clone()]});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        cases.push(tcase(
            format!("A11 x5c self-signed, kid {kid:?}"),
            &evil().token_raw(Algorithm::ES256, &header.to_string(), &body),
            invalid(&[R::BadSignature, R::UnknownKey]),
        ));
    }
    // A12-A13: kid is an opaque map key.
    cases.push(tcase(
        "A12 kid path traversal, HS256 with an empty key",
        &hs_with(b"", "../../../../dev/null"),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    for kid in [
        "../../../../dev/null",
        "x' UNION SELECT 'secret'--",
        "|sleep 10",
        "$(sleep 10)",
        "\u{0}k1",
        "k1\u{0}",
        "k1 ",
        "K1",
    ] {
        cases.push(tcase(
            format!("A12/A13 kid {kid:?}"),
            &rsa().token_with(Algorithm::RS256, kid, &claims),
            invalid(&[R::UnknownKey]),
        ));
    }
    // A14: kid size and type.
    cases.push(tcase(
        "A14 kid of 257 bytes",
        &rs_header(&hdr("RS256", &"k".repeat(MAX_KID_BYTES + 1)), &claims),
        invalid(&[R::BadKeyId]),
    ));
    cases.push(tcase(
        "A14 kid of 256 bytes is allowed, but unknown",
        &rs_header(&hdr("RS256", &"k".repeat(MAX_KID_BYTES)), &claims),
        invalid(&[R::UnknownKey]),
    ));
    cases.push(tcase(
        "A14 kid of 1 MB",
        &rs_header(&hdr("RS256", &"k".repeat(1 << 20)), &claims),
        invalid(&[R::TooLarge]),
    ));
    for kid in ["1", "[]", "{}", "null", "true", r#"["k1"]"#] {
        cases.push(tcase(
            format!("A14 kid {kid}"),
            &rs_header(&format!(r#"{{"alg":"RS256","kid":{kid}}}"#), &claims),
            invalid(&[R::BadKeyId]),
        ));
    }
    // A16-A19: crit, b64, zip.
    for (name, header) in [
        ("A16 crit [exp-ext]", r#"{"alg":"RS256","kid":"k1","crit":["exp-ext"],"exp-ext":1}"#),
        ("A17 crit []", r#"{"alg":"RS256","kid":"k1","crit":[]}"#),
        ("A17 crit \"b64\" (not an array)", r#"{"alg":"RS256","kid":"k1","crit":"b64"}"#),
        ("A17 crit [alg] (a registered name)", r#"{"alg":"RS256","kid":"k1","crit":["alg"]}"#),
        ("A17 crit entry absent from the header", r#"{"alg":"RS256","kid":"k1","crit":["x"]}"#),
        ("A17 crit null", r#"{"alg":"RS256","kid":"k1","crit":null}"#),
        ("A18 b64 false with crit", r#"{"alg":"RS256","kid":"k1","b64":false,"crit":["b64"]}"#),
        ("A18 b64 false without crit", r#"{"alg":"RS256","kid":"k1","b64":false}"#),
        ("A18 b64 true", r#"{"alg":"RS256","kid":"k1","b64":true}"#),
        ("A19 zip DEF", r#"{"alg":"RS256","kid":"k1","zip":"DEF"}"#),
        ("A20 cty JWT (nested)", r#"{"alg":"RS256","kid":"k1","cty":"JWT"}"#),
        (
            "A20 cty application/jwt (nested)",
            r#"{"alg":"RS256","kid":"k1","cty":"application/jwt"}"#,
        ),
        ("A20 typ dpop+jwt (default allowlist)", r#"{"alg":"RS256","kid":"k1","typ":"dpop+jwt"}"#),
        ("A20 typ JWE", r#"{"alg":"RS256","kid":"k1","typ":"JWE"}"#),
        ("A20 typ 1 (not a string)", r#"{"alg":"RS256","kid":"k1","typ":1}"#),
    ] {
        cases.push(tcase(name, &rs_header(header, &claims), invalid(&[R::UnsupportedHeader])));
    }
    cases.push(tcase(
        "A20 control: typ application/at+jwt",
        &rs_header(r#"{"alg":"RS256","kid":"k1","typ":"application/at+jwt"}"#, &unique(5)),
        Want::Pass,
    ));
    cases.push(tcase(
        "A20 control: no typ",
        &rs_header(r#"{"alg":"RS256","kid":"k1"}"#, &unique(6)),
        Want::Pass,
    ));

    let started = Instant::now();
    run(&h.layer, &h.store, cases).await;
    assert!(started.elapsed() < Duration::from_secs(20), "kid payloads must not stall");
    assert_eq!(attacker.hits(), 0, "A10: a jku/x5u URL was fetched");
}

/// A6 at configuration time: HS* is never allowed next to a public key or a JWKS.
#[tokio::test]
async fn a6_hmac_algorithms_never_fit_public_keys() {
    let h = harness().await;
    let Signer::Rsa(kp) = rsa() else { unreachable!() };
    let spki = kp.public_key().as_der().unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, spki.as_ref())
    );
    let sources = [
        ("PEM", KeySource::public_key_pem(&pem).unwrap()),
        ("JWK", KeySource::public_key_jwk(&rsa().jwk("k1").to_string()).unwrap()),
        ("JWKS", KeySource::jwks(h.cache.clone())),
    ];
    for (name, source) in sources {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let settings = JwtSettings::new(source.clone()).algorithms([Algorithm::RS256, alg]);
            let built = JwtPlanLayer::builder("echo")
                .plan(Plan::jwt("gold", "Gold", settings))
                .resolver(h.store.clone())
                .build();
            assert!(
                matches!(built, Err(ConfigError::AlgorithmKeyMismatch { .. })),
                "{name} with {alg:?}: {:?}",
                built.err()
            );
        }
    }
}

/// A15: with two issuers, a `kid` of issuer B presented as issuer A is refused (each plan
/// looks keys up in its own issuer's set only).
#[tokio::test]
async fn a15_kid_of_another_issuer() {
    let idp_a = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "a1")]))).await;
    let idp_b = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa2(), "b1")]))).await;
    let (cache_a, cache_b) = (jwks_cache(&idp_a).await, jwks_cache(&idp_b).await);
    let store = CountingStore::with([accepted("gold", CLIENT), accepted("silver", CLIENT)]);
    let layer = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt(
            "gold",
            "Gold",
            JwtSettings::new(KeySource::jwks(cache_a)).issuer("https://a.test"),
        ))
        .plan(Plan::jwt(
            "silver",
            "Silver",
            JwtSettings::new(KeySource::jwks(cache_b)).issuer("https://b.test"),
        ))
        .resolver(store.clone())
        .clock(|| at(NOW))
        .build()
        .unwrap();
    let token = |signer: &Signer, kid: &str, iss: &str, n: usize| {
        signer.token(
            kid,
            &json!({"iss": iss, "client_id": CLIENT, "exp": NOW + 60, "jti": n.to_string()}),
        )
    };
    let cases = vec![
        tcase(
            "A15 control: issuer A with a1",
            &token(rsa(), "a1", "https://a.test", 1),
            Want::Pass,
        ),
        tcase(
            "A15 control: issuer B with b1",
            &token(rsa2(), "b1", "https://b.test", 2),
            Want::Pass,
        ),
        tcase(
            "A15 issuer A naming issuer B's key",
            &token(rsa2(), "b1", "https://a.test", 3),
            invalid(&[R::UnknownKey]),
        ),
        tcase(
            "A15 issuer B naming issuer A's key",
            &token(rsa(), "a1", "https://b.test", 4),
            invalid(&[R::UnknownKey]),
        ),
        tcase(
            "A15 an unknown issuer naming a real key",
            &token(rsa(), "a1", "https://c.test", 5),
            invalid(&[R::NoMatchingPlan]),
        ),
    ];
    run(&layer, &store, cases).await;
}

/// A20 with `token_types` configured: only those `typ`s pass, and a missing `typ` is refused.
#[tokio::test]
async fn a20_typ_enforcement() {
    let h = harness().await;
    let layer = layer_with(settings(&h.cache).token_types(["at+jwt"]), &h.store, |b| b);
    let header = |typ: Option<&str>| {
        let mut header = json!({"alg": "RS256", "kid": "k1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        header.to_string()
    };
    let cases = vec![
        tcase(
            "A20 control: typ at+jwt",
            &rs_header(&header(Some("at+jwt")), &unique(1)),
            Want::Pass,
        ),
        tcase(
            "A20 control: typ application/AT+JWT",
            &rs_header(&header(Some("application/AT+JWT")), &unique(2)),
            Want::Pass,
        ),
        tcase(
            "A20 an ID token (typ JWT) where at+jwt is required",
            &rs_header(&header(Some("JWT")), &good()),
            invalid(&[R::UnsupportedHeader]),
        ),
        tcase(
            "A20 no typ where at+jwt is required",
            &rs_header(&header(None), &good()),
            invalid(&[R::UnsupportedHeader]),
        ),
    ];
    run(&layer, &h.store, cases).await;
}
