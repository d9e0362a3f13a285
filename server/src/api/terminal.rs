//! Terminal routes: HopX's `WS /terminal`, and Sandlot's fetch-friendly `/terminals`
//! (create, list, get, an SSE output stream, input, resize, kill) for clients without a
//! WebSocket (Node 20 has none). Both drive the same terminal object, so a terminal made by
//! `POST /terminals` can also be attached over the WebSocket (`?terminal_id=`).
//!
//! A terminal the WebSocket itself created belongs to that socket: closing the socket kills
//! it. Terminals made with `POST /terminals` outlive their streams and die after
//! `--terminal-detach-secs` without any attached client (`docs/protocol.md` §5).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures_util::StreamExt;
use sandlot_protocol::{
    code, CreateTerminalRequest, TerminalClientFrame, TerminalErrorFrame, TerminalEvent,
    TerminalExitEvent, TerminalExitFrame, TerminalInfo, TerminalInputReply, TerminalInputRequest,
    TerminalList, TerminalOutputEvent, TerminalOutputFrame, TerminalResize, TerminalServerFrame,
    TerminalTruncatedEvent,
};
use serde::Deserialize;

use super::auth::{AgentSandbox, TokenSandbox};
use super::body::{JsonBody, QueryParams};
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::node::{TerminalEvents, TerminalFollowed};

/// The largest WebSocket message a terminal takes (typed input is small; a paste is not
/// a file upload).
const MAX_WS_MESSAGE: usize = 1024 * 1024;
/// After shutdown starts, how long a stream may still deliver its terminal's exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn terminal_param(params: &std::collections::HashMap<String, String>) -> ApiResult<&str> {
    params
        .get("tid")
        .map(String::as_str)
        .ok_or_else(|| ApiError::missing("terminal_id"))
}

/// `POST /terminals`: start a shell on a new PTY.
pub async fn create(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    JsonBody(req): JsonBody<CreateTerminalRequest>,
) -> ApiResult<(StatusCode, Json<TerminalInfo>)> {
    let info = state.node.open_terminal(&sandbox.id, req).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// `GET /terminals`
pub async fn list(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
) -> ApiResult<Json<TerminalList>> {
    let terminals = state.node.terminals(&sandbox.id)?;
    Ok(Json(TerminalList {
        count: terminals.len(),
        terminals,
    }))
}

/// `GET /terminals/{tid}`
pub async fn get(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<TerminalInfo>> {
    Ok(Json(
        state.node.terminal(&sandbox.id, terminal_param(&params)?)?,
    ))
}

/// `DELETE /terminals/{tid}`: kill the shell and its session; answers once it has exited.
pub async fn kill(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
) -> ApiResult<Json<TerminalInfo>> {
    let id = terminal_param(&params)?;
    Ok(Json(state.node.kill_terminal(&sandbox.id, id).await?))
}

/// The bytes of an input request: text as it is, or base64.
fn input_bytes(req: TerminalInputRequest) -> ApiResult<Vec<u8>> {
    let data = req.data.ok_or_else(|| ApiError::missing("data"))?;
    match req.encoding.as_deref() {
        None | Some("utf8") | Some("utf-8") => Ok(data.into_bytes()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| {
                ApiError::bad_request(code::INVALID_REQUEST, format!("data is not base64: {e}"))
            }),
        Some(other) => Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("unknown encoding '{other}'; use utf8 or base64"),
        )),
    }
}

/// `POST /terminals/{tid}/input`: type into the terminal.
pub async fn input(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
    JsonBody(req): JsonBody<TerminalInputRequest>,
) -> ApiResult<Json<TerminalInputReply>> {
    let id = terminal_param(&params)?;
    let data = input_bytes(req)?;
    let bytes = data.len();
    state.node.terminal_input(&sandbox.id, id, data).await?;
    Ok(Json(TerminalInputReply {
        terminal_id: id.to_string(),
        bytes,
    }))
}

fn size_of(req: TerminalResize) -> ApiResult<(u16, u16)> {
    Ok((
        req.cols.ok_or_else(|| ApiError::missing("cols"))?,
        req.rows.ok_or_else(|| ApiError::missing("rows"))?,
    ))
}

/// `POST /terminals/{tid}/resize`
pub async fn resize(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
    JsonBody(req): JsonBody<TerminalResize>,
) -> ApiResult<Json<TerminalInfo>> {
    let id = terminal_param(&params)?;
    let (cols, rows) = size_of(req)?;
    Ok(Json(state.node.resize_terminal(
        &sandbox.id,
        id,
        cols,
        rows,
    )?))
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    since: Option<u64>,
    /// `base64`: output `data` is base64 of the exact bytes; default text.
    encoding: Option<String>,
}

/// Whether output goes out as base64 (`?encoding=base64`) or text.
fn wants_base64(encoding: Option<&str>) -> ApiResult<bool> {
    match encoding {
        None | Some("utf8") | Some("utf-8") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("unknown encoding '{other}'; use utf8 or base64"),
        )),
    }
}

/// `GET /terminals/{tid}/stream`: the output as Server-Sent Events, resumable with
/// `Last-Event-ID` or `?since=`, ending with an `exit` event.
pub async fn stream(
    State(state): State<AppState>,
    AgentSandbox { sandbox, params }: AgentSandbox,
    QueryParams(q): QueryParams<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = terminal_param(&params)?;
    let base64 = wants_base64(q.encoding.as_deref())?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = q.since.or(last_event_id).unwrap_or(0);
    let events = state.node.follow_terminal(&sandbox.id, id, after)?;
    let chunks = events.map(move |item| match item {
        TerminalFollowed::Output { seq, data } => sse_event(
            seq,
            &TerminalEvent::Output(TerminalOutputEvent {
                data: encode(&data, base64),
                seq,
            }),
        ),
        TerminalFollowed::Gap { from_seq, to_seq } => sse_event(
            to_seq,
            &TerminalEvent::Truncated(TerminalTruncatedEvent { from_seq, to_seq }),
        ),
        TerminalFollowed::Exit { seq, code } => {
            sse_event(seq, &TerminalEvent::Exit(TerminalExitEvent { code, seq }))
        }
        TerminalFollowed::Idle => Bytes::from_static(b": keepalive\n\n"),
    });
    Ok(super::stream::sse_chunks(&state, chunks, SHUTDOWN_GRACE))
}

fn encode(data: &[u8], base64: bool) -> String {
    if base64 {
        base64::engine::general_purpose::STANDARD.encode(data)
    } else {
        String::from_utf8_lossy(data).into_owned()
    }
}

fn sse_event(id: u64, event: &TerminalEvent) -> Bytes {
    let data = serde_json::to_string(event).expect("terminal events serialise");
    Bytes::from(format!(
        "id: {id}\nevent: {}\ndata: {data}\n\n",
        event.kind()
    ))
}

/// What the WebSocket's query asks for: a new terminal (`cols`, `rows`, `cwd`, `shell`,
/// `env=NAME=value`, repeated), or an existing one (`terminal_id`, replayed after `since`).
#[derive(Debug, Default)]
struct WsOptions {
    open: CreateTerminalRequest,
    attach: Option<String>,
    since: u64,
}

fn ws_options(query: Option<&str>) -> ApiResult<WsOptions> {
    let bad = |msg: String| ApiError::bad_request(code::INVALID_REQUEST, msg);
    let number = |key: &str, value: &str| -> ApiResult<u16> {
        value
            .parse()
            .map_err(|_| bad(format!("{key} must be a number, not '{value}'")))
    };
    let mut opts = WsOptions::default();
    let mut env = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "cols" => opts.open.cols = Some(number("cols", &value)?),
            "rows" => opts.open.rows = Some(number("rows", &value)?),
            "cwd" => opts.open.cwd = Some(value.into_owned()),
            "shell" => opts.open.shell = Some(value.into_owned()),
            "env" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| bad(format!("env must be NAME=value, not '{value}'")))?;
                env.insert(k.to_string(), v.to_string());
            }
            "terminal_id" => opts.attach = Some(value.into_owned()),
            "since" => {
                opts.since = value
                    .parse()
                    .map_err(|_| bad(format!("since must be a number, not '{value}'")))?
            }
            _ => {} // unknown options are ignored, as on every query string here
        }
    }
    if !env.is_empty() {
        opts.open.env = Some(env);
    }
    Ok(opts)
}

/// `WS /terminal` (HopX §4.11).
pub async fn websocket(
    State(state): State<AppState>,
    AgentSandbox { sandbox, .. }: AgentSandbox,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    open_websocket(state, sandbox.id, query, ws).await
}

/// The same WebSocket at the server's root (HopX's Python SDK drops `public_host`'s path).
pub async fn websocket_by_token(
    State(state): State<AppState>,
    TokenSandbox(sandbox): TokenSandbox,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    open_websocket(state, sandbox.id, query, ws).await
}

/// Checks everything that can fail before the upgrade, so a refusal is an HTTP error with
/// our body: bad options, an unknown terminal, the cap, a shell that does not exist.
async fn open_websocket(
    state: AppState,
    sandbox_id: String,
    query: Option<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = ws.map_err(|e| {
        ApiError::bad_request(
            code::INVALID_REQUEST,
            format!("this route is a WebSocket: {}", e.body_text()),
        )
    })?;
    let opts = ws_options(query.as_deref())?;
    let (terminal_id, owned) = match opts.attach {
        Some(id) => (state.node.terminal(&sandbox_id, &id)?.terminal_id, false),
        None => (
            state
                .node
                .open_terminal(&sandbox_id, opts.open)
                .await?
                .terminal_id,
            true,
        ),
    };
    let events = match state
        .node
        .follow_terminal(&sandbox_id, &terminal_id, opts.since)
    {
        Ok(events) => events,
        Err(e) => {
            if owned {
                let _ = state.node.kill_terminal(&sandbox_id, &terminal_id).await;
            }
            return Err(e.into());
        }
    };
    // A terminal the socket opened dies with the session, and also if the upgrade never
    // completes (the closure is then dropped unrun).
    let owner = owned.then(|| KillOnDrop {
        state: state.clone(),
        sandbox_id: sandbox_id.clone(),
        terminal_id: terminal_id.clone(),
    });
    Ok(ws
        .max_message_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            let session = Session {
                state,
                sandbox_id,
                terminal_id,
            };
            session.run(socket, events).await;
            drop(owner);
        })
        .into_response())
}

/// Kills a terminal when dropped (the WebSocket that opened it has gone).
struct KillOnDrop {
    state: AppState,
    sandbox_id: String,
    terminal_id: String,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let (node, sandbox_id, terminal_id) = (
            self.state.node.clone(),
            std::mem::take(&mut self.sandbox_id),
            std::mem::take(&mut self.terminal_id),
        );
        tokio::spawn(async move {
            let _ = node.kill_terminal(&sandbox_id, &terminal_id).await;
        });
    }
}

struct Session {
    state: AppState,
    sandbox_id: String,
    terminal_id: String,
}

impl Session {
    async fn run(self, mut socket: WebSocket, events: TerminalEvents) {
        let _ = self.forward(&mut socket, events).await;
        let _ = socket.send(Message::Close(None)).await;
    }

    /// Output out and input in until the shell exits, the client leaves, or shutdown.
    async fn forward(
        &self,
        socket: &mut WebSocket,
        mut events: TerminalEvents,
    ) -> Result<(), axum::Error> {
        let shutdown = self.state.shutdown.clone();
        let grace = async move {
            shutdown.requested().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::pin!(grace);
        loop {
            tokio::select! {
                item = events.next() => match item {
                    Some(TerminalFollowed::Output { data, .. }) => {
                        let data = String::from_utf8_lossy(&data).into_owned();
                        send(socket, &TerminalServerFrame::Output(TerminalOutputFrame { data })).await?;
                    }
                    Some(TerminalFollowed::Exit { code, .. }) => {
                        return send(socket, &TerminalServerFrame::Exit(TerminalExitFrame { code })).await;
                    }
                    Some(TerminalFollowed::Idle) => socket.send(Message::Ping(Bytes::new())).await?,
                    // HopX has no frame for it; the reader went on from the oldest kept output.
                    Some(TerminalFollowed::Gap { .. }) => {}
                    None => return Ok(()),
                },
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        if let Err(e) = self.client_frame(&text).await {
                            send(socket, &error_frame(e)).await?;
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        if let Err(e) = self.type_in(bytes.to_vec()).await {
                            send(socket, &error_frame(e)).await?;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(()),
                },
                _ = &mut grace => return Ok(()),
            }
        }
    }

    async fn client_frame(&self, text: &str) -> ApiResult<()> {
        let frame: TerminalClientFrame = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(
                code::INVALID_JSON,
                format!(
                    "invalid terminal frame ({e}); send {{\"type\":\"input\",\"data\":...}} \
                     or {{\"type\":\"resize\",\"cols\":...,\"rows\":...}}"
                ),
            )
        })?;
        match frame {
            TerminalClientFrame::Input(req) => self.type_in(input_bytes(req)?).await,
            TerminalClientFrame::Resize(req) => {
                let (cols, rows) = size_of(req)?;
                self.state
                    .node
                    .resize_terminal(&self.sandbox_id, &self.terminal_id, cols, rows)?;
                Ok(())
            }
        }
    }

    async fn type_in(&self, data: Vec<u8>) -> ApiResult<()> {
        Ok(self
            .state
            .node
            .terminal_input(&self.sandbox_id, &self.terminal_id, data)
            .await?)
    }
}

fn error_frame(e: ApiError) -> TerminalServerFrame {
    TerminalServerFrame::Error(TerminalErrorFrame {
        error: e.message,
        code: e.code.into(),
    })
}

async fn send(socket: &mut WebSocket, frame: &TerminalServerFrame) -> Result<(), axum::Error> {
    let text = serde_json::to_string(frame).expect("frames serialise");
    socket.send(Message::Text(text.into())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_options_come_from_the_query() {
        let o = ws_options(Some(
            "cols=120&rows=40&cwd=%2Ftmp&env=A%3D1&env=B=x%3Dy&zz=1",
        ))
        .unwrap();
        assert_eq!((o.open.cols, o.open.rows), (Some(120), Some(40)));
        assert_eq!(o.open.cwd.as_deref(), Some("/tmp"));
        let env = o.open.env.unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x=y");
        assert!(ws_options(Some("cols=wide")).is_err());
        assert!(ws_options(Some("env=novalue")).is_err());
        let attach = ws_options(Some("terminal_id=term_x&since=7")).unwrap();
        assert_eq!(
            (attach.attach.as_deref(), attach.since),
            (Some("term_x"), 7)
        );
        assert!(ws_options(None).unwrap().attach.is_none());
    }
}
