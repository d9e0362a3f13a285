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

pub(super) fn check(method: &Method, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(host) = header_str(headers, header::HOST) {
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
    let agent = path.starts_with("/sandboxes/") || path.starts_with("/execute");
    if !agent {
        if let Some(origin) = header_str(headers, header::ORIGIN) {
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
        || header_str(headers, header::CONTENT_LENGTH).is_some_and(|n| n != "0"));
    if has_body && !is_json(header_str(headers, header::CONTENT_TYPE)) {
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

/// `localhost`, `*.localhost`, a loopback IPv4 or `[::1]`, with or without a port.
pub(super) fn is_loopback_host(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
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
}
