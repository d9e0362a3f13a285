//! Agent tokens: HS256 JWTs that name one sandbox and expire.
//!
//! A node can verify a token with the signing key alone, without asking a control plane
//! (`docs/architecture.md`, "From one host to a cluster"). The key is random, kept in the data dir so tokens survive a
//! restart.

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::time::unix_seconds;

/// Lifetime of an agent token. Well over the SDKs' one-hour refresh threshold.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sid: String,
    iat: i64,
    exp: i64,
    /// The sandbox's token generation at issue; a rotation retires older ones.
    #[serde(default)]
    gen: u32,
    /// Set on preview tokens only (`"preview"`): those open one port, never the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    /// The port a preview token opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

const PREVIEW: &str = "preview";

/// What a valid token says.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub sandbox: String,
    pub generation: u32,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
    WrongSandbox,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenSigner {
    /// Loads the key from `dir/token.key`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("token.key");
        if let Ok(key) = std::fs::read(&path) {
            if key.len() >= 32 {
                return Ok(Self { key });
            }
        }
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(&path, &key)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self { key })
    }

    /// A signer with a fixed key, for the fuzz targets and tests (the server always uses
    /// [`TokenSigner::load_or_create`]).
    #[doc(hidden)]
    pub fn from_key(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// Signs `payload` as it is, under the HS256 header. [`TokenSigner::issue`] signs its
    /// claims with it; a fuzz target uses it to reach the claims parser past the signature.
    #[doc(hidden)]
    pub fn sign_payload(&self, payload: &[u8]) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&signing_input).finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Issues a token of generation `generation` for `sandbox`; returns it with its expiry.
    pub fn issue(&self, sandbox: &str, generation: u32) -> (String, SystemTime) {
        let now = SystemTime::now();
        let exp = now + TOKEN_LIFETIME;
        let claims = Claims {
            sid: sandbox.into(),
            iat: unix_seconds(now),
            exp: unix_seconds(exp),
            gen: generation,
            typ: None,
            port: None,
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        (self.sign_payload(&payload), exp)
    }

    /// Checks signature, expiry and that the token opens `sandbox`; returns its generation.
    pub fn verify(&self, token: &str, sandbox: &str) -> Result<u32, TokenError> {
        let verified = self.sandbox_of(token)?;
        if verified.sandbox != sandbox {
            return Err(TokenError::WrongSandbox);
        }
        Ok(verified.generation)
    }

    /// Issues a preview token: it opens `port` of `sandbox` until `exp`, and nothing else.
    pub fn issue_preview(
        &self,
        sandbox: &str,
        generation: u32,
        port: u16,
        exp: SystemTime,
    ) -> String {
        let claims = Claims {
            sid: sandbox.into(),
            iat: unix_seconds(SystemTime::now()),
            exp: unix_seconds(exp),
            gen: generation,
            typ: Some(PREVIEW.into()),
            port: Some(port),
        };
        self.sign_payload(&serde_json::to_vec(&claims).expect("claims serialise"))
    }

    /// Checks a preview token for `port` of `sandbox`; returns its generation.
    pub fn verify_preview(&self, token: &str, sandbox: &str, port: u16) -> Result<u32, TokenError> {
        let claims = self.claims(token)?;
        if claims.typ.as_deref() != Some(PREVIEW)
            || claims.sid != sandbox
            || claims.port != Some(port)
        {
            return Err(TokenError::WrongSandbox);
        }
        Ok(claims.gen)
    }

    /// Checks signature and expiry; returns the sandbox the token opens. Preview tokens are
    /// refused: they open a port, not the agent.
    pub fn sandbox_of(&self, token: &str) -> Result<Verified, TokenError> {
        let claims = self.claims(token)?;
        if claims.typ.is_some() {
            return Err(TokenError::Malformed);
        }
        Ok(Verified {
            sandbox: claims.sid,
            generation: claims.gen,
        })
    }

    fn claims(&self, token: &str) -> Result<Claims, TokenError> {
        let (signing_input, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (_, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(signing_input)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= unix_seconds(SystemTime::now()) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn mac(&self, input: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(input.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner { key: vec![7; 32] }
    }

    #[test]
    fn a_token_opens_its_own_sandbox_only() {
        let (token, exp) = signer().issue("sbx1", 3);
        assert!(exp > SystemTime::now() + Duration::from_secs(3600));
        assert_eq!(signer().verify(&token, "sbx1"), Ok(3));
        assert_eq!(
            signer().verify(&token, "sbx2"),
            Err(TokenError::WrongSandbox)
        );
    }

    #[test]
    fn a_preview_token_opens_its_port_only_and_never_the_agent() {
        let exp = SystemTime::now() + Duration::from_secs(60);
        let token = signer().issue_preview("sbx1", 2, 8000, exp);
        assert_eq!(signer().verify_preview(&token, "sbx1", 8000), Ok(2));
        assert!(signer().verify_preview(&token, "sbx1", 8001).is_err());
        assert!(signer().verify_preview(&token, "sbx2", 8000).is_err());
        assert!(
            signer().verify(&token, "sbx1").is_err(),
            "not an agent token"
        );
        let (agent, _) = signer().issue("sbx1", 2);
        assert!(signer().verify_preview(&agent, "sbx1", 8000).is_err());
        let old =
            signer().issue_preview("sbx1", 2, 8000, SystemTime::now() - Duration::from_secs(1));
        assert_eq!(
            signer().verify_preview(&old, "sbx1", 8000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let (token, _) = signer().issue("sbx1", 0);
        let other = TokenSigner { key: vec![8; 32] };
        assert_eq!(other.verify(&token, "sbx1"), Err(TokenError::BadSignature));
        assert_eq!(signer().verify("abc", "sbx1"), Err(TokenError::Malformed));
        let mut forged = token.clone();
        forged.insert(10, 'x');
        assert!(signer().verify(&forged, "sbx1").is_err());
    }
}
