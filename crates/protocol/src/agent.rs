//! Agent wire types (`<public_host>/...`, `docs/protocol.md` §5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Language, ProcessStatus};

/// What to run: the fields every run request shares (`/execute`, `/execute/background`,
/// `/execute/async`, the streams' execute requests).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSpec {
    /// The code to run (required: an `Option` only so that its absence gets a clear error).
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub code: Option<String>,
    /// A language name or alias ([`crate::Language::parse`]); absent means python.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::Language::name_schema))]
    pub language: Option<String>,
    /// Run-time limit in seconds (defaults per route: [`crate::defaults`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The docs' name for `workdir`; accepted, never sent.
    #[serde(default, skip_serializing)]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// A label shown in process lists (background runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl RunSpec {
    /// `workdir`, or the docs' `working_dir`.
    pub fn workdir(&self) -> Option<&str> {
        self.workdir.as_deref().or(self.working_dir.as_deref())
    }
}

/// `POST /execute`
pub type ExecuteRequest = RunSpec;

/// Reply of `POST /execute`. User code that fails is still a 200 with its exit code.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Why it failed when it is not its own exit code (a timeout, the out-of-memory killer,
    /// a restarted context), or, for a run in a context that raised, `Name: value` of the
    /// exception. The same text as the process record's and the stream exit event's `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The same failure as an object: the exception the code raised (`name`, `value`,
    /// `traceback`, E2B's `ExecutionError`), or what the server reports (`TimeoutError`,
    /// `OutOfMemoryError`, `ContextRestarted`, ...). Sandlot extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_error: Option<crate::ExecutionError>,
    /// The out-of-memory killer ended it. Sandlot extension.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// HopX's flat rich fields, each from the first result that has the format: `image/png`
    /// (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub png: Option<String>,
    /// `text/html` (a pandas DataFrame's table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
    /// `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub json: Option<crate::JsonValue>,
    /// The last expression's value as text (`text/plain` of the main result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Every result in order, in E2B's shape. Sandlot extension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<crate::RichResult>,
    /// The context the code ran in (absent for a fresh process). Sandlot extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// The context's run number. Sandlot extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_count: Option<u64>,
}

impl ExecuteResponse {
    /// Fills HopX's flat fields from `results`.
    pub fn flatten_results(&mut self) {
        fn first<T: Clone>(
            results: &[crate::RichResult],
            get: impl Fn(&crate::RichResult) -> Option<&T>,
        ) -> Option<T> {
            results.iter().find_map(|r| get(r).cloned())
        }
        let r = &self.results;
        self.png = first(r, |r| r.png.as_ref());
        self.html = first(r, |r| r.html.as_ref());
        self.svg = first(r, |r| r.svg.as_ref());
        self.markdown = first(r, |r| r.markdown.as_ref());
        self.json = first(r, |r| r.json.as_ref());
        self.result = r
            .iter()
            .find(|r| r.is_main_result)
            .and_then(|r| r.text.clone());
    }
}

/// `POST /execute/background`
pub type BackgroundExecuteRequest = RunSpec;

/// Reply of `POST /execute/background`; returned before the code has run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The start of a process's `error` when the out-of-memory killer ended it (`oom_killed`
/// is read back from it).
pub const OOM_KILLED_ERROR: &str = "killed by the out-of-memory killer";

/// One background process, with every alias the HopX sources use (`docs/protocol.md`, "The process record").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The out-of-memory killer ended it (`error` says so too). Sandlot extension.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// The store's cap on finished output dropped this record's `stdout`/`stderr` (oldest
    /// records first); status, exit code and byte counts remain. Sandlot extension.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_evicted: bool,
}

/// Reply of `GET /execute/processes`. `P` is [`ProcessInfo`]; the server may write records it
/// already holds serialised (the same shape, stored as JSON when the process ended).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessList<P = ProcessInfo> {
    #[serde(default = "Vec::new")]
    pub processes: Vec<P>,
    #[serde(default)]
    pub count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// Body of `DELETE /execute/kill`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KillProcessRequest {
    pub process_id: Option<String>,
}

/// Reply of every kill route and of `DELETE /execute/processes/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessActionReply {
    pub success: bool,
    pub process_id: String,
    pub status: ProcessStatus,
    pub message: String,
}

/// `POST /execute/async`: run in the background and POST the result to `callback_url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AsyncExecuteRequest {
    #[serde(flatten)]
    pub run: RunSpec,
    pub callback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_signature_secret: Option<String>,
}

/// Reply of `POST /execute/async`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    pub execution_id: String,
    #[serde(default)]
    pub process_id: Option<String>,
    pub status: WebhookStatus,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub execution_time: f64,
    pub timestamp: String,
    #[serde(default)]
    pub error: Option<String>,
    /// The out-of-memory killer ended the process. Sandlot extension.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// The outcome a webhook reports: HopX's vocabulary has no `killed`, so a killed process
/// reports `failed` with the reason in `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    Completed,
    Failed,
    Timeout,
}

impl From<ProcessStatus> for WebhookStatus {
    fn from(s: ProcessStatus) -> Self {
        match s {
            ProcessStatus::Completed => Self::Completed,
            ProcessStatus::Timeout => Self::Timeout,
            _ => Self::Failed,
        }
    }
}

/// Features the agent announces on `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentFeatures {
    pub code_execution: bool,
    pub background_jobs: bool,
    pub languages: Vec<Language>,
}

/// Reply of the agent's `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentHealth {
    pub status: String,
    pub agent: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub features: AgentFeatures,
}

/// Limits of one sandbox, as `GET /info` reports them. Sandlot extension.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentLimits {
    pub memory_mb: u64,
    pub pids: u64,
    pub cpus: f64,
    pub output_cap_bytes: usize,
    pub max_processes: usize,
}

/// Reply of `GET /info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentInfo {
    pub vm_id: String,
    pub agent: String,
    pub agent_version: String,
    pub os: String,
    pub arch: String,
    pub template: String,
    pub languages: Vec<Language>,
    pub start_time: String,
    pub uptime: u64,
    pub limits: AgentLimits,
    /// Route name → `METHOD /path`.
    pub endpoints: BTreeMap<String, String>,
}

/// Body of `PUT /env` (replace) and `PATCH /env` (merge).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvUpdate {
    pub env_vars: Option<BTreeMap<String, String>>,
}

/// Reply of every `/env` route: the sandbox's global environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvReply {
    pub count: usize,
    pub env_vars: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}
