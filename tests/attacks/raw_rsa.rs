//! Raw RSA, for the padding rows (D8, D10) and the ROCA key (F3): signs malformed encodings
//! with the real private key. Checked by the controls of those rows.

use super::*;

/// One DER TLV: (contents, rest).
pub(super) fn der(input: &[u8]) -> (&[u8], &[u8]) {
    let (len, start) = if input[1] < 0x80 {
        (input[1] as usize, 2)
    } else {
        let n = (input[1] & 0x7f) as usize;
        (input[2..2 + n].iter().fold(0usize, |l, b| l << 8 | *b as usize), 2 + n)
    };
    (&input[start..start + len], &input[start + len..])
}

/// Big-endian bytes as `count` little-endian 32-bit limbs.
pub(super) fn limbs(be: &[u8], count: usize) -> Vec<u32> {
    let mut out = vec![0u32; count];
    for (i, byte) in be.iter().rev().enumerate() {
        out[i / 4] |= (*byte as u32) << (8 * (i % 4));
    }
    out
}

pub(super) fn to_bytes(limbs: &[u32], len: usize) -> Vec<u8> {
    (0..len).rev().map(|i| (limbs[i / 4] >> (8 * (i % 4))) as u8).collect()
}

/// `a >= n`, where `a` may have more limbs than `n`.
pub(super) fn geq(a: &[u32], n: &[u32]) -> bool {
    if a.len() > n.len() && a[n.len()..].iter().any(|l| *l != 0) {
        return true;
    }
    for i in (0..n.len()).rev() {
        let ai = a.get(i).copied().unwrap_or(0);
        if ai != n[i] {
            return ai > n[i];
        }
    }
    true
}

/// `a -= n` (wrapping at `a`'s width).
pub(super) fn sub_assign(a: &mut [u32], n: &[u32]) {
    let mut borrow = 0i64;
    for (i, limb) in a.iter_mut().enumerate() {
        let d = *limb as i64 - n.get(i).copied().unwrap_or(0) as i64 - borrow;
        borrow = i64::from(d < 0);
        *limb = d.rem_euclid(1 << 32) as u32;
    }
}

/// `a += b` (wrapping at `a`'s width).
pub(super) fn add_assign(a: &mut [u32], b: &[u32]) {
    let mut carry = 0u64;
    for (i, limb) in a.iter_mut().enumerate() {
        let x = *limb as u64 + b.get(i).copied().unwrap_or(0) as u64 + carry;
        *limb = x as u32;
        carry = x >> 32;
    }
}

/// Montgomery arithmetic modulo one odd number, on 32-bit limbs.
pub(super) struct Mont {
    n: Vec<u32>,
    n0inv: u32,
    r2: Vec<u32>,
}

impl Mont {
    pub(super) fn new(n_be: &[u8]) -> Self {
        let n = limbs(n_be, n_be.len().div_ceil(4));
        let mut inv = 1u32;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        // R^2 mod n, by doubling 1 as often as R^2 has bits.
        let mut r2 = vec![0u32; n.len()];
        r2[0] = 1;
        for _ in 0..64 * n.len() {
            let mut carry = 0u64;
            for limb in r2.iter_mut() {
                let v = (*limb as u64) << 1 | carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry == 1 || geq(&r2, &n) {
                sub_assign(&mut r2, &n);
            }
        }
        Self { n0inv: inv.wrapping_neg(), n, r2 }
    }

    /// `t * R^-1 mod n` for any `t < n * R` (up to twice as many limbs as `n`).
    pub(super) fn reduce(&self, t: &[u32]) -> Vec<u32> {
        let k = self.n.len();
        let mut t = t.to_vec();
        t.resize(2 * k + 1, 0);
        for i in 0..k {
            let m = t[i].wrapping_mul(self.n0inv);
            let mut carry = 0u64;
            for j in 0..k {
                let x = t[i + j] as u64 + m as u64 * self.n[j] as u64 + carry;
                t[i + j] = x as u32;
                carry = x >> 32;
            }
            let mut at = i + k;
            while carry != 0 {
                let x = t[at] as u64 + carry;
                t[at] = x as u32;
                carry = x >> 32;
                at += 1;
            }
        }
        let mut r = t[k..].to_vec();
        if geq(&r, &self.n) {
            sub_assign(&mut r, &self.n);
        }
        r.truncate(k);
        r
    }

    /// `a * b * R^-1 mod n`.
    pub(super) fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        self.reduce(&product(a, b))
    }

    /// `base^exp mod n` for `base < n * R`, in normal form.
    pub(super) fn pow(&self, base: &[u32], exp: &[u8]) -> Vec<u32> {
        // reduce: base R^-1; times R^2 twice (each with R^-1): base R, the Montgomery form.
        let base = self.mul(&self.mul(&self.reduce(base), &self.r2), &self.r2);
        // A fixed 4-bit window.
        let mut table = vec![self.reduce(&self.r2)];
        for i in 1..16 {
            table.push(self.mul(&table[i - 1], &base));
        }
        let mut acc = table[0].clone();
        for byte in exp {
            for nibble in [byte >> 4, byte & 15] {
                for _ in 0..4 {
                    acc = self.mul(&acc, &acc);
                }
                if nibble != 0 {
                    acc = self.mul(&acc, &table[nibble as usize]);
                }
            }
        }
        self.reduce(&acc)
    }
}

/// Schoolbook product.
pub(super) fn product(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut t = vec![0u32; a.len() + b.len()];
    for (i, &bi) in b.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &aj) in a.iter().enumerate() {
            let x = t[i + j] as u64 + aj as u64 * bi as u64 + carry;
            t[i + j] = x as u32;
            carry = x >> 32;
        }
        t[i + a.len()] = carry as u32;
    }
    t
}

/// The RSA private operation with the CRT, so the tests can sign encodings no conforming signer
/// produces (`em^d mod n`).
pub(super) struct RawRsa {
    p: Mont,
    q: Mont,
    dp: Vec<u8>,
    dq: Vec<u8>,
    qi: Vec<u32>,
    pub(super) bytes: usize,
}

impl RawRsa {
    pub(super) fn of(signer: &Signer) -> Self {
        let Signer::Rsa(kp) = signer else { panic!("not an RSA key") };
        let pkcs8 = kp.as_der().unwrap();
        // PrivateKeyInfo { version, algorithm, OCTET STRING { RSAPrivateKey {
        //     version, n, e, d, p, q, dp, dq, qi } } }
        let (info, _) = der(pkcs8.as_ref());
        let (_, rest) = der(info);
        let (_, rest) = der(rest);
        let (octets, _) = der(rest);
        let (mut rest, _) = der(octets);
        let mut fields = Vec::new();
        while !rest.is_empty() {
            let (value, next) = der(rest);
            fields.push(value);
            rest = next;
        }
        Self::new(fields[1], fields[4], fields[5], fields[6], fields[7], fields[8])
    }

    /// From big-endian n, p, q, dp, dq, qi.
    pub(super) fn new(n: &[u8], p: &[u8], q: &[u8], dp: &[u8], dq: &[u8], qi: &[u8]) -> Self {
        let strip = |x: &[u8]| x[x.iter().position(|b| *b != 0).unwrap()..].to_vec();
        let (p, q) = (Mont::new(&strip(p)), Mont::new(&strip(q)));
        let qi = limbs(&strip(qi), p.n.len());
        Self { p, q, dp: strip(dp), dq: strip(dq), qi, bytes: strip(n).len() }
    }

    /// `em^d mod n`, big-endian, modulus length.
    pub(super) fn sign_raw(&self, em: &[u8]) -> Vec<u8> {
        assert_eq!(em.len(), self.bytes);
        let c = limbs(em, self.bytes.div_ceil(4));
        let m1 = self.p.pow(&c, &self.dp);
        let mut m2 = self.q.pow(&c, &self.dq);
        // h = qi * (m1 - m2) mod p; m = m2 + h * q.
        let mut m2p = m2.clone();
        m2p.resize(self.p.n.len().max(m2.len()), 0);
        while geq(&m2p, &self.p.n) {
            sub_assign(&mut m2p, &self.p.n);
        }
        let mut diff = m1;
        if !geq(&diff, &m2p[..self.p.n.len()]) {
            add_assign(&mut diff, &self.p.n);
        }
        sub_assign(&mut diff, &m2p);
        let h = self.p.mul(&self.p.mul(&diff, &self.p.r2), &self.qi);
        let hq = product(&h, &self.q.n);
        m2.resize(hq.len(), 0);
        add_assign(&mut m2, &hq);
        to_bytes(&m2, self.bytes)
    }
}

pub(super) fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

/// The SHA-256 DigestInfo prefix (RFC 8017 §9.2 note 1).
pub(super) const DIGEST_INFO_SHA256: &str = "3031300d060960864801650304020105000420";

/// `00 || block || filler* || 00 || t`, one modulus long.
pub(super) fn pkcs1(len: usize, block: u8, filler: u8, t: &[u8]) -> Vec<u8> {
    let mut em = vec![0, block];
    em.extend(std::iter::repeat_n(filler, len - 3 - t.len()));
    em.push(0);
    em.extend(t);
    em
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) for a 2048-bit modulus, SHA-256 message hash, with this
/// salt and MGF1 over SHA-256 (or SHA-1).
pub(super) fn pss(msg: &[u8], salt: &[u8], mgf_sha1: bool) -> Vec<u8> {
    let em_len = 256;
    let m_prime = [&[0u8; 8][..], &sha256(msg), salt].concat();
    let hash = sha256(&m_prime);
    let db_len = em_len - hash.len() - 1;
    let mut db = vec![0u8; db_len - salt.len() - 1];
    db.push(1);
    db.extend(salt);
    let algorithm = if mgf_sha1 {
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY
    } else {
        &aws_lc_rs::digest::SHA256
    };
    let mut mask: Vec<u8> = Vec::new();
    for counter in 0u32.. {
        if mask.len() >= db_len {
            break;
        }
        let block = [&hash[..], &counter.to_be_bytes()].concat();
        mask.extend(aws_lc_rs::digest::digest(algorithm, &block).as_ref());
    }
    for (byte, m) in db.iter_mut().zip(mask) {
        *byte ^= m;
    }
    db[0] &= 0x7f;
    [db, hash, vec![0xbc]].concat()
}
