//! The caller's `AbortSignal` and the time budgets, wired to each attempt (see the module
//! above for why the caller's signal never reaches `fetch` itself).

use std::cell::Cell;
use std::rc::Rc;

use gloo_net::http::{Request, Response};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal};

use crate::errors::{ErrorKind, SdkError};

#[wasm_bindgen]
extern "C" {
    // Global timers: present in browsers, workers, Node and Deno. The handle is a number in
    // browsers and an object in Node, so it stays a JsValue.
    #[wasm_bindgen(js_name = setTimeout)]
    pub(super) fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub(super) fn clear_timeout(handle: &JsValue);
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
pub(super) struct AbortGuard {
    pub(super) controller: AbortController,
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
    /// Wires a new controller to `caller` and, when given, to a timer of `timeout_ms`.
    pub(super) fn arm(
        caller: Option<&AbortSignal>,
        timeout_ms: Option<u32>,
    ) -> Result<Self, SdkError> {
        not_aborted(caller)?;
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
        let timer = timeout_ms.map(|ms| {
            let on_timer = trigger(Fired::Timer);
            let ms = i32::try_from(ms).unwrap_or(i32::MAX);
            (set_timeout(on_timer.as_ref().unchecked_ref(), ms), on_timer)
        });
        Ok(Self {
            controller,
            request: None,
            fired,
            timeout_ms: timeout_ms.unwrap_or_default(),
            caller,
            timer,
        })
    }

    /// Sends `request` through `fetch`, keeping the request object alive with this guard.
    pub(super) async fn send(&mut self, request: Request) -> Result<Response, gloo_net::Error> {
        let raw: web_sys::Request = request.into();
        // A handle to the same JS object (`web_sys::Request::clone` would be `Request.clone()`).
        let handle: &JsValue = raw.as_ref();
        self.request = Some(handle.clone());
        Request::from(raw).send().await
    }

    /// Stops the timer; the caller's signal stays wired.
    pub(super) fn disarm_timer(&mut self) {
        if let Some((handle, _closure)) = self.timer.take() {
            clear_timeout(&handle);
        }
    }

    /// Maps a raw JS rejection (of a stream read) to the SDK's error classes.
    pub(super) fn js_error(&self, error: &JsValue, url: &str) -> SdkError {
        let (name, message) = match error.dyn_ref::<js_sys::Error>() {
            Some(e) => (String::from(e.name()), String::from(e.message())),
            None => (String::new(), String::from("the connection failed")),
        };
        self.classify(&name, message, url)
    }

    /// Maps a rejected `fetch` (or body read) to the SDK's error classes.
    pub(super) fn fetch_error(&self, error: gloo_net::Error, url: &str) -> SdkError {
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

impl AbortGuard {
    /// A promise that resolves when this guard's controller aborts (caller or timer).
    fn fired_promise(&self) -> js_sys::Promise {
        let internal = self.controller.signal();
        js_sys::Promise::new(&mut |resolve, _reject| {
            let _ = internal.add_event_listener_with_callback("abort", &resolve);
        })
    }
}

/// `AbortError` (or the deadline's `TimeoutError`) when the caller's signal has already fired.
pub fn not_aborted(signal: Option<&AbortSignal>) -> Result<(), SdkError> {
    match signal {
        Some(signal) if signal.aborted() => Err(aborted(signal)),
        _ => Ok(()),
    }
}

/// Waits `ms`, or rejects (`AbortError`) as soon as the caller's signal fires.
pub async fn sleep(ms: u32, signal: Option<&AbortSignal>) -> Result<(), SdkError> {
    let guard = AbortGuard::arm(signal, Some(ms))?;
    let _ = JsFuture::from(guard.fired_promise()).await;
    match guard.fired.get() {
        Fired::Caller => Err(aborted(signal.expect("caller signal"))),
        _ => Ok(()),
    }
}

/// Waits for `work` to settle (however it settles), or rejects (`AbortError`) as soon as the
/// caller's signal fires; `work` itself goes on either way. This is how one caller waits for
/// work shared with others (a token refresh) without cancelling it for them.
pub async fn until(work: &js_sys::Promise, signal: Option<&AbortSignal>) -> Result<(), SdkError> {
    let guard = AbortGuard::arm(signal, None)?;
    let race = js_sys::Promise::race(&js_sys::Array::of2(work, &guard.fired_promise()));
    let _ = JsFuture::from(race).await;
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
}
