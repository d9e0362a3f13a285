//! The one generic agent call: a method, a path, an optional JSON body and a run-time limit.
//! The package's JS surface builds its thin namespaces on it (`sandbox.commands`, and the
//! files, terminal and metrics calls to come): their HTTP, token, retries and typed errors
//! stay here in one place, and each namespace costs the .wasm nothing.

use gloo_net::http::Method;
use wasm_bindgen::prelude::*;

use crate::config;
use crate::errors::{ErrorKind, SdkError};
use crate::http::signal_of;
use crate::sandbox::Sandbox;

#[wasm_bindgen]
impl Sandbox {
    /// Sends `method path` to the sandbox's agent with `body` (any JSON value; `undefined`
    /// for none) and resolves with the parsed reply. `runSeconds` is the run-time limit of a
    /// call that runs something (the HTTP call then waits that plus the usual grace). GET
    /// and DELETE may be retried; others never are.
    #[wasm_bindgen(js_name = __agentCall, skip_typescript)]
    pub async fn agent_call(
        &self,
        method: String,
        path: String,
        body: JsValue,
        run_seconds: Option<f64>,
        signal: JsValue,
    ) -> Result<JsValue, JsValue> {
        let method = match method.as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            other => {
                let message = format!("unsupported method {other}");
                return Err(SdkError::new(ErrorKind::Validation, message).into());
            }
        };
        let signal = signal_of(&signal)?;
        let mut call = self.inner.agent(method, &path);
        if !body.is_undefined() {
            call.body = js_sys::JSON::stringify(&body)?.as_string();
        }
        if let Some(seconds) = run_seconds {
            call = call.timeout_ms(config::sync_exec_http_timeout_ms(seconds.max(0.0) as u64));
        }
        Ok(self.inner.send_agent(call, signal.as_ref()).await?)
    }
}
