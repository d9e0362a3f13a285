//! Running code in a sandbox (agent routes): synchronous runs, background processes, and async
//! runs whose result is POSTed to a callback.

use gloo_net::http::Method;
use sandlot_protocol as wire;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::config;
use crate::errors::{ErrorKind, NotFoundHint, SdkError};
use crate::http::{decode, signal_of, sleep};
use crate::sandbox::{arg, encode, out, Sandbox};
use crate::stream::OutputCallbacks;
use crate::types::{
    AsyncExecution, BackgroundExecution, CallOptions, ExecutionResult, ProcessActionResult,
    ProcessInfo, RunCodeAsyncOptions, RunCodeBackgroundOptions, RunCodeOptions, WaitOptions,
};

/// Poll interval of `waitForProcess` when none is given.
const DEFAULT_POLL_MS: u32 = 500;

/// Reads a required string argument, so that a wrong type rejects the promise instead of
/// throwing synchronously in the generated glue.
fn string_arg(value: &JsValue, name: &str) -> Result<String, SdkError> {
    match value.as_string() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(SdkError::invalid_argument(format!(
            "{name} must be a non-empty string"
        ))),
    }
}

#[wasm_bindgen]
impl Sandbox {
    /// Runs code to completion and returns its output. Code that fails is a result with a
    /// non-zero `exitCode`, not an error.
    #[wasm_bindgen(js_name = runCode)]
    pub async fn run_code(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] code: JsValue,
        options: Option<Ts<RunCodeOptions>>,
    ) -> Result<Ts<ExecutionResult>, JsValue> {
        let code = string_arg(&code, "code")?;
        let opts = arg(options, "runCode options")?;
        let signal = signal_of(&opts.signal)?;
        let exec_timeout = opts.timeout.unwrap_or(wire::defaults::EXECUTE_TIMEOUT_SECS);
        let body = opts.to_wire(code);
        let reply = self
            .inner
            .send_agent(
                self.inner
                    .agent(Method::POST, "/execute")
                    .json(&body)?
                    .timeout_ms(config::sync_exec_http_timeout_ms(exec_timeout)),
                signal.as_ref(),
            )
            .await?;
        let reply: wire::ExecuteResponse = decode(reply)?;
        Ok(out(&ExecutionResult::from(reply))?)
    }

    /// Starts code in the background and resolves at once with its `processId`. With
    /// `onStdout`/`onStderr`/`onExit`, the process's output is then followed in the background
    /// and handed to them in order until it ends (`signal` also stops that).
    #[wasm_bindgen(js_name = runCodeBackground)]
    pub async fn run_code_background(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] code: JsValue,
        options: Option<Ts<RunCodeBackgroundOptions>>,
    ) -> Result<Ts<BackgroundExecution>, JsValue> {
        let code = string_arg(&code, "code")?;
        let opts = arg(options, "runCodeBackground options")?;
        let signal = signal_of(&opts.signal)?;
        let callbacks = OutputCallbacks::new(&opts.on_stdout, &opts.on_stderr, &opts.on_exit)?;
        let requested_timeout = opts.timeout;
        let body = opts.to_wire(code);
        let reply = self
            .inner
            .send_agent(
                self.inner
                    .agent(Method::POST, "/execute/background")
                    .json(&body)?
                    .timeout_ms(config::BACKGROUND_HTTP_TIMEOUT_MS),
                signal.as_ref(),
            )
            .await?;
        let reply: wire::BackgroundExecuteResponse = decode(reply)?;
        if let Some(callbacks) = callbacks {
            callbacks.follow(
                self.inner.clone(),
                reply.process_id.clone(),
                opts.lines.unwrap_or(false),
                signal,
            );
        }
        Ok(out(&BackgroundExecution::from_wire(
            reply,
            requested_timeout,
        ))?)
    }

    /// Starts code like `runCodeBackground` and has the server POST the result to
    /// `callbackUrl` when it ends (signed when `callbackSignatureSecret` is given).
    #[wasm_bindgen(js_name = runCodeAsync)]
    pub async fn run_code_async(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] code: JsValue,
        options: Ts<RunCodeAsyncOptions>,
    ) -> Result<Ts<AsyncExecution>, JsValue> {
        let code = string_arg(&code, "code")?;
        let opts = arg(Some(options), "runCodeAsync options")?;
        if opts.callback_url.is_empty() {
            return Err(SdkError::invalid_argument("callbackUrl is required").into());
        }
        let signal = signal_of(&opts.signal)?;
        let body = opts.to_wire(code);
        let reply = self
            .inner
            .send_agent(
                self.inner
                    .agent(Method::POST, "/execute/async")
                    .json(&body)?
                    .timeout_ms(config::BACKGROUND_HTTP_TIMEOUT_MS),
                signal.as_ref(),
            )
            .await?;
        let reply: wire::AsyncExecuteResponse = decode(reply)?;
        Ok(out(&AsyncExecution::from(reply))?)
    }

    /// Every background process of the sandbox, with its output so far.
    #[wasm_bindgen(js_name = listProcesses)]
    pub async fn list_processes(
        &self,
        options: Option<Ts<CallOptions>>,
    ) -> Result<Vec<Ts<ProcessInfo>>, JsValue> {
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        let reply = self
            .inner
            .send_agent(
                self.inner.agent(Method::GET, "/execute/processes"),
                signal.as_ref(),
            )
            .await?;
        let list: wire::ProcessList = decode(reply)?;
        let mut processes = Vec::with_capacity(list.processes.len());
        for p in list.processes {
            processes.push(out(&ProcessInfo::from(p))?);
        }
        Ok(processes)
    }

    /// One background process.
    #[wasm_bindgen(js_name = getProcess)]
    pub async fn get_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<CallOptions>>,
    ) -> Result<Ts<ProcessInfo>, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        Ok(out(&self.fetch_process(&id, signal.as_ref()).await?)?)
    }

    /// Polls a process until it has ended (`completed`, `failed`, `killed` or `timeout`) and
    /// returns its final record.
    #[wasm_bindgen(js_name = waitForProcess)]
    pub async fn wait_for_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<WaitOptions>>,
    ) -> Result<Ts<ProcessInfo>, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "waitForProcess options")?;
        let signal = signal_of(&opts.signal)?;
        let interval = opts.interval_ms.unwrap_or(DEFAULT_POLL_MS).max(10);
        let limit_ms = opts
            .timeout_ms
            .map(f64::from)
            .or(opts.timeout.map(|s| s * 1000.0));
        let deadline = limit_ms.map(|ms| js_sys::Date::now() + ms);
        loop {
            let p = self.fetch_process(&id, signal.as_ref()).await?;
            if p.status.is_final() {
                return Ok(out(&p)?);
            }
            if deadline.is_some_and(|d| js_sys::Date::now() + f64::from(interval) > d) {
                return Err(SdkError::new(
                    ErrorKind::Timeout,
                    format!(
                        "process {id} was still {} when waitForProcess gave up",
                        status_str(&p)
                    ),
                )
                .into());
            }
            sleep(interval, signal.as_ref()).await?;
        }
    }

    /// Kills a background process; its record stays, with status `killed`.
    #[wasm_bindgen(js_name = killProcess)]
    pub async fn kill_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<CallOptions>>,
    ) -> Result<Ts<ProcessActionResult>, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        let path = format!("/execute/kill/{}", encode(&id));
        let reply = self
            .inner
            .send_agent(
                self.inner
                    .agent(Method::POST, &path)
                    .idempotent(true)
                    .not_found(NotFoundHint::Process),
                signal.as_ref(),
            )
            .await?;
        let reply: wire::ProcessActionReply = decode(reply)?;
        Ok(out(&ProcessActionResult::from(reply))?)
    }

    /// Forgets an ended process's record. A running process must be killed first: the
    /// server answers 409 (`SandlotError`, code `CONFLICT`).
    #[wasm_bindgen(js_name = removeProcess)]
    pub async fn remove_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<CallOptions>>,
    ) -> Result<Ts<ProcessActionResult>, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        let path = format!("/execute/processes/{}", encode(&id));
        let reply = self
            .inner
            .send_agent(
                self.inner
                    .agent(Method::DELETE, &path)
                    .not_found(NotFoundHint::Process),
                signal.as_ref(),
            )
            .await?;
        let reply: wire::ProcessActionReply = decode(reply)?;
        Ok(out(&ProcessActionResult::from(reply))?)
    }
}

impl Sandbox {
    async fn fetch_process(
        &self,
        id: &str,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<ProcessInfo, SdkError> {
        let path = format!("/execute/processes/{}", encode(id));
        let reply = self
            .inner
            .send_agent(
                self.inner
                    .agent(Method::GET, &path)
                    .not_found(NotFoundHint::Process),
                signal,
            )
            .await?;
        let p: wire::ProcessInfo = decode(reply)?;
        Ok(p.into())
    }
}

fn status_str(p: &ProcessInfo) -> String {
    serde_wasm_bindgen::to_value(&p.status)
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}
