//! Agent file routes (`/files/...`): read, write, list, exists, remove, mkdir and rename.
//! Uploads and downloads stream in [`super::transfer`]; watches are in [`super::watch`].
//! Every operation goes through the node's [`SandboxFs`] (see `crate::files` for why it
//! cannot leave the sandbox).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use sandlot_protocol::{
    code, FileContent, FileExists, FileInfo, FileList, FileResponse, FileWriteRequest, PathRequest,
    RenameRequest,
};
use serde::Deserialize;

use super::auth::AgentSandbox;
use super::body::{JsonBody, QueryParams};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::files::{ops, FsError, SandboxFs, SandboxPath};
use crate::time::{now_rfc3339, rfc3339_millis};

impl From<FsError> for ApiError {
    fn from(e: FsError) -> Self {
        match e {
            FsError::NotAllowed(p) => Self::new(
                StatusCode::FORBIDDEN,
                code::PATH_NOT_ALLOWED,
                format!(
                    "Path not allowed: {p}; the files API reaches only absolute paths under \
                     /workspace and /tmp"
                ),
            ),
            FsError::InvalidPath(msg) => Self::bad_request(code::INVALID_PATH, msg),
            FsError::NotFound(p) => Self::new(
                StatusCode::NOT_FOUND,
                code::FILE_NOT_FOUND,
                format!("File not found: {p}"),
            ),
            FsError::IsADirectory(p) => Self::bad_request(
                code::IS_A_DIRECTORY,
                format!("{p} is a directory; this operation needs a file"),
            ),
            FsError::NotADirectory(p) => Self::bad_request(
                code::NOT_A_DIRECTORY,
                format!("{p}: not a directory (it, or a directory on its path, is a file)"),
            ),
            FsError::NotRegular(p) => Self::bad_request(
                code::NOT_A_REGULAR_FILE,
                format!("{p} is not a regular file (a FIFO, socket or device)"),
            ),
            FsError::AlreadyExists(p) => Self::new(
                StatusCode::CONFLICT,
                code::FILE_ALREADY_EXISTS,
                format!("{p} already exists (or is a directory that is not empty)"),
            ),
            FsError::PermissionDenied(p) => Self::new(
                StatusCode::FORBIDDEN,
                code::PERMISSION_DENIED,
                format!("Permission denied: {p} (the sandbox's user may not do this)"),
            ),
            FsError::TooLarge(msg) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, code::FILE_TOO_LARGE, msg)
            }
            FsError::NotText(p) => Self::bad_request(
                code::FILE_NOT_TEXT,
                format!("{p} is not UTF-8 text; read it with encoding=base64 or /files/download"),
            ),
            FsError::LimitReached(msg) => Self {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    code::RESOURCE_LIMIT_ERROR,
                    msg,
                )
            },
            FsError::StorageFull(p) => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                code::INSUFFICIENT_STORAGE,
                format!(
                    "No space left for {p} (the disk is full or the sandbox's quota is \
                     reached); nothing was written"
                ),
            ),
            FsError::Io(detail) => Self::internal(&detail),
        }
    }
}

/// A required path, checked against the policy.
pub(super) fn checked(path: Option<&str>, field: &str) -> ApiResult<SandboxPath> {
    let raw = path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::missing(field))?;
    Ok(SandboxPath::parse(raw)?)
}

pub(super) fn sandbox_fs(state: &AppState, sandbox_id: &str) -> ApiResult<SandboxFs> {
    Ok(state.node.sandbox_fs(sandbox_id)?)
}

fn done(message: &str, path: &SandboxPath, size: u64) -> Json<FileResponse> {
    Json(FileResponse {
        success: true,
        message: message.into(),
        path: path.display(),
        size,
        timestamp: now_rfc3339(),
    })
}

#[derive(Debug, Deserialize)]
pub struct PathQuery {
    pub path: Option<String>,
    /// `/files/read`: `base64` returns the bytes base64-encoded.
    pub encoding: Option<String>,
}

/// Whether an `encoding` value asks for base64 (absent, `utf-8` and `text` mean text).
fn is_base64(encoding: Option<&str>) -> ApiResult<bool> {
    match encoding.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "utf-8" | "utf8" | "text") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("unknown encoding '{other}'; use base64 or utf-8"),
        )),
    }
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// `GET /files/read?path=&encoding=`
pub async fn read(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    QueryParams(q): QueryParams<PathQuery>,
) -> ApiResult<Json<FileContent>> {
    let path = checked(q.path.as_deref(), "path")?;
    let base64 = is_base64(q.encoding.as_deref())?;
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let max = state.cfg.max_read_mb * 1024 * 1024;
    let p = path.clone();
    let data = fs.blocking(move |root| ops::read(root, &p, max)).await?;
    let size = data.len() as u64;
    let (content, encoding) = if base64 {
        (BASE64.encode(&data), Some("base64".to_string()))
    } else {
        let text = String::from_utf8(data).map_err(|_| FsError::NotText(path.display()))?;
        (text, None)
    };
    Ok(Json(FileContent {
        content,
        path: path.display(),
        size,
        encoding,
    }))
}

/// Octal permission bits (`0644`, `644`, `0o644`), at most `0777`.
fn parse_mode(mode: Option<&str>) -> ApiResult<u32> {
    let Some(mode) = mode.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok(0o644);
    };
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            ApiError::bad_request(
                code::INVALID_REQUEST,
                format!("mode '{mode}' is not octal permission bits such as 0644 (at most 0777)"),
            )
        })
}

/// `POST /files/write`
pub async fn write(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<FileWriteRequest>,
) -> ApiResult<Json<FileResponse>> {
    let path = checked(req.path.as_deref(), "path")?;
    let content = req.content.ok_or_else(|| ApiError::missing("content"))?;
    let mode = parse_mode(req.mode.as_deref())?;
    let data = if is_base64(req.encoding.as_deref())? {
        BASE64.decode(content.trim()).map_err(|e| {
            ApiError::bad_request(
                code::INVALID_REQUEST,
                format!("content is not valid base64: {e}"),
            )
        })?
    } else {
        content.into_bytes()
    };
    let overwrite = req.overwrite.unwrap_or(true);
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let p = path.clone();
    let size = fs
        .blocking(move |root| ops::write(root, &p, &data, mode, overwrite))
        .await?;
    Ok(done("File written", &path, size))
}

fn permissions(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// `GET /files/list?path=` (default `/workspace`)
pub async fn list(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    QueryParams(q): QueryParams<PathQuery>,
) -> ApiResult<Json<FileList>> {
    let path = checked(Some(q.path.as_deref().unwrap_or("/workspace")), "path")?;
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let p = path.clone();
    let (entries, truncated) = fs.blocking(move |root| ops::list(root, &p)).await?;
    let files: Vec<FileInfo> = entries
        .into_iter()
        .map(|e| {
            let is_dir = e.kind == rustix::fs::FileType::Directory;
            let modified = rfc3339_millis(e.modified);
            FileInfo {
                name: e.name,
                path: e.path,
                size: e.size,
                is_directory: is_dir,
                is_dir,
                is_file: e.kind == rustix::fs::FileType::RegularFile,
                is_symlink: e.kind == rustix::fs::FileType::Symlink,
                modified_time: modified.clone(),
                modified,
                permissions: permissions(e.mode),
                mode: format!("{:04o}", e.mode),
            }
        })
        .collect();
    Ok(Json(FileList {
        count: files.len(),
        files,
        path: path.display(),
        truncated,
    }))
}

/// `GET /files/exists?path=`
pub async fn exists(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    QueryParams(q): QueryParams<PathQuery>,
) -> ApiResult<Json<FileExists>> {
    let path = checked(q.path.as_deref(), "path")?;
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let p = path.clone();
    let exists = fs.blocking(move |root| ops::exists(root, &p)).await?;
    Ok(Json(FileExists {
        exists,
        path: path.display(),
    }))
}

/// `DELETE /files/remove?path=`: a file, a symlink (not its target) or a whole directory.
pub async fn remove(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    QueryParams(q): QueryParams<PathQuery>,
) -> ApiResult<Json<FileResponse>> {
    let path = checked(q.path.as_deref(), "path")?;
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let p = path.clone();
    fs.blocking(move |root| ops::remove(root, &p)).await?;
    Ok(done("Removed", &path, 0))
}

/// `POST /files/mkdir {path}`: with its parents; an existing directory is fine.
pub async fn mkdir(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<PathRequest>,
) -> ApiResult<Json<FileResponse>> {
    let path = checked(req.path.as_deref(), "path")?;
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let p = path.clone();
    fs.blocking(move |root| ops::mkdir(root, &p)).await?;
    Ok(done("Directory created", &path, 0))
}

/// `POST /files/rename {from, to, overwrite?}` (Sandlot extension; `old_path`/`new_path`
/// are accepted too).
pub async fn rename(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<RenameRequest>,
) -> ApiResult<Json<FileResponse>> {
    let from = checked(req.from.as_deref().or(req.old_path.as_deref()), "from")?;
    let to = checked(req.to.as_deref().or(req.new_path.as_deref()), "to")?;
    let overwrite = req.overwrite.unwrap_or(false);
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let (f, t) = (from.clone(), to.clone());
    fs.blocking(move |root| ops::rename(root, &f, &t, overwrite))
        .await?;
    Ok(done(&format!("Renamed {}", from.display()), &to, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_permission_strings() {
        assert_eq!(parse_mode(None).unwrap(), 0o644);
        assert_eq!(parse_mode(Some("0755")).unwrap(), 0o755);
        assert_eq!(parse_mode(Some("600")).unwrap(), 0o600);
        assert!(parse_mode(Some("4755")).is_err());
        assert!(parse_mode(Some("rw")).is_err());
        assert_eq!(permissions(0o644), "rw-r--r--");
        assert_eq!(permissions(0o750), "rwxr-x---");
    }
}
