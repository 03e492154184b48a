//! The admin token: where it comes from, and its check on every management call.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The environment variable holding the admin token.
pub const TOKEN_ENV: &str = "GATEWAY_ADMIN_TOKEN";

/// Shortest accepted admin token, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The bearer token of the management API. `Debug` never shows it.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

/// Where the token came from: a generated one is printed once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `GATEWAY_ADMIN_TOKEN`.
    Environment,
    /// `--admin-token-file`.
    File,
    /// Random, made at start.
    Generated,
}

impl AdminToken {
    /// A token given by the operator.
    pub fn new(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.len() < MIN_TOKEN_BYTES {
            return Err(format!("the admin token must be at least {MIN_TOKEN_BYTES} characters"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the admin token must be printable ASCII without spaces".into());
        }
        Ok(Self(token.into()))
    }

    /// 32 random bytes, hex.
    pub fn generate() -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "no randomness for the admin token".to_owned())?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into()))
    }

    /// The token from `GATEWAY_ADMIN_TOKEN`, else from `file`, else a generated one.
    pub fn resolve(file: Option<&Path>) -> Result<(Self, TokenOrigin), String> {
        if let Ok(value) = std::env::var(TOKEN_ENV) {
            return Self::new(&value)
                .map(|t| (t, TokenOrigin::Environment))
                .map_err(|e| format!("{TOKEN_ENV}: {e}"));
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--admin-token-file {}: {e}", path.display()))?;
            return Self::new(&text)
                .map(|t| (t, TokenOrigin::File))
                .map_err(|e| format!("--admin-token-file {}: {e}", path.display()));
        }
        Self::generate().map(|t| (t, TokenOrigin::Generated))
    }

    /// The token itself (to print it once).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` value carries this token, compared in constant time.
    fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else { return false };
        let Some(given) = value.strip_prefix(b"Bearer ") else { return false };
        // `ct_eq` on slices of different lengths is false without comparing the bytes;
        // the length of the token is not a secret worth hiding.
        bool::from(given.ct_eq(self.0.as_bytes()))
    }
}

/// Middleware: 401 `ADMIN_UNAUTHORIZED` unless the request carries the admin token.
pub(crate) async fn require_token(
    State(token): State<AdminToken>,
    req: Request,
    next: Next,
) -> Response {
    let authorization = req.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
    if token.admits(authorization) {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = AdminToken::new("0123456789abcdef-secret").unwrap();
        assert!(token.admits(Some(b"Bearer 0123456789abcdef-secret")));
        assert!(!token.admits(Some(b"Bearer 0123456789abcdef-secreT")));
        assert!(!token.admits(Some(b"Bearer 0123456789abcdef-secret ")));
        assert!(!token.admits(Some(b"bearer0123456789abcdef-secret")));
        assert!(!token.admits(Some(b"Basic 0123456789abcdef-secret")));
        assert!(!token.admits(None));
        assert!(AdminToken::new("short").is_err());
        assert_eq!(format!("{token:?}"), "AdminToken([redacted])");
    }
}
