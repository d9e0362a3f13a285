//! Local mode's guard. Without an API key sandlotd trusts whoever reaches its loopback
//! address, which includes web pages open in a browser on the same machine: a page can
//! send simple cross-site requests to 127.0.0.1, and a DNS-rebinding page can even read the
//! replies under its own host name. Three checks close that:
//! - the `Host` header must name loopback (a rebinding page's requests carry its own name);
//! - the control plane refuses requests with a foreign `Origin` (pages never hold the key,
//!   so they have no business there; agent routes are governed by CORS and tokens);
//! - a request body must be declared `application/json`, which a page cannot send without a
//!   CORS preflight that sandlotd does not grant.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sandlot_protocol::code;

use super::error::ApiError;
use super::AppState;

pub async fn local_mode(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.cfg.api_key.is_some() {
        return next.run(req).await;
    }
    match check(req.method(), req.uri().path(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

pub(crate) fn check(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    // Every Host value counts, and one that is not text is not loopback.
    for host in headers.get_all(header::HOST) {
        let host = host.to_str().map_or("(not text)", str::trim);
        if !is_loopback_host(host) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                code::FORBIDDEN,
                format!(
                    "Host '{host}' is not a loopback name; a server in local mode (no API key) \
                     answers only requests addressed to localhost"
                ),
            ));
        }
    }
    let agent = path.starts_with("/sandboxes/")
        || path.starts_with("/execute")
        || path.starts_with("/terminal");
    if !agent {
        for origin in headers.get_all(header::ORIGIN) {
            let origin = origin.to_str().map_or("(not text)", str::trim);
            let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if origin == "null" || !is_loopback_host(host) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    code::FORBIDDEN,
                    format!(
                        "requests from the web origin '{origin}' may not use the control plane"
                    ),
                ));
            }
        }
    }
    let has_body = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && (headers.contains_key(header::TRANSFER_ENCODING)
        // A length that does not read as 0 counts as a body, unreadable ones included.
        || headers.get_all(header::CONTENT_LENGTH).iter().any(|n| {
            n.to_str()
                .ok()
                .and_then(|n| n.trim().parse::<u64>().ok())
                != Some(0)
        }));
    let content_type = header_str(headers, header::CONTENT_TYPE);
    // Uploads are multipart. A page can send a multipart form cross-site without a
    // preflight, but not with the Authorization header every agent route requires.
    let upload = path.starts_with("/sandboxes/")
        && path.ends_with("/files/upload")
        && is_multipart(content_type);
    // A sandbox port takes whatever its server takes (forms, uploads); its credentials are
    // a token or a SameSite cookie, which a foreign page cannot send.
    let port = path.starts_with("/sandboxes/") && path.split('/').nth(3) == Some("ports");
    if has_body && !upload && !port && !is_json(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::UNSUPPORTED_MEDIA_TYPE,
            "request bodies must be sent with Content-Type: application/json",
        ));
    }
    Ok(())
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `localhost`, `*.localhost`, a loopback IPv4 or `[::1]`, with or without a numeric port.
/// Anything else, including what is not a well-formed `host[:port]`, is not loopback.
pub(super) fn is_loopback_host(host_port: &str) -> bool {
    let (host, port) = match host_port.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((host, "")) => (host, ""),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(port) => (host, port),
                None => return false,
            },
            None => return false,
        },
        None => host_port.split_once(':').unwrap_or((host_port, "")),
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
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

pub(super) fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn is_multipart(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("multipart/form-data")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_with_and_without_ports() {
        for ok in [
            "localhost",
            "localhost:7070",
            "127.0.0.1:7070",
            "127.9.9.9",
            "[::1]:80",
            "a.localhost",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7070",
            "10.0.0.1",
            "[fe80::1]:80",
            "localhost.evil.example",
            // Found by fuzz/ (fuzz_query_and_guard): text after `]` or a port that is not
            // a number used to be ignored.
            "[::1]e:7070",
            "[::1",
            "localhost:evil.example",
            "::1:80",
            "a/b.localhost",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn json_content_types_only() {
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(None));
    }

    /// Only the first Host used to be checked, and a Host or Origin that was not text was
    /// taken as absent (seen while writing fuzz_query_and_guard, which checks every value).
    #[test]
    fn every_host_and_origin_value_is_checked() {
        let check_with = |headers: &[(&str, &[u8])]| {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(
                    header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    header::HeaderValue::from_bytes(value).unwrap(),
                );
            }
            check(&Method::GET, "/v1/sandboxes", &map).map_err(|e| e.status)
        };
        assert_eq!(check_with(&[("host", b"localhost:7070")]), Ok(()));
        assert_eq!(
            check_with(&[("host", b"localhost"), ("host", b"evil.example")]),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check_with(&[("host", b"evil.\xe9xample")]),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check_with(&[
                ("host", b"localhost"),
                ("origin", b"http://\xe9vil.example")
            ]),
            Err(StatusCode::FORBIDDEN)
        );
    }

    /// Found by fuzz/ (fuzz_query_and_guard, libFuzzer): a Content-Length that was not text
    /// (or another non-"0" spelling) let a body through without a JSON content type. hyper
    /// refuses such lengths first, but the guard must not depend on it.
    #[test]
    fn a_length_that_is_not_zero_is_a_body() {
        let check_with = |length: &[u8]| {
            let mut map = HeaderMap::new();
            map.insert(header::HOST, header::HeaderValue::from_static("localhost"));
            map.insert(
                header::CONTENT_LENGTH,
                header::HeaderValue::from_bytes(length).unwrap(),
            );
            check(&Method::DELETE, "/v1/sandboxes/x", &map).map_err(|e| e.status)
        };
        assert_eq!(check_with(b"0"), Ok(()));
        assert_eq!(check_with(b"00"), Ok(()));
        for body in [&b"] \xb2"[..], b"5", b"", b"-0", b"0, 0"] {
            assert_eq!(
                check_with(body),
                Err(StatusCode::UNSUPPORTED_MEDIA_TYPE),
                "{body:?}"
            );
        }
    }
}
