//! `sandlotd control`: the cluster's `/v1` API, placement, node membership, and the router
//! to the nodes. Stateless: every replica reads and writes the one Postgres catalog, so
//! clients may reach any of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use sandlot_protocol::{
    code, ClusterNodeList, CreateSandboxWithNetwork, ListEnvelope, NodeHeartbeat,
    NodeHeartbeatReply, NodeRegistered, NodeRegistration, NodeSandbox, NodeSandboxSpec,
    NodeTokenRotation, PreviewReply, PreviewRequest, Sandbox as WireSandbox, SandboxStatus,
    SandboxStatusReply, TokenRefreshRequest, TokenReply, PREVIEW_TOKEN_PARAM,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{info, warn};

use super::catalog::{Catalog, Heartbeat, Placement};
use super::router::{self, Credential, Router as SandboxRouter};
use crate::api::body::parse_json;
use crate::api::context;
use crate::api::error::{ApiError, ApiResult};
use crate::sandbox::template;
use crate::shutdown::Shutdown;
use crate::time::rfc3339_seconds;
use crate::token::TokenSigner;

/// Tries on different nodes before a create gives up (E2B's number).
const PLACEMENT_TRIES: usize = 3;
/// Longest wait for a node's answer to an internal call (a create included).
const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_ROTATION_GRACE_SECS: u64 = 3600;
const DEFAULT_ROTATION_GRACE_SECS: u64 = 30;
const DEFAULT_PREVIEW_TTL_SECS: u64 = 3600;
const MAX_PREVIEW_TTL_SECS: u64 = 7 * 24 * 3600;

pub struct Settings {
    pub api_key: Option<String>,
    pub join_token: String,
    pub public_url: String,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub max_body_bytes: usize,
}

pub struct Control {
    pub catalog: Catalog,
    router: SandboxRouter,
    signer: TokenSigner,
    http: reqwest::Client,
    settings: Settings,
}

type Shared = State<Arc<Control>>;

impl Control {
    pub fn new(
        catalog: Catalog,
        signer: TokenSigner,
        settings: Settings,
        shutdown: Shutdown,
    ) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .timeout(NODE_CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Self {
            router: SandboxRouter::new(catalog.clone(), signer.clone(), shutdown),
            catalog,
            signer,
            http,
            settings,
        }))
    }

    /// Marks nodes whose lease ran out, and their sandboxes, lost; every replica runs it.
    pub async fn reap(&self) {
        match self.catalog.reap().await {
            Ok(lost) if !lost.is_empty() => warn!(nodes = ?lost, "lease expired: node lost"),
            Ok(_) => {}
            Err(e) => warn!("reaper: {e}"),
        }
    }
}

pub fn routes(control: Arc<Control>) -> Router {
    let max_body = control.settings.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/internal/v1/nodes/register", post(register))
        .route("/internal/v1/nodes/{name}/heartbeat", post(heartbeat))
        .route("/v1/cluster/nodes", get(nodes))
        .route("/v1/cluster/nodes/{name}/drain", post(drain))
        .route("/v1/cluster/nodes/{name}/metrics", get(node_metrics))
        .route("/metrics", get(metrics))
        .route("/v1/sandboxes", post(create).get(list))
        .route("/v1/sandboxes/{id}", get(get_one).delete(delete))
        .route("/v1/sandboxes/{id}/token/refresh", post(refresh_token))
        .route("/v1/sandboxes/{id}/preview", post(preview_by_key))
        .route("/v1/sandboxes/{id}/{*rest}", any(sandbox_call))
        .route("/v1/templates", get(templates))
        .route("/v1/templates/{name}", get(templates))
        .route("/sandboxes/{id}/agent/preview", post(preview_by_token))
        .route("/sandboxes/{id}/{*rest}", any(agent_call))
        .route("/execute/stream", any(by_token))
        .route("/terminal", any(by_token))
        .route("/files/watch", any(by_token))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            control.clone(),
            local_mode,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(context::middleware))
        .with_state(control)
}

async fn health() -> Json<sandlot_protocol::Health> {
    Json(sandlot_protocol::Health {
        status: "healthy".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        agent: None,
        uptime_seconds: None,
    })
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        code::RESOURCE_NOT_FOUND,
        "No such endpoint",
    )
}

/// Without an API key, a loopback control plane applies the standalone server's local-mode
/// checks (loopback Host, no foreign Origin on `/v1`, JSON bodies).
async fn local_mode(State(c): Shared, req: Request, next: axum::middleware::Next) -> Response {
    if c.settings.api_key.is_some() || req.uri().path().starts_with("/internal/") {
        return next.run(req).await;
    }
    match crate::api::guard::check(req.method(), req.uri().path(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let (scheme, token) = header(headers, "authorization")?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Control {
    /// Whether the request carries the API key (any request does in local mode).
    fn has_api_key(&self, headers: &HeaderMap) -> bool {
        match self.settings.api_key.as_deref() {
            None => true,
            Some(key) => header(headers, "x-api-key")
                .or_else(|| bearer(headers))
                .is_some_and(|k| same(k, key)),
        }
    }

    fn require_api_key(&self, headers: &HeaderMap) -> ApiResult<()> {
        if self.has_api_key(headers) {
            return Ok(());
        }
        Err(
            match header(headers, "x-api-key").or_else(|| bearer(headers)) {
                None => ApiError::unauthorized(
                    code::AUTHENTICATION_REQUIRED,
                    "Missing API key: send it as X-API-Key or Authorization: Bearer",
                ),
                Some(_) => ApiError::unauthorized(code::INVALID_TOKEN, "Invalid API key"),
            },
        )
    }

    fn require_join_token(&self, headers: &HeaderMap) -> ApiResult<()> {
        match bearer(headers) {
            Some(t) if same(t, &self.settings.join_token) => Ok(()),
            _ => Err(ApiError::unauthorized(
                code::INVALID_TOKEN,
                "a node must present the cluster's join token",
            )),
        }
    }

    /// A JSON call to a node's internal API with a control token. A node's error answer
    /// comes back as the response to give the client.
    async fn node_call<T: DeserializeOwned>(
        &self,
        to: &Placement,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, NodeCallError> {
        let token = self
            .signer
            .issue_control(&to.node)
            .map_err(|_| NodeCallError::Unreachable("cannot sign".into()))?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", to.addr.trim_end_matches('/')))
            .bearer_auth(token)
            .header("x-request-id", context::current().request_id);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| NodeCallError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| NodeCallError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(NodeCallError::Refused(status.as_u16(), bytes.to_vec()));
        }
        serde_json::from_slice(&bytes).map_err(|e| NodeCallError::Unreachable(e.to_string()))
    }

    /// Where a sandbox lives, read from the catalog (not the router's cache); lost is an
    /// error here.
    async fn live_placement(&self, id: &str) -> ApiResult<Placement> {
        match self.catalog.locate(id).await {
            Err(e) => Err(router::unavailable(&e)),
            Ok(None) => Err(router::sandbox_not_found()),
            Ok(Some(p)) if p.lost => Err(router::lost()),
            Ok(Some(p)) => Ok(p),
        }
    }

    async fn node_sandbox(&self, id: &str) -> Result<NodeSandbox, Response> {
        let to = self
            .live_placement(id)
            .await
            .map_err(|e| e.into_response())?;
        self.node_call(
            &to,
            Method::GET,
            &format!("/internal/v1/sandboxes/{id}"),
            None::<&()>,
        )
        .await
        .map_err(|e| e.into_response())
    }
}

enum NodeCallError {
    Unreachable(String),
    /// The node answered with an error: status and body, passed to the client.
    Refused(u16, Vec<u8>),
}

impl NodeCallError {
    /// Worth trying another node: the node is full, briefly unable, or unreachable.
    fn retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Refused(status, _) => matches!(status, 429 | 500..=599),
        }
    }
}

impl IntoResponse for NodeCallError {
    fn into_response(self) -> Response {
        match self {
            Self::Unreachable(e) => {
                warn!("node call failed: {e}");
                ApiError {
                    retry_after: Some(2),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        code::SERVICE_UNAVAILABLE,
                        "the sandbox's node does not answer; try again",
                    )
                }
                .into_response()
            }
            Self::Refused(status, body) => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response(),
        }
    }
}

async fn read_json<T: DeserializeOwned>(c: &Control, req: Request) -> ApiResult<T> {
    let bytes = axum::body::to_bytes(req.into_body(), c.settings.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::PAYLOAD_TOO_LARGE,
                format!("the body exceeds {} bytes", c.settings.max_body_bytes),
            )
        })?;
    parse_json(&bytes)
}

fn path_id(req: &Request, index: usize) -> String {
    req.uri()
        .path()
        .split('/')
        .nth(index)
        .unwrap_or_default()
        .to_string()
}

// ---- membership ----

async fn register(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_join_token(req.headers()) {
        return e.into_response();
    }
    let reg: NodeRegistration = match read_json(&c, req).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if reg.name.is_empty() || reg.name.len() > 253 || reg.addr.parse::<axum::http::Uri>().is_err() {
        return ApiError::bad_request(code::INVALID_REQUEST, "a node needs a name and a URL")
            .into_response();
    }
    match c.catalog.register(&reg, c.settings.lease).await {
        Ok(epoch) => {
            info!(node = %reg.name, epoch, addr = %reg.addr, "node registered");
            Json(NodeRegistered {
                node_id: reg.name,
                epoch,
                lease_seconds: c.settings.lease.as_secs(),
                heartbeat_seconds: c.settings.heartbeat.as_secs(),
                public_url: c.settings.public_url.clone(),
            })
            .into_response()
        }
        Err(e) => router::unavailable(&e).into_response(),
    }
}

async fn heartbeat(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_join_token(req.headers()) {
        return e.into_response();
    }
    let name = path_id(&req, 4);
    let beat: NodeHeartbeat = match read_json(&c, req).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match c
        .catalog
        .heartbeat(&name, beat.epoch, &beat.sandboxes, c.settings.lease)
        .await
    {
        Ok(Heartbeat::Renewed { orphans, draining }) => {
            Json(NodeHeartbeatReply { orphans, draining }).into_response()
        }
        Ok(Heartbeat::Fenced) => ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            "this node's epoch is over (its lease expired or it registered again): kill every sandbox and register",
        )
        .into_response(),
        Err(e) => router::unavailable(&e).into_response(),
    }
}

async fn nodes(State(c): Shared, headers: HeaderMap) -> ApiResult<Json<ClusterNodeList>> {
    c.require_api_key(&headers)?;
    let nodes = c
        .catalog
        .nodes()
        .await
        .map_err(|e| router::unavailable(&e))?;
    Ok(Json(ClusterNodeList { nodes }))
}

async fn drain(State(c): Shared, req: Request) -> ApiResult<Json<ClusterNodeList>> {
    c.require_api_key(req.headers())?;
    let name = path_id(&req, 4);
    if !c
        .catalog
        .drain(&name)
        .await
        .map_err(|e| router::unavailable(&e))?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            code::RESOURCE_NOT_FOUND,
            format!("no live node named '{name}'"),
        ));
    }
    let nodes = c
        .catalog
        .nodes()
        .await
        .map_err(|e| router::unavailable(&e))?;
    Ok(Json(ClusterNodeList { nodes }))
}

/// The cluster in Prometheus text: nodes by state, their capacity and allocation, sandboxes by
/// state. Every replica answers the same (it is all in the catalog).
async fn metrics(State(c): Shared, headers: HeaderMap) -> Response {
    use std::fmt::Write;
    if let Err(e) = c.require_api_key(&headers) {
        return e.into_response();
    }
    let (nodes, sandboxes) = match (c.catalog.nodes().await, c.catalog.sandbox_counts().await) {
        (Ok(n), Ok(s)) => (n, s),
        (Err(e), _) | (_, Err(e)) => return router::unavailable(&e).into_response(),
    };
    let mut page = String::new();
    let gauge = |page: &mut String, name: &str, help: &str| {
        let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    gauge(&mut page, "sandlot_cluster_nodes", "Nodes by state.");
    for state in ["joining", "ready", "draining", "lost"] {
        let n = nodes.iter().filter(|x| x.state == state).count();
        let _ = writeln!(page, "sandlot_cluster_nodes{{state=\"{state}\"}} {n}");
    }
    gauge(
        &mut page,
        "sandlot_cluster_node_capacity",
        "Sandboxes a node runs at most.",
    );
    for n in &nodes {
        let _ = writeln!(
            page,
            "sandlot_cluster_node_capacity{{node=\"{}\"}} {}",
            n.name, n.capacity
        );
    }
    gauge(
        &mut page,
        "sandlot_cluster_node_allocated",
        "Sandboxes placed on a node.",
    );
    for n in &nodes {
        let _ = writeln!(
            page,
            "sandlot_cluster_node_allocated{{node=\"{}\"}} {}",
            n.name, n.allocated
        );
    }
    gauge(
        &mut page,
        "sandlot_cluster_sandboxes",
        "Sandboxes in the catalog by state.",
    );
    for (state, n) in sandboxes {
        let _ = writeln!(page, "sandlot_cluster_sandboxes{{state=\"{state}\"}} {n}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page).into_response()
}

/// One node's own `/metrics` (its sandboxes' usage), fetched for the caller: nodes answer
/// the control plane only.
async fn node_metrics(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let name = path_id(&req, 4);
    let node = match c.catalog.nodes().await {
        Ok(nodes) => nodes
            .into_iter()
            .find(|n| n.name == name && n.state != "lost"),
        Err(e) => return router::unavailable(&e).into_response(),
    };
    let Some(node) = node else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            code::RESOURCE_NOT_FOUND,
            format!("no live node named '{name}'"),
        )
        .into_response();
    };
    let to = Placement {
        node: node.name,
        addr: node.addr,
        epoch: node.epoch,
        lost: false,
    };
    let mut forwarded = Request::new(axum::body::Body::empty());
    *forwarded.uri_mut() = axum::http::Uri::from_static("/metrics");
    c.router
        .forward(&to, forwarded, Credential::Control)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

// ---- sandboxes ----

async fn create(State(c): Shared, req: Request) -> Response {
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
    for _ in 0..PLACEMENT_TRIES {
        let placement = match c.catalog.place(&id, &spec.template, &tried).await {
            Ok(Some(p)) => p,
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

#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    status: Option<String>,
}

/// Lists from the nodes (they hold each sandbox's live record) the sandboxes the catalog
/// gives them; lost ones from the catalog alone.
async fn list(State(c): Shared, req: Request) -> Response {
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
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(SandboxStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                code::INVALID_REQUEST,
                format!("unknown status filter '{s}'"),
            )
            .into_response()
        })?),
    };
    let known = c
        .catalog
        .sandboxes()
        .await
        .map_err(|e| router::unavailable(&e).into_response())?;
    let mut by_node: BTreeMap<String, Placement> = BTreeMap::new();
    for (_, p, _) in known.iter().filter(|(_, p, _)| !p.lost) {
        by_node.entry(p.node.clone()).or_insert_with(|| p.clone());
    }
    let mut records: BTreeMap<String, WireSandbox> = BTreeMap::new();
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
                None => return Ok::<_, NodeCallError>(out),
            }
        }
    });
    // A node that does not answer now lists nothing; its sandboxes are not lost yet.
    for list in futures_util::future::join_all(fetches)
        .await
        .into_iter()
        .flatten()
    {
        records.extend(list.into_iter().map(|s| (s.id.clone(), s)));
    }
    let all: Vec<WireSandbox> = known
        .into_iter()
        .filter_map(|(id, p, _)| match p.lost {
            true => Some(lost_record(id, &p)),
            false => records.remove(&id),
        })
        .filter(|s| status.is_none_or(|st| s.status == st))
        .collect();
    let start = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(cur) => all
            .iter()
            .position(|s| s.id == cur)
            .map(|i| i + 1)
            .ok_or_else(|| {
                ApiError::bad_request(
                    code::INVALID_REQUEST,
                    "unknown cursor; start again without one",
                )
                .into_response()
            })?,
    };
    let page: Vec<WireSandbox> = all.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < all.len();
    Ok(ListEnvelope {
        object: "list".into(),
        next_cursor: has_more
            .then(|| page.last().map(|s| s.id.clone()))
            .flatten(),
        data: page,
        has_more,
        url: Some("/v1/sandboxes".into()),
        request_id: Some(context::current().request_id),
    })
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

async fn get_one(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let id = path_id(&req, 3);
    c.router.to_sandbox(&id, req, Credential::Control).await
}

async fn delete(State(c): Shared, req: Request) -> Response {
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
async fn sandbox_call(State(c): Shared, req: Request) -> Response {
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

async fn refresh_token(State(c): Shared, req: Request) -> Response {
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

async fn preview_by_key(State(c): Shared, req: Request) -> Response {
    if let Err(e) = c.require_api_key(req.headers()) {
        return e.into_response();
    }
    let id = path_id(&req, 3);
    preview(&c, &id, None, req).await
}

async fn preview_by_token(State(c): Shared, req: Request) -> Response {
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
async fn templates(State(c): Shared, req: Request) -> Response {
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
async fn agent_call(State(c): Shared, req: Request) -> Response {
    let id = path_id(&req, 2);
    let credential = match c.settings.api_key.is_some() && c.has_api_key(req.headers()) {
        true => Credential::Control,
        false => Credential::Client,
    };
    c.router.to_sandbox(&id, req, credential).await
}

/// Routes at the root that name their sandbox only through the token (HopX's Python SDK
/// opens its WebSockets there).
async fn by_token(State(c): Shared, req: Request) -> Response {
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
