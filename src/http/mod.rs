//! The one request core every SDK call goes through.
//!
//! It calls the platform's `fetch(url, init)` directly with a plain init object (no
//! `Request` object in between), reads 2xx bodies with `response.json()` (parsed in JS and
//! handed to serde-wasm-bindgen: no copy of the text into wasm, no serde_json in the wasm),
//! turns non-2xx replies into [`SdkError`]s, bounds each attempt with a timeout, retries
//! idempotent calls, and honours the caller's `AbortSignal`.
//!
//! Each attempt of a plain call is bounded by `AbortSignal.timeout(ms)`, combined with the
//! caller's signal by `AbortSignal.any` when there is one: native objects, no controller,
//! listener or JS timer of ours. Which of the two has fired decides between `AbortError` and
//! `TimeoutError`. `fetch` is bound with `catch`, so a rejection with a non-`Error` value
//! (what `controller.abort("some string")` produces) is just a JsValue here. (gloo-net, which
//! sent requests before, trapped on such a rejection with a wasm `unreachable`.)
//!
//! Where `AbortSignal.timeout` or `AbortSignal.any` is missing, and for streams, an attempt
//! instead gets an internal `AbortController` that is aborted *without* a reason, either by a
//! listener on the caller's signal or by the attempt's timer ([`abort::AbortGuard`]). Streams
//! need it: their timer is disarmed once the server answers, while the caller's signal stays
//! wired. They also build a `Request` and hold it while the body is read (nodejs/node#55428,
//! see `abort`).
//!
//! Split along its seams: this file is the call itself (building, sending, retrying);
//! `abort` wires the caller's signal and the time budgets to each attempt; `reply` reads
//! bodies and error replies; `event_stream` reads a Server-Sent Events body chunk by chunk.

mod abort;
mod event_stream;
mod reply;

use std::future::Future;
use std::pin::Pin;

use gloo_net::http::Method;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, ReadableStreamDefaultReader};

use crate::config;
use crate::errors::{NotFoundHint, SdkError};
use abort::{send_fetch, Attempt};
use reply::reply_error;

pub use abort::AbortGuard;
pub use abort::{not_aborted, signal_of, sleep, until};
pub use event_stream::{EventStream, ReadEnd};
pub use reply::{decode, parse_number, to_js, to_json};

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
    /// A body sent as it is (`FormData`, `Blob`, bytes, a `ReadableStream`) instead of JSON,
    /// with its `Content-Type` when `fetch` cannot infer it (a hand-made multipart stream).
    pub raw_body: Option<(JsValue, Option<String>)>,
    /// Budget of one attempt, reading the body included.
    pub timeout_ms: u32,
    /// GET, DELETE and kill may be retried; create and execute never are.
    pub idempotent: bool,
    pub not_found: NotFoundHint,
    /// The `Accept` header: JSON, unless an event stream or a file is asked for.
    pub accept: &'static str,
}

impl Call {
    pub fn new(method: Method, url: String, auth: Auth) -> Self {
        let idempotent = matches!(method, Method::GET | Method::DELETE);
        Self {
            method,
            url,
            auth,
            body: None,
            raw_body: None,
            timeout_ms: config::DEFAULT_HTTP_TIMEOUT_MS,
            idempotent,
            not_found: NotFoundHint::Generic,
            accept: "application/json",
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
        Box::pin(self.retrying(signal, |call, signal| Box::pin(call.send_once(signal))))
    }

    /// Runs `once` until it succeeds or fails for good: an idempotent call that failed in a
    /// transient way (network, 429, 502–504) is sent again after a backoff, at most
    /// `MAX_ATTEMPTS` times in all.
    async fn retrying<'a, T>(
        &'a self,
        signal: Option<&'a AbortSignal>,
        once: impl Fn(&'a Self, Option<&'a AbortSignal>) -> LocalBoxFuture<'a, Result<T, SdkError>>,
    ) -> Result<T, SdkError> {
        let mut attempt = 1;
        loop {
            match once(self, signal).await {
                Err(e) if self.idempotent && attempt < config::MAX_ATTEMPTS && e.is_retryable() => {
                    let Some(wait) = config::backoff_ms(attempt, e.retry_after) else {
                        return Err(e);
                    };
                    sleep(wait, signal).await?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends the call and decodes the reply into `T`.
    pub async fn fetch<T: crate::args::FromJs>(
        &self,
        signal: Option<&AbortSignal>,
    ) -> Result<T, SdkError> {
        decode(self.send(signal).await?)
    }

    async fn send_once(&self, signal: Option<&AbortSignal>) -> Result<JsValue, SdkError> {
        let attempt = Attempt::arm(signal, self.timeout_ms)?;
        let init = self.init(&attempt.signal());
        let response = send_fetch(&JsValue::from_str(&self.url), &init)
            .await
            .map_err(|e| attempt.js_error(&e, &self.url))?;
        let status = response.status();
        if !(200..300).contains(&status) {
            let text = read_body(response.text(), &attempt, &self.url).await?;
            return Err(reply_error(
                status,
                &text,
                &response.headers(),
                self.not_found,
            ));
        }
        // An empty 2xx body is `null`; `json()` would reject it.
        let empty = status == 204
            || status == 205
            || response
                .headers()
                .get("content-length")
                .ok()
                .flatten()
                .as_deref()
                == Some("0");
        if empty {
            return Ok(JsValue::NULL);
        }
        // `json()` parses in JS: the body is never copied into wasm as text.
        JsFuture::from(
            response
                .json()
                .map_err(|e| attempt.js_error(&e, &self.url))?,
        )
        .await
        .map_err(|e| {
            if e.dyn_ref::<js_sys::SyntaxError>().is_some() {
                SdkError::invalid_response(format!(
                    "{} {} answered {status} with a body that is not JSON",
                    self.method, self.url
                ))
            } else {
                attempt.js_error(&e, &self.url)
            }
        })
    }

    /// Sends the call and resolves once the server has answered 2xx, with the response (its
    /// body unread) and the guard that keeps the caller's signal wired to it. The time budget
    /// of an attempt covers the wait for the answer, not the body. An idempotent call (a
    /// stream of a known process, a download) is retried like [`Call::send`]: a connection
    /// dropped before the answer is as transient there as anywhere.
    pub fn open<'a>(
        &'a self,
        signal: Option<&'a AbortSignal>,
    ) -> LocalBoxFuture<'a, Result<(web_sys::Response, AbortGuard), SdkError>> {
        Box::pin(self.retrying(signal, Self::open_once))
    }

    fn open_once<'a>(
        &'a self,
        signal: Option<&'a AbortSignal>,
    ) -> LocalBoxFuture<'a, Result<(web_sys::Response, AbortGuard), SdkError>> {
        Box::pin(async move {
            let mut guard = AbortGuard::arm(signal, Some(self.timeout_ms))?;
            let init = self.init(&guard.controller.signal());
            let response = guard
                .send(&self.url, &init)
                .await
                .map_err(|e| guard.js_error(&e, &self.url))?;
            let status = response.status();
            if !(200..300).contains(&status) {
                let attempt = Attempt::Guard(guard);
                let text = read_body(response.text(), &attempt, &self.url).await?;
                return Err(reply_error(
                    status,
                    &text,
                    &response.headers(),
                    self.not_found,
                ));
            }
            // The answer came: from here on only the caller's signal (and, for event
            // streams, the stream layer's idle watchdog) end the body.
            guard.disarm_timer();
            Ok((response, guard))
        })
    }

    /// The plain `fetch` init object: method, headers, JSON body (if any) and `signal`.
    fn init(&self, signal: &AbortSignal) -> js_sys::Object {
        let set = |target: &js_sys::Object, key: &str, value: &JsValue| {
            let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
        };
        let headers = js_sys::Object::new();
        set(&headers, "Accept", &JsValue::from_str(self.accept));
        match &self.auth {
            Auth::None => {}
            Auth::ApiKey(key) => set(&headers, "X-API-Key", &JsValue::from_str(key)),
            Auth::Bearer(token) => set(
                &headers,
                "Authorization",
                &JsValue::from_str(&format!("Bearer {token}")),
            ),
        }
        let init = js_sys::Object::new();
        set(&init, "method", &JsValue::from_str(self.method.as_str()));
        if let Some(body) = &self.body {
            set(
                &headers,
                "Content-Type",
                &JsValue::from_str("application/json"),
            );
            set(&init, "body", &JsValue::from_str(body));
        }
        if let Some((body, content_type)) = &self.raw_body {
            if let Some(content_type) = content_type {
                set(&headers, "Content-Type", &JsValue::from_str(content_type));
            }
            // A stream body is sent as it is read (Node, Deno and Bun need to be told).
            if body.is_instance_of::<web_sys::ReadableStream>() {
                set(&init, "duplex", &JsValue::from_str("half"));
            }
            set(&init, "body", body);
        }
        set(&init, "headers", &headers);
        set(&init, "signal", signal);
        init
    }
}

/// The event stream of a response [`Call::open`] opened: a reader over its body.
pub fn event_stream(
    response: web_sys::Response,
    guard: AbortGuard,
    url: &str,
) -> Result<EventStream, SdkError> {
    let body = response
        .body()
        .ok_or_else(|| SdkError::invalid_response(format!("{url} answered without a body")))?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    Ok(EventStream::new(reader, guard, url.to_string()))
}

/// Awaits a body read (`text()`), mapping a failure through the attempt's classification.
async fn read_body(
    read: Result<js_sys::Promise, JsValue>,
    attempt: &Attempt,
    url: &str,
) -> Result<String, SdkError> {
    let promise = read.map_err(|e| attempt.js_error(&e, url))?;
    let text = JsFuture::from(promise)
        .await
        .map_err(|e| attempt.js_error(&e, url))?;
    Ok(text.as_string().unwrap_or_default())
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
