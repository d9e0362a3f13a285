//! The caller's `AbortSignal` and the time budgets, wired to each attempt (see the module
//! above for when the caller's signal reaches `fetch` through `AbortSignal.any` and when only
//! a reason-less internal controller does).

use std::cell::Cell;
use std::rc::Rc;

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

    // The platform's `fetch`, called with a plain init object (no `Request` in between for
    // plain calls). A rejection arrives as a JsValue whatever it is, so a reason-ful abort
    // (`controller.abort("some string")`) cannot trap here.
    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch(input: &JsValue, init: &js_sys::Object) -> Result<js_sys::Promise, JsValue>;

    // `AbortSignal.timeout(ms)` and `AbortSignal.any([...])` (Node 20, current browsers);
    // `catch`, so a runtime without them throws a TypeError here and the attempt falls back to
    // an `AbortGuard`.
    #[wasm_bindgen(js_namespace = AbortSignal, js_name = timeout, catch)]
    fn signal_timeout(ms: f64) -> Result<AbortSignal, JsValue>;
    #[wasm_bindgen(js_namespace = AbortSignal, js_name = any, catch)]
    fn signal_any(signals: &js_sys::Array) -> Result<AbortSignal, JsValue>;
}

/// Sends `input` (a URL, or a `Request` the caller keeps alive) through the global `fetch`.
pub(super) async fn send_fetch(
    input: &JsValue,
    init: &js_sys::Object,
) -> Result<web_sys::Response, JsValue> {
    let response = JsFuture::from(global_fetch(input, init)?).await?;
    Ok(response.unchecked_into())
}

/// How one attempt of a plain call is bounded: natively (`AbortSignal.timeout`, combined
/// with the caller's signal by `AbortSignal.any`: no controller, listener, closure or JS timer
/// of ours), or by an [`AbortGuard`] where those are missing.
///
/// A plain call has no `Request` of ours to hold: undici makes its own inside `fetch`, with
/// the weak signal link of nodejs/node#55428. That matters for bodies read long after the
/// answer, so streams keep building and holding a `Request` ([`AbortGuard::send`]); a plain
/// reply is read at once.
pub(super) enum Attempt {
    Native {
        /// The signal handed to `fetch`.
        signal: AbortSignal,
        /// Held so the deadline lives as long as the attempt (Node's timer only holds it weakly).
        deadline: AbortSignal,
        caller: Option<AbortSignal>,
        timeout_ms: u32,
    },
    Guard(AbortGuard),
}

impl Attempt {
    pub(super) fn arm(caller: Option<&AbortSignal>, timeout_ms: u32) -> Result<Self, SdkError> {
        not_aborted(caller)?;
        if let Ok(deadline) = signal_timeout(f64::from(timeout_ms)) {
            let signal = match caller {
                None => Ok(deadline.clone()),
                Some(caller) => signal_any(&js_sys::Array::of2(caller, &deadline)),
            };
            if let Ok(signal) = signal {
                return Ok(Self::Native {
                    signal,
                    deadline,
                    caller: caller.cloned(),
                    timeout_ms,
                });
            }
        }
        AbortGuard::arm(caller, Some(timeout_ms)).map(Self::Guard)
    }

    /// The signal to hand to `fetch`.
    pub(super) fn signal(&self) -> AbortSignal {
        match self {
            Self::Native { signal, .. } => signal.clone(),
            Self::Guard(guard) => guard.controller.signal(),
        }
    }

    /// Maps a rejection of `fetch` or of a body read to the SDK's error classes.
    pub(super) fn js_error(&self, error: &JsValue, url: &str) -> SdkError {
        match self {
            Self::Guard(guard) => guard.js_error(error, url),
            Self::Native {
                deadline,
                caller,
                timeout_ms,
                ..
            } => {
                if let Some(caller) = caller.as_ref().filter(|c| c.aborted()) {
                    return aborted(caller);
                }
                if deadline.aborted() {
                    return timed_out(url, *timeout_ms);
                }
                let (name, message) = error_parts(error);
                by_name(&name, message, url)
            }
        }
    }
}

fn error_parts(error: &JsValue) -> (String, String) {
    match error.dyn_ref::<js_sys::Error>() {
        Some(e) => (String::from(e.name()), String::from(e.message())),
        None => (String::new(), String::from("the connection failed")),
    }
}

fn timed_out(url: &str, timeout_ms: u32) -> SdkError {
    SdkError::new(
        ErrorKind::Timeout,
        format!("request to {url} timed out after {timeout_ms} ms"),
    )
}

fn by_name(name: &str, message: String, url: &str) -> SdkError {
    if name == "AbortError" {
        SdkError::new(ErrorKind::Aborted, message)
    } else {
        SdkError::new(
            ErrorKind::Network,
            format!("could not reach {url}: {message}"),
        )
    }
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
pub struct AbortGuard {
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

    /// Sends a `Request` built from `url` and `init` through `fetch`, keeping the request
    /// object alive with this guard (for bodies read long after the answer: streams).
    pub(super) async fn send(
        &mut self,
        url: &str,
        init: &js_sys::Object,
    ) -> Result<web_sys::Response, JsValue> {
        let ctor = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("Request"))?;
        let args = js_sys::Array::of2(&JsValue::from_str(url), init);
        let request = js_sys::Reflect::construct(ctor.unchecked_ref::<js_sys::Function>(), &args)?;
        self.request = Some(request.clone());
        send_fetch(&request, &js_sys::Object::new()).await
    }

    /// Stops the timer; the caller's signal stays wired.
    pub(super) fn disarm_timer(&mut self) {
        if let Some((handle, _closure)) = self.timer.take() {
            clear_timeout(&handle);
        }
    }

    /// Maps a raw JS rejection (of a stream read) to the SDK's error classes.
    pub fn js_error(&self, error: &JsValue, url: &str) -> SdkError {
        match self.fired.get() {
            Fired::Caller => aborted(self.caller.as_ref().map(|(s, _)| s).expect("caller signal")),
            Fired::Timer => timed_out(url, self.timeout_ms),
            Fired::No => {
                let (name, message) = error_parts(error);
                by_name(&name, message, url)
            }
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
