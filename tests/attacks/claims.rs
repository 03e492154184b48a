//! Corpus section E: Claims (token level; the clock is pinned at NOW, leeway 60 s).
//! Row ids are explained in `CORPUS.md`, beside this file.

use super::*;

#[tokio::test]
async fn b_e_claims() {
    let h = harness().await;
    let now = NOW as f64;
    let mut cases = vec![tcase("E0 control", &rs(&good()), Want::Pass)];
    let mut n = 0;
    let mut add = |name: &str, claims: Value, want: Want| {
        // A distinct jti per case: no case can hit the verified-token cache of another.
        n += 1;
        let mut claims = claims;
        claims["jti"] = json!(format!("e-{n}"));
        cases.push(tcase(name, &rs(&claims), want));
    };
    // E1, E4: expired.
    add("E1 exp 61 s ago", with("exp", json!(NOW - 61)), invalid(&[R::Expired]));
    add("E1 exp an hour ago", with("exp", json!(NOW - 3600)), invalid(&[R::Expired]));
    add("E4 exp -1", with("exp", json!(-1)), invalid(&[R::Expired]));
    add("E4 exp 0", with("exp", json!(0)), invalid(&[R::Expired]));
    // E2: wrongly typed exp is an error, never "absent".
    for (label, value) in [
        ("\"9999999999\"", json!("9999999999")),
        ("true", json!(true)),
        ("[exp]", json!([NOW + 600])),
        ("{}", json!({})),
        ("null", Value::Null),
    ] {
        add(&format!("E2 exp {label}"), with("exp", value), invalid(&[R::WrongClaimType]));
    }
    // E3: NumericDate may be fractional.
    add("E3 exp fractional, in the future", with("exp", json!(now + 600.5)), Want::Pass);
    add("E3 exp fractional, inside the leeway", with("exp", json!(now - 59.5)), Want::Pass);
    add(
        "E3 exp fractional, past the leeway",
        with("exp", json!(now - 60.5)),
        invalid(&[R::Expired]),
    );
    // E5: far future, accepted with no max_lifetime (see e5_max_lifetime).
    for (label, value) in [
        ("year 9999", json!(253_402_300_799u64)),
        ("2^53 + 1", json!(9_007_199_254_740_993u64)),
        ("u64::MAX", json!(u64::MAX)),
        ("1e19", json!(1e19)),
        ("1.7e308", json!(1.7e308)),
        ("f64::MAX", json!(f64::MAX)),
    ] {
        add(&format!("E5 exp {label} without max_lifetime"), with("exp", value), Want::Pass);
    }
    // E6.
    add("E6 exp missing", without("exp"), invalid(&[R::MissingClaim]));
    // E7.
    add("E7 nbf 61 s ahead", with("nbf", json!(NOW + 61)), invalid(&[R::NotYetValid]));
    add("E7 nbf a day ahead", with("nbf", json!(NOW + 86_400)), invalid(&[R::NotYetValid]));
    add("E7 nbf \"1\"", with("nbf", json!("1")), invalid(&[R::WrongClaimType]));
    add("E7 nbf null", with("nbf", Value::Null), invalid(&[R::WrongClaimType]));
    // E8.
    add("E8 iat 61 s ahead", with("iat", json!(NOW + 61)), invalid(&[R::IssuedInFuture]));
    add("E8 iat \"1\"", with("iat", json!("1")), invalid(&[R::WrongClaimType]));
    add("E8 iat -1", with("iat", json!(-1)), invalid(&[R::WrongClaimType]));
    add("E8 iat [now]", with("iat", json!([NOW])), invalid(&[R::WrongClaimType]));
    // E9: the edges (expired once now >= exp + leeway; nbf/iat fail once beyond now + leeway).
    add("E9 exp == now - leeway (expired)", with("exp", json!(NOW - 60)), invalid(&[R::Expired]));
    add("E9 exp == now - leeway + 1", with("exp", json!(NOW - 59)), Want::Pass);
    add("E9 exp == now", with("exp", json!(NOW)), Want::Pass);
    add("E9 nbf == now + leeway", with("nbf", json!(NOW + 60)), Want::Pass);
    add("E9 nbf == now + leeway + 1", with("nbf", json!(NOW + 61)), invalid(&[R::NotYetValid]));
    add("E9 nbf == now + leeway + 0.5", with("nbf", json!(now + 60.5)), invalid(&[R::NotYetValid]));
    add("E9 iat == now + leeway", with("iat", json!(NOW + 60)), Want::Pass);
    add(
        "E9 iat == now + leeway + 0.5",
        with("iat", json!(now + 60.5)),
        invalid(&[R::IssuedInFuture]),
    );
    // E10: aud shapes.
    add("E10 aud string", with("aud", json!(AUD)), Want::Pass);
    add("E10 aud array containing ours", with("aud", json!(["other", AUD])), Want::Pass);
    add("E10 aud []", with("aud", json!([])), invalid(&[R::AudienceNotAccepted]));
    add("E10 aud [1]", with("aud", json!([1])), invalid(&[R::WrongClaimType]));
    add("E10 aud [null]", with("aud", json!([null])), invalid(&[R::WrongClaimType]));
    add("E10 aud [ours, 1]", with("aud", json!([AUD, 1])), invalid(&[R::WrongClaimType]));
    add("E10 aud \"\"", with("aud", json!("")), invalid(&[R::AudienceNotAccepted]));
    add("E10 aud 123", with("aud", json!(123)), invalid(&[R::WrongClaimType]));
    add("E10 aud {}", with("aud", json!({"aud": AUD})), invalid(&[R::WrongClaimType]));
    add("E10 aud missing", without("aud"), invalid(&[R::MissingClaim]));
    // E11: exact string comparison.
    add("E11 control: configured https://api.example.com", with("aud", json!(API_AUD)), Want::Pass);
    for aud in [
        "http://api.example.com/",
        "https://api.example.com/",
        "HTTPS://api.example.com",
        "https://API.example.com",
        "api://echo/",
        "API://ECHO",
        " api://echo",
    ] {
        add(
            &format!("E11 aud {aud:?}"),
            with("aud", json!(aud)),
            invalid(&[R::AudienceNotAccepted]),
        );
    }
    // E12: issuer (plans listing issuers skip other tokens before any crypto).
    let iss_refused = invalid(&[R::NoMatchingPlan, R::IssuerNotAccepted, R::MissingClaim]);
    add("E12 iss mismatch", with("iss", json!("https://evil.test")), iss_refused);
    add("E12 iss with a trailing slash", with("iss", json!(format!("{ISS}/"))), iss_refused);
    add("E12 iss missing", without("iss"), iss_refused);
    add("E12 iss \"\"", with("iss", json!("")), iss_refused);
    add("E12 iss 123", with("iss", json!(123)), invalid(&[R::WrongClaimType]));
    add("E12 iss [ISS]", with("iss", json!([ISS])), invalid(&[R::WrongClaimType]));
    // E13: scope (the plan requires `read`): 403, and still no store lookup.
    add("E13 scope without read", with("scope", json!("write")), Want::Scope);
    add("E13 scope missing", without("scope"), Want::Scope);
    add("E13 scope \"reader\"", with("scope", json!("reader")), Want::Scope);
    add("E13 scope \"READ\"", with("scope", json!("READ")), Want::Scope);
    let mut scp = without("scope");
    scp["scp"] = json!(["write"]);
    add("E13 scp [write]", scp.clone(), Want::Scope);
    scp["scp"] = json!(["write", "read"]);
    add("E13 control: scp [write, read]", scp.clone(), Want::Pass);
    scp["scp"] = json!("read write");
    add("E13 control: scp \"read write\"", scp, Want::Pass);
    add("E13 scope 7", with("scope", json!(7)), invalid(&[R::WrongClaimType]));
    // E15: sub / jti types (jti is overwritten by `add`, so sub and client_id here).
    add("E15 sub 123", with("sub", json!(123)), invalid(&[R::WrongClaimType]));
    add("E15 sub null", with("sub", Value::Null), invalid(&[R::WrongClaimType]));
    add("E15 client_id []", with("client_id", json!([])), invalid(&[R::WrongClaimType]));
    add("E15 azp {}", with("azp", json!({})), invalid(&[R::WrongClaimType]));
    cases.push(tcase("E15 jti []", &rs(&with("jti", json!([]))), invalid(&[R::WrongClaimType])));
    cases.push(tcase("E15 jti 7", &rs(&with("jti", json!(7))), invalid(&[R::WrongClaimType])));
    run(&h.layer, &h.store, cases).await;
}

/// E5 with `max_lifetime`: far-future `exp` values are refused, whatever their magnitude.
#[tokio::test]
async fn e5_max_lifetime() {
    let h = harness().await;
    let layer =
        layer_with(settings(&h.cache).max_lifetime(Duration::from_secs(86_400)), &h.store, |b| b);
    let mut cases = vec![
        tcase("E5 control: exp in 10 minutes", &rs(&unique(1)), Want::Pass),
        tcase("E5 control: exp in 1 day", &rs(&with("exp", json!(NOW + 86_400))), Want::Pass),
    ];
    for (label, value) in [
        ("1 day + leeway + 1 s", json!(NOW + 86_400 + 61)),
        ("year 9999", json!(253_402_300_799u64)),
        ("2^53 + 1", json!(9_007_199_254_740_993u64)),
        ("u64::MAX", json!(u64::MAX)),
        ("1e19", json!(1e19)),
        ("1.7e308", json!(1.7e308)),
        ("f64::MAX", json!(f64::MAX)),
    ] {
        cases.push(tcase(
            format!("E5 exp {label} with max_lifetime 1 day"),
            &rs(&with("exp", value)),
            invalid(&[R::LifetimeTooLong]),
        ));
    }
    run(&layer, &h.store, cases).await;
}

/// E14 and H5: more than one token in a request, wherever they are.
#[tokio::test]
async fn e14_h5_multiple_tokens() {
    let h = harness().await;
    let a = rs(&unique(1));
    let b = rs(&unique(2));
    let multiple = invalid(&[R::MultipleTokens]);
    let two = |headers: &[(&str, &str)], uri: &str| req(uri, headers);
    let (bearer_a, bearer_b) = (format!("Bearer {a}"), format!("Bearer {b}"));
    let many_cookies: String =
        (0..100).map(|i| format!("jwt={a}{}", if i < 99 { "; " } else { "" })).collect();
    let many_params: String =
        (0..100).map(|_| format!("access_token={a}")).collect::<Vec<_>>().join("&");
    let many_auth: Vec<(&str, &str)> =
        (0..100).map(|_| ("authorization", bearer_a.as_str())).collect();
    let other_cookies: String =
        (0..100).map(|i| format!("c{i}=v; ")).collect::<String>() + &format!("jwt={b}");
    let cases = vec![
        case("E14 control: token in the query alone", query(&a), Want::Pass),
        case(
            "E14 control: token in the cookie alone",
            cookie(&format!("theme=dark; jwt={b}")),
            Want::Pass,
        ),
        case(
            "E14 two Authorization headers, same token",
            two(&[("authorization", &bearer_a), ("authorization", &bearer_a)], "/resource"),
            multiple,
        ),
        case(
            "E14 two Authorization headers, different tokens",
            two(&[("authorization", &bearer_a), ("authorization", &bearer_b)], "/resource"),
            multiple,
        ),
        case(
            "E14 Authorization + query",
            two(&[("authorization", &bearer_a)], &format!("/resource?access_token={b}")),
            multiple,
        ),
        case(
            "E14 Authorization + query, same token",
            two(&[("authorization", &bearer_a)], &format!("/resource?access_token={a}")),
            multiple,
        ),
        case(
            "E14 Authorization + cookie",
            two(&[("authorization", &bearer_a), ("cookie", &format!("jwt={b}"))], "/resource"),
            multiple,
        ),
        case(
            "E14 query + cookie",
            two(&[("cookie", &format!("jwt={b}"))], &format!("/resource?access_token={a}")),
            multiple,
        ),
        case("E14 query twice", query(&format!("{a}&access_token={b}")), multiple),
        case("E14 cookie twice in one header", cookie(&format!("jwt={a}; jwt={b}")), multiple),
        case(
            "E14 cookie in two Cookie headers",
            two(&[("cookie", &format!("jwt={a}")), ("cookie", &format!("jwt={b}"))], "/resource"),
            multiple,
        ),
        case(
            "E14 Authorization + invalid query token",
            two(&[("authorization", &bearer_a)], "/resource?access_token=x.y.z"),
            multiple,
        ),
        case("H5 100 jwt cookies", cookie(&many_cookies), multiple),
        case(
            "H5 100 access_token parameters",
            req(&format!("/resource?{many_params}"), &[]),
            multiple,
        ),
        case("H5 100 Authorization headers", req("/resource", &many_auth), multiple),
        case("H5 control: 100 other cookies and one jwt", cookie(&other_cookies), Want::Pass),
    ];
    run(&h.layer, &h.store, cases).await;
}
