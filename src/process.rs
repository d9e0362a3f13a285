//! Running code in a sandbox (agent routes): synchronous runs, background processes, and async
//! runs whose result is POSTed to a callback.
//!
//! Process records come back as plain objects typed `Process` / `BackgroundProcess`: the
//! package's JS surface (`pkg-template/src/surface.js`) gives them the process handle's
//! methods (`wait`, `kill`, `stream`, `refresh`) through one shared prototype. The records of
//! `runCodeBackground`, `listProcesses`, `getProcess` and `waitForProcess`, like the results
//! of `runCode`, `runCodeAsync`, `killProcess` and `removeProcess`, leave the wasm as parsed wire replies:
//! the surface maps each in one pass, with the mapper the build generates from its table
//! (`crate::types::record`).

use gloo_net::http::Method;
use sandlot_protocol as wire;
use tsify::Ts;
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use crate::args::{arg, string_arg};
use crate::config;
use crate::errors::{ErrorKind, NotFoundHint, SdkError};
use crate::http::{encode, signal_of, sleep, to_js};
use crate::sandbox::Sandbox;
use crate::stream::OutputCallbacks;
use crate::types::{
    effective_timeout, record_status, with_context, CallOptions, ListProcessesOptions,
    ProcessStatus, RunCodeAsyncOptions, RunCodeBackgroundOptions, RunCodeOptions, WaitOptions,
};

#[wasm_bindgen]
impl Sandbox {
    /// Runs code to completion and returns its output. Code that fails is a result with a
    /// non-zero `exitCode`, not an error.
    #[wasm_bindgen(js_name = runCode, unchecked_return_type = "ExecutionResult")]
    pub async fn run_code(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] code: JsValue,
        options: Option<Ts<RunCodeOptions>>,
    ) -> Result<JsValue, JsValue> {
        let code = string_arg(&code, "code")?;
        let opts = arg(options, "runCode options")?;
        let signal = signal_of(&opts.signal)?;
        let exec_timeout = opts.timeout.unwrap_or(wire::defaults::EXECUTE_TIMEOUT_SECS);
        let body = to_js(&opts.to_wire(code))?;
        with_context(&body, &opts.context, opts.fresh);
        let mut call = self
            .inner
            .agent(Method::POST, "/execute")
            .timeout_ms(config::sync_exec_http_timeout_ms(exec_timeout));
        call.body = js_sys::JSON::stringify(&body).ok().map(String::from);
        Ok(self.inner.send_agent(call, signal.as_ref()).await?)
    }

    /// Starts code in the background and resolves at once with its process handle
    /// (`processId`, `status`, ... and `wait()`, `kill()`, `stream()`, `refresh()`). With
    /// `onStdout`/`onStderr`/`onExit`, the process's output is then followed in the background
    /// and handed to them in order until it ends (`signal` also stops that).
    #[wasm_bindgen(js_name = runCodeBackground, unchecked_return_type = "BackgroundProcess")]
    pub async fn run_code_background(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] code: JsValue,
        options: Option<Ts<RunCodeBackgroundOptions>>,
    ) -> Result<JsValue, JsValue> {
        let code = string_arg(&code, "code")?;
        let opts = arg(options, "runCodeBackground options")?;
        let signal = signal_of(&opts.signal)?;
        let callbacks = OutputCallbacks::new(&opts.on_stdout, &opts.on_stderr, &opts.on_exit)?;
        let call = self
            .inner
            .agent(Method::POST, "/execute/background")
            .json(&opts.to_wire(code))?
            .timeout_ms(config::BACKGROUND_HTTP_TIMEOUT_MS);
        let reply = self.inner.send_agent(call, signal.as_ref()).await?;
        let get = |key: &str| js_sys::Reflect::get(&reply, &JsValue::from_str(key)).ok();
        let Some(id) = get("process_id").and_then(|id| id.as_string()) else {
            return Err(unexpected_reply("a BackgroundExecution record").into());
        };
        // The surface maps the rest (`BACKGROUND_EXECUTION`); the timeout is settled here.
        let timeout = effective_timeout(get("timeout").and_then(|t| t.as_f64()), opts.timeout);
        let _ = js_sys::Reflect::set(&reply, &"timeout".into(), &timeout.into());
        if let Some(callbacks) = callbacks {
            callbacks.follow(self.inner.clone(), id, opts.lines.unwrap_or(false), signal);
        }
        Ok(reply)
    }

    /// Starts code like `runCodeBackground` and has the server POST the result to
    /// `callbackUrl` when it ends (signed when `callbackSignatureSecret` is given).
    #[wasm_bindgen(js_name = runCodeAsync, unchecked_return_type = "AsyncExecution")]
    pub async fn run_code_async(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] code: JsValue,
        options: Ts<RunCodeAsyncOptions>,
    ) -> Result<JsValue, JsValue> {
        let code = string_arg(&code, "code")?;
        let opts = arg(Some(options), "runCodeAsync options")?;
        let signal = signal_of(&opts.signal)?;
        if opts.callback_url.is_empty() {
            return Err(SdkError::invalid_argument("callbackUrl is required").into());
        }
        let call = self
            .inner
            .agent(Method::POST, "/execute/async")
            .json(&opts.to_wire(code))?
            .timeout_ms(config::BACKGROUND_HTTP_TIMEOUT_MS);
        Ok(self.inner.send_agent(call, signal.as_ref()).await?)
    }

    /// The sandbox's background processes (all of them, or those the filters keep), each a
    /// process handle with its output so far.
    #[wasm_bindgen(js_name = listProcesses, unchecked_return_type = "Process[]")]
    pub async fn list_processes(
        &self,
        options: Option<Ts<ListProcessesOptions>>,
    ) -> Result<JsValue, JsValue> {
        let opts = arg(options, "listProcesses options")?;
        let signal = signal_of(&opts.signal)?;
        let path = format!("/execute/processes{}", opts.query());
        let call = self.inner.agent(Method::GET, &path);
        let reply = self.inner.send_agent(call, signal.as_ref()).await?;
        // `{ processes: [...] }`; a reply without the key is an empty list (the wire's default).
        let list = js_sys::Reflect::get(&reply, &JsValue::from_str("processes"))
            .unwrap_or(JsValue::UNDEFINED);
        if list.is_undefined() || list.is_null() {
            return Ok(js_sys::Array::new().into());
        }
        if !js_sys::Array::is_array(&list) {
            return Err(unexpected_reply("a list of processes").into());
        }
        Ok(list)
    }

    /// One background process, as a process handle.
    #[wasm_bindgen(js_name = getProcess, unchecked_return_type = "Process")]
    pub async fn get_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<CallOptions>>,
    ) -> Result<JsValue, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        Ok(self.fetch_process(&id, signal.as_ref()).await?.0)
    }

    /// Polls a process until it has ended (`completed`, `failed`, `killed` or `timeout`) and
    /// returns its final record, as a process handle. `timeout` gives up with a
    /// `TimeoutError` after that many seconds.
    #[wasm_bindgen(js_name = waitForProcess, unchecked_return_type = "Process")]
    pub async fn wait_for_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<WaitOptions>>,
    ) -> Result<JsValue, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "waitForProcess options")?;
        let signal = signal_of(&opts.signal)?;
        let interval = opts.interval_ms();
        let deadline = opts.limit_ms().map(|ms| js_sys::Date::now() + ms);
        loop {
            let (record, status) = self.fetch_process(&id, signal.as_ref()).await?;
            if status.is_final() {
                return Ok(record);
            }
            if deadline.is_some_and(|d| js_sys::Date::now() + f64::from(interval) > d) {
                let status = status.as_str();
                let message =
                    format!("process {id} was still {status} when waitForProcess gave up");
                return Err(SdkError::new(ErrorKind::Timeout, message).into());
            }
            sleep(interval, signal.as_ref()).await?;
        }
    }

    /// Kills a background process; its record stays, with status `killed`.
    #[wasm_bindgen(js_name = killProcess, unchecked_return_type = "ProcessActionResult")]
    pub async fn kill_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<CallOptions>>,
    ) -> Result<JsValue, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        let path = format!("/execute/kill/{}", encode(&id));
        let call = self
            .inner
            .agent(Method::POST, &path)
            .idempotent(true)
            .not_found(NotFoundHint::Process);
        Ok(self.inner.send_agent(call, signal.as_ref()).await?)
    }

    /// Forgets an ended process's record. A running process must be killed first: the
    /// server answers 409 (`SandlotError`, code `CONFLICT`).
    #[wasm_bindgen(js_name = removeProcess, unchecked_return_type = "ProcessActionResult")]
    pub async fn remove_process(
        &self,
        #[wasm_bindgen(js_name = processId, unchecked_param_type = "string")] process_id: JsValue,
        options: Option<Ts<CallOptions>>,
    ) -> Result<JsValue, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "options")?;
        let signal = signal_of(&opts.signal)?;
        let path = format!("/execute/processes/{}", encode(&id));
        let call = self
            .inner
            .agent(Method::DELETE, &path)
            .not_found(NotFoundHint::Process);
        Ok(self.inner.send_agent(call, signal.as_ref()).await?)
    }
}

impl Sandbox {
    /// One process's wire record (parsed, not mapped: the JS surface maps it) and its status.
    async fn fetch_process(
        &self,
        id: &str,
        signal: Option<&AbortSignal>,
    ) -> Result<(JsValue, ProcessStatus), SdkError> {
        let path = format!("/execute/processes/{}", encode(id));
        let call = self
            .inner
            .agent(Method::GET, &path)
            .not_found(NotFoundHint::Process);
        let record = self.inner.send_agent(call, signal).await?;
        match record_status(&record) {
            Some(status) => Ok((record, status)),
            None => Err(unexpected_reply("a process record")),
        }
    }
}

/// A 2xx reply that is not the shape the call returns.
fn unexpected_reply(expected: &str) -> SdkError {
    SdkError::invalid_response(format!(
        "unexpected reply from the server: expected {expected}"
    ))
}
