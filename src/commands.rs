//! Commands in a sandbox: `sandbox.commands.run(command, options)` (the façade's
//! `commands` namespace calls `runCommand`). A command is a shell line, or a program with
//! `args`; in the background it is a process like `runCodeBackground`'s.

use gloo_net::http::Method;
use sandlot_protocol as wire;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::args::{arg, out, string_arg};
use crate::config;
use crate::http::{decode, signal_of, sleep};
use crate::sandbox::Sandbox;
use crate::stream::OutputCallbacks;
use crate::types::{BackgroundExecution, ExecutionResult, RunCommandOptions};

/// `/commands/run`'s timeout when none is given (seconds).
const RUN_TIMEOUT_SECS: u64 = 30;
/// Between looks at a followed command's record when its stream ended before it did.
const FINAL_POLL_MS: u32 = 200;

#[wasm_bindgen]
impl Sandbox {
    /// Runs a command and resolves with its result (`stdout`, `stderr`, `exitCode`, ...); a
    /// command that fails is a result, not an error. With `background: true` it resolves at
    /// once with the process handle instead. `onStdout`/`onStderr` receive the output while
    /// it runs. Called as `sandbox.commands.run(...)`.
    #[wasm_bindgen(js_name = runCommand, unchecked_return_type = "ExecutionResult | BackgroundProcess")]
    pub async fn run_command(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] command: JsValue,
        options: Option<Ts<RunCommandOptions>>,
    ) -> Result<JsValue, JsValue> {
        let command = string_arg(&command, "command")?;
        let opts = arg(options, "commands.run options")?;
        let signal = signal_of(&opts.signal)?;
        let callbacks =
            OutputCallbacks::new(&opts.on_stdout, &opts.on_stderr, &JsValue::UNDEFINED)?;
        let background = opts.background.unwrap_or(false);
        if !background && callbacks.is_none() {
            let timeout = opts.timeout.unwrap_or(RUN_TIMEOUT_SECS);
            let call = self
                .inner
                .agent(Method::POST, "/commands/run")
                .json(&opts.to_wire(command))?
                .timeout_ms(config::sync_exec_http_timeout_ms(timeout));
            // The reply is `/execute`'s shape plus `command`, which the result leaves out.
            let reply: wire::ExecuteResponse =
                decode(self.inner.send_agent(call, signal.as_ref()).await?)?;
            return Ok(out(&ExecutionResult::from(reply))?.into());
        }
        // In the background, or followed live: a background command and its output stream.
        let mut request = opts.to_wire(command);
        if !background {
            request.timeout = Some(opts.timeout.unwrap_or(RUN_TIMEOUT_SECS));
        }
        let call = self
            .inner
            .agent(Method::POST, "/commands/background")
            .json(&request)?
            .timeout_ms(config::BACKGROUND_HTTP_TIMEOUT_MS);
        let reply: wire::BackgroundExecuteResponse =
            decode(self.inner.send_agent(call, signal.as_ref()).await?)?;
        let id = reply.process_id.clone();
        let lines = opts.lines.unwrap_or(false);
        if background {
            if let Some(callbacks) = callbacks {
                callbacks.follow(self.inner.clone(), id, lines, signal);
            }
            return Ok(out(&BackgroundExecution::from_wire(reply, request.timeout))?.into());
        }
        if let Some(callbacks) = callbacks {
            callbacks
                .deliver(self.inner.clone(), id.clone(), lines, signal.clone())
                .await;
        }
        // The stream ends with the process; if it was lost, the record says when it ends.
        loop {
            let record = self.fetch_wire_process(&id, signal.as_ref()).await?;
            if record.status.is_final() {
                return Ok(out(&ExecutionResult::from(record))?.into());
            }
            sleep(FINAL_POLL_MS, signal.as_ref()).await?;
        }
    }
}
