//! Corpus section B: Encoding and structure.
//! Row ids are explained in `CORPUS.md`, beside this file.

use super::*;

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The same segment with non-zero unused trailing bits: a lenient decoder reads the same bytes.
pub(super) fn non_canonical(segment: &str) -> String {
    let unused = match segment.len() % 4 {
        2 => 0b1111,
        3 => 0b11,
        _ => panic!("segment has no unused bits"),
    };
    let last = *segment.as_bytes().last().unwrap();
    let index = B64URL.iter().position(|c| *c == last).unwrap();
    assert_eq!(index & unused, 0, "canonical encoder");
    let mut out = segment[..segment.len() - 1].to_string();
    out.push(B64URL[index | 1] as char);
    out
}

/// The segment with `=` padding, as standard base64 would write it.
pub(super) fn padded(segment: &str) -> String {
    format!("{segment}{}", "=".repeat((4 - segment.len() % 4) % 4))
}

/// A valid token whose signature segment uses `-` or `_`, and that segment in the standard
/// alphabet.
fn token_with_url_chars() -> (String, String) {
    for n in 0.. {
        let token = rs(&unique(1000 + n));
        let (h, p, s) = split(&token);
        if s.contains(['-', '_']) {
            let standard = s.replace('-', "+").replace('_', "/");
            return (token, format!("{h}.{p}.{standard}"));
        }
    }
    unreachable!()
}

#[tokio::test]
async fn b_b_encoding_and_structure() {
    let h = harness().await;
    let valid = rs(&good());
    let (hd, pl, sg) = split(&valid);
    let (url_token, standard) = token_with_url_chars();
    let (_, _, url_sig) = split(&url_token);
    let malformed = invalid(&[R::Malformed]);
    let jwe_header = b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
    let mut cases = vec![
        tcase("B0 control", &valid, Want::Pass),
        tcase("B0 control: signature with - or _", &url_token, Want::Pass),
        // B1-B4: segment counts and empty segments.
        tcase("B1 two segments h.p", &format!("{hd}.{pl}"), malformed),
        tcase("B1 one segment", &hd, malformed),
        case("B1 empty string", auth("Bearer "), malformed),
        tcase("B2 h..s", &format!("{hd}..{sg}"), malformed),
        tcase("B2 .p.s", &format!(".{pl}.{sg}"), malformed),
        tcase("B2 .p.", &format!(".{pl}."), malformed),
        tcase("B2 ..", "..", malformed),
        tcase("B3 h.p.s. (extra empty component)", &format!("{valid}."), malformed),
        tcase("B3 h..p.s (double dot)", &format!("{hd}..{pl}.{sg}"), malformed),
        tcase("B3 .h.p.s (leading dot)", &format!(".{valid}"), malformed),
        tcase("B4 h.p.s.foo", &format!("{valid}.Zm9v"), malformed),
        // B5: JWE compact serialization.
        tcase(
            "B5 JWE compact (5 segments)",
            &format!(
                "{jwe_header}.{}.{}.{}.{}",
                b64([1u8; 256]),
                b64([2u8; 12]),
                b64([3u8; 40]),
                b64([4u8; 16])
            ),
            malformed,
        ),
        tcase(
            "B5 JWE header in a 3-segment token",
            &rs_header(r#"{"alg":"RS256","kid":"k1","enc":"A256GCM"}"#, &good()),
            invalid(&[R::UnsupportedHeader]),
        ),
        // B6: dot floods.
        tcase("B6 8000 dots", &".".repeat(8000), malformed),
        tcase("B6 4000 x a.", &"a.".repeat(4000), malformed),
        tcase("B6 100000 dots (over the size cap)", &".".repeat(100_000), invalid(&[R::TooLarge])),
        // B7: JSON serialization in the bearer slot.
        tcase(
            "B7 general JSON serialization",
            &json!({"payload": pl, "signatures": [{"protected": hd, "signature": sg}]}).to_string(),
            malformed,
        ),
        tcase(
            "B7 flattened JSON serialization",
            &json!({"payload": pl, "protected": hd, "header": {"kid": "k1"}, "signature": sg})
                .to_string(),
            malformed,
        ),
        tcase(
            "B7 JSON serialization, base64url-wrapped",
            &b64(json!({"payload": pl, "protected": hd, "signature": sg}).to_string()),
            malformed,
        ),
        // B8: standard alphabet.
        tcase("B8 + and / in the signature", &standard, malformed),
        tcase("B8 + in the header", &format!("{}+.{pl}.{sg}", &hd[..hd.len() - 1]), malformed),
        // B9: padding.
        tcase("B9 padded signature", &format!("{hd}.{pl}.{}", padded(&sg)), malformed),
        tcase("B9 padded header", &format!("{}.{pl}.{sg}", padded(&hd)), malformed),
        tcase("B9 padded payload", &format!("{hd}.{}.{sg}", padded(&pl)), malformed),
        tcase("B9 lone = after the signature", &format!("{valid}="), malformed),
        // B10: non-canonical trailing bits (a lenient decoder would verify the signature).
        tcase(
            "B10 non-canonical signature",
            &format!("{hd}.{pl}.{}", non_canonical(&sg)),
            malformed,
        ),
        tcase(
            "B10 non-canonical signature with - or _",
            &format!("{}.{}", url_token.rsplit_once('.').unwrap().0, non_canonical(&url_sig)),
            malformed,
        ),
    ];
    if hd.len() % 4 >= 2 {
        cases.push(tcase(
            "B10 non-canonical header",
            &format!("{}.{pl}.{sg}", non_canonical(&hd)),
            malformed,
        ));
    }
    if pl.len() % 4 >= 2 {
        cases.push(tcase(
            "B10 non-canonical payload",
            &format!("{hd}.{}.{sg}", non_canonical(&pl)),
            malformed,
        ));
    }
    // B11: stray characters. Through the header where HTTP can carry them ...
    let mid = sg.len() / 2;
    for (name, token) in [
        ("space", format!("{hd}.{pl}.{} {}", &sg[..mid], &sg[mid..])),
        ("tab", format!("{hd}.{pl}.{}\t{}", &sg[..mid], &sg[mid..])),
        ("? in the signature", format!("{hd}.{pl}.{}?{}", &sg[..mid], &sg[mid..])),
        ("? in the header (Wycheproof 372)", format!("{}?{}.{pl}.{sg}", &hd[..4], &hd[4..])),
        ("? in the payload (Wycheproof 373)", format!("{hd}.{}?{}.{sg}", &pl[..4], &pl[4..])),
        ("%2E for the first dot", format!("{hd}%2E{pl}.{sg}")),
        ("* in the payload", format!("{hd}.{}*{}.{sg}", &pl[..4], &pl[4..])),
    ] {
        cases.push(tcase(format!("B11 {name}"), &token, malformed));
    }
    // ... and through the query parameter for what a header value cannot hold.
    for (name, inserted) in
        [("LF", "%0A"), ("CRLF", "%0D%0A"), ("NUL", "%00"), ("space", "%20"), ("tab", "%09")]
    {
        cases.push(case(
            format!("B11 {name} inside the token (query)"),
            query(&format!("{hd}.{pl}.{}{inserted}{}", &sg[..mid], &sg[mid..])),
            malformed,
        ));
    }
    cases.push(case("B11 invalid UTF-8 (query)", query(&format!("{hd}.{pl}.{sg}%FF")), malformed));
    // B12: exactly one SP between scheme and token, nothing after.
    for (name, value) in [
        ("two spaces", format!("Bearer  {valid}")),
        ("trailing space", format!("Bearer {valid} ")),
        ("trailing tab", format!("Bearer {valid}\t")),
        ("tab separator", format!("Bearer\t{valid}")),
        ("space then tab", format!("Bearer \t{valid}")),
        ("comma-joined second credential", format!("Bearer {valid}, Bearer {valid}")),
    ] {
        cases.push(case(format!("B12 {name}"), auth(&value), malformed));
    }
    run(&h.layer, &h.store, cases).await;
}
