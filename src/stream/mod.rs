//! Live process output: Server-Sent Events read with `fetch` and handed to JS as an async
//! iterable (`for await (const event of stream)`).
//!
//! Not `EventSource` (it cannot send a bearer token, and Node 20 has none) nor WebSocket
//! (absent from Node 20): a `fetch` body read chunk by chunk works in every runtime. The
//! stream survives a dropped or silent connection: every output event carries its sequence
//! number, so the SDK reconnects with `?since=<last seq>` and the server sends exactly the
//! events after it, nothing twice and nothing missed.
//!
//! Split along its seams: `sse` parses the event-stream body, `lines` re-frames output into
//! whole lines, `state` is one stream's connection and resume logic, `callbacks` follows a
//! process for `runCodeBackground`'s output callbacks; this file is the exported stream and
//! the two calls that open one.

mod callbacks;
mod feed;
mod lines;
mod sse;
mod state;

use std::cell::RefCell;
use std::rc::Rc;

use gloo_net::http::Method;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::args::{arg, out, string_arg};
use crate::config;
use crate::errors::{ErrorKind, SdkError};
use crate::http::signal_of;
use crate::sandbox::Sandbox;
use crate::types::{RunCodeStreamOptions, StreamEvent, StreamOptions};
use lines::LineFramer;
use state::{Shared, StreamState};

pub(crate) use callbacks::OutputCallbacks;
pub use feed::EventFeed;

type SharedState = Rc<RefCell<Option<StreamState>>>;

/// Live output of one process: `for await (const event of stream) { ... }`. Events are
/// `start` (runCodeStream only), `stdout`, `stderr`, `truncated`, and a final `exit`, after
/// which the iteration ends. Leaving the loop early (or `close()`) closes the connection; the
/// process itself keeps running.
#[wasm_bindgen]
pub struct ProcessStream {
    state: SharedState,
    shared: Rc<Shared>,
}

/// The iterator behind `for await` over a `ProcessStream`.
#[wasm_bindgen]
pub struct ProcessStreamIterator {
    state: SharedState,
    shared: Rc<Shared>,
}

fn iter_result(value: &JsValue, done: bool) -> JsValue {
    let result = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&result, &JsValue::from_str("value"), value);
    let _ = js_sys::Reflect::set(&result, &JsValue::from_str("done"), &JsValue::from(done));
    result.into()
}

/// Marks a stream closed and cancels its pending read, if any.
async fn close_reader(shared: &Shared) {
    shared.closed.set(true);
    let reader = shared.reader.borrow().clone();
    if let Some(reader) = reader {
        let _ = wasm_bindgen_futures::JsFuture::from(reader.cancel()).await;
    }
}

/// Stops the stream: a pending read ends at once, later `next()` calls are done.
async fn close(state: &SharedState, shared: &Shared) {
    close_reader(shared).await;
    // When no next() is running the state is here; release its connection too.
    let idle = state.borrow_mut().take();
    if let Some(mut s) = idle {
        s.ended = true;
        s.disconnect();
        *state.borrow_mut() = Some(s);
    }
}

#[wasm_bindgen]
impl ProcessStream {
    #[wasm_bindgen(js_name = "[Symbol.asyncIterator]")]
    pub fn iterator(&self) -> ProcessStreamIterator {
        ProcessStreamIterator {
            state: self.state.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Closes the connection. The process keeps running; `streamProcess` can follow it again.
    pub async fn close(&self) {
        close(&self.state, &self.shared).await;
    }
}

#[wasm_bindgen]
impl ProcessStreamIterator {
    #[wasm_bindgen(unchecked_return_type = "IteratorResult<StreamEvent, undefined>")]
    pub async fn next(&self) -> Result<JsValue, JsValue> {
        let taken = self.state.borrow_mut().take();
        let mut state = taken.ok_or_else(|| {
            SdkError::new(
                ErrorKind::Sandlot,
                "next() called while an earlier next() is still pending",
            )
            .with_code("STREAM_BUSY")
        })?;
        let result = state.next().await;
        *self.state.borrow_mut() = Some(state);
        match result? {
            Some(event) => Ok(iter_result(&out(&StreamEvent::from(event))?.into(), false)),
            None => Ok(iter_result(&JsValue::UNDEFINED, true)),
        }
    }

    /// Called by `for await` when the loop is left early: closes the connection.
    #[wasm_bindgen(
        js_name = "return",
        unchecked_return_type = "IteratorResult<StreamEvent, undefined>"
    )]
    pub async fn return_(&self) -> JsValue {
        close(&self.state, &self.shared).await;
        iter_result(&JsValue::UNDEFINED, true)
    }
}

impl Sandbox {
    async fn open_stream(&self, mut state: StreamState) -> Result<ProcessStream, SdkError> {
        state.connect().await?;
        let shared = state.shared.clone();
        Ok(ProcessStream {
            state: Rc::new(RefCell::new(Some(state))),
            shared,
        })
    }
}

/// The two stream calls resolve to the stream, but the package's JS surface
/// (`pkg-template/src/surface.js`) returns their promise as a `StreamPromise`, which can also
/// be iterated directly. Their declarations say so here (merged into the class's), since an
/// exported `async fn` is always declared to return a plain `Promise`.
#[wasm_bindgen(typescript_custom_section)]
const STREAM_CALLS_TS: &str = r#"
export interface Sandbox {
    /**
     * Follows a process's output live, from the start of what the server kept (or after
     * `since`), until it ends. Works for running and for ended processes. Await it for the
     * `ProcessStream`, or iterate it directly: `for await (const e of sandbox.streamProcess(id))`.
     */
    streamProcess(processId: string, options?: StreamOptions | null): StreamPromise<StreamEvent, ProcessStream>;
    /**
     * Starts code (recorded like a background process) and streams its output: the first
     * event is `start` with its `processId`, the last is `exit`. Default `timeout` 60 s.
     * Await it for the `ProcessStream`, or iterate it directly:
     * `for await (const e of sandbox.runCodeStream(code))`.
     */
    runCodeStream(code: string, options?: RunCodeStreamOptions | null): StreamPromise<StreamEvent, ProcessStream>;
}
"#;

#[wasm_bindgen]
impl Sandbox {
    /// Follows a process's output live (declared above).
    #[wasm_bindgen(js_name = streamProcess, skip_typescript)]
    pub async fn stream_process(
        &self,
        process_id: JsValue,
        options: Option<Ts<StreamOptions>>,
    ) -> Result<ProcessStream, JsValue> {
        let id = string_arg(&process_id, "processId")?;
        let opts = arg(options, "streamProcess options")?;
        let signal = signal_of(&opts.signal)?;
        let mut state = StreamState::new(self.inner.clone(), signal);
        state.framer = opts.lines.unwrap_or(false).then(LineFramer::default);
        state.process_id = Some(id);
        state.last_seq = opts.since;
        Ok(self.open_stream(state).await?)
    }

    /// Starts code and streams its output (declared above).
    #[wasm_bindgen(js_name = runCodeStream, skip_typescript)]
    pub async fn run_code_stream(
        &self,
        code: JsValue,
        options: Option<Ts<RunCodeStreamOptions>>,
    ) -> Result<ProcessStream, JsValue> {
        let code = string_arg(&code, "code")?;
        let opts = arg(options, "runCodeStream options")?;
        let signal = signal_of(&opts.signal)?;
        let mut state = StreamState::new(self.inner.clone(), signal);
        state.framer = opts.lines.unwrap_or(false).then(LineFramer::default);
        state.first = Some(
            self.inner
                .agent(Method::POST, "/execute/stream")
                .json(&opts.to_wire(code))?
                .timeout_ms(config::BACKGROUND_HTTP_TIMEOUT_MS),
        );
        Ok(self.open_stream(state).await?)
    }
}
