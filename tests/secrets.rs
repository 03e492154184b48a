//! Secrets never leak: `Debug` output of every configuration type, every log line (captured at
//! TRACE while valid, invalid and failing requests go through), and every refusal's body and
//! headers are searched for the token, its signature, the HMAC secret and key material.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tower_jwt_plan::*;

const SECRET: &str = "SUPER-SECRET-HMAC-VALUE-0123456789-abcdefgh";

/// A `MakeWriter` that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Everything that must never appear: the secret, and each part of each token.
fn forbidden(tokens: &[&str]) -> Vec<String> {
    let mut words = vec![SECRET.to_string(), b64(SECRET)];
    for token in tokens {
        words.push(token.to_string());
        // Headers and payloads are public-ish, but the signature and the whole token are not.
        if let Some((_, sig)) = token.rsplit_once('.')
            && sig.len() > 8
        {
            words.push(sig.to_string());
        }
    }
    words
}

fn assert_clean(what: &str, text: &str, words: &[String]) {
    for word in words {
        assert!(!text.contains(word.as_str()), "{what} leaks `{}…`", &word[..word.len().min(12)]);
    }
}

#[test]
fn debug_output_redacts_secrets() {
    let settings = JwtSettings::new(KeySource::hmac_secret(SECRET)).algorithms([Algorithm::HS256]);
    let plan = Plan::jwt("gold", "Gold", settings.clone());
    let set = PlanSet::new(vec![plan.clone()]).unwrap();
    let layer = JwtPlanLayer::builder("echo")
        .plan(plan.clone())
        .resolver(InMemoryResolver::default())
        .build()
        .unwrap();
    let words = forbidden(&[]);
    for (what, text) in [
        ("KeySource", format!("{:?}", KeySource::hmac_secret(SECRET))),
        ("JwtSettings", format!("{settings:?}")),
        ("Plan", format!("{plan:?}")),
        ("PlanSet", format!("{set:?}")),
        ("JwtPlanLayer", format!("{layer:?}")),
        (
            "ConfigError",
            format!(
                "{:?}",
                PlanSet::new(vec![Plan::jwt(
                    "x",
                    "X",
                    JwtSettings::new(KeySource::hmac_secret(&SECRET[..20]))
                        .algorithms([Algorithm::HS256])
                ),])
                .unwrap_err()
            ),
        ),
    ] {
        assert_clean(what, &text, &words);
    }
    let pem_ish = rsa().jwk("k1")["n"].as_str().unwrap().to_owned();
    let jwk = KeySource::public_key_jwk(&rsa().jwk("k1").to_string()).unwrap();
    assert!(!format!("{jwk:?}").contains(&pem_ish[..20]), "key material in Debug");
}

#[tokio::test]
async fn logs_and_refusals_never_contain_tokens_or_secrets() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = JwksServer::start(Jwks::Keys(jwks_of(&[(rsa(), "k1")]))).await;
    let jwks = JwksCache::builder(server.url())
        .min_refetch_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(jwks.wait_ready(Duration::from_secs(5)).await);
    let failing_store = |q: SubscriptionQuery| async move {
        if &*q.client_id == "broken" {
            Err(ResolveError::new("store down"))
        } else {
            Ok(Some(Subscription::new(
                "s",
                "echo",
                &*q.plan,
                "app",
                q.client_id,
                SubscriptionStatus::Accepted,
            )))
        }
    };
    let layer = JwtPlanLayer::builder("echo")
        .plan(Plan::jwt("gold", "Gold", JwtSettings::new(KeySource::jwks(jwks)).issuer(ISS)))
        .plan(Plan::jwt(
            "hmac",
            "Hmac",
            JwtSettings::new(KeySource::hmac_secret(SECRET))
                .algorithms([Algorithm::HS256])
                .issuer("https://hmac"),
        ))
        .resolver(failing_store)
        .build()
        .unwrap();

    let mut broken = claims();
    broken["client_id"] = json!("broken");
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    let valid = rsa().token("k1", &claims());
    let hmac_valid = Signer::hmac(SECRET.as_bytes()).token_with(
        Algorithm::HS256,
        "h",
        &json!({"iss": "https://hmac", "client_id": CLIENT, "exp": now() + 60}),
    );
    let tokens = [
        valid.clone(),
        hmac_valid.clone(),
        rsa().token("k1", &broken),
        rsa().token("k1", &expired),
        Signer::rsa().token("k1", &claims()),
        rsa().token("unknown-kid", &claims()),
        format!("{valid}x"),
    ];
    let mut outputs = String::new();
    for token in &tokens {
        let answer = send(&layer, &Seen::default(), bearer(token)).await;
        outputs.push_str(&format!("{} {:?} {}\n", answer.status, answer.headers, answer.body));
    }
    server.set(Jwks::Status(500));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ =
        send(&layer, &Seen::default(), bearer(&rsa().token("another-unknown", &claims()))).await;

    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let words = forbidden(&refs);
    let logs = captured.text();
    assert!(logs.contains("request refused"), "logs were captured: {logs:.200}");
    assert!(logs.contains("subscription store failed"));
    assert_clean("logs", &logs, &words);
    assert_clean("refusals", &outputs, &words);
}
