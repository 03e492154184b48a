//! Corpus section H: DoS, caching and races.
//! Row ids are explained in `CORPUS.md`, beside this file.

use super::*;
use crate::encoding::{non_canonical, padded};

/// The refetch budget of these caches.
const REFETCH: Duration = Duration::from_millis(200);

async fn past_refetch_window() {
    tokio::time::sleep(REFETCH + Duration::from_millis(50)).await;
}

/// H1: a flood of unknown `kid`s costs at most one fetch per refetch interval.
#[tokio::test]
async fn h1_kid_flood_is_rate_limited() {
    let h = harness().await;
    past_refetch_window().await;
    let before = h.server.hits();
    let started = Instant::now();
    let mut cases = Vec::new();
    for i in 0..150 {
        cases.push(tcase(
            format!("H1 random kid #{i}"),
            &rsa().token_with(Algorithm::RS256, &format!("flood-{i}"), &good()),
            invalid(&[R::UnknownKey]),
        ));
    }
    run(&h.layer, &h.store, cases).await;
    // And 100 at once, from concurrent tasks.
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let layer = h.layer.clone();
            let token = rsa().token_with(Algorithm::RS256, &format!("burst-{i}"), &good());
            tokio::spawn(async move { send(&layer, &Seen::default(), bearer(&token)).await })
        })
        .collect();
    for task in tasks {
        let res = task.await.unwrap();
        assert_eq!((res.status, res.reason()), (401, Some(R::UnknownKey)));
    }
    let elapsed = started.elapsed();
    let fetches = h.server.hits() - before;
    let budget = 1 + (elapsed.as_millis() / REFETCH.as_millis()) as usize;
    eprintln!("H1: 250 unknown kids in {elapsed:?} cost {fetches} fetches (budget {budget})");
    assert!(fetches >= 1, "an unknown kid triggers a refetch");
    assert!(fetches <= budget, "{fetches} fetches in {elapsed:?} (budget {budget})");
    assert_eq!(h.store.lookups(), 0);
}

/// H2: a token without `kid` is tried against at most MAX_CANDIDATE_KEYS keys.
#[tokio::test]
async fn h2_kidless_tokens_try_few_keys() {
    let signers: Vec<Signer> = (0..6).map(|_| Signer::p256()).collect();
    let keys: Vec<Value> =
        signers.iter().enumerate().map(|(i, s)| s.jwk(&format!("p{i}"))).collect();
    let h = harness_serving(json!({"keys": keys})).await;
    assert_eq!(MAX_CANDIDATE_KEYS, 4);
    let kidless = |signer: &Signer, n: usize| {
        signer.token_raw(Algorithm::ES256, r#"{"alg":"ES256"}"#, &unique(n).to_string())
    };
    let cases = vec![
        tcase("H2 control: no kid, first key", &kidless(&signers[0], 1), Want::Pass),
        tcase("H2 control: no kid, fourth key", &kidless(&signers[3], 2), Want::Pass),
        tcase(
            "H2 no kid, fifth key (beyond the candidate cap)",
            &kidless(&signers[4], 3),
            invalid(&[R::BadSignature]),
        ),
        tcase(
            "H2 no kid, sixth key (beyond the candidate cap)",
            &kidless(&signers[5], 4),
            invalid(&[R::BadSignature]),
        ),
        tcase(
            "H2 control: sixth key named by kid",
            &signers[5].token("p5", &unique(5)),
            Want::Pass,
        ),
        tcase("H2 no kid, unknown key", &kidless(evil(), 6), invalid(&[R::BadSignature])),
    ];
    run(&h.layer, &h.store, cases).await;
}

/// H3: unknown issuers are refused with no key lookup, no fetch and no store lookup.
#[tokio::test]
async fn h3_unknown_issuers_cost_nothing() {
    let h = harness().await;
    past_refetch_window().await;
    let before = h.server.hits();
    let cases = (0..100)
        .map(|i| {
            let token = rsa().token_with(
                Algorithm::RS256,
                &format!("kid-{i}"),
                &with("iss", json!(format!("https://idp-{i}.test"))),
            );
            tcase(
                format!("H3 issuer #{i} with an unknown kid"),
                &token,
                invalid(&[R::NoMatchingPlan]),
            )
        })
        .collect();
    run(&h.layer, &h.store, cases).await;
    assert_eq!(h.server.hits(), before, "H3: an unknown issuer caused a JWKS fetch");
}

/// H4: the verified-token cache is bounded, admits only verified tokens, is keyed on the
/// canonical string, and re-checks time and subscription on every hit.
#[tokio::test]
async fn h4_token_cache_cannot_be_polluted() {
    let h = harness().await;
    let clock = Arc::new(AtomicU64::new(NOW));
    let now = clock.clone();
    let layer = layer_with(settings(&h.cache), &h.store, move |b| {
        b.token_cache(TokenCacheConfig::default().max_entries(10))
            .clock(move || at(now.load(Ordering::SeqCst)))
    });
    let many: Vec<Case> = (0..40)
        .map(|i| tcase(format!("H4 distinct valid token #{i}"), &rs(&unique(i)), Want::Pass))
        .collect();
    run(&layer, &h.store, many).await;
    assert!(layer.cached_tokens() <= 10, "H4: {} tokens cached, cap 10", layer.cached_tokens());

    let short = rs(&with("exp", json!(NOW + 100)));
    let (hd, pl, sg) = split(&short);
    let cases = vec![
        tcase("H4 control: short-lived token, first use", &short, Want::Pass),
        tcase("H4 control: same token again (cache hit)", &short, Want::Pass),
        tcase(
            "H4 non-canonical variant of a cached token",
            &format!("{hd}.{pl}.{}", non_canonical(&sg)),
            invalid(&[R::Malformed]),
        ),
        tcase(
            "H4 padded variant of a cached token",
            &format!("{hd}.{pl}.{}", padded(&sg)),
            invalid(&[R::Malformed]),
        ),
        tcase(
            "H4 oversize token",
            &rs(&with("pad", json!("x".repeat(9000)))),
            invalid(&[R::TooLarge]),
        ),
        tcase(
            "H4 forged token",
            &with_sig(&rs(&unique(99)), &[1; 256]),
            invalid(&[R::BadSignature]),
        ),
    ];
    run(&layer, &h.store, cases).await;
    // Time moves past exp + leeway: the cached token must be re-checked, not replayed.
    clock.store(NOW + 161, Ordering::SeqCst);
    run(
        &layer,
        &h.store,
        vec![tcase("H4 cached token after its exp", &short, invalid(&[R::Expired]))],
    )
    .await;
    // A subscription closed after caching takes effect at once.
    clock.store(NOW, Ordering::SeqCst);
    let mut closed = accepted("gold", CLIENT);
    closed.status = SubscriptionStatus::Closed;
    h.store.store.replace_all([closed]);
    let seen = Seen::default();
    let res = send(&layer, &seen, bearer(&short)).await;
    assert_eq!(
        (res.status, res.code(), seen.calls()),
        (403, "GATEWAY_PLAN_UNRESOLVABLE", 0),
        "H4 cached token, closed subscription"
    );
}

/// H6 and H7: rotation. A new `kid` works at once (refetch on miss); a removed key's tokens
/// stop working once the set is refetched, even if they were cached.
#[tokio::test]
async fn h6_h7_rotation_races() {
    let h = harness_serving(jwks_of(&[(rsa(), "k1")])).await;
    let old = rs(&unique(1));
    run(
        &h.layer,
        &h.store,
        vec![tcase("H7 control: old key, before rotation (cached now)", &old, Want::Pass)],
    )
    .await;
    h.server.set(Jwks::Keys(jwks_of(&[(rsa(), "k1"), (rsa2(), "k2")])));
    past_refetch_window().await;
    let before = h.server.hits();
    let new = rsa2().token_with(Algorithm::RS256, "k2", &unique(2));
    run(
        &h.layer,
        &h.store,
        vec![tcase("H6 token with the new kid, before any scheduled refresh", &new, Want::Pass)],
    )
    .await;
    assert_eq!(h.server.hits(), before + 1, "H6: one refetch");
    h.server.set(Jwks::Keys(jwks_of(&[(rsa2(), "k2")])));
    past_refetch_window().await;
    // Any unknown kid triggers the refetch that drops k1.
    let probe = rsa2().token_with(Algorithm::RS256, "k3", &good());
    let cases = vec![
        tcase("H7 unknown kid (triggers the refetch)", &probe, invalid(&[R::UnknownKey])),
        tcase("H7 old key, after removal (was cached)", &old, invalid(&[R::UnknownKey])),
        tcase("H7 old key, fresh token", &rs(&unique(3)), invalid(&[R::UnknownKey])),
        tcase(
            "H7 control: new key still passes",
            &rsa2().token_with(Algorithm::RS256, "k2", &unique(4)),
            Want::Pass,
        ),
    ];
    run(&h.layer, &h.store, cases).await;
    assert_eq!(h.cache.key_ids(), ["k2"]);
}

/// H8: verification racing key-set swaps: a key present in every set always verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h8_concurrent_refresh_and_verification() {
    let h = harness_serving(jwks_of(&[(rsa(), "k1")])).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (server, layer, stop) = (h.server.clone(), h.layer.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let other = if i % 2 == 0 { (p256(), "e2") } else { (p384(), "e3") };
                server.set(Jwks::Keys(jwks_of(&[(rsa(), "k1"), other])));
                let probe = rsa().token_with(Algorithm::RS256, &format!("probe-{i}"), &good());
                let _ = send(&layer, &Seen::default(), bearer(&probe)).await;
                tokio::time::sleep(REFETCH + Duration::from_millis(10)).await;
                i += 1;
            }
            i
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let layer = h.layer.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..40 {
                    let token = rs(&unique(w * 1000 + i));
                    statuses.push(send(&layer, &Seen::default(), bearer(&token)).await.status);
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                statuses
            })
        })
        .collect();
    for worker in workers {
        let statuses = worker.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "H8: {statuses:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let swaps = flipper.await.unwrap();
    eprintln!("H8: 160 verifications across {swaps} key-set swaps, all 200");
    assert!(swaps >= 2, "the set must actually change during the test");
}

/// H9: many requests before the first fetch completes share that fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h9_no_thundering_herd_at_start() {
    let server = JwksServer::start(Jwks::Keys(served_keys())).await;
    server.set_delay(Duration::from_millis(300));
    let cache = JwksCache::builder(server.url()).min_refetch_interval(REFETCH).build().unwrap();
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer_with(settings(&cache), &store, |b| b);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let layer = layer.clone();
            let token = rs(&unique(i));
            tokio::spawn(async move { send(&layer, &Seen::default(), bearer(&token)).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200, "H9: a request that waited for the first fetch");
    }
    assert_eq!(server.hits(), 1, "H9: 64 concurrent cold requests cost {} fetches", server.hits());
}

/// H10: client-sent copies of gateway-owned headers never reach the service.
#[tokio::test]
async fn h10_spoofed_identity_headers() {
    let h = harness().await;
    let token = rs(&good());
    let spoofed = || {
        req(
            "/resource",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-user-id", "admin"),
                ("x-user-id", "root"),
            ],
        )
    };
    let seen = Seen::default();
    let res = send(&h.layer, &seen, spoofed()).await;
    assert_eq!(res.status, 200);
    let values: Vec<_> = seen.last().headers.get_all("x-user-id").iter().cloned().collect();
    assert_eq!(values, ["alice"], "H10: the client's x-user-id survived");
    let bad = req("/resource", &[("authorization", "Bearer x.y.z"), ("x-user-id", "admin")]);
    run(
        &h.layer,
        &h.store,
        vec![case("H10 spoofed header with an invalid token", bad, invalid(&[R::Malformed]))],
    )
    .await;
}

/// H11: a CORS preflight is not waved through.
#[tokio::test]
async fn h11_cors_preflight_is_not_a_bypass() {
    let h = harness().await;
    let preflight = |auth: Option<&str>| {
        let mut builder = Request::builder()
            .method("OPTIONS")
            .uri("/resource")
            .header("origin", "https://evil.test")
            .header("access-control-request-method", "DELETE")
            .header("access-control-request-headers", "authorization");
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    };
    let cases = vec![
        case("H11 OPTIONS preflight without a token", preflight(None), Want::Missing),
        case(
            "H11 OPTIONS preflight with a forged token",
            preflight(Some("Bearer a.b.c")),
            invalid(&[R::Malformed]),
        ),
        case(
            "H11 DELETE with preflight headers, no token",
            req(
                "/resource",
                &[("origin", "https://evil.test"), ("access-control-request-method", "DELETE")],
            ),
            Want::Missing,
        ),
    ];
    run(&h.layer, &h.store, cases).await;
}

/// H12: the query parameter is off unless enabled.
#[tokio::test]
async fn h12_query_token_is_off_by_default() {
    let h = harness().await;
    let layer =
        layer_with(settings(&h.cache), &h.store, |b| b.token_source(TokenSource::default()));
    let cases = vec![
        case(
            "H12 ?access_token= with the default token source",
            query(&rs(&good())),
            Want::Missing,
        ),
        case(
            "H12 cookie with the default token source",
            cookie(&format!("jwt={}", rs(&good()))),
            Want::Missing,
        ),
        case(
            "H12 control: header with the default token source",
            bearer(&rs(&unique(1))),
            Want::Pass,
        ),
    ];
    run(&layer, &h.store, cases).await;
}

/// H12: when the query parameter is enabled, the token is stripped before the service.
#[tokio::test]
async fn h12_query_token_is_stripped_before_proxying() {
    let h = harness().await;
    let token = rs(&good());
    let seen = Seen::default();
    let res = send(&h.layer, &seen, query(&format!("{token}&page=2"))).await;
    assert_eq!(res.status, 200);
    let uri = seen.last().uri.to_string();
    assert!(!uri.contains(&token), "H12: the token reached the service in {uri}");
    assert!(uri.contains("page=2"), "other parameters are kept: {uri}");
}

/// H13: scheme and separator syntax.
#[tokio::test]
async fn h13_authorization_syntax() {
    let h = harness().await;
    let token = rs(&good());
    let cases = vec![
        case("H13 control: Bearer", auth(&format!("Bearer {}", rs(&unique(1)))), Want::Pass),
        case("H13 lower-case bearer", auth(&format!("bearer {}", rs(&unique(2)))), Want::Pass),
        case("H13 upper-case BEARER", auth(&format!("BEARER {}", rs(&unique(3)))), Want::Pass),
        case("H13 two spaces", auth(&format!("Bearer  {token}")), invalid(&[R::Malformed])),
        case("H13 tab", auth(&format!("Bearer\t{token}")), invalid(&[R::Malformed])),
        case("H13 Bearer alone", auth("Bearer"), invalid(&[R::Malformed])),
        case("H13 Basic", auth("Basic dXNlcjpwYXNz"), Want::Missing),
        case("H13 Token scheme", auth(&format!("Token {token}")), Want::Missing),
        case("H13 BearerX scheme", auth(&format!("BearerX {token}")), Want::Missing),
        case("H13 no header", req("/resource", &[]), Want::Missing),
        case("H13 empty header", auth(""), Want::Missing),
        case("H13 DPoP scheme", auth(&format!("DPoP {token}")), Want::Missing),
    ];
    run(&h.layer, &h.store, cases).await;
}
