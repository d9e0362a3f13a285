//! `sandlotd control`: the cluster's `/v1` API, placement, node membership, and the router
//! to the nodes. Stateless: every replica reads and writes the one Postgres catalog, so
//! clients may reach any of them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use sandlot_protocol::{code, NodeSandbox};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

mod nodes;
mod sandboxes;

use super::catalog::{Catalog, Placement};
use super::router::{self, Router as SandboxRouter};
use crate::api::auth::{bearer_token as bearer, header_value as header, same};
use crate::api::body::parse_json;
use crate::api::context;
use crate::api::error::{ApiError, ApiResult};
use crate::shutdown::Shutdown;
use crate::token::TokenSigner;

/// Longest wait for a node's answer to an internal call (a create included).
const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(30);

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
        .route("/internal/v1/nodes/register", post(nodes::register))
        .route(
            "/internal/v1/nodes/{name}/heartbeat",
            post(nodes::heartbeat),
        )
        .route("/v1/cluster/nodes", get(nodes::nodes))
        .route("/v1/cluster/nodes/{name}/drain", post(nodes::drain))
        .route("/v1/cluster/nodes/{name}/metrics", get(nodes::node_metrics))
        .route("/metrics", get(nodes::metrics))
        .route(
            "/v1/sandboxes",
            post(sandboxes::create).get(sandboxes::list),
        )
        .route(
            "/v1/sandboxes/{id}",
            get(sandboxes::get_one).delete(sandboxes::delete),
        )
        .route(
            "/v1/sandboxes/{id}/token/refresh",
            post(sandboxes::refresh_token),
        )
        .route(
            "/v1/sandboxes/{id}/preview",
            post(sandboxes::preview_by_key),
        )
        .route("/v1/sandboxes/{id}/{*rest}", any(sandboxes::sandbox_call))
        .route("/v1/templates", get(sandboxes::templates))
        .route("/v1/templates/{name}", get(sandboxes::templates))
        .route(
            "/sandboxes/{id}/agent/preview",
            post(sandboxes::preview_by_token),
        )
        .route("/sandboxes/{id}/{*rest}", any(sandboxes::agent_call))
        .route("/execute/stream", any(sandboxes::by_token))
        .route("/terminal", any(sandboxes::by_token))
        .route("/files/watch", any(sandboxes::by_token))
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
