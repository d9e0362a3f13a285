//! Options and results of running code: `runCode`, `runCodeBackground`, `runCodeAsync`.

use std::collections::BTreeMap;

use sandlot_protocol as wire;
use serde::{Deserialize, Serialize};
use tsify::Tsify;
use wasm_bindgen::prelude::*;

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
#[derive(Tsify, Deserialize, Debug, Default)]
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
#[derive(Tsify, Deserialize, Debug, Default)]
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

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

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
    fn options_keep_the_abort_signal_object() {
        let controller = web_sys::AbortController::new().unwrap();
        let obj = js_sys::Object::new();
        js_sys::Reflect::set(&obj, &"signal".into(), &controller.signal()).unwrap();
        js_sys::Reflect::set(&obj, &"timeout".into(), &5.into()).unwrap();
        let opts: RunCodeOptions = serde_wasm_bindgen::from_value(obj.into()).unwrap();
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
