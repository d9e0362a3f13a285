//! Checking async-execution callbacks: `X-HopX-Signature` is
//! `sha256=<hex HMAC-SHA256(secret, X-HopX-Timestamp + raw body)>`, computed by the same
//! protocol code the server signs with; this adds the check that the timestamp is recent.
//!
//! Done in Rust (not WebCrypto) so the check is synchronous and identical in Node, browsers,
//! Deno and workers; the comparison is constant-time.

use tsify::{Ts, Tsify};
use wasm_bindgen::prelude::*;

use crate::args::{required, FromJs};

/// How far `X-HopX-Timestamp` may be from now by default, against replays.
const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// `verifyWebhookSignature(options)`.
#[derive(Tsify, FromJs, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookVerification {
    /// The `callbackSignatureSecret` given to `runCodeAsync`.
    pub secret: String,
    /// The request body exactly as received (before JSON parsing).
    pub body: String,
    /// The `X-HopX-Timestamp` header (Unix seconds).
    pub timestamp: String,
    /// The `X-HopX-Signature` header (`sha256=<hex>`).
    pub signature: String,
    /// Largest accepted distance between the timestamp and now, in seconds (default 300);
    /// 0 turns the check off.
    #[serde(default)]
    #[tsify(optional)]
    pub tolerance_seconds: Option<u64>,
}

/// Whether `signature` signs `timestamp + body` with `secret`, and the timestamp is within
/// `tolerance_secs` of `now_secs` (0: any).
pub fn verify(
    secret: &str,
    timestamp: &str,
    body: &str,
    signature: &str,
    now_secs: f64,
    tolerance_secs: u64,
) -> bool {
    if tolerance_secs > 0 {
        let Some(sent) = crate::http::parse_number(timestamp) else {
            return false;
        };
        if (now_secs - sent).abs() > tolerance_secs as f64 {
            return false;
        }
    }
    sandlot_protocol::signature::verify(secret, timestamp, body, signature)
}

/// Checks an async-execution callback's signature (and that its timestamp is recent).
/// Returns false for a wrong, malformed or stale signature.
#[wasm_bindgen(js_name = verifyWebhookSignature)]
pub fn verify_webhook_signature(options: Ts<WebhookVerification>) -> Result<bool, JsValue> {
    let o: WebhookVerification = required(&options.js_value(), "webhook options")?;
    let now = js_sys::Date::now() / 1000.0;
    let tolerance = o.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECS);
    Ok(verify(
        &o.secret,
        &o.timestamp,
        &o.body,
        &o.signature,
        now,
        tolerance,
    ))
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    // hex(HMAC-SHA256("whsec", "1795537649" + body)), computed independently (Python hmac).
    const SIG: &str = "sha256=dbad063b71844a7b8d1626f255270148e2805bdd60eb551c99bccddc13d3ade7";
    const BODY: &str = r#"{"status":"completed"}"#;

    #[wasm_bindgen_test]
    fn a_correct_signature_verifies() {
        assert!(verify(
            "whsec",
            "1795537649",
            BODY,
            SIG,
            1_795_537_650.0,
            300
        ));
    }

    #[wasm_bindgen_test]
    fn tampering_or_a_wrong_secret_fails() {
        assert!(!verify(
            "whsec",
            "1795537649",
            r#"{"status":"failed"}"#,
            SIG,
            1_795_537_650.0,
            300
        ));
        assert!(!verify(
            "other",
            "1795537649",
            BODY,
            SIG,
            1_795_537_650.0,
            300
        ));
        assert!(!verify(
            "whsec",
            "1795537650",
            BODY,
            SIG,
            1_795_537_650.0,
            300
        ));
        assert!(!verify(
            "whsec",
            "1795537649",
            BODY,
            "sha256=zz",
            1_795_537_650.0,
            300
        ));
        assert!(!verify(
            "whsec",
            "1795537649",
            BODY,
            "dbad06",
            1_795_537_650.0,
            300
        ));
    }

    #[wasm_bindgen_test]
    fn stale_timestamps_fail_unless_the_check_is_off() {
        assert!(!verify(
            "whsec",
            "1795537649",
            BODY,
            SIG,
            1_795_537_649.0 + 301.0,
            300
        ));
        assert!(verify(
            "whsec",
            "1795537649",
            BODY,
            SIG,
            1_795_537_649.0 + 10_000.0,
            0
        ));
    }
}
