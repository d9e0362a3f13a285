//! API errors and their hybrid JSON bodies (`docs/protocol.md` §7).
//!
//! One error type with a status and a code. Internal faults are logged with the request id
//! and answered with a generic message and that id, never with the internal detail; a
//! panic in a handler is answered the same way (see [`panic_response`]).

use std::any::Any;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sandlot_protocol::{code, ErrorBody};

use super::context::{self, Plane};
use crate::node::NodeError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
    /// Ask the client to close the connection (after a body we would not read whole).
    pub close_connection: bool,
}

/// Marks a 404 for an unknown sandbox, so a cluster's router can tell "this node does not
/// run it" from a 404 of the request's own target (a file, a process).
pub const SANDBOX_UNKNOWN_HEADER: &str = "x-sandlot-sandbox-unknown";

/// What a client is told about a fault of ours; the detail is in the server log.
const INTERNAL_MESSAGE: &str = "Internal server error; quote the request id when reporting it";

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            close_connection: false,
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

    /// A token could not be signed: a cluster node holds only the public key, so the
    /// routes that hand out tokens are the control plane's.
    pub fn cannot_sign(_: crate::token::TokenError) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            code::FORBIDDEN,
            "a cluster node does not issue tokens: ask the control plane",
        )
    }

    /// A fault of ours: logged in full with the request id, answered generically.
    pub fn internal(detail: &str) -> Self {
        let request_id = context::current().request_id;
        tracing::error!(request_id = %request_id, "internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL_ERROR,
            INTERNAL_MESSAGE,
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
            NodeError::ContextNotFound => Self::new(
                StatusCode::NOT_FOUND,
                code::RESOURCE_NOT_FOUND,
                "Context not found",
            ),
            NodeError::TerminalNotFound => Self::new(
                StatusCode::NOT_FOUND,
                code::TERMINAL_NOT_FOUND,
                "Terminal not found (exited terminals are kept for a minute)",
            ),
            NodeError::TerminalExited(exit_code) => Self::new(
                StatusCode::CONFLICT,
                code::TERMINAL_EXITED,
                match exit_code {
                    Some(c) => format!("The terminal has exited (exit code {c}); open a new one"),
                    None => "The terminal has exited; open a new one".into(),
                },
            ),
            NodeError::TemplateNotFound(name) => Self::new(
                StatusCode::NOT_FOUND,
                code::TEMPLATE_NOT_FOUND,
                format!("Template '{name}' not found; available: code-interpreter, base"),
            ),
            NodeError::Invalid(msg) => Self::bad_request(code::INVALID_REQUEST, msg),
            NodeError::MissingField(field) => Self::missing(field),
            NodeError::Conflict(msg) => Self::new(StatusCode::CONFLICT, code::CONFLICT, msg),
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
            NodeError::StorageFull(detail) => {
                let request_id = context::current().request_id;
                tracing::error!(request_id = %request_id, "storage full: {detail}");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    code::INSUFFICIENT_STORAGE,
                    "The server's storage is full; nothing was written. Retry once space is freed",
                )
            }
            NodeError::ShuttingDown => Self {
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::SERVICE_UNAVAILABLE,
                    "The server is shutting down; retry once it is back",
                )
            },
            NodeError::Unavailable(detail) => {
                let request_id = context::current().request_id;
                tracing::warn!(request_id = %request_id, "unavailable: {detail}");
                Self {
                    retry_after: Some(1),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        code::SERVICE_UNAVAILABLE,
                        "The server is briefly busy; retry in a moment",
                    )
                }
            }
            NodeError::PortUnreachable(msg) => {
                Self::new(StatusCode::BAD_GATEWAY, code::PORT_NOT_REACHABLE, msg)
            }
            NodeError::Internal(detail) => Self::internal(&detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ctx = context::current();
        let body = match ctx.plane {
            Plane::Control => {
                ErrorBody::control(self.code, &self.message, &ctx.request_id, self.retry_after)
            }
            Plane::Agent => ErrorBody::agent(
                self.code,
                &self.message,
                &ctx.request_id,
                crate::time::now_rfc3339(),
                self.retry_after,
            ),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        if self.code == code::SANDBOX_NOT_FOUND {
            resp.headers_mut()
                .insert(SANDBOX_UNKNOWN_HEADER, HeaderValue::from_static("1"));
        }
        if self.close_connection {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// The answer to a panic in a handler (tower-http's catch-panic layer calls it): a 500
/// with the request id instead of a dropped connection.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::internal(&format!("handler panicked: {detail}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_and_a_busy_store_get_their_own_statuses_without_internal_detail() {
        let full = ApiError::from(NodeError::StorageFull("store: /data/sandlot.db".into()));
        assert_eq!(full.status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(full.code, code::INSUFFICIENT_STORAGE);
        assert!(!full.message.contains("/data"), "{}", full.message);
        let busy = ApiError::from(NodeError::Unavailable("store: database is locked".into()));
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.code, code::SERVICE_UNAVAILABLE);
        assert_eq!(busy.retry_after, Some(1));
    }
}
