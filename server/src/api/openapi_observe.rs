//! The OpenAPI operations of commands and observability, merged into [`super::openapi`]'s
//! document (kept apart so each group of routes declares its operations in one place).

// The operation functions only carry their `#[utoipa::path]` attributes; nothing calls them.
#![allow(dead_code)]

use sandlot_protocol as wire;
use utoipa::OpenApi;

use super::openapi::Errors;

const ID: &str = "The sandbox id";

#[derive(OpenApi)]
#[openapi(paths(
    commands_run,
    commands_background,
    system_processes,
    metrics_snapshot,
    metrics_alias,
    sandbox_prometheus,
    system_info,
    server_prometheus,
))]
pub struct ObserveDoc;

#[utoipa::path(post, path = "/sandboxes/{id}/agent/commands/run", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::CommandRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::CommandResponse,
        description = "The command ran; a failing command is still a 200 with its exit code"), Errors))]
fn commands_run() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/commands/background", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::CommandRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::BackgroundExecuteResponse,
        description = "Started; listed, followed and killed like a background process"), Errors))]
fn commands_background() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/processes", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::SystemProcessList,
        description = "The operating-system processes in the sandbox"), Errors))]
fn system_processes() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/metrics/snapshot", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::MetricsSnapshot, description = "Use against limits, requests"), Errors))]
fn metrics_snapshot() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/metrics", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::MetricsSnapshot, description = "The same as /metrics/snapshot"), Errors))]
fn metrics_alias() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/metrics/prometheus", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain", body = String,
        description = "This sandbox's metrics in the Prometheus text format"), Errors))]
fn sandbox_prometheus() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/system", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::SystemInfo, description = "The host as the sandbox sees it"), Errors))]
fn system_info() {}

#[utoipa::path(get, path = "/metrics", tag = "control plane",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, content_type = "text/plain", body = String,
        description = "Every sandbox's metrics and the server's, in the Prometheus text format"), Errors))]
fn server_prometheus() {}
