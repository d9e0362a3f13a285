//! Live output: Server-Sent Events that any `fetch` can read, and HopX's WebSocket stream.
//!
//! SSE events carry the output's sequence number as their id, so a client that reconnects
//! with `Last-Event-ID` (or `?since=`) resumes exactly after what it saw. A comment line goes
//! out after 15 s without data so proxies and idle timers keep long, quiet streams open.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use sandlot_protocol::{code, defaults, BackgroundExecuteRequest, ProcessStatus};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::agent::{run_request, start_recorded};
use super::auth::{AgentSandbox, TokenSandbox};
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::exec::events::{Gap, OutputEvent};
use crate::exec::follow::{Followed, Follower};
use crate::exec::{ProcessEntry, StopReason};
use crate::time::{now_rfc3339, rfc3339_millis};

#[derive(Debug, Deserialize)]
pub struct SinceQuery {
    since: Option<u64>,
}

/// `GET /execute/processes/{pid}/stream`: follow a process, replaying what was kept.
pub async fn follow_process(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
    Query(q): Query<SinceQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let pid = params.get("pid").cloned().unwrap_or_default();
    let entry = state.node.find_process(&sandbox, &pid)?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok(sse_response(
        &state,
        entry,
        q.since.or(last_event_id).unwrap_or(0),
        None,
    ))
}

/// `POST /execute/stream`: start a process (recorded like a background one) and follow it.
pub async fn run_and_follow(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<BackgroundExecuteRequest>,
) -> ApiResult<Response> {
    let entry = start_recorded(&state, &sandbox, req, defaults::STREAM_TIMEOUT_SECS)?;
    let start = sse_event(
        Some(0),
        "start",
        &json!({
            "type": "start",
            "process_id": entry.id,
            "execution_id": entry.execution_id,
            "name": entry.name,
            "timeout": entry.timeout_secs,
            "timestamp": now_rfc3339(),
        }),
    );
    Ok(sse_response(&state, entry, 0, Some(start)))
}

fn sse_event(id: Option<u64>, event: &str, data: &Value) -> Bytes {
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    Bytes::from(out)
}

fn output_json(e: &OutputEvent) -> Value {
    json!({ "type": e.stream.as_str(), "data": e.data, "timestamp": rfc3339_millis(e.at), "seq": e.seq })
}

fn gap_json(g: &Gap) -> Value {
    json!({
        "type": "truncated",
        "from_seq": g.from_seq,
        "to_seq": g.to_seq,
        "dropped_bytes": g.dropped_bytes,
        "message": format!("output events {}..={} were dropped to stay within the output cap", g.from_seq, g.to_seq),
    })
}

fn exit_json(entry: &ProcessEntry, seq: u64) -> Value {
    let info = entry.to_info();
    json!({
        "type": "exit",
        "status": info.status,
        "exit_code": info.exit_code,
        "execution_time": info.execution_time,
        "error": info.error,
        "timestamp": now_rfc3339(),
        "seq": seq,
    })
}

fn sse_response(
    state: &AppState,
    entry: Arc<ProcessEntry>,
    after: u64,
    preamble: Option<Bytes>,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let keepalive = Duration::from_secs(state.cfg.stream_keepalive_secs.max(1));
    tokio::spawn(async move {
        let _ = pump_sse(entry, after, preamble, keepalive, tx).await;
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|chunk| chunk.map(Ok::<_, Infallible>))
    }));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

/// Writes events until the process has ended and its exit event is out, or the client left.
async fn pump_sse(
    entry: Arc<ProcessEntry>,
    after: u64,
    preamble: Option<Bytes>,
    keepalive: Duration,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), mpsc::error::SendError<Bytes>> {
    tx.send(Bytes::from_static(b"retry: 1000\n\n")).await?;
    if let Some(p) = preamble {
        tx.send(p).await?;
    }
    let mut follower = Follower::new(entry.clone(), after, keepalive);
    while let Some(item) = follower.next().await {
        let chunk = match item {
            Followed::Gap(gap) => sse_event(Some(gap.to_seq), "truncated", &gap_json(&gap)),
            Followed::Output(e) => sse_event(Some(e.seq), e.stream.as_str(), &output_json(&e)),
            Followed::Exit(seq) => sse_event(Some(seq), "exit", &exit_json(&entry, seq)),
            Followed::Idle => Bytes::from_static(b": keepalive\n\n"),
        };
        tx.send(chunk).await?;
    }
    Ok(())
}

/// First frame of HopX's WebSocket stream.
#[derive(Debug, Deserialize)]
struct WsExecute {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    language: Option<String>,
    timeout: Option<u64>,
    workdir: Option<String>,
    working_dir: Option<String>,
    env: Option<std::collections::BTreeMap<String, String>>,
}

/// `WS /execute/stream` (reference §4.6): one `execute` frame in; `stdout`, `stderr`,
/// `result` or `error`, and always a final `complete` out.
pub async fn websocket(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| ws_session(state, sandbox, socket))
}

/// The same WebSocket at the server's root, for clients that drop `public_host`'s path.
pub async fn websocket_by_token(
    State(state): State<AppState>,
    TokenSandbox(sandbox): TokenSandbox,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| ws_session(state, sandbox, socket))
}

async fn ws_session(state: AppState, sandbox: Arc<crate::sandbox::Sandbox>, mut socket: WebSocket) {
    let request = match tokio::time::timeout(Duration::from_secs(30), socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => {
            serde_json::from_str::<WsExecute>(&text).map_err(|e| {
                ApiError::bad_request(code::INVALID_JSON, format!("invalid execute frame: {e}"))
            })
        }
        Ok(Some(Ok(_))) => Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            "expected a JSON text frame",
        )),
        _ => return,
    };
    let started = request.and_then(|r| {
        if r.kind.as_deref().is_some_and(|k| k != "execute") {
            return Err(ApiError::bad_request(
                code::INVALID_REQUEST,
                "the first frame must have type \"execute\"",
            ));
        }
        let run = run_request(
            r.code,
            r.language,
            r.timeout,
            r.workdir.or(r.working_dir),
            r.env,
            None,
        )?;
        Ok(state
            .node
            .start_process(&sandbox, run, defaults::STREAM_TIMEOUT_SECS, false)?)
    });
    let entry = match started {
        Ok(entry) => entry,
        Err(e) => {
            let _ = send_json(&mut socket, json!({"type": "error", "error": e.message, "code": e.code, "timestamp": now_rfc3339()})).await;
            let _ = send_json(&mut socket, json!({"type": "complete", "success": false})).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let keepalive = Duration::from_secs(state.cfg.stream_keepalive_secs.max(1));
    if forward_ws(&entry, &mut socket, keepalive).await.is_err() {
        // The client left: nobody follows this run any more.
        entry.request_stop(StopReason::Killed);
        return;
    }
    let _ = socket.send(Message::Close(None)).await;
}

async fn send_json(socket: &mut WebSocket, value: Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(value.to_string().into())).await
}

async fn forward_ws(
    entry: &Arc<ProcessEntry>,
    socket: &mut WebSocket,
    keepalive: Duration,
) -> Result<(), axum::Error> {
    let mut follower = Follower::new(entry.clone(), 0, keepalive);
    loop {
        let item = tokio::select! {
            item = follower.next() => item,
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return Err(axum::Error::new(std::io::Error::other("client closed the stream")));
                }
                _ => continue,
            },
        };
        match item {
            Some(Followed::Output(e)) => {
                let frame = json!({"type": e.stream.as_str(), "data": e.data, "timestamp": rfc3339_millis(e.at)});
                send_json(socket, frame).await?;
            }
            Some(Followed::Idle) => socket.send(Message::Ping(Bytes::new())).await?,
            // The WebSocket protocol has no truncation frame; the cap still bounds memory.
            Some(Followed::Gap(_)) => {}
            Some(Followed::Exit(_)) | None => break,
        }
    }
    let info = entry.to_info();
    if info.status == ProcessStatus::Timeout {
        let msg = format!("Execution timed out after {} s", entry.timeout_secs);
        let frame = json!({"type": "error", "error": msg, "code": "EXECUTION_TIMEOUT", "timestamp": now_rfc3339()});
        send_json(socket, frame).await?;
    }
    send_json(
        socket,
        json!({
            "type": "result",
            "exit_code": info.exit_code,
            "execution_time": info.execution_time,
            "timestamp": now_rfc3339(),
        }),
    )
    .await?;
    send_json(
        socket,
        json!({"type": "complete", "success": info.exit_code == Some(0)}),
    )
    .await
}
