//! `fuzz_token`: agent tokens, raw, tampered and re-signed, against the server's verifier.

use std::time::{SystemTime, UNIX_EPOCH};

use arbitrary::Unstructured;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sandlot_server::fuzzing as server;
use serde::Deserialize;

/// The fuzz targets' fixed signing key (never a server's: those are random, in the data dir).
pub const TOKEN_KEY: &[u8] = b"sandlot-fuzz: a fixed key for the fuzz targets only";

/// The claims of an agent token, as `docs/protocol.md` §2 defines them.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sid: String,
    #[allow(dead_code)]
    iat: i64,
    exp: i64,
    #[serde(default)]
    gen: u32,
}

/// Agent tokens (`token::TokenSigner`). The first byte picks the mode:
/// - `T` + a string: parsed and verified as a token. Nothing panics, and only tokens the key
///   signed verify: re-signing a verified token's payload gives that very token back.
/// - `P` + bytes: those bytes signed as a payload, so the claims parser runs past the
///   signature. The answer matches the documented claims: malformed, expired, or the
///   sandbox and generation inside.
/// - anything else: a token is issued for an arbitrary sandbox id and generation (from the
///   input) and must verify as exactly that; then one byte of it is changed, inserted or
///   removed, and the result must not verify.
pub fn token(data: &[u8]) {
    let signer = server::TokenSigner::from_key(TOKEN_KEY);
    match data.split_first() {
        Some((b'T', rest)) => {
            if let Ok(token) = std::str::from_utf8(rest) {
                raw_token(&signer, token);
            }
        }
        Some((b'P', rest)) => signed_payload(&signer, rest),
        _ => issue_and_tamper(&signer, data),
    }
}

fn raw_token(signer: &server::TokenSigner, token: &str) {
    let verified = signer.sandbox_of(token);
    let _ = signer.verify(token, "1700000000abcdefgh");
    if let Ok(v) = verified {
        let payload = token
            .split('.')
            .nth(1)
            .expect("a verified token has a payload");
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .expect("a verified token's payload decodes");
        assert_eq!(
            signer.sign_payload(&payload).as_deref(),
            Ok(token),
            "a token verified that the key did not sign in this form"
        );
        assert_eq!(signer.verify(token, &v.sandbox), Ok(v.generation));
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn signed_payload(signer: &server::TokenSigner, payload: &[u8]) {
    let token = signer.sign_payload(payload).expect("an HS256 signer signs");
    let got = signer.sandbox_of(&token);
    match serde_json::from_slice::<Claims>(payload) {
        Err(_) => assert_eq!(got, Err(server::TokenError::Malformed)),
        // Too close to the clock to tell which side of it the check fell on.
        Ok(c) if (c.exp - now()).abs() <= 2 => {}
        Ok(c) if c.exp <= now() => assert_eq!(got, Err(server::TokenError::Expired)),
        Ok(c) => {
            assert_eq!(
                got,
                Ok(server::Verified {
                    sandbox: c.sid.clone(),
                    generation: c.gen,
                })
            );
            assert_eq!(signer.verify(&token, &c.sid), Ok(c.gen));
        }
    }
}

fn issue_and_tamper(signer: &server::TokenSigner, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(sid), Ok(generation)) = (u.arbitrary::<String>(), u.arbitrary::<u32>()) else {
        return;
    };
    let (token, exp) = signer
        .issue(&sid, generation)
        .expect("an HS256 signer signs");
    assert!(exp > SystemTime::now());
    assert_eq!(
        signer.sandbox_of(&token),
        Ok(server::Verified {
            sandbox: sid.clone(),
            generation,
        })
    );
    assert_eq!(signer.verify(&token, &sid), Ok(generation));
    assert_eq!(
        signer.verify(&token, &format!("{sid}x")),
        Err(server::TokenError::WrongSandbox)
    );
    let foreign = server::TokenSigner::from_key(b"another key, another server......");
    assert_eq!(
        foreign.sandbox_of(&token),
        Err(server::TokenError::BadSignature)
    );

    // One change anywhere, and the token no longer opens anything.
    let mut bytes = token.clone().into_bytes();
    let at = u.choose_index(bytes.len() + 1).unwrap_or(0);
    let byte = u.arbitrary::<u8>().unwrap_or(b'A');
    match u.arbitrary::<u8>().unwrap_or(0) % 3 {
        0 if at < bytes.len() => bytes[at] = byte,
        1 if at < bytes.len() => {
            bytes.remove(at);
        }
        _ => bytes.insert(at, byte),
    }
    let tampered = String::from_utf8_lossy(&bytes);
    if tampered != token {
        assert!(
            signer.sandbox_of(&tampered).is_err(),
            "a changed token verified: {tampered}"
        );
    }
}
