//! Stopping the server: SIGTERM and SIGINT take the one shutdown path. Open SSE streams and
//! WebSocket sessions end, the sandboxes are killed, the store is flushed, and the server
//! exits 0 within 3 s without leaving any sandbox process behind.

mod common;

use std::time::{Duration, Instant};

use common::host_procs::{assert_nothing_left, descendants, HostProc};
use common::{Sandbox, Server, SseEvent, SseParser};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// How long the server may take from the signal to its exit.
const EXIT_WITHIN: Duration = Duration::from_secs(3);

/// A marker no other test's processes carry, to find this test's sandbox processes on the host.
fn marker() -> String {
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).unwrap();
    format!(
        "sandlot-shutdown-{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Bash code that prints `<label> <n>` ten times a second forever. `exec -a` puts the marker in
/// the looping shell's command line (the code itself reaches the sandbox through a memfd).
fn ticker(marker: &str, label: &str) -> String {
    format!(
        "exec -a {marker} bash -c 'i=0; while :; do echo \"{label} $i\"; i=$((i+1)); sleep 0.1; done'"
    )
}

// ---------------------------------------------------------------------------------------------
// Streams

/// What an SSE reader saw by the time its body ended.
#[derive(Debug, Default)]
struct SseOutcome {
    /// Event names in order (keepalive comments left out).
    events: Vec<String>,
    stdout: String,
    /// The `process_id` of a `start` event (POST /execute/stream).
    start_process_id: Option<String>,
    /// `None` when the body ended cleanly; otherwise the transport error that ended it.
    error: Option<String>,
}

/// Reads an SSE body to its end in a task; `flowing` fires at the first stdout event.
fn spawn_sse(mut resp: reqwest::Response, flowing: oneshot::Sender<()>) -> JoinHandle<SseOutcome> {
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    tokio::spawn(async move {
        let mut flowing = Some(flowing);
        let mut out = SseOutcome::default();
        let mut parser = SseParser::default();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return out,
                Err(e) => {
                    out.error = Some(e.to_string());
                    return out;
                }
            };
            for SseEvent { event, data, .. } in parser.push(&chunk) {
                if event == ":" {
                    continue;
                }
                match event.as_str() {
                    "start" => {
                        out.start_process_id = data["process_id"].as_str().map(str::to_string)
                    }
                    "stdout" => {
                        out.stdout.push_str(data["data"].as_str().unwrap_or(""));
                        if let Some(tx) = flowing.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
                out.events.push(event);
            }
        }
    })
}

/// `GET {agent}/execute/processes/{id}/stream` from the start.
async fn follow(sb: &Sandbox, process_id: &str) -> reqwest::Response {
    let resp = sb
        .http
        .get(format!(
            "{}/execute/processes/{process_id}/stream",
            sb.agent
        ))
        .header("Authorization", format!("Bearer {}", sb.token))
        .send()
        .await
        .expect("follow request reaches sandlotd");
    assert_eq!(resp.status(), 200, "following {process_id}");
    resp
}

/// `POST {agent}/execute/stream`.
async fn run_and_follow(sb: &Sandbox, body: Value) -> reqwest::Response {
    let resp = sb
        .http
        .post(format!("{}/execute/stream", sb.agent))
        .header("Authorization", format!("Bearer {}", sb.token))
        .json(&body)
        .send()
        .await
        .expect("POST /execute/stream reaches sandlotd");
    assert_eq!(resp.status(), 200, "POST /execute/stream");
    resp
}

/// How a WebSocket session ended.
#[derive(Debug, PartialEq)]
enum WsEnd {
    /// The server sent a Close frame.
    CloseFrame,
    /// The connection ended without a Close frame.
    Eof,
    Error(String),
}

#[derive(Debug)]
struct WsOutcome {
    stdout: String,
    frame_types: Vec<String>,
    end: WsEnd,
}

/// Sends the execute frame, then reads the session to its end in a task; `flowing` fires at
/// the first stdout frame.
async fn spawn_ws(
    sb: &Sandbox,
    execute: Value,
    flowing: oneshot::Sender<()>,
) -> JoinHandle<WsOutcome> {
    let mut ws = sb.ws_connect().await;
    ws.send(Message::Text(execute.to_string().into()))
        .await
        .expect("send the execute frame");
    tokio::spawn(async move {
        let mut flowing = Some(flowing);
        let mut out = WsOutcome {
            stdout: String::new(),
            frame_types: Vec::new(),
            end: WsEnd::Eof,
        };
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    let kind = v["type"].as_str().unwrap_or("").to_string();
                    if kind == "stdout" {
                        out.stdout.push_str(v["data"].as_str().unwrap_or(""));
                        if let Some(tx) = flowing.take() {
                            let _ = tx.send(());
                        }
                    }
                    out.frame_types.push(kind);
                }
                Ok(Message::Close(_)) => {
                    out.end = WsEnd::CloseFrame;
                    return out;
                }
                Ok(_) => {}
                Err(e) => {
                    out.end = WsEnd::Error(e.to_string());
                    return out;
                }
            }
        }
        out
    })
}

/// Waits (at most 20 s) until every stream has delivered output.
async fn wait_flowing(flowing: Vec<(String, oneshot::Receiver<()>)>) {
    for (what, rx) in flowing {
        tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .unwrap_or_else(|_| panic!("{what}: no output within 20 s"))
            .unwrap_or_else(|_| panic!("{what}: the stream ended before any output"));
    }
}

/// Awaits a reader task that must finish soon after the server is gone.
async fn ended<T>(what: &str, handle: JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .unwrap_or_else(|_| panic!("{what} is still open 2 s after sandlotd exited"))
        .expect("reader task")
}

// ---------------------------------------------------------------------------------------------
// A busy server

/// A server with two sandboxes and output flowing on every kind of stream:
/// A runs two background tickers, each followed over SSE; B runs a ticker through
/// POST /execute/stream and another in a WebSocket session.
struct Busy {
    s: Server,
    a: Sandbox,
    b: Sandbox,
    marker: String,
    background: Vec<String>,
    sse: Vec<(String, JoinHandle<SseOutcome>)>,
    ws: JoinHandle<WsOutcome>,
}

async fn busy_server() -> Busy {
    let s = Server::start().await;
    let a = s.create("code-interpreter").await;
    let b = s.create("code-interpreter").await;
    let marker = marker();
    let mut flowing = Vec::new();
    let mut sse = Vec::new();
    let mut background = Vec::new();
    for i in 0..2 {
        let p = a
            .background(json!({
                "code": ticker(&marker, &format!("bg{i}")),
                "language": "bash",
                "name": format!("ticker-{i}"),
            }))
            .await;
        let id = p["process_id"].as_str().unwrap().to_string();
        let (tx, rx) = oneshot::channel();
        let what = format!("the SSE follow of background process {i}");
        sse.push((what.clone(), spawn_sse(follow(&a, &id).await, tx)));
        flowing.push((what, rx));
        background.push(id);
    }
    let (tx, rx) = oneshot::channel();
    let what = "POST /execute/stream".to_string();
    let resp = run_and_follow(
        &b,
        // Endless runs side by side: a context runs one cell at a time, so each asks for
        // its own process (`fresh`).
        json!({"code": ticker(&marker, "posted"), "language": "bash", "name": "posted", "fresh": true}),
    )
    .await;
    sse.push((what.clone(), spawn_sse(resp, tx)));
    flowing.push((what, rx));
    let (tx, rx) = oneshot::channel();
    let ws = spawn_ws(
        &b,
        json!({"type": "execute", "code": ticker(&marker, "ws"), "language": "bash", "fresh": true}),
        tx,
    )
    .await;
    flowing.push(("the WebSocket session".to_string(), rx));
    wait_flowing(flowing).await;
    Busy {
        s,
        a,
        b,
        marker,
        background,
        sse,
        ws,
    }
}

/// The server's process tree right before the signal, checked to hold what the test is about.
fn tree_before_signal(busy: &Busy) -> Vec<HostProc> {
    let tree = descendants(busy.s.pid() as i32);
    assert!(
        tree.iter().any(|p| p.cmdline.contains("__sandbox")),
        "the sandbox helpers are children of sandlotd: {tree:#?}"
    );
    let marked = tree
        .iter()
        .filter(|p| p.cmdline.contains(&busy.marker))
        .count();
    assert!(
        marked >= 4,
        "all four tickers run before the signal, saw {marked}: {tree:#?}"
    );
    tree
}

/// Sends `sig` and asserts a zero exit within [`EXIT_WITHIN`].
async fn stop_with(s: &mut Server, sig: i32, name: &str) {
    let t0 = Instant::now();
    s.signal(sig);
    let status = s.wait_exit(EXIT_WITHIN).await;
    let took = t0.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "sandlotd was still running {} s after {name} (killed with SIGKILL)",
            EXIT_WITHIN.as_secs()
        )
    });
    assert!(
        status.success(),
        "sandlotd exits 0 on {name}, got {status} after {took:?}"
    );
}

/// Every stream ended (after the server did) and had delivered output before the stop.
async fn streams_ended(
    sse: Vec<(String, JoinHandle<SseOutcome>)>,
    ws: JoinHandle<WsOutcome>,
) -> Vec<(String, SseOutcome)> {
    let mut outcomes = Vec::new();
    for (what, handle) in sse {
        let out = ended(&what, handle).await;
        assert!(
            !out.stdout.is_empty(),
            "{what} delivered output before the stop: {out:?}"
        );
        outcomes.push((what, out));
    }
    let ws = ended("the WebSocket session", ws).await;
    assert!(
        !ws.stdout.is_empty(),
        "the WebSocket session delivered output before the stop: {ws:?}"
    );
    outcomes
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn sigterm_with_open_sse_streams_and_a_websocket_exits_zero_within_3s_and_leaves_no_sandbox_process(
) {
    let mut busy = busy_server().await;
    let marker = busy.marker.clone();
    let tree = tree_before_signal(&busy);

    stop_with(&mut busy.s, libc::SIGTERM, "SIGTERM").await;
    assert_nothing_left(&tree, &marker, "SIGTERM").await;
    let Busy {
        mut s,
        a,
        b,
        background,
        sse,
        ws,
        ..
    } = busy;
    let sse = streams_ended(sse, ws).await;

    // The store was flushed: after a restart every recorded process is there, final, with
    // everything its stream delivered before the stop.
    let (_, posted) = sse
        .iter()
        .find(|(what, _)| what.starts_with("POST"))
        .expect("the POST /execute/stream reader");
    let posted_id = posted
        .start_process_id
        .clone()
        .expect("POST /execute/stream sent a start event with the process id");
    s.crash_and_restart().await; // the server is already gone: this only starts it again
    let a = Sandbox {
        agent: format!("{}/sandboxes/{}/agent", s.url, a.id),
        ..a
    };
    let b = Sandbox {
        agent: format!("{}/sandboxes/{}/agent", s.url, b.id),
        ..b
    };
    let mut records = Vec::new();
    for (i, id) in background.iter().enumerate() {
        records.push((
            a.process(id).await,
            sse[i].1.stdout.clone(),
            format!("bg{i} 0\n"),
        ));
    }
    records.push((
        b.process(&posted_id).await,
        posted.stdout.clone(),
        "posted 0\n".to_string(),
    ));
    for (rec, streamed, first_line) in records {
        assert!(
            matches!(rec["status"].as_str(), Some("killed") | Some("failed")),
            "a process stopped by the shutdown has a final status after the restart: {rec}"
        );
        let stored = rec["stdout"].as_str().unwrap_or("");
        assert!(
            stored.starts_with(&first_line) && stored.starts_with(&streamed),
            "the stored output holds everything streamed before the stop; streamed {streamed:?}, stored {stored:?}"
        );
    }
}

#[tokio::test]
async fn sigint_with_open_sse_streams_and_a_websocket_exits_zero_within_3s_and_leaves_no_sandbox_process(
) {
    let mut busy = busy_server().await;
    let marker = busy.marker.clone();
    let tree = tree_before_signal(&busy);

    stop_with(&mut busy.s, libc::SIGINT, "SIGINT").await;
    assert_nothing_left(&tree, &marker, "SIGINT").await;
    streams_ended(busy.sse, busy.ws).await;
}

#[tokio::test]
async fn open_streams_end_when_the_server_stops() {
    // Not merely cut when the process dies: the server ends each stream itself, so an SSE
    // body finishes without a transport error and a WebSocket gets a Close frame.
    let mut s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let marker = marker();
    let mut flowing = Vec::new();

    let p = sb
        .background(json!({"code": ticker(&marker, "bg"), "language": "bash"}))
        .await;
    let (tx, rx) = oneshot::channel();
    let followed = spawn_sse(follow(&sb, p["process_id"].as_str().unwrap()).await, tx);
    flowing.push(("the SSE follow".to_string(), rx));

    let (tx, rx) = oneshot::channel();
    let posted = spawn_sse(
        run_and_follow(
            &sb,
            json!({"code": ticker(&marker, "posted"), "language": "bash", "fresh": true}),
        )
        .await,
        tx,
    );
    flowing.push(("POST /execute/stream".to_string(), rx));

    let (tx, rx) = oneshot::channel();
    let ws = spawn_ws(
        &sb,
        json!({"type": "execute", "code": ticker(&marker, "ws"), "language": "bash", "fresh": true}),
        tx,
    )
    .await;
    flowing.push(("the WebSocket session".to_string(), rx));
    wait_flowing(flowing).await;

    stop_with(&mut s, libc::SIGTERM, "SIGTERM").await;

    for (what, handle) in [
        ("the SSE follow", followed),
        ("POST /execute/stream", posted),
    ] {
        let out = ended(what, handle).await;
        assert_eq!(
            out.error, None,
            "{what}: the server ends the body cleanly (terminating chunk) instead of dropping the connection; events seen: {:?}",
            out.events
        );
    }
    let ws = ended("the WebSocket session", ws).await;
    assert_eq!(
        ws.end,
        WsEnd::CloseFrame,
        "the server closes the WebSocket with a Close frame; frames seen: {:?}",
        ws.frame_types
    );
    assert_nothing_left(&[], &marker, "SIGTERM").await;
}
