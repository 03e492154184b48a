//! Request header rules the gateway applies at the edge, before any API sees the request:
//! names with `_` are dropped, two `Host` headers are refused, and the `Forwarded` and
//! `X-Real-IP` headers are set from the connection.
//!
//! CGI, WSGI, PHP and Rack map `x-user-id` and `x_user_id` to the same `HTTP_X_USER_ID`, so a
//! client-sent `x_user_id` would sit beside a claim header the gateway injected (or an
//! `x-forwarded-for` it set). Like nginx (`underscores_in_headers off`), every request header
//! whose name holds `_` is dropped, which covers the alias of every header the gateway owns.
//!
//! A leaf module: imports nothing from the gateway.

use std::net::{IpAddr, SocketAddr};

use http::header::{FORWARDED, HOST, HeaderMap, HeaderName, HeaderValue};

/// `X-Real-IP`, set to the client's address.
pub(crate) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Drop every header whose name contains `_`; returns how many names were dropped.
pub(crate) fn drop_underscore_names(headers: &mut HeaderMap) -> usize {
    let names: Vec<HeaderName> =
        headers.keys().filter(|name| name.as_str().contains('_')).cloned().collect();
    for name in &names {
        headers.remove(name);
    }
    names.len()
}

/// Whether the request carries more than one `Host` header (RFC 9112 section 3.2: 400).
pub(crate) fn has_several_hosts(headers: &HeaderMap) -> bool {
    headers.get_all(HOST).iter().nth(1).is_some()
}

/// A `Forwarded` parameter value (RFC 7239): a token when it is one, a quoted string otherwise.
fn forwarded_value(text: &str) -> Option<String> {
    let token = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        return Some(text.to_owned());
    }
    if text.bytes().any(|b| b == b'"' || b == b'\\' || !(b == b' ' || b.is_ascii_graphic())) {
        return None;
    }
    Some(format!("\"{text}\""))
}

/// Append this hop to `Forwarded` (as `x-forwarded-for` is appended to) and set `X-Real-IP`
/// to the client's address: `for` is the peer, `host` the request's `Host`, `proto` `http`.
pub(crate) fn set_forwarded(headers: &mut HeaderMap, peer: SocketAddr, host: Option<&str>) {
    let node = match peer.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("\"[{ip}]\""),
    };
    let mut element = format!("for={node}");
    if let Some(host) = host.and_then(forwarded_value) {
        element.push_str(";host=");
        element.push_str(&host);
    }
    element.push_str(";proto=http");
    let mut chain: Vec<String> = headers
        .get_all(FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    chain.push(element);
    if let Ok(value) = HeaderValue::from_str(&chain.join(", ")) {
        headers.insert(FORWARDED, value);
    } else {
        headers.remove(FORWARDED);
    }
    if let Ok(value) = HeaderValue::from_str(&peer.ip().to_string()) {
        headers.insert(X_REAL_IP, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_is_appended_and_real_ip_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED, HeaderValue::from_static("for=1.2.3.4"));
        headers.insert(X_REAL_IP, HeaderValue::from_static("1.2.3.4"));
        headers.insert("x_real_ip", HeaderValue::from_static("1.2.3.4"));
        assert_eq!(drop_underscore_names(&mut headers), 1);
        set_forwarded(&mut headers, "[::1]:9".parse().expect("addr"), Some("gw:8080"));
        assert_eq!(headers[FORWARDED], "for=1.2.3.4, for=\"[::1]\";host=\"gw:8080\";proto=http");
        assert_eq!(headers[X_REAL_IP], "::1");
    }
}
