//! Reading the arguments of exported methods, and handing results back to JS.
//!
//! Every failure here is a `ValidationError` (code `INVALID_ARGUMENT`) that rejects the
//! call's promise: a wrong type never throws synchronously out of the generated glue,
//! because the exported methods take their arguments as unchecked JS values and read them
//! here.

use serde::de::DeserializeOwned;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::errors::SdkError;

/// An options argument (`undefined` and `null` mean the defaults), checked.
pub(crate) fn arg<T: tsify::Tsify + DeserializeOwned + Default>(
    value: Option<Ts<T>>,
    name: &str,
) -> Result<T, SdkError> {
    match value {
        None => Ok(T::default()),
        Some(v) if v.js_value().is_null() || v.js_value().is_undefined() => Ok(T::default()),
        Some(v) => T::from_js(v.js_value()).map_err(|e| invalid(name, e)),
    }
}

/// A required non-empty string argument (code, a process id).
pub(crate) fn string_arg(value: &JsValue, name: &str) -> Result<String, SdkError> {
    match value.as_string() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(SdkError::invalid_argument(format!(
            "{name} must be a non-empty string"
        ))),
    }
}

/// A `ValidationError` for an argument serde-wasm-bindgen could not read.
pub(crate) fn invalid(name: &str, e: serde_wasm_bindgen::Error) -> SdkError {
    let text = e.to_string();
    let text = text.strip_prefix("Error: ").unwrap_or(&text);
    SdkError::invalid_argument(format!("invalid {name}: {text}"))
}

/// Converts a result for JS; a failure here means a value JS cannot represent.
pub(crate) fn out<T: tsify::Tsify + serde::Serialize>(value: &T) -> Result<Ts<T>, SdkError> {
    Ts::from_rust(value).map_err(|e| SdkError::invalid_response(e.to_string()))
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use crate::types::{CallOptions, RunCodeOptions};
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn absent_options_are_the_defaults_and_bad_ones_are_refused() {
        assert!(arg::<CallOptions>(None, "options")
            .unwrap()
            .signal
            .is_undefined());
        let null = Ts::new_unchecked(JsValue::NULL);
        assert!(arg::<CallOptions>(Some(null), "options").is_ok());
        let bad = js_sys::JSON::parse(r#"{"timeout":"soon"}"#).unwrap();
        let e = arg::<RunCodeOptions>(Some(Ts::new_unchecked(bad)), "runCode options").unwrap_err();
        assert_eq!(e.code, "INVALID_ARGUMENT");
        assert!(
            e.message.starts_with("invalid runCode options"),
            "{}",
            e.message
        );
    }

    #[wasm_bindgen_test]
    fn required_strings_must_be_non_empty_strings() {
        assert_eq!(string_arg(&"x".into(), "code").unwrap(), "x");
        for bad in [JsValue::from(42), JsValue::from_str(""), JsValue::UNDEFINED] {
            let e = string_arg(&bad, "code").unwrap_err();
            assert!(e.message.contains("code must be"), "{}", e.message);
        }
    }
}
