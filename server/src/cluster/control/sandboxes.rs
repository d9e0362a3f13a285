//! The control plane's sandbox routes: create (placement), list, get, delete, tokens and
//! preview URLs (signed here), and the router's entries for everything a node answers.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sandlot_protocol::{
    code, CreateSandboxWithNetwork, ListEnvelope, NodeSandbox, NodeSandboxSpec, NodeTokenRotation,
    PreviewReply, PreviewRequest, Sandbox as WireSandbox, SandboxStatus, SandboxStatusReply,
    TokenRefreshRequest, TokenReply, PREVIEW_TOKEN_PARAM,
};
use tracing::warn;

use super::{bearer, path_id, read_json, Control, NodeCallError, Shared};
use crate::api::error::{ApiError, ApiResult};
use crate::api::{context, ListQuery};
use crate::cluster::catalog::Placement;
use crate::cluster::router::{self, Credential};
use crate::sandbox::template;
use crate::time::rfc3339_seconds;

/// Tries on different nodes before a create gives up (E2B's number).
const PLACEMENT_TRIES: usize = 3;
const MAX_ROTATION_GRACE_SECS: u64 = 3600;
const DEFAULT_ROTATION_GRACE_SECS: u64 = 30;
const DEFAULT_PREVIEW_TTL_SECS: u64 = 3600;
const MAX_PREVIEW_TTL_SECS: u64 = 7 * 24 * 3600;

pub(super) async fn create(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let body: CreateSandboxWithNetwork = match read_json(&c, req).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // Runs to the end even if the client goes away: no reservation is left behind.
    let request_context = context::current();
    let c2 = c.clone();
    let task = tokio::spawn(context::scope(request_context, async move {
        create_sandbox(&c2, body).await
    }));
    match task.await {
        Ok(Ok(sandbox)) => (StatusCode::CREATED, Json(sandbox)).into_response(),
        Ok(Err(response)) => response,
        Err(e) => ApiError::internal(&e.to_string()).into_response(),
    }
}

async fn create_sandbox(
    c: &Control,
    CreateSandboxWithNetwork {
        sandbox: req,
        network,
    }: CreateSandboxWithNetwork,
) -> Result<WireSandbox, Response> {
    let name = req
        .template_id
        .map(|t| t.into_string())
        .or(req.template_name)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                code::MISSING_PARAMETER,
                "missing 'template_name' or 'template_id'",
            )
            .into_response()
        })?;
    let template = template::find(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code::TEMPLATE_NOT_FOUND,
            format!("Template '{name}' not found; available: code-interpreter, base"),
        )
        .into_response()
    })?;
    let spec = NodeSandboxSpec {
        template: template.name.into(),
        timeout_seconds: req.timeout_seconds,
        internet_access: req.internet_access.unwrap_or(false),
        network,
        env_vars: req.env_vars.unwrap_or_default(),
    };
    let id = crate::ids::sandbox_id();
    let mut tried: Vec<String> = Vec::new();
    let mut last_refusal = None;
    // A node chosen but filled by a concurrent create meanwhile yields no placement although
    // others may have room: that is asked again, a few times, apart from the tries.
    let mut races = 0;
    while tried.len() < PLACEMENT_TRIES {
        let placement = match c.catalog.place(&id, &spec.template, &tried).await {
            Ok(Some(p)) => p,
            Ok(None)
                if races < PLACEMENT_TRIES && c.catalog.has_room(&spec.template, &tried).await =>
            {
                races += 1;
                continue;
            }
            Ok(None) => break,
            Err(e) => return Err(router::unavailable(&e).into_response()),
        };
        let made: Result<NodeSandbox, _> = c
            .node_call(
                &placement,
                Method::PUT,
                &format!("/internal/v1/sandboxes/{id}"),
                Some(&spec),
            )
            .await;
        match made {
            Ok(made) => {
                return with_token(c, made).map_err(IntoResponse::into_response);
            }
            Err(e) => {
                let _ = c.catalog.release(&id).await;
                if !e.retryable() {
                    return Err(e.into_response());
                }
                warn!(node = %placement.node, "create refused; trying another node");
                tried.push(placement.node);
                last_refusal = Some(e);
            }
        }
    }
    Err(match last_refusal {
        Some(e) if tried.len() >= PLACEMENT_TRIES => e.into_response(),
        _ => ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::NO_CAPACITY,
                "no node of the cluster has room for another sandbox; try again later",
            )
        }
        .into_response(),
    })
}

fn with_token(c: &Control, made: NodeSandbox) -> ApiResult<WireSandbox> {
    let mut sandbox = made.sandbox;
    let (token, exp) = c
        .signer
        .issue(&sandbox.id, made.token_generation)
        .map_err(|_| ApiError::internal("cannot sign a token"))?;
    sandbox.auth_token = Some(token);
    sandbox.token_expires_at = Some(rfc3339_seconds(exp));
    sandbox.request_id = Some(context::current().request_id);
    Ok(sandbox)
}

/// Lists from the nodes (they hold each sandbox's live record) the sandboxes the catalog
/// gives them; lost ones from the catalog alone.
pub(super) async fn list(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let q: ListQuery = match serde_urlencoded::from_str(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => {
            return ApiError::bad_request(code::INVALID_REQUEST, e.to_string()).into_response()
        }
    };
    match list_sandboxes(&c, q).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => e,
    }
}

async fn list_sandboxes(c: &Control, q: ListQuery) -> Result<ListEnvelope<WireSandbox>, Response> {
    let status = q.status().map_err(IntoResponse::into_response)?;
    let known = c
        .catalog
        .sandboxes()
        .await
        .map_err(|e| router::unavailable(&e).into_response())?;
    let mut by_node: BTreeMap<String, Placement> = BTreeMap::new();
    for (_, p, _) in known.iter().filter(|(_, p, _)| !p.lost) {
        by_node.entry(p.node.clone()).or_insert_with(|| p.clone());
    }
    // Keyed by node and id: a node's list counts only for the sandboxes the catalog gives
    // that node (one node cannot speak for another's).
    let mut records: BTreeMap<(String, String), WireSandbox> = BTreeMap::new();
    let fetches = by_node.values().map(|p| async move {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => "/v1/sandboxes?limit=1000".to_string(),
                Some(cur) => format!("/v1/sandboxes?limit=1000&cursor={cur}"),
            };
            let page: ListEnvelope<WireSandbox> =
                c.node_call(p, Method::GET, &path, None::<&()>).await?;
            out.extend(page.data);
            match page.next_cursor.filter(|_| page.has_more) {
                Some(next) => cursor = Some(next),
                None => return Ok::<_, NodeCallError>((p.node.clone(), out)),
            }
        }
    });
    // A node that does not answer now lists nothing; its sandboxes are not lost yet.
    for (node, list) in futures_util::future::join_all(fetches)
        .await
        .into_iter()
        .flatten()
    {
        records.extend(list.into_iter().map(|s| ((node.clone(), s.id.clone()), s)));
    }
    let all: Vec<WireSandbox> = known
        .into_iter()
        .filter_map(|(id, p, _)| match p.lost {
            true => Some(lost_record(id, &p)),
            false => records.remove(&(p.node.clone(), id)),
        })
        .filter(|s| status.is_none_or(|st| s.status == st))
        .collect();
    q.page(all, |s| &s.id).map_err(IntoResponse::into_response)
}

fn lost_record(id: String, p: &Placement) -> WireSandbox {
    WireSandbox {
        id,
        object: "sandbox".into(),
        status: SandboxStatus::Lost,
        public_host: None,
        direct_url: None,
        template_id: None,
        template_name: None,
        organization_id: 1,
        node_id: Some(p.node.clone()),
        region: None,
        resources: None,
        internet_access: false,
        internet_access_available: None,
        network: None,
        live_mode: false,
        timeout_seconds: None,
        expires_at: None,
        created_at: None,
        auth_token: None,
        token_expires_at: None,
        request_id: None,
    }
}

pub(super) async fn get_one(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let id = path_id(&req, 3);
    c.router.to_sandbox(&id, req, Credential::Control).await
}

pub(super) async fn delete(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let id = path_id(&req, 3);
    let c2 = c.clone();
    let request_context = context::current();
    // Runs to the end even if the client goes away.
    let task = tokio::spawn(context::scope(request_context, async move {
        delete_sandbox(&c2, &id).await
    }));
    match task.await {
        Ok(r) => r,
        Err(e) => ApiError::internal(&e.to_string()).into_response(),
    }
}

async fn delete_sandbox(c: &Control, id: &str) -> Response {
    let placement = match c.catalog.locate(id).await {
        Err(e) => return router::unavailable(&e).into_response(),
        Ok(None) => return router::sandbox_not_found().into_response(),
        Ok(Some(p)) => p,
    };
    if !placement.lost {
        let gone: Result<serde_json::Value, _> = c
            .node_call(
                &placement,
                Method::DELETE,
                &format!("/internal/v1/sandboxes/{id}"),
                None::<&()>,
            )
            .await;
        match gone {
            Ok(_) | Err(NodeCallError::Refused(404, _)) => {}
            Err(e) => return e.into_response(),
        }
    }
    if let Err(e) = c.catalog.release(id).await {
        return router::unavailable(&e).into_response();
    }
    c.router.forget(id);
    Json(SandboxStatusReply {
        id: id.to_string(),
        status: SandboxStatus::Deleted,
        request_id: Some(context::current().request_id),
    })
    .into_response()
}

/// The rest of `/v1/sandboxes/{id}/…` (pause, resume, timeout, network) is the node's.
pub(super) async fn sandbox_call(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let id = path_id(&req, 3);
    let action = path_id(&req, 4);
    let response = c.router.to_sandbox(&id, req, Credential::Control).await;
    if response.status().is_success() {
        let state = match action.as_str() {
            "pause" => Some("paused"),
            "resume" => Some("running"),
            _ => None,
        };
        if let Some(state) = state {
            if let Err(e) = c.catalog.set_state(&id, state).await {
                warn!(sandbox = %id, "catalog: {e}");
            }
        }
    }
    response
}

pub(super) async fn refresh_token(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let id = path_id(&req, 3);
    let body: TokenRefreshRequest = match read_json(&c, req).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let made = if body.rotate == Some(true) {
        let grace = body.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECS);
        if grace > MAX_ROTATION_GRACE_SECS {
            return ApiError::bad_request(
                code::INVALID_REQUEST,
                format!("grace_seconds must be at most {MAX_ROTATION_GRACE_SECS}"),
            )
            .into_response();
        }
        let to = match c.live_placement(&id).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        c.node_call(
            &to,
            Method::POST,
            &format!("/internal/v1/sandboxes/{id}/token/rotate"),
            Some(&NodeTokenRotation {
                grace_seconds: grace,
            }),
        )
        .await
        .map_err(IntoResponse::into_response)
    } else {
        c.node_sandbox(&id).await
    };
    let made = match made {
        Ok(m) => m,
        Err(r) => return r,
    };
    match c.signer.issue(&id, made.token_generation) {
        Ok((token, exp)) => Json(TokenReply {
            auth_token: token,
            token_expires_at: rfc3339_seconds(exp),
            request_id: Some(context::current().request_id),
        })
        .into_response(),
        Err(_) => ApiError::internal("cannot sign a token").into_response(),
    }
}

pub(super) async fn preview_by_key(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let id = path_id(&req, 3);
    preview(&c, &id, None, req).await
}

pub(super) async fn preview_by_token(State(c): Shared, req: Request) -> Response {
    let id = path_id(&req, 2);
    if c.settings.api_key.is_some() && c.has_api_key(req.headers()) {
        return preview(&c, &id, None, req).await;
    }
    let Some(token) = bearer(req.headers()) else {
        return ApiError::unauthorized(
            code::AUTHENTICATION_REQUIRED,
            "Missing sandbox token: send Authorization: Bearer <auth_token>",
        )
        .into_response();
    };
    match c.signer.verify(token, &id) {
        Ok(generation) => preview(&c, &id, Some(generation), req).await,
        Err(_) => {
            ApiError::unauthorized(code::INVALID_TOKEN, "Invalid sandbox token").into_response()
        }
    }
}

/// A signed preview URL of a sandbox's port, through this cluster's router.
async fn preview(c: &Control, id: &str, token_generation: Option<u32>, req: Request) -> Response {
    let body: PreviewRequest = match read_json(c, req).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if body.port == 0 {
        return ApiError::bad_request(code::INVALID_REQUEST, "port must be between 1 and 65535")
            .into_response();
    }
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_PREVIEW_TTL_SECS);
    if ttl == 0 || ttl > MAX_PREVIEW_TTL_SECS {
        return ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("ttl_seconds must be between 1 and {MAX_PREVIEW_TTL_SECS}"),
        )
        .into_response();
    }
    let made = match c.node_sandbox(id).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let accepted = token_generation.is_none_or(|g| {
        g == made.token_generation
            || (g.saturating_add(1) == made.token_generation && made.previous_generation_valid)
    });
    if !accepted {
        return ApiError::unauthorized(
            code::INVALID_TOKEN,
            "This sandbox token was replaced by a rotation; use the newest one",
        )
        .into_response();
    }
    let expires = SystemTime::now() + Duration::from_secs(ttl);
    let Ok(token) = c
        .signer
        .issue_preview(id, made.token_generation, body.port, expires)
    else {
        return ApiError::internal("cannot sign a preview token").into_response();
    };
    let host = format!(
        "{}/sandboxes/{id}/ports/{}/",
        c.settings.public_url, body.port
    );
    Json(PreviewReply {
        url: format!("{host}?{PREVIEW_TOKEN_PARAM}={token}"),
        port: body.port,
        host,
        expires_at: rfc3339_seconds(expires),
        request_id: Some(context::current().request_id),
    })
    .into_response()
}

/// Templates are built into the binary: any live node answers for all.
pub(super) async fn templates(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let nodes = match c.catalog.nodes().await {
        Ok(n) => n,
        Err(e) => return router::unavailable(&e).into_response(),
    };
    let Some(node) = nodes.into_iter().find(|n| n.state == "ready") else {
        return ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::NO_CAPACITY,
                "no node is ready",
            )
        }
        .into_response();
    };
    let to = Placement {
        node: node.name,
        addr: node.addr,
        epoch: node.epoch,
        lost: false,
    };
    c.router
        .forward(&to, req, Credential::Control)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `/sandboxes/{id}/…`: the agent and the port proxy, on the sandbox's node.
pub(super) async fn agent_call(State(c): Shared, req: Request) -> Response {
    let id = path_id(&req, 2);
    let credential = match c.settings.api_key.is_some() && c.has_api_key(req.headers()) {
        true => Credential::Control,
        false => Credential::Client,
    };
    c.router.to_sandbox(&id, req, credential).await
}

/// Routes at the root that name their sandbox only through the token (HopX's Python SDK
/// opens its WebSockets there).
pub(super) async fn by_token(State(c): Shared, req: Request) -> Response {
    let sandbox = bearer(req.headers()).and_then(|t| c.signer.sandbox_of(t).ok());
    match sandbox {
        Some(v) => {
            c.router
                .to_sandbox(&v.sandbox, req, Credential::Client)
                .await
        }
        None => ApiError::unauthorized(
            code::AUTHENTICATION_REQUIRED,
            "Missing or invalid sandbox token: send Authorization: Bearer <auth_token>",
        )
        .into_response(),
    }
}
