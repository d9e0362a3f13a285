//! The API's own input handling, callable without a server, for the fuzz targets
//! (`crate::fuzzing`, `fuzz/` at the repository root). Each hook runs the very function a
//! request goes through; none of them is an API.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::{agent, body, control, guard, stream};

/// How the API refuses an input: HTTP status, error code and message.
pub type Refusal = (u16, &'static str, String);

fn refusal(e: ApiError) -> Refusal {
    (e.status.as_u16(), e.code, e.message)
}

/// A request body as `JsonBody<T>` reads it (after the size bound).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    body::parse_json(bytes).map_err(refusal)
}

/// A query string (without `?`) as `QueryParams<T>` reads it.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Refusal> {
    body::parse_query(query).map_err(refusal)
}

/// `GET /v1/sandboxes`'s query (`limit`, `cursor`, `status`), shown with `Debug`.
pub fn control_list_query(query: &str) -> Result<String, Refusal> {
    parse_query::<control::ListQuery>(query).map(|q| format!("{q:?}"))
}

/// `GET /execute/processes`'s query (`status`, `name`, `output`), shown with `Debug`.
pub fn agent_list_query(query: &str) -> Result<String, Refusal> {
    parse_query::<agent::ListQuery>(query).map(|q| format!("{q:?}"))
}

/// Where `GET /execute/processes/{pid}/stream` resumes for this query string and
/// `Last-Event-ID` header value. `None` for a header value hyper would refuse.
pub fn resume_after(query: &str, last_event_id: Option<&[u8]>) -> Option<Result<u64, Refusal>> {
    let mut headers = HeaderMap::new();
    if let Some(value) = last_event_id {
        headers.insert("last-event-id", HeaderValue::from_bytes(value).ok()?);
    }
    Some(parse_query::<stream::SinceQuery>(query).map(|q| stream::resume_after(&q, &headers)))
}

/// Local mode's guard on a request line and its headers. `None` for a method, header name
/// or value that hyper refuses before any handler runs.
pub fn local_mode_guard(
    method: &[u8],
    path: &str,
    headers: &[(Vec<u8>, Vec<u8>)],
) -> Option<Result<(), Refusal>> {
    let method = Method::from_bytes(method).ok()?;
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name).ok()?,
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    Some(guard::check(&method, path, &map).map_err(refusal))
}

/// Whether local mode takes this `Host` (or `Origin` host) as loopback.
pub fn is_loopback_host(host_port: &str) -> bool {
    guard::is_loopback_host(host_port)
}

/// Whether local mode takes this `Content-Type` as JSON.
pub fn is_json(content_type: Option<&str>) -> bool {
    guard::is_json(content_type)
}
