//! File watch: `WS /files/watch` (HopX: the client sends `{"action":"watch","path":…}`,
//! then receives `change` frames) and, for clients that only have `fetch`, the same events
//! as Server-Sent Events on `GET /files/watch?path=&recursive=` (a Sandlot extension).
//!
//! A watch ends when the client leaves, the watched path goes away, the sandbox dies, or
//! the server shuts down; keepalives (a WebSocket ping, an SSE comment) keep idle ones open.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sandlot_protocol::{code, WatchFrame, WatchRequest};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::{AgentSandbox, TokenSandbox};
use super::body::QueryParams;
use super::error::{ApiError, ApiResult};
use super::files::{checked, sandbox_fs};
use super::AppState;
use crate::files::watch::{WatchEvent, Watcher};
use crate::files::SandboxFs;
use crate::time::now_rfc3339;

#[derive(Debug, Deserialize)]
pub struct WatchQuery {
    path: Option<String>,
    recursive: Option<bool>,
}

fn error_frame(e: &ApiError) -> WatchFrame {
    WatchFrame::Error {
        error: e.message.clone(),
        code: e.code.into(),
        timestamp: now_rfc3339(),
    }
}

/// What a watch event becomes on the wire; `None` frame with `true` ends the watch.
fn frame_of(event: Option<crate::files::FsResult<WatchEvent>>) -> (Option<WatchFrame>, bool) {
    match event {
        Some(Ok(WatchEvent::Change { path, kind })) => (
            Some(WatchFrame::Change {
                path,
                event: kind,
                timestamp: now_rfc3339(),
            }),
            false,
        ),
        Some(Ok(WatchEvent::Overflow)) => (
            Some(WatchFrame::Error {
                error: "too many changes at once: some events were lost".into(),
                code: "EVENTS_LOST".into(),
                timestamp: now_rfc3339(),
            }),
            false,
        ),
        Some(Ok(WatchEvent::Ended)) | None => (None, true),
        Some(Err(e)) => (Some(error_frame(&ApiError::from(e))), true),
    }
}

fn gone_frame() -> WatchFrame {
    WatchFrame::Error {
        error: "the sandbox is gone".into(),
        code: code::SANDBOX_NOT_FOUND.into(),
        timestamp: now_rfc3339(),
    }
}

/// `GET /files/watch`: a WebSocket when the request asks for one, SSE otherwise.
pub async fn watch(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    QueryParams(q): QueryParams<WatchQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let fs = sandbox_fs(&state, &sandbox.id)?;
    match ws {
        Ok(upgrade) => Ok(upgrade.on_upgrade(move |socket| ws_session(state, fs, socket))),
        Err(_) => sse(state, fs, q).await,
    }
}

/// `WS /files/watch` at the server root, the sandbox found from the token: the official HopX
/// JS SDK opens its watch WebSocket at the agent host's root, dropping the agent path (as it
/// does for `/terminal`). WebSocket only: the SSE variant lives under the agent path.
pub async fn websocket_by_token(
    State(state): State<AppState>,
    TokenSandbox(sandbox): TokenSandbox,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = ws.map_err(|e| {
        ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("this route is a WebSocket: {}", e.body_text()),
        )
    })?;
    let fs = sandbox_fs(&state, &sandbox.id)?;
    Ok(upgrade.on_upgrade(move |socket| ws_session(state, fs, socket)))
}

async fn sse(state: AppState, fs: SandboxFs, q: WatchQuery) -> ApiResult<Response> {
    let path = checked(q.path.as_deref(), "path")?;
    let recursive = q.recursive.unwrap_or(false);
    let mut watcher = Watcher::start(&fs, path.clone(), recursive).await?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let keepalive = Duration::from_secs(state.cfg.stream_keepalive_secs.max(1));
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let send = |frame: &WatchFrame| {
            let data = serde_json::to_string(frame).expect("frames serialise");
            Bytes::from(format!("event: {}\ndata: {data}\n\n", frame.kind()))
        };
        let watching = WatchFrame::Watching {
            path: path.display(),
            recursive,
            timestamp: now_rfc3339(),
        };
        if tx.send(send(&watching)).await.is_err() {
            return;
        }
        loop {
            let chunk = tokio::select! {
                event = watcher.next() => {
                    let (frame, end) = frame_of(event);
                    if let Some(frame) = frame {
                        if tx.send(send(&frame)).await.is_err() {
                            return;
                        }
                    }
                    if end {
                        return;
                    }
                    continue;
                }
                _ = tokio::time::sleep(keepalive) => Bytes::from_static(b": keepalive\n\n"),
                _ = fs.gone.cancelled() => send(&gone_frame()),
                _ = shutdown.requested() => return,
                _ = tx.closed() => return,
            };
            let last = chunk.starts_with(b"event: error");
            if tx.send(chunk).await.is_err() || last {
                return;
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|chunk| chunk.map(Ok::<_, Infallible>))
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response())
}

async fn send(socket: &mut WebSocket, frame: &WatchFrame) -> Result<(), axum::Error> {
    let text = serde_json::to_string(frame).expect("frames serialise");
    socket.send(Message::Text(text.into())).await
}

/// Reads the `{"action":"watch","path":…}` frame and starts the watch.
async fn start_from_frame(fs: &SandboxFs, socket: &mut WebSocket) -> Option<ApiResult<Watcher>> {
    let text = match tokio::time::timeout(Duration::from_secs(30), socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(Some(Ok(_))) => {
            return Some(Err(ApiError::bad_request(
                code::INVALID_REQUEST,
                "expected a JSON text frame {\"action\":\"watch\",\"path\":…}",
            )))
        }
        _ => return None,
    };
    let started = async {
        let req: WatchRequest = serde_json::from_str(&text).map_err(|e| {
            ApiError::bad_request(code::INVALID_JSON, format!("invalid watch frame: {e}"))
        })?;
        if req.action.as_deref().is_some_and(|a| a != "watch") {
            return Err(ApiError::bad_request(
                code::INVALID_REQUEST,
                "the first frame's action must be \"watch\"",
            ));
        }
        let path = checked(req.path.as_deref(), "path")?;
        Ok(Watcher::start(fs, path, req.recursive.unwrap_or(false)).await?)
    };
    Some(started.await)
}

async fn ws_session(state: AppState, fs: SandboxFs, mut socket: WebSocket) {
    let mut watcher = match start_from_frame(&fs, &mut socket).await {
        Some(Ok(w)) => w,
        Some(Err(e)) => {
            let _ = send(&mut socket, &error_frame(&e)).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        None => return,
    };
    let keepalive = Duration::from_secs(state.cfg.stream_keepalive_secs.max(1));
    loop {
        tokio::select! {
            event = watcher.next() => {
                let (frame, end) = frame_of(event);
                if let Some(frame) = frame {
                    if send(&mut socket, &frame).await.is_err() {
                        return;
                    }
                }
                if end {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
            _ = tokio::time::sleep(keepalive) => {
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
            _ = fs.gone.cancelled() => {
                let _ = send(&mut socket, &gone_frame()).await;
                break;
            }
            _ = state.shutdown.requested() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
