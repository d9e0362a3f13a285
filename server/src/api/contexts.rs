//! Running code in contexts and managing them: `POST /execute` (its language's default
//! context unless `context_id` or `fresh`), `POST /execute/ipython`, `/contexts`, and
//! HopX's `GET /jupyter/sessions`, all served from the same contexts.

use axum::extract::State;
use axum::Json;
use sandlot_protocol::{
    code, defaults, CodeRunRequest, ContextInfo, ContextList, CreateContextRequest,
    ExecuteResponse, JupyterSessions, Language,
};

use super::auth::AgentSandbox;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::node::CodeRun;
use crate::time::now_rfc3339;

/// The `/execute` reply of a run: HopX's fields, its flat rich fields, `results`, `error`
/// (the record's text) and `execution_error` (the object).
pub fn execute_reply(run: CodeRun) -> ExecuteResponse {
    let info = run.info;
    let mut reply = ExecuteResponse {
        success: info.exit_code == Some(0),
        stdout: info.stdout,
        stderr: info.stderr,
        exit_code: info.exit_code.unwrap_or(-1),
        execution_time: info.execution_time.unwrap_or(0.0),
        timestamp: Some(now_rfc3339()),
        language: Some(run.language.as_str().into()),
        status: Some(info.status),
        stdout_truncated: info.stdout_truncated,
        stderr_truncated: info.stderr_truncated,
        error: info.error,
        execution_error: run.error,
        oom_killed: info.oom_killed,
        results: run.results,
        context_id: run.context_id,
        execution_count: run.execution_count,
        ..Default::default()
    };
    reply.flatten_results();
    reply
}

pub async fn execute(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<CodeRunRequest>,
) -> ApiResult<Json<ExecuteResponse>> {
    let run = state
        .node
        .run_code(&sandbox.id, req, defaults::EXECUTE_TIMEOUT_SECS)
        .await?;
    Ok(Json(execute_reply(run)))
}

/// `POST /execute/ipython`: python in its default context (or the named one).
pub async fn execute_ipython(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(mut req): JsonBody<CodeRunRequest>,
) -> ApiResult<Json<ExecuteResponse>> {
    match req.run.language.as_deref().map(Language::parse) {
        None | Some(Some(Language::Python)) => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                code::INVALID_REQUEST,
                "/execute/ipython runs python only",
            ))
        }
    }
    req.run.language = Some("python".into());
    req.fresh = None;
    let run = state
        .node
        .run_code(&sandbox.id, req, defaults::IPYTHON_TIMEOUT_SECS)
        .await?;
    Ok(Json(execute_reply(run)))
}

pub async fn create(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<CreateContextRequest>,
) -> ApiResult<Json<ContextInfo>> {
    Ok(Json(state.node.create_context(&sandbox.id, req).await?))
}

pub async fn list(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Json<ContextList>> {
    Ok(Json(ContextList {
        contexts: state.node.contexts(&sandbox.id)?,
    }))
}

fn context_param(params: &std::collections::HashMap<String, String>) -> ApiResult<&str> {
    params
        .get("cid")
        .map(String::as_str)
        .ok_or_else(|| ApiError::missing("context_id"))
}

pub async fn restart(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<ContextInfo>> {
    Ok(Json(
        state
            .node
            .restart_context(&sandbox.id, context_param(&params)?)
            .await?,
    ))
}

pub async fn remove(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<serde_json::Value>> {
    let id = context_param(&params)?;
    state.node.remove_context(&sandbox.id, id).await?;
    Ok(Json(serde_json::json!({"success": true, "id": id})))
}

/// `GET /jupyter/sessions`: the contexts, as HopX lists its kernels.
pub async fn jupyter_sessions(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Json<JupyterSessions>> {
    let sessions = state
        .node
        .contexts(&sandbox.id)?
        .into_iter()
        .map(|c| sandlot_protocol::JupyterSession {
            kernel_id: c.id,
            execution_state: match c.state {
                sandlot_protocol::ContextState::Busy => "busy",
                sandlot_protocol::ContextState::Starting => "starting",
                _ => "idle",
            }
            .into(),
            connections: 0,
            last_activity: c.last_activity,
            language: Some(c.language),
        })
        .collect();
    Ok(Json(JupyterSessions { sessions }))
}
