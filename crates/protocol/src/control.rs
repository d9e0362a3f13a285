//! Control-plane wire types (`/v1/...`, `docs/protocol.md` §4).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SandboxStatus;

/// `template_id` arrives as a string from the SDKs but the docs allow an integer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum StringOrNumber {
    String(String),
    Number(u64),
}

impl StringOrNumber {
    pub fn into_string(self) -> String {
        match self {
            Self::String(s) => s,
            Self::Number(n) => n.to_string(),
        }
    }
}

/// `POST /v1/sandboxes`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSandboxRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<StringOrNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Seconds until the sandbox is killed; absent means no timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_access: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_vars: Option<BTreeMap<String, String>>,
}

/// The body `POST /v1/sandboxes` is read as: HopX's fields plus Sandlot's `network` egress
/// rules (E2B's shape; meaningful with `internet_access`). Kept apart from
/// [`CreateSandboxRequest`] so clients that build that struct field by field keep compiling.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSandboxWithNetwork {
    #[serde(flatten)]
    pub sandbox: CreateSandboxRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::NetworkRules>,
}

/// Resources of a sandbox (`disk_mb` here, `disk_gb` on templates: HopX's own quirk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxResources {
    pub vcpu: u32,
    pub memory_mb: u64,
    pub disk_mb: u64,
}

/// Sandbox object of `GET /v1/sandboxes/{id}`; create adds the token fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sandbox {
    pub id: String,
    #[serde(default = "sandbox_object")]
    pub object: String,
    pub status: SandboxStatus,
    /// The agent base URL of this sandbox (`<server>/sandboxes/<id>/agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    #[serde(default)]
    pub organization_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<SandboxResources>,
    #[serde(default)]
    pub internet_access: bool,
    /// Whether egress is actually available (Sandlot extension): true when the sandbox has
    /// internet access and this server set its network up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_access_available: Option<bool>,
    /// The sandbox's egress rules (Sandlot extension; present with internet access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::NetworkRules>,
    #[serde(default)]
    pub live_mode: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

fn sandbox_object() -> String {
    "sandbox".into()
}

/// Cursor-paged list envelope (`{"object":"list","data":[...],...}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListEnvelope<T> {
    #[serde(default)]
    pub object: String,
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Reply of `DELETE /v1/sandboxes/{id}`, `pause` and `resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxStatusReply {
    pub id: String,
    pub status: SandboxStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `PUT /v1/sandboxes/{id}/timeout`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetTimeoutRequest {
    pub timeout_seconds: i64,
}

/// Reply of `PUT /v1/sandboxes/{id}/timeout`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetTimeoutReply {
    pub id: String,
    pub timeout_seconds: u64,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Optional body of `POST /v1/sandboxes/{id}/token/refresh` (Sandlot extension; HopX clients
/// send none and get a fresh token while older ones stay valid until they expire).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRefreshRequest {
    /// Make every earlier token of the sandbox stop working after `grace_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate: Option<bool>,
    /// How long earlier tokens keep working after a rotation (default 30, at most 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u64>,
}

/// Reply of `POST /v1/sandboxes/{id}/token/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenReply {
    pub auth_token: String,
    pub token_expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Resource figures of a template (`disk_gb` on templates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateResources {
    pub vcpu: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

/// Template object of `GET /v1/templates[/{name}]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    pub id: String,
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_resources: Option<TemplateResources>,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub is_public: bool,
    #[serde(default)]
    pub status: String,
    #[serde(default = "template_object")]
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

fn template_object() -> String {
    "template".into()
}

/// `GET /health` on the control plane and the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
}
