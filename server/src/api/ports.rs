//! The port proxy: HTTP (streamed both ways) and WebSocket to a port inside a sandbox, at
//! `<server>/sandboxes/<id>/ports/<port>/<path>` or, with `--preview-domain`, at
//! `http://<port>-<id>.<domain>/<path>`. Works with or without internet access: the
//! connection is opened inside the sandbox's network namespace (`network::ports`), so
//! inbound traffic reaches a sandbox only through here.
//!
//! Credentials: the API key, the sandbox's token (Bearer), or a signed preview token — in
//! the `preview_token` query parameter once (it is then kept in an HttpOnly cookie scoped to
//! the port, so the page's own links and requests work), never forwarded to the sandbox.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use sandlot_protocol::{code, PREVIEW_TOKEN_PARAM};
use tracing::debug;

use super::error::ApiError;
use super::AppState;
use crate::token::TokenError;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1).
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Where a request is going: the sandbox, the port, the path inside, and the path the
/// preview cookie is scoped to.
struct Target {
    id: String,
    port: u16,
    path_and_query: String,
    cookie_path: String,
}

/// `/sandboxes/{id}/ports/{port}[/...]`.
pub async fn by_path(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(5, '/');
    let (_, id, _, port) = (parts.next(), parts.next(), parts.next(), parts.next());
    let rest = parts.next();
    let port = port.and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
    let (Some(id), Some(port)) = (id, port) else {
        return ApiError::bad_request(code::INVALID_REQUEST, "the port must be 1-65535")
            .into_response();
    };
    let prefix = format!("/sandboxes/{id}/ports/{port}");
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let Some(rest) = rest else {
        // Relative links resolve under the port only with the trailing slash.
        return (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, format!("{prefix}/{query}"))],
        )
            .into_response();
    };
    let target = Target {
        id: id.to_string(),
        port,
        path_and_query: format!("/{rest}{query}"),
        cookie_path: prefix,
    };
    proxy(state, target, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Host routing (`<port>-<id>.<preview domain>`): answered here, before any other route.
pub async fn by_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(domain) = state.cfg.preview_domain.as_deref() else {
        return next.run(req).await;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let Some((port, id)) = preview_host(host, domain) else {
        return next.run(req).await;
    };
    let target = Target {
        id,
        port,
        path_and_query: req
            .uri()
            .path_and_query()
            .map_or("/".into(), |p| p.as_str().to_string()),
        cookie_path: "/".into(),
    };
    proxy(state, target, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `8000-<id>.<domain>[:port]` → (8000, id).
fn preview_host(host: &str, domain: &str) -> Option<(u16, String)> {
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let label = host
        .to_ascii_lowercase()
        .strip_suffix(&format!(".{}", domain.to_ascii_lowercase()))?
        .to_string();
    let (port, id) = label.split_once('-')?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| (port, id.into()))
}

fn cookie_name(port: u16) -> String {
    format!("sandlot_preview_{port}")
}

/// What the credentials check leaves to do on the response.
struct Granted {
    /// A preview token arrived in the query: keep it in a cookie.
    set_cookie: Option<String>,
}

fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    t: &Target,
) -> Result<Granted, ApiError> {
    let sandbox = state.node.sandbox(&t.id)?;
    let key = state.cfg.api_key.as_deref();
    let header_value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let key_shown =
        state.cluster_node.is_none() && key.is_some() && header_value("x-api-key") == key;
    if key_shown || super::auth::control_call_headers(headers, state) {
        return Ok(Granted { set_cookie: None });
    }
    let refused = |e: TokenError| match e {
        TokenError::Expired => ApiError::unauthorized(
            code::TOKEN_EXPIRED,
            "This preview link or token has expired; ask for a new one",
        ),
        _ => ApiError::unauthorized(
            code::INVALID_TOKEN,
            "This token does not open this sandbox port",
        ),
    };
    let rotated = || {
        ApiError::unauthorized(
            code::INVALID_TOKEN,
            "This token was replaced by a rotation; ask for a new one",
        )
    };
    if let Some(token) = header_value("authorization")
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    {
        if key == Some(token) {
            return Ok(Granted { set_cookie: None });
        }
        let generation = state.signer.verify(token, &t.id).map_err(refused)?;
        return match sandbox.accepts_token(generation) {
            true => Ok(Granted { set_cookie: None }),
            false => Err(rotated()),
        };
    }
    let from_query = uri.query().and_then(|q| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == PREVIEW_TOKEN_PARAM)
            .map(|(_, v)| v)
    });
    let name = cookie_name(t.port);
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string());
    let Some(token) = from_query.clone().or(from_cookie) else {
        return Err(ApiError::unauthorized(
            code::AUTHENTICATION_REQUIRED,
            "Opening a sandbox port needs the sandbox token (Authorization: Bearer) or a \
             preview link (POST /v1/sandboxes/{id}/preview)",
        ));
    };
    let generation = state
        .signer
        .verify_preview(&token, &t.id, t.port)
        .map_err(refused)?;
    if !sandbox.accepts_token(generation) {
        return Err(rotated());
    }
    Ok(Granted {
        set_cookie: from_query.map(|token| {
            format!(
                "{name}={token}; Path={}; HttpOnly; SameSite=Lax",
                t.cookie_path
            )
        }),
    })
}

async fn proxy(state: AppState, t: Target, mut req: Request) -> Result<Response, ApiError> {
    let granted = authorize(&state, req.headers(), req.uri(), &t)?;
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let stream = state.node.connect_port(&t.id, t.port).await?;
    let unreachable = |e: hyper::Error| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            code::PORT_NOT_REACHABLE,
            format!("the server on port {} in the sandbox failed: {e}", t.port),
        )
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(unreachable)?;
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            r = conn.with_upgrades() => if let Err(e) = r { debug!("port connection: {e}") },
            _ = shutdown.requested() => {}
        }
    });

    let (parts, body) = req.into_parts();
    let mut forwarded = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(strip_preview_param(&t.path_and_query))
        .version(axum::http::Version::HTTP_11);
    let headers = forwarded.headers_mut().expect("a fresh builder");
    copy_headers(&parts.headers, headers, upgrade, t.port);
    headers.insert(
        HeaderName::from_static("x-forwarded-prefix"),
        HeaderValue::from_str(if t.cookie_path == "/" {
            ""
        } else {
            &t.cookie_path
        })
        .unwrap_or(HeaderValue::from_static("")),
    );
    let forwarded = forwarded
        .body(body)
        .map_err(|e| ApiError::bad_request(code::INVALID_REQUEST, e.to_string()))?;
    let mut response = sender.send_request(forwarded).await.map_err(unreachable)?;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let shutdown = state.shutdown.clone();
            tokio::spawn(async move {
                let (Ok(client), Ok(upstream)) = (client_upgrade.await, upstream_upgrade.await)
                else {
                    return;
                };
                let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                    _ = shutdown.requested() => {}
                }
            });
        }
    }
    let (mut parts, body) = response.into_parts();
    if parts.status != StatusCode::SWITCHING_PROTOCOLS {
        for name in HOP_BY_HOP {
            parts.headers.remove(*name);
        }
    }
    if let Some(cookie) = granted
        .set_cookie
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The request's headers minus hop-by-hop ones (kept for an upgrade), sandlotd's
/// credentials, and the preview cookie.
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, upgrade: bool, port: u16) {
    let cookie = cookie_name(port);
    for (name, value) in from {
        let n = name.as_str();
        if n == "authorization" || n == "x-api-key" {
            continue;
        }
        if HOP_BY_HOP.contains(&n) && !(upgrade && (n == "connection" || n == "upgrade")) {
            continue;
        }
        if n == "cookie" {
            let kept: Vec<&str> = value
                .to_str()
                .unwrap_or("")
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.starts_with(&format!("{cookie}=")))
                .collect();
            if !kept.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                    to.append(name.clone(), v);
                }
            }
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// The path and query without the `preview_token` parameter.
fn strip_preview_param(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with(&format!("{PREVIEW_TOKEN_PARAM}=")) && !p.is_empty())
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_hosts_name_a_port_and_a_sandbox() {
        assert_eq!(
            preview_host("8000-abc123.preview.localhost:7070", "preview.localhost"),
            Some((8000, "abc123".into()))
        );
        assert_eq!(preview_host("preview.localhost", "preview.localhost"), None);
        assert_eq!(
            preview_host("x-abc.preview.localhost", "preview.localhost"),
            None
        );
        assert_eq!(
            preview_host("8000-abc.other.test", "preview.localhost"),
            None
        );
    }

    #[test]
    fn the_preview_token_never_reaches_the_sandbox() {
        assert_eq!(strip_preview_param("/a?preview_token=x"), "/a");
        assert_eq!(
            strip_preview_param("/a?b=1&preview_token=x&c=2"),
            "/a?b=1&c=2"
        );
        assert_eq!(strip_preview_param("/a"), "/a");
    }
}
