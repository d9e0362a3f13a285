//! Agent tokens: JWTs that name one sandbox and expire.
//!
//! A node verifies a token by itself, without asking a control plane
//! (`docs/architecture.md`, "From one host to a cluster"). A standalone server signs with
//! HS256 and a random key kept in its data dir, so tokens survive a restart. In a cluster the
//! control plane signs with an Ed25519 private key (EdDSA) and nodes hold only the public
//! key: a node can check every token but mint none, so a compromised node cannot open
//! another node's sandboxes. The control plane's own calls to a node carry a short-lived
//! token of type `control` addressed to that node (`aud`).

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::time::unix_seconds;

/// Lifetime of an agent token. Well over the SDKs' one-hour refresh threshold.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Lifetime of a control plane → node call token.
pub const CONTROL_TOKEN_LIFETIME: Duration = Duration::from_secs(120);

#[derive(Clone)]
enum Key {
    Hmac(Vec<u8>),
    /// EdDSA: the private key where tokens are signed (control plane), none on a node.
    Ed25519 {
        signing: Option<Box<SigningKey>>,
        verifying: VerifyingKey,
    },
}

#[derive(Clone)]
pub struct TokenSigner {
    key: Key,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default)]
    sid: String,
    iat: i64,
    exp: i64,
    /// The sandbox's token generation at issue; a rotation retires older ones.
    #[serde(default)]
    gen: u32,
    /// Set on preview tokens (`"preview"`: they open one port, never the agent) and on
    /// control plane calls (`"control"`: they open one node, `aud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    /// The port a preview token opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    /// The node a control token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

const PREVIEW: &str = "preview";
const CONTROL: &str = "control";

/// What a valid token says.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub sandbox: String,
    pub generation: u32,
}

/// Why a token was refused (or could not be made).
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
    WrongSandbox,
    /// This server holds only the public key (a cluster node): tokens come from the
    /// control plane.
    CannotSign,
}

const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const EDDSA_HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

/// File names `sandlotd keygen` writes and the cluster modes read.
pub const PRIVATE_KEY_FILE: &str = "token-private.key";
pub const PUBLIC_KEY_FILE: &str = "token-public.key";

impl TokenSigner {
    /// Loads the HS256 key from `dir/token.key`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("token.key");
        if let Ok(key) = std::fs::read(&path) {
            if key.len() >= 32 {
                return Ok(Self {
                    key: Key::Hmac(key),
                });
            }
        }
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::write(&path, &key)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self {
            key: Key::Hmac(key),
        })
    }

    /// A signer with a fixed HS256 key, for the fuzz targets and tests.
    #[doc(hidden)]
    pub fn from_key(key: &[u8]) -> Self {
        Self {
            key: Key::Hmac(key.to_vec()),
        }
    }

    /// A new Ed25519 key pair: (private, public), each as one line of base64.
    pub fn generate_ed25519() -> std::io::Result<(String, String)> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
        let signing = SigningKey::from_bytes(&seed);
        Ok((
            STANDARD.encode(signing.to_bytes()),
            STANDARD.encode(signing.verifying_key().to_bytes()),
        ))
    }

    /// The control plane's signer: an Ed25519 private key (base64 of its 32 bytes).
    pub fn ed25519_private(text: &str) -> Result<Self, String> {
        let bytes = decode_key(text, "private")?;
        let signing = SigningKey::from_bytes(&bytes);
        Ok(Self {
            key: Key::Ed25519 {
                verifying: signing.verifying_key(),
                signing: Some(Box::new(signing)),
            },
        })
    }

    /// A node's verifier: the control plane's Ed25519 public key; it signs nothing.
    pub fn ed25519_public(text: &str) -> Result<Self, String> {
        let bytes = decode_key(text, "public")?;
        let verifying = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "the token public key is not an Ed25519 point".to_string())?;
        Ok(Self {
            key: Key::Ed25519 {
                signing: None,
                verifying,
            },
        })
    }

    /// Signs `payload` as it is. [`TokenSigner::issue`] signs its claims with it; a fuzz
    /// target uses it to reach the claims parser past the signature.
    #[doc(hidden)]
    pub fn sign_payload(&self, payload: &[u8]) -> Result<String, TokenError> {
        let header = match &self.key {
            Key::Hmac(_) => HS256_HEADER,
            Key::Ed25519 { .. } => EDDSA_HEADER,
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = match &self.key {
            Key::Hmac(key) => mac(key, &signing_input).finalize().into_bytes().to_vec(),
            Key::Ed25519 {
                signing: Some(signing),
                ..
            } => signing.sign(signing_input.as_bytes()).to_bytes().to_vec(),
            Key::Ed25519 { signing: None, .. } => return Err(TokenError::CannotSign),
        };
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        self.sign_payload(&serde_json::to_vec(claims).expect("claims serialise"))
    }

    /// Issues a token of generation `generation` for `sandbox`; returns it with its expiry.
    pub fn issue(
        &self,
        sandbox: &str,
        generation: u32,
    ) -> Result<(String, SystemTime), TokenError> {
        let now = SystemTime::now();
        let exp = now + TOKEN_LIFETIME;
        let claims = Claims {
            sid: sandbox.into(),
            iat: unix_seconds(now),
            exp: unix_seconds(exp),
            gen: generation,
            typ: None,
            port: None,
            aud: None,
        };
        Ok((self.sign(&claims)?, exp))
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
    ) -> Result<String, TokenError> {
        self.sign(&Claims {
            sid: sandbox.into(),
            iat: unix_seconds(SystemTime::now()),
            exp: unix_seconds(exp),
            gen: generation,
            typ: Some(PREVIEW.into()),
            port: Some(port),
            aud: None,
        })
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

    /// A token for one call of the control plane to `node` (any of its sandboxes, the
    /// control-plane routes included), valid for [`CONTROL_TOKEN_LIFETIME`].
    pub fn issue_control(&self, node: &str) -> Result<String, TokenError> {
        let now = SystemTime::now();
        self.sign(&Claims {
            sid: String::new(),
            iat: unix_seconds(now),
            exp: unix_seconds(now + CONTROL_TOKEN_LIFETIME),
            gen: 0,
            typ: Some(CONTROL.into()),
            port: None,
            aud: Some(node.into()),
        })
    }

    /// Checks that `token` is a control plane call token for `node`.
    pub fn verify_control(&self, token: &str, node: &str) -> Result<(), TokenError> {
        let claims = self.claims(token)?;
        if claims.typ.as_deref() != Some(CONTROL) || claims.aud.as_deref() != Some(node) {
            return Err(TokenError::WrongSandbox);
        }
        Ok(())
    }

    /// Checks signature and expiry; returns the sandbox the token opens. Preview and
    /// control tokens are refused: they open a port or a node, not an agent.
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
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        // The header must name our own algorithm: no algorithm confusion.
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        match &self.key {
            Key::Hmac(key) => {
                if header != HS256_HEADER.as_bytes() {
                    return Err(TokenError::BadSignature);
                }
                mac(key, signing_input)
                    .verify_slice(&sig)
                    .map_err(|_| TokenError::BadSignature)?;
            }
            Key::Ed25519 { verifying, .. } => {
                if header != EDDSA_HEADER.as_bytes() {
                    return Err(TokenError::BadSignature);
                }
                let sig = ed25519_dalek::Signature::from_slice(&sig)
                    .map_err(|_| TokenError::BadSignature)?;
                verifying
                    .verify(signing_input.as_bytes(), &sig)
                    .map_err(|_| TokenError::BadSignature)?;
            }
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= unix_seconds(SystemTime::now()) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn mac(key: &[u8], input: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size");
    mac.update(input.as_bytes());
    mac
}

/// A key file's text: base64 of 32 bytes (surrounding whitespace ignored).
fn decode_key(text: &str, which: &str) -> Result<[u8; 32], String> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("the token {which} key is not base64 of 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::from_key(&[7; 32])
    }

    #[test]
    fn a_token_opens_its_own_sandbox_only() {
        let (token, exp) = signer().issue("sbx1", 3).unwrap();
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
        let token = signer().issue_preview("sbx1", 2, 8000, exp).unwrap();
        assert_eq!(signer().verify_preview(&token, "sbx1", 8000), Ok(2));
        assert!(signer().verify_preview(&token, "sbx1", 8001).is_err());
        assert!(signer().verify_preview(&token, "sbx2", 8000).is_err());
        assert!(
            signer().verify(&token, "sbx1").is_err(),
            "not an agent token"
        );
        let (agent, _) = signer().issue("sbx1", 2).unwrap();
        assert!(signer().verify_preview(&agent, "sbx1", 8000).is_err());
        let old = signer()
            .issue_preview("sbx1", 2, 8000, SystemTime::now() - Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            signer().verify_preview(&old, "sbx1", 8000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let (token, _) = signer().issue("sbx1", 0).unwrap();
        let other = TokenSigner::from_key(&[8; 32]);
        assert_eq!(other.verify(&token, "sbx1"), Err(TokenError::BadSignature));
        assert_eq!(signer().verify("abc", "sbx1"), Err(TokenError::Malformed));
        let mut forged = token.clone();
        forged.insert(10, 'x');
        assert!(signer().verify(&forged, "sbx1").is_err());
    }

    #[test]
    fn a_node_verifies_control_plane_tokens_but_mints_none() {
        let (private, public) = TokenSigner::generate_ed25519().unwrap();
        let control = TokenSigner::ed25519_private(&private).unwrap();
        let node = TokenSigner::ed25519_public(&public).unwrap();
        let (token, _) = control.issue("sbx1", 4).unwrap();
        assert_eq!(node.verify(&token, "sbx1"), Ok(4));
        assert_eq!(node.issue("sbx1", 4).err(), Some(TokenError::CannotSign));
        assert_eq!(node.issue_control("n1").err(), Some(TokenError::CannotSign));
        // Another key pair's tokens, and HS256 tokens, are refused.
        let (other, _) = TokenSigner::generate_ed25519().unwrap();
        let other = TokenSigner::ed25519_private(&other).unwrap();
        let (foreign, _) = other.issue("sbx1", 4).unwrap();
        assert_eq!(node.verify(&foreign, "sbx1"), Err(TokenError::BadSignature));
        let (hs, _) = signer().issue("sbx1", 4).unwrap();
        assert_eq!(node.verify(&hs, "sbx1"), Err(TokenError::BadSignature));
        // A control call token opens its node only, and is no agent token.
        let call = control.issue_control("n1").unwrap();
        assert_eq!(node.verify_control(&call, "n1"), Ok(()));
        assert!(node.verify_control(&call, "n2").is_err());
        assert!(node.sandbox_of(&call).is_err());
        assert!(node.verify_control(&token, "n1").is_err());
        assert!(TokenSigner::ed25519_public("not base64").is_err());
    }
}
