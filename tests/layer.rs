//! The layer end to end: a real JWKS server on 127.0.0.1, real tokens signed at test time, the
//! real layer in front of an echo service. Covers every row of the response table, plan and
//! subscription lifecycles, several plans, key rotation and IdP failure.

mod common;

use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::json;
use tower_jwt_plan::defaults::DEFAULT_FETCH_TIMEOUT;
use tower_jwt_plan::*;

/// The caches here allow one on-demand fetch per 200 ms, counted from the last fetch.
async fn past_refetch_window() {
    tokio::time::sleep(Duration::from_millis(250)).await;
}

fn gold(cache: &JwksCache) -> JwtSettings {
    JwtSettings::new(KeySource::jwks(cache.clone()))
        .algorithms([Algorithm::RS256])
        .issuer(ISS)
        .audience(AUD)
}

fn layer(plans: Vec<Plan>, store: &CountingStore) -> JwtPlanLayer<CountingStore> {
    JwtPlanLayer::builder("echo").plans(plans).resolver(store.clone()).build().unwrap()
}

async fn setup() -> (JwksServer, JwksCache, CountingStore, JwtPlanLayer<CountingStore>) {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer(vec![Plan::jwt("gold", "Gold", gold(&cache))], &store);
    (server, cache, store, layer)
}

#[tokio::test]
async fn valid_token_passes_with_context_and_claims() {
    let (_server, _cache, store, layer) = setup().await;
    let seen = Seen::default();
    let res = send(&layer, &seen, bearer(&rsa().token("k1", &claims()))).await;
    assert_eq!(res.status, 200);
    assert_eq!(seen.calls(), 1);
    assert_eq!(store.lookups(), 1);
    let parts = seen.last();
    let ctx = parts.extensions.get::<PlanContext>().expect("plan context injected");
    assert_eq!(
        (ctx.api_id(), ctx.plan_id(), ctx.application_id(), ctx.client_id(), ctx.user()),
        ("echo", "gold", "app-1", CLIENT, Some("alice"))
    );
    assert_eq!(ctx.subscription_id(), format!("sub-gold-{CLIENT}"));
    let claims = parts.extensions.get::<VerifiedClaims>().expect("claims injected");
    assert_eq!(claims.get_str("scope"), Some("read write"));
    let auth = parts.headers.get("authorization").expect("propagated by default");
    assert!(auth.is_sensitive(), "marked sensitive for logging layers");
}

#[tokio::test]
async fn missing_token_is_401_bearer_challenge() {
    let (_server, _cache, store, layer) = setup().await;
    let seen = Seen::default();
    for req in [
        no_token(),
        http::Request::builder()
            .header("authorization", "Basic dTpw")
            .body(Default::default())
            .unwrap(),
    ] {
        let res = send(&layer, &seen, req).await;
        assert_eq!(
            (res.status, res.code(), res.challenge()),
            (401, "JWT_MISSING_TOKEN", Some("Bearer"))
        );
        assert_eq!(res.body["http_status_code"], 401);
    }
    assert_eq!((seen.calls(), store.lookups()), (0, 0));
}

#[tokio::test]
async fn invalid_tokens_are_401_and_never_reach_the_store() {
    let (_server, _cache, store, layer) = setup().await;
    let seen = Seen::default();
    let other = Signer::rsa();
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.test");
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("api://other");
    let valid = rsa().token("k1", &claims());
    let (head, _) = valid.rsplit_once('.').unwrap();
    let cases = [
        (other.token("k1", &claims()), InvalidReason::BadSignature),
        (rsa().token("k1", &expired), InvalidReason::Expired),
        (rsa().token("k1", &wrong_iss), InvalidReason::NoMatchingPlan),
        (rsa().token("k1", &wrong_aud), InvalidReason::AudienceNotAccepted),
        (rsa().token_with(Algorithm::PS256, "k1", &claims()), InvalidReason::AlgorithmNotAllowed),
        (format!("{head}."), InvalidReason::Malformed),
        ("not-a-jwt".to_string(), InvalidReason::Malformed),
        (
            rsa().token_raw(Algorithm::RS256, r#"{"alg":"none"}"#, &claims().to_string()),
            InvalidReason::AlgorithmNotAllowed,
        ),
    ];
    for (token, reason) in cases {
        let res = send(&layer, &seen, bearer(&token)).await;
        assert_eq!((res.status, res.code()), (401, "JWT_INVALID_TOKEN"), "{reason:?}");
        assert_eq!(res.reason(), Some(reason));
        let challenge = res.challenge().unwrap();
        assert!(
            challenge.starts_with(r#"Bearer error="invalid_token", error_description=""#),
            "{challenge}"
        );
        assert!(!res.body.to_string().contains(&token[..20.min(token.len())]), "token echoed");
    }
    assert_eq!((seen.calls(), store.lookups()), (0, 0));
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let (_server, _cache, _store, layer) = setup().await;
    let jwk = rsa().jwk("k1");
    let confused = Signer::hmac(jwk.to_string().as_bytes());
    let token = confused.token_with(Algorithm::HS256, "k1", &claims());
    let res = send(&layer, &Seen::default(), bearer(&token)).await;
    assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::AlgorithmNotAllowed)));
}

#[tokio::test]
async fn unsubscribed_client_is_403_plan_unresolvable() {
    let (_server, _cache, store, layer) = setup().await;
    let mut c = claims();
    c["client_id"] = json!("stranger");
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &c))).await;
    assert_eq!((res.status, res.code()), (403, "GATEWAY_PLAN_UNRESOLVABLE"));
    assert_eq!(store.lookups(), 1);
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let settings = gold(&cache).required_scopes(["admin"], ScopeMode::All);
    let layer = layer(vec![Plan::jwt("gold", "Gold", settings)], &store);
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &claims()))).await;
    assert_eq!((res.status, res.code()), (403, "JWT_INSUFFICIENT_SCOPE"));
    assert_eq!(res.challenge(), Some(r#"Bearer error="insufficient_scope""#));
    assert_eq!(store.lookups(), 0, "scope is checked before the store");
}

#[tokio::test]
async fn store_failure_is_503_resolution_failure() {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let failing =
        |_q: SubscriptionQuery| ready(Err::<Option<Subscription>, _>(ResolveError::new("db down")));
    let layer = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", gold(&cache)))
        .resolver(failing)
        .build()
        .unwrap();
    let seen = Seen::default();
    let res = send(&layer, &seen, bearer(&rsa().token("k1", &claims()))).await;
    assert_eq!((res.status, res.code()), (503, "GATEWAY_PLAN_RESOLUTION_FAILURE"));
    assert_eq!(res.headers["retry-after"], "5");
    let source = std::error::Error::source(res.error.as_ref().unwrap()).unwrap();
    assert_eq!(source.to_string(), "subscription store failed");
    assert_eq!(seen.calls(), 0);
}

#[tokio::test]
async fn slow_store_times_out_to_503() {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let slow = |_q: SubscriptionQuery| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, ResolveError>(None)
    };
    let layer = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", gold(&cache)))
        .resolver(slow)
        .resolver_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &claims()))).await;
    assert_eq!((res.status, res.code()), (503, "GATEWAY_PLAN_RESOLUTION_FAILURE"));
}

#[tokio::test]
async fn idp_unreachable_before_any_keys_is_503_jwks_unavailable() {
    // A port with nothing listening: bind, read the address, drop the listener.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cache = JwksCache::builder(format!("http://{addr}/jwks")).build().unwrap();
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer(vec![Plan::jwt("gold", "Gold", gold(&cache))], &store);
    let started = std::time::Instant::now();
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &claims()))).await;
    assert_eq!((res.status, res.code()), (503, "JWKS_UNAVAILABLE"));
    assert_eq!(res.headers["retry-after"], "5");
    assert!(started.elapsed() < DEFAULT_FETCH_TIMEOUT + Duration::from_secs(1));
    assert_eq!(store.lookups(), 0);
}

#[tokio::test]
async fn idp_failure_after_caching_keeps_known_keys() {
    let (server, cache, _store, layer) = setup().await;
    server.set(Jwks::Status(500));
    past_refetch_window().await;
    // Force a refetch through an unknown kid: it fails, and the good set stays.
    let unknown = rsa().token("nope", &claims());
    let res = send(&layer, &Seen::default(), bearer(&unknown)).await;
    assert_eq!(res.reason(), Some(InvalidReason::UnknownKey));
    assert!(cache.stats().failures >= 1);
    for body in [Jwks::Body("<html>oops</html>"), Jwks::Keys(json!({"keys": []}))] {
        server.set(body);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = send(&layer, &Seen::default(), bearer(&unknown)).await;
    }
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &claims()))).await;
    assert_eq!(res.status, 200, "known key kept through IdP failures");
}

#[tokio::test]
async fn rotated_key_works_at_once_and_kid_floods_are_rate_limited() {
    let (server, cache, _store, layer) = setup().await;
    let fetches_before = server.hits();
    server.set(Jwks::Keys(jwks_of(&[(rsa(), "k1"), (rsa2(), "k2")])));
    past_refetch_window().await;
    let res = send(&layer, &Seen::default(), bearer(&rsa2().token("k2", &claims()))).await;
    assert_eq!(res.status, 200, "new kid picked up by one refetch");
    assert_eq!(server.hits(), fetches_before + 1);

    // A flood of random kids inside one rate-limit window costs at most one more fetch.
    let before = server.hits();
    let floods = (0..50).map(|i| {
        let layer = layer.clone();
        tokio::spawn(async move {
            send(&layer, &Seen::default(), bearer(&rsa().token(&format!("random-{i}"), &claims())))
                .await
        })
    });
    for res in futures_join(floods).await {
        assert_eq!(res.status, 401);
    }
    assert!(server.hits() - before <= 1, "{} fetches for a kid flood", server.hits() - before);
    assert_eq!(cache.key_ids().len(), 2);
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn removed_key_is_refused() {
    let (server, _cache, _store, layer) = setup().await;
    server.set(Jwks::Keys(jwks_of(&[(rsa2(), "k2")])));
    past_refetch_window().await;
    // The unknown kid k2 triggers the refetch that also drops k1.
    let res = send(&layer, &Seen::default(), bearer(&rsa2().token("k2", &claims()))).await;
    assert_eq!(res.status, 200);
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &claims()))).await;
    assert_eq!(res.status, 401);
}

#[tokio::test]
async fn plan_statuses() {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let token = rsa().token("k1", &claims());
    for (status, passes) in [
        (PlanStatus::Published, true),
        (PlanStatus::Deprecated, true),
        (PlanStatus::Staging, false),
        (PlanStatus::Closed, false),
    ] {
        let plan = Plan::jwt("gold", "Gold", gold(&cache)).with_status(status);
        let res = send(&layer(vec![plan], &store), &Seen::default(), bearer(&token)).await;
        assert_eq!(res.status == 200, passes, "{status:?}: {}", res.status);
        if !passes {
            assert_eq!(res.status, 401, "no servable plan can verify the token");
        }
    }
}

#[tokio::test]
async fn subscription_statuses_and_dates() {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let token = rsa().token("k1", &claims());
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let base = accepted("gold", CLIENT);
    let with_status = |status| {
        let mut s = base.clone();
        s.status = status;
        s
    };
    let cases = [
        (base.clone(), 200),
        (with_status(SubscriptionStatus::Pending), 403),
        (with_status(SubscriptionStatus::Paused), 403),
        (with_status(SubscriptionStatus::Rejected), 403),
        (with_status(SubscriptionStatus::Closed), 403),
        (base.clone().starting_at(now + hour), 403),
        (base.clone().ending_at(now - hour), 403),
        (base.clone().starting_at(now - hour).ending_at(now + hour), 200),
    ];
    for (sub, want) in cases {
        let store = CountingStore::with([sub.clone()]);
        let layer = layer(vec![Plan::jwt("gold", "Gold", gold(&cache))], &store);
        let res = send(&layer, &Seen::default(), bearer(&token)).await;
        assert_eq!(res.status, want, "{sub:?}");
    }
}

#[tokio::test]
async fn several_plans_issuer_routing_and_subscription_decides() {
    let idp_a = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "a1")]))).await;
    let idp_b = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa2(), "b1")]))).await;
    let (cache_a, cache_b) = (jwks_cache(&idp_a).await, jwks_cache(&idp_b).await);
    let plan_a = JwtSettings::new(KeySource::jwks(cache_a.clone())).issuer("https://a.test");
    let plan_b = JwtSettings::new(KeySource::jwks(cache_b)).issuer("https://b.test");
    // Silver shares issuer A's keys: the subscription decides between gold and silver.
    let silver = JwtSettings::new(KeySource::jwks(cache_a)).issuer("https://a.test");
    let store = CountingStore::with([
        accepted("gold", "ca"),
        accepted("bronze", "cb"),
        accepted("silver", "cs"),
    ]);
    let layer = layer(
        vec![
            Plan::jwt("gold", "Gold", plan_a),
            Plan::jwt("bronze", "Bronze", plan_b),
            Plan::jwt("silver", "Silver", silver),
        ],
        &store,
    );
    let token = |signer: &Signer, kid, iss, client| {
        signer.token(kid, &json!({"iss": iss, "client_id": client, "exp": now() + 60}))
    };
    let cases = [
        (token(rsa(), "a1", "https://a.test", "ca"), 200, Some("gold")),
        (token(rsa2(), "b1", "https://b.test", "cb"), 200, Some("bronze")),
        (token(rsa(), "a1", "https://a.test", "cs"), 200, Some("silver")),
        // Issuer B's key presented as issuer A: A's plans do not have that key.
        (token(rsa2(), "b1", "https://a.test", "ca"), 401, None),
        (token(rsa(), "a1", "https://c.test", "ca"), 401, None),
    ];
    for (tok, status, plan) in cases {
        let seen = Seen::default();
        let res = send(&layer, &seen, bearer(&tok)).await;
        assert_eq!(res.status, status);
        if let Some(plan) = plan {
            assert_eq!(seen.last().extensions.get::<PlanContext>().unwrap().plan_id(), plan);
        }
    }
}

/// What a request under `plans` and `subs` got: its status, and on a pass the context's plan,
/// client id and user. Asked twice, through a store that answers at once and through one that
/// answers by a future: the layer walks the plans differently for each.
async fn outcome(plans: &[Plan], subs: &[Subscription], token: &str) -> [(u16, String); 2] {
    let seen = Seen::default();
    let at_once = JwtPlanLayer::builder("echo")
        .plans(plans.to_vec())
        .resolver(InMemoryResolver::new(subs.to_vec()))
        .build()
        .unwrap();
    let by_future = layer(plans.to_vec(), &CountingStore::with(subs.to_vec()));
    let describe = |res: Answer| {
        let granted = (res.status == 200).then(|| {
            let ctx = seen.last().extensions.get::<PlanContext>().cloned().unwrap();
            format!("{} {} {:?}", ctx.plan_id(), ctx.client_id(), ctx.user())
        });
        (res.status, granted.unwrap_or_else(|| res.code().to_string()))
    };
    let first = describe(send(&at_once, &seen, bearer(token)).await);
    let second = describe(send(&by_future, &seen, bearer(token)).await);
    [first, second]
}

#[tokio::test]
async fn plans_on_one_idp_share_a_claims_verdict_only_when_they_check_alike() {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let jwt = |id: &str, settings: JwtSettings| Plan::jwt(id, id, settings);
    let other_aud = JwtSettings::new(KeySource::jwks(cache.clone()))
        .algorithms([Algorithm::RS256])
        .issuer(ISS)
        .audience("api://other");
    let admin = gold(&cache).required_scopes(["admin"], ScopeMode::All);
    let token = |extra: serde_json::Value| {
        let mut c = claims();
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        rsa().token("k1", &c)
    };
    let plain = token(json!({}));
    let both = |status: u16, what: &str| [(status, what.to_string()), (status, what.to_string())];
    // A plan refused on its scopes or audience does not refuse the next, which checks otherwise.
    let cases = [
        (vec![jwt("admin", admin.clone()), jwt("open", gold(&cache))], plain.clone()),
        (vec![jwt("aud", other_aud.clone()), jwt("open", gold(&cache))], plain.clone()),
    ];
    for (plans, tok) in cases {
        let subs = [accepted("admin", CLIENT), accepted("aud", CLIENT), accepted("open", CLIENT)];
        let expected = both(200, &format!("open {CLIENT} Some(\"alice\")"));
        assert_eq!(outcome(&plans, &subs, &tok).await, expected);
    }
    // Nor does a plan that passed let the next one through on its verdict: each refusal is the
    // next plan's own, ranked against "no subscription" for the first.
    for (plans, refusal) in [
        (vec![jwt("open", gold(&cache)), jwt("admin", admin)], (403, "JWT_INSUFFICIENT_SCOPE")),
        (
            vec![jwt("open", gold(&cache)), jwt("aud", other_aud)],
            (403, "GATEWAY_PLAN_UNRESOLVABLE"),
        ),
    ] {
        let subs = [accepted("admin", CLIENT), accepted("aud", CLIENT)];
        assert_eq!(outcome(&plans, &subs, &plain).await, both(refusal.0, refusal.1));
    }
    // The client id and the user come from each plan's own claims.
    let by_azp = jwt("azp", gold(&cache).client_id_claim("azp"));
    let by_email = jwt("email", gold(&cache).user_claim("email"));
    let plans = [jwt("open", gold(&cache)), by_email, by_azp];
    let subs = [accepted("azp", "the-azp"), accepted("email", CLIENT)];
    assert_eq!(
        outcome(&plans, &subs, &token(json!({"client_id": "nobody", "azp": "the-azp"}))).await,
        both(200, "azp the-azp Some(\"alice\")")
    );
    assert_eq!(
        outcome(&plans, &subs, &token(json!({"email": "a@example.test"}))).await,
        both(200, &format!("email {CLIENT} Some(\"a@example.test\")"))
    );
    // Plans that check alike: one verdict, for a pass as for a refusal.
    let alike: Vec<Plan> = (1..=3).map(|i| jwt(&format!("same-{i}"), gold(&cache))).collect();
    let subs = [accepted("same-3", CLIENT)];
    assert_eq!(
        outcome(&alike, &subs, &plain).await,
        both(200, &format!("same-3 {CLIENT} Some(\"alice\")"))
    );
    let wrong_aud = token(json!({"aud": "api://elsewhere"}));
    assert_eq!(outcome(&alike, &subs, &wrong_aud).await, both(401, "JWT_INVALID_TOKEN"));
    // A subscription found but not serving (paused) refuses its plan only: the next one decides.
    let mut paused = accepted("same-1", CLIENT);
    paused.status = SubscriptionStatus::Paused;
    let subs = [paused, accepted("same-2", CLIENT)];
    assert_eq!(
        outcome(&alike, &subs, &plain).await,
        both(200, &format!("same-2 {CLIENT} Some(\"alice\")"))
    );
}

#[tokio::test]
async fn claims_to_headers_replace_spoofed_headers_and_auth_can_be_dropped() {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let settings = gold(&cache)
        .claim_to_header("sub", "x-user-id")
        .claim_to_header("missing", "x-missing")
        .propagate_auth_header(false)
        .extract_claims(false);
    let layer = layer(vec![Plan::jwt("gold", "Gold", settings)], &store);
    let mut req = bearer(&rsa().token("k1", &claims()));
    req.headers_mut().insert("x-user-id", "admin".parse().unwrap());
    req.headers_mut().append("x-user-id", "root".parse().unwrap());
    req.headers_mut().insert("x-missing", "spoofed".parse().unwrap());
    let seen = Seen::default();
    assert_eq!(send(&layer, &seen, req).await.status, 200);
    let parts = seen.last();
    assert_eq!(parts.headers.get_all("x-user-id").iter().collect::<Vec<_>>(), ["alice"]);
    assert!(!parts.headers.contains_key("x-missing"));
    assert!(!parts.headers.contains_key("authorization"));
    assert!(parts.extensions.get::<VerifiedClaims>().is_none());
}

#[tokio::test]
async fn every_algorithm_family_verifies() {
    let p256 = Signer::p256();
    let p384 = Signer::p384();
    let ed = Signer::ed();
    let cases: Vec<(&Signer, Algorithm)> = vec![
        (rsa(), Algorithm::RS256),
        (rsa(), Algorithm::RS384),
        (rsa(), Algorithm::RS512),
        (rsa(), Algorithm::PS256),
        (rsa(), Algorithm::PS384),
        (rsa(), Algorithm::PS512),
        (&p256, Algorithm::ES256),
        (&p384, Algorithm::ES384),
        (&ed, Algorithm::EdDSA),
    ];
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[
        (rsa(), "rsa"),
        (&p256, "p256"),
        (&p384, "p384"),
        (&ed, "ed"),
    ])))
    .await;
    let cache = jwks_cache(&server).await;
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    for (signer, alg) in cases {
        let kid = match signer {
            Signer::Rsa(_) => "rsa",
            Signer::P256(_) => "p256",
            Signer::P384(_) => "p384",
            _ => "ed",
        };
        let settings = JwtSettings::new(KeySource::jwks(cache.clone())).algorithms([alg]);
        let layer = layer(vec![Plan::jwt("gold", "Gold", settings)], &store);
        let res =
            send(&layer, &Seen::default(), bearer(&signer.token_with(alg, kid, &claims()))).await;
        assert_eq!(res.status, 200, "{alg:?}: {:?}", res.reason());
    }
    let secret = [42u8; 64];
    let hmac = Signer::hmac(&secret);
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let settings = JwtSettings::new(KeySource::hmac_secret(secret)).algorithms([alg]);
        let layer = layer(vec![Plan::jwt("gold", "Gold", settings)], &store);
        let res =
            send(&layer, &Seen::default(), bearer(&hmac.token_with(alg, "any", &claims()))).await;
        assert_eq!(res.status, 200, "{alg:?}: {:?}", res.reason());
    }
}

#[tokio::test]
async fn static_pem_key_source() {
    let p256 = Signer::p256();
    let Signer::P256(kp) = &p256 else { unreachable!() };
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let der = kp.public_key().as_der().unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der.as_ref())
    );
    let settings =
        JwtSettings::new(KeySource::public_key_pem(&pem).unwrap()).algorithms([Algorithm::ES256]);
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let layer = layer(vec![Plan::jwt("gold", "Gold", settings)], &store);
    let res = send(&layer, &Seen::default(), bearer(&p256.token("whatever", &claims()))).await;
    assert_eq!(res.status, 200, "{:?}", res.reason());
    let wrong =
        JwtSettings::new(KeySource::public_key_pem(&pem).unwrap()).algorithms([Algorithm::RS256]);
    assert!(matches!(
        JwtPlanLayer::builder("echo")
            .plan(Plan::jwt("gold", "Gold", wrong))
            .resolver(store)
            .build(),
        Err(ConfigError::AlgorithmKeyMismatch { .. })
    ));
}

#[tokio::test]
async fn keyless_next_to_jwt_is_refused_at_build_and_redeploy() {
    let (_server, cache, store, layer) = setup().await;
    let keyless = Plan::new("open", "Open", PlanStatus::Published, PlanSecurity::Keyless);
    let err = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", gold(&cache)))
        .plan(keyless.clone())
        .resolver(store.clone())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("keyless") && err.to_string().contains("`open`"));
    // A refused redeploy leaves the old plans serving.
    assert!(layer.redeploy(vec![Plan::jwt("gold", "Gold", gold(&cache)), keyless]).is_err());
    let token = rsa().token("k1", &claims());
    assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 200);
    // A request without a token never passes, even with only a staging keyless plan left.
    layer
        .redeploy(vec![Plan::new("open", "Open", PlanStatus::Staging, PlanSecurity::Keyless)])
        .unwrap();
    assert_eq!(send(&layer, &Seen::default(), no_token()).await.status, 401);
    assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 401);
    // And a good redeploy takes effect at once.
    layer.redeploy(vec![Plan::jwt("gold", "Gold", gold(&cache))]).unwrap();
    assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 200);
}

#[tokio::test]
async fn pinned_clock_controls_expiry() {
    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let cache = jwks_cache(&server).await;
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let at = |secs: u64| move || UNIX_EPOCH + Duration::from_secs(secs);
    let token =
        rsa().token("k1", &json!({"iss": ISS, "aud": AUD, "client_id": CLIENT, "exp": 1_000_000}));
    for (now, want) in [(999_000, 200), (1_000_059, 200), (1_000_060, 401)] {
        let layer = JwtPlanLayer::builder("echo")
            .plan(Plan::jwt("gold", "Gold", gold(&cache)))
            .resolver(store.clone())
            .clock(at(now))
            .build()
            .unwrap();
        assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, want, "now={now}");
    }
}

#[tokio::test]
async fn grpc_requests_get_grpc_status() {
    let (_server, _cache, _store, layer) = setup().await;
    let req = http::Request::builder()
        .uri("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(Default::default())
        .unwrap();
    let res = send(&layer, &Seen::default(), req).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.headers["grpc-status"], "16");
}

mod token_cache {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A hit keeps the token, not its claims: what the inner service sees must not change.
    #[tokio::test]
    async fn a_hit_carries_the_claims_headers_and_current_subscription_of_a_verification() {
        let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
        let cache = jwks_cache(&server).await;
        let store = CountingStore::with([accepted("gold", CLIENT)]);
        let layer = JwtPlanLayer::builder("echo")
            .plan(Plan::jwt("gold", "Gold", gold(&cache).claim_to_header("sub", "x-user")))
            .resolver(store.clone())
            .build()
            .unwrap();
        let token = rsa().token("k1", &claims());
        let seen = |seen: &Seen| {
            let last = seen.last();
            let claims = last.extensions.get::<VerifiedClaims>().cloned().unwrap();
            let context = last.extensions.get::<PlanContext>().cloned().unwrap();
            (claims, last.headers.get("x-user").cloned(), context)
        };

        let first = Seen::default();
        assert_eq!(send(&layer, &first, bearer(&token)).await.status, 200);
        let (claims, header, context) = seen(&first);
        assert_eq!(header.as_ref().map(|h| h.as_bytes()), Some(&b"alice"[..]));
        assert_eq!(layer.cached_tokens(), 1);
        for _ in 0..2 {
            let hit = Seen::default();
            assert_eq!(send(&layer, &hit, bearer(&token)).await.status, 200);
            let (hit_claims, hit_header, hit_context) = seen(&hit);
            assert_eq!(hit_claims, claims);
            assert_eq!(hit_claims.get_str("sub"), Some("alice"));
            assert_eq!(hit_claims.as_map().len(), claims.as_map().len());
            assert_eq!(hit_header, header);
            assert_eq!(hit_context, context);
        }

        // Same client, another subscription: a hit names the new one, not the one it kept.
        store.store.replace_all([tower_jwt_plan::Subscription::new(
            "sub-2",
            "echo",
            "gold",
            "app-2",
            CLIENT,
            tower_jwt_plan::SubscriptionStatus::Accepted,
        )]);
        let hit = Seen::default();
        assert_eq!(send(&layer, &hit, bearer(&token)).await.status, 200);
        let (_, _, context) = seen(&hit);
        assert_eq!((context.subscription_id(), context.application_id()), ("sub-2", "app-2"));
    }

    #[tokio::test]
    async fn only_granted_tokens_enter_and_hits_recheck_time_and_subscription() {
        let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
        let cache = jwks_cache(&server).await;
        let store = CountingStore::with([accepted("gold", CLIENT)]);
        let clock = Arc::new(AtomicU64::new(1_000_000));
        let now = clock.clone();
        let layer = JwtPlanLayer::builder("echo")
            .plan(Plan::jwt("gold", "Gold", gold(&cache)))
            .resolver(store.clone())
            .clock(move || UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst)))
            .build()
            .unwrap();
        let mut c = claims();
        c["exp"] = json!(1_000_100);
        c["iat"] = json!(999_990);
        let token = rsa().token("k1", &c);

        // Invalid and unsubscribed tokens never enter.
        let mut stranger = c.clone();
        stranger["client_id"] = json!("stranger");
        for bad in [Signer::rsa().token("k1", &c), rsa().token("k1", &stranger), "x.y.z".into()] {
            assert_ne!(send(&layer, &Seen::default(), bearer(&bad)).await.status, 200);
        }
        assert_eq!(layer.cached_tokens(), 0);

        assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 200);
        assert_eq!(layer.cached_tokens(), 1);
        let seen = Seen::default();
        assert_eq!(send(&layer, &seen, bearer(&token)).await.status, 200, "cache hit passes");
        let ctx = seen.last().extensions.get::<PlanContext>().cloned().unwrap();
        assert_eq!((ctx.client_id(), ctx.user()), (CLIENT, Some("alice")));
        assert_eq!(store.lookups(), 3, "the subscription is resolved on every request");

        // Time moves past exp + leeway: the cached entry does not save the token.
        clock.store(1_000_160, Ordering::SeqCst);
        let res = send(&layer, &Seen::default(), bearer(&token)).await;
        assert_eq!((res.status, res.reason()), (401, Some(InvalidReason::Expired)));

        // Back in time, then the subscription is closed: refused at once despite the cache.
        clock.store(1_000_000, Ordering::SeqCst);
        assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 200);
        store.store.replace_all([]);
        assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 403);
    }

    #[tokio::test]
    async fn redeploy_and_key_removal_invalidate_cached_tokens() {
        let (server, cache, store, layer) = setup().await;
        let token = rsa().token("k1", &claims());
        assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 200);
        assert_eq!(layer.cached_tokens(), 1);

        // The plan now demands another audience: the cached verdict must not survive.
        let stricter =
            JwtSettings::new(KeySource::jwks(cache.clone())).issuer(ISS).audience("api://new");
        layer.redeploy(vec![Plan::jwt("gold", "Gold", stricter)]).unwrap();
        let res = send(&layer, &Seen::default(), bearer(&token)).await;
        assert_eq!(res.reason(), Some(InvalidReason::AudienceNotAccepted));

        layer.redeploy(vec![Plan::jwt("gold", "Gold", gold(&cache))]).unwrap();
        assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 200);
        server.set(Jwks::Keys(jwks_of(&[(rsa2(), "k2")])));
        past_refetch_window().await;
        assert_eq!(
            send(&layer, &Seen::default(), bearer(&rsa2().token("k2", &claims()))).await.status,
            200
        );
        let res = send(&layer, &Seen::default(), bearer(&token)).await;
        assert_eq!(res.status, 401, "a key gone from the JWKS takes its cached tokens with it");
        let _ = store;
    }

    #[tokio::test]
    async fn refused_valid_tokens_ask_the_store_every_time_and_key_changes_drop_them() {
        let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
        let cache = jwks_cache(&server).await;
        let store = CountingStore::default();
        let plans = ["bronze", "silver", "gold"].map(|id| Plan::jwt(id, id, gold(&cache)));
        let layer = layer(plans.to_vec(), &store);
        let token = rsa().token("k1", &claims());
        for round in 1..=3 {
            let res = send(&layer, &Seen::default(), bearer(&token)).await;
            assert_eq!(res.status, 403, "round {round}");
            assert_eq!(store.lookups(), 3 * round, "every plan asks the store on every request");
        }
        assert_eq!(layer.cached_tokens(), 0, "a refused token is not counted as granted");

        // A new subscription counts at once, though the token was refused a moment ago.
        store.store.insert(accepted("silver", CLIENT));
        let seen = Seen::default();
        assert_eq!(send(&layer, &seen, bearer(&token)).await.status, 200);
        assert_eq!(seen.last().extensions.get::<PlanContext>().unwrap().plan_id(), "silver");
        assert_eq!(layer.cached_tokens(), 1);

        // Refused again, then its key leaves the JWKS: the remembered verification goes with it.
        store.store.replace_all([]);
        assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 403);
        server.set(Jwks::Keys(jwks_of(&[(rsa2(), "k2")])));
        past_refetch_window().await;
        let other = rsa2().token("k2", &claims());
        assert_eq!(send(&layer, &Seen::default(), bearer(&other)).await.status, 403);
        assert_eq!(send(&layer, &Seen::default(), bearer(&token)).await.status, 401);
    }

    /// A hit builds its claims with its context: headers and the extension must still follow
    /// the plan's settings, whatever the store.
    #[tokio::test]
    async fn a_hit_copies_claims_to_headers_whether_or_not_it_extracts_them() {
        let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
        let cache = jwks_cache(&server).await;
        let token = rsa().token("k1", &claims());
        for (extract, header) in [(true, true), (true, false), (false, true), (false, false)] {
            let mut settings = gold(&cache).extract_claims(extract);
            if header {
                settings = settings.claim_to_header("sub", "x-user");
            }
            let layer = gold_builder(settings).build().unwrap();
            for round in ["verified", "hit"] {
                let seen = Seen::default();
                assert_eq!(send(&layer, &seen, bearer(&token)).await.status, 200);
                let last = seen.last();
                let case = format!("extract {extract}, header {header}, {round}");
                let claims = last.extensions.get::<VerifiedClaims>();
                assert_eq!(claims.is_some(), extract, "{case}");
                if let Some(claims) = claims {
                    assert_eq!(claims.get_str("client_id"), Some(CLIENT), "{case}");
                }
                let user = last.headers.get("x-user").map(|v| v.to_str().unwrap());
                assert_eq!(user, header.then_some("alice"), "{case}");
                let context = last.extensions.get::<PlanContext>().unwrap();
                assert_eq!((context.plan_id(), context.user()), ("gold", Some("alice")), "{case}");
            }
            assert_eq!(layer.cached_tokens(), 1);
        }
    }

    #[tokio::test]
    async fn disabled_cache_holds_nothing() {
        let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
        let cache = jwks_cache(&server).await;
        let store = CountingStore::with([accepted("gold", CLIENT)]);
        let layer = JwtPlanLayer::builder("echo")
            .plan(Plan::jwt("gold", "Gold", gold(&cache)))
            .resolver(store)
            .token_cache(TokenCacheConfig::disabled())
            .build()
            .unwrap();
        assert_eq!(
            send(&layer, &Seen::default(), bearer(&rsa().token("k1", &claims()))).await.status,
            200
        );
        assert_eq!(layer.cached_tokens(), 0);
    }
}

#[tokio::test]
async fn claim_settings_client_id_user_scopes_any_and_missing_exp() {
    let (_server, cache, _store, _layer) = setup().await;
    assert!(cache.contains_kid("k1") && !cache.contains_kid("k2"));
    let store = CountingStore::with([accepted("gold", "from-cid")]);
    let settings = gold(&cache)
        .client_id_claim("cid")
        .user_claim("email")
        .required_scopes(["admin", "read"], ScopeMode::Any)
        .danger_allow_missing_exp();
    let layer = layer(vec![Plan::jwt("gold", "Gold", settings)], &store);
    let mut c = claims();
    c["cid"] = json!("from-cid");
    c["email"] = json!("alice@example.com");
    c.as_object_mut().unwrap().remove("exp");
    let seen = Seen::default();
    assert_eq!(send(&layer, &seen, bearer(&rsa().token("k1", &c))).await.status, 200);
    let ctx = seen.last().extensions.get::<PlanContext>().cloned().unwrap();
    assert_eq!((ctx.client_id(), ctx.user()), ("from-cid", Some("alice@example.com")));

    // The configured claim only: `client_id` alone does not do.
    c.as_object_mut().unwrap().remove("cid");
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &c))).await;
    assert_eq!(res.reason(), Some(InvalidReason::MissingClientId));
    // Any-of: neither scope present is still refused.
    c["cid"] = json!("from-cid");
    c["scope"] = json!("write");
    let res = send(&layer, &Seen::default(), bearer(&rsa().token("k1", &c))).await;
    assert_eq!(res.code(), "JWT_INSUFFICIENT_SCOPE");
    // And without the relaxation, a token with no exp is refused.
    let strict =
        self::layer(vec![Plan::jwt("gold", "Gold", gold(&cache).client_id_claim("cid"))], &store);
    c["scope"] = json!("read");
    let res = send(&strict, &Seen::default(), bearer(&rsa().token("k1", &c))).await;
    assert_eq!(res.reason(), Some(InvalidReason::MissingClaim));
}

#[tokio::test]
async fn custom_rendering_keeps_the_error_in_extensions() {
    let (_server, cache, store, _layer) = setup().await;
    let layer = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", gold(&cache)))
        .resolver(store)
        .render_rejection(|err: &AuthError, req: &http::request::Parts| {
            let mut res = default_rejection(err, req);
            res.headers_mut().insert("x-gateway", http::HeaderValue::from_static("custom"));
            *res.body_mut() =
                bytes::Bytes::from(format!("{{\"error\":\"{}\",\"custom\":true}}", err.code()));
            res
        })
        .build()
        .unwrap();
    let res = send(&layer, &Seen::default(), no_token()).await;
    assert_eq!((res.status, res.code()), (401, "JWT_MISSING_TOKEN"));
    assert_eq!(res.headers["x-gateway"], "custom");
    assert_eq!(res.body["custom"], true);
    assert_eq!(res.error.map(|e| e.kind()), Some(AuthErrorKind::MissingToken));
}

/// A store that answers at once (`SubscriptionResolver::resolve_now`, as `InMemoryResolver`
/// does) is decided inside the service's `call`; one that answers through a future is decided
/// in the response future. Both must reach the same decisions.
mod answered_at_once {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll};

    /// The same store, asked through `resolve` only.
    #[derive(Clone)]
    struct Later(InMemoryResolver);

    impl SubscriptionResolver for Later {
        type Future = <InMemoryResolver as SubscriptionResolver>::Future;
        fn resolve(&self, q: SubscriptionQuery) -> Self::Future {
            self.0.resolve(q)
        }
    }

    fn plans(cache: &JwksCache) -> Vec<Plan> {
        ["bronze", "silver", "gold"].map(|id| Plan::jwt(id, id, gold(cache))).to_vec()
    }

    /// Status and plan of each step of a subscription's life, with the token cache warm.
    async fn walk<R: SubscriptionResolver>(
        layer: &JwtPlanLayer<R>,
        store: &InMemoryResolver,
    ) -> Vec<(u16, Option<PlanContext>)> {
        let token = rsa().token("k1", &claims());
        let hour = Duration::from_secs(3600);
        let paused = {
            let mut s = accepted("gold", CLIENT);
            s.status = SubscriptionStatus::Paused;
            s
        };
        let steps = [
            vec![],
            vec![accepted("gold", CLIENT)],
            vec![accepted("gold", CLIENT)],
            // Moved to another plan: the cached plan refuses, the next one grants.
            vec![accepted("silver", CLIENT)],
            vec![paused.clone()],
            vec![paused, accepted("bronze", CLIENT)],
            vec![accepted("gold", CLIENT).starting_at(SystemTime::now() + hour)],
            vec![accepted("gold", CLIENT).ending_at(SystemTime::now() + hour)],
            vec![accepted("gold", "someone-else")],
        ];
        let mut out = Vec::new();
        for subs in steps {
            store.replace_all(subs);
            let seen = Seen::default();
            let res = send(layer, &seen, bearer(&token)).await;
            let context = (seen.calls() == 1)
                .then(|| seen.last().extensions.get::<PlanContext>().cloned().unwrap());
            out.push((res.status, context));
        }
        out
    }

    #[tokio::test]
    async fn decides_as_a_store_that_answers_later() {
        let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
        let cache = jwks_cache(&server).await;
        let now = InMemoryResolver::default();
        let later = InMemoryResolver::default();
        let build = || JwtPlanLayer::builder("echo").plans(plans(&cache));
        let at_once = walk(&build().resolver(now.clone()).build().unwrap(), &now).await;
        let afterwards =
            walk(&build().resolver(Later(later.clone())).build().unwrap(), &later).await;
        assert_eq!(at_once, afterwards);
        let statuses: Vec<u16> = at_once.iter().map(|(status, _)| *status).collect();
        assert_eq!(statuses, [403, 200, 200, 200, 403, 200, 403, 200, 403]);
        let plan = |i: usize| at_once[i].1.as_ref().map(|c| c.plan_id().to_owned());
        assert_eq!(
            [plan(2), plan(3), plan(5)],
            [Some("gold"), Some("silver"), Some("bronze")].map(|p| p.map(str::to_owned))
        );
    }

    /// An echo service that counts its clones.
    #[derive(Default)]
    struct Counted(Arc<AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::SeqCst);
            Self(self.0.clone())
        }
    }

    impl tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>> for Counted {
        type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<http_body_util::Full<bytes::Bytes>>) -> Self::Future {
            ready(Ok(http::Response::default()))
        }
    }

    /// Decided in `call`: the ready inner service is called there, not cloned into the future.
    #[tokio::test]
    async fn a_request_decided_in_call_does_not_clone_the_inner_service() {
        use tower::{Layer, Service, ServiceExt};
        let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
        let cache = jwks_cache(&server).await;
        let store = InMemoryResolver::new([accepted("gold", CLIENT)]);
        let token = rsa().token("k1", &claims());
        let clones = |layer: JwtPlanLayer<_>| {
            let token = token.clone();
            async move {
                let inner = Counted::default();
                let count = inner.0.clone();
                let mut svc = layer.layer(inner);
                for _ in 0..3 {
                    let res = svc.ready().await.unwrap().call(bearer(&token)).await.unwrap();
                    assert_eq!(res.status(), 200);
                }
                count.load(Ordering::SeqCst)
            }
        };
        let build = || JwtPlanLayer::builder("echo").plan(Plan::jwt("gold", "Gold", gold(&cache)));
        // Through `BoxResolver`, which passes the answer at once along.
        let now = build().resolver(BoxResolver::new(store.clone())).build().unwrap();
        assert_eq!(clones(now).await, 0);
        let later = build().resolver(BoxResolver::new(Later(store))).build().unwrap();
        assert_eq!(clones(later).await, 3, "one per request that waits on the store");
    }
}
