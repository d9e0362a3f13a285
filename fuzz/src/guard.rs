//! `fuzz_query_and_guard`: query strings and the local-mode guard (Host, Origin,
//! Content-Type).

use arbitrary::Unstructured;
use sandlot_protocol as wire;
use sandlot_server::fuzzing as server;
use serde::{Deserialize, Serialize};

/// `GET /v1/sandboxes`' query as a client writes it.
#[derive(Debug, PartialEq, Serialize, Deserialize, arbitrary::Arbitrary)]
struct ControlListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

/// `GET /execute/processes`' query as a client writes it.
#[derive(Debug, PartialEq, Serialize, Deserialize, arbitrary::Arbitrary)]
struct AgentListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<bool>,
}

/// Query strings and path parameters of the control plane and the agent, and local mode's
/// guard. The first byte picks the mode (`c`, `a`, `r`, `t`, `g`; others by value):
/// - `c` / `a` + a query string: the control plane's / agent's list query, read as the
///   server reads it (`QueryParams`); a refusal is a 400 `INVALID_REQUEST`, then the status
///   filter is parsed as the handlers parse it.
/// - `r` + bytes: both list queries built from the bytes, encoded as a client encodes them:
///   the server accepts them and they read back equal.
/// - `t` + a name: a template path parameter (`/v1/templates/{name}`, create's template).
/// - `g` + a request head (`METHOD PATH`, then `Name: value` lines): local mode's guard. What
///   it lets through has only loopback `Host`s, no foreign `Origin` on the control plane,
///   and a body only with a JSON content type, never one a web page could send without a
///   CORS preflight.
pub fn query_and_guard(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mode = match mode {
        b'c' | b'a' | b'r' | b't' | b'g' => mode,
        other => b"cartg"[other as usize % 5],
    };
    let text = String::from_utf8_lossy(rest);
    match mode {
        b'c' => {
            assert_refusal(server::control_list_query(&text));
            if let Ok(q) = server::parse_query::<ControlListQuery>(&text) {
                if let Some(status) = q.status.as_deref() {
                    if let Some(s) = wire::SandboxStatus::parse(status) {
                        assert_eq!(s.as_str(), status);
                    }
                }
            }
        }
        b'a' => {
            assert_refusal(server::agent_list_query(&text));
            if let Ok(q) = server::parse_query::<AgentListQuery>(&text) {
                for s in q.status.as_deref().unwrap_or_default().split(',') {
                    if let Some(parsed) = wire::ProcessStatus::parse(s.trim()) {
                        assert_eq!(parsed.as_str(), s.trim());
                    }
                }
            }
        }
        b'r' => {
            let mut u = Unstructured::new(rest);
            if let Ok(q) = u.arbitrary::<ControlListQuery>() {
                let encoded = serde_urlencoded::to_string(&q).expect("encodes");
                assert!(
                    server::control_list_query(&encoded).is_ok(),
                    "the server refused a well-formed query: {encoded}"
                );
                assert_eq!(
                    server::parse_query::<ControlListQuery>(&encoded).ok(),
                    Some(q)
                );
            }
            if let Ok(q) = u.arbitrary::<AgentListQuery>() {
                let encoded = serde_urlencoded::to_string(&q).expect("encodes");
                assert!(
                    server::agent_list_query(&encoded).is_ok(),
                    "the server refused a well-formed query: {encoded}"
                );
                assert_eq!(
                    server::parse_query::<AgentListQuery>(&encoded).ok(),
                    Some(q)
                );
            }
        }
        b't' => {
            if let Some(name) = server::find_template(&text) {
                assert!(text == name || text == "1" || text == "2");
            }
        }
        _ => guard(rest),
    }
}

fn assert_refusal(result: Result<String, server::Refusal>) {
    if let Err((status, code, _)) = result {
        assert_eq!(status, 400);
        assert_eq!(code, wire::code::INVALID_REQUEST);
    }
}

fn guard(head: &[u8]) {
    let mut lines = head.split(|&b| b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    let (method, path) = match request_line.iter().position(|&b| b == b' ') {
        Some(i) => (&request_line[..i], &request_line[i + 1..]),
        None => (request_line, &b"/"[..]),
    };
    let path = String::from_utf8_lossy(path);
    let headers: Vec<(Vec<u8>, Vec<u8>)> = lines
        .filter_map(|line| {
            let i = line.iter().position(|&b| b == b':')?;
            let value = &line[i + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            Some((line[..i].to_ascii_lowercase(), value.to_vec()))
        })
        .collect();
    let Some(verdict) = server::local_mode_guard(method, &path, &headers) else {
        return;
    };
    if verdict.is_err() {
        return;
    }
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    for host in values("host") {
        assert!(
            names_loopback(host),
            "let through with Host {:?}",
            String::from_utf8_lossy(host)
        );
    }
    let agent = path.starts_with("/sandboxes/") || path.starts_with("/execute");
    if !agent {
        for origin in values("origin") {
            let host = match origin.windows(3).position(|w| w == b"://") {
                Some(i) => &origin[i + 3..],
                None => origin,
            };
            assert!(
                names_loopback(host),
                "control plane let through with Origin {:?}",
                String::from_utf8_lossy(origin)
            );
        }
    }
    let has_body = matches!(method, b"POST" | b"PUT" | b"PATCH" | b"DELETE")
        && (values("transfer-encoding").next().is_some()
            || values("content-length").any(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    != Some(0)
            }));
    if has_body {
        let content_type = values("content-type").next();
        assert!(
            content_type.is_some_and(|ct| !fetch_safelisted_content_type(ct)),
            "a body a web page can send without a preflight was let through: {:?}",
            content_type.map(String::from_utf8_lossy)
        );
    }
}

/// Whether `host_port` is an authority (`host` or `host:digits`, IPv6 in brackets) whose
/// host is loopback: `localhost`, a name under `.localhost`, 127.0.0.0/8 or `::1`. An
/// independent reading of what the guard means, so it is checked against it.
fn names_loopback(host_port: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(host_port) else {
        return false;
    };
    let s = s.trim_matches([' ', '\t']);
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return false;
        };
        match after {
            "" => (h, None),
            p => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a browser may send this `Content-Type` without a CORS preflight (the Fetch
/// standard's CORS-safelisted request-header, `content-type` case).
fn fetch_safelisted_content_type(value: &[u8]) -> bool {
    if value.len() > 128 {
        return false;
    }
    let unsafe_byte =
        |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f || b"\"():<>?@[\\]{}".contains(&b);
    if value.iter().any(|&b| unsafe_byte(b)) {
        return false;
    }
    let Ok(s) = std::str::from_utf8(value) else {
        return false;
    };
    let s = s.trim_matches([' ', '\t', '\n', '\r']);
    let Some((kind, rest)) = s.split_once('/') else {
        return false;
    };
    let subtype = rest
        .split(';')
        .next()
        .unwrap_or("")
        .trim_end_matches([' ', '\t', '\n', '\r']);
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !token(kind) || !token(subtype) {
        return false;
    }
    let essence = format!("{kind}/{subtype}").to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
    )
}
