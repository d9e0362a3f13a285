//! Options and results of the sandbox calls: create, connect, list, the session a browser is
//! handed, and the control plane's description of a sandbox.

use std::collections::BTreeMap;

use sandlot_protocol as wire;
use serde::Serialize;

use crate::args::FromJs;
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use super::SandboxStatus;

/// Template used when `create` is given neither `template` nor `templateId` (HopX's default).
pub const DEFAULT_TEMPLATE: &str = "code-interpreter";

/// `Sandbox.create(options)`.
#[derive(Tsify, FromJs, Debug, Default)]
#[tsify(hashmap_as_object)]
#[serde(rename_all = "camelCase")]
pub struct CreateOptions {
    /// Template name (default `"code-interpreter"`).
    #[serde(default)]
    #[tsify(optional)]
    pub template: Option<String>,
    /// Template id; wins over `template` when both are given.
    #[serde(default)]
    #[tsify(optional)]
    pub template_id: Option<String>,
    /// Control-plane key; else `SANDLOT_API_KEY`, else `HOPX_API_KEY`.
    #[serde(default)]
    #[tsify(optional)]
    pub api_key: Option<String>,
    /// Control-plane URL; else `SANDLOT_URL`, else `http://127.0.0.1:7070`.
    #[serde(default, rename = "baseURL", alias = "baseUrl")]
    #[tsify(optional)]
    pub base_url: Option<String>,
    /// Seconds until the server kills the sandbox; no limit when omitted.
    #[serde(default)]
    #[tsify(optional)]
    pub timeout_seconds: Option<u64>,
    /// Outbound internet for the sandbox (default: the server's `--internet-access-default`,
    /// off unless the operator changed it). Without it the sandbox has no network at all.
    #[serde(default)]
    #[tsify(optional)]
    pub internet_access: Option<bool>,
    /// Egress rules (with `internetAccess`): CIDRs and domain names, `*.` wildcards allowed.
    /// `allowOut` wins over `denyOut`; `denyOut: ['0.0.0.0/0']` plus an allow list locks the
    /// sandbox down to that list. Change them later with `updateNetwork`. Held here in its
    /// wire shape: the façade (`surface.js`) checks and converts it, so the wasm carries no
    /// serde code for it.
    #[serde(default)]
    #[tsify(type = "NetworkRules", optional)]
    pub network: JsValue,
    /// Environment of every run in the sandbox.
    #[serde(default)]
    #[tsify(optional)]
    pub env_vars: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[tsify(optional)]
    pub region: Option<String>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

impl CreateOptions {
    pub fn to_wire(&self) -> wire::CreateSandboxRequest {
        wire::CreateSandboxRequest {
            template_id: self.template_id.clone().map(wire::StringOrNumber::String),
            template_name: match self.template_id {
                Some(_) => None,
                None => Some(
                    self.template
                        .clone()
                        .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string()),
                ),
            },
            region: self.region.clone(),
            timeout_seconds: self.timeout_seconds,
            internet_access: self.internet_access,
            env_vars: self.env_vars.clone(),
        }
    }
}

/// Second argument of `Sandbox.connect` and options of `Sandbox.list`.
#[derive(Tsify, FromJs, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConnectOptions {
    #[serde(default)]
    #[tsify(optional)]
    pub api_key: Option<String>,
    #[serde(default, rename = "baseURL", alias = "baseUrl")]
    #[tsify(optional)]
    pub base_url: Option<String>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

/// `Sandbox.list(options)`.
#[derive(Tsify, FromJs, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListOptions {
    #[serde(default)]
    #[tsify(optional)]
    pub api_key: Option<String>,
    #[serde(default, rename = "baseURL", alias = "baseUrl")]
    #[tsify(optional)]
    pub base_url: Option<String>,
    /// Only sandboxes in this state.
    #[serde(default)]
    #[tsify(optional)]
    pub status: Option<SandboxStatus>,
    /// At most this many (one page); all pages when omitted.
    #[serde(default)]
    #[tsify(optional)]
    pub limit: Option<u32>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "AbortSignal", optional)]
    pub signal: JsValue,
}

/// What a browser (or another process) needs to drive a sandbox without the API key:
/// `sandbox.getSession()` on the backend, `Sandbox.connect(session)` on the client.
#[derive(Tsify, Serialize, FromJs, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSession {
    pub sandbox_id: String,
    /// The agent's bearer token.
    pub token: String,
    /// The agent base URL (`public_host`).
    pub agent_url: String,
    /// RFC 3339 expiry of `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub token_expires_at: Option<String>,
}

/// Resources of a sandbox.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxResources {
    pub vcpu: u32,
    pub memory_mb: u64,
    pub disk_mb: u64,
}

/// A sandbox as the control plane describes it.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxInfo {
    pub sandbox_id: String,
    pub status: SandboxStatus,
    /// Agent base URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub public_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub template_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub template_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub resources: Option<SandboxResources>,
    pub internet_access: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub timeout_seconds: Option<u64>,
    /// RFC 3339 time the sandbox is killed, when it has a timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub created_at: Option<String>,
}

impl From<wire::Sandbox> for SandboxInfo {
    fn from(s: wire::Sandbox) -> Self {
        Self {
            sandbox_id: s.id,
            status: s.status.into(),
            public_host: s.public_host.or(s.direct_url),
            template_id: s.template_id,
            template_name: s.template_name,
            region: s.region,
            resources: s.resources.map(|r| SandboxResources {
                vcpu: r.vcpu,
                memory_mb: r.memory_mb,
                disk_mb: r.disk_mb,
            }),
            internet_access: s.internet_access,
            timeout_seconds: s.timeout_seconds,
            expires_at: s.expires_at,
            created_at: s.created_at,
        }
    }
}

/// Reply of `setTimeout`.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutInfo {
    pub timeout_seconds: u64,
    /// RFC 3339 time the sandbox will be killed.
    pub expires_at: String,
}

impl From<wire::SetTimeoutReply> for TimeoutInfo {
    fn from(r: wire::SetTimeoutReply) -> Self {
        Self {
            timeout_seconds: r.timeout_seconds,
            expires_at: r.expires_at,
        }
    }
}

/// Reply of `refreshToken`.
#[derive(Tsify, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub token: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn create_options_from_js_become_the_wire_request() {
        let js = js_sys::JSON::parse(
            r#"{"template":"code-interpreter","baseURL":"http://x","timeoutSeconds":60,"envVars":{"A":"1"}}"#,
        )
        .unwrap();
        let opts = <CreateOptions as crate::args::FromJs>::read_js(&js).unwrap();
        assert_eq!(opts.base_url.as_deref(), Some("http://x"));
        assert!(opts.signal.is_undefined());
        let w = opts.to_wire();
        assert_eq!(w.template_name.as_deref(), Some("code-interpreter"));
        assert_eq!(w.template_id, None);
        assert_eq!(w.timeout_seconds, Some(60));
        assert_eq!(w.env_vars.unwrap().get("A").map(String::as_str), Some("1"));
    }

    #[wasm_bindgen_test]
    fn template_id_wins_over_template_name() {
        let opts = CreateOptions {
            template: Some("base".into()),
            template_id: Some("7".into()),
            ..Default::default()
        };
        let w = opts.to_wire();
        assert_eq!(
            w.template_id,
            Some(wire::StringOrNumber::String("7".into()))
        );
        assert_eq!(w.template_name, None);
    }
}
