//! Corpus section D: Signature bytes.
//! Row ids are explained in `CORPUS.md`, beside this file.

use super::*;
use crate::raw_rsa::*;

/// The order of P-256 and its field prime.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
pub(super) const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
/// The order of Ed25519's base point, little-endian.
const ED25519_L: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

/// `a - b` for big-endian numbers of one length, `a >= b`.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = a[i] as i16 - b[i] as i16 - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    assert_eq!(borrow, 0);
    out
}

/// `a + b` for little-endian numbers of one length (no overflow expected).
fn add_le(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0; a.len()];
    let mut carry = 0u16;
    for i in 0..a.len() {
        let s = a[i] as u16 + b[i] as u16 + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    assert_eq!(carry, 0);
    out
}

fn der_integer(x: &[u8]) -> Vec<u8> {
    let start = x.iter().position(|b| *b != 0).unwrap_or(x.len() - 1);
    let mut v = x[start..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, v.len() as u8];
    out.extend(v);
    out
}

/// An ECDSA P1363 signature (r‖s) as ASN.1 DER.
fn der_signature(p1363: &[u8]) -> Vec<u8> {
    let (r, s) = p1363.split_at(p1363.len() / 2);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[tokio::test]
async fn b_d_signature_bytes() {
    let h = harness().await;
    let claims = good();
    let bad_sig = invalid(&[R::BadSignature]);
    let es = p256().token_with(Algorithm::ES256, "ec1", &unique(1));
    let es_sig = signature(&es);
    assert_eq!(es_sig.len(), 64);
    let (r, s) = es_sig.split_at(32);
    let n = hex(P256_N);
    let one = {
        let mut v = vec![0u8; 32];
        v[31] = 1;
        v
    };
    let n_minus_1 = sub_be(&n, &one);
    let high_s = [r, &sub_be(&n, s)].concat();
    let es_claims = with("jti", json!("es"));
    let es_forged =
        |sig: &[u8]| with_sig(&p256().token_with(Algorithm::ES256, "ec1", &es_claims), sig);
    let rs_valid = rs(&unique(2));
    let rs_sig = signature(&rs_valid);

    let mut cases = vec![
        tcase("D0 control: ES256", &es, Want::Pass),
        tcase("D7 high-s (n - s) is a valid ECDSA signature", &with_sig(&es, &high_s), Want::Pass),
        tcase("D0 control: RS256", &rs_valid, Want::Pass),
        // D1: empty signatures.
        tcase(
            "D1 RS256 h.p.",
            &format!("{}.", rs(&claims).rsplit_once('.').unwrap().0),
            invalid(&[R::Malformed]),
        ),
        tcase(
            "D1 HS256 h.p.",
            &format!("{}.{}.", b64(hdr("HS256", "k1")), b64(claims.to_string())),
            invalid(&[R::Malformed]),
        ),
        tcase(
            "D1 ES256 h.p.",
            &format!("{}.", es.rsplit_once('.').unwrap().0),
            invalid(&[R::Malformed]),
        ),
        tcase("D1 ES256 one zero byte", &es_forged(&[0]), bad_sig),
        // D3: the psychic signature.
        tcase("D3 ES256 r = s = 0", &es_forged(&[0; 64]), bad_sig),
        tcase(
            "D3 ES256 r = s = 0, no kid",
            &format!(
                "{}.{}.{}",
                b64(r#"{"alg":"ES256"}"#),
                b64(es_claims.to_string()),
                b64([0u8; 64])
            ),
            bad_sig,
        ),
    ];
    // D4: r, s at the edges of [1, n - 1].
    let zero = vec![0u8; 32];
    let max = vec![0xffu8; 32];
    let p = hex(P256_P);
    let values: [(&str, &[u8]); 6] =
        [("0", &zero), ("1", &one), ("n-1", &n_minus_1), ("n", &n), ("p", &p), ("2^256-1", &max)];
    for (rn, rv) in values {
        for (sn, sv) in values {
            if rn == "0" && sn == "0" {
                continue;
            }
            cases.push(tcase(
                format!("D4 ES256 r = {rn}, s = {sn}"),
                &es_forged(&[rv, sv].concat()),
                bad_sig,
            ));
        }
    }
    cases.push(tcase("D4 ES256 valid r, s = n", &es_forged(&[r, &n].concat()), bad_sig));
    cases.push(tcase(
        "D4 ES256 valid r, s + n overflowing",
        &es_forged(&[r, &max].concat()),
        bad_sig,
    ));
    // D5: lengths.
    let zero_padded = [&[0u8][..], r, &[0], s].concat();
    for (name, sig) in [
        ("D5 ES256 63 bytes", es_sig[..63].to_vec()),
        ("D5 ES256 65 bytes (trailing zero)", [&es_sig[..], &[0]].concat()),
        ("D5 ES256 65 bytes (leading zero)", [&[0u8][..], &es_sig].concat()),
        ("D5 ES256 66 bytes (zero-padded halves)", zero_padded),
        ("D5 ES256 96 bytes (ES384 length)", [&es_sig[..], &[0; 32]].concat()),
        ("D5 ES256 128 bytes (doubled)", [&es_sig[..], &es_sig].concat()),
        // D6: DER instead of r‖s.
        ("D6 ES256 DER-encoded", der_signature(&es_sig)),
    ] {
        cases.push(tcase(name, &with_sig(&es, &sig), bad_sig));
    }
    // D8 (layer level; the padding zoo is in d8_d10_padding_variants and tests/wycheproof.rs).
    let mut flipped = rs_sig.clone();
    flipped[128] ^= 1;
    cases.push(tcase("D8 RS256 one bit flipped", &with_sig(&rs_valid, &flipped), bad_sig));
    let input = rs_valid.rsplit_once('.').unwrap().0.to_string();
    for (name, alg) in [
        ("D8 RS256 header, RS384 DigestInfo", Algorithm::RS384),
        ("D8 RS256 header, RS512 DigestInfo", Algorithm::RS512),
        ("D8 RS256 header, PSS padding", Algorithm::PS256),
    ] {
        cases.push(tcase(
            name,
            &format!("{input}.{}", b64(rsa().sign(alg, input.as_bytes()))),
            bad_sig,
        ));
    }
    // D9: RSA signature length != modulus length.
    for (name, sig) in [
        ("D9 RS256 255 bytes", rs_sig[1..].to_vec()),
        ("D9 RS256 257 bytes (leading zero)", [&[0u8][..], &rs_sig].concat()),
        ("D9 RS256 257 bytes (trailing zero)", [&rs_sig[..], &[0]].concat()),
        ("D9 RS256 512 bytes", [&rs_sig[..], &rs_sig].concat()),
        ("D9 RS256 1 byte", vec![1]),
        ("D9 RS256 all zero", vec![0; 256]),
        ("D9 RS256 equal to n", {
            let Signer::Rsa(kp) = rsa() else { unreachable!() };
            aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key()).n
        }),
    ] {
        cases.push(tcase(name, &with_sig(&rs_valid, &sig), bad_sig));
    }
    // D10 (hash / MGF mismatch; salt lengths in d8_d10_padding_variants).
    let ps = rsa().token_with(Algorithm::PS256, "k1", &unique(3));
    let ps_input = ps.rsplit_once('.').unwrap().0.to_string();
    cases.push(tcase("D0 control: PS256", &ps, Want::Pass));
    for (name, alg) in [
        ("D10 PS256 header, PS384 signature (hash and MGF1-SHA384)", Algorithm::PS384),
        ("D10 PS256 header, PS512 signature", Algorithm::PS512),
        ("D10 PS256 header, PKCS#1 v1.5 signature", Algorithm::RS256),
    ] {
        cases.push(tcase(
            name,
            &format!("{ps_input}.{}", b64(rsa().sign(alg, ps_input.as_bytes()))),
            bad_sig,
        ));
    }
    run(&h.layer, &h.store, cases).await;
}

/// D2: HMAC tags of the wrong length, against a plan with an HMAC secret.
#[tokio::test]
async fn d2_hmac_tag_length() {
    let secret = [0x5au8; 32];
    let store = CountingStore::with([accepted("gold", CLIENT)]);
    let settings = JwtSettings::new(KeySource::hmac_secret(secret))
        .algorithms([Algorithm::HS256])
        .issuer(ISS)
        .audience(AUD);
    let layer = layer_with(settings, &store, |b| b);
    let hmac = Signer::hmac(&secret);
    let valid = hmac.token_with(Algorithm::HS256, "any", &good());
    let tag = signature(&valid);
    let bad_sig = invalid(&[R::BadSignature]);
    let other = hmac.token_with(Algorithm::HS256, "any", &unique(1));
    let mut cases = vec![tcase("D2 control: HS256", &other, Want::Pass)];
    for (name, sig) in [
        ("D2 1 byte", vec![tag[0]]),
        ("D2 31 bytes (truncated tag)", tag[..31].to_vec()),
        ("D2 16 bytes (half tag)", tag[..16].to_vec()),
        ("D2 33 bytes (tag + 0)", [&tag[..], &[0]].concat()),
        ("D2 64 bytes (tag twice)", [&tag[..], &tag].concat()),
        ("D2 32 zero bytes", vec![0; 32]),
        (
            "D2 HS512-length tag",
            hmac.sign(Algorithm::HS512, valid.rsplit_once('.').unwrap().0.as_bytes()),
        ),
    ] {
        cases.push(tcase(name, &with_sig(&valid, &sig), bad_sig));
    }
    cases.push(tcase(
        "D2 HS384 header on an HS256-only plan",
        &hmac.token_with(Algorithm::HS384, "any", &good()),
        invalid(&[R::AlgorithmNotAllowed]),
    ));
    run(&layer, &store, cases).await;
}

/// D11: Ed25519 with S >= L, and a small-order public key with an identity signature.
#[tokio::test]
async fn d11_ed25519_malleability() {
    let h = harness().await;
    let settings =
        JwtSettings::new(KeySource::jwks(h.cache.clone())).algorithms([Algorithm::EdDSA]);
    let layer = layer_with(settings, &h.store, |b| b);
    let valid = ed().token_raw(Algorithm::EdDSA, &hdr("EdDSA", "ed1"), &good().to_string());
    let sig = signature(&valid);
    let (big_r, small_s) = sig.split_at(32);
    let l = hex(ED25519_L);
    let s_plus_l = [big_r, &add_le(small_s, &l)].concat();
    let mut flipped_r = sig.clone();
    flipped_r[0] ^= 1;
    let cases = vec![
        tcase("D11 control: EdDSA", &valid, Want::Pass),
        tcase(
            "D11 S + L (non-canonical S)",
            &with_sig(&valid, &s_plus_l),
            invalid(&[R::BadSignature]),
        ),
        tcase("D11 S = L", &with_sig(&valid, &[big_r, &l].concat()), invalid(&[R::BadSignature])),
        tcase("D11 R modified", &with_sig(&valid, &flipped_r), invalid(&[R::BadSignature])),
        tcase("D11 63 bytes", &with_sig(&valid, &sig[..63]), invalid(&[R::BadSignature])),
        tcase(
            "D11 65 bytes",
            &with_sig(&valid, &[&sig[..], &[0]].concat()),
            invalid(&[R::BadSignature]),
        ),
        tcase("D11 all zero", &with_sig(&valid, &[0; 64]), invalid(&[R::BadSignature])),
    ];
    run(&layer, &h.store, cases).await;
}

/// The identity point of edwards25519 (y = 1), encoded: a public key of small order.
fn ed25519_identity() -> [u8; 32] {
    let mut point = [0u8; 32];
    point[0] = 1;
    point
}

/// D11: a small-order Ed25519 public key in the JWKS must not let the trivial signature
/// (R = identity, S = 0) verify any message.
#[tokio::test]
async fn d11_small_order_ed25519_key() {
    let small =
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "small", "x": b64(ed25519_identity())});
    let h = harness_serving(json!({"keys": [rsa().jwk("k1"), small]})).await;
    let settings =
        JwtSettings::new(KeySource::jwks(h.cache.clone())).algorithms([Algorithm::EdDSA]);
    let layer = layer_with(settings, &h.store, |b| b);
    let input = format!("{}.{}", b64(hdr("EdDSA", "small")), b64(good().to_string()));
    let trivial = [&ed25519_identity()[..], &[0u8; 32]].concat();
    // A non-canonical encoding of the identity (y = p + 1) as R.
    let mut non_canonical_r = [0xffu8; 32];
    non_canonical_r[0] = 0xee;
    non_canonical_r[31] = 0x7f;
    let cases = vec![
        tcase(
            "D11 small-order key, R = identity, S = 0",
            &format!("{input}.{}", b64(&trivial)),
            invalid(&[]),
        ),
        tcase(
            "D11 small-order key, non-canonical R, S = 0",
            &format!("{input}.{}", b64([&non_canonical_r[..], &[0u8; 32]].concat())),
            invalid(&[]),
        ),
    ];
    run(&layer, &h.store, cases).await;
}

/// Builds an encoded message from the signing input.
type Encode<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;

/// D8 and D10 through the layer: PKCS#1 v1.5 and PSS encodings a conforming signer never makes,
/// signed with the real private key, with controls proving the raw signer itself is right.
#[tokio::test]
async fn d8_d10_padding_variants() {
    let h = harness().await;
    let raw = RawRsa::of(rsa());
    let bad_sig = invalid(&[R::BadSignature]);
    let mut n = 0;
    let mut token = |alg: &str, encode: &dyn Fn(&[u8]) -> Vec<u8>| {
        n += 1;
        let input = format!("{}.{}", b64(hdr(alg, "k1")), b64(unique(n).to_string()));
        let sig = raw.sign_raw(&encode(input.as_bytes()));
        format!("{input}.{}", b64(sig))
    };
    let info = |prefix: &str, msg: &[u8]| [hex(prefix), sha256(msg)].concat();
    let pkcs1_cases: [(&str, Encode<'_>, Want); 10] = [
        (
            "D8 control: raw PKCS#1 v1.5",
            &|m| pkcs1(256, 1, 0xff, &info(DIGEST_INFO_SHA256, m)),
            Want::Pass,
        ),
        (
            "D8 DigestInfo without NULL",
            &|m| pkcs1(256, 1, 0xff, &info("302f300b06096086480165030402010420", m)),
            bad_sig,
        ),
        (
            "D8 BER long-form length of the DigestInfo",
            &|m| pkcs1(256, 1, 0xff, &info("308131300d060960864801650304020105000420", m)),
            bad_sig,
        ),
        (
            "D8 SHA-384 OID with a SHA-256 hash",
            &|m| pkcs1(256, 1, 0xff, &info("3031300d060960864801650304020205000420", m)),
            bad_sig,
        ),
        (
            "D8 garbage after the hash",
            &|m| {
                pkcs1(
                    256,
                    1,
                    0xff,
                    &[info(DIGEST_INFO_SHA256, m), vec![0xde, 0xad, 0xbe, 0xef]].concat(),
                )
            },
            bad_sig,
        ),
        (
            "D8 garbage before the DigestInfo",
            &|m| pkcs1(256, 1, 0xff, &[vec![0x42; 16], info(DIGEST_INFO_SHA256, m)].concat()),
            bad_sig,
        ),
        ("D8 block type 2", &|m| pkcs1(256, 2, 0xff, &info(DIGEST_INFO_SHA256, m)), bad_sig),
        (
            "D8 padding of zero bytes",
            &|m| pkcs1(256, 1, 0x00, &info(DIGEST_INFO_SHA256, m)),
            bad_sig,
        ),
        (
            "D8 short padding (4 x FF, then garbage)",
            &|m| {
                let t = info(DIGEST_INFO_SHA256, m);
                let mut em = vec![0, 1, 0xff, 0xff, 0xff, 0xff, 0];
                em.extend(std::iter::repeat_n(0x42, 256 - em.len() - t.len()));
                em.extend(t);
                em
            },
            bad_sig,
        ),
        ("D8 bare hash, no DigestInfo", &|m| pkcs1(256, 1, 0xff, &sha256(m)), bad_sig),
    ];
    let salt = |len: usize| vec![0x5c; len];
    let pss_cases: [(&str, Encode<'_>, Want); 6] = [
        ("D10 control: raw PSS, salt 32, MGF1-SHA256", &|m| pss(m, &salt(32), false), Want::Pass),
        ("D10 PSS salt length 0", &|m| pss(m, &salt(0), false), bad_sig),
        ("D10 PSS salt length 20", &|m| pss(m, &salt(20), false), bad_sig),
        ("D10 PSS salt length 64", &|m| pss(m, &salt(64), false), bad_sig),
        ("D10 PSS with MGF1-SHA1", &|m| pss(m, &salt(32), true), bad_sig),
        (
            "D10 PSS trailer 0xbd",
            &|m| {
                let mut em = pss(m, &salt(32), false);
                *em.last_mut().unwrap() = 0xbd;
                em
            },
            bad_sig,
        ),
    ];
    let mut cases = Vec::new();
    for (name, encode, want) in pkcs1_cases {
        cases.push(tcase(name, &token("RS256", encode), want));
    }
    for (name, encode, want) in pss_cases {
        cases.push(tcase(name, &token("PS256", encode), want));
    }
    run(&h.layer, &h.store, cases).await;
}
