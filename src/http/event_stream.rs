//! An open Server-Sent Events body, read chunk by chunk with an idle watchdog.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::ReadableStreamDefaultReader;

use super::abort::{clear_timeout, set_timeout, AbortGuard};
use crate::errors::{ErrorKind, SdkError};

/// An open event-stream body; the caller's signal stays wired to it while it lives.
pub struct EventStream {
    reader: ReadableStreamDefaultReader,
    guard: AbortGuard,
    url: String,
}

/// How reading a stream chunk can end besides with bytes.
pub enum ReadEnd {
    /// The body ended (the server closed it).
    Closed,
    /// The connection broke or went idle: worth resuming.
    Lost(SdkError),
    /// The caller aborted: stop.
    Aborted(SdkError),
}

impl EventStream {
    pub(super) fn new(reader: ReadableStreamDefaultReader, guard: AbortGuard, url: String) -> Self {
        Self { reader, guard, url }
    }

    /// The next chunk of the body. `idle_ms` without a byte (keepalives included) counts as a
    /// lost connection.
    pub async fn read(&mut self, idle_ms: u32) -> Result<Vec<u8>, ReadEnd> {
        let reader = self.reader.clone();
        let on_idle = Closure::once(move || {
            let _ = reader.cancel();
        });
        let ms = i32::try_from(idle_ms).unwrap_or(i32::MAX);
        let handle = set_timeout(on_idle.as_ref().unchecked_ref(), ms);
        let result = JsFuture::from(self.reader.read()).await;
        clear_timeout(&handle);
        drop(on_idle);
        let chunk = match result {
            Ok(chunk) => chunk,
            Err(e) => {
                let error = self.guard.js_error(&e, &self.url);
                return Err(
                    if error.kind == ErrorKind::Aborted || error.kind == ErrorKind::Timeout {
                        ReadEnd::Aborted(error)
                    } else {
                        ReadEnd::Lost(error)
                    },
                );
            }
        };
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .map(|v| v.is_truthy())
            .unwrap_or(true);
        if done {
            return Err(ReadEnd::Closed);
        }
        let value = js_sys::Reflect::get(&chunk, &JsValue::from_str("value")).unwrap_or_default();
        Ok(js_sys::Uint8Array::new(&value).to_vec())
    }

    /// The body's reader, for cancelling a pending read from elsewhere.
    pub fn reader(&self) -> ReadableStreamDefaultReader {
        self.reader.clone()
    }
}

/// Dropping the stream (closed, lost, or its JS object collected) closes the connection, so
/// an abandoned stream does not hold a socket open until the process ends.
impl Drop for EventStream {
    fn drop(&mut self) {
        let reader = self.reader.clone();
        // Awaited through JsFuture so a rejection (an already errored body) is handled.
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(reader.cancel()).await;
        });
    }
}
