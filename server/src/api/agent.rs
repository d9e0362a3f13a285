//! Agent routes (`<public_host>/...`): run code, list, get, kill and remove processes.

use axum::extract::State;
use axum::Json;
use sandlot_protocol::{
    code, defaults, AsyncExecuteRequest, AsyncExecuteResponse, BackgroundExecuteRequest,
    BackgroundExecuteResponse, ExecuteRequest, ExecuteResponse, KillProcessRequest,
    ProcessActionReply, ProcessInfo, ProcessList,
};
use serde_json::{json, Value};

use super::auth::AgentSandbox;
use super::body::JsonBody;
use super::control::validate_env;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::exec::ProcessEntry;
use crate::sandbox::{RunRequest, Sandbox};
use crate::time::{now_rfc3339, rfc3339_millis};
use crate::webhook::Callback;
use std::sync::Arc;

pub async fn health(
    State(state): State<AppState>,
    AgentSandbox { .. }: AgentSandbox,
) -> Json<Value> {
    Json(json!({
        "status": "healthy",
        "agent": "sandlotd",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "features": {
            "code_execution": true,
            "background_jobs": true,
            "languages": ["python", "javascript", "bash"],
        },
    }))
}

pub async fn info(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> Json<Value> {
    Json(json!({
        "vm_id": sandbox.id,
        "agent": "sandlotd",
        "agent_version": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "template": sandbox.template.name,
        "languages": sandbox.template.languages,
        "start_time": rfc3339_millis(sandbox.created_at),
        "uptime": state.started.elapsed().as_secs(),
        "limits": {
            "memory_mb": state.cfg.sandbox_memory_mb,
            "pids": state.cfg.sandbox_pids,
            "cpus": state.cfg.sandbox_cpus,
            "output_cap_bytes": state.cfg.output_cap_bytes,
            "max_processes": state.cfg.max_processes_per_sandbox,
        },
        "endpoints": {
            "health": "GET /health",
            "info": "GET /info",
            "execute": "POST /execute",
            "execute_background": "POST /execute/background",
            "list_processes": "GET /execute/processes",
            "get_process": "GET /execute/processes/{id}",
            "remove_process": "DELETE /execute/processes/{id}",
            "kill_process": "POST /execute/kill/{id}",
        },
    }))
}

pub(super) fn run_request(
    code: Option<String>,
    language: Option<String>,
    timeout: Option<u64>,
    workdir: Option<String>,
    env: Option<std::collections::BTreeMap<String, String>>,
    name: Option<String>,
) -> ApiResult<RunRequest> {
    let code = code.ok_or_else(|| ApiError::missing("code"))?;
    if let Some(env) = &env {
        validate_env(env)?;
    }
    Ok(RunRequest {
        code,
        language,
        timeout,
        workdir,
        env,
        name,
    })
}

pub async fn execute(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<ExecuteRequest>,
) -> ApiResult<Json<ExecuteResponse>> {
    let run = run_request(
        req.code,
        req.language,
        req.timeout,
        req.workdir.or(req.working_dir),
        req.env,
        None,
    )?;
    let (entry, lang) = state.node.run_sync(&sandbox, run).await?;
    let info = entry.to_info();
    Ok(Json(ExecuteResponse {
        success: info.exit_code == Some(0),
        stdout: info.stdout,
        stderr: info.stderr,
        exit_code: info.exit_code.unwrap_or(-1),
        execution_time: info.execution_time.unwrap_or(0.0),
        timestamp: Some(now_rfc3339()),
        language: Some(lang.into()),
        status: Some(info.status),
        stdout_truncated: info.stdout_truncated,
        stderr_truncated: info.stderr_truncated,
    }))
}

/// Starts a recorded (listed, stored) process from a background-style request.
pub(super) fn start_recorded(
    state: &AppState,
    sandbox: &Arc<Sandbox>,
    req: BackgroundExecuteRequest,
    default_timeout: u64,
) -> ApiResult<Arc<ProcessEntry>> {
    let name = req.name.filter(|n| !n.is_empty());
    let workdir = req.workdir.or(req.working_dir);
    let run = run_request(req.code, req.language, req.timeout, workdir, req.env, name)?;
    Ok(state
        .node
        .start_process(sandbox, run, default_timeout, true)?)
}

pub async fn execute_background(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<BackgroundExecuteRequest>,
) -> ApiResult<Json<BackgroundExecuteResponse>> {
    let entry = start_recorded(&state, &sandbox, req, defaults::BACKGROUND_TIMEOUT_SECS)?;
    let info = entry.to_info();
    Ok(Json(BackgroundExecuteResponse {
        process_id: info.process_id,
        execution_id: info.execution_id,
        status: info.status,
        name: info.name,
        timeout: Some(entry.timeout_secs),
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
    let run = BackgroundExecuteRequest {
        code: req.code,
        language: req.language,
        timeout: req.timeout,
        workdir: req.workdir,
        working_dir: req.working_dir,
        env: req.env,
        name: req.name,
    };
    let entry = start_recorded(&state, &sandbox, run, defaults::ASYNC_TIMEOUT_SECS)?;
    let url = callback.url.clone();
    if let Err(e) = state.webhooks.register(entry.clone(), callback) {
        entry.request_stop(crate::exec::StopReason::Killed);
        return Err(ApiError::from(crate::sandbox::NodeError::Internal(e)));
    }
    Ok(Json(AsyncExecuteResponse {
        execution_id: entry.execution_id.clone(),
        process_id: entry.id.clone(),
        status: entry.status(),
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
    AgentSandbox { sandbox, .. }: AgentSandbox,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> ApiResult<Json<ProcessList>> {
    let statuses = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|s| {
                    sandlot_protocol::ProcessStatus::parse(s.trim()).ok_or_else(|| {
                        ApiError::bad_request(
                            code::INVALID_REQUEST,
                            format!("unknown status '{s}'"),
                        )
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
    };
    let processes: Vec<ProcessInfo> = sandbox
        .processes
        .all()
        .iter()
        .filter(|p| q.name.as_ref().is_none_or(|n| p.name.as_ref() == Some(n)))
        .filter(|p| statuses.as_ref().is_none_or(|s| s.contains(&p.status())))
        .map(|p| p.info(q.output != Some(false)))
        .collect();
    Ok(Json(ProcessList {
        count: processes.len(),
        processes,
        timestamp: Some(now_rfc3339()),
    }))
}

fn process_param(params: &std::collections::HashMap<String, String>) -> ApiResult<String> {
    params
        .get("pid")
        .cloned()
        .ok_or_else(|| ApiError::missing("process_id"))
}

pub async fn get_process(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<ProcessInfo>> {
    let entry = state
        .node
        .find_process(&sandbox, &process_param(&params)?)?;
    Ok(Json(entry.to_info()))
}

async fn kill(
    state: &AppState,
    sandbox: &crate::sandbox::Sandbox,
    process_id: &str,
) -> ApiResult<Json<ProcessActionReply>> {
    let entry = state.node.kill_process(sandbox, process_id).await?;
    let status = entry.status();
    let message = match status {
        sandlot_protocol::ProcessStatus::Killed => "Process terminated successfully".to_string(),
        other => format!("Process had already ended ({})", other.as_str()),
    };
    Ok(Json(ProcessActionReply {
        success: true,
        process_id: entry.id.clone(),
        status,
        message,
    }))
}

/// `POST /execute/kill/{pid}` and `POST /processes/{pid}/kill`.
pub async fn kill_by_path(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<ProcessActionReply>> {
    kill(&state, &sandbox, &process_param(&params)?).await
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
    kill(&state, &sandbox, &id).await
}

/// `DELETE /execute/processes/{pid}`: forget a finished process.
pub async fn remove_process(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<ProcessActionReply>> {
    let id = process_param(&params)?;
    let entry = state
        .node
        .remove_process(&sandbox, &id)
        .map_err(|e| match e {
            crate::sandbox::NodeError::Invalid(msg) => {
                ApiError::new(axum::http::StatusCode::CONFLICT, code::CONFLICT, msg)
            }
            other => other.into(),
        })?;
    Ok(Json(ProcessActionReply {
        success: true,
        process_id: id,
        status: entry.status(),
        message: "Process record removed".into(),
    }))
}

/// Body of `PUT /env` and `PATCH /env`.
#[derive(Debug, serde::Deserialize)]
pub struct EnvBody {
    env_vars: Option<std::collections::BTreeMap<String, String>>,
}

fn env_reply(env: std::collections::BTreeMap<String, String>) -> Json<Value> {
    Json(json!({ "count": env.len(), "env_vars": env, "timestamp": now_rfc3339() }))
}

/// `GET /env`: the sandbox's global environment (every later process starts with it).
pub async fn get_env(AgentSandbox { sandbox, .. }: AgentSandbox) -> Json<Value> {
    env_reply(sandbox.env_vars())
}

/// `PUT /env` replaces the global environment; `PATCH /env` merges into it.
pub async fn set_env(
    State(state): State<AppState>,
    method: axum::http::Method,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(body): JsonBody<EnvBody>,
) -> ApiResult<Json<Value>> {
    let vars = body.env_vars.ok_or_else(|| ApiError::missing("env_vars"))?;
    validate_env(&vars)?;
    let merge = method == axum::http::Method::PATCH;
    Ok(env_reply(state.node.set_env(&sandbox, vars, merge)?))
}

/// `DELETE /env`: clears the global environment.
pub async fn clear_env(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Json<Value>> {
    Ok(env_reply(state.node.set_env(
        &sandbox,
        Default::default(),
        false,
    )?))
}
