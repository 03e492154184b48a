//! Finding the bearer token in a request: the `Authorization` header (RFC 6750 §2.1), and, only
//! when explicitly enabled, a query parameter or a cookie.
//!
//! The rules are strict on purpose. The scheme is matched case-insensitively, then exactly one
//! space, then a `token68`; anything else after `Bearer` (tabs, two spaces, trailing spaces) is
//! a malformed token, not "no token". Another scheme (`Basic ...`) counts as no bearer token.
//! More than one token anywhere in the request is refused, so two parties can never disagree
//! about which token authorised a request. The token is borrowed from the request, never copied.

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderMap, Uri};

use crate::defaults::DEFAULT_MAX_TOKEN_BYTES;
use crate::error::{AuthError, AuthErrorKind, InvalidReason};

/// Where the layer looks for the token, and how large it may be.
///
/// The default reads only the `Authorization: Bearer` header and caps the token at
/// [`DEFAULT_MAX_TOKEN_BYTES`].
///
/// ```
/// use tower_jwt_plan::TokenSource;
///
/// let source = TokenSource::default().with_query_param("access_token").with_max_bytes(4096);
/// assert_eq!(source.max_bytes(), 4096);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    query_param: Option<String>,
    cookie: Option<String>,
    max_bytes: usize,
}

impl Default for TokenSource {
    fn default() -> Self {
        Self { query_param: None, cookie: None, max_bytes: DEFAULT_MAX_TOKEN_BYTES }
    }
}

impl TokenSource {
    /// Also accept the token in this query parameter. Off by default: URLs end up in logs and
    /// `Referer` headers (RFC 6750 §2.3).
    #[must_use]
    pub fn with_query_param(mut self, name: impl Into<String>) -> Self {
        self.query_param = Some(name.into());
        self
    }

    /// Also accept the token in this cookie. Off by default.
    #[must_use]
    pub fn with_cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Cap on the token's length in bytes. Default: [`DEFAULT_MAX_TOKEN_BYTES`].
    #[must_use]
    pub fn with_max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// The configured cap.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The query parameter, when enabled.
    pub fn query_param(&self) -> Option<&str> {
        self.query_param.as_deref()
    }

    /// Find the single token in a request.
    ///
    /// Returns `MissingToken` when there is none, `InvalidToken` when it is malformed, too
    /// large, or when there is more than one.
    ///
    /// ```
    /// use http::Request;
    /// use tower_jwt_plan::{AuthErrorKind, TokenSource};
    ///
    /// let req = Request::builder().header("authorization", "bearer abc.def.ghi").body(()).unwrap();
    /// let (parts, _) = req.into_parts();
    /// assert_eq!(TokenSource::default().extract(&parts.headers, parts.uri.query()).unwrap(), "abc.def.ghi");
    ///
    /// let req = Request::builder().header("authorization", "Basic dXNlcjpwYXNz").body(()).unwrap();
    /// let (parts, _) = req.into_parts();
    /// let err = TokenSource::default().extract(&parts.headers, None).unwrap_err();
    /// assert_eq!(err.kind(), AuthErrorKind::MissingToken);
    /// ```
    pub fn extract<'a>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&'a str>,
    ) -> Result<Cow<'a, str>, AuthError> {
        checked(self.locate(headers, query)?)
    }

    /// [`extract`](Self::extract) without the character check, as bytes: the layer looks the
    /// token up in its cache first (only tokens that passed every check are there), and checks
    /// the others with [`checked`].
    pub(crate) fn locate<'a>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&'a str>,
    ) -> Result<Cow<'a, [u8]>, AuthError> {
        let mut found: Option<Cow<'a, [u8]>> = None;
        let mut push = |token: Cow<'a, [u8]>| -> Result<(), AuthError> {
            if found.is_some() {
                return Err(AuthError::invalid(InvalidReason::MultipleTokens));
            }
            found = Some(token);
            Ok(())
        };

        for value in headers.get_all(AUTHORIZATION) {
            if let Some(token) = bearer(value.as_bytes())? {
                push(Cow::Borrowed(token))?;
            }
        }
        if let (Some(name), Some(query)) = (self.query_param.as_deref(), query) {
            for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                if key == name {
                    push(match percent_decode(value)? {
                        Cow::Borrowed(token) => Cow::Borrowed(token.as_bytes()),
                        Cow::Owned(token) => Cow::Owned(token.into_bytes()),
                    })?;
                }
            }
        }
        if let Some(name) = self.cookie.as_deref() {
            for value in headers.get_all(COOKIE) {
                let Ok(value) = value.to_str() else { continue };
                for pair in value.split(';') {
                    if let Some((key, token)) = pair.trim().split_once('=')
                        && key == name
                    {
                        push(Cow::Borrowed(token.as_bytes()))?;
                    }
                }
            }
        }

        let token = found.ok_or_else(|| AuthError::new(AuthErrorKind::MissingToken))?;
        if token.len() > self.max_bytes {
            return Err(AuthError::invalid(InvalidReason::TooLarge));
        }
        Ok(token)
    }
}

/// The token as text, if it is non-empty and made of RFC 7235 `token68` characters only.
pub(crate) fn checked(token: Cow<'_, [u8]>) -> Result<Cow<'_, str>, AuthError> {
    let malformed = || AuthError::invalid(InvalidReason::Malformed);
    if token.is_empty() || !token.iter().all(|b| TOKEN68[usize::from(*b)]) {
        return Err(malformed());
    }
    // token68 is ASCII, so neither conversion fails.
    match token {
        Cow::Borrowed(bytes) => {
            std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|_| malformed())
        }
        Cow::Owned(bytes) => String::from_utf8(bytes).map(Cow::Owned).map_err(|_| malformed()),
    }
}

impl TokenSource {
    /// The URI without the token's query parameter, if it carried one: a token in a URL ends up
    /// in access logs, so it does not travel further than this layer. Other parameters, their
    /// order and their encoding are kept as they were.
    #[inline]
    pub(crate) fn strip_query_token(&self, uri: &Uri) -> Option<Uri> {
        // Inlined down to this test: without a query parameter, every granted request pays
        // nothing for the rest.
        let name = self.query_param.as_deref()?;
        strip_query_param(name, uri)
    }
}

fn strip_query_param(name: &str, uri: &Uri) -> Option<Uri> {
    let query = uri.query()?;
    let is_token = |kv: &&str| kv.split_once('=').map_or(*kv, |(k, _)| k) == name;
    if !query.split('&').any(|kv| is_token(&kv)) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|kv| !is_token(kv)).collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// `Some(token)` for a bearer credential, `None` for another scheme. Its characters are checked
/// later ([`checked`]), and only if the token is not in the layer's cache.
fn bearer(value: &[u8]) -> Result<Option<&[u8]>, AuthError> {
    let Some((scheme, rest)) = value.split_first_chunk::<6>() else {
        return Ok(None);
    };
    // Every byte of "bearer" is a lowercase letter, which a byte with the case bit (0x20) set
    // equals only if it was that letter in either case: one comparison, not six case folds.
    let [a, b, c, d, e, f] = *scheme;
    let word = u64::from_le_bytes([a, b, c, d, e, f, 0, 0]) | 0x2020_2020_2020;
    if word != u64::from_le_bytes(*b"bearer\0\0") {
        return Ok(None);
    }
    match rest.first() {
        // "Bearer" alone: the scheme was meant, the token is empty.
        None => Err(AuthError::invalid(InvalidReason::Malformed)),
        Some(b' ') => Ok(Some(&rest[1..])),
        Some(c) if c.is_ascii_whitespace() => Err(AuthError::invalid(InvalidReason::Malformed)),
        // "BearerX": some other scheme.
        Some(_) => Ok(None),
    }
}

/// RFC 7235 `token68` characters. A JWS only ever uses the base64url subset and dots; the
/// verifier rejects the rest, but the extractor already refuses whitespace and controls.
const fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// [`is_token68`] as a table: one load per byte of a token that may be several KiB.
static TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_token68(b as u8);
        b += 1;
    }
    table
};

fn percent_decode(value: &str) -> Result<Cow<'_, str>, AuthError> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| AuthError::invalid(InvalidReason::Malformed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn extract(values: &[&str]) -> Result<String, AuthError> {
        TokenSource::default().extract(&headers(values), None).map(Cow::into_owned)
    }

    fn reason(r: Result<String, AuthError>) -> Option<InvalidReason> {
        r.unwrap_err().reason()
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(extract(&[&format!("{scheme} a.b.c")]).unwrap(), "a.b.c");
        }
    }

    #[test]
    fn other_schemes_and_no_header_are_missing() {
        for v in [&["Basic dXNlcjpwYXNz"][..], &[], &["BearerX a.b.c"], &["Token a.b.c"]] {
            assert_eq!(extract(v).unwrap_err().kind(), AuthErrorKind::MissingToken, "{v:?}");
        }
    }

    #[test]
    fn sloppy_bearer_syntax_is_malformed() {
        for v in
            ["Bearer", "Bearer ", "Bearer  a.b.c", "Bearer\ta.b.c", "Bearer a.b.c ", "Bearer a b"]
        {
            assert_eq!(reason(extract(&[v])), Some(InvalidReason::Malformed), "{v:?}");
        }
    }

    /// The characters are checked after the cache lookup now; obs-text is still refused.
    #[test]
    fn obs_text_and_non_token68_bytes_are_malformed() {
        for value in [&b"Bearer a.b.c\xff"[..], b"Bearer \xe9.b.c", b"Bearer a.b,c"] {
            let mut map = HeaderMap::new();
            map.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
            let err = TokenSource::default().extract(&map, None).unwrap_err();
            assert_eq!(err.reason(), Some(InvalidReason::Malformed), "{value:?}");
        }
    }

    #[test]
    fn two_tokens_are_refused_even_if_equal() {
        assert_eq!(
            reason(extract(&["Bearer a.b.c", "Bearer a.b.c"])),
            Some(InvalidReason::MultipleTokens)
        );
        let src = TokenSource::default().with_query_param("access_token");
        let err =
            src.extract(&headers(&["Bearer a.b.c"]), Some("x=1&access_token=a.b.c")).unwrap_err();
        assert_eq!(err.reason(), Some(InvalidReason::MultipleTokens));
    }

    #[test]
    fn query_and_cookie_only_when_enabled() {
        let empty = HeaderMap::new();
        let err = TokenSource::default().extract(&empty, Some("access_token=a.b.c")).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::MissingToken);
        let src = TokenSource::default().with_query_param("access_token");
        assert_eq!(src.extract(&empty, Some("access_token=a.b.c")).unwrap(), "a.b.c");

        let mut cookies = HeaderMap::new();
        cookies.insert(COOKIE, HeaderValue::from_static("theme=dark; jwt=a.b.c"));
        assert_eq!(
            TokenSource::default().extract(&cookies, None).unwrap_err().kind(),
            AuthErrorKind::MissingToken
        );
        assert_eq!(
            TokenSource::default().with_cookie("jwt").extract(&cookies, None).unwrap(),
            "a.b.c"
        );
    }

    #[test]
    fn query_token_is_stripped_and_the_rest_kept() {
        let src = TokenSource::default().with_query_param("access_token");
        let strip = |u: &str| src.strip_query_token(&u.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(strip("/a?x=1&access_token=t&y=%20").as_deref(), Some("/a?x=1&y=%20"));
        assert_eq!(strip("/a?access_token=t").as_deref(), Some("/a"));
        assert_eq!(strip("/a?x=1"), None);
        assert_eq!(
            TokenSource::default().strip_query_token(&"/a?access_token=t".parse().unwrap()),
            None
        );
    }

    #[test]
    fn size_cap_applies() {
        let long = format!("Bearer {}", "a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1));
        assert_eq!(reason(extract(&[&long])), Some(InvalidReason::TooLarge));
        let fits = format!("Bearer {}", "a".repeat(DEFAULT_MAX_TOKEN_BYTES));
        assert!(extract(&[&fits]).is_ok());
    }
}
