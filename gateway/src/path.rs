//! The canonical request path: the one spelling of a path that the gateway routes on,
//! authorises and forwards, so that a backend which decodes or normalises paths sees the
//! resource that was routed and authorised, and no other.
//!
//! # The rule
//!
//! 1. **Normalise.** Percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`, RFC 3986
//!    section 2.3) are decoded (`/shop/%61dmin` is `/shop/admin`); every other
//!    percent-encoding is kept, with upper-case hex digits (`%2f` is `%2F`). A `%` not
//!    followed by two hex digits, a byte outside printable ASCII or a path that does not start
//!    with `/` cannot be normalised: 400 `BAD_PATH`.
//! 2. **Route.** The longest context path whose segments equal the first segments of the
//!    normalised path, each compared without its `;` parameters. No match: 404 `NO_ROUTE`.
//! 3. **Refuse what stays ambiguous** (400 `BAD_PATH`), because backends disagree on it:
//!    a `.` or `..` segment, encoded or not, with or without `;` parameters (`..;`);
//!    an encoded `/` or `\` (`%2F`, `%5C`) or a literal `\`; an encoded NUL (`%00`);
//!    an empty segment (`//`) anywhere but at the end; a `;` in a segment of the context path.
//! 4. **Forward** the normalised path, minus the context path, after the backend's base path.
//!
//! A leaf module: imports nothing from the gateway.

use std::borrow::Cow;

/// Why a path was refused with 400 `BAD_PATH`; the message the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPath(pub(crate) &'static str);

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Step 1 of the rule: decode percent-encoded unreserved characters, upper-case the hex of
/// the other percent-encodings. A path without `%` (nearly every request) is borrowed as is.
pub(crate) fn normalize(raw: &str) -> Result<Cow<'_, str>, BadPath> {
    if !raw.starts_with('/') {
        return Err(BadPath("the path must start with `/`"));
    }
    let bytes = raw.as_bytes();
    if !bytes.contains(&b'%') {
        if bytes.iter().all(u8::is_ascii_graphic) {
            return Ok(Cow::Borrowed(raw));
        }
        return Err(BadPath("the path has a byte outside printable ASCII"));
    }
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(BadPath("malformed percent-encoding in the path"));
            };
            let decoded = high * 16 + low;
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(high)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(low)]));
            }
            i += 3;
        } else if byte.is_ascii_graphic() {
            out.push(char::from(byte));
            i += 1;
        } else {
            return Err(BadPath("the path has a byte outside printable ASCII"));
        }
    }
    Ok(Cow::Owned(out))
}

/// Whether `haystack` contains `needle`, ASCII letters compared without case.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The view of a normalised path that routes are matched on: each segment without its `;`
/// parameters.
pub(crate) fn routing_view(path: &str) -> Cow<'_, str> {
    if !path.contains(';') {
        return Cow::Borrowed(path);
    }
    let segments: Vec<&str> =
        path.split('/').map(|segment| segment.split(';').next().unwrap_or("")).collect();
    Cow::Owned(segments.join("/"))
}

/// Step 3 of the rule, for a normalised path routed to the context path `prefix` (without its
/// trailing `/`, `""` for `/`).
pub(crate) fn check_routed(path: &str, prefix: &str) -> Result<(), BadPath> {
    // Compared without case rather than on an upper-cased copy: this runs for every request,
    // and most paths have no `%` at all.
    let encoded = path.contains('%');
    let encoded_separator = encoded
        && (contains_ignore_ascii_case(path, "%2F") || contains_ignore_ascii_case(path, "%5C"));
    if encoded_separator || path.contains('\\') {
        return Err(BadPath("encoded `/` or `\\` in the path"));
    }
    if encoded && path.contains("%00") {
        return Err(BadPath("NUL in the path"));
    }
    // Bytes rather than `str` patterns: the rule's characters are ASCII, and this scan runs
    // for every request.
    let mut segments = path.as_bytes().split(|&b| b == b'/').skip(1).peekable();
    let prefix_segments = prefix.bytes().filter(|&b| b == b'/').count();
    let mut index = 0;
    while let Some(segment) = segments.next() {
        let parameters = segment.iter().position(|&b| b == b';');
        let name = &segment[..parameters.unwrap_or(segment.len())];
        if name == b"." || name == b".." {
            return Err(BadPath("paths with `.` or `..` segments are refused"));
        }
        if segment.is_empty() && segments.peek().is_some() {
            return Err(BadPath("empty segments (`//`) in the path are refused"));
        }
        if index < prefix_segments && parameters.is_some() {
            return Err(BadPath("`;` parameters in the context path are refused"));
        }
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The segment rule of `check_routed` as first written, on `str` patterns: the byte scan
    /// must agree with it on every short path over the characters the rule looks at.
    fn segments_as_first_written(path: &str, prefix: &str) -> bool {
        let mut segments = path.split('/').skip(1).peekable();
        let prefix_segments = prefix.split('/').skip(1).count();
        let mut index = 0;
        while let Some(segment) = segments.next() {
            let name = segment.split(';').next().unwrap_or("");
            let refused = name == "."
                || name == ".."
                || (segment.is_empty() && segments.peek().is_some())
                || (index < prefix_segments && segment.contains(';'));
            if refused {
                return false;
            }
            index += 1;
        }
        true
    }

    #[test]
    fn the_segment_scan_agrees_with_the_rule_as_first_written() {
        let alphabet = ['/', '.', ';', 'a'];
        let mut level = vec![String::from("/")];
        let mut paths = level.clone();
        for _ in 0..6 {
            level = level
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            paths.extend(level.iter().cloned());
        }
        for prefix in ["", "/a", "/a/a", "/a;a"] {
            for path in &paths {
                let expected = segments_as_first_written(path, prefix);
                assert_eq!(check_routed(path, prefix).is_ok(), expected, "{path} under {prefix}");
            }
        }
    }

    #[test]
    fn normalize_decodes_unreserved_only() {
        assert_eq!(normalize("/shop/%61dmin/%7e%2d").as_deref(), Ok("/shop/admin/~-"));
        assert_eq!(normalize("/a%2fb%20c").as_deref(), Ok("/a%2Fb%20c"));
        assert_eq!(normalize("/%2e%2E/x").as_deref(), Ok("/../x"));
        for bad in ["/a%", "/a%4", "/a%zz", "x", "", "/\u{e9}"] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn routed_paths_are_refused_when_ambiguous() {
        for ok in ["/shop", "/shop/", "/shop/a;v=1/b", "/shop/a..b/.c", "/"] {
            assert_eq!(check_routed(ok, "/shop"), Ok(()), "{ok}");
        }
        for bad in [
            "/shop/a%2Fb",
            "/shop/a%5Cb",
            "/shop/a\\b",
            "/shop/a%00",
            "/shop/../x",
            "/shop/./x",
            "/shop/..;/x",
            "/shop//x",
            "/shop;x/y",
        ] {
            assert!(check_routed(bad, "/shop").is_err(), "{bad}");
        }
        assert!(check_routed("/a;x/b", "").is_ok());
        assert_eq!(routing_view("/shop;x/admin;y=1/z"), "/shop/admin/z");
    }
}
