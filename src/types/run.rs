//! Options and results of running code: `runCode`, `runCodeBackground`, `runCodeAsync`.

use std::collections::BTreeMap;

use sandlot_protocol as wire;
use serde::Serialize;

use crate::args::FromJs;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use super::record::{field, Absent, RecordField};
use super::ProcessStatus;

/// The `language` option's names: what `sandlot_protocol::Language::parse` accepts (a test
/// below keeps the two in step). The server also takes them in any case; the type asks for
/// the lowercase spelling.
#[allow(dead_code)] // used through the custom section below (the lint does not see that)
const LANGUAGE_TS: &str = r#"
/** A language code runs in: `python`, `javascript` or `bash`, or one of their aliases. */
export type Language = 'python' | 'python3' | 'py' | 'javascript' | 'js' | 'node' | 'nodejs' | 'bash' | 'sh' | 'shell';
"#;

#[wasm_bindgen(typescript_custom_section)]
const LANGUAGE_TS_SECTION: &str = LANGUAGE_TS;

/// `sandbox.runCode(code, options)`.
#[derive(Tsify, FromJs, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeOptions {
    /// `python` (default), `javascript` or `bash`, or an alias such as `py`, `node`, `sh`.
    #[serde(default)]
    #[tsify(type = "Language", optional)]
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
#[derive(Tsify, FromJs, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct RunCodeBackgroundOptions {
    #[serde(default)]
    #[tsify(type = "Language", optional)]
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
#[derive(Tsify, FromJs, Debug, Default)]
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
    #[tsify(type = "Language", optional)]
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
    /// Why it failed when it is not its own exit code (a timeout, the out-of-memory killer).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub error: Option<String>,
    /// The out-of-memory killer ended it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[tsify(optional)]
    pub oom_killed: bool,
}

/// How an [`ExecutionResult`] is read from a [`wire::ExecuteResponse`] (see
/// [`super::record`]).
pub const EXECUTION_RESULT: &[RecordField] = &[
    field("stdout", &["stdout"], Absent::Required),
    field("stderr", &["stderr"], Absent::Required),
    field("exitCode", &["exit_code"], Absent::Required),
    field("executionTime", &["execution_time"], Absent::Required),
    field("success", &["success"], Absent::Required),
    field("status", &["status"], Absent::Omitted),
    field("language", &["language"], Absent::Omitted),
    field(
        "stdoutTruncated",
        &["stdout_truncated"],
        Absent::OmittedUnlessTrue,
    ),
    field(
        "stderrTruncated",
        &["stderr_truncated"],
        Absent::OmittedUnlessTrue,
    ),
    field("error", &["error"], Absent::Omitted),
    field("oomKilled", &["oom_killed"], Absent::OmittedUnlessTrue),
];

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

/// How a [`BackgroundExecution`] is read from a [`wire::BackgroundExecuteResponse`] whose
/// `timeout` [`effective_timeout`] has filled in.
pub const BACKGROUND_EXECUTION: &[RecordField] = &[
    field("processId", &["process_id"], Absent::Required),
    field("executionId", &["execution_id"], Absent::Required),
    field("status", &["status"], Absent::Required),
    field("name", &["name"], Absent::Omitted),
    field("timeout", &["timeout"], Absent::Required),
    field("startedAt", &["start_time"], Absent::Omitted),
];

/// A background run's effective timeout: the server's echo, else what was asked for (older
/// HopX agents do not echo it), else the default.
pub fn effective_timeout(echoed: Option<f64>, requested: Option<u64>) -> f64 {
    echoed
        .or(requested.map(|s| s as f64))
        .unwrap_or(wire::defaults::BACKGROUND_TIMEOUT_SECS as f64)
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

/// How an [`AsyncExecution`] is read from a [`wire::AsyncExecuteResponse`].
pub const ASYNC_EXECUTION: &[RecordField] = &[
    field("executionId", &["execution_id"], Absent::Required),
    field("processId", &["process_id"], Absent::Required),
    field("status", &["status"], Absent::Required),
    field("callbackUrl", &["callback_url"], Absent::Required),
];

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use crate::types::record::tests::{assert_js_keys, assert_wire_keys};
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn the_execution_result_table_matches_both_structs() {
        let result = ExecutionResult {
            stdout: "o".into(),
            stderr: "e".into(),
            exit_code: 1,
            execution_time: 0.5,
            success: false,
            status: Some(ProcessStatus::Failed),
            language: Some("python".into()),
            stdout_truncated: true,
            stderr_truncated: true,
            error: Some("x".into()),
            oom_killed: true,
        };
        let optional = [
            "status",
            "language",
            "stdoutTruncated",
            "stderrTruncated",
            "error",
            "oomKilled",
        ];
        assert_js_keys(EXECUTION_RESULT, &result, &optional);
        let reply = wire::ExecuteResponse {
            success: false,
            stdout: "o".into(),
            stderr: "e".into(),
            exit_code: 1,
            execution_time: 0.5,
            timestamp: Some("t".into()),
            language: Some("python".into()),
            status: Some(wire::ProcessStatus::Failed),
            stdout_truncated: true,
            stderr_truncated: true,
            error: Some("x".into()),
            oom_killed: true,
            ..Default::default()
        };
        assert_wire_keys(EXECUTION_RESULT, &reply, &["timestamp"]);
    }

    #[wasm_bindgen_test]
    fn the_async_execution_table_matches_both_structs() {
        let result = AsyncExecution {
            execution_id: "e".into(),
            process_id: "p".into(),
            status: ProcessStatus::Queued,
            callback_url: "http://x".into(),
        };
        assert_js_keys(ASYNC_EXECUTION, &result, &[]);
        let reply = wire::AsyncExecuteResponse {
            execution_id: "e".into(),
            process_id: "p".into(),
            status: wire::ProcessStatus::Queued,
            callback_url: "http://x".into(),
            message: Some("m".into()),
            timestamp: Some("t".into()),
        };
        assert_wire_keys(ASYNC_EXECUTION, &reply, &["message", "timestamp"]);
    }

    #[wasm_bindgen_test]
    fn background_timeout_falls_back_to_request_then_default() {
        assert_eq!(effective_timeout(Some(10.0), Some(20)), 10.0);
        assert_eq!(effective_timeout(None, Some(20)), 20.0);
        assert_eq!(effective_timeout(None, None), 300.0);
    }

    #[wasm_bindgen_test]
    fn the_background_execution_table_matches_both_structs() {
        let result = BackgroundExecution {
            process_id: "p".into(),
            execution_id: "e".into(),
            status: ProcessStatus::Queued,
            name: Some("job".into()),
            timeout: 300,
            started_at: Some("s".into()),
        };
        assert_js_keys(BACKGROUND_EXECUTION, &result, &["name", "startedAt"]);
        let reply = wire::BackgroundExecuteResponse {
            process_id: "p".into(),
            execution_id: "e".into(),
            status: wire::ProcessStatus::Queued,
            name: Some("job".into()),
            timeout: Some(300),
            start_time: Some("s".into()),
            message: Some("m".into()),
        };
        assert_wire_keys(BACKGROUND_EXECUTION, &reply, &["message"]);
    }

    #[wasm_bindgen_test]
    fn options_keep_the_abort_signal_object() {
        let controller = web_sys::AbortController::new().unwrap();
        let obj = js_sys::Object::new();
        js_sys::Reflect::set(&obj, &"signal".into(), &controller.signal()).unwrap();
        js_sys::Reflect::set(&obj, &"timeout".into(), &5.into()).unwrap();
        let opts = <RunCodeOptions as crate::args::FromJs>::read_js(&obj.into()).unwrap();
        assert_eq!(opts.timeout, Some(5));
        assert!(opts.signal.is_instance_of::<web_sys::AbortSignal>());
    }

    #[wasm_bindgen_test]
    fn the_language_type_names_exactly_what_the_server_accepts() {
        let names: Vec<&str> = LANGUAGE_TS.split('\'').skip(1).step_by(2).collect();
        let accepted: Vec<&str> = wire::Language::NAMES
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(names, accepted);
    }
}
