//! Corpus section C: JSON content.
//! Row ids are explained in `CORPUS.md`, beside this file.

use super::*;

/// A payload whose `exp` is this raw JSON text (and otherwise valid).
fn raw_exp(exp: &str) -> String {
    format!(r#"{{"iss":"{ISS}","aud":"{AUD}","client_id":"{CLIENT}","scope":"read","exp":{exp}}}"#)
}

fn nested_array(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_object(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[tokio::test]
async fn b_c_json_content() {
    let h = harness().await;
    let malformed = invalid(&[R::Malformed]);
    let body = good().to_string();
    let inner = &body[1..body.len() - 1];
    let mut cases = vec![
        tcase("C0 control", &rs(&good()), Want::Pass),
        tcase(
            "C0 control: nested claim of depth 20",
            &rs_payload(&format!(r#"{{{inner},"jti":"n","x":{}}}"#, nested_object(20))),
            Want::Pass,
        ),
    ];
    // C1: not an object.
    for text in ["123", r#""x""#, "[]", "null", "true", r#"[{"alg":"RS256"}]"#] {
        cases.push(tcase(format!("C1 header {text}"), &rs_header(text, &good()), malformed));
        cases.push(tcase(format!("C1 payload {text}"), &rs_payload(text), malformed));
    }
    // C2-C3: duplicate member names, also via escapes and nested.
    for (name, header) in [
        ("C2 header alg twice", r#"{"alg":"RS256","kid":"k1","alg":"none"}"#),
        ("C2 header kid twice", r#"{"alg":"RS256","kid":"k1","kid":"ec1"}"#),
        ("C3 header \\u0061lg", r#"{"alg":"RS256","kid":"k1","\u0061lg":"RS256"}"#),
    ] {
        cases.push(tcase(name, &rs_header(header, &good()), malformed));
    }
    for (name, payload) in [
        ("C2 payload sub twice", format!(r#"{{{inner},"sub":"mallory"}}"#)),
        ("C2 payload exp twice", format!(r#"{{{inner},"exp":{}}}"#, NOW + 99_999)),
        ("C2 payload client_id twice", format!(r#"{{{inner},"client_id":"other"}}"#)),
        ("C3 payload \\u0065xp", format!(r#"{{{inner},"\u0065xp":{}}}"#, NOW + 99_999)),
        ("C3 payload \\u0073ub", format!(r#"{{{inner},"\u0073ub":"mallory"}}"#)),
        ("C3 duplicate inside a nested object", format!(r#"{{{inner},"x":{{"b":1,"\u0062":2}}}}"#)),
    ] {
        cases.push(tcase(name, &rs_payload(&payload), malformed));
    }
    // C4: nesting deeper than the parser allows (no stack overflow).
    cases.push(tcase(
        "C4 array nested 2500 deep",
        &rs_payload(&format!(r#"{{{inner},"x":{}}}"#, nested_array(2500))),
        malformed,
    ));
    cases.push(tcase(
        "C4 object nested 200 deep",
        &rs_payload(&format!(r#"{{{inner},"x":{}}}"#, nested_object(200))),
        malformed,
    ));
    cases.push(tcase(
        "C4 header nested 1000 deep",
        &rs_header(&format!(r#"{{"alg":"RS256","kid":"k1","x":{}}}"#, nested_array(1000)), &good()),
        malformed,
    ));
    // C5: huge JSON: refused at the size cap, wherever it is carried.
    let huge = rs(&with("pad", json!("x".repeat(200_000))));
    cases.push(tcase("C5 200 KB token (header)", &huge, invalid(&[R::TooLarge])));
    cases.push(case(
        "C5 200 KB token (cookie)",
        cookie(&format!("jwt={huge}")),
        invalid(&[R::TooLarge]),
    ));
    // A URI is capped at 64 KiB by `http`: 40 KB in the query.
    let big = rs(&with("pad", json!("x".repeat(30_000))));
    cases.push(case("C5 40 KB token (query)", query(&big), invalid(&[R::TooLarge])));
    cases.push(tcase(
        "C5 token just over 8 KiB",
        &rs(&with("pad", json!("x".repeat(6200)))),
        invalid(&[R::TooLarge]),
    ));
    // C6: numbers.
    for exp in [
        "1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        "0x77359400",
        "02000000600",
        "+2000000600",
        ".5",
        "2000000600.",
    ] {
        cases.push(tcase(format!("C6 exp {exp}"), &rs_payload(&raw_exp(exp)), malformed));
    }
    cases.push(tcase("C6 exp -0", &rs_payload(&raw_exp("-0")), invalid(&[R::Expired])));
    cases.push(tcase("C6 exp -0.0", &rs_payload(&raw_exp("-0.0")), invalid(&[R::Expired])));
    cases.push(tcase(
        "C6 control: exp 9007199254740993",
        &rs_payload(&raw_exp("9007199254740993")),
        Want::Pass,
    ));
    cases.push(tcase(
        "C6 control: exp 2.0000006e9",
        &rs_payload(&raw_exp("2.0000006e9")),
        Want::Pass,
    ));
    // C7: text encodings.
    let utf16: Vec<u8> = body.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut utf16_bom = vec![0xff, 0xfe];
    utf16_bom.extend(&utf16);
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend(body.as_bytes());
    let in_sub = |bytes: &[u8]| {
        let mut p = format!(r#"{{{inner},"name":""#).into_bytes();
        p.extend(bytes);
        p.extend(br#""}"#);
        p
    };
    let header = hdr("RS256", "k1");
    for (name, payload) in [
        ("C7 invalid UTF-8 byte", in_sub(b"\xff")),
        ("C7 overlong encoding of /", in_sub(b"\xc0\xaf")),
        ("C7 CESU-8 surrogate", in_sub(b"\xed\xa0\x80")),
        ("C7 lone surrogate escape", in_sub(br"\ud800")),
        ("C7 lone low surrogate escape", in_sub(br"\udc00x")),
        ("C7 UTF-16LE body", utf16),
        ("C7 UTF-16LE body with BOM", utf16_bom),
        ("C7 UTF-8 BOM", bom),
        ("C7 raw control character in a string", in_sub(b"a\x01b")),
    ] {
        cases.push(tcase(name, &rs_bytes(header.as_bytes(), &payload), malformed));
    }
    cases.push(tcase(
        "C7 invalid UTF-8 in the header",
        &rs_bytes(b"{\"alg\":\"RS256\",\"kid\":\"k1\xff\"}", body.as_bytes()),
        malformed,
    ));
    // C8: not strict JSON.
    for (name, payload) in [
        ("C8 trailing garbage", format!("{body}xyz")),
        ("C8 a second object", format!("{body}{{}}")),
        ("C8 comment", format!("{{/*c*/{inner}}}")),
        ("C8 line comment", format!("{{{inner}//c\n}}")),
        ("C8 single quotes", body.replace('"', "'")),
        ("C8 trailing comma", format!("{{{inner},}}")),
        ("C8 unquoted member name", format!(r#"{{{inner},jti:"x"}}"#)),
    ] {
        cases.push(tcase(name, &rs_payload(&payload), malformed));
    }
    cases.push(tcase(
        "C8 trailing garbage in the header",
        &rs_header(&format!("{}xyz", hdr("RS256", "k1")), &good()),
        malformed,
    ));
    cases.push(tcase(
        "C8 control: whitespace around members",
        &rs_payload(&format!("{{ {} }}\n", inner.replace(',', " ,\n\t"))),
        Want::Pass,
    ));
    run(&h.layer, &h.store, cases).await;
}
