//! Live output over SSE and WebSocket: completeness, order, resume, keepalive, truncation.

mod common;

use std::time::Duration;

use common::{Sandbox, Server, SseEvent, SseParser};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Reads an SSE response, calling `on_event` for each event until it returns false or the
/// stream ends.
async fn read_sse(mut resp: reqwest::Response, mut on_event: impl FnMut(&SseEvent) -> bool) {
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut parser = SseParser::default();
    while let Some(chunk) = resp.chunk().await.expect("stream reads") {
        for ev in parser.push(&chunk) {
            if !on_event(&ev) {
                return;
            }
        }
    }
}

async fn follow(sb: &Sandbox, process_id: &str, last_event_id: Option<u64>) -> reqwest::Response {
    let mut rb = sb
        .http
        .get(format!(
            "{}/execute/processes/{process_id}/stream",
            sb.agent
        ))
        .header("Authorization", format!("Bearer {}", sb.token));
    if let Some(id) = last_event_id {
        rb = rb.header("Last-Event-ID", id.to_string());
    }
    let resp = rb.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp
}

fn numbered_lines(n: usize) -> String {
    (0..n).map(|i| format!("line {i}\n")).collect()
}

#[tokio::test]
async fn sse_delivers_10000_lines_complete_in_order_with_streams_apart() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let p = sb
        .background(json!({"code": "import sys\nfor i in range(10000):\n    print(f'line {i}')\n    if i % 1000 == 0: print(f'err {i}', file=sys.stderr)"}))
        .await;
    let (mut out, mut err, mut last_seq, mut exit) = (String::new(), String::new(), 0, None);
    read_sse(
        follow(&sb, p["process_id"].as_str().unwrap(), None).await,
        |e| {
            if let Some(id) = e.id {
                assert!(id > last_seq, "ids increase: {id} after {last_seq}");
                last_seq = id;
            }
            match e.event.as_str() {
                "stdout" => out.push_str(e.data["data"].as_str().unwrap()),
                "stderr" => err.push_str(e.data["data"].as_str().unwrap()),
                "exit" => exit = Some(e.data.clone()),
                "truncated" => panic!("nothing should be dropped"),
                _ => {}
            }
            e.event != "exit"
        },
    )
    .await;
    assert_eq!(out, numbered_lines(10000));
    assert_eq!(
        err,
        (0..10)
            .map(|i| format!("err {}\n", i * 1000))
            .collect::<String>()
    );
    let exit = exit.expect("an exit event ends the stream");
    assert_eq!(exit["status"], "completed");
    assert_eq!(exit["exit_code"], 0);
}

#[tokio::test]
async fn reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let p = sb
        .background(json!({"code": "import time\nfor i in range(300):\n    print(f'line {i}')\n    time.sleep(0.004)"}))
        .await;
    let id = p["process_id"].as_str().unwrap().to_string();
    let mut out = String::new();
    let mut last = 0;
    // Three short connections, each dropped after a few events, then one to the end.
    for round in 0..4 {
        let resp = follow(&sb, &id, (round > 0).then_some(last)).await;
        let mut seen = 0;
        let mut ended = false;
        read_sse(resp, |e| {
            if let Some(i) = e.id {
                last = i;
            }
            if e.event == "stdout" {
                out.push_str(e.data["data"].as_str().unwrap());
                seen += 1;
            }
            ended = e.event == "exit";
            round == 3 || seen < 3
        })
        .await;
        if ended {
            break;
        }
    }
    assert_eq!(out, numbered_lines(300));
    // `?since=` works like the header: after the last id there is nothing but the end.
    let (_, tail) = {
        let resp = sb
            .http
            .get(format!(
                "{}/execute/processes/{id}/stream?since={}",
                sb.agent, last
            ))
            .header("Authorization", format!("Bearer {}", sb.token))
            .send()
            .await
            .unwrap();
        let mut events = Vec::new();
        read_sse(resp, |e| {
            events.push(e.event.clone());
            true
        })
        .await;
        ((), events)
    };
    assert!(
        tail.iter().all(|e| e == ":"),
        "nothing repeats after the final id: {tail:?}"
    );
}

#[tokio::test]
async fn a_late_subscriber_gets_the_output_from_the_start() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let p = sb
        .background(json!({"code": "print('early'); print('bird')"}))
        .await;
    let id = p["process_id"].as_str().unwrap();
    sb.wait_final(id, 10).await;
    let mut events = Vec::new();
    read_sse(follow(&sb, id, None).await, |e| {
        events.push((e.event.clone(), e.data.clone()));
        true
    })
    .await;
    let out: String = events
        .iter()
        .filter(|(k, _)| k == "stdout")
        .map(|(_, d)| d["data"].as_str().unwrap())
        .collect();
    assert_eq!(out, "early\nbird\n");
    assert_eq!(events.last().unwrap().0, "exit");
}

#[tokio::test]
async fn quiet_streams_get_keepalives() {
    let s = Server::start_with(Some("test-key"), &["--stream-keepalive-secs", "1"]).await;
    let sb = s.create("code-interpreter").await;
    let p = sb
        .background(json!({"code": "import time; time.sleep(2.5); print('late')"}))
        .await;
    let mut keepalives = 0;
    let mut got_output = false;
    read_sse(
        follow(&sb, p["process_id"].as_str().unwrap(), None).await,
        |e| {
            if e.event == ":" {
                keepalives += 1;
            }
            if e.event == "stdout" {
                got_output = true;
            }
            e.event != "exit"
        },
    )
    .await;
    assert!(
        keepalives >= 2,
        "keepalives during 2.5 s of silence: {keepalives}"
    );
    assert!(got_output);
}

#[tokio::test]
async fn truncation_is_announced_in_the_stream() {
    let s = Server::start_with(Some("test-key"), &["--output-cap-bytes", "16384"]).await;
    let sb = s.create("code-interpreter").await;
    let p = sb
        .background(json!({"code": "for i in range(20000): print(f'line {i}')"}))
        .await;
    let id = p["process_id"].as_str().unwrap();
    sb.wait_final(id, 30).await;
    let mut out = String::new();
    let mut truncated = None;
    read_sse(follow(&sb, id, None).await, |e| {
        match e.event.as_str() {
            "stdout" => out.push_str(e.data["data"].as_str().unwrap()),
            "truncated" => truncated = Some(e.data.clone()),
            _ => {}
        }
        true
    })
    .await;
    let t = truncated.expect("a truncated event");
    assert!(t["dropped_bytes"].as_u64().unwrap() > 0);
    assert!(out.starts_with("line 0\n"));
    assert!(out.ends_with("line 19999\n"));
}

#[tokio::test]
async fn post_execute_stream_runs_and_streams_and_records_the_process() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let resp = sb
        .http
        .post(format!("{}/execute/stream", sb.agent))
        .header("Authorization", format!("Bearer {}", sb.token))
        .json(&json!({"code": "import sys; print('out'); print('err', file=sys.stderr); sys.exit(2)", "name": "streamed"}))
        .send()
        .await
        .unwrap();
    let mut events = Vec::new();
    read_sse(resp, |e| {
        events.push(e.clone());
        true
    })
    .await;
    assert_eq!(events[0].event, "start");
    let id = events[0].data["process_id"].as_str().unwrap().to_string();
    let out: String = events
        .iter()
        .filter(|e| e.event == "stdout")
        .map(|e| e.data["data"].as_str().unwrap())
        .collect();
    let err: String = events
        .iter()
        .filter(|e| e.event == "stderr")
        .map(|e| e.data["data"].as_str().unwrap())
        .collect();
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    let exit = events.last().unwrap();
    assert_eq!(
        (
            exit.event.as_str(),
            exit.data["status"].as_str(),
            exit.data["exit_code"].as_i64()
        ),
        ("exit", Some("failed"), Some(2))
    );
    let rec = sb.process(&id).await;
    assert_eq!(
        (rec["name"].as_str(), rec["status"].as_str()),
        (Some("streamed"), Some("failed"))
    );
}

async fn ws_frames(sb: &Sandbox, first: Value) -> Vec<Value> {
    let mut ws = sb.ws_connect().await;
    ws.send(Message::Text(first.to_string().into()))
        .await
        .unwrap();
    let mut frames = Vec::new();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(60), ws.next())
        .await
        .expect("frames keep coming")
    {
        match msg.unwrap() {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let done = v["type"] == "complete";
                frames.push(v);
                if done {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    frames
}

#[tokio::test]
async fn websocket_delivers_10000_lines_and_always_completes() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let frames = ws_frames(&sb, json!({"type": "execute", "code": "for i in range(10000): print(f'line {i}')", "language": "python"})).await;
    let out: String = frames
        .iter()
        .filter(|f| f["type"] == "stdout")
        .map(|f| f["data"].as_str().unwrap())
        .collect();
    assert_eq!(out, numbered_lines(10000));
    let n = frames.len();
    assert_eq!(frames[n - 2]["type"], "result");
    assert_eq!(frames[n - 2]["exit_code"], 0);
    assert_eq!(frames[n - 1], json!({"type": "complete", "success": true}));

    let frames = ws_frames(
        &sb,
        json!({"type": "execute", "code": "x", "language": "cobol"}),
    )
    .await;
    assert_eq!(frames[0]["type"], "error");
    assert_eq!(frames[0]["code"], "INVALID_REQUEST");
    assert_eq!(
        frames.last().unwrap(),
        &json!({"type": "complete", "success": false})
    );

    let frames = ws_frames(
        &sb,
        json!({"type": "execute", "code": "import time; time.sleep(30)", "timeout": 1}),
    )
    .await;
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "error" && f["code"] == "EXECUTION_TIMEOUT"),
        "{frames:?}"
    );
    assert_eq!(frames.last().unwrap()["success"], false);
}

#[tokio::test]
async fn websocket_requires_the_sandbox_token() {
    let s = Server::start().await;
    let a = s.create("code-interpreter").await;
    let b = s.create("code-interpreter").await;
    let url = format!("{}/execute/stream", a.agent.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", b.token).parse().unwrap(),
    );
    assert!(
        tokio_tungstenite::connect_async(req).await.is_err(),
        "B's token does not open A's stream"
    );
}

#[tokio::test]
async fn websocket_at_the_root_finds_the_sandbox_from_its_token() {
    // HopX's Python SDK opens ws://host/execute/stream, dropping public_host's path.
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let url = format!("{}/execute/stream", s.url.replacen("http://", "ws://", 1));
    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", sb.token).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    ws.send(Message::Text(
        json!({"type": "execute", "code": "print('root')"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut out = String::new();
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "stdout" {
                out.push_str(v["data"].as_str().unwrap());
            }
            if v["type"] == "complete" {
                break;
            }
        }
    }
    assert_eq!(out, "root\n");
    let req = url.into_client_request().unwrap();
    assert!(
        tokio_tungstenite::connect_async(req).await.is_err(),
        "no token, no stream"
    );
}
