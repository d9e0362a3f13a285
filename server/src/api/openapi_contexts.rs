//! The OpenAPI operations of running code in contexts and of the contexts API, merged into
//! [`super::openapi`]'s document.

// The operation functions only carry their `#[utoipa::path]` attributes; nothing calls them.
#![allow(dead_code)]

use sandlot_protocol as wire;
use utoipa::OpenApi;

use super::openapi::Errors;

const ID: &str = "The sandbox id";
const CID: &str = "The context id";

#[derive(OpenApi)]
#[openapi(
    paths(
        execute,
        execute_ipython,
        create_context,
        list_contexts,
        restart_context,
        remove_context,
        jupyter_sessions
    ),
    components(schemas(wire::RichResult, wire::ResultEvent, wire::ExecutionError))
)]
pub struct ContextsDoc;

#[utoipa::path(post, path = "/sandboxes/{id}/agent/execute", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::CodeRunRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::ExecuteResponse,
        description = "The run's outcome, in its language's default context unless context_id \
                       or fresh says otherwise; failing code is still a 200 (exit_code, error)"), Errors))]
fn execute() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/execute/ipython", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::CodeRunRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::ExecuteResponse,
        description = "Python in its default context (or context_id); default timeout 60 s"), Errors))]
fn execute_ipython() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/contexts", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::CreateContextRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::ContextInfo, description = "Created; its interpreter is ready"), Errors))]
fn create_context() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/contexts", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::ContextList, description = "The sandbox's contexts, default ones included once used"), Errors))]
fn list_contexts() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/contexts/{cid}/restart", tag = "agent",
    params(("id" = String, Path, description = ID), ("cid" = String, Path, description = CID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::ContextInfo, description = "A new interpreter; the state is gone"), Errors))]
fn restart_context() {}

#[utoipa::path(delete, path = "/sandboxes/{id}/agent/contexts/{cid}", tag = "agent",
    params(("id" = String, Path, description = ID), ("cid" = String, Path, description = CID)),
    security(("bearer" = [])),
    responses((status = 200, body = Object, description = "Stopped and forgotten"), Errors))]
fn remove_context() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/jupyter/sessions", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::JupyterSessions, description = "The contexts, as HopX lists its kernels"), Errors))]
fn jupyter_sessions() {}
