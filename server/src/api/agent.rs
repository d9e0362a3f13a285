//! Agent routes (`<public_host>/...`): run code, list, get, kill and remove processes, the
//! sandbox's environment, health and info.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sandlot_protocol::{
    code, defaults, AgentFeatures, AgentHealth, AgentInfo, AgentLimits, AsyncExecuteRequest,
    AsyncExecuteResponse, BackgroundExecuteRequest, BackgroundExecuteResponse, EnvReply, EnvUpdate,
    KillProcessRequest, Language, ProcessActionReply, ProcessInfo, ProcessList, ProcessStatus,
};

use super::auth::AgentSandbox;
use super::body::{JsonBody, QueryParams};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::node::{NodeError, ProcessFilter};
use crate::time::{now_rfc3339, rfc3339_millis};
use crate::webhook::Callback;

const AGENT_NAME: &str = "sandlotd";

pub async fn health(
    State(state): State<AppState>,
    AgentSandbox { .. }: AgentSandbox,
) -> Json<AgentHealth> {
    Json(AgentHealth {
        status: "healthy".into(),
        agent: AGENT_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs(),
        features: AgentFeatures {
            code_execution: true,
            background_jobs: true,
            languages: Language::ALL.to_vec(),
        },
    })
}

pub async fn info(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> Json<AgentInfo> {
    let endpoints = [
        ("health", "GET /health"),
        ("info", "GET /info"),
        ("execute", "POST /execute"),
        ("execute_ipython", "POST /execute/ipython"),
        ("contexts", "GET|POST /contexts"),
        ("restart_context", "POST /contexts/{id}/restart"),
        ("remove_context", "DELETE /contexts/{id}"),
        ("jupyter_sessions", "GET /jupyter/sessions"),
        ("execute_background", "POST /execute/background"),
        ("list_processes", "GET /execute/processes"),
        ("get_process", "GET /execute/processes/{id}"),
        ("remove_process", "DELETE /execute/processes/{id}"),
        ("kill_process", "POST /execute/kill/{id}"),
        ("commands_run", "POST /commands/run"),
        ("commands_background", "POST /commands/background"),
        ("system_processes", "GET /processes"),
        ("metrics_snapshot", "GET /metrics/snapshot"),
        ("metrics_prometheus", "GET /metrics/prometheus"),
        ("system", "GET /system"),
        ("terminal", "WS /terminal"),
        ("terminals", "POST /terminals"),
        ("files_read", "GET /files/read"),
        ("files_write", "POST /files/write"),
        ("files_list", "GET /files/list"),
        ("files_exists", "GET /files/exists"),
        ("files_remove", "DELETE /files/remove"),
        ("files_mkdir", "POST /files/mkdir"),
        ("files_rename", "POST /files/rename"),
        ("files_upload", "POST /files/upload"),
        ("files_download", "GET /files/download"),
        ("files_watch", "GET /files/watch"),
    ];
    Json(AgentInfo {
        vm_id: sandbox.id,
        agent: AGENT_NAME.into(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        template: sandbox.template.name.into(),
        languages: sandbox.template.languages.to_vec(),
        start_time: rfc3339_millis(sandbox.created_at),
        uptime: state.started.elapsed().as_secs(),
        limits: AgentLimits {
            memory_mb: state.cfg.sandbox_memory_mb,
            pids: state.cfg.sandbox_pids,
            cpus: state.cfg.sandbox_cpus,
            output_cap_bytes: state.cfg.output_cap_bytes,
            max_processes: state.cfg.max_processes_per_sandbox,
        },
        endpoints: endpoints
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

pub async fn execute_background(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<BackgroundExecuteRequest>,
) -> ApiResult<Json<BackgroundExecuteResponse>> {
    let info = state
        .node
        .start_process(&sandbox.id, req, defaults::BACKGROUND_TIMEOUT_SECS)?;
    Ok(Json(BackgroundExecuteResponse {
        process_id: info.process_id,
        execution_id: info.execution_id,
        status: info.status,
        name: info.name,
        timeout: info.timeout,
        start_time: info.started_at,
        message: Some("Process started in the background".into()),
    }))
}

/// `POST /execute/async`: start in the background; POST the result to the callback at the end.
pub async fn execute_async(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<AsyncExecuteRequest>,
) -> ApiResult<Json<AsyncExecuteResponse>> {
    let callback = Callback {
        url: req
            .callback_url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ApiError::missing("callback_url"))?,
        headers: req.callback_headers.unwrap_or_default(),
        secret: req.callback_signature_secret.filter(|s| !s.is_empty()),
    };
    state
        .webhooks
        .validate(&callback)
        .map_err(|msg| ApiError::bad_request(code::INVALID_REQUEST, msg))?;
    let info = state
        .node
        .start_process(&sandbox.id, req.run, defaults::ASYNC_TIMEOUT_SECS)?;
    let url = callback.url.clone();
    let (node, sandbox_id, process_id) = (
        state.node.clone(),
        sandbox.id.clone(),
        info.process_id.clone(),
    );
    let finished = async move { node.wait_process(&sandbox_id, &process_id).await.ok() };
    if let Err(e) = state
        .webhooks
        .register(&sandbox.id, &info, callback, finished)
    {
        let _ = state.node.kill_process(&sandbox.id, &info.process_id).await;
        return Err(NodeError::from(e).into());
    }
    Ok(Json(AsyncExecuteResponse {
        execution_id: info.execution_id,
        process_id: info.process_id,
        status: info.status,
        callback_url: url,
        message: Some("Execution queued. Will POST to callback_url when complete.".into()),
        timestamp: Some(now_rfc3339()),
    }))
}

/// Filters of `GET /execute/processes` (Sandlot extensions; without them, everything).
#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    /// Comma-separated statuses to keep, e.g. `running,queued`.
    status: Option<String>,
    /// Keep only processes with this name.
    name: Option<String>,
    /// `false` leaves `stdout` and `stderr` empty (their byte counts stay): cheap polling.
    output: Option<bool>,
}

pub async fn list_processes(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let statuses = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|s| {
                    ProcessStatus::parse(s.trim()).ok_or_else(|| {
                        ApiError::bad_request(
                            code::INVALID_REQUEST,
                            format!("unknown status '{s}'"),
                        )
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
    };
    let filter = ProcessFilter {
        statuses,
        name: q.name,
        without_output: q.output == Some(false),
    };
    let processes = state.node.processes(&sandbox.id, &filter)?;
    // Lists can be megabytes: size the buffer once instead of growing it a page at a time.
    let estimate: usize = processes.iter().map(|p| p.get().len() + 1).sum();
    let list = ProcessList {
        count: processes.len(),
        processes,
        timestamp: Some(now_rfc3339()),
    };
    let mut body = Vec::with_capacity(estimate + 128);
    serde_json::to_writer(&mut body, &list).map_err(|e| ApiError::internal(&e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn process_param(params: &HashMap<String, String>) -> ApiResult<&str> {
    params
        .get("pid")
        .map(String::as_str)
        .ok_or_else(|| ApiError::missing("process_id"))
}

pub async fn get_process(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<ProcessInfo>> {
    Ok(Json(
        state.node.process(&sandbox.id, process_param(&params)?)?,
    ))
}

async fn kill(
    state: &AppState,
    sandbox_id: &str,
    process_id: &str,
) -> ApiResult<Json<ProcessActionReply>> {
    let info = state.node.kill_process(sandbox_id, process_id).await?;
    let message = match info.status {
        ProcessStatus::Killed => "Process terminated successfully".to_string(),
        other => format!("Process had already ended ({})", other.as_str()),
    };
    Ok(Json(ProcessActionReply {
        success: true,
        process_id: info.process_id,
        status: info.status,
        message,
    }))
}

/// `POST /execute/kill/{pid}` and `POST /processes/{pid}/kill`.
pub async fn kill_by_path(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<ProcessActionReply>> {
    kill(&state, &sandbox.id, process_param(&params)?).await
}

/// `DELETE /execute/kill` with `{"process_id": ...}`.
pub async fn kill_by_body(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<KillProcessRequest>,
) -> ApiResult<Json<ProcessActionReply>> {
    let id = req
        .process_id
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::missing("process_id"))?;
    kill(&state, &sandbox.id, &id).await
}

/// `DELETE /execute/processes/{pid}`: forget a finished process.
pub async fn remove_process(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<ProcessActionReply>> {
    let info = state
        .node
        .remove_process(&sandbox.id, process_param(&params)?)?;
    Ok(Json(ProcessActionReply {
        success: true,
        process_id: info.process_id,
        status: info.status,
        message: "Process record removed".into(),
    }))
}

fn env_reply(env: BTreeMap<String, String>) -> Json<EnvReply> {
    Json(EnvReply {
        count: env.len(),
        env_vars: env,
        timestamp: Some(now_rfc3339()),
    })
}

/// `GET /env`: the sandbox's global environment (every later process starts with it).
pub async fn get_env(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Json<EnvReply>> {
    Ok(env_reply(state.node.sandbox_env(&sandbox.id)?))
}

/// `PUT /env` replaces the global environment; `PATCH /env` merges into it.
pub async fn set_env(
    State(state): State<AppState>,
    method: Method,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(body): JsonBody<EnvUpdate>,
) -> ApiResult<Json<EnvReply>> {
    let vars = body.env_vars.ok_or_else(|| ApiError::missing("env_vars"))?;
    let merge = method == Method::PATCH;
    Ok(env_reply(state.node.set_sandbox_env(
        &sandbox.id,
        vars,
        merge,
    )?))
}

/// `DELETE /env`: clears the global environment.
pub async fn clear_env(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Json<EnvReply>> {
    Ok(env_reply(state.node.set_sandbox_env(
        &sandbox.id,
        BTreeMap::new(),
        false,
    )?))
}
