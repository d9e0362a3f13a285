//! The OpenAPI operations of sandbox networking (egress rules, preview URLs, the port
//! proxy), merged into [`super::openapi`]'s document.

// The operation functions only carry their `#[utoipa::path]` attributes; nothing calls them.
#![allow(dead_code)]

use sandlot_protocol as wire;
use utoipa::OpenApi;

use super::openapi::Errors;

const ID: &str = "The sandbox id";
const PORT: &str = "A TCP port inside the sandbox";

#[derive(OpenApi)]
#[openapi(paths(get_network, set_network, preview_by_key, preview_by_token, port_proxy,))]
pub struct NetworkDoc;

#[utoipa::path(get, path = "/v1/sandboxes/{id}/network", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::NetworkReply, description = "The sandbox's egress rules"), Errors))]
fn get_network() {}

#[utoipa::path(put, path = "/v1/sandboxes/{id}/network", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    request_body = wire::NetworkRules,
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::NetworkReply,
        description = "The rules were replaced whole; connections opened from now on follow them. \
                       409 when the sandbox has no internet access"), Errors))]
fn set_network() {}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/preview", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    request_body = wire::PreviewRequest,
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::PreviewReply,
        description = "A signed URL that opens the port until expires_at"), Errors))]
fn preview_by_key() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/preview", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::PreviewRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::PreviewReply,
        description = "The same, with the sandbox's own token"), Errors))]
fn preview_by_token() {}

#[utoipa::path(get, path = "/sandboxes/{id}/ports/{port}/{path}", tag = "ports",
    params(("id" = String, Path, description = ID), ("port" = u16, Path, description = PORT),
           ("path" = String, Path, description = "The path on the sandbox's server"),
           ("preview_token" = Option<String>, Query,
            description = "A preview token (then kept in a cookie for this port)")),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "Whatever the server on the port answers (any method; \
        streamed; WebSocket upgrades pass through)"),
        (status = 502, body = wire::ErrorBody, description = "PORT_NOT_REACHABLE: nothing listens on the port"),
        Errors))]
fn port_proxy() {}
