//! Request header rules the gateway applies at the edge, before any API sees the request:
//! names with `_` are dropped, two `Host` headers are refused, and the `Forwarded` and
//! `X-Real-IP` headers are set from the connection (`Hop`), `X-Forwarded-For` appended to.
//!
//! CGI, WSGI, PHP and Rack map `x-user-id` and `x_user_id` to the same `HTTP_X_USER_ID`, so a
//! client-sent `x_user_id` would sit beside a claim header the gateway injected (or an
//! `x-forwarded-for` it set). Like nginx (`underscores_in_headers off`), every request header
//! whose name holds `_` is dropped, which covers the alias of every header the gateway owns.
//!
//! A leaf module: imports nothing from the gateway.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

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

/// Append `;host=` and `text` as a `Forwarded` parameter value (RFC 7239): a token when it
/// is one, a quoted string otherwise, and nothing at all when it cannot be quoted.
fn push_host_param(out: &mut String, text: &str) {
    let token = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        out.push_str(";host=");
        out.push_str(text);
    } else if !text.bytes().any(|b| b == b'"' || b == b'\\' || !(b == b' ' || b.is_ascii_graphic()))
    {
        out.push_str(";host=\"");
        out.push_str(text);
        out.push('"');
    }
}

/// Append the text of `ip` to `out` (`192.0.2.1`, `2001:db8::1`). IPv4, the common case, is
/// written digit by digit: `Ipv4Addr`'s `Display` goes through the formatting machinery and an
/// intermediate buffer, which showed in profiles of the proxy path (once per header set).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        // Writing to a `String` cannot fail.
        IpAddr::V6(ip) => drop(write!(out, "{ip}")),
    }
}

/// One value for `name`: the values already present that are text, in order, then this hop's
/// `element`, separated by `, ` (how a proxy appends itself to `Forwarded` and
/// `X-Forwarded-For`). `None` when the result is not a valid header value.
fn appended(
    headers: &HeaderMap,
    name: &HeaderName,
    element: impl FnOnce(&mut String),
) -> Option<HeaderValue> {
    let mut value = String::with_capacity(64);
    for previous in headers.get_all(name) {
        if let Ok(previous) = previous.to_str() {
            value.push_str(previous);
            value.push_str(", ");
        }
    }
    element(&mut value);
    HeaderValue::try_from(value).ok()
}

/// `X-Forwarded-For`, which gets the client's address appended.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One client connection as this hop shows it: the peer, and the header values that depend on
/// it alone, made once per connection instead of once per request.
#[derive(Debug)]
pub(crate) struct Hop {
    peer: SocketAddr,
    /// The peer's address as text: `X-Real-IP`, and `X-Forwarded-For` when the request has none.
    ip: Option<HeaderValue>,
    /// `Forwarded` for the first `Host` of the connection, when the request had no `Forwarded`:
    /// every request of a connection usually sends the same `Host`.
    forwarded: OnceLock<(Option<HeaderValue>, Option<HeaderValue>)>,
}

impl Hop {
    pub(crate) fn new(peer: SocketAddr) -> Self {
        let mut ip = String::with_capacity(15);
        push_ip(&mut ip, peer.ip());
        Self { peer, ip: HeaderValue::try_from(ip).ok(), forwarded: OnceLock::new() }
    }

    /// This hop's `Forwarded` element: `for` is the peer, `host` the request's `Host`, `proto`
    /// `http`.
    fn element(&self, host: Option<&str>, element: &mut String) {
        let ip = self.peer.ip();
        element.push_str("for=");
        if ip.is_ipv4() {
            push_ip(element, ip);
        } else {
            element.push_str("\"[");
            push_ip(element, ip);
            element.push_str("]\"");
        }
        if let Some(host) = host {
            push_host_param(element, host);
        }
        element.push_str(";proto=http");
    }
}

/// Append this hop to `Forwarded` and `X-Forwarded-For`, and set `X-Real-IP` to the client's
/// address. `host` is the `Host` the client sent.
pub(crate) fn set_forwarded(headers: &mut HeaderMap, hop: &Hop, host: Option<&HeaderValue>) {
    let shown_host = host.and_then(|host| host.to_str().ok());
    let appended_hop = |headers: &HeaderMap| {
        appended(headers, &FORWARDED, |element| hop.element(shown_host, element))
    };
    let forwarded = if headers.contains_key(FORWARDED) {
        appended_hop(headers)
    } else {
        let (for_host, value) =
            hop.forwarded.get_or_init(|| (host.cloned(), appended_hop(headers)));
        if for_host.as_ref() == host { value.clone() } else { appended_hop(headers) }
    };
    match forwarded {
        Some(value) => headers.insert(FORWARDED, value),
        None => headers.remove(FORWARDED),
    };
    let forwarded_for = if headers.contains_key(X_FORWARDED_FOR) {
        appended(headers, &X_FORWARDED_FOR, |element| push_ip(element, hop.peer.ip()))
    } else {
        hop.ip.clone()
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if let Some(ip) = &hop.ip {
        headers.insert(X_REAL_IP, ip.clone());
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
        let hop = Hop::new("[::1]:9".parse().expect("addr"));
        set_forwarded(&mut headers, &hop, Some(&HeaderValue::from_static("gw:8080")));
        assert_eq!(headers[FORWARDED], "for=1.2.3.4, for=\"[::1]\";host=\"gw:8080\";proto=http");
        assert_eq!(headers[X_REAL_IP], "::1");
    }

    #[test]
    fn ip_text_is_display() {
        for ip in ["0.0.0.0", "127.0.0.1", "10.20.100.255", "192.168.9.99", "::1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().expect("ip");
            let mut text = String::new();
            push_ip(&mut text, ip);
            assert_eq!(text, ip.to_string());
        }
    }

    #[test]
    fn forwarded_host_is_token_quoted_or_left_out() {
        let peer: SocketAddr = "10.0.0.1:9".parse().expect("addr");
        for (host, expected) in [
            (Some("gw"), "for=10.0.0.1;host=gw;proto=http"),
            (Some("gw:8080"), "for=10.0.0.1;host=\"gw:8080\";proto=http"),
            (Some("a\"b"), "for=10.0.0.1;proto=http"),
            (Some(""), "for=10.0.0.1;host=\"\";proto=http"),
            (None, "for=10.0.0.1;proto=http"),
        ] {
            let mut headers = HeaderMap::new();
            let host = host.map(HeaderValue::from_static);
            set_forwarded(&mut headers, &Hop::new(peer), host.as_ref());
            assert_eq!(headers[FORWARDED], expected, "{host:?}");
            assert_eq!(headers[X_REAL_IP], "10.0.0.1");
        }
    }

    #[test]
    fn one_connection_hop_gives_each_request_its_own_values() {
        let hop = Hop::new("10.0.0.1:9".parse().expect("addr"));
        let gw = HeaderValue::from_static("gw");
        let other = HeaderValue::from_static("other");
        for (host, previous, forwarded, forwarded_for) in [
            (Some(&gw), None, "for=10.0.0.1;host=gw;proto=http", "10.0.0.1"),
            (Some(&gw), None, "for=10.0.0.1;host=gw;proto=http", "10.0.0.1"),
            (Some(&other), None, "for=10.0.0.1;host=other;proto=http", "10.0.0.1"),
            (None, None, "for=10.0.0.1;proto=http", "10.0.0.1"),
            (
                Some(&gw),
                Some("9.9.9.9"),
                "for=9.9.9.9, for=10.0.0.1;host=gw;proto=http",
                "9.9.9.9, 10.0.0.1",
            ),
            (Some(&gw), None, "for=10.0.0.1;host=gw;proto=http", "10.0.0.1"),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(previous) = previous {
                headers.insert(
                    FORWARDED,
                    HeaderValue::from_str(&format!("for={previous}")).expect("value"),
                );
                headers.insert(X_FORWARDED_FOR, HeaderValue::from_static(previous));
            }
            set_forwarded(&mut headers, &hop, host);
            assert_eq!(headers[FORWARDED], forwarded);
            assert_eq!(headers[X_FORWARDED_FOR], forwarded_for);
            assert_eq!(headers[X_REAL_IP], "10.0.0.1");
        }
    }
}
