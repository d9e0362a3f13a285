//! The SDK's public JS types and their mapping from and to the wire.
//!
//! The wire (`sandlot_protocol`) is snake_case and carries every alias the HopX sources use;
//! JS callers get camelCase objects with one name per fact. This module is the only place
//! that mapping happens, so the exported API files read as plain API. Every type derives
//! `Tsify`, which writes its TypeScript declaration into the generated `.d.ts`; optional
//! fields are skipped when absent so they are `field?: T` in the types and missing (never an
//! `undefined` key) at run time.

use std::collections::BTreeMap;

use sandlot_protocol as wire;
use serde::{Deserialize, Serialize};
use tsify::Tsify;
use wasm_bindgen::prelude::*;

// ---------------------------------------------------------------------------------------------
// Status unions

/// Lifecycle of a background process.
#[derive(Tsify, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Killed,
    Timeout,
}

impl From<wire::ProcessStatus> for ProcessStatus {
    fn from(s: wire::ProcessStatus) -> Self {
        match s {
            wire::ProcessStatus::Queued => Self::Queued,
            wire::ProcessStatus::Running => Self::Running,
            wire::ProcessStatus::Completed => Self::Completed,
            wire::ProcessStatus::Failed => Self::Failed,
            wire::ProcessStatus::Killed => Self::Killed,
            wire::ProcessStatus::Timeout => Self::Timeout,
        }
    }
}

impl ProcessStatus {
    /// Whether the process has ended for good.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

/// Lifecycle of a sandbox.
#[derive(Tsify, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SandboxStatus {
    Creating,
    Running,
    Paused,
    Stopped,
    Error,
    Deleted,
}

impl From<wire::SandboxStatus> for SandboxStatus {
    fn from(s: wire::SandboxStatus) -> Self {
        match s {
            wire::SandboxStatus::Creating => Self::Creating,
            wire::SandboxStatus::Running => Self::Running,
            wire::SandboxStatus::Paused => Self::Paused,
            wire::SandboxStatus::Stopped => Self::Stopped,
            wire::SandboxStatus::Error => Self::Error,
            wire::SandboxStatus::Deleted => Self::Deleted,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options (JS → Rust)

/// Template used when `create` is given neither `template` nor `templateId` (HopX's default).
pub const DEFAULT_TEMPLATE: &str = "code-interpreter";

/// `Sandbox.create(options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct CreateOptions {
    /// Template name (default `"code-interpreter"`).
    #[serde(default)]
    #[tsify(optional)]
    pub template: Option<String>,
    /// Template id; wins over `template` when both are given.
    #[serde(default)]
    #[tsify(optional)]
    pub template_id: Option<String>,
    /// Control-plane key; else `SANDLOT_API_KEY`, else `HOPX_API_KEY`.
    #[serde(default)]
    #[tsify(optional)]
    pub api_key: Option<String>,
    /// Control-plane URL; else `SANDLOT_URL`, else `http://127.0.0.1:7070`.
    #[serde(default, rename = "baseURL", alias = "baseUrl")]
    #[tsify(optional)]
    pub base_url: Option<String>,
    /// Seconds until the server kills the sandbox; no limit when omitted.
    #[serde(default)]
    #[tsify(optional)]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    #[tsify(optional)]
    pub internet_access: Option<bool>,
    /// Environment of every run in the sandbox.
    #[serde(default)]
    #[tsify(optional)]
    pub env_vars: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[tsify(optional)]
    pub region: Option<String>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl CreateOptions {
    pub fn to_wire(&self) -> wire::CreateSandboxRequest {
        wire::CreateSandboxRequest {
            template_id: self.template_id.clone().map(wire::StringOrNumber::String),
            template_name: match self.template_id {
                Some(_) => None,
                None => Some(
                    self.template
                        .clone()
                        .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string()),
                ),
            },
            region: self.region.clone(),
            timeout_seconds: self.timeout_seconds,
            internet_access: self.internet_access,
            env_vars: self.env_vars.clone(),
        }
    }
}

/// Second argument of `Sandbox.connect` and options of `Sandbox.list`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectOptions {
    #[serde(default)]
    #[tsify(optional)]
    pub api_key: Option<String>,
    #[serde(default, rename = "baseURL", alias = "baseUrl")]
    #[tsify(optional)]
    pub base_url: Option<String>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

/// `Sandbox.list(options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListOptions {
    #[serde(default)]
    #[tsify(optional)]
    pub api_key: Option<String>,
    #[serde(default, rename = "baseURL", alias = "baseUrl")]
    #[tsify(optional)]
    pub base_url: Option<String>,
    /// Only sandboxes in this state.
    #[serde(default)]
    #[tsify(optional)]
    pub status: Option<SandboxStatus>,
    /// At most this many (one page); all pages when omitted.
    #[serde(default)]
    #[tsify(optional)]
    pub limit: Option<u32>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

/// Options of calls that take nothing else.
#[derive(Tsify, Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct CallOptions {
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

/// `sandbox.runCode(code, options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeOptions {
    /// `python` (default), `javascript` or `bash`, or an alias such as `py`, `node`, `sh`.
    #[serde(default)]
    #[tsify(optional)]
    pub language: Option<String>,
    /// Run-time limit in seconds (default 120). The HTTP call waits this plus 30 s.
    #[serde(default)]
    #[tsify(optional)]
    pub timeout: Option<u64>,
    #[serde(default)]
    #[tsify(optional)]
    pub env: Option<BTreeMap<String, String>>,
    /// Working directory (default `/workspace`).
    #[serde(default)]
    #[tsify(optional)]
    pub workdir: Option<String>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl RunCodeOptions {
    pub fn to_wire(&self, code: String) -> wire::ExecuteRequest {
        wire::ExecuteRequest {
            code: Some(code),
            language: self.language.clone(),
            timeout: self.timeout,
            workdir: self.workdir.clone(),
            working_dir: None,
            env: self.env.clone(),
            name: None,
        }
    }
}

/// `sandbox.runCodeBackground(code, options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeBackgroundOptions {
    #[serde(default)]
    #[tsify(optional)]
    pub language: Option<String>,
    /// A label shown in `listProcesses()`.
    #[serde(default)]
    #[tsify(optional)]
    pub name: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub env: Option<BTreeMap<String, String>>,
    /// Run-time limit in seconds (default 300); the process is killed with status `timeout`.
    #[serde(default)]
    #[tsify(optional)]
    pub timeout: Option<u64>,
    #[serde(default)]
    #[tsify(optional)]
    pub workdir: Option<String>,
    /// Called with each piece of stdout, in order, as the process writes it (followed over
    /// the process's output stream until it ends; `signal` stops it). An error thrown here is
    /// reported once with `console.error` and does not stop the delivery.
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "(data: string) => void", optional)]
    pub on_stdout: JsValue,
    /// Like `onStdout`, for stderr.
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "(data: string) => void", optional)]
    pub on_stderr: JsValue,
    /// Called once after the last `onStdout`/`onStderr` call, when the process has ended.
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(
        type = "(event: Extract<StreamEvent, { type: 'exit' }>) => void",
        optional
    )]
    pub on_exit: JsValue,
    /// With callbacks: call them with whole lines (each ends in `\n`, but a last line without
    /// one) instead of chunks as written.
    #[serde(default)]
    #[tsify(optional)]
    pub lines: Option<bool>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl RunCodeBackgroundOptions {
    pub fn to_wire(&self, code: String) -> wire::BackgroundExecuteRequest {
        wire::BackgroundExecuteRequest {
            code: Some(code),
            language: self.language.clone(),
            timeout: self.timeout,
            workdir: self.workdir.clone(),
            working_dir: None,
            env: self.env.clone(),
            name: self.name.clone(),
        }
    }
}

/// `sandbox.runCodeAsync(code, options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeAsyncOptions {
    /// Where the result is POSTed when the run ends (the server may restrict the hosts).
    pub callback_url: String,
    /// Extra headers sent with the callback.
    #[serde(default)]
    #[tsify(optional)]
    pub callback_headers: Option<BTreeMap<String, String>>,
    /// Signs the callback (`X-HopX-Signature`); check it with `verifyWebhookSignature`.
    #[serde(default)]
    #[tsify(optional)]
    pub callback_signature_secret: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub language: Option<String>,
    /// Run-time limit in seconds (default 1800).
    #[serde(default)]
    #[tsify(optional)]
    pub timeout: Option<u64>,
    #[serde(default)]
    #[tsify(optional)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[tsify(optional)]
    pub workdir: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub name: Option<String>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl RunCodeAsyncOptions {
    pub fn to_wire(&self, code: String) -> wire::AsyncExecuteRequest {
        wire::AsyncExecuteRequest {
            run: wire::RunSpec {
                code: Some(code),
                language: self.language.clone(),
                timeout: self.timeout,
                workdir: self.workdir.clone(),
                working_dir: None,
                env: self.env.clone(),
                name: self.name.clone(),
            },
            callback_url: Some(self.callback_url.clone()),
            callback_headers: self.callback_headers.clone(),
            callback_signature_secret: self.callback_signature_secret.clone(),
        }
    }
}

/// `sandbox.waitForProcess(id, options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct WaitOptions {
    /// Milliseconds between polls (default 500).
    #[serde(default)]
    #[tsify(optional)]
    pub interval_ms: Option<u32>,
    /// Give up with a `TimeoutError` after this many milliseconds (default: wait as long
    /// as the process runs).
    #[serde(default)]
    #[tsify(optional)]
    pub timeout_ms: Option<u32>,
    /// The same limit in seconds, like every other `timeout` of the SDK (`timeoutMs` wins).
    #[serde(default)]
    #[tsify(optional)]
    pub timeout: Option<f64>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

/// `sandbox.streamProcess(id, options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamOptions {
    /// Resume after this event `seq` (events up to it are not sent again). Default: from
    /// the start of the process's kept output.
    #[serde(default)]
    #[tsify(optional)]
    pub since: Option<u64>,
    /// Yield whole lines: each `stdout`/`stderr` event's `data` is one line ending in `\n`
    /// (a last line without one comes just before `exit`). Default: chunks as written.
    #[serde(default)]
    #[tsify(optional)]
    pub lines: Option<bool>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

/// `sandbox.runCodeStream(code, options)`.
#[derive(Tsify, Deserialize, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeStreamOptions {
    #[serde(default)]
    #[tsify(optional)]
    pub language: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub name: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub env: Option<BTreeMap<String, String>>,
    /// Run-time limit in seconds (default 60).
    #[serde(default)]
    #[tsify(optional)]
    pub timeout: Option<u64>,
    #[serde(default)]
    #[tsify(optional)]
    pub workdir: Option<String>,
    /// Yield whole lines (see `StreamOptions.lines`).
    #[serde(default)]
    #[tsify(optional)]
    pub lines: Option<bool>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl RunCodeStreamOptions {
    pub fn to_wire(&self, code: String) -> wire::BackgroundExecuteRequest {
        wire::BackgroundExecuteRequest {
            code: Some(code),
            language: self.language.clone(),
            timeout: self.timeout,
            workdir: self.workdir.clone(),
            working_dir: None,
            env: self.env.clone(),
            name: self.name.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results (Rust → JS)

/// What a browser (or any other process) needs to drive a sandbox without the API key:
/// `sandbox.getSession()` on the backend, `Sandbox.connect(session)` on the client.
#[derive(Tsify, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSession {
    pub sandbox_id: String,
    /// The agent's bearer token.
    pub token: String,
    /// The agent base URL (`public_host`).
    pub agent_url: String,
    /// RFC 3339 expiry of `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub token_expires_at: Option<String>,
}

/// Resources of a sandbox.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxResources {
    pub vcpu: u32,
    pub memory_mb: u64,
    pub disk_mb: u64,
}

/// A sandbox as the control plane describes it.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxInfo {
    pub sandbox_id: String,
    pub status: SandboxStatus,
    /// Agent base URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub public_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub template_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub template_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub resources: Option<SandboxResources>,
    pub internet_access: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub timeout_seconds: Option<u64>,
    /// RFC 3339 time the sandbox is killed, when it has a timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub created_at: Option<String>,
}

impl From<wire::Sandbox> for SandboxInfo {
    fn from(s: wire::Sandbox) -> Self {
        Self {
            sandbox_id: s.id,
            status: s.status.into(),
            public_host: s.public_host.or(s.direct_url),
            template_id: s.template_id,
            template_name: s.template_name,
            region: s.region,
            resources: s.resources.map(|r| SandboxResources {
                vcpu: r.vcpu,
                memory_mb: r.memory_mb,
                disk_mb: r.disk_mb,
            }),
            internet_access: s.internet_access,
            timeout_seconds: s.timeout_seconds,
            expires_at: s.expires_at,
            created_at: s.created_at,
        }
    }
}

/// Result of `runCode`: a run that ended. Failing user code is a result, not an error.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    /// Seconds.
    pub execution_time: f64,
    /// `exitCode === 0`.
    pub success: bool,
    /// `completed`, `failed` or `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub status: Option<ProcessStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub language: Option<String>,
    /// True when the middle of stdout was dropped to stay within the server's output cap.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[tsify(optional)]
    pub stdout_truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[tsify(optional)]
    pub stderr_truncated: bool,
}

impl From<wire::ExecuteResponse> for ExecutionResult {
    fn from(r: wire::ExecuteResponse) -> Self {
        Self {
            stdout: r.stdout,
            stderr: r.stderr,
            exit_code: r.exit_code,
            execution_time: r.execution_time,
            success: r.success,
            status: r.status.map(Into::into),
            language: r.language,
            stdout_truncated: r.stdout_truncated,
            stderr_truncated: r.stderr_truncated,
        }
    }
}

/// Result of `runCodeBackground`: the process was accepted; it runs on.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundExecution {
    pub process_id: String,
    pub execution_id: String,
    pub status: ProcessStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub name: Option<String>,
    /// Effective run-time limit in seconds.
    pub timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub started_at: Option<String>,
}

impl BackgroundExecution {
    /// `requested` fills `timeout` when the server does not echo it (older HopX agents).
    pub fn from_wire(r: wire::BackgroundExecuteResponse, requested: Option<u64>) -> Self {
        Self {
            process_id: r.process_id,
            execution_id: r.execution_id,
            status: r.status.into(),
            name: r.name,
            timeout: r
                .timeout
                .or(requested)
                .unwrap_or(wire::defaults::BACKGROUND_TIMEOUT_SECS),
            started_at: r.start_time,
        }
    }
}

/// One background process.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub process_id: String,
    pub execution_id: String,
    /// Absent when the process was started without a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub name: Option<String>,
    pub language: String,
    pub status: ProcessStatus,
    /// Absent until the process has ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// True when the middle of stdout was dropped to stay within the output cap.
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Bytes written to stdout, including any that were dropped.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub completed_at: Option<String>,
    /// Seconds run so far, or in all once ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub execution_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub pid: Option<u32>,
    /// Effective run-time limit in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub timeout: Option<u64>,
    /// Why the process failed when it is not its own exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub error: Option<String>,
    /// The server's cap on stored output dropped this finished record's `stdout`/`stderr`
    /// (oldest records first); status, exit code and byte counts remain. Present only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[tsify(optional)]
    pub output_evicted: bool,
}

impl From<wire::ProcessInfo> for ProcessInfo {
    fn from(p: wire::ProcessInfo) -> Self {
        Self {
            process_id: p.process_id,
            execution_id: p.execution_id,
            name: p.name,
            language: p.language,
            status: p.status.into(),
            exit_code: p.exit_code,
            stdout: p.stdout,
            stderr: p.stderr,
            stdout_truncated: p.stdout_truncated,
            stderr_truncated: p.stderr_truncated,
            stdout_bytes: p.stdout_bytes,
            stderr_bytes: p.stderr_bytes,
            started_at: p.started_at.or(p.start_time),
            completed_at: p.completed_at.or(p.end_time),
            execution_time: p.execution_time.or(p.duration),
            pid: p.pid,
            timeout: p.timeout,
            error: p.error,
            output_evicted: p.output_evicted,
        }
    }
}

/// Result of `runCodeAsync`: accepted; the outcome goes to the callback.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AsyncExecution {
    pub execution_id: String,
    pub process_id: String,
    pub status: ProcessStatus,
    pub callback_url: String,
}

impl From<wire::AsyncExecuteResponse> for AsyncExecution {
    fn from(r: wire::AsyncExecuteResponse) -> Self {
        Self {
            execution_id: r.execution_id,
            process_id: r.process_id,
            status: r.status.into(),
            callback_url: r.callback_url,
        }
    }
}

/// Reply of `killProcess` and `removeProcess`.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessActionResult {
    pub success: bool,
    pub process_id: String,
    pub status: ProcessStatus,
    pub message: String,
}

impl From<wire::ProcessActionReply> for ProcessActionResult {
    fn from(r: wire::ProcessActionReply) -> Self {
        Self {
            success: r.success,
            process_id: r.process_id,
            status: r.status.into(),
            message: r.message,
        }
    }
}

/// Reply of `setTimeout`.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutInfo {
    pub timeout_seconds: u64,
    /// RFC 3339 time the sandbox will be killed.
    pub expires_at: String,
}

impl From<wire::SetTimeoutReply> for TimeoutInfo {
    fn from(r: wire::SetTimeoutReply) -> Self {
        Self {
            timeout_seconds: r.timeout_seconds,
            expires_at: r.expires_at,
        }
    }
}

/// Reply of `refreshToken`.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub token: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
}

/// One event of a process's live output (`streamProcess`, `runCodeStream`).
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamEvent {
    /// First event of `runCodeStream`: the process that was started.
    Start {
        #[serde(rename = "processId")]
        process_id: String,
        #[serde(rename = "executionId")]
        execution_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        name: Option<String>,
        /// Effective run-time limit in seconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        timeout: Option<u64>,
    },
    /// A piece of stdout (`seq` orders every event of the process).
    Stdout {
        data: String,
        seq: u64,
    },
    Stderr {
        data: String,
        seq: u64,
    },
    /// Events `fromSeq..=toSeq` were dropped to stay within the server's output cap.
    Truncated {
        #[serde(rename = "fromSeq")]
        from_seq: u64,
        #[serde(rename = "toSeq")]
        to_seq: u64,
        #[serde(rename = "droppedBytes")]
        dropped_bytes: u64,
    },
    /// The process ended; the stream ends after this event.
    Exit {
        status: ProcessStatus,
        #[serde(rename = "exitCode", skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        exit_code: Option<i32>,
        #[serde(rename = "executionTime", skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        execution_time: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        error: Option<String>,
        seq: u64,
    },
}

impl From<wire::StreamEvent> for StreamEvent {
    fn from(e: wire::StreamEvent) -> Self {
        match e {
            wire::StreamEvent::Start(s) => Self::Start {
                process_id: s.process_id,
                execution_id: s.execution_id,
                name: s.name,
                timeout: s.timeout,
            },
            wire::StreamEvent::Stdout(o) => Self::Stdout {
                data: o.data,
                seq: o.seq,
            },
            wire::StreamEvent::Stderr(o) => Self::Stderr {
                data: o.data,
                seq: o.seq,
            },
            wire::StreamEvent::Truncated(t) => Self::Truncated {
                from_seq: t.from_seq,
                to_seq: t.to_seq,
                dropped_bytes: t.dropped_bytes,
            },
            wire::StreamEvent::Exit(x) => Self::Exit {
                status: x.status.into(),
                exit_code: x.exit_code,
                execution_time: x.execution_time,
                error: x.error,
                seq: x.seq,
            },
        }
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn wire_process() -> wire::ProcessInfo {
        wire::ProcessInfo {
            process_id: "proc_1".into(),
            execution_id: "exec_1".into(),
            name: None,
            language: "python".into(),
            status: wire::ProcessStatus::Running,
            exit_code: None,
            stdout: "hi\n".into(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_bytes: 3,
            stderr_bytes: 0,
            started_at: None,
            start_time: Some("2026-01-01T00:00:00Z".into()),
            completed_at: None,
            end_time: None,
            execution_time: None,
            duration: Some(1.5),
            pid: Some(42),
            timeout: Some(300),
            error: None,
            output_evicted: false,
        }
    }

    fn get(v: &JsValue, key: &str) -> JsValue {
        js_sys::Reflect::get(v, &JsValue::from_str(key)).unwrap()
    }

    fn has(v: &JsValue, key: &str) -> bool {
        js_sys::Reflect::has(v, &JsValue::from_str(key)).unwrap()
    }

    #[wasm_bindgen_test]
    fn process_info_is_camel_case_and_reads_the_aliases() {
        let p: ProcessInfo = wire_process().into();
        assert_eq!(p.started_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(p.execution_time, Some(1.5));
        let js = tsify::Ts::from_rust(&p).unwrap().js_value();
        assert_eq!(get(&js, "processId").as_string().as_deref(), Some("proc_1"));
        assert_eq!(get(&js, "status").as_string().as_deref(), Some("running"));
        assert_eq!(get(&js, "pid").as_f64(), Some(42.0));
        assert!(!has(&js, "process_id"));
    }

    #[wasm_bindgen_test]
    fn absent_optionals_are_missing_keys_not_undefined() {
        let p: ProcessInfo = wire_process().into();
        let js = tsify::Ts::from_rust(&p).unwrap().js_value();
        assert!(!has(&js, "name"), "unnamed process has no name key");
        assert!(!has(&js, "exitCode"), "running process has no exitCode key");
        assert!(!has(&js, "completedAt"));
    }

    #[wasm_bindgen_test]
    fn every_wire_status_maps_to_its_own_string() {
        for s in [
            wire::ProcessStatus::Queued,
            wire::ProcessStatus::Running,
            wire::ProcessStatus::Completed,
            wire::ProcessStatus::Failed,
            wire::ProcessStatus::Killed,
            wire::ProcessStatus::Timeout,
        ] {
            let js = serde_wasm_bindgen::to_value(&ProcessStatus::from(s)).unwrap();
            assert_eq!(js.as_string().as_deref(), Some(s.as_str()));
            assert_eq!(ProcessStatus::from(s).is_final(), s.is_final());
        }
    }

    #[wasm_bindgen_test]
    fn background_timeout_falls_back_to_request_then_default() {
        let reply = |timeout| wire::BackgroundExecuteResponse {
            process_id: "p".into(),
            execution_id: "e".into(),
            status: wire::ProcessStatus::Queued,
            name: Some("job".into()),
            timeout,
            start_time: None,
            message: None,
        };
        assert_eq!(
            BackgroundExecution::from_wire(reply(Some(10)), Some(20)).timeout,
            10
        );
        assert_eq!(
            BackgroundExecution::from_wire(reply(None), Some(20)).timeout,
            20
        );
        assert_eq!(
            BackgroundExecution::from_wire(reply(None), None).timeout,
            300
        );
    }

    #[wasm_bindgen_test]
    fn create_options_from_js_become_the_wire_request() {
        let js = js_sys::JSON::parse(
            r#"{"template":"code-interpreter","baseURL":"http://x","timeoutSeconds":60,"envVars":{"A":"1"}}"#,
        )
        .unwrap();
        let opts: CreateOptions = serde_wasm_bindgen::from_value(js).unwrap();
        assert_eq!(opts.base_url.as_deref(), Some("http://x"));
        assert!(opts.signal.is_undefined());
        let w = opts.to_wire();
        assert_eq!(w.template_name.as_deref(), Some("code-interpreter"));
        assert_eq!(w.template_id, None);
        assert_eq!(w.timeout_seconds, Some(60));
        assert_eq!(w.env_vars.unwrap().get("A").map(String::as_str), Some("1"));
    }

    #[wasm_bindgen_test]
    fn template_id_wins_over_template_name() {
        let opts = CreateOptions {
            template: Some("base".into()),
            template_id: Some("7".into()),
            ..Default::default()
        };
        let w = opts.to_wire();
        assert_eq!(
            w.template_id,
            Some(wire::StringOrNumber::String("7".into()))
        );
        assert_eq!(w.template_name, None);
    }

    #[wasm_bindgen_test]
    fn options_keep_the_abort_signal_object() {
        let controller = web_sys::AbortController::new().unwrap();
        let obj = js_sys::Object::new();
        js_sys::Reflect::set(&obj, &"signal".into(), &controller.signal()).unwrap();
        js_sys::Reflect::set(&obj, &"timeout".into(), &5.into()).unwrap();
        let opts: RunCodeOptions = serde_wasm_bindgen::from_value(obj.into()).unwrap();
        assert_eq!(opts.timeout, Some(5));
        assert!(opts.signal.is_instance_of::<web_sys::AbortSignal>());
    }
}
