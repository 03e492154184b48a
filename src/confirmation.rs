//! Certificate-bound access tokens (RFC 8705 §3): [`Confirmation`], a plan's policy, and
//! [`ClientCertificate`], the request extension through which the server tells the layer which
//! certificate the client presented on its TLS connection.
//!
//! A token is bound when its `cnf` claim holds `x5t#S256`, the base64url SHA-256 of the DER
//! certificate. The layer compares it with the [`ClientCertificate`] in the request's
//! extensions, which only the server terminating TLS can know: it must insert it for every
//! request of a connection that presented a certificate (and must never take it from a
//! header the client controls). The comparison is constant-time.
//!
//! | policy | token with `cnf.x5t#S256` | token without |
//! |---|---|---|
//! | [`Confirmation::Off`] (default) | accepted, `cnf` ignored | accepted |
//! | [`Confirmation::Optional`] | must match the client certificate | accepted |
//! | [`Confirmation::Required`] | must match the client certificate | refused |
//!
//! Every refusal is 401 `JWT_INVALID_TOKEN`, with the reason
//! [`CertificateMismatch`](crate::InvalidReason::CertificateMismatch),
//! [`NoClientCertificate`](crate::InvalidReason::NoClientCertificate) or
//! [`NotCertificateBound`](crate::InvalidReason::NotCertificateBound). The check runs on every
//! request, token-cache hits included, since the certificate belongs to the connection.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::error::{AuthError, InvalidReason};

/// A plan's policy for certificate-bound tokens (RFC 8705): how a token's `cnf.x5t#S256`
/// is checked against the request's [`ClientCertificate`].
///
/// | policy | token with `cnf.x5t#S256` | token without |
/// |---|---|---|
/// | `Off` (default) | accepted, `cnf` ignored | accepted |
/// | `Optional` | must match the client certificate | accepted |
/// | `Required` | must match the client certificate | refused |
///
/// Refusals are 401 `JWT_INVALID_TOKEN`, reason
/// [`CertificateMismatch`](crate::InvalidReason::CertificateMismatch),
/// [`NoClientCertificate`](crate::InvalidReason::NoClientCertificate) or
/// [`NotCertificateBound`](crate::InvalidReason::NotCertificateBound), checked on every request
/// (token-cache hits included: the certificate belongs to the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Confirmation {
    /// `cnf` is not checked (default).
    #[default]
    Off,
    /// A token with `cnf.x5t#S256` must match the client certificate; others pass.
    Optional,
    /// Every token must carry `cnf.x5t#S256` matching the client certificate.
    Required,
}

/// The client certificate of the request's TLS connection, as its SHA-256 thumbprint. Put it
/// in the request extensions from the server that terminates TLS, for every request of a
/// connection that presented a certificate; never build it from a header the client controls.
///
/// ```
/// use tower_jwt_plan::ClientCertificate;
///
/// # let der: Vec<u8> = vec![0x30, 0x03, 0x02, 0x01, 0x01];
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(ClientCertificate::from_der(&der));
/// let cert = request.extensions().get::<ClientCertificate>().unwrap();
/// assert_eq!(cert.thumbprint().len(), 32);
/// assert_eq!(cert.thumbprint_b64().len(), 43);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    thumbprint: [u8; 32],
}

impl ClientCertificate {
    /// From the certificate's DER bytes (the leaf certificate of the TLS handshake).
    pub fn from_der(der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let mut thumbprint = [0u8; 32];
        thumbprint.copy_from_slice(digest.as_ref());
        Self { thumbprint }
    }

    /// From a SHA-256 thumbprint already computed (by a TLS terminator in front).
    pub fn from_thumbprint(thumbprint: [u8; 32]) -> Self {
        Self { thumbprint }
    }

    /// The SHA-256 thumbprint.
    pub fn thumbprint(&self) -> &[u8; 32] {
        &self.thumbprint
    }

    /// The thumbprint as `x5t#S256` spells it (base64url, no padding).
    pub fn thumbprint_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.thumbprint)
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientCertificate").field(&self.thumbprint_b64()).finish()
    }
}

/// Check the token's binding against the connection's certificate under `policy`.
pub(crate) fn check(
    policy: Confirmation,
    claims: &Map<String, Value>,
    certificate: Option<&ClientCertificate>,
) -> Result<(), AuthError> {
    if policy == Confirmation::Off {
        return Ok(());
    }
    let bound = match claims.get("cnf") {
        None => None,
        Some(Value::Object(cnf)) => match cnf.get("x5t#S256") {
            None => None,
            Some(Value::String(x5t)) => Some(x5t),
            Some(_) => return Err(AuthError::invalid(InvalidReason::WrongClaimType)),
        },
        Some(_) => return Err(AuthError::invalid(InvalidReason::WrongClaimType)),
    };
    let Some(x5t) = bound else {
        return match policy {
            Confirmation::Required => Err(AuthError::invalid(InvalidReason::NotCertificateBound)),
            _ => Ok(()),
        };
    };
    let Some(certificate) = certificate else {
        return Err(AuthError::invalid(InvalidReason::NoClientCertificate));
    };
    let matches = URL_SAFE_NO_PAD.decode(x5t).is_ok_and(|claimed| {
        claimed.len() == 32
            && aws_lc_rs::constant_time::verify_slices_are_equal(&claimed, &certificate.thumbprint)
                .is_ok()
    });
    if matches { Ok(()) } else { Err(AuthError::invalid(InvalidReason::CertificateMismatch)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn policies() {
        let cert = ClientCertificate::from_der(b"cert");
        let other = ClientCertificate::from_der(b"other");
        let bound = claims(json!({"cnf": {"x5t#S256": cert.thumbprint_b64()}}));
        let unbound = claims(json!({}));
        let reason = |r: Result<(), AuthError>| r.err().and_then(|e| e.reason());
        use Confirmation::*;
        assert!(check(Off, &bound, Some(&other)).is_ok());
        for policy in [Optional, Required] {
            assert!(check(policy, &bound, Some(&cert)).is_ok());
            assert_eq!(
                reason(check(policy, &bound, Some(&other))),
                Some(InvalidReason::CertificateMismatch)
            );
            assert_eq!(
                reason(check(policy, &bound, None)),
                Some(InvalidReason::NoClientCertificate)
            );
        }
        assert!(check(Optional, &unbound, None).is_ok());
        assert_eq!(
            reason(check(Required, &unbound, Some(&cert))),
            Some(InvalidReason::NotCertificateBound)
        );
        let padded = claims(json!({"cnf": {"x5t#S256": format!("{}=", cert.thumbprint_b64())}}));
        assert_eq!(
            reason(check(Required, &padded, Some(&cert))),
            Some(InvalidReason::CertificateMismatch)
        );
        let wrong = claims(json!({"cnf": "x"}));
        assert_eq!(
            reason(check(Optional, &wrong, Some(&cert))),
            Some(InvalidReason::WrongClaimType)
        );
    }
}
