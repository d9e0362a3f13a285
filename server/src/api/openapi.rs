//! The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json` and committed as
//! `docs/openapi.json` (a test fails when the two differ).
//!
//! Schemas come from the wire types in `crates/protocol` (their `openapi` feature); the
//! operations are declared here, one function each, so the whole API reads in one place.
//! Every operation may answer with the error body of its plane for the statuses listed in
//! [`Errors`].

// The operation functions only carry their `#[utoipa::path]` attributes; nothing calls them.
#![allow(dead_code)]

use std::collections::BTreeMap;

use sandlot_protocol as wire;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The statuses any operation may answer with an error body, and why.
pub(super) struct Errors;

impl IntoResponses for Errors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            (
                "400",
                "Malformed JSON, wrong types, values out of range, unknown query fields",
            ),
            ("401", "Missing, wrong, expired or rotated credentials"),
            ("403", "Local mode: a foreign Host or Origin"),
            ("404", "Unknown sandbox, process, template or route"),
            ("405", "Method not allowed on this route"),
            (
                "409",
                "Conflicting state (a paused sandbox, a running process's record)",
            ),
            ("413", "Request body over --max-body-bytes"),
            ("415", "Local mode: a body not declared application/json"),
            ("429", "A sandbox or process cap was reached (Retry-After)"),
            (
                "500",
                "A fault of the server; the request id identifies it in the log",
            ),
            ("503", "The server cannot take the request now"),
            ("507", "The data disk is full"),
        ]
        .into_iter()
        .map(|(status, why)| {
            let response = ResponseBuilder::new()
                .description(why)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
    }
}

/// The API key and the sandbox token as security schemes.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The API key on the control plane, the sandbox's auth_token on its agent",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sandlotd",
        description = "The HopX sandbox API as Sandlot serves it; docs/protocol.md explains it \
                       and marks Sandlot's extensions.",
        license(name = "Apache-2.0")
    ),
    paths(
        server_health, openapi_json,
        create_sandbox, list_sandboxes, get_sandbox, delete_sandbox, pause_sandbox,
        resume_sandbox, set_sandbox_timeout, refresh_token, list_templates, get_template,
        agent_health, agent_info, execute_background, execute_async, list_processes,
        get_process, remove_process, follow_process, run_and_follow, kill_process,
        kill_process_by_body, kill_process_alias, get_env, replace_env, merge_env, clear_env,
        execute_websocket, execute_websocket_by_token,
        create_terminal, list_terminals, get_terminal, kill_terminal, follow_terminal,
        terminal_input, resize_terminal, terminal_websocket, terminal_websocket_by_token,
    ),
    components(schemas(wire::ErrorBody, wire::StreamEvent, wire::WsExecuteFrame, wire::WsServerFrame, wire::WebhookPayload,
        wire::TerminalEvent, wire::TerminalClientFrame, wire::TerminalServerFrame, wire::WatchRequest, wire::WatchFrame)),
    modifiers(&Security),
    tags(
        (name = "control plane", description = "Sandboxes, tokens and templates (/v1), with the API key"),
        (name = "agent", description = "One sandbox's agent at its public_host, with its token"),
        (name = "files", description = "One sandbox's files (its /workspace and /tmp), acting as its user"),
    )
)]
pub struct ApiDoc;

/// The document as served and committed.
pub fn document() -> String {
    let mut api = ApiDoc::openapi();
    api.merge(super::openapi_observe::ObserveDoc::openapi());
    api.merge(super::openapi_contexts::ContextsDoc::openapi());
    api.merge(super::openapi_network::NetworkDoc::openapi());
    api.merge(super::openapi_files::FilesDoc::openapi());
    let mut doc = serde_json::to_value(api).expect("the OpenAPI document serialises");
    describe_event_streams(&mut doc);
    serde_json::to_string_pretty(&doc).expect("the OpenAPI document serialises")
}

/// Before OpenAPI 3.2 the `schema` of a `text/event-stream` response describes each event as
/// a client parses it (`event`, `data`, `id`, `retry`). utoipa has no `contentSchema`, which
/// says that `data` is a JSON `StreamEvent` (a `TerminalEvent` on terminal streams), so the
/// event schemas are written here.
fn describe_event_streams(doc: &mut serde_json::Value) {
    let event = |payload: &str, names: &[&str]| {
        serde_json::json!({
            "type": "object",
            "description": format!("One Server-Sent Event; `data` is a JSON {payload} whose `type` \
                                    is the event's name, `id` its sequence number (resume with \
                                    Last-Event-ID)"),
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "enum": names},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": format!("#/components/schemas/{payload}")}
                },
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "retry": {"type": "integer", "minimum": 0}
            }
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let schema = if path.contains("/terminals/") {
            "TerminalServerSentEvent"
        } else if path.ends_with("/files/watch") {
            "WatchServerSentEvent"
        } else {
            "ServerSentEvent"
        };
        let operations = item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut());
        for operation in operations {
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(|r| r.as_object_mut())
            else {
                continue;
            };
            for response in responses.values_mut() {
                if let Some(stream) = response.pointer_mut("/content/text~1event-stream") {
                    stream["schema"] =
                        serde_json::json!({"$ref": format!("#/components/schemas/{schema}")});
                }
            }
        }
    }
    doc["components"]["schemas"]["ServerSentEvent"] = event(
        "StreamEvent",
        &["start", "stdout", "stderr", "truncated", "exit"],
    );
    doc["components"]["schemas"]["TerminalServerSentEvent"] =
        event("TerminalEvent", &["output", "truncated", "exit"]);
    doc["components"]["schemas"]["WatchServerSentEvent"] =
        event("WatchFrame", &["watching", "change", "error"]);
}

const ID: &str = "The sandbox id";
const PID: &str = "The process id";

#[utoipa::path(get, path = "/health", tag = "control plane",
    responses((status = 200, body = wire::Health, description = "The server is up"), Errors))]
fn server_health() {}

#[utoipa::path(get, path = "/openapi.json", tag = "control plane",
    responses((status = 200, content_type = "application/json", description = "This document"), Errors))]
fn openapi_json() {}

#[utoipa::path(post, path = "/v1/sandboxes", tag = "control plane",
    request_body = wire::CreateSandboxWithNetwork,
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 201, body = wire::Sandbox, description = "Created, with its agent token"), Errors))]
fn create_sandbox() {}

#[utoipa::path(get, path = "/v1/sandboxes", tag = "control plane",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("status" = Option<wire::SandboxStatus>, Query, description = "Only sandboxes in this status"),
    ),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::ListEnvelope<wire::Sandbox>, description = "One page, oldest first"), Errors))]
fn list_sandboxes() {}

#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::Sandbox, description = "The sandbox"), Errors))]
fn get_sandbox() {}

#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::SandboxStatusReply, description = "Killed, with everything in it"), Errors))]
fn delete_sandbox() {}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::SandboxStatusReply, description = "Frozen"), Errors))]
fn pause_sandbox() {}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::SandboxStatusReply, description = "Running again"), Errors))]
fn resume_sandbox() {}

#[utoipa::path(put, path = "/v1/sandboxes/{id}/timeout", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    request_body = wire::SetTimeoutRequest,
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::SetTimeoutReply, description = "The sandbox now dies timeout_seconds from now"), Errors))]
fn set_sandbox_timeout() {}

#[utoipa::path(post, path = "/v1/sandboxes/{id}/token/refresh", tag = "control plane",
    params(("id" = String, Path, description = ID)),
    request_body(content = Option<wire::TokenRefreshRequest>, description = "Optional: rotate, retiring earlier tokens after a grace"),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::TokenReply, description = "A fresh agent token"), Errors))]
fn refresh_token() {}

#[utoipa::path(get, path = "/v1/templates", tag = "control plane",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::ListEnvelope<wire::Template>, description = "The built-in templates"), Errors))]
fn list_templates() {}

#[utoipa::path(get, path = "/v1/templates/{name}", tag = "control plane",
    params(("name" = String, Path, description = "Template name or id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = wire::Template, description = "The template"), Errors))]
fn get_template() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/health", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::AgentHealth, description = "The agent is up"), Errors))]
fn agent_health() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/info", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::AgentInfo, description = "What the sandbox is and may use"), Errors))]
fn agent_info() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/execute/background", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::RunSpec,
    security(("bearer" = [])),
    responses((status = 200, body = wire::BackgroundExecuteResponse, description = "Started; returns at once"), Errors))]
fn execute_background() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/execute/async", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::AsyncExecuteRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::AsyncExecuteResponse, description = "Started; the result is POSTed to callback_url"), Errors))]
fn execute_async() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/execute/processes", tag = "agent",
    params(
        ("id" = String, Path, description = ID),
        ("status" = Option<String>, Query, description = "Comma-separated statuses to keep"),
        ("name" = Option<String>, Query, description = "Only processes with this name"),
        ("output" = Option<bool>, Query, description = "false: stdout and stderr left empty"),
    ),
    security(("bearer" = [])),
    responses((status = 200, body = wire::ProcessList<wire::ProcessInfo>, description = "Recorded processes in start order"), Errors))]
fn list_processes() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/execute/processes/{pid}", tag = "agent",
    params(("id" = String, Path, description = ID), ("pid" = String, Path, description = PID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::ProcessInfo, description = "The process record"), Errors))]
fn get_process() {}

#[utoipa::path(delete, path = "/sandboxes/{id}/agent/execute/processes/{pid}", tag = "agent",
    params(("id" = String, Path, description = ID), ("pid" = String, Path, description = PID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::ProcessActionReply, description = "The finished record is forgotten"), Errors))]
fn remove_process() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/execute/processes/{pid}/stream", tag = "agent",
    params(
        ("id" = String, Path, description = ID),
        ("pid" = String, Path, description = PID),
        ("since" = Option<u64>, Query, description = "Resume after this event (or send Last-Event-ID)"),
    ),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Server-Sent Events; each event's data is a StreamEvent"), Errors))]
fn follow_process() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/execute/stream", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::CodeRunRequest,
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Runs code (in its context unless fresh; recorded like a background process) \
                       and streams it: a start event, then StreamEvents, and a `result` event \
                       (ResultEvent) per rich result"), Errors))]
fn run_and_follow() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/execute/kill/{pid}", tag = "agent",
    params(("id" = String, Path, description = ID), ("pid" = String, Path, description = PID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::ProcessActionReply, description = "Killed (or had already ended)"), Errors))]
fn kill_process() {}

#[utoipa::path(delete, path = "/sandboxes/{id}/agent/execute/kill", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::KillProcessRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::ProcessActionReply, description = "Killed (or had already ended)"), Errors))]
fn kill_process_by_body() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/processes/{pid}/kill", tag = "agent",
    params(("id" = String, Path, description = ID), ("pid" = String, Path, description = PID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::ProcessActionReply, description = "Killed (or had already ended)"), Errors))]
fn kill_process_alias() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/env", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::EnvReply, description = "The sandbox's global environment"), Errors))]
fn get_env() {}

#[utoipa::path(put, path = "/sandboxes/{id}/agent/env", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::EnvUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = wire::EnvReply, description = "Replaced"), Errors))]
fn replace_env() {}

#[utoipa::path(patch, path = "/sandboxes/{id}/agent/env", tag = "agent",
    params(("id" = String, Path, description = ID)),
    request_body = wire::EnvUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = wire::EnvReply, description = "Merged"), Errors))]
fn merge_env() {}

#[utoipa::path(delete, path = "/sandboxes/{id}/agent/env", tag = "agent",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::EnvReply, description = "Cleared"), Errors))]
fn clear_env() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/execute/stream", tag = "agent",
    description = "WebSocket: send one WsExecuteFrame, receive WsServerFrames ending with complete; \
                   a rich result is a frame of type execute_result or display_data (a RichResult).",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 101, description = "Switched to WebSocket"), Errors))]
fn execute_websocket() {}

#[utoipa::path(get, path = "/execute/stream", tag = "agent",
    description = "The same WebSocket at the server's root; the sandbox is the token's.",
    security(("bearer" = [])),
    responses((status = 101, description = "Switched to WebSocket"), Errors))]
fn execute_websocket_by_token() {}

const TID: &str = "The terminal id";

#[utoipa::path(post, path = "/sandboxes/{id}/agent/terminals", tag = "agent",
    description = "Sandlot extension: start a shell on a new PTY (at most --max-terminals per sandbox).",
    params(("id" = String, Path, description = ID)),
    request_body = wire::CreateTerminalRequest,
    security(("bearer" = [])),
    responses((status = 201, body = wire::TerminalInfo, description = "Started"), Errors))]
fn create_terminal() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/terminals", tag = "agent",
    description = "Sandlot extension: the sandbox's terminals, exited ones for a minute after their exit.",
    params(("id" = String, Path, description = ID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::TerminalList, description = "In start order"), Errors))]
fn list_terminals() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/terminals/{tid}", tag = "agent",
    params(("id" = String, Path, description = ID), ("tid" = String, Path, description = TID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::TerminalInfo, description = "The terminal"), Errors))]
fn get_terminal() {}

#[utoipa::path(delete, path = "/sandboxes/{id}/agent/terminals/{tid}", tag = "agent",
    description = "Sandlot extension: kill the shell and every process of its session.",
    params(("id" = String, Path, description = ID), ("tid" = String, Path, description = TID)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::TerminalInfo, description = "Exited, with its exit code"), Errors))]
fn kill_terminal() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/terminals/{tid}/stream", tag = "agent",
    description = "Sandlot extension: the terminal's output as Server-Sent Events (TerminalEvent), \
                   replayed from its ring buffer after since / Last-Event-ID, ending with exit.",
    params(
        ("id" = String, Path, description = ID),
        ("tid" = String, Path, description = TID),
        ("since" = Option<u64>, Query, description = "Resume after this event (or send Last-Event-ID)"),
        ("encoding" = Option<String>, Query, description = "base64: output data is base64 of the exact bytes"),
    ),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Server-Sent Events; each event's data is a TerminalEvent"), Errors))]
fn follow_terminal() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/terminals/{tid}/input", tag = "agent",
    description = "Sandlot extension: type into the terminal (409 TERMINAL_EXITED once its shell has exited).",
    params(("id" = String, Path, description = ID), ("tid" = String, Path, description = TID)),
    request_body = wire::TerminalInputRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::TerminalInputReply, description = "Written"), Errors))]
fn terminal_input() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/terminals/{tid}/resize", tag = "agent",
    params(("id" = String, Path, description = ID), ("tid" = String, Path, description = TID)),
    request_body = wire::TerminalResize,
    security(("bearer" = [])),
    responses((status = 200, body = wire::TerminalInfo, description = "Resized (SIGWINCH to the foreground job)"), Errors))]
fn resize_terminal() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/terminal", tag = "agent",
    description = "WebSocket: a shell on a PTY. Send TerminalClientFrames (or binary frames, typed as \
                   they are), receive TerminalServerFrames ending with exit. Query: cols, rows, cwd, \
                   shell, env=NAME=value (repeated) for a new terminal, which closing the socket kills; \
                   or terminal_id (and since) to attach to one made by POST /terminals.",
    params(
        ("id" = String, Path, description = ID),
        ("cols" = Option<u16>, Query, description = "Columns (default 80)"),
        ("rows" = Option<u16>, Query, description = "Rows (default 24)"),
        ("cwd" = Option<String>, Query, description = "Working directory (default /workspace)"),
        ("shell" = Option<String>, Query, description = "Shell (default /bin/bash, else /bin/sh)"),
        ("env" = Option<String>, Query, description = "NAME=value; repeat for more"),
        ("terminal_id" = Option<String>, Query, description = "Attach to this terminal instead"),
        ("since" = Option<u64>, Query, description = "When attaching: replay output after this event"),
    ),
    security(("bearer" = [])),
    responses((status = 101, description = "Switched to WebSocket"), Errors))]
fn terminal_websocket() {}

#[utoipa::path(get, path = "/terminal", tag = "agent",
    description = "The same WebSocket at the server's root; the sandbox is the token's.",
    security(("bearer" = [])),
    responses((status = 101, description = "Switched to WebSocket"), Errors))]
fn terminal_websocket_by_token() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SANDLOT_UPDATE_OPENAPI=1 cargo test -p sandlot-server --lib openapi` rewrites it.
    #[test]
    fn the_committed_openapi_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let current = document() + "\n";
        if std::env::var_os("SANDLOT_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &current).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/openapi.json is stale: run SANDLOT_UPDATE_OPENAPI=1 cargo test -p \
             sandlot-server --lib openapi, and commit it"
        );
    }
}
