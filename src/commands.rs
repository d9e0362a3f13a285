//! Commands in a sandbox: `sandbox.commands.run(command, options)` (the façade's
//! `commands` namespace calls `runCommand` and maps its reply). A command is a shell line, or
//! a program with `args`; in the background it is a process like `runCodeBackground`'s.

use gloo_net::http::Method;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::args::{arg, string_arg};
use crate::config;
use crate::http::{signal_of, sleep};
use crate::process::unexpected_reply;
use crate::sandbox::Sandbox;
use crate::stream::OutputCallbacks;
use crate::types::{effective_timeout, RunCommandOptions};

/// `/commands/run`'s timeout when none is given (seconds).
const RUN_TIMEOUT_SECS: u64 = 30;
/// Between looks at a followed command's record when its stream ended before it did.
const FINAL_POLL_MS: u32 = 200;

#[wasm_bindgen]
impl Sandbox {
    /// Runs a command. Resolves with the wire reply, which the JS surface maps: `runCode`'s
    /// result (`stdout`, `stderr`, `exitCode`, ...; a failing command is a result, not an
    /// error), or with `background: true` at once a background process. `onStdout`/`onStderr`
    /// receive the output while it runs. Called as `sandbox.commands.run(...)`.
    #[wasm_bindgen(js_name = runCommand, skip_typescript)]
    pub async fn run_command(
        &self,
        command: JsValue,
        options: Option<Ts<RunCommandOptions>>,
    ) -> Result<JsValue, JsValue> {
        let command = string_arg(&command, "command")?;
        let opts = arg(options, "commands.run options")?;
        let signal = signal_of(&opts.signal)?;
        let callbacks =
            OutputCallbacks::new(&opts.on_stdout, &opts.on_stderr, &JsValue::UNDEFINED)?;
        let background = opts.background.unwrap_or(false);
        let timeout = opts.timeout.or((!background).then_some(RUN_TIMEOUT_SECS));
        let mut request = opts.to_wire(command);
        request.timeout = timeout;
        if !background && callbacks.is_none() {
            // `/execute`'s reply shape (plus `command`, which the mapping leaves out).
            let call = self
                .inner
                .agent(Method::POST, "/commands/run")
                .json(&request)?
                .timeout_ms(config::sync_exec_http_timeout_ms(
                    timeout.unwrap_or(RUN_TIMEOUT_SECS),
                ));
            return Ok(self.inner.send_agent(call, signal.as_ref()).await?);
        }
        // In the background, or followed live: a background command and its output stream.
        let call = self
            .inner
            .agent(Method::POST, "/commands/background")
            .json(&request)?
            .timeout_ms(config::BACKGROUND_HTTP_TIMEOUT_MS);
        let reply = self.inner.send_agent(call, signal.as_ref()).await?;
        let get = |key: &str| js_sys::Reflect::get(&reply, &JsValue::from_str(key)).ok();
        let Some(id) = get("process_id").and_then(|id| id.as_string()) else {
            return Err(unexpected_reply("a BackgroundExecution record").into());
        };
        let lines = opts.lines.unwrap_or(false);
        if background {
            let timeout = effective_timeout(get("timeout").and_then(|t| t.as_f64()), timeout);
            let _ = js_sys::Reflect::set(&reply, &"timeout".into(), &timeout.into());
            if let Some(callbacks) = callbacks {
                callbacks.follow(self.inner.clone(), id, lines, signal);
            }
            return Ok(reply);
        }
        if let Some(callbacks) = callbacks {
            callbacks
                .deliver(self.inner.clone(), id.clone(), lines, signal.clone())
                .await;
        }
        // The stream ends with the process; if it was lost, the record says when it ends.
        loop {
            let (record, status) = self.fetch_process(&id, signal.as_ref()).await?;
            if status.is_final() {
                // A final record carries what a result needs, but `success`.
                let exit = js_sys::Reflect::get(&record, &"exit_code".into()).ok();
                let success = exit.and_then(|e| e.as_f64()) == Some(0.0);
                let _ = js_sys::Reflect::set(&record, &"success".into(), &success.into());
                return Ok(record);
            }
            sleep(FINAL_POLL_MS, signal.as_ref()).await?;
        }
    }
}
