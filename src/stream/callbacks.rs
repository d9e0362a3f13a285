//! `runCodeBackground`'s output callbacks: the process followed in the background, each
//! event handed to its callback.

use std::rc::Rc;

use sandlot_protocol as wire;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::AbortSignal;

use super::lines::LineFramer;
use super::sse::Event;
use super::state::StreamState;
use crate::args::out;
use crate::errors::{ErrorKind, SdkError};
use crate::sandbox::Inner;
use crate::types::StreamEvent;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str, error: &JsValue);
}

/// The output callbacks of `runCodeBackground`.
pub(crate) struct OutputCallbacks {
    on_stdout: Option<js_sys::Function>,
    on_stderr: Option<js_sys::Function>,
    on_exit: Option<js_sys::Function>,
}

fn callback(value: &JsValue, name: &str) -> Result<Option<js_sys::Function>, SdkError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .clone()
        .dyn_into::<js_sys::Function>()
        .map(Some)
        .map_err(|_| SdkError::invalid_argument(format!("{name} must be a function")))
}

impl OutputCallbacks {
    /// The callbacks given, checked to be functions; `None` when there are none.
    pub fn new(
        on_stdout: &JsValue,
        on_stderr: &JsValue,
        on_exit: &JsValue,
    ) -> Result<Option<Self>, SdkError> {
        let callbacks = Self {
            on_stdout: callback(on_stdout, "onStdout")?,
            on_stderr: callback(on_stderr, "onStderr")?,
            on_exit: callback(on_exit, "onExit")?,
        };
        let any = callbacks.on_stdout.is_some()
            || callbacks.on_stderr.is_some()
            || callbacks.on_exit.is_some();
        Ok(any.then_some(callbacks))
    }

    /// Follows the process's output stream in the background (resuming after a dropped
    /// connection, like `streamProcess`) and calls the callbacks in order, until the process
    /// ends or `signal` fires. A callback that throws is reported once with `console.error`;
    /// a stream that cannot be resumed is reported the same way, unless the signal stopped it
    /// or the process (or sandbox) is gone.
    pub fn follow(
        self,
        inner: Rc<Inner>,
        process_id: String,
        lines: bool,
        signal: Option<AbortSignal>,
    ) {
        wasm_bindgen_futures::spawn_local(self.deliver(inner, process_id, lines, signal));
    }

    /// What [`OutputCallbacks::follow`] runs in the background.
    async fn deliver(
        self,
        inner: Rc<Inner>,
        process_id: String,
        lines: bool,
        signal: Option<AbortSignal>,
    ) {
        let mut state = StreamState::new(inner, signal);
        state.framer = lines.then(LineFramer::default);
        state.process_id = Some(process_id.clone());
        {
            let mut threw = false;
            loop {
                let event = match state.next().await {
                    Ok(Some(event)) => event,
                    Ok(None) => return,
                    Err(e) => {
                        let stopped = state.signal.as_ref().is_some_and(AbortSignal::aborted);
                        let gone = matches!(
                            e.kind,
                            ErrorKind::Aborted
                                | ErrorKind::ProcessNotFound
                                | ErrorKind::SandboxNotFound
                                | ErrorKind::SandboxLost
                        );
                        if !stopped && !gone {
                            console_error(
                                &format!(
                                    "sandlot: lost the output stream of process {process_id}:"
                                ),
                                &e.into(),
                            );
                        }
                        return;
                    }
                };
                // Results come from runs in a context, never from a background process.
                let Event::Wire(event) = event else { continue };
                let (f, arg) = match event {
                    wire::StreamEvent::Stdout(o) => (&self.on_stdout, JsValue::from_str(&o.data)),
                    wire::StreamEvent::Stderr(o) => (&self.on_stderr, JsValue::from_str(&o.data)),
                    exit @ wire::StreamEvent::Exit(_) => match out(&StreamEvent::from(exit)) {
                        Ok(ts) => (&self.on_exit, ts.into()),
                        Err(_) => continue,
                    },
                    _ => continue,
                };
                let Some(f) = f else { continue };
                if let Err(thrown) = f.call1(&JsValue::UNDEFINED, &arg) {
                    if !threw {
                        threw = true;
                        console_error(
                            &format!(
                                "sandlot: an output callback of process {process_id} threw \
                                 (reported once; the other output is still delivered):"
                            ),
                            &thrown,
                        );
                    }
                }
            }
        }
    }
}
#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn output_callbacks_must_be_functions_and_none_means_no_follow() {
        let f: JsValue = js_sys::Function::new_no_args("").into();
        let none = JsValue::UNDEFINED;
        assert!(OutputCallbacks::new(&none, &JsValue::NULL, &none)
            .unwrap()
            .is_none());
        let some = OutputCallbacks::new(&none, &none, &f).unwrap().unwrap();
        assert!(some.on_exit.is_some() && some.on_stdout.is_none());
        let e = OutputCallbacks::new(&f, &JsValue::from_str("x"), &none)
            .err()
            .unwrap();
        assert_eq!(e.code, "INVALID_ARGUMENT");
        assert!(e.message.contains("onStderr"), "{}", e.message);
    }
}
