//! The README's "The tutorial, step by step": its curl lines are read from README.md and run,
//! in order, against the demo binary, each expecting the status written at its end.

use std::collections::HashMap;

use super::*;

/// The curl lines of the tutorial section.
fn tutorial_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme.find("## The tutorial, step by step").expect("the tutorial section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end].lines().filter(|l| l.starts_with("curl ")).map(str::to_owned).collect()
}

/// Expand `$NAME` and `${NAME}` from `vars`.
fn expand(text: &str, vars: &HashMap<String, String>, out: &mut String) {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
            let close = inner.find('}').expect("closing brace");
            (&inner[..close], &inner[close + 1..])
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..len], &after[len..])
        };
        out.push_str(vars.get(name).unwrap_or_else(|| panic!("unknown variable ${name}")));
        rest = tail;
    }
    out.push_str(rest);
}

/// Split a command line as a POSIX shell would for these lines: words of bare, '...' and
/// "..." parts (variables expanded outside single quotes), no escapes.
fn words(line: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' => word.extend(chars.by_ref().take_while(|&c| c != '\'')),
                '"' => {
                    let part: String = chars.by_ref().take_while(|&c| c != '"').collect();
                    expand(&part, vars, &mut word);
                }
                _ => {
                    let mut part = String::from(c);
                    while let Some(&c) = chars.peek() {
                        if c.is_whitespace() || c == '\'' || c == '"' {
                            break;
                        }
                        part.push(c);
                        chars.next();
                    }
                    expand(&part, vars, &mut word);
                }
            }
        }
        words.push(word);
    }
}

/// One curl line as a request, and the status it must answer.
fn request_of(line: &str, vars: &HashMap<String, String>) -> (Request<ClientBody>, u16, String) {
    let (command, expected) = line.rsplit_once(" # ").expect("a `# STATUS` at the end");
    let expected: u16 = expected.trim().parse().expect("a status number");
    let words = words(command, vars);
    assert_eq!(words[0], "curl");
    let (mut method, mut url, mut body, mut headers) = (None, None, None, Vec::new());
    let mut args = words[1..].iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-s" | "-i" | "-sS" => {}
            "-X" => method = args.next().cloned(),
            "-H" => headers.push(args.next().expect("header").clone()),
            "-d" => body = args.next().cloned(),
            other if other.starts_with("http://") => {
                assert!(url.replace(other.to_owned()).is_none(), "two URLs: {line}");
            }
            other => panic!("unsupported curl argument `{other}` in: {line}"),
        }
    }
    let url = url.expect("a URL");
    // curl's defaults: POST when there is a body, GET otherwise.
    let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
    let mut req = Request::builder().method(method.as_str()).uri(url.as_str());
    for header in headers {
        let (name, value) = header.split_once(':').expect("Name: value");
        req = req.header(name.trim(), value.trim());
    }
    let body = match body {
        Some(text) => {
            serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|e| panic!("-d is not JSON ({e}): {line}"));
            Full::new(Bytes::from(text)).boxed_unsync()
        }
        None => empty(),
    };
    (req.body(body).expect("request"), expected, url)
}

#[tokio::test]
async fn the_readme_tutorial_runs_against_the_demo() {
    let lines = tutorial_lines();
    assert!(lines.len() >= 11, "the tutorial has {} curl lines", lines.len());
    let mut gw = GatewayProcess::spawn(&[]).await;
    let export = gw.wait_for(Stream::Out, 0, |l| l.starts_with("export GW=")).await;
    let vars: HashMap<String, String> = export
        .trim_start_matches("export ")
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(vars.get("GW"), Some(&gw.base));

    for line in &lines {
        let (_, expected, url) = request_of(line, &vars);
        // Sent once, right after the previous answer, as a pasted block would: the instance
        // that took a write serves it before answering it (read your writes).
        let reply = send(request_of(line, &vars).0).await;
        assert_eq!(reply.status.as_u16(), expected, "{line}\n{reply:?}");
        if url.starts_with(&vars["GW"]) && expected == 200 {
            assert_eq!(reply.echoed_header("x-user-id").as_deref(), Some("my-user"));
        }
    }
    gw.signal("TERM");
    assert!(gw.wait_exit().await.success());
}
