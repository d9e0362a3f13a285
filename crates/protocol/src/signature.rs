//! Webhook signatures, signed by the server and checked by the SDK with this one code:
//! `X-HopX-Signature: sha256=<hex HMAC-SHA256(secret, X-HopX-Timestamp + raw body)>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the Unix time (seconds) the delivery was signed at.
pub const TIMESTAMP_HEADER: &str = "X-HopX-Timestamp";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-HopX-Signature";

fn mac(secret: &str, timestamp: &str, body: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(timestamp.as_bytes());
    mac.update(body.as_bytes());
    mac
}

/// The `X-HopX-Signature` value for a delivery.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// Whether `signature` signs `timestamp + body` with `secret` (constant-time comparison).
/// The caller decides how old a timestamp may be.
pub fn verify(secret: &str, timestamp: &str, body: &str, signature: &str) -> bool {
    let Some(expected) = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(decode_hex)
    else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&expected).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // hex(HMAC-SHA256("whsec", "1795537649" + body)), computed independently (Python hmac).
    const SIG: &str = "sha256=dbad063b71844a7b8d1626f255270148e2805bdd60eb551c99bccddc13d3ade7";
    const BODY: &str = r#"{"status":"completed"}"#;

    #[test]
    fn signing_matches_an_independent_hmac() {
        assert_eq!(sign("whsec", "1795537649", BODY), SIG);
    }

    #[test]
    fn verify_accepts_the_signature_and_refuses_tampering() {
        assert!(verify("whsec", "1795537649", BODY, SIG));
        assert!(!verify("other", "1795537649", BODY, SIG));
        assert!(!verify("whsec", "1795537650", BODY, SIG));
        assert!(!verify("whsec", "1795537649", "{}", SIG));
        assert!(!verify("whsec", "1795537649", BODY, "sha256=zz"));
        assert!(!verify("whsec", "1795537649", BODY, &SIG[7..]));
    }
}
