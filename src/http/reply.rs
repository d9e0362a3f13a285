//! Reading replies: JSON bodies in and out (through `JSON.parse`/`JSON.stringify` and
//! serde-wasm-bindgen, no serde_json in the wasm), error replies (read field by field, as
//! options are), and `Retry-After`.

use sandlot_protocol::{ErrorBody, ErrorDetail, ErrorField};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use web_sys::Headers;

use crate::args::FromJs;
use crate::errors::{NotFoundHint, SdkError};

/// The error for a non-2xx reply, from its status, body and headers.
pub(super) fn reply_error(
    status: u16,
    text: &str,
    headers: &Headers,
    hint: NotFoundHint,
) -> SdkError {
    let body = js_sys::JSON::parse(text)
        .ok()
        .filter(JsValue::is_object)
        .and_then(read_error_body);
    let header = |name: &str| headers.get(name).ok().flatten();
    let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
    SdkError::from_response(
        status,
        body.as_ref(),
        header("x-request-id"),
        retry_after,
        hint,
    )
}

/// [`ErrorBody`] with its `error` field kept as a JS value: the field is a string on the
/// agent and an object on the control plane, and resolving that here (rather than through
/// serde's untagged-enum buffering) keeps about 12 KB out of the wasm.
#[derive(FromJs)]
struct ErrorBodyView {
    error: JsValue,
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
    timestamp: Option<String>,
    retry_after: Option<u64>,
}

/// [`ErrorDetail`], read the same way.
#[derive(FromJs)]
struct ErrorDetailView {
    message: Option<String>,
    code: Option<String>,
    request_id: Option<String>,
}

/// Reads an error reply into the protocol's [`ErrorBody`] (whose accessors decide where the
/// message and code are).
fn read_error_body(value: JsValue) -> Option<ErrorBody> {
    let view = ErrorBodyView::read_js(&value).ok()?;
    let error = match view.error.as_string() {
        Some(message) => Some(ErrorField::Message(message)),
        None if view.error.is_object() => ErrorDetailView::read_js(&view.error).ok().map(|d| {
            ErrorField::Detail(ErrorDetail {
                message: d.message.unwrap_or_default(),
                code: d.code,
                request_id: d.request_id,
            })
        }),
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

/// A wire struct as the JS value `JSON.stringify` would write it (plain objects for maps).
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, SdkError> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    value
        .serialize(&serializer)
        .map_err(|e| SdkError::invalid_argument(e.to_string()))
}

/// Serializes a wire struct to JSON text without serde_json.
pub fn to_json<T: Serialize>(value: &T) -> Result<String, SdkError> {
    let js = to_js(value)?;
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
fn parse_retry_after(value: &str) -> Option<f64> {
    let value = value.trim();
    if let Some(secs) = parse_number(value) {
        return (secs >= 0.0).then_some(secs);
    }
    let at = js_sys::Date::parse(value);
    (!at.is_nan()).then(|| ((at - js_sys::Date::now()) / 1000.0).max(0.0))
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
}
