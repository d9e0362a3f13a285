//! Error bodies and codes (`docs/protocol.md` §7).
//!
//! The server emits the "hybrid" body so the Python, JS and docs parsers all find a message and
//! a code: on the control plane `error` is an object and `code`/`message` are repeated at the
//! top; on the agent `error` is the message string. [`ErrorBody`] reads both.

use serde::{Deserialize, Serialize};

/// Error codes Sandlot emits (HopX agent and control-plane vocabularies).
pub mod code {
    pub const INVALID_JSON: &str = "INVALID_JSON";
    pub const MISSING_PARAMETER: &str = "MISSING_PARAMETER";
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    pub const AUTHENTICATION_REQUIRED: &str = "AUTHENTICATION_REQUIRED";
    pub const INVALID_TOKEN: &str = "INVALID_TOKEN";
    pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
    pub const RESOURCE_NOT_FOUND: &str = "RESOURCE_NOT_FOUND";
    pub const SANDBOX_NOT_FOUND: &str = "SANDBOX_NOT_FOUND";
    pub const PROCESS_NOT_FOUND: &str = "PROCESS_NOT_FOUND";
    /// Sandlot code: no terminal with this id in the sandbox (or it ended over a minute ago).
    pub const TERMINAL_NOT_FOUND: &str = "TERMINAL_NOT_FOUND";
    /// Sandlot code: the terminal's shell has exited; it takes no more input.
    pub const TERMINAL_EXITED: &str = "TERMINAL_EXITED";
    pub const TEMPLATE_NOT_FOUND: &str = "TEMPLATE_NOT_FOUND";
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    pub const CONFLICT: &str = "CONFLICT";
    pub const SANDBOX_PAUSED: &str = "SANDBOX_PAUSED";
    pub const RESOURCE_LIMIT_ERROR: &str = "RESOURCE_LIMIT_ERROR";
    pub const EXECUTION_FAILED: &str = "EXECUTION_FAILED";
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// Sandlot code: the server's data disk is full (507); nothing was written.
    pub const INSUFFICIENT_STORAGE: &str = "INSUFFICIENT_STORAGE";
    /// Files: the path is outside `/workspace` and `/tmp` (403).
    pub const PATH_NOT_ALLOWED: &str = "PATH_NOT_ALLOWED";
    pub const FILE_NOT_FOUND: &str = "FILE_NOT_FOUND";
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
    /// Files: a path that cannot name a file (empty, NUL, too long, a symlink loop, a
    /// `/proc` magic link).
    pub const INVALID_PATH: &str = "INVALID_PATH";
    pub const FILE_ALREADY_EXISTS: &str = "FILE_ALREADY_EXISTS";
    /// Sandlot code: a directory where a file is needed (400).
    pub const IS_A_DIRECTORY: &str = "IS_A_DIRECTORY";
    /// Sandlot code: a file where a directory is needed (400).
    pub const NOT_A_DIRECTORY: &str = "NOT_A_DIRECTORY";
    /// Sandlot code: a FIFO, socket or device where a regular file is needed (400).
    pub const NOT_A_REGULAR_FILE: &str = "NOT_A_REGULAR_FILE";
    /// Sandlot code: a file too large for `/files/read` (use `/files/download`) or an
    /// upload over the limit (413).
    pub const FILE_TOO_LARGE: &str = "FILE_TOO_LARGE";
    /// Sandlot code: `/files/read` of bytes that are not UTF-8 without `encoding=base64`.
    pub const FILE_NOT_TEXT: &str = "FILE_NOT_TEXT";
    pub const RANGE_NOT_SATISFIABLE: &str = "RANGE_NOT_SATISFIABLE";
    /// Sandlot code: nothing answers on that port inside the sandbox (502).
    pub const PORT_NOT_REACHABLE: &str = "PORT_NOT_REACHABLE";
    /// Sandlot code (cluster mode): the node that ran the sandbox stopped answering and lost
    /// its lease (410); the sandbox and its state are gone. Create a new one.
    pub const SANDBOX_LOST: &str = "SANDBOX_LOST";
    /// Sandlot code (cluster mode): no node has room for another sandbox (503).
    pub const NO_CAPACITY: &str = "NO_CAPACITY";
}

/// The nested object form of `error` (what the Python SDK parses).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `error` is an object on the control plane and a string on the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ErrorField {
    Message(String),
    Detail(ErrorDetail),
}

/// Any error body either plane returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: Option<ErrorField>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Seconds to wait before retrying (429 replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ErrorBody {
    /// The control plane's body: `error` is an object, `code`/`message` repeated on top.
    pub fn control(code: &str, message: &str, request_id: &str, retry_after: Option<u64>) -> Self {
        Self {
            error: Some(ErrorField::Detail(ErrorDetail {
                message: message.into(),
                code: Some(code.into()),
                request_id: Some(request_id.into()),
            })),
            code: Some(code.into()),
            message: Some(message.into()),
            request_id: Some(request_id.into()),
            timestamp: None,
            retry_after,
        }
    }

    /// The agent's body: `error` is the message itself.
    pub fn agent(
        code: &str,
        message: &str,
        request_id: &str,
        timestamp: String,
        retry_after: Option<u64>,
    ) -> Self {
        Self {
            error: Some(ErrorField::Message(message.into())),
            code: Some(code.into()),
            message: Some(message.into()),
            request_id: Some(request_id.into()),
            timestamp: Some(timestamp),
            retry_after,
        }
    }

    /// The human message, wherever the body put it.
    pub fn message(&self) -> Option<&str> {
        if let Some(m) = self.message.as_deref() {
            return Some(m);
        }
        match &self.error {
            Some(ErrorField::Message(m)) => Some(m),
            Some(ErrorField::Detail(d)) if !d.message.is_empty() => Some(&d.message),
            _ => None,
        }
    }

    /// The machine code, wherever the body put it.
    pub fn code(&self) -> Option<&str> {
        if let Some(c) = self.code.as_deref() {
            return Some(c);
        }
        match &self.error {
            Some(ErrorField::Detail(d)) => d.code.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_reads_agent_and_control_plane_shapes() {
        let agent: ErrorBody =
            serde_json::from_str(r#"{"error":"nope","code":"PROCESS_NOT_FOUND"}"#).unwrap();
        assert_eq!(agent.message(), Some("nope"));
        assert_eq!(agent.code(), Some("PROCESS_NOT_FOUND"));

        let nested: ErrorBody =
            serde_json::from_str(r#"{"error":{"message":"gone","code":"RESOURCE_NOT_FOUND"}}"#)
                .unwrap();
        assert_eq!(nested.message(), Some("gone"));
        assert_eq!(nested.code(), Some("RESOURCE_NOT_FOUND"));
    }
}
