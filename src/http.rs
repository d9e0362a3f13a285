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

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use gloo_net::http::{Headers, Method, Request, RequestBuilder, Response};
use sandlot_protocol::{ErrorBody, ErrorDetail, ErrorField};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, ReadableStreamDefaultReader};

use crate::config;
use crate::errors::{ErrorKind, NotFoundHint, SdkError};

#[wasm_bindgen]
extern "C" {
    // Global timers: present in browsers, workers, Node and Deno. The handle is a number in
    // browsers and an object in Node, so it stays a JsValue.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
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
        let mut guard = AbortGuard::arm(signal, self.timeout_ms)?;
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
            let mut guard = AbortGuard::arm(signal, self.timeout_ms)?;
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
            Ok(EventStream {
                reader,
                guard,
                url: self.url.clone(),
            })
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

/// The error for a non-2xx reply, from its status, body and headers.
fn reply_error(status: u16, text: &str, headers: &Headers, hint: NotFoundHint) -> SdkError {
    let body = js_sys::JSON::parse(text)
        .ok()
        .filter(JsValue::is_object)
        .and_then(read_error_body);
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| parse_retry_after(&v));
    SdkError::from_response(
        status,
        body.as_ref(),
        headers.get("x-request-id"),
        retry_after,
        hint,
    )
}

/// [`ErrorBody`] with its `error` field kept as a JS value: the field is a string on the
/// agent and an object on the control plane, and resolving that here (rather than through
/// serde's untagged-enum buffering) keeps about 12 KB out of the wasm.
#[derive(serde::Deserialize)]
struct ErrorBodyView {
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    error: JsValue,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    retry_after: Option<u64>,
}

/// Reads an error reply into the protocol's [`ErrorBody`] (whose accessors decide where the
/// message and code are).
fn read_error_body(value: JsValue) -> Option<ErrorBody> {
    let view: ErrorBodyView = serde_wasm_bindgen::from_value(value).ok()?;
    let error = match view.error.as_string() {
        Some(message) => Some(ErrorField::Message(message)),
        None if view.error.is_object() => serde_wasm_bindgen::from_value::<ErrorDetail>(view.error)
            .ok()
            .map(ErrorField::Detail),
        None => None,
    };
    Some(ErrorBody {
        error,
        code: view.code,
        message: view.message,
        request_id: view.request_id,
        timestamp: view.timestamp,
        retry_after: view.retry_after,
    })
}

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

/// Serializes a wire struct to JSON text without serde_json: plain objects for maps, then
/// `JSON.stringify`.
pub fn to_json<T: Serialize>(value: &T) -> Result<String, SdkError> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    let js = value
        .serialize(&serializer)
        .map_err(|e| SdkError::invalid_argument(e.to_string()))?;
    js_sys::JSON::stringify(&js)
        .map(String::from)
        .map_err(|_| SdkError::invalid_argument("request body is not serializable"))
}

/// Reads a parsed reply into a wire type; a shape mismatch is the server's fault.
pub fn decode<T: DeserializeOwned>(value: JsValue) -> Result<T, SdkError> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| SdkError::invalid_response(format!("unexpected reply from the server: {e}")))
}

/// A decimal number as JS `Number()` reads it (strict, unlike `parseFloat`); `None` for
/// anything else. Used instead of `str::parse::<f64>`, which costs kilobytes of wasm.
pub fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let n = JsValue::from_str(text).unchecked_into_f64(); // JS unary `+`
    n.is_finite().then_some(n)
}

/// `Retry-After` is either delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<f64> {
    let value = value.trim();
    if let Some(secs) = parse_number(value) {
        return (secs >= 0.0).then_some(secs);
    }
    let at = js_sys::Date::parse(value);
    (!at.is_nan()).then(|| ((at - js_sys::Date::now()) / 1000.0).max(0.0))
}

/// Which side ended an attempt early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fired {
    No,
    Caller,
    Timer,
}

/// An attempt's internal `AbortController`, wired to the caller's signal and to a timer.
/// Dropping it removes the listener and clears the timer, so nothing outlives the attempt.
struct AbortGuard {
    controller: AbortController,
    /// The request in flight. Node's fetch (undici) links the request's own signal to ours
    /// through a weak reference: once the `Request` object is garbage-collected, aborting
    /// our controller no longer reaches a body still being read (nodejs/node#55428). Holding
    /// it here keeps aborts working for as long as the attempt (or stream) lives.
    request: Option<JsValue>,
    fired: Rc<Cell<Fired>>,
    timeout_ms: u32,
    caller: Option<(AbortSignal, Closure<dyn FnMut()>)>,
    timer: Option<(JsValue, Closure<dyn FnMut()>)>,
}

impl AbortGuard {
    fn arm(caller: Option<&AbortSignal>, timeout_ms: u32) -> Result<Self, SdkError> {
        if let Some(signal) = caller {
            if signal.aborted() {
                return Err(aborted(signal));
            }
        }
        let controller = AbortController::new()
            .map_err(|_| SdkError::new(ErrorKind::Sandlot, "AbortController is not available"))?;
        let fired = Rc::new(Cell::new(Fired::No));
        let trigger = |who: Fired| {
            let controller = controller.clone();
            let fired = fired.clone();
            Closure::<dyn FnMut()>::new(move || {
                if fired.get() == Fired::No {
                    fired.set(who);
                    controller.abort();
                }
            })
        };
        let caller = caller.map(|signal| {
            let on_abort = trigger(Fired::Caller);
            let _ =
                signal.add_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
            (signal.clone(), on_abort)
        });
        let on_timer = trigger(Fired::Timer);
        let ms = i32::try_from(timeout_ms).unwrap_or(i32::MAX);
        let handle = set_timeout(on_timer.as_ref().unchecked_ref(), ms);
        Ok(Self {
            controller,
            request: None,
            fired,
            timeout_ms,
            caller,
            timer: Some((handle, on_timer)),
        })
    }

    /// Sends `request` through `fetch`, keeping the request object alive with this guard.
    async fn send(&mut self, request: Request) -> Result<Response, gloo_net::Error> {
        let raw: web_sys::Request = request.into();
        // A handle to the same JS object (`web_sys::Request::clone` would be `Request.clone()`).
        let handle: &JsValue = raw.as_ref();
        self.request = Some(handle.clone());
        Request::from(raw).send().await
    }

    /// Stops the timer; the caller's signal stays wired.
    fn disarm_timer(&mut self) {
        if let Some((handle, _closure)) = self.timer.take() {
            clear_timeout(&handle);
        }
    }

    /// Maps a raw JS rejection (of a stream read) to the SDK's error classes.
    fn js_error(&self, error: &JsValue, url: &str) -> SdkError {
        let (name, message) = match error.dyn_ref::<js_sys::Error>() {
            Some(e) => (String::from(e.name()), String::from(e.message())),
            None => (String::new(), String::from("the connection failed")),
        };
        self.classify(&name, message, url)
    }

    /// Maps a rejected `fetch` (or body read) to the SDK's error classes.
    fn fetch_error(&self, error: gloo_net::Error, url: &str) -> SdkError {
        match error {
            gloo_net::Error::JsError(e) => self.classify(&e.name, e.message, url),
            gloo_net::Error::GlooError(message) => self.classify("", message, url),
        }
    }

    fn classify(&self, name: &str, message: String, url: &str) -> SdkError {
        match self.fired.get() {
            Fired::Caller => {
                return aborted(self.caller.as_ref().map(|(s, _)| s).expect("caller signal"))
            }
            Fired::Timer => {
                return SdkError::new(
                    ErrorKind::Timeout,
                    format!("request to {url} timed out after {} ms", self.timeout_ms),
                )
            }
            Fired::No => {}
        }
        if name == "AbortError" {
            SdkError::new(ErrorKind::Aborted, message)
        } else {
            SdkError::new(
                ErrorKind::Network,
                format!("could not reach {url}: {message}"),
            )
        }
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some((signal, on_abort)) = self.caller.take() {
            let _ = signal
                .remove_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
        }
        if let Some((handle, _closure)) = self.timer.take() {
            clear_timeout(&handle);
        }
    }
}

/// The error for a call the caller aborted; the signal's reason becomes `cause`.
/// A signal made by `AbortSignal.timeout(ms)` fires with a `TimeoutError` reason; that is a
/// deadline, so it becomes the SDK's `TimeoutError` rather than `AbortError`.
fn aborted(signal: &AbortSignal) -> SdkError {
    let reason = signal.reason();
    let is_deadline = reason
        .dyn_ref::<js_sys::Error>()
        .is_some_and(|e| e.name() == "TimeoutError");
    let mut e = if is_deadline {
        SdkError::new(
            ErrorKind::Timeout,
            "the operation's AbortSignal deadline passed",
        )
    } else {
        SdkError::new(ErrorKind::Aborted, "the operation was aborted")
    };
    if !reason.is_undefined() {
        e.cause = Some(reason);
    }
    e
}

/// Waits `ms`, or rejects (`AbortError`) as soon as the caller's signal fires.
pub async fn sleep(ms: u32, signal: Option<&AbortSignal>) -> Result<(), SdkError> {
    let guard = AbortGuard::arm(signal, ms)?;
    let internal = guard.controller.signal();
    let done = js_sys::Promise::new(&mut |resolve, _reject| {
        let _ = internal.add_event_listener_with_callback("abort", &resolve);
    });
    let _ = JsFuture::from(done).await;
    match guard.fired.get() {
        Fired::Caller => Err(aborted(signal.expect("caller signal"))),
        _ => Ok(()),
    }
}

/// The `AbortSignal` in an options object, if any; anything else there is a caller bug.
pub fn signal_of(value: &JsValue) -> Result<Option<AbortSignal>, SdkError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .clone()
        .dyn_into::<AbortSignal>()
        .map(Some)
        .map_err(|_| SdkError::invalid_argument("signal must be an AbortSignal"))
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(3.0));
        assert_eq!(parse_retry_after(" 0.5 "), Some(0.5));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(0.0)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[wasm_bindgen_test]
    fn error_bodies_of_both_planes_are_read() {
        let read = |json: &str| read_error_body(js_sys::JSON::parse(json).unwrap()).unwrap();
        let agent =
            read(r#"{"error":"Process not found","code":"PROCESS_NOT_FOUND","retry_after":null}"#);
        assert_eq!(agent.message(), Some("Process not found"));
        assert_eq!(agent.code(), Some("PROCESS_NOT_FOUND"));
        let control =
            read(r#"{"error":{"message":"gone","code":"SANDBOX_NOT_FOUND","request_id":"r9"}}"#);
        assert_eq!(control.message(), Some("gone"));
        assert_eq!(control.code(), Some("SANDBOX_NOT_FOUND"));
        assert!(
            matches!(control.error, Some(ErrorField::Detail(ref d)) if d.request_id.as_deref() == Some("r9"))
        );
        let limited = read(r#"{"message":"slow down","retry_after":5}"#);
        assert_eq!(limited.retry_after, Some(5));
        assert_eq!(limited.message(), Some("slow down"));
    }

    #[wasm_bindgen_test]
    fn json_bodies_skip_absent_fields_and_keep_maps_as_objects() {
        let req = sandlot_protocol::ExecuteRequest {
            code: Some("print(1)".into()),
            env: Some([("A".to_string(), "1".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(
            to_json(&req).unwrap(),
            r#"{"code":"print(1)","env":{"A":"1"}}"#
        );
    }

    #[wasm_bindgen_test]
    fn non_signal_values_are_refused() {
        assert!(signal_of(&JsValue::UNDEFINED).unwrap().is_none());
        let e = signal_of(&JsValue::from_str("nope")).unwrap_err();
        assert_eq!(e.code, "INVALID_ARGUMENT");
    }

    #[wasm_bindgen_test]
    async fn sleep_ends_early_when_the_caller_aborts() {
        let controller = AbortController::new().unwrap();
        let signal = controller.signal();
        let abort_soon =
            Closure::once_into_js(move || controller.abort_with_reason(&"stop".into()));
        set_timeout(abort_soon.unchecked_ref(), 10);
        let started = js_sys::Date::now();
        let e = sleep(5_000, Some(&signal)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Aborted);
        assert_eq!(e.cause.and_then(|c| c.as_string()).as_deref(), Some("stop"));
        assert!(js_sys::Date::now() - started < 4_000.0);
    }

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
