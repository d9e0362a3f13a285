//! Control-plane routes (`/v1/...`): sandboxes, tokens and templates.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use sandlot_protocol::{
    code, CreateSandboxWithNetwork, ListEnvelope, Sandbox as WireSandbox, SandboxResources,
    SandboxStatus, SandboxStatusReply, SetTimeoutReply, SetTimeoutRequest, Template,
    TokenRefreshRequest, TokenReply,
};
use serde::Deserialize;

use super::auth::ApiKey;
use super::body::{JsonBody, PathParams, QueryParams};
use super::context;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::node::{NodeError, SandboxInfo, SandboxSpec};
use crate::sandbox::template::{self, TEMPLATES};
use crate::time::rfc3339_seconds;

/// The wire form of a sandbox; `with_token` adds a fresh agent token (create, connect).
pub fn wire_sandbox(state: &AppState, s: &SandboxInfo, with_token: bool) -> ApiResult<WireSandbox> {
    let (auth_token, token_expires_at) = if with_token {
        let (token, exp) = state
            .signer
            .issue(&s.id, s.token_generation)
            .map_err(ApiError::cannot_sign)?;
        (Some(token), Some(rfc3339_seconds(exp)))
    } else {
        (None, None)
    };
    Ok(WireSandbox {
        id: s.id.clone(),
        object: "sandbox".into(),
        status: s.status,
        public_host: Some(s.public_host.clone()),
        direct_url: Some(s.public_host.clone()),
        template_id: Some(s.template.id.into()),
        template_name: Some(s.template.name.into()),
        organization_id: 1,
        node_id: Some(s.node_id.clone()),
        region: Some("local".into()),
        resources: Some(SandboxResources {
            vcpu: state.cfg.sandbox_cpus.ceil() as u32,
            memory_mb: state.cfg.sandbox_memory_mb,
            disk_mb: state.cfg.sandbox_disk_reported_mb(),
        }),
        internet_access: s.internet_access,
        internet_access_available: Some(s.network.is_some()),
        network: s.network.clone(),
        live_mode: false,
        timeout_seconds: s.timeout_seconds,
        expires_at: s.expires_at.map(rfc3339_seconds),
        created_at: Some(rfc3339_seconds(s.created_at)),
        auth_token,
        token_expires_at,
        request_id: Some(context::current().request_id),
    })
}

pub async fn create(
    _: ApiKey,
    State(state): State<AppState>,
    JsonBody(CreateSandboxWithNetwork {
        sandbox: req,
        network,
    }): JsonBody<CreateSandboxWithNetwork>,
) -> ApiResult<impl IntoResponse> {
    let template = req
        .template_id
        .map(|t| t.into_string())
        .or(req.template_name)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                code::MISSING_PARAMETER,
                "missing 'template_name' or 'template_id'",
            )
        })?;
    if let Some(seconds) = req.timeout_seconds {
        check_sandbox_timeout(&state, seconds)?;
    }
    let spec = SandboxSpec {
        id: None,
        template,
        timeout_seconds: req.timeout_seconds,
        internet_access: req
            .internet_access
            .unwrap_or(state.cfg.internet_access_default),
        network,
        env_vars: req.env_vars.unwrap_or_default(),
    };
    // Runs to the end even if the client goes away, so no half-made sandbox is left behind.
    let node = state.node.clone();
    let sandbox = tokio::spawn(async move { node.create_sandbox(spec).await })
        .await
        .map_err(|e| ApiError::from(NodeError::Internal(e.to_string())))??;
    Ok((
        StatusCode::CREATED,
        Json(wire_sandbox(&state, &sandbox, true)?),
    ))
}

/// A sandbox lifetime is between 1 s and `--max-sandbox-timeout-secs`, so every expiry can
/// be stored and written as a date.
pub(crate) fn check_sandbox_timeout(state: &AppState, seconds: u64) -> ApiResult<()> {
    let max = state.cfg.max_sandbox_timeout_secs;
    if seconds == 0 || seconds > max {
        return Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("timeout_seconds must be between 1 and {max}"),
        ));
    }
    Ok(())
}

/// `GET /v1/sandboxes`'s query (a standalone server's and a cluster's control plane's).
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    status: Option<String>,
}

impl ListQuery {
    /// The status filter, checked.
    pub fn status(&self) -> ApiResult<Option<SandboxStatus>> {
        match self.status.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => SandboxStatus::parse(s).map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    code::INVALID_REQUEST,
                    format!("unknown status filter '{s}'"),
                )
            }),
        }
    }

    /// The page of `all` (filtered, in list order) that the limit and the cursor (the id of
    /// the last sandbox of the previous page) ask for, as the list's envelope.
    pub fn page<T>(&self, all: Vec<T>, id: impl Fn(&T) -> &str) -> ApiResult<ListEnvelope<T>> {
        let limit = self.limit.unwrap_or(100).clamp(1, 1000);
        let start = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => all
                .iter()
                .position(|s| id(s) == c)
                .map(|i| i + 1)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        code::INVALID_REQUEST,
                        "unknown cursor; start again without one",
                    )
                })?,
        };
        let total = all.len();
        let data: Vec<T> = all.into_iter().skip(start).take(limit).collect();
        let has_more = start + data.len() < total;
        Ok(ListEnvelope {
            object: "list".into(),
            next_cursor: has_more
                .then(|| data.last().map(|s| id(s).to_string()))
                .flatten(),
            data,
            has_more,
            url: Some("/v1/sandboxes".into()),
            request_id: Some(context::current().request_id),
        })
    }
}

pub async fn list(
    _: ApiKey,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListEnvelope<WireSandbox>>> {
    let status = q.status()?;
    let all: Vec<_> = state
        .node
        .sandboxes()
        .into_iter()
        .filter(|s| status.is_none_or(|st| s.status == st))
        .collect();
    let page = q.page(all, |s| &s.id)?;
    Ok(Json(ListEnvelope {
        data: page
            .data
            .iter()
            .map(|s| wire_sandbox(&state, s, false))
            .collect::<ApiResult<_>>()?,
        object: page.object,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
        url: page.url,
        request_id: page.request_id,
    }))
}

pub async fn get(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<WireSandbox>> {
    let sandbox = state.node.sandbox(&id)?;
    Ok(Json(wire_sandbox(&state, &sandbox, false)?))
}

fn status_reply(id: String, status: SandboxStatus) -> Json<SandboxStatusReply> {
    Json(SandboxStatusReply {
        id,
        status,
        request_id: Some(context::current().request_id),
    })
}

pub async fn delete(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<SandboxStatusReply>> {
    // Runs to the end even if the client goes away: cleanup is never left half done.
    let (node, sid) = (state.node.clone(), id.clone());
    tokio::spawn(async move { node.kill_sandbox(&sid).await })
        .await
        .map_err(|e| ApiError::from(NodeError::Internal(e.to_string())))??;
    state.requests.forget(&id);
    Ok(status_reply(id, SandboxStatus::Deleted))
}

pub async fn pause(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<SandboxStatusReply>> {
    state.node.pause_sandbox(&id).await?;
    Ok(status_reply(id, SandboxStatus::Paused))
}

pub async fn resume(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<SandboxStatusReply>> {
    state.node.resume_sandbox(&id).await?;
    Ok(status_reply(id, SandboxStatus::Running))
}

pub async fn set_timeout(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<SetTimeoutRequest>,
) -> ApiResult<Json<SetTimeoutReply>> {
    let seconds = u64::try_from(req.timeout_seconds).unwrap_or(0);
    check_sandbox_timeout(&state, seconds)?;
    let sandbox = state.node.set_sandbox_timeout(&id, seconds)?;
    Ok(Json(SetTimeoutReply {
        id,
        timeout_seconds: seconds,
        expires_at: sandbox.expires_at.map(rfc3339_seconds).unwrap_or_default(),
        request_id: Some(context::current().request_id),
    }))
}

/// Longest grace a rotation may give earlier tokens.
const MAX_ROTATION_GRACE_SECS: u64 = 3600;
const DEFAULT_ROTATION_GRACE_SECS: u64 = 30;

pub async fn refresh_token(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<TokenRefreshRequest>,
) -> ApiResult<Json<TokenReply>> {
    let sandbox = if req.rotate == Some(true) {
        let grace = req.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECS);
        if grace > MAX_ROTATION_GRACE_SECS {
            return Err(ApiError::bad_request(
                code::INVALID_REQUEST,
                format!("grace_seconds must be at most {MAX_ROTATION_GRACE_SECS}"),
            ));
        }
        state
            .node
            .rotate_sandbox_token(&id, std::time::Duration::from_secs(grace))?
    } else {
        state.node.sandbox(&id)?
    };
    let (token, exp) = state
        .signer
        .issue(&sandbox.id, sandbox.token_generation)
        .map_err(ApiError::cannot_sign)?;
    Ok(Json(TokenReply {
        auth_token: token,
        token_expires_at: rfc3339_seconds(exp),
        request_id: Some(context::current().request_id),
    }))
}

fn wire_template(state: &AppState, t: &template::TemplateSpec) -> Template {
    let mut wire = t.to_wire(state.cfg.sandbox_memory_mb, state.cfg.sandbox_cpus);
    wire.request_id = Some(context::current().request_id);
    wire
}

pub async fn templates(_: ApiKey, State(state): State<AppState>) -> Json<ListEnvelope<Template>> {
    Json(ListEnvelope {
        object: "list".into(),
        data: TEMPLATES.iter().map(|t| wire_template(&state, t)).collect(),
        has_more: false,
        next_cursor: None,
        url: Some("/v1/templates".into()),
        request_id: Some(context::current().request_id),
    })
}

pub async fn template(
    _: ApiKey,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<Template>> {
    let t = template::find(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code::TEMPLATE_NOT_FOUND,
            format!("Template '{name}' not found; available: code-interpreter, base"),
        )
    })?;
    Ok(Json(wire_template(&state, t)))
}
