//! Streamed file transfers: `GET /files/download` (with single byte ranges) and
//! `POST /files/upload` (multipart). Neither holds a file in memory: bytes move in 64 KiB
//! chunks between the socket and a descriptor opened inside the sandbox, and the global
//! JSON body limit does not apply to uploads (their own is `--max-upload-mb`).

use axum::body::Body;
use axum::extract::multipart::{Field, Multipart};
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use sandlot_protocol::{code, FileResponse};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::auth::AgentSandbox;
use super::body::QueryParams;
use super::error::{ApiError, ApiResult};
use super::files::{checked, sandbox_fs, PathQuery};
use super::AppState;
use crate::files::{ops, FsError, SandboxFs, SandboxPath};
use crate::time::now_rfc3339;

/// Download read size: large enough that the blocking-pool round trip per read is cheap.
const CHUNK: usize = 256 * 1024;
/// How much of an upload over the limit is read and dropped before the 413 goes out, so
/// clients that send the whole body before reading (most do) see the answer instead of a
/// broken pipe; past this the connection is closed on them.
const DRAIN_MAX_BYTES: u64 = 32 * 1024 * 1024;
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(10);
/// Room for the multipart framing and the `path` field on top of the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// The longest `path` field read.
const MAX_PATH_FIELD: usize = 8 * 1024;

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; several ranges, other units or malformed headers get the whole file
/// (RFC 9110 lets a server ignore them).
fn wanted(range: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if size == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part(size.saturating_sub(n), size - 1),
            None => Wanted::Whole,
        },
        (false, _) => {
            let Some(start) = parse(first) else {
                return Wanted::Whole;
            };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match parse(last) {
                    Some(end) if end >= start => end,
                    _ => return Wanted::Whole,
                }
            };
            if start >= size {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(start, end.min(size - 1))
            }
        }
        (true, true) => Wanted::Whole,
    }
}

/// `GET /files/download?path=`: the raw bytes, streamed, with `Range` support.
pub async fn download(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    QueryParams(q): QueryParams<PathQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = checked(q.path.as_deref(), "path")?;
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let p = path.clone();
    let (fd, size) = fs.blocking(move |root| ops::open_regular(root, &p)).await?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, len) = match wanted(range, size) {
        Wanted::Whole => (StatusCode::OK, 0, size),
        Wanted::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Wanted::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                code::RANGE_NOT_SATISFIABLE,
                format!("{range:?} is outside {} ({size} bytes)", path.display()),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let mut file = tokio::fs::File::from_std(std::fs::File::from(fd));
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| FsError::from_io(&path.display(), e))?;
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file.take(len),
        CHUNK,
    ));
    let name = path.name().replace(['"', '\\', '\r', '\n'], "_");
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let v = format!("bytes {start}-{}/{size}", start + len - 1);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&v).expect("ascii"),
        );
    }
    Ok(resp)
}

/// A staged upload that is removed unless it was committed, also when the request is
/// dropped half-way (the client went away).
struct Pending {
    fs: SandboxFs,
    staged: Option<ops::Staged>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(staged) = self.staged.take() {
            let fs = self.fs.clone();
            tokio::spawn(async move {
                let _ = fs
                    .blocking(move |_| {
                        staged.discard();
                        Ok(())
                    })
                    .await;
            });
        }
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError {
        close_connection: true,
        ..ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::FILE_TOO_LARGE,
            format!(
                "The upload is larger than this server's limit of {} MiB (--max-upload-mb)",
                limit / (1024 * 1024)
            ),
        )
    }
}

fn bad_multipart(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        code::INVALID_REQUEST,
        format!("invalid multipart body: {e}"),
    )
}

/// Reads and drops a refused body, within bounds.
async fn drain(req: Request) {
    let mut body = req.into_body().into_data_stream();
    let until = tokio::time::Instant::now() + DRAIN_MAX_TIME;
    let mut drained = 0u64;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(until, body.next()).await {
        drained += chunk.len() as u64;
        if drained > DRAIN_MAX_BYTES {
            break;
        }
    }
}

/// Bytes gathered per write of an upload.
const UPLOAD_WRITE_BYTES: usize = 1 << 20;

/// Streams one part to `file`, refusing it past `limit` bytes. Returns its size.
async fn copy_part(
    field: &mut Field<'_>,
    file: &mut tokio::fs::File,
    limit: u64,
    path: &SandboxPath,
) -> ApiResult<u64> {
    let mut size = 0u64;
    // Parts arrive in frames of a few KiB; each write of a tokio file is a blocking-pool
    // task, so gather a MiB per write.
    let mut out = tokio::io::BufWriter::with_capacity(UPLOAD_WRITE_BYTES, file);
    while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| FsError::from_io(&path.display(), e))?;
    }
    out.flush()
        .await
        .map_err(|e| FsError::from_io(&path.display(), e))?;
    Ok(size)
}

/// `POST /files/upload`: multipart with a `file` part and a `path` field (or `?path=`).
/// The file goes to a temporary name in the target directory and is renamed into place
/// once whole; when `file` comes before `path`, it is staged in `/workspace` and moved.
pub async fn upload(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    QueryParams(q): QueryParams<PathQuery>,
    req: Request,
) -> ApiResult<Json<FileResponse>> {
    let limit = state.cfg.max_upload_mb.saturating_mul(1024 * 1024);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit.saturating_add(MULTIPART_OVERHEAD)) {
        if n <= limit.saturating_add(DRAIN_MAX_BYTES) {
            drain(req).await;
        }
        return Err(too_large(limit));
    }
    let mut multipart = Multipart::from_request(req, &state).await.map_err(|e| {
        ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("expected a multipart/form-data body: {}", e.body_text()),
        )
    })?;
    let mut target = q
        .path
        .as_deref()
        .map(|p| checked(Some(p), "path"))
        .transpose()?;
    let fs = sandbox_fs(&state, &sandbox.id)?;
    let mut pending = Pending {
        fs: fs.clone(),
        staged: None,
    };
    let (mut size, mut ignored) = (0, 0u64);
    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        match field.name() {
            Some("path") if target.is_none() => {
                let mut raw = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
                    raw.extend_from_slice(&chunk);
                    if raw.len() > MAX_PATH_FIELD {
                        return Err(ApiError::bad_request(
                            code::INVALID_PATH,
                            "path is too long",
                        ));
                    }
                }
                let raw = String::from_utf8(raw)
                    .map_err(|_| ApiError::bad_request(code::INVALID_PATH, "path is not UTF-8"))?;
                target = Some(checked(Some(raw.trim_end_matches(['\r', '\n'])), "path")?);
            }
            Some("file") if pending.staged.is_none() => {
                let stage_at = match &target {
                    Some(t) => t.clone(),
                    None => SandboxPath::parse("/workspace/upload")?,
                };
                let at = stage_at.clone();
                let (staged, fd) = fs
                    .blocking(move |root| ops::stage(root, &at, 0o644))
                    .await?;
                pending.staged = Some(staged);
                let mut file = tokio::fs::File::from_std(std::fs::File::from(fd));
                size = copy_part(&mut field, &mut file, limit, &stage_at).await?;
            }
            Some("file") => {
                return Err(ApiError::bad_request(
                    code::INVALID_REQUEST,
                    "send one file per upload",
                ))
            }
            // Other fields are read and ignored, up to a bound.
            _ => {
                while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
                    ignored += chunk.len() as u64;
                    if ignored > MULTIPART_OVERHEAD {
                        return Err(bad_multipart("too much besides the file and its path"));
                    }
                }
            }
        }
    }
    let target = target.ok_or_else(|| ApiError::missing("path"))?;
    let staged = pending
        .staged
        .take()
        .ok_or_else(|| ApiError::missing("file"))?;
    let t = target.clone();
    let result = fs
        .blocking(move |root| {
            let staged = if staged.target == t {
                staged
            } else {
                staged.retarget(root, &t, 0o644)?
            };
            staged.commit(true)
        })
        .await;
    result?;
    Ok(Json(FileResponse {
        success: true,
        message: "File uploaded".into(),
        path: target.display(),
        size,
        timestamp: now_rfc3339(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-3"), 10), Wanted::Part(0, 3));
        assert_eq!(wanted(Some("bytes=5-"), 10), Wanted::Part(5, 9));
        assert_eq!(wanted(Some("bytes=5-100"), 10), Wanted::Part(5, 9));
        assert_eq!(wanted(Some("bytes=-4"), 10), Wanted::Part(6, 9));
        assert_eq!(wanted(Some("bytes=-40"), 10), Wanted::Part(0, 9));
        assert_eq!(wanted(Some("bytes=10-"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-1,4-5"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=5-2"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("items=0-1"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=x-1"), 10), Wanted::Whole);
    }
}
