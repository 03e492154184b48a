//! The management API's refusals and its strict body and query extractors.
//!
//! Every refusal is the gateway's JSON shape `{"error", "message", "http_status_code"}`.
//! Bodies are parsed with `serde_path_to_error`, so a bad value names its field
//! (`security: unknown variant ...`), as unknown and missing fields already do.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;
use tower_jwt_plan::catalog::CatalogError;

use super::wire::ErrorBody;

/// Bodies above this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// One refusal of the management API.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// A refusal with its status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 `INVALID_REQUEST`; `message` names the field.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    /// 404 `NOT_FOUND` for a path no route serves.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no management route at this path")
    }

    /// 405 `METHOD_NOT_ALLOWED` for a known path.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "this method is not allowed on this path",
        )
    }

    /// 405 `READ_ONLY_CONFIG`: file mode refuses every write.
    pub fn read_only() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "READ_ONLY_CONFIG",
            "the gateway serves a configuration file (--config): the management API is read-only; edit the file and send SIGHUP",
        )
    }

    /// 401 `ADMIN_UNAUTHORIZED`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "ADMIN_UNAUTHORIZED",
            "a valid admin token is required (Authorization: Bearer <token>)",
        )
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        let message = match &err {
            // The cause (driver text, addresses) stays in the server's log.
            CatalogError::StoreUnavailable(cause) => {
                tracing::warn!(target: "gateway::admin", error = %cause, "catalog store unavailable");
                "the catalog store is unavailable; the gateway keeps serving its last state"
                    .to_owned()
            }
            other => other.to_string(),
        };
        let status = StatusCode::from_u16(err.http_status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, code: err.code(), message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
            http_status_code: self.status.as_u16(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// A JSON body, parsed strictly; an empty body reads as `{}` when `T` allows it.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> JsonBody<T> {
    /// Parse `bytes` as the management API does: 400 `INVALID_REQUEST` naming the field.
    pub fn parse(bytes: &[u8]) -> Result<T, ApiError> {
        parse(bytes)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde_json appends "at line L column C"; the field path is more useful.
        let why = inner.to_string();
        let why = why.split(" at line ").next().unwrap_or_default().to_owned();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("body: not valid JSON ({why})"))
        } else if path == "." {
            ApiError::invalid(format!("body: {why}"))
        } else {
            ApiError::invalid(format!("{path}: {why}"))
        }
    })?;
    de.end().map_err(|_| ApiError::invalid("body: trailing characters after the JSON value"))?;
    Ok(value)
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    format!("body: larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::invalid("body: cannot be read")
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Query parameters, parsed strictly (unknown parameters and bad values are 400).
#[derive(Debug, Clone)]
pub struct StrictQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for StrictQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(StrictQuery).map_err(|err| {
            let path = err.path().to_string();
            let why = err.into_inner().to_string();
            if path == "." {
                ApiError::invalid(format!("query: {why}"))
            } else {
                ApiError::invalid(format!("{path}: {why}"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::wire::PlanInput;

    #[test]
    fn a_bad_value_names_its_field() {
        let err = parse::<PlanInput>(br#"{"name":"G","security":"nope","validation":"auto"}"#)
            .unwrap_err();
        assert!(err.message.starts_with("security: unknown variant"), "{}", err.message);
        let err =
            parse::<PlanInput>(br#"{"name":"G","security":"jwt","validation":"auto","colour":1}"#)
                .unwrap_err();
        assert!(err.message.contains("colour"), "{}", err.message);
        let err = parse::<PlanInput>(
            br#"{"name":"G","security":"jwt","validation":"auto","jwt":{"leeway_secs":"x"}}"#,
        )
        .unwrap_err();
        assert!(err.message.starts_with("jwt.leeway_secs:"), "{}", err.message);
        let err = parse::<PlanInput>(b"{").unwrap_err();
        assert!(err.message.starts_with("body: not valid JSON"), "{}", err.message);
    }
}
