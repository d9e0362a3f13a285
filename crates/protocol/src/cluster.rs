//! Cluster mode's internal wire types (`docs/cluster.md`): what a node agent
//! (`sandlotd node`) and the control plane (`sandlotd control`) say to each other. Clients
//! never see these; they speak the `/v1` and agent API to the control plane.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{NetworkRules, Sandbox};

/// Node → control plane (`POST /internal/v1/nodes/register`, join token): a node that
/// starts, or one that was fenced, asks for a new epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRegistration {
    /// Stable name of the node (the host's name).
    pub name: String,
    /// Base URL the control plane reaches this node's API at.
    pub addr: String,
    /// Sandboxes the node runs at once.
    pub capacity: u32,
    /// Templates the node can start.
    pub templates: Vec<String>,
    pub version: String,
}

/// The control plane's answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRegistered {
    pub node_id: String,
    /// This incarnation of the node; heartbeats of an older one are refused (fenced).
    pub epoch: i64,
    pub lease_seconds: u64,
    pub heartbeat_seconds: u64,
    /// Base URL clients reach the cluster at (the node's sandboxes' `public_host` base).
    pub public_url: String,
    /// A secret of this incarnation alone: every heartbeat carries it, so holding the join
    /// token is not enough to speak for a node that is alive.
    pub session: String,
}

/// Node → control plane, every few seconds (`POST /internal/v1/nodes/{id}/heartbeat`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    pub epoch: i64,
    /// The session secret the registration gave.
    pub session: String,
    /// Every sandbox the node runs now.
    pub sandboxes: Vec<String>,
}

/// The control plane's answer to a heartbeat: the node's lease was renewed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeHeartbeatReply {
    /// Sandboxes the node runs that the catalog does not give it: kill them.
    #[serde(default)]
    pub orphans: Vec<String>,
    /// The node is draining: it gets no new sandboxes.
    #[serde(default)]
    pub draining: bool,
}

/// Control plane → node (`PUT /internal/v1/sandboxes/{id}`): create this sandbox, with the
/// id the control plane chose. Idempotent: a second call answers the same sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSandboxSpec {
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    pub internet_access: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkRules>,
    #[serde(default)]
    pub env_vars: BTreeMap<String, String>,
}

/// A node's sandbox as the control plane sees it: the client's record (no token) and the
/// token generation the control plane signs tokens for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSandbox {
    pub sandbox: Sandbox,
    pub token_generation: u32,
    /// Whether tokens of the generation before still work (a rotation's grace).
    #[serde(default)]
    pub previous_generation_valid: bool,
}

/// Control plane → node (`POST /internal/v1/sandboxes/{id}/token/rotate`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeTokenRotation {
    pub grace_seconds: u64,
}

/// One node of the cluster (`GET /v1/cluster/nodes`, with the API key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterNode {
    pub name: String,
    pub addr: String,
    /// `ready`, `draining` or `lost`.
    pub state: String,
    pub epoch: i64,
    pub capacity: u32,
    pub allocated: u32,
    /// When its lease runs out unless it heartbeats (RFC 3339).
    pub lease_until: String,
}

/// `GET /v1/cluster/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterNodeList {
    pub nodes: Vec<ClusterNode>,
}
