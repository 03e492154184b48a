//! Credentials out of messages: the user info of every URL in a text (`scheme://user:pw@host`)
//! is replaced by `***` before a configuration error is shown or logged.
//!
//! A leaf module: imports nothing from the gateway.

/// `text` with the user info of each `scheme://user:password@host` replaced by `***`.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '`' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(user_end) => {
                out.push_str("***");
                out.push_str(&authority[user_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("backend `http://u:s3cret@h:1/p` and http://x@y, ftp://plain/"),
            "backend `http://***@h:1/p` and http://***@y, ftp://plain/"
        );
        assert_eq!(redact_userinfo("no url"), "no url");
    }
}
