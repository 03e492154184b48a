//! The configuration file: schema details, one-line errors, no secret in errors, and a
//! property test of the parser.

use tower_jwt_plan_gateway::compile::check_config;
use tower_jwt_plan_gateway::config::parse_config;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use super::*;

/// Part of the root package's `tests/secrets.rs` before the gateway became its own crate.
const SECRET: &str = "SUPER-SECRET-HMAC-VALUE-0123456789-abcdefgh";

#[tokio::test]
async fn config_schema_details() {
    let f = Fixture::start().await;
    // Dates as strings or bare TOML date-times, issuer/audience as string or array, all the
    // optional plan keys.
    let text = format!(
        "listen = \"127.0.0.1:0\"\nbackend_timeout_secs = 5\n{}{}{}",
        f.api(
            "echo",
            "/",
            "",
            &format!(
                "[[api.plan]]\nid = \"gold\"\nsecurity = \"jwt\"\nstatus = \"deprecated\"\n\
                 algorithms = [\"ES256\"]\njwks_url = \"{}\"\nissuer = [\"{}\", \"https://other\"]\n\
                 audience = \"{AUDIENCE}\"\nclient_id_claim = \"client_id\"\nleeway_secs = 30\n\
                 required_scopes = [\"read\"]\nscope_mode = \"any\"\nuser_claim = \"sub\"\n\
                 extract_claims = false\nmax_lifetime_secs = 3600\ntoken_types = [\"JWT\"]\n\
                 claims_to_headers = {{ sub = \"x-user-id\", client_id = \"x-client-id\" }}\n\
                 propagate_auth_header = false\n\n\
                 [[api.plan]]\nid = \"free\"\nsecurity = \"keyless\"\nstatus = \"staging\"\n",
                f.idp.jwks_url, f.idp.issuer
            )
        ),
        app("app-1", "client-1"),
        "[[subscription]]\nid = \"s\"\napi = \"echo\"\nplan = \"gold\"\napplication = \"app-1\"\n\
         status = \"paused\"\nstarting_at = \"2026-01-01T00:00:00Z\"\nending_at = 2027-01-01T00:00:00+01:00\n",
    );
    let config = parse_config(&text).expect("parses");
    let summary = check_config(&config).expect("valid");
    assert_eq!(summary.to_string(), "1 API, 2 plans, 1 application, 1 subscription");

    // Errors are one line and name where or what.
    let unknown = parse_config("[[api]]\nid = \"a\"\ncolour = \"blue\"\n").err().expect("refused");
    assert!(unknown.starts_with("line 3, column 1: unknown field `colour`"), "{unknown}");
    let date =
        parse_config(&text.replace("2026-01-01T00:00:00Z", "yesterday")).err().expect("refused");
    assert!(date.contains("RFC 3339"), "{date}");
    assert!(!date.contains('\n'));
    let local_date =
        parse_config(&text.replace("2027-01-01T00:00:00+01:00", "2027-01-01T00:00:00"))
            .err()
            .expect("a date-time without offset is refused");
    assert!(local_date.contains("RFC 3339"), "{local_date}");
}

#[test]
fn config_errors_never_quote_the_hmac_secret() {
    let config = format!(
        r#"
[[api]]
id = "echo"
context_path = "/echo"
backend = "http://127.0.0.1:9"
[[api.plan]]
id = "gold"
security = "jwt"
status = "published"
algorithms = ["HS256"]
hmac_secret = "{short}"
"#,
        short = &SECRET[..20]
    );
    // The gateway's config has no Debug at all; its errors must not quote the secret.
    let parsed = parse_config(&config).unwrap();
    let err = check_config(&parsed).map(|_| ()).unwrap_err();
    assert!(err.contains("too short"), "{err}");
    assert!(!err.contains(&SECRET[..20]), "gateway error quotes the secret");
}

/// 256 per property, or `PROPTEST_CASES` for a long run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/config.txt"))),
        ..ProptestConfig::default()
    })]

    /// The gateway's config parser: arbitrary text and damaged valid files give a one-line
    /// error or a config, never a panic.
    #[test]
    fn gateway_config_parser_never_panics(text in "\\PC{0,200}", cut in any::<prop::sample::Index>(), noise in "[\\[\\]=\"a-z0-9 \n.]{0,20}") {
        let valid = r#"
listen = "127.0.0.1:8080"
[[api]]
id = "echo"
context_path = "/echo"
backend = "http://127.0.0.1:9000"
[[api.plan]]
id = "gold"
security = "jwt"
status = "published"
hmac_secret = "0123456789abcdef0123456789abcdef"
algorithms = ["HS256"]
[[application]]
id = "app-1"
client_id = "c"
[[subscription]]
id = "s"
api = "echo"
plan = "gold"
application = "app-1"
status = "accepted"
"#;
        for candidate in [text.clone(), {
            let at = cut.index(valid.len());
            let at = (0..=at).rev().find(|i| valid.is_char_boundary(*i)).unwrap_or(0);
            format!("{}{}{}", &valid[..at], noise, &valid[at..])
        }] {
            match parse_config(&candidate) {
                Ok(config) => { let _ = check_config(&config); }
                Err(message) => prop_assert!(!message.contains('\n'), "multi-line error: {}", message),
            }
        }
    }
}
