//! The one request core every SDK call goes through.
//!
//! It sends through gloo-net (the platform's `fetch`), parses bodies with `JSON.parse` and
//! serde-wasm-bindgen (no serde_json in the wasm), turns non-2xx replies into [`SdkError`]s,
//! bounds each attempt with a timeout, retries idempotent calls, and honours the caller's
//! `AbortSignal`.
//!
//! The caller's signal is never handed to `fetch` itself: gloo-net traps (a wasm
//! `unreachable`, which kills a Node process) when `fetch` rejects with a non-`Error` value,
//! which is what `controller.abort("some string")` produces. Each attempt instead gets an
//! internal `AbortController` that is aborted *without* a reason, either by a listener on the
//! caller's signal or by the attempt's timer; which of the two fired decides between
//! `AbortError` and `TimeoutError`.
//!
//! Split along its seams: this file is the call itself (building, sending, retrying);
//! `abort` wires the caller's signal and the time budgets to each attempt; `reply` reads
//! bodies and error replies; `event_stream` reads a Server-Sent Events body chunk by chunk.

mod abort;
mod event_stream;
mod reply;

use std::future::Future;
use std::pin::Pin;

use gloo_net::http::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AbortSignal, ReadableStreamDefaultReader};

use crate::config;
use crate::errors::{NotFoundHint, SdkError};
use abort::AbortGuard;
use reply::reply_error;

pub use abort::{not_aborted, signal_of, sleep, until};
pub use event_stream::{EventStream, ReadEnd};
pub use reply::{decode, parse_number, to_json};

/// A URL path segment, percent-encoded.
pub fn encode(segment: &str) -> String {
    String::from(js_sys::encode_uri_component(segment))
}

/// A boxed, single-threaded future (everything here runs on the JS event loop).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// Control plane: `X-API-Key`.
    ApiKey(String),
    /// Agent: `Authorization: Bearer <token>`.
    Bearer(String),
}

/// One logical call; may be sent more than once when `idempotent`.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub url: String,
    pub auth: Auth,
    /// JSON text.
    pub body: Option<String>,
    /// Budget of one attempt, reading the body included.
    pub timeout_ms: u32,
    /// GET, DELETE and kill may be retried; create and execute never are.
    pub idempotent: bool,
    pub not_found: NotFoundHint,
}

impl Call {
    pub fn new(method: Method, url: String, auth: Auth) -> Self {
        let idempotent = matches!(method, Method::GET | Method::DELETE);
        Self {
            method,
            url,
            auth,
            body: None,
            timeout_ms: config::DEFAULT_HTTP_TIMEOUT_MS,
            idempotent,
            not_found: NotFoundHint::Generic,
        }
    }

    pub fn json<T: Serialize>(mut self, body: &T) -> Result<Self, SdkError> {
        self.body = Some(to_json(body)?);
        Ok(self)
    }

    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = ms;
        self
    }

    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    pub fn not_found(mut self, hint: NotFoundHint) -> Self {
        self.not_found = hint;
        self
    }

    /// Sends the call (with retries when allowed) and returns the parsed JSON body
    /// (`null` for an empty 2xx body). Boxed, so the wasm holds one copy of this state
    /// machine rather than one inlined into every API method (size).
    pub fn send<'a>(
        &'a self,
        signal: Option<&'a AbortSignal>,
    ) -> LocalBoxFuture<'a, Result<JsValue, SdkError>> {
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                match self.send_once(signal).await {
                    Err(e)
                        if self.idempotent
                            && attempt < config::MAX_ATTEMPTS
                            && e.is_retryable() =>
                    {
                        let Some(wait) = config::backoff_ms(attempt, e.retry_after) else {
                            return Err(e);
                        };
                        sleep(wait, signal).await?;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }

    /// Sends the call and decodes the reply into `T`.
    pub async fn fetch<T: DeserializeOwned>(
        &self,
        signal: Option<&AbortSignal>,
    ) -> Result<T, SdkError> {
        decode(self.send(signal).await?)
    }

    async fn send_once(&self, signal: Option<&AbortSignal>) -> Result<JsValue, SdkError> {
        let mut guard = AbortGuard::arm(signal, Some(self.timeout_ms))?;
        let response = self.send_under(&mut guard, "application/json").await?;
        let status = response.status();
        let headers = response.headers();
        let text = response
            .text()
            .await
            .map_err(|e| guard.fetch_error(e, &self.url))?;
        drop(guard);

        if !(200..300).contains(&status) {
            return Err(reply_error(status, &text, &headers, self.not_found));
        }
        if text.trim().is_empty() {
            return Ok(JsValue::NULL);
        }
        js_sys::JSON::parse(&text).map_err(|_| {
            SdkError::invalid_response(format!(
                "{} {} answered {status} with a body that is not JSON",
                self.method, self.url
            ))
        })
    }

    /// Opens a Server-Sent Events response: resolves once the server has answered 2xx, with a
    /// reader over the body. Never retried (the stream layer resumes by event id instead).
    pub fn open_stream<'a>(
        &'a self,
        signal: Option<&'a AbortSignal>,
    ) -> LocalBoxFuture<'a, Result<EventStream, SdkError>> {
        Box::pin(async move {
            let mut guard = AbortGuard::arm(signal, Some(self.timeout_ms))?;
            let response = self.send_under(&mut guard, "text/event-stream").await?;
            let status = response.status();
            if !(200..300).contains(&status) {
                let headers = response.headers();
                let text = response
                    .text()
                    .await
                    .map_err(|e| guard.fetch_error(e, &self.url))?;
                return Err(reply_error(status, &text, &headers, self.not_found));
            }
            let body = response.body().ok_or_else(|| {
                SdkError::invalid_response(format!("{} answered without a body", self.url))
            })?;
            let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
            // The answer came: from here on only the caller's signal (and the stream layer's
            // idle watchdog) end the stream.
            guard.disarm_timer();
            Ok(EventStream::new(reader, guard, self.url.clone()))
        })
    }

    /// The request with method, auth and abort signal set.
    /// Sends this request (with its JSON body, if any) under `guard`, accepting `accept`.
    async fn send_under(&self, guard: &mut AbortGuard, accept: &str) -> Result<Response, SdkError> {
        let builder = self.builder(guard).header("Accept", accept);
        let request = match &self.body {
            Some(body) => builder
                .header("Content-Type", "application/json")
                .body(body.as_str()),
            None => builder.build(),
        }
        .map_err(|e| guard.fetch_error(e, &self.url))?;
        guard
            .send(request)
            .await
            .map_err(|e| guard.fetch_error(e, &self.url))
    }

    fn builder(&self, guard: &AbortGuard) -> RequestBuilder {
        let builder = RequestBuilder::new(&self.url)
            .method(self.method.clone())
            .abort_signal(Some(&guard.controller.signal()));
        match &self.auth {
            Auth::None => builder,
            Auth::ApiKey(key) => builder.header("X-API-Key", key),
            Auth::Bearer(token) => builder.header("Authorization", &format!("Bearer {token}")),
        }
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use crate::errors::ErrorKind;
    use wasm_bindgen_test::wasm_bindgen_test;
    use web_sys::AbortController;

    #[wasm_bindgen_test]
    async fn already_aborted_signal_rejects_before_sending() {
        let controller = AbortController::new().unwrap();
        controller.abort();
        let call = Call::new(Method::GET, "http://127.0.0.1:9/".into(), Auth::None);
        let e = call.send(Some(&controller.signal())).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Aborted);
    }

    #[wasm_bindgen_test]
    async fn unreachable_server_is_a_network_error_after_retries() {
        // Port 9 (discard) is closed on loopback; the GET is retried, then reported.
        let call = Call::new(
            Method::GET,
            "http://127.0.0.1:9/v1/sandboxes".into(),
            Auth::None,
        );
        let e = call.send(None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Network);
        assert_eq!(e.code, "NETWORK_ERROR");
    }
}
