//! A node's internal API (`/internal/v1/sandboxes/…`), called only by the control plane with
//! a control token addressed to this node: create with the id the control plane chose
//! (idempotent), look up, kill, rotate tokens.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use sandlot_protocol::{
    code, NodeSandbox, NodeSandboxSpec, NodeTokenRotation, SandboxStatus, SandboxStatusReply,
};

use crate::api::body::{JsonBody, PathParams};
use crate::api::error::{ApiError, ApiResult};
use crate::api::AppState;
use crate::node::{NodeError, SandboxInfo, SandboxSpec};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/internal/v1/sandboxes/{id}",
            put(create).get(get).delete(kill),
        )
        .route("/internal/v1/sandboxes/{id}/token/rotate", post(rotate))
}

/// Proof that the control plane sent the request.
pub struct ControlCall;

impl FromRequestParts<AppState> for ControlCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match crate::api::auth::control_call(parts, state) {
            true => Ok(ControlCall),
            false => Err(ApiError::unauthorized(
                code::INVALID_TOKEN,
                "internal routes answer the control plane only",
            )),
        }
    }
}

fn node_sandbox(state: &AppState, s: &SandboxInfo) -> ApiResult<Json<NodeSandbox>> {
    Ok(Json(NodeSandbox {
        sandbox: crate::api::wire_sandbox(state, s, false)?,
        token_generation: s.token_generation,
        previous_generation_valid: s.token_generation > 0
            && s.accepts_token(s.token_generation - 1),
    }))
}

/// Ids whose create is under way, so a retried create waits for none and makes no twin.
static CREATING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

struct Creating(String);

impl Creating {
    fn start(id: &str) -> Option<Self> {
        let mut set = CREATING.lock().unwrap_or_else(|p| p.into_inner());
        set.get_or_insert_with(HashSet::new)
            .insert(id.to_string())
            .then(|| Creating(id.to_string()))
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        if let Some(set) = CREATING.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            set.remove(&self.0);
        }
    }
}

fn valid_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            "a sandbox id is 1-64 letters and digits",
        ));
    }
    Ok(())
}

async fn create(
    _: ControlCall,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(spec): JsonBody<NodeSandboxSpec>,
) -> ApiResult<Json<NodeSandbox>> {
    valid_id(&id)?;
    if let Ok(existing) = state.node.sandbox(&id) {
        return node_sandbox(&state, &existing);
    }
    if let Some(seconds) = spec.timeout_seconds {
        crate::api::check_sandbox_timeout(&state, seconds)?;
    }
    let Some(_creating) = Creating::start(&id) else {
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::CONFLICT,
                code::CONFLICT,
                "this sandbox is being created; ask again",
            )
        });
    };
    let node = state.node.clone();
    let spec = SandboxSpec {
        id: Some(id),
        template: spec.template,
        timeout_seconds: spec.timeout_seconds,
        internet_access: spec.internet_access,
        network: spec.network,
        env_vars: spec.env_vars,
    };
    // Runs to the end even if the caller goes away, so no half-made sandbox is left behind.
    let sandbox = tokio::spawn(async move { node.create_sandbox(spec).await })
        .await
        .map_err(|e| ApiError::from(NodeError::Internal(e.to_string())))??;
    node_sandbox(&state, &sandbox)
}

async fn get(
    _: ControlCall,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<NodeSandbox>> {
    node_sandbox(&state, &state.node.sandbox(&id)?)
}

async fn kill(
    _: ControlCall,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<SandboxStatusReply>> {
    let node = state.node.clone();
    let sid = id.clone();
    tokio::spawn(async move { node.kill_sandbox(&sid).await })
        .await
        .map_err(|e| ApiError::from(NodeError::Internal(e.to_string())))??;
    state.requests.forget(&id);
    Ok(Json(SandboxStatusReply {
        id,
        status: SandboxStatus::Deleted,
        request_id: Some(crate::api::context::current().request_id),
    }))
}

async fn rotate(
    _: ControlCall,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<NodeTokenRotation>,
) -> ApiResult<Json<NodeSandbox>> {
    let grace = std::time::Duration::from_secs(req.grace_seconds.min(3600));
    let sandbox = state.node.rotate_sandbox_token(&id, grace)?;
    node_sandbox(&state, &sandbox)
}
