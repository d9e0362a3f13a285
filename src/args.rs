//! Reading the arguments of exported methods, and handing results back to JS.
//!
//! Every failure here is a `ValidationError` (code `INVALID_ARGUMENT`) that rejects the
//! call's promise: a wrong type never throws synchronously out of the generated glue,
//! because the exported methods take their arguments as unchecked JS values and read them
//! here. Option objects are read field by field (`#[derive(FromJs)]`, one `Reflect.get` per
//! key) rather than through serde: the same checks in a tenth of the wasm.

use std::collections::BTreeMap;

use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::errors::SdkError;

pub(crate) use sandlot_js_options::FromJs;

/// A type read from a JS value (`#[derive(FromJs)]` for option structs and string enums).
pub(crate) trait FromJs: Sized {
    /// The value, or what was wrong with it.
    fn read_js(value: &JsValue) -> Result<Self, String>;
}

/// What one field of an options object may hold.
pub(crate) trait FieldValue: Sized {
    /// `value` is `undefined` when the key is absent.
    fn from_field(value: JsValue) -> Result<Self, String>;
}

/// Reads `key` (or the first alias present) of a JS object. A bad value gives `None` and
/// leaves the first error in `error` (one slot, so a derived reader is a plain run of calls
/// with nothing to unwind).
pub(crate) fn read<T: FieldValue>(
    object: &JsValue,
    key: &str,
    aliases: &[&str],
    error: &mut Option<String>,
) -> Option<T> {
    let get = |k: &str| js_sys::Reflect::get(object, &JsValue::from_str(k)).unwrap_or_default();
    let mut value = get(key);
    for alias in aliases {
        if !value.is_undefined() {
            break;
        }
        value = get(alias);
    }
    T::from_field(value)
        .map_err(|e| {
            error.get_or_insert_with(|| format!("{key}: {e}"));
        })
        .ok()
}

/// [`read`] for an options field: a bad value leaves the field's default.
pub(crate) fn field<T: FieldValue + Default>(
    object: &JsValue,
    key: &str,
    aliases: &[&str],
    error: &mut Option<String>,
) -> T {
    read(object, key, aliases, error).unwrap_or_default()
}

fn absent(value: &JsValue) -> bool {
    value.is_undefined() || value.is_null()
}

impl FieldValue for JsValue {
    fn from_field(value: JsValue) -> Result<Self, String> {
        Ok(value)
    }
}

impl<T: FieldValue> FieldValue for Option<T> {
    fn from_field(value: JsValue) -> Result<Self, String> {
        if absent(&value) {
            return Ok(None);
        }
        T::from_field(value).map(Some)
    }
}

impl FieldValue for String {
    fn from_field(value: JsValue) -> Result<Self, String> {
        value.as_string().ok_or_else(|| "expected a string".into())
    }
}

impl FieldValue for bool {
    fn from_field(value: JsValue) -> Result<Self, String> {
        value.as_bool().ok_or_else(|| "expected a boolean".into())
    }
}

impl FieldValue for f64 {
    fn from_field(value: JsValue) -> Result<Self, String> {
        value.as_f64().ok_or_else(|| "expected a number".into())
    }
}

/// A whole number JS can hold exactly (0 to 2^53 − 1).
fn whole(value: &JsValue) -> Result<u64, String> {
    match value.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => Ok(n as u64),
        _ => Err("expected a non-negative integer".into()),
    }
}

impl FieldValue for u64 {
    fn from_field(value: JsValue) -> Result<Self, String> {
        whole(&value)
    }
}

impl FieldValue for u32 {
    fn from_field(value: JsValue) -> Result<Self, String> {
        u32::try_from(whole(&value)?).map_err(|_| "expected an integer below 2^32".into())
    }
}

impl FieldValue for i64 {
    fn from_field(value: JsValue) -> Result<Self, String> {
        match value.as_f64() {
            Some(n) if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_991.0 => Ok(n as i64),
            _ => Err("expected an integer".into()),
        }
    }
}

impl FieldValue for i32 {
    fn from_field(value: JsValue) -> Result<Self, String> {
        i32::try_from(i64::from_field(value)?).map_err(|_| "expected a 32-bit integer".into())
    }
}

impl<T: FieldValue> FieldValue for Vec<T> {
    fn from_field(value: JsValue) -> Result<Self, String> {
        if !js_sys::Array::is_array(&value) {
            return Err("expected an array".into());
        }
        js_sys::Array::from(&value)
            .iter()
            .map(T::from_field)
            .collect()
    }
}

/// An object of strings (`env`, headers).
impl FieldValue for BTreeMap<String, String> {
    fn from_field(value: JsValue) -> Result<Self, String> {
        if !value.is_object() || js_sys::Array::is_array(&value) {
            return Err("expected an object of strings".into());
        }
        let mut map = BTreeMap::new();
        for entry in js_sys::Object::entries(value.unchecked_ref()).iter() {
            let entry: js_sys::Array = entry.unchecked_into();
            let key = entry.get(0).as_string().unwrap_or_default();
            let Some(text) = entry.get(1).as_string() else {
                return Err(format!("{key} must be a string"));
            };
            map.insert(key, text);
        }
        Ok(map)
    }
}

/// Types that derive `FromJs` and appear as fields (string enums).
macro_rules! derived_fields {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn from_field(value: JsValue) -> Result<Self, String> {
                <$t as FromJs>::read_js(&value)
            }
        }
    )*};
}
derived_fields!(crate::types::SandboxStatus);

/// An options argument (`undefined` and `null` mean the defaults), checked.
pub(crate) fn arg<T: tsify::Tsify + FromJs + Default>(
    value: Option<Ts<T>>,
    name: &str,
) -> Result<T, SdkError> {
    match value {
        Some(v) if !absent(&v.js_value()) => required(&v.js_value(), name),
        _ => Ok(T::default()),
    }
}

/// An argument that must be an object, checked.
pub(crate) fn required<T: FromJs>(value: &JsValue, name: &str) -> Result<T, SdkError> {
    if !value.is_object() {
        return Err(invalid(name, "expected an object".into()));
    }
    T::read_js(value).map_err(|e| invalid(name, e))
}

/// A `ValidationError` for an argument that could not be read.
pub(crate) fn invalid(name: &str, e: String) -> SdkError {
    SdkError::invalid_argument(format!("invalid {name}: {e}"))
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
    fn option_fields_are_checked_by_key_and_aliases_are_read() {
        use crate::types::{CreateOptions, ListOptions, SandboxStatus};
        let read = |json: &str| {
            let v = js_sys::JSON::parse(json).unwrap();
            required::<CreateOptions>(&v, "create options")
        };
        let ok = read(r#"{"baseUrl":"http://a","timeoutSeconds":5,"envVars":{"A":"1"},"internetAccess":true,"region":null}"#).unwrap();
        assert_eq!(ok.base_url.as_deref(), Some("http://a"));
        assert_eq!(ok.timeout_seconds, Some(5));
        assert_eq!(ok.internet_access, Some(true));
        assert_eq!(ok.region, None);
        assert_eq!(ok.env_vars.unwrap()["A"], "1");
        let cases = [
            (
                r#"{"timeoutSeconds":1.5}"#,
                "timeoutSeconds: expected a non-negative integer",
            ),
            (
                r#"{"timeoutSeconds":-1}"#,
                "timeoutSeconds: expected a non-negative integer",
            ),
            (r#"{"template":7}"#, "template: expected a string"),
            (r#"{"envVars":{"A":1}}"#, "envVars: A must be a string"),
            (
                r#"{"envVars":["A"]}"#,
                "envVars: expected an object of strings",
            ),
            (
                r#"{"internetAccess":"yes"}"#,
                "internetAccess: expected a boolean",
            ),
        ];
        for (json, want) in cases {
            let e = read(json).unwrap_err();
            assert_eq!(
                e.message,
                format!("invalid create options: {want}"),
                "{json}"
            );
        }
        let list = |json: &str| {
            required::<ListOptions>(&js_sys::JSON::parse(json).unwrap(), "list options")
        };
        assert_eq!(
            list(r#"{"status":"paused"}"#).unwrap().status,
            Some(SandboxStatus::Paused)
        );
        let e = list(r#"{"status":"asleep"}"#).unwrap_err();
        assert!(
            e.message
                .starts_with("invalid list options: status: one of "),
            "{}",
            e.message
        );
        let e = required::<CreateOptions>(&JsValue::from(3), "create options").unwrap_err();
        assert_eq!(e.message, "invalid create options: expected an object");
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
