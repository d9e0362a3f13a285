//! Network wire types: egress rules (`network` on create, `PUT /v1/sandboxes/{id}/network`),
//! preview URLs of sandbox ports (`POST .../preview`) and per-sandbox traffic counters
//! (`docs/protocol.md` §4.6).

use serde::{Deserialize, Serialize};

/// Egress rules of a sandbox with `internet_access`. Entries are IPv4 CIDRs (`203.0.113.0/24`),
/// bare IPv4 addresses, or domain names (`pypi.org`, `*.example.org`: every subdomain, not
/// the name itself). An address or name matched by `allow_out` is allowed even when
/// `deny_out` matches it too (allow wins); `deny_out: ["0.0.0.0/0"]` plus an allow list is the
/// locked-down pattern. The ranges sandlotd always blocks (private, loopback, link-local,
/// the host's own addresses) stay blocked whatever the rules say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkRules {
    #[serde(default)]
    pub allow_out: Vec<String>,
    #[serde(default)]
    pub deny_out: Vec<String>,
}

/// Reply of `GET`/`PUT /v1/sandboxes/{id}/network`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkReply {
    pub id: String,
    pub internet_access: bool,
    pub network: NetworkRules,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `POST /v1/sandboxes/{id}/preview` (API key) or `POST {public_host}/preview` (sandbox
/// token): a signed URL that opens port `port` of the sandbox without other credentials.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewRequest {
    pub port: u16,
    /// Seconds the URL works (default 3600, at most the server's `--preview-max-ttl-secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// Reply of the preview routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewReply {
    /// Opens the port: `<server>/sandboxes/<id>/ports/<port>/?preview_token=…`, or
    /// `http://<port>-<id>.<preview domain>/?preview_token=…` with a preview domain.
    pub url: String,
    pub port: u16,
    /// The URL without credentials (send the sandbox token as a Bearer header to use it).
    pub host: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Bytes a sandbox sent and received over its network interface (0 without internet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkUsage {
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// The query parameter that carries a preview token on a port URL.
pub const PREVIEW_TOKEN_PARAM: &str = "preview_token";
