//! Helpers of the terminal tests (`terminal.rs`, `terminal_lifecycle.rs`): a session over
//! the WebSocket, and the SSE + POST variant's calls.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{Sandbox, SseParser};

/// A terminal session over the WebSocket, with everything it printed so far.
pub struct Ws {
    pub ws: super::WebSocket,
    pub output: String,
    pub exit: Option<Value>,
}

impl Ws {
    pub async fn open(sb: &Sandbox, query: &str) -> Self {
        let ws = sb.ws_connect_at(&format!("/terminal{query}")).await;
        Ws {
            ws,
            output: String::new(),
            exit: None,
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn type_line(&mut self, line: &str) {
        self.send(json!({"type": "input", "data": format!("{line}\n")}))
            .await;
    }

    /// The next JSON frame (None once the socket closed).
    pub async fn frame(&mut self, within: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(within, self.ws.next())
                .await
                .expect("a frame within the time")?;
            match msg.ok()? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("frames are JSON");
                    match v["type"].as_str() {
                        Some("output") => self.output.push_str(v["data"].as_str().unwrap()),
                        Some("exit") => self.exit = Some(v.clone()),
                        _ => {}
                    }
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Reads frames until the output contains `needle`; panics with what it saw otherwise.
    pub async fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.output.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "never saw {needle:?}; output was {:?}",
                self.output
            );
            if self.frame(left).await.is_none() {
                panic!(
                    "socket closed before {needle:?}; output was {:?}",
                    self.output
                );
            }
        }
    }

    /// Reads until the exit frame and returns its code.
    pub async fn wait_exit(&mut self) -> Value {
        while self.exit.is_none() {
            if self.frame(Duration::from_secs(15)).await.is_none() {
                break;
            }
        }
        self.exit
            .clone()
            .unwrap_or_else(|| panic!("no exit frame; output was {:?}", self.output))["code"]
            .clone()
    }
}

pub async fn open_http(sb: &Sandbox, body: Value) -> String {
    let (status, t) = sb.call(Method::POST, "/terminals", Some(body)).await;
    assert_eq!(status, 201, "open terminal: {t}");
    assert_eq!(t["status"], "running");
    t["terminal_id"].as_str().unwrap().to_string()
}

pub async fn type_http(sb: &Sandbox, id: &str, data: &str) -> (u16, Value) {
    sb.call(
        Method::POST,
        &format!("/terminals/{id}/input"),
        Some(json!({ "data": data })),
    )
    .await
}

/// Reads a terminal's SSE stream until `stop` says so (or it ends); returns the text, the
/// last event id and the exit event.
pub async fn read_sse(
    sb: &Sandbox,
    id: &str,
    last_event_id: Option<u64>,
    mut stop: impl FnMut(&str) -> bool,
) -> (String, u64, Option<Value>) {
    let mut rb = sb
        .http
        .get(format!("{}/terminals/{id}/stream", sb.agent))
        .header("Authorization", format!("Bearer {}", sb.token));
    if let Some(last) = last_event_id {
        rb = rb.header("Last-Event-ID", last.to_string());
    }
    let mut resp = rb.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (mut text, mut last, mut exit) = (String::new(), last_event_id.unwrap_or(0), None);
    let mut parser = SseParser::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    'read: loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(_) => break,
            Err(_) => panic!("the stream stalled; text so far {text:?}"),
        };
        for ev in parser.push(&chunk) {
            if let Some(i) = ev.id {
                assert!(i > last, "ids increase: {i} after {last}");
                last = i;
            }
            match ev.event.as_str() {
                "output" => text.push_str(ev.data["data"].as_str().unwrap()),
                "exit" => {
                    exit = Some(ev.data.clone());
                    break 'read;
                }
                _ => {}
            }
            if stop(&text) {
                break 'read;
            }
        }
    }
    (text, last, exit)
}
