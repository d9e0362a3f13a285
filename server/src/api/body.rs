//! Request bodies and query strings with errors in our format: malformed JSON is
//! `INVALID_JSON` (400), wrong types `INVALID_REQUEST` (400), a body over the limit
//! `PAYLOAD_TOO_LARGE` (413), a query string that does not parse `INVALID_REQUEST` (400).

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use futures_util::StreamExt;
use sandlot_protocol::code;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;

pub struct JsonBody<T>(pub T);

/// How much of an oversized body is read and thrown away before the 413 goes out. Clients
/// that send the whole body before reading (Python's urllib does) then see the answer
/// instead of a broken pipe; past this, the connection is closed on them.
const DRAIN_MAX_BYTES: usize = 32 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

impl<T> FromRequest<AppState> for JsonBody<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_bounded(req, state.cfg.max_body_bytes).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A request body read into `T`: empty or whitespace-only is `{}`, malformed JSON is
/// `INVALID_JSON`, wrong types `INVALID_REQUEST` (the fuzz targets call this too).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::bad_request(code::INVALID_REQUEST, format!("invalid request: {e}"))
        }
        _ => ApiError::bad_request(code::INVALID_JSON, format!("invalid JSON body: {e}")),
    })
}

fn too_large(limit: usize) -> ApiError {
    ApiError {
        close_connection: true,
        ..ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::PAYLOAD_TOO_LARGE,
            format!("Request body is too large (at most {limit} bytes)"),
        )
    }
}

/// Reads a body of at most `limit` bytes. A larger one is drained (within bounds) and
/// answered 413 with `Connection: close`.
async fn read_bounded(req: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > (limit + DRAIN_MAX_BYTES) as u64) {
        return Err(too_large(limit));
    }
    let mut body = req.into_body().into_data_stream();
    let mut buf = Vec::new();
    let mut over = declared.is_some_and(|n| n > limit as u64);
    let mut drained = 0usize;
    let drain_until = tokio::time::Instant::now() + DRAIN_MAX_TIME;
    loop {
        let next = if over {
            match tokio::time::timeout_at(drain_until, body.next()).await {
                Ok(next) => next,
                Err(_) => break,
            }
        } else {
            body.next().await
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                code::INVALID_REQUEST,
                format!("could not read the request body: {e}"),
            )
        })?;
        if !over && buf.len() + chunk.len() > limit {
            over = true;
            buf = Vec::new();
        }
        if over {
            drained += chunk.len();
            if drained > DRAIN_MAX_BYTES {
                break;
            }
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    if over {
        return Err(too_large(limit));
    }
    Ok(buf)
}

/// A query string read into `T`; what does not parse is a JSON 400, never axum's plain text.
pub struct QueryParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(QueryParams)
    }
}

/// A query string (without the `?`) read into `T`; what does not parse is `INVALID_REQUEST`.
pub(super) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(code::INVALID_REQUEST, format!("invalid query: {e}")))
}

/// Path parameters read into `T`, with our error body when they do not parse.
pub struct PathParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParams(v))
            .map_err(|e| ApiError::bad_request(code::INVALID_REQUEST, e.body_text()))
    }
}
