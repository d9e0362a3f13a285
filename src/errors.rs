//! The SDK's error taxonomy and how it becomes a JS `Error` subclass.
//!
//! The classes themselves (`SandlotError`, `NotFoundError`, ...) are defined in the package's
//! JS façade, because a class only works with `instanceof` if the package exports that exact
//! object. The façade hands the constructors to the wasm once at load
//! (`registerErrorClasses`); until then, or if a class is missing, errors fall back to plain
//! `Error` objects that still carry `name`, `code`, `status` and `requestId`.

use std::cell::RefCell;

use sandlot_protocol::{code as wire_code, ErrorBody, ErrorField};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Which exported class an error is an instance of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The base class; used for statuses no subclass covers (e.g. 409).
    Sandlot,
    Authentication,
    NotFound,
    SandboxNotFound,
    /// Cluster mode: the sandbox's node stopped answering (`SANDBOX_LOST`, 410).
    SandboxLost,
    ProcessNotFound,
    /// 404 on a file path (`FILE_NOT_FOUND`).
    FileNotFound,
    /// What the sandbox's path policy or its user's rights refuse (`PATH_NOT_ALLOWED`,
    /// `PERMISSION_DENIED`): 403 like a bad credential, but nothing a new key would change.
    Permission,
    Validation,
    RateLimit,
    Timeout,
    Network,
    Server,
    /// The caller's `AbortSignal` fired.
    Aborted,
}

impl ErrorKind {
    /// Name of the exported JS class (and the error's `name`).
    pub fn class_name(self) -> &'static str {
        match self {
            Self::Sandlot => "SandlotError",
            Self::Authentication => "AuthenticationError",
            Self::NotFound => "NotFoundError",
            Self::SandboxNotFound => "SandboxNotFoundError",
            Self::SandboxLost => "SandboxLostError",
            Self::ProcessNotFound => "ProcessNotFoundError",
            Self::FileNotFound => "FileNotFoundError",
            Self::Permission => "PermissionError",
            Self::Validation => "ValidationError",
            Self::RateLimit => "RateLimitError",
            Self::Timeout => "TimeoutError",
            Self::Network => "NetworkError",
            Self::Server => "ServerError",
            Self::Aborted => "AbortError",
        }
    }

    /// The `code` an error gets when the server sent none.
    pub fn default_code(self) -> &'static str {
        match self {
            Self::Sandlot => "HTTP_ERROR",
            Self::Authentication => "UNAUTHORIZED",
            Self::NotFound => wire_code::RESOURCE_NOT_FOUND,
            Self::SandboxNotFound => wire_code::SANDBOX_NOT_FOUND,
            Self::SandboxLost => wire_code::SANDBOX_LOST,
            Self::ProcessNotFound => wire_code::PROCESS_NOT_FOUND,
            Self::FileNotFound => wire_code::FILE_NOT_FOUND,
            Self::Permission => wire_code::PERMISSION_DENIED,
            Self::Validation => wire_code::INVALID_REQUEST,
            Self::RateLimit => "RATE_LIMITED",
            Self::Timeout => "TIMEOUT",
            Self::Network => "NETWORK_ERROR",
            Self::Server => wire_code::INTERNAL_ERROR,
            Self::Aborted => "ABORTED",
        }
    }
}

/// What a 404 means on a route when the body carries no code that says so itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFoundHint {
    Generic,
    Sandbox,
    Process,
}

/// Picks the class for an HTTP failure: the server's code first, then the status.
pub fn kind_for_status(status: u16, code: Option<&str>, hint: NotFoundHint) -> ErrorKind {
    match code {
        Some(wire_code::SANDBOX_NOT_FOUND) => return ErrorKind::SandboxNotFound,
        Some(wire_code::SANDBOX_LOST) => return ErrorKind::SandboxLost,
        Some(wire_code::PROCESS_NOT_FOUND) => return ErrorKind::ProcessNotFound,
        Some(wire_code::TEMPLATE_NOT_FOUND) => return ErrorKind::NotFound,
        Some(wire_code::FILE_NOT_FOUND) => return ErrorKind::FileNotFound,
        Some(wire_code::PATH_NOT_ALLOWED | wire_code::PERMISSION_DENIED) => {
            return ErrorKind::Permission
        }
        _ => {}
    }
    match status {
        400 | 413 | 422 => ErrorKind::Validation,
        401 | 403 => ErrorKind::Authentication,
        404 | 410 => match hint {
            NotFoundHint::Generic => ErrorKind::NotFound,
            NotFoundHint::Sandbox => ErrorKind::SandboxNotFound,
            NotFoundHint::Process => ErrorKind::ProcessNotFound,
        },
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimit,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::Sandlot,
    }
}

/// An SDK failure on its way to becoming a JS error.
#[derive(Debug, Clone)]
pub struct SdkError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    /// Seconds, for rate limits.
    pub retry_after: Option<f64>,
    pub cause: Option<JsValue>,
}

impl SdkError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: kind.default_code().to_string(),
            message: message.into(),
            status: None,
            request_id: None,
            retry_after: None,
            cause: None,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = code.into();
        self
    }

    /// A bad argument caught before any request was sent.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message).with_code("INVALID_ARGUMENT")
    }

    /// A reply the SDK could not read (not JSON, or not the expected shape).
    pub fn invalid_response(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Sandlot, message).with_code("INVALID_RESPONSE")
    }

    /// Builds the error for a non-2xx reply from its status, parsed body and headers.
    pub fn from_response(
        status: u16,
        body: Option<&ErrorBody>,
        request_id: Option<String>,
        retry_after_header: Option<f64>,
        hint: NotFoundHint,
    ) -> Self {
        let code = body.and_then(ErrorBody::code);
        let kind = kind_for_status(status, code, hint);
        let message = body
            .and_then(ErrorBody::message)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let request_id = request_id.or_else(|| body.and_then(body_request_id));
        let retry_after =
            retry_after_header.or_else(|| body.and_then(|b| b.retry_after.map(|s| s as f64)));
        Self {
            kind,
            code: code.map_or_else(|| kind.default_code().to_string(), str::to_string),
            message,
            status: Some(status),
            request_id,
            retry_after: if kind == ErrorKind::RateLimit {
                retry_after
            } else {
                None
            },
            cause: None,
        }
    }

    /// Whether an idempotent call may be sent again after this failure.
    pub fn is_retryable(&self) -> bool {
        match self.status {
            Some(s) => matches!(s, 429 | 502 | 503 | 504),
            None => self.kind == ErrorKind::Network,
        }
    }
}

/// The request id of an error body, top level or inside the nested `error` object.
fn body_request_id(body: &ErrorBody) -> Option<String> {
    body.request_id.clone().or_else(|| match &body.error {
        Some(ErrorField::Detail(d)) => d.request_id.clone(),
        _ => None,
    })
}

thread_local! {
    /// `{ SandlotError: class, NotFoundError: class, ... }` given by the JS façade.
    static CLASSES: RefCell<Option<JsValue>> = const { RefCell::new(None) };
}

/// Called once by the package's façade with its exported error classes, so that errors
/// raised here are instances of them. Not part of the public API.
#[wasm_bindgen(js_name = registerErrorClasses, skip_typescript)]
pub fn register_error_classes(classes: JsValue) {
    let value = classes.is_object().then_some(classes);
    CLASSES.with(|c| *c.borrow_mut() = value);
}

fn registered_class(name: &str) -> Option<js_sys::Function> {
    CLASSES.with(|c| {
        let classes = c.borrow();
        js_sys::Reflect::get(classes.as_ref()?, &JsValue::from_str(name))
            .ok()?
            .dyn_into::<js_sys::Function>()
            .ok()
    })
}

fn set(target: &JsValue, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object or Error cannot fail.
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
}

impl SdkError {
    /// `{ code, status?, requestId?, retryAfter?, cause? }`, the second constructor argument.
    fn details(&self) -> js_sys::Object {
        let details = js_sys::Object::new();
        set(&details, "code", &JsValue::from_str(&self.code));
        if let Some(s) = self.status {
            set(&details, "status", &JsValue::from(s));
        }
        if let Some(r) = &self.request_id {
            set(&details, "requestId", &JsValue::from_str(r));
        }
        if let Some(r) = self.retry_after {
            set(&details, "retryAfter", &JsValue::from(r));
        }
        if let Some(c) = &self.cause {
            set(&details, "cause", c);
        }
        details
    }
}

impl From<SdkError> for JsValue {
    fn from(e: SdkError) -> JsValue {
        let message = JsValue::from_str(&e.message);
        let details = e.details();
        if let Some(class) = registered_class(e.kind.class_name()) {
            let args = js_sys::Array::of2(&message, &details);
            if let Ok(err) = js_sys::Reflect::construct(&class, &args) {
                return err;
            }
        }
        // Fallback: a plain Error shaped like the class would be.
        let err = js_sys::Error::new(&e.message);
        err.set_name(e.kind.class_name());
        let err: JsValue = err.into();
        let _ = js_sys::Object::assign(err.unchecked_ref(), &details);
        err
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use sandlot_protocol::ErrorDetail;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn body(code: Option<&str>, message: &str) -> ErrorBody {
        ErrorBody {
            error: Some(ErrorField::Message(message.into())),
            code: code.map(str::to_string),
            message: None,
            request_id: None,
            timestamp: None,
            retry_after: None,
        }
    }

    #[wasm_bindgen_test]
    fn statuses_map_to_their_classes() {
        let k = |s| kind_for_status(s, None, NotFoundHint::Generic);
        assert_eq!(k(400), ErrorKind::Validation);
        assert_eq!(k(413), ErrorKind::Validation);
        assert_eq!(k(401), ErrorKind::Authentication);
        assert_eq!(k(404), ErrorKind::NotFound);
        assert_eq!(k(408), ErrorKind::Timeout);
        assert_eq!(k(409), ErrorKind::Sandlot);
        assert_eq!(k(429), ErrorKind::RateLimit);
        assert_eq!(k(500), ErrorKind::Server);
        assert_eq!(k(503), ErrorKind::Server);
    }

    #[wasm_bindgen_test]
    fn not_found_uses_the_server_code_before_the_route_hint() {
        let k = kind_for_status;
        assert_eq!(
            k(404, Some("PROCESS_NOT_FOUND"), NotFoundHint::Sandbox),
            ErrorKind::ProcessNotFound
        );
        assert_eq!(
            k(404, Some("SANDBOX_NOT_FOUND"), NotFoundHint::Process),
            ErrorKind::SandboxNotFound
        );
        assert_eq!(
            k(404, Some("RESOURCE_NOT_FOUND"), NotFoundHint::Sandbox),
            ErrorKind::SandboxNotFound
        );
        assert_eq!(
            k(410, Some("SANDBOX_LOST"), NotFoundHint::Process),
            ErrorKind::SandboxLost
        );
        assert_eq!(
            k(404, None, NotFoundHint::Process),
            ErrorKind::ProcessNotFound
        );
    }

    #[wasm_bindgen_test]
    fn file_codes_pick_their_classes_whatever_the_status() {
        let k = |code| kind_for_status(0, Some(code), NotFoundHint::Generic);
        assert_eq!(k("FILE_NOT_FOUND"), ErrorKind::FileNotFound);
        assert_eq!(k("PATH_NOT_ALLOWED"), ErrorKind::Permission);
        assert_eq!(k("PERMISSION_DENIED"), ErrorKind::Permission);
        assert_eq!(
            kind_for_status(403, Some("INVALID_TOKEN"), NotFoundHint::Generic),
            ErrorKind::Authentication
        );
        assert_eq!(
            kind_for_status(400, Some("INVALID_PATH"), NotFoundHint::Generic),
            ErrorKind::Validation
        );
    }

    #[wasm_bindgen_test]
    fn error_keeps_the_servers_message_code_and_request_id() {
        let b = ErrorBody {
            error: Some(ErrorField::Detail(ErrorDetail {
                message: "Sandbox not found".into(),
                code: Some("RESOURCE_NOT_FOUND".into()),
                request_id: Some("req_body".into()),
            })),
            code: None,
            message: None,
            request_id: None,
            timestamp: None,
            retry_after: None,
        };
        let e = SdkError::from_response(404, Some(&b), None, None, NotFoundHint::Sandbox);
        assert_eq!(e.kind, ErrorKind::SandboxNotFound);
        assert_eq!(e.message, "Sandbox not found");
        assert_eq!(e.code, "RESOURCE_NOT_FOUND");
        assert_eq!(e.request_id.as_deref(), Some("req_body"));

        let hdr = SdkError::from_response(
            500,
            Some(&body(None, "boom")),
            Some("req_hdr".into()),
            None,
            NotFoundHint::Generic,
        );
        assert_eq!(hdr.code, "INTERNAL_ERROR");
        assert_eq!(hdr.request_id.as_deref(), Some("req_hdr"));
    }

    #[wasm_bindgen_test]
    fn rate_limit_reads_retry_after_from_header_then_body() {
        let mut b = body(Some("RESOURCE_LIMIT_ERROR"), "slow down");
        b.retry_after = Some(7);
        let from_body = SdkError::from_response(429, Some(&b), None, None, NotFoundHint::Generic);
        assert_eq!(from_body.kind, ErrorKind::RateLimit);
        assert_eq!(from_body.retry_after, Some(7.0));
        let from_header =
            SdkError::from_response(429, Some(&b), None, Some(2.0), NotFoundHint::Generic);
        assert_eq!(from_header.retry_after, Some(2.0));
        assert!(from_header.is_retryable());
    }

    #[wasm_bindgen_test]
    fn body_without_message_falls_back_to_the_status() {
        let e = SdkError::from_response(502, None, None, None, NotFoundHint::Generic);
        assert_eq!(e.message, "HTTP 502");
        assert!(e.is_retryable());
        assert!(
            !SdkError::from_response(500, None, None, None, NotFoundHint::Generic).is_retryable()
        );
        assert!(SdkError::new(ErrorKind::Network, "down").is_retryable());
        assert!(!SdkError::new(ErrorKind::Timeout, "slow").is_retryable());
    }

    #[wasm_bindgen_test]
    fn unregistered_classes_fall_back_to_a_shaped_error() {
        register_error_classes(JsValue::UNDEFINED);
        let mut e =
            SdkError::from_response(404, None, Some("r1".into()), None, NotFoundHint::Process);
        e.message = "Process not found".into();
        let v: JsValue = e.into();
        let err: &js_sys::Error = v.dyn_ref().expect("an Error");
        assert_eq!(String::from(err.name()), "ProcessNotFoundError");
        assert_eq!(String::from(err.message()), "Process not found");
        let get = |k: &str| js_sys::Reflect::get(&v, &JsValue::from_str(k)).unwrap();
        assert_eq!(
            get("code").as_string().as_deref(),
            Some("PROCESS_NOT_FOUND")
        );
        assert_eq!(get("status").as_f64(), Some(404.0));
        assert_eq!(get("requestId").as_string().as_deref(), Some("r1"));
    }

    #[wasm_bindgen_test]
    fn registered_classes_are_constructed_with_message_and_details() {
        let make = js_sys::Function::new_no_args(
            "class Base extends Error { constructor(m, d) { super(m); this.code = d.code; this.status = d.status; } }
             class NotFoundError extends Base {}
             return { Base, NotFoundError };",
        );
        let classes = make.call0(&JsValue::NULL).unwrap();
        register_error_classes(classes.clone());
        let v: JsValue =
            SdkError::from_response(404, None, None, None, NotFoundHint::Generic).into();
        register_error_classes(JsValue::UNDEFINED);
        let class = js_sys::Reflect::get(&classes, &"NotFoundError".into()).unwrap();
        assert!(v.is_instance_of::<js_sys::Error>());
        let constructor: JsValue = v.unchecked_ref::<js_sys::Object>().constructor().into();
        assert_eq!(constructor, class);
        let status = js_sys::Reflect::get(&v, &"status".into()).unwrap();
        assert_eq!(status.as_f64(), Some(404.0));
    }
}
