//! JSON request bodies with errors in our format: malformed JSON is `INVALID_JSON` (400), a
//! body over the limit is `PAYLOAD_TOO_LARGE` (413). The content type is not required, so
//! `curl -d` works.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use sandlot_protocol::code;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    code::PAYLOAD_TOO_LARGE,
                    "Request body is too large",
                )
            } else {
                ApiError::bad_request(
                    code::INVALID_REQUEST,
                    format!("could not read the request body: {e}"),
                )
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => {
                    ApiError::bad_request(code::INVALID_REQUEST, format!("invalid request: {e}"))
                }
                _ => ApiError::bad_request(code::INVALID_JSON, format!("invalid JSON body: {e}")),
            })
    }
}
