//! Live output: Server-Sent Events that any `fetch` can read, and HopX's WebSocket stream.
//!
//! SSE events carry the output's sequence number as their id, so a client that reconnects
//! with `Last-Event-ID` (or `?since=`) resumes exactly after what it saw. A comment line goes
//! out after 15 s without data so proxies and idle timers keep long, quiet streams open.
//! Every stream ends when the server shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sandlot_protocol::{
    code, defaults, CodeRunRequest, ProcessStatus, ResultEvent, RichResult, StartEvent,
    StreamEvent, TruncatedEvent, WsComplete, WsError, WsExecuteFrame, WsOutput, WsResult,
    WsServerFrame,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::{AgentSandbox, TokenSandbox};
use super::body::{JsonBody, QueryParams};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::exec::events::{Gap, OutputEvent, Stream};
use crate::node::{Followed, ProcessEvents, SandboxInfo};
use crate::time::{now_rfc3339, rfc3339_millis};

#[derive(Debug, Deserialize)]
pub struct SinceQuery {
    since: Option<u64>,
}

/// `GET /execute/processes/{pid}/stream`: follow a process, replaying what was kept.
pub async fn follow_process(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
    QueryParams(q): QueryParams<SinceQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let pid = params.get("pid").map(String::as_str).unwrap_or_default();
    let after = resume_after(&q, &headers);
    let events = state.node.follow_process(&sandbox.id, pid, after)?;
    Ok(sse_response(&state, events, None))
}

/// The sequence number a stream resumes after: `?since=` wins over `Last-Event-ID`; a
/// header that is not a number is ignored (the fuzz targets call this too).
pub(super) fn resume_after(q: &SinceQuery, headers: &HeaderMap) -> u64 {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    q.since.or(last_event_id).unwrap_or(0)
}

/// `POST /execute/stream`: run code (in its context unless `fresh`; recorded like a
/// background process, so it can be listed, resumed and killed) and follow it. Results are
/// `result` events.
pub async fn run_and_follow(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<CodeRunRequest>,
) -> ApiResult<Response> {
    let (info, events) =
        state
            .node
            .start_code_followed(&sandbox.id, req, defaults::STREAM_TIMEOUT_SECS, true)?;
    let start = sse_event(
        Some(0),
        &StreamEvent::Start(StartEvent {
            process_id: info.process_id,
            execution_id: info.execution_id,
            name: info.name,
            timeout: info.timeout,
            timestamp: Some(now_rfc3339()),
        }),
    );
    Ok(sse_response(&state, events, Some(start)))
}

fn sse_event(id: Option<u64>, event: &StreamEvent) -> Bytes {
    let data = serde_json::to_string(event).expect("stream events serialise");
    let mut out = String::with_capacity(data.len() + 40);
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("event: {}\ndata: {data}\n\n", event.kind()));
    Bytes::from(out)
}

/// An output event as SSE: `stdout`/`stderr` ([`StreamEvent`]) or `result` ([`ResultEvent`]).
fn output_sse(e: OutputEvent) -> Bytes {
    let seq = e.seq;
    let out = sandlot_protocol::OutputEvent {
        data: e.data,
        seq: e.seq,
        timestamp: Some(rfc3339_millis(e.at)),
    };
    match e.stream {
        Stream::Stdout => sse_event(Some(seq), &StreamEvent::Stdout(out)),
        Stream::Stderr => sse_event(Some(seq), &StreamEvent::Stderr(out)),
        Stream::Result => {
            let event = ResultEvent {
                result: serde_json::from_str(&out.data).unwrap_or_default(),
                seq,
                timestamp: out.timestamp,
            };
            let data = serde_json::to_string(&event).expect("results serialise");
            Bytes::from(format!("id: {seq}\nevent: result\ndata: {data}\n\n"))
        }
    }
}

fn truncated_event(g: &Gap) -> StreamEvent {
    let why = if g.evicted {
        "are no longer kept (the process ended); its record has the output"
    } else {
        "were dropped to stay within the output cap"
    };
    StreamEvent::Truncated(TruncatedEvent {
        from_seq: g.from_seq,
        to_seq: g.to_seq,
        dropped_bytes: g.dropped_bytes,
        message: Some(format!("output events {}..={} {why}", g.from_seq, g.to_seq)),
    })
}

fn sse_response(state: &AppState, events: ProcessEvents, preamble: Option<Bytes>) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = pump_sse(events, preamble, tx) => {}
            // Dropping the sender ends the body, so the connection can close.
            _ = shutdown.requested() => {}
        }
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

/// An SSE response from ready-made event chunks (terminal streams). After shutdown starts,
/// the stream gets `grace` to deliver its last events (a terminal's exit), then ends.
pub(super) fn sse_chunks(
    state: &AppState,
    chunks: impl futures_util::Stream<Item = Bytes> + Send + 'static,
    grace: Duration,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let pump = async move {
            tokio::pin!(chunks);
            tx.send(Bytes::from_static(b"retry: 1000\n\n")).await?;
            while let Some(chunk) = chunks.next().await {
                tx.send(chunk).await?;
            }
            Ok::<_, mpsc::error::SendError<Bytes>>(())
        };
        tokio::select! {
            _ = pump => {}
            _ = async { shutdown.requested().await; tokio::time::sleep(grace).await } => {}
        }
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
    mut events: ProcessEvents,
    preamble: Option<Bytes>,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), mpsc::error::SendError<Bytes>> {
    tx.send(Bytes::from_static(b"retry: 1000\n\n")).await?;
    if let Some(p) = preamble {
        tx.send(p).await?;
    }
    while let Some(item) = events.next().await {
        let chunk = match item {
            Followed::Gap(gap) => sse_event(Some(gap.to_seq), &truncated_event(&gap)),
            Followed::Output(e) => output_sse(e),
            Followed::Exit(exit) => sse_event(Some(exit.seq), &StreamEvent::Exit(exit)),
            Followed::Idle => Bytes::from_static(b": keepalive\n\n"),
        };
        tx.send(chunk).await?;
    }
    Ok(())
}

/// `WS /execute/stream` (`docs/protocol.md` §6): one `execute` frame in; `stdout`, `stderr`,
/// `result` or `error`, and always a final `complete` out.
pub async fn websocket(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    Ok(upgrade(ws)?.on_upgrade(move |socket| ws_session(state, sandbox, socket)))
}

/// The same WebSocket at the server's root, for clients that drop `public_host`'s path.
pub async fn websocket_by_token(
    State(state): State<AppState>,
    TokenSandbox(sandbox): TokenSandbox,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    Ok(upgrade(ws)?.on_upgrade(move |socket| ws_session(state, sandbox, socket)))
}

/// A plain GET on a WebSocket route gets our error body, not axum's plain text.
fn upgrade(ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> ApiResult<WebSocketUpgrade> {
    ws.map_err(|e| {
        ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("this route is a WebSocket: {}", e.body_text()),
        )
    })
}

async fn ws_session(state: AppState, sandbox: SandboxInfo, mut socket: WebSocket) {
    let shutdown = state.shutdown.clone();
    tokio::select! {
        _ = ws_run(&state, &sandbox, &mut socket) => {}
        _ = shutdown.requested() => {
            let frame = WsServerFrame::Error(WsError {
                error: "the server is shutting down".into(),
                code: code::SERVICE_UNAVAILABLE.into(),
                timestamp: now_rfc3339(),
            });
            let _ = send(&mut socket, &frame).await;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

async fn ws_run(state: &AppState, sandbox: &SandboxInfo, socket: &mut WebSocket) {
    let request = match tokio::time::timeout(Duration::from_secs(30), socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => {
            serde_json::from_str::<WsExecuteFrame>(&text).map_err(|e| {
                ApiError::bad_request(code::INVALID_JSON, format!("invalid execute frame: {e}"))
            })
        }
        Ok(Some(Ok(_))) => Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            "expected a JSON text frame",
        )),
        _ => return,
    };
    let started = request.and_then(|frame| {
        if frame.kind.as_deref().is_some_and(|k| k != "execute") {
            return Err(ApiError::bad_request(
                code::INVALID_REQUEST,
                "the first frame must have type \"execute\"",
            ));
        }
        let req = CodeRunRequest {
            run: frame.run,
            context_id: frame.context_id,
            fresh: frame.fresh,
        };
        Ok(state.node.start_code_followed(
            &sandbox.id,
            req,
            defaults::STREAM_TIMEOUT_SECS,
            false,
        )?)
    });
    let (info, events) = match started {
        Ok(started) => started,
        Err(e) => {
            let error = WsServerFrame::Error(WsError {
                error: e.message,
                code: e.code.into(),
                timestamp: now_rfc3339(),
            });
            let _ = send(socket, &error).await;
            let _ = send(
                socket,
                &WsServerFrame::Complete(WsComplete { success: false }),
            )
            .await;
            return;
        }
    };
    // Leaving early drops `events`, which stops the run: nobody follows it any more.
    let _ = forward_ws(info.timeout.unwrap_or(0), events, socket).await;
}

async fn send(socket: &mut WebSocket, frame: &WsServerFrame) -> Result<(), axum::Error> {
    let text = serde_json::to_string(frame).expect("frames serialise");
    socket.send(Message::Text(text.into())).await
}

async fn forward_ws(
    timeout_secs: u64,
    mut events: ProcessEvents,
    socket: &mut WebSocket,
) -> Result<(), axum::Error> {
    let exit = loop {
        let item = tokio::select! {
            item = events.next() => item,
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return Err(axum::Error::new(std::io::Error::other("client closed the stream")));
                }
                _ => continue,
            },
        };
        match item {
            Some(Followed::Output(e)) if e.stream == Stream::Result => {
                // Jupyter's names: HopX's `result` frame is the run's end (exit code), so a
                // rich result is `execute_result` (the last expression) or `display_data`.
                let result: RichResult = serde_json::from_str(&e.data).unwrap_or_default();
                let kind = if result.is_main_result {
                    "execute_result"
                } else {
                    "display_data"
                };
                let mut frame = serde_json::to_value(&result).unwrap_or_default();
                frame["type"] = kind.into();
                frame["timestamp"] = rfc3339_millis(e.at).into();
                socket.send(Message::Text(frame.to_string().into())).await?;
            }
            Some(Followed::Output(e)) => {
                let out = WsOutput {
                    data: e.data,
                    timestamp: rfc3339_millis(e.at),
                };
                let frame = match e.stream {
                    Stream::Stderr => WsServerFrame::Stderr(out),
                    _ => WsServerFrame::Stdout(out),
                };
                send(socket, &frame).await?;
            }
            Some(Followed::Idle) => socket.send(Message::Ping(Bytes::new())).await?,
            // The WebSocket protocol has no truncation frame; the cap still bounds memory.
            Some(Followed::Gap(_)) => {}
            Some(Followed::Exit(exit)) => break Some(exit),
            None => break None,
        }
    };
    let Some(exit) = exit else {
        return Ok(());
    };
    if exit.status == ProcessStatus::Timeout {
        let frame = WsServerFrame::Error(WsError {
            error: format!("Execution timed out after {timeout_secs} s"),
            code: "EXECUTION_TIMEOUT".into(),
            timestamp: now_rfc3339(),
        });
        send(socket, &frame).await?;
    }
    let result = WsServerFrame::Result(WsResult {
        exit_code: exit.exit_code,
        execution_time: exit.execution_time,
        timestamp: now_rfc3339(),
    });
    send(socket, &result).await?;
    send(
        socket,
        &WsServerFrame::Complete(WsComplete {
            success: exit.exit_code == Some(0),
        }),
    )
    .await
}
