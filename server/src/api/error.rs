//! API errors and their hybrid JSON bodies (reference §5.1).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sandlot_protocol::code;
use serde_json::json;

use super::context::{self, Plane};
use crate::sandbox::NodeError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn missing(field: &str) -> Self {
        Self::bad_request(
            code::MISSING_PARAMETER,
            format!("missing required field '{field}'"),
        )
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::SandboxNotFound => Self::new(
                StatusCode::NOT_FOUND,
                code::SANDBOX_NOT_FOUND,
                "Sandbox not found",
            ),
            NodeError::ProcessNotFound => Self::new(
                StatusCode::NOT_FOUND,
                code::PROCESS_NOT_FOUND,
                "Process not found",
            ),
            NodeError::TemplateNotFound(name) => Self::new(
                StatusCode::NOT_FOUND,
                code::TEMPLATE_NOT_FOUND,
                format!("Template '{name}' not found; available: code-interpreter, base"),
            ),
            NodeError::Invalid(msg) => Self::bad_request(code::INVALID_REQUEST, msg),
            NodeError::LimitReached(msg) => Self {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    code::RESOURCE_LIMIT_ERROR,
                    msg,
                )
            },
            NodeError::Paused => Self::new(
                StatusCode::CONFLICT,
                code::SANDBOX_PAUSED,
                "Sandbox is paused; resume it before running code",
            ),
            NodeError::Internal(msg) => {
                tracing::error!("internal error: {msg}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL_ERROR, msg)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ctx = context::current();
        let request_id = ctx.request_id;
        let body = match ctx.plane {
            Plane::Control => json!({
                "error": { "code": self.code, "message": self.message, "request_id": request_id },
                "code": self.code,
                "message": self.message,
                "request_id": request_id,
                "retry_after": self.retry_after,
            }),
            Plane::Agent => json!({
                "error": self.message,
                "message": self.message,
                "code": self.code,
                "request_id": request_id,
                "timestamp": crate::time::now_rfc3339(),
                "retry_after": self.retry_after,
            }),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        resp
    }
}
