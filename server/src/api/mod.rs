//! The HTTP API: control plane under `/v1`, each sandbox's agent under
//! `/sandboxes/{id}/agent` (its `public_host`), and `/health`.

mod agent;
pub(crate) mod auth;
pub(crate) mod body;
mod commands;
pub(crate) mod context;
mod contexts;
mod control;
pub(crate) mod error;
mod files;
/// Hooks for the fuzz targets (`crate::fuzzing`).
pub(crate) mod fuzz;
pub(crate) mod guard;
pub(crate) mod network;
pub mod observe;
mod openapi;
mod openapi_contexts;
mod openapi_files;
mod openapi_network;
mod openapi_observe;
mod ports;
mod stream;
mod terminal;
mod transfer;
mod watch;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::{any, delete, get, post, put};
use axum::{Json, Router};
use sandlot_protocol::{code, Health};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::node::Node;
use crate::shutdown::Shutdown;
use crate::token::TokenSigner;
use crate::webhook::Webhooks;
use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    /// Handlers reach sandboxes only through the node interface.
    pub node: Arc<dyn Node>,
    pub signer: TokenSigner,
    pub webhooks: Arc<Webhooks>,
    pub started: Instant,
    pub shutdown: Shutdown,
    /// Agent requests per sandbox, for the metrics routes.
    pub requests: Arc<observe::RequestStats>,
    /// A cluster node's name: the control plane's calls (control tokens for this node) take
    /// the API key's place, and the internal API is served.
    pub cluster_node: Option<Arc<str>>,
}

pub(crate) use control::{check_sandbox_timeout, wire_sandbox, ListQuery};
pub(crate) use ports::HOP_BY_HOP;

pub fn router(state: AppState) -> Router {
    let agent = Router::new()
        .route("/health", get(agent::health))
        .route("/info", get(agent::info))
        .route(
            "/env",
            get(agent::get_env)
                .put(agent::set_env)
                .patch(agent::set_env)
                .delete(agent::clear_env),
        )
        .route("/execute", post(contexts::execute))
        .route("/execute/ipython", post(contexts::execute_ipython))
        .route("/contexts", post(contexts::create).get(contexts::list))
        .route("/contexts/{cid}", delete(contexts::remove))
        .route("/contexts/{cid}/restart", post(contexts::restart))
        .route("/jupyter/sessions", get(contexts::jupyter_sessions))
        .route("/execute/background", post(agent::execute_background))
        .route("/execute/async", post(agent::execute_async))
        .route("/execute/processes", get(agent::list_processes))
        .route(
            "/execute/processes/{pid}",
            get(agent::get_process).delete(agent::remove_process),
        )
        .route(
            "/execute/processes/{pid}/stream",
            get(stream::follow_process),
        )
        .route(
            "/execute/stream",
            get(stream::websocket).post(stream::run_and_follow),
        )
        .route("/execute/kill/{pid}", post(agent::kill_by_path))
        .route("/execute/kill", delete(agent::kill_by_body))
        .route("/processes/{pid}/kill", post(agent::kill_by_path))
        .route("/files/read", get(files::read))
        .route("/files/write", post(files::write))
        .route("/files/list", get(files::list))
        .route("/files/exists", get(files::exists))
        .route("/files/remove", delete(files::remove))
        .route("/files/mkdir", post(files::mkdir))
        .route("/files/rename", post(files::rename))
        .route("/files/download", get(transfer::download))
        // Uploads stream to disk under their own limit (--max-upload-mb), not the JSON one.
        .route(
            "/files/upload",
            post(transfer::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/files/watch", get(watch::watch))
        .route("/terminal", get(terminal::websocket))
        .route("/terminals", post(terminal::create).get(terminal::list))
        .route(
            "/terminals/{tid}",
            get(terminal::get).delete(terminal::kill),
        )
        .route("/terminals/{tid}/stream", get(terminal::stream))
        .route("/terminals/{tid}/input", post(terminal::input))
        .route("/terminals/{tid}/resize", post(terminal::resize))
        .route("/commands/run", post(commands::run))
        .route("/commands/background", post(commands::background))
        .route("/processes", get(observe::processes))
        .route("/metrics", get(observe::snapshot))
        .route("/metrics/snapshot", get(observe::snapshot))
        .route("/metrics/prometheus", get(observe::sandbox_prometheus))
        .route("/system", get(observe::system))
        .route("/preview", post(network::preview_by_token))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::count_requests,
        ));

    let internal = match state.cluster_node {
        Some(_) => crate::cluster::node_api::routes(),
        None => Router::new(),
    };
    Router::new()
        .merge(internal)
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(observe::server_prometheus))
        .route("/v1/sandboxes", post(control::create).get(control::list))
        .route(
            "/v1/sandboxes/{id}",
            get(control::get).delete(control::delete),
        )
        .route("/v1/sandboxes/{id}/pause", post(control::pause))
        .route("/v1/sandboxes/{id}/resume", post(control::resume))
        .route("/v1/sandboxes/{id}/timeout", put(control::set_timeout))
        .route(
            "/v1/sandboxes/{id}/token/refresh",
            post(control::refresh_token),
        )
        .route(
            "/v1/sandboxes/{id}/network",
            get(network::get).put(network::set),
        )
        .route("/v1/sandboxes/{id}/preview", post(network::preview_by_key))
        .route("/sandboxes/{id}/ports/{port}", any(ports::by_path))
        .route("/sandboxes/{id}/ports/{port}/", any(ports::by_path))
        .route("/sandboxes/{id}/ports/{port}/{*rest}", any(ports::by_path))
        .route("/v1/templates", get(control::templates))
        .route("/v1/templates/{name}", get(control::template))
        .nest("/sandboxes/{id}/agent", agent)
        .route("/execute/stream", get(stream::websocket_by_token))
        .route("/terminal", get(terminal::websocket_by_token))
        .route("/files/watch", get(watch::websocket_by_token))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors(&state.cfg.cors_origins))
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::local_mode,
        ))
        // Preview hosts (`<port>-<id>.<domain>`) go to the port proxy before local mode's
        // loopback-Host rule: they carry their own credentials.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ports::by_host,
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
        // Outermost, so every response (a caught panic's too) carries the request id.
        .layer(axum::middleware::from_fn(context::middleware))
        .with_state(state)
}

/// CORS for the agent routes only: a page holding a sandbox's token may call that sandbox;
/// the control plane never answers cross-origin (a page never holds the API key).
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let any = origins.iter().any(|o| o == "*");
    let allow = AllowOrigin::predicate(move |origin, parts| {
        parts.uri.path().starts_with("/sandboxes/") && (any || origins.contains(origin))
    });
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600))
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "healthy".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        agent: None,
        uptime_seconds: None,
    })
}

async fn openapi_json() -> axum::response::Response {
    use axum::response::IntoResponse;
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(openapi::document).clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        code::RESOURCE_NOT_FOUND,
        "No such endpoint",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        "Method not allowed on this endpoint",
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_with_the_request_id() {
        let app = Router::new()
            .route(
                "/v1/boom",
                get(|| async {
                    panic!("secret detail");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .layer(CatchPanicLayer::custom(error::panic_response))
            .layer(axum::middleware::from_fn(context::middleware));
        let resp = app
            .oneshot(
                Request::get("/v1/boom")
                    .header("x-request-id", "req-panic-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()["x-request-id"], "req-panic-1");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "INTERNAL_ERROR");
        assert_eq!(body["request_id"], "req-panic-1");
        assert!(
            !body.to_string().contains("secret detail"),
            "the panic message stays in the log: {body}"
        );
    }
}
