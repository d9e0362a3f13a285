//! Rich results of a run in a context: what `display()` showed and the value of the last
//! expression, each as the formats it has (E2B's `Result`), and the exception a run raised.
//!
//! Results reach JS in two ways, both mapped by [`RICH_RESULT`]: inside `runCode`'s reply
//! (the façade maps each with the generated mapper) and as `result` stream events (mapped
//! here, in [`rich_result_to_js`], from the same table).

use serde::Serialize;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use super::record::{field, Absent, RecordField};

/// One result of a run (`runCode(...).results`, a stream's `result` events). Images are
/// base64; `json` is the parsed value.
#[derive(Tsify, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RichResult {
    /// `text/plain`: the value as IPython prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub text: Option<String>,
    /// `image/png`, base64 (a matplotlib figure).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub png: Option<String>,
    /// `image/jpeg`, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub jpeg: Option<String>,
    /// `image/svg+xml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub svg: Option<String>,
    /// `text/html` (a pandas DataFrame's table).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub markdown: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub latex: Option<String>,
    /// `application/json`, parsed.
    #[serde(
        skip_serializing_if = "JsValue::is_undefined",
        with = "serde_wasm_bindgen::preserve"
    )]
    #[tsify(type = "unknown", optional)]
    pub json: JsValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub javascript: Option<String>,
    /// The value of the cell's last expression (not a `display()`ed object).
    pub is_main_result: bool,
}

/// How a [`RichResult`] is read from a `sandlot_protocol::RichResult`.
pub const RICH_RESULT: &[RecordField] = &[
    field("text", &["text"], Absent::Omitted),
    field("png", &["png"], Absent::Omitted),
    field("jpeg", &["jpeg"], Absent::Omitted),
    field("svg", &["svg"], Absent::Omitted),
    field("html", &["html"], Absent::Omitted),
    field("markdown", &["markdown"], Absent::Omitted),
    field("latex", &["latex"], Absent::Omitted),
    field("json", &["json"], Absent::Omitted),
    field("javascript", &["javascript"], Absent::Omitted),
    field(
        "isMainResult",
        &["is_main_result"],
        Absent::Default("false"),
    ),
];

/// The exception a run in a context raised (E2B's `ExecutionError`), or what the server
/// reports instead of one: `TimeoutError`, `OutOfMemoryError`, `ContextRestarted` (the
/// context died and was restarted: its state is gone and the code did not run), `Killed`.
#[derive(Tsify, Serialize, Debug, Clone, Default, PartialEq)]
pub struct ExecutionError {
    /// The exception's class (`ZeroDivisionError`), or one of the names above.
    pub name: String,
    pub value: String,
    /// The formatted traceback (may hold ANSI colour codes, as IPython prints it).
    pub traceback: String,
}

/// A wire result (parsed JSON) as the JS record `RichResult`, by [`RICH_RESULT`]: the
/// stream path's mapping (the reply path uses the mapper generated from the same table).
pub(crate) fn rich_result_to_js(wire: &JsValue) -> JsValue {
    let out = js_sys::Object::new();
    for f in RICH_RESULT {
        let value = js_sys::Reflect::get(wire, &JsValue::from_str(f.wire[0])).unwrap_or_default();
        let value = match (value.is_undefined() || value.is_null(), f.absent) {
            (false, _) => value,
            (true, Absent::Default(_)) => JsValue::FALSE,
            (true, _) => continue,
        };
        let _ = js_sys::Reflect::set(&out, &JsValue::from_str(f.js), &value);
    }
    out.into()
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use crate::types::record::tests::{assert_js_keys, assert_wire_keys};
    use sandlot_protocol as wire;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn full_wire() -> wire::RichResult {
        wire::RichResult {
            text: Some("t".into()),
            png: Some("p".into()),
            jpeg: Some("j".into()),
            svg: Some("s".into()),
            html: Some("h".into()),
            markdown: Some("m".into()),
            latex: Some("l".into()),
            json: Some(wire::JsonValue::Number(1.0)),
            javascript: Some("js".into()),
            is_main_result: true,
        }
    }

    #[wasm_bindgen_test]
    fn the_rich_result_table_matches_both_structs_and_maps_stream_results() {
        let js = RichResult {
            text: Some("t".into()),
            png: Some("p".into()),
            jpeg: Some("j".into()),
            svg: Some("s".into()),
            html: Some("h".into()),
            markdown: Some("m".into()),
            latex: Some("l".into()),
            json: JsValue::from(1),
            javascript: Some("js".into()),
            is_main_result: true,
        };
        let optional = [
            "text",
            "png",
            "jpeg",
            "svg",
            "html",
            "markdown",
            "latex",
            "json",
            "javascript",
        ];
        assert_js_keys(RICH_RESULT, &js, &optional);
        let wire = assert_wire_keys(RICH_RESULT, &full_wire(), &[]);
        let mapped = rich_result_to_js(&wire);
        assert_eq!(
            js_sys::JSON::stringify(&mapped).unwrap(),
            r#"{"text":"t","png":"p","jpeg":"j","svg":"s","html":"h","markdown":"m","latex":"l","json":1,"javascript":"js","isMainResult":true}"#
        );
        let bare = rich_result_to_js(&js_sys::JSON::parse(r#"{"png":"p"}"#).unwrap());
        assert_eq!(
            js_sys::JSON::stringify(&bare).unwrap(),
            r#"{"png":"p","isMainResult":false}"#
        );
    }
}
