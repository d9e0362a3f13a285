//! Network routes: a sandbox's egress rules (`GET`/`PUT /v1/sandboxes/{id}/network`) and
//! signed preview URLs of its ports (`POST /v1/sandboxes/{id}/preview` with the API key,
//! `POST {public_host}/preview` with the sandbox token).

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::Json;
use sandlot_protocol::{
    code, NetworkReply, NetworkRules, PreviewReply, PreviewRequest, PREVIEW_TOKEN_PARAM,
};

use super::auth::{AgentSandbox, ApiKey};
use super::body::{JsonBody, PathParams};
use super::context;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::node::SandboxInfo;
use crate::time::rfc3339_seconds;

/// Lifetime of a preview URL when the request names none.
const DEFAULT_PREVIEW_TTL_SECS: u64 = 3600;

fn reply(s: &SandboxInfo) -> Json<NetworkReply> {
    Json(NetworkReply {
        id: s.id.clone(),
        internet_access: s.internet_access,
        network: s.network.clone().unwrap_or_default(),
        request_id: Some(context::current().request_id),
    })
}

pub async fn get(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<NetworkReply>> {
    Ok(reply(&state.node.sandbox(&id)?))
}

/// Replaces the rules whole (E2B's `updateNetwork`).
pub async fn set(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(rules): JsonBody<NetworkRules>,
) -> ApiResult<Json<NetworkReply>> {
    Ok(reply(&state.node.set_sandbox_network(&id, rules).await?))
}

pub async fn preview_by_key(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<PreviewRequest>,
) -> ApiResult<Json<PreviewReply>> {
    let sandbox = state.node.sandbox(&id)?;
    preview(&state, &sandbox, req)
}

pub async fn preview_by_token(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<PreviewRequest>,
) -> ApiResult<Json<PreviewReply>> {
    preview(&state, &sandbox, req)
}

fn preview(
    state: &AppState,
    sandbox: &SandboxInfo,
    req: PreviewRequest,
) -> ApiResult<Json<PreviewReply>> {
    if req.port == 0 {
        return Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            "port must be between 1 and 65535",
        ));
    }
    let max = state.cfg.preview_max_ttl_secs;
    let ttl = req.ttl_seconds.unwrap_or(DEFAULT_PREVIEW_TTL_SECS.min(max));
    if ttl == 0 || ttl > max {
        return Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("ttl_seconds must be between 1 and {max}"),
        ));
    }
    let expires = SystemTime::now() + Duration::from_secs(ttl);
    let token = state
        .signer
        .issue_preview(&sandbox.id, sandbox.token_generation, req.port, expires)
        .map_err(ApiError::cannot_sign)?;
    let host = port_url(state, &sandbox.id, req.port);
    Ok(Json(PreviewReply {
        url: format!("{host}?{PREVIEW_TOKEN_PARAM}={token}"),
        port: req.port,
        host,
        expires_at: rfc3339_seconds(expires),
        request_id: Some(context::current().request_id),
    }))
}

/// Where port `port` of sandbox `id` is reached (ending in `/`).
pub fn port_url(state: &AppState, id: &str, port: u16) -> String {
    let base = state.cfg.public_base_url();
    match &state.cfg.preview_domain {
        Some(domain) => {
            let (scheme, rest) = base.split_once("://").unwrap_or(("http", &base));
            // Keep the server's port when it has one (a dev server on :7070).
            let port_suffix = rest
                .rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map(|(_, p)| format!(":{p}"))
                .unwrap_or_default();
            format!("{scheme}://{port}-{id}.{domain}{port_suffix}/")
        }
        None => format!("{base}/sandboxes/{id}/ports/{port}/"),
    }
}
