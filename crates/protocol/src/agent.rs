//! Agent wire types (`<public_host>/...`, reference §4).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ProcessStatus;

/// `POST /execute`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecuteRequest {
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Run-time limit in seconds (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The docs' name for `workdir`; accepted, never sent.
    #[serde(default, skip_serializing)]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
}

/// Reply of `POST /execute`. User code that fails is still a 200 with its exit code.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecuteResponse {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    /// Seconds.
    pub execution_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Final status: `completed`, `failed` or `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ProcessStatus>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdout_truncated: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stderr_truncated: bool,
}

/// `POST /execute/background`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackgroundExecuteRequest {
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Run-time limit in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing)]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Reply of `POST /execute/background`; returned before the code has run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackgroundExecuteResponse {
    pub process_id: String,
    pub execution_id: String,
    pub status: ProcessStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Effective run-time limit in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One background process, with every alias the HopX sources use (reference §4.4, §7.11).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub process_id: String,
    pub execution_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub language: String,
    pub status: ProcessStatus,
    /// `null` until the process has ended.
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    /// True when the middle of the stream was dropped to stay within the output cap.
    #[serde(default)]
    pub stdout_truncated: bool,
    #[serde(default)]
    pub stderr_truncated: bool,
    /// Bytes the process wrote, including any that were dropped.
    #[serde(default)]
    pub stdout_bytes: u64,
    #[serde(default)]
    pub stderr_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    /// Seconds run so far (or in all, once ended).
    #[serde(default)]
    pub execution_time: Option<f64>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Effective run-time limit in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Why the process failed when it is not its own exit code (e.g. a server restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reply of `GET /execute/processes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessList {
    #[serde(default)]
    pub processes: Vec<ProcessInfo>,
    #[serde(default)]
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// Body of `DELETE /execute/kill`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KillProcessRequest {
    pub process_id: Option<String>,
}

/// Reply of every kill route and of `DELETE /execute/processes/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessActionReply {
    pub success: bool,
    pub process_id: String,
    pub status: ProcessStatus,
    pub message: String,
}

/// `POST /execute/async`: run in the background and POST the result to `callback_url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AsyncExecuteRequest {
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Run-time limit in seconds (default 1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing)]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub callback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_signature_secret: Option<String>,
}

/// Reply of `POST /execute/async`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AsyncExecuteResponse {
    pub execution_id: String,
    pub process_id: String,
    pub status: ProcessStatus,
    pub callback_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// The body POSTed to a callback when an async execution ends (signed with
/// `X-HopX-Signature: sha256=<hex HMAC-SHA256(secret, X-HopX-Timestamp + body)>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookPayload {
    pub execution_id: String,
    #[serde(default)]
    pub process_id: Option<String>,
    /// `completed`, `failed` or `timeout`.
    pub status: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub execution_time: f64,
    pub timestamp: String,
    #[serde(default)]
    pub error: Option<String>,
}
