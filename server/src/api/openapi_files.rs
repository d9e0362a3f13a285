//! The OpenAPI operations of a sandbox's files (read, write, list, move, upload, download,
//! watch), merged into [`super::openapi`]'s document.

// The operation functions only carry their `#[utoipa::path]` attributes; nothing calls them.
#![allow(dead_code)]

use sandlot_protocol as wire;
use utoipa::OpenApi;

use super::openapi::Errors;

const ID: &str = "The sandbox id";

#[derive(OpenApi)]
#[openapi(paths(
    read_file,
    write_file,
    list_files,
    file_exists,
    remove_file,
    make_directory,
    rename_file,
    upload_file,
    download_file,
    watch_files,
    watch_files_by_token,
))]
pub struct FilesDoc;

const FILE_PATH: &str =
    "Absolute path under /workspace or /tmp (normalised first; others: 403 PATH_NOT_ALLOWED)";

#[utoipa::path(get, path = "/sandboxes/{id}/agent/files/read", tag = "files",
    description = "A file's content as text, or base64 with encoding=base64. Files over --max-read-mb: 413 FILE_TOO_LARGE (use /files/download); bytes that are not UTF-8 without encoding=base64: 400 FILE_NOT_TEXT.",
    params(("id" = String, Path, description = ID), ("path" = String, Query, description = FILE_PATH),
        ("encoding" = Option<String>, Query, description = "base64 for binary files")),
    security(("bearer" = [])),
    responses((status = 200, body = wire::FileContent, description = "The content"), Errors))]
fn read_file() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/files/write", tag = "files",
    description = "Writes through a temporary file renamed into place (a final symlink is replaced, never followed); missing parents are created; the file belongs to the sandbox's user.",
    params(("id" = String, Path, description = ID)),
    request_body = wire::FileWriteRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::FileResponse, description = "Written"), Errors))]
fn write_file() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/files/list", tag = "files",
    params(("id" = String, Path, description = ID), ("path" = Option<String>, Query, description = "Directory (default /workspace)")),
    security(("bearer" = [])),
    responses((status = 200, body = wire::FileList, description = "The directory's entries, sorted by name"), Errors))]
fn list_files() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/files/exists", tag = "files",
    params(("id" = String, Path, description = ID), ("path" = String, Query, description = FILE_PATH)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::FileExists, description = "Whether the path exists"), Errors))]
fn file_exists() {}

#[utoipa::path(delete, path = "/sandboxes/{id}/agent/files/remove", tag = "files",
    description = "Removes a file, a symlink (never its target) or a directory with everything in it.",
    params(("id" = String, Path, description = ID), ("path" = String, Query, description = FILE_PATH)),
    security(("bearer" = [])),
    responses((status = 200, body = wire::FileResponse, description = "Removed"), Errors))]
fn remove_file() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/files/mkdir", tag = "files",
    description = "Creates a directory and its missing parents; an existing directory is fine.",
    params(("id" = String, Path, description = ID)),
    request_body = wire::PathRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::FileResponse, description = "Created"), Errors))]
fn make_directory() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/files/rename", tag = "files",
    description = "Sandlot extension: renames within the sandbox (not across /workspace and /tmp); an existing target needs overwrite: true (else 409).",
    params(("id" = String, Path, description = ID)),
    request_body = wire::RenameRequest,
    security(("bearer" = [])),
    responses((status = 200, body = wire::FileResponse, description = "Renamed"), Errors))]
fn rename_file() {}

#[utoipa::path(post, path = "/sandboxes/{id}/agent/files/upload", tag = "files",
    description = "multipart/form-data: a file part and a path field (or ?path=). Streamed to a temporary file beside the target and renamed into place; over --max-upload-mb: 413 FILE_TOO_LARGE with nothing left behind. The JSON body limit does not apply.",
    params(("id" = String, Path, description = ID), ("path" = Option<String>, Query, description = "Target path (instead of the path field)")),
    request_body(content_type = "multipart/form-data", content = String, description = "Parts: file (the bytes), path (the target)"),
    security(("bearer" = [])),
    responses((status = 200, body = wire::FileResponse, description = "Uploaded"), Errors))]
fn upload_file() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/files/download", tag = "files",
    description = "The raw bytes of a regular file, streamed with Content-Length; one Range: bytes= range gives 206, a range past the end 416. FIFOs and devices: 400 NOT_A_REGULAR_FILE.",
    params(("id" = String, Path, description = ID), ("path" = String, Query, description = FILE_PATH),
        ("Range" = Option<String>, Header, description = "One bytes= range")),
    security(("bearer" = [])),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>, description = "The file"),
        (status = 206, content_type = "application/octet-stream", body = Vec<u8>, description = "The requested range (Content-Range)"),
        (status = 416, body = wire::ErrorBody, description = "The range is outside the file"),
        Errors))]
fn download_file() {}

#[utoipa::path(get, path = "/sandboxes/{id}/agent/files/watch", tag = "files",
    description = "WebSocket (HopX): send a WatchRequest, receive WatchFrames of type change (and error). Without an upgrade (Sandlot extension): Server-Sent Events for path and recursive, first a watching event, then change events. A watch ends with its sandbox.",
    params(("id" = String, Path, description = ID),
        ("path" = Option<String>, Query, description = "SSE: the path to watch"),
        ("recursive" = Option<bool>, Query, description = "SSE: also watch subdirectories")),
    security(("bearer" = [])),
    responses((status = 101, description = "Switched to WebSocket"),
        (status = 200, content_type = "text/event-stream", body = String, description = "SSE: each event's data is a WatchFrame"),
        Errors))]
fn watch_files() {}

#[utoipa::path(get, path = "/files/watch", tag = "files",
    description = "The file-watch WebSocket at the server's root (where the HopX JS SDK opens it); the sandbox is the token's. WebSocket only.",
    security(("bearer" = [])),
    responses((status = 101, description = "Switched to WebSocket"), Errors))]
fn watch_files_by_token() {}
