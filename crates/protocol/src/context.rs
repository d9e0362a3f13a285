//! Execution contexts and rich results (`docs/protocol.md`, "Contexts and rich results").
//!
//! A context is a long-lived interpreter in a sandbox (python with IPython semantics,
//! javascript, bash) whose state persists between runs. A run in a context can produce
//! results besides its output: the value of the last expression and every displayed object,
//! each a MIME bundle in E2B's `Result` shape, and an exception as [`ExecutionError`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::RunSpec;

/// Any JSON value (an `application/json` result). Defined here rather than taken from
/// serde_json, which the SDK keeps out of its wasm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<JsonValue>),
    Object(BTreeMap<String, JsonValue>),
}

/// `POST /execute`, `POST /execute/stream` and `POST /execute/ipython`: what to run, and
/// where. Without `context_id` or `fresh`, code runs in its language's default context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeRunRequest {
    #[serde(flatten)]
    pub run: RunSpec,
    /// Run in this context (from `POST /contexts`); its language wins over `language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Run in a new process that ends with the run (no state before or after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh: Option<bool>,
}

/// One result of a run: a displayed object or the value of the last expression, as the
/// formats it has (E2B's `Result`; `is_main_result` is `isMainResult` in the SDK).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RichResult {
    /// `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `image/png`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub png: Option<String>,
    /// `image/jpeg`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg: Option<String>,
    /// `image/svg+xml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svg: Option<String>,
    /// `text/html`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// `text/markdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
    /// `text/latex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latex: Option<String>,
    /// `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub json: Option<JsonValue>,
    /// `application/javascript`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub javascript: Option<String>,
    /// The value of the cell's last expression (not a `display()`ed object).
    #[serde(default)]
    pub is_main_result: bool,
}

/// An exception a run raised (E2B's `ExecutionError`), or why it did not finish.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionError {
    /// The exception's class (`ZeroDivisionError`, `TypeError`), or `TimeoutError`,
    /// `OutOfMemoryError`, `ContextRestarted` for what the server reports.
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub traceback: String,
}

/// Names of the errors the server reports itself (not raised by the code).
pub mod run_errors {
    pub const TIMEOUT: &str = "TimeoutError";
    pub const OUT_OF_MEMORY: &str = "OutOfMemoryError";
    pub const KILLED: &str = "Killed";
    /// The context died (crash, out of memory) and was restarted: its state is gone and
    /// the code was not run.
    pub const CONTEXT_RESTARTED: &str = "ContextRestarted";
    pub const FAILED: &str = "ExecutionFailed";
}

/// `POST /contexts`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateContextRequest {
    /// A language name or alias; absent means python.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The context's starting directory (default `/workspace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// What a context is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ContextState {
    /// Its interpreter is starting.
    Starting,
    /// Ready for a run.
    Idle,
    /// Running code.
    Busy,
    /// No interpreter now (never used, stopped when idle, or ended): the next run starts one.
    Stopped,
}

/// One context (`GET /contexts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContextInfo {
    pub id: String,
    pub language: crate::Language,
    pub cwd: String,
    /// The context runs code that names no context.
    #[serde(default)]
    pub default: bool,
    pub state: ContextState,
    /// Runs so far (across restarts).
    #[serde(default)]
    pub execution_count: u64,
    /// Times its interpreter was started.
    #[serde(default)]
    pub starts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
}

/// Reply of `GET /contexts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContextList {
    pub contexts: Vec<ContextInfo>,
}

/// One interpreter as HopX's `GET /jupyter/sessions` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JupyterSession {
    /// The context's id.
    pub kernel_id: String,
    /// `idle`, `busy` or `starting`.
    pub execution_state: String,
    pub connections: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
    /// Sandlot extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<crate::Language>,
}

/// Reply of `GET /jupyter/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JupyterSessions {
    pub sessions: Vec<JupyterSession>,
}

/// A result as a stream event (SSE `event: result`, WebSocket `type: "result"` frames that
/// carry no `exit_code`): the result's fields plus the event's sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultEvent {
    #[serde(flatten)]
    pub result: RichResult,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_request_reads_the_context_fields_next_to_the_run() {
        let r: CodeRunRequest =
            serde_json::from_str(r#"{"code":"x","language":"py","context_id":"c1","fresh":true}"#)
                .unwrap();
        assert_eq!(r.run.code.as_deref(), Some("x"));
        assert_eq!(r.run.language.as_deref(), Some("py"));
        assert_eq!(r.context_id.as_deref(), Some("c1"));
        assert_eq!(r.fresh, Some(true));
    }

    #[test]
    fn results_write_only_the_formats_they_have() {
        let r = RichResult {
            text: Some("1".into()),
            is_main_result: true,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"text":"1","is_main_result":true}"#
        );
    }
}
