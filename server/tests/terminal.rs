//! Interactive terminals against the real server: a shell on a real PTY in a real sandbox,
//! over HopX's WebSocket and over Sandlot's SSE + POST variant.

mod common;

use std::time::{Duration, Instant};

use common::{Sandbox, Server, SseParser};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A terminal session over the WebSocket, with everything it printed so far.
struct Ws {
    ws: common::WebSocket,
    output: String,
    exit: Option<Value>,
}

impl Ws {
    async fn open(sb: &Sandbox, query: &str) -> Self {
        let url = format!(
            "{}/terminal{query}",
            sb.agent.replacen("http://", "ws://", 1)
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", sb.token).parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("terminal websocket upgrade");
        Ws {
            ws,
            output: String::new(),
            exit: None,
        }
    }

    async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    async fn type_line(&mut self, line: &str) {
        self.send(json!({"type": "input", "data": format!("{line}\n")}))
            .await;
    }

    /// The next JSON frame (None once the socket closed).
    async fn frame(&mut self, within: Duration) -> Option<Value> {
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
    async fn wait_for(&mut self, needle: &str) {
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
    async fn wait_exit(&mut self) -> Value {
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

async fn open_http(sb: &Sandbox, body: Value) -> String {
    let (status, t) = sb.call(Method::POST, "/terminals", Some(body)).await;
    assert_eq!(status, 201, "open terminal: {t}");
    assert_eq!(t["status"], "running");
    t["terminal_id"].as_str().unwrap().to_string()
}

async fn type_http(sb: &Sandbox, id: &str, data: &str) -> (u16, Value) {
    sb.call(
        Method::POST,
        &format!("/terminals/{id}/input"),
        Some(json!({ "data": data })),
    )
    .await
}

/// Reads a terminal's SSE stream until `stop` says so (or it ends); returns the text, the
/// last event id and the exit event.
async fn read_sse(
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

#[tokio::test]
async fn a_websocket_terminal_runs_commands_on_a_pty_and_reports_the_exit_code() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let mut t = Ws::open(&sb, "?cols=100&rows=30").await;
    t.type_line("echo hi-$((40+2))").await;
    t.wait_for("hi-42").await;
    t.type_line("tty; echo tty-$((5+5))").await;
    t.wait_for("tty-10").await;
    assert!(
        t.output.contains("/dev/pts/"),
        "tty names a pts device: {:?}",
        t.output
    );
    assert!(!t.output.contains("not a tty"), "{:?}", t.output);
    t.type_line("stty size").await;
    t.wait_for("30 100").await;
    t.send(json!({"type": "resize", "cols": 120, "rows": 40}))
        .await;
    t.type_line("stty size").await;
    t.wait_for("40 120").await;
    t.type_line("exit 3").await;
    assert_eq!(t.wait_exit().await, 3);
    assert!(
        t.frame(Duration::from_secs(5)).await.is_none(),
        "the socket closes after the exit frame"
    );
}

#[tokio::test]
async fn the_shell_runs_as_the_sandbox_user_in_a_new_session_with_a_controlling_tty() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    let mut t = Ws::open(&sb, "").await;
    // Markers are computed by the shell, so the terminal's echo of the typed line never
    // matches them.
    t.type_line("echo uid=$(id -u) sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$ ctty=$(readlink /proc/$$/fd/0) shell=$SHELL term=$TERM; echo EN$((0))D").await;
    t.wait_for("EN0D").await;
    let line = t
        .output
        .split(['\r', '\n'])
        .find(|l| l.starts_with("uid="))
        .unwrap_or_else(|| panic!("no id line in {:?}", t.output))
        .to_string();
    let uid: u32 = line["uid=".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uid >= 100_000, "the shell is not root: {line}");
    assert!(line.contains("ctty=/dev/pts/"), "{line}");
    assert!(
        line.contains("shell=/bin/bash"),
        "bash is the default: {line}"
    );
    assert!(line.contains("term=xterm-256color"), "{line}");
    // `$$` is its own session leader: the sid equals the pid.
    let field = |name: &str| {
        line.split(' ')
            .find_map(|w| w.strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(field("sid="), field("pid="), "{line}");
    // The seccomp filter and no_new_privs apply as to every sandboxed process.
    t.type_line(
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/$$/status | tr -s '\\t ' ' '; echo EN$((1))D",
    )
    .await;
    t.wait_for("EN1D").await;
    assert!(t.output.contains("Seccomp: 2"), "{:?}", t.output);
    assert!(t.output.contains("NoNewPrivs: 1"), "{:?}", t.output);
}

#[tokio::test]
async fn the_sse_and_post_variant_types_resizes_and_resumes_with_last_event_id() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let id = open_http(&sb, json!({"cols": 90, "rows": 20})).await;
    let (status, reply) = type_http(&sb, &id, "echo one-$((1+1))\n").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["bytes"], 18);
    let (text, last, _) = read_sse(&sb, &id, None, |t| t.contains("one-2")).await;
    assert!(text.contains("one-2"), "{text:?}");

    // The next connection resumes after `last` exactly.
    type_http(&sb, &id, "stty size; echo two-$((2+2))\n").await;
    let (second, last, _) = read_sse(&sb, &id, Some(last), |t| t.contains("two-4")).await;
    assert!(!second.contains("one-2"), "nothing is repeated: {second:?}");
    assert!(second.contains("20 90"), "{second:?}");
    assert!(second.contains("two-4"), "{second:?}");

    // Output while nobody reads is kept for the next connection.
    let (status, _) = sb
        .call(
            Method::POST,
            &format!("/terminals/{id}/resize"),
            Some(json!({"cols": 132, "rows": 43})),
        )
        .await;
    assert_eq!(status, 200);
    type_http(&sb, &id, "stty size; tty; exit 3\n").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rest, _, exit) = read_sse(&sb, &id, Some(last), |_| false).await;
    assert!(!rest.contains("two-4"), "nothing is repeated: {rest:?}");
    assert!(rest.contains("43 132"), "{rest:?}");
    assert!(rest.contains("/dev/pts/"), "{rest:?}");
    let exit = exit.expect("an exit event ends the stream");
    assert_eq!(exit["code"], 3);

    // A full replay from the start has both halves, in order.
    let (all, _, exit) = read_sse(&sb, &id, None, |_| false).await;
    let (a, b) = (all.find("one-2").unwrap(), all.find("two-4").unwrap());
    assert!(a < b, "{all:?}");
    assert_eq!(exit.unwrap()["code"], 3);

    let (status, info) = sb
        .call(Method::GET, &format!("/terminals/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["status"], "exited");
    assert_eq!(info["exit_code"], 3);
}

#[tokio::test]
async fn input_to_an_exited_terminal_and_bad_requests_get_clear_errors() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    let id = open_http(&sb, json!({})).await;

    for (body, code) in [
        (json!({}), "MISSING_PARAMETER"),
        (json!({"data": "x", "encoding": "rot13"}), "INVALID_REQUEST"),
        (
            json!({"data": "!!", "encoding": "base64"}),
            "INVALID_REQUEST",
        ),
        (json!({"data": 5}), "INVALID_REQUEST"),
    ] {
        let (status, err) = sb
            .call(Method::POST, &format!("/terminals/{id}/input"), Some(body))
            .await;
        assert_eq!((status, err["code"].as_str()), (400, Some(code)), "{err}");
    }
    let (status, err) = sb
        .call(
            Method::POST,
            &format!("/terminals/{id}/resize"),
            Some(json!({"cols": 0, "rows": 10})),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    for body in [
        json!({"cols": 5000}),
        json!({"cwd": "relative"}),
        json!({"shell": "/bin/no-such-shell"}),
        json!({"cwd": "/workspace/no/such/dir"}),
        json!({"env": {"A=B": "x"}}),
    ] {
        let (status, err) = sb
            .call(Method::POST, "/terminals", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert!(err["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, err) = sb
        .call(
            Method::POST,
            "/terminals/term_nope/input",
            Some(json!({"data": "x"})),
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("TERMINAL_NOT_FOUND"))
    );

    // base64 input is typed byte for byte.
    let (status, _) = sb
        .call(
            Method::POST,
            &format!("/terminals/{id}/input"),
            Some(json!({"data": "ZXhpdCA3Cg==", "encoding": "base64"})), // "exit 7\n"
        )
        .await;
    assert_eq!(status, 200);
    let (_, _, exit) = read_sse(&sb, &id, None, |_| false).await;
    assert_eq!(exit.expect("exit event")["code"], 7);
    let (status, err) = type_http(&sb, &id, "echo too late\n").await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["code"], "TERMINAL_EXITED");
    assert!(
        err["error"].as_str().unwrap().contains("exit code 7"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_websocket_frames_get_an_error_frame_and_the_session_goes_on() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    let mut t = Ws::open(&sb, "").await;
    for bad in [
        "not json",
        r#"{"type":"paste","data":"x"}"#,
        r#"{"type":"input"}"#,
        r#"{"type":"resize","cols":0,"rows":0}"#,
        r#"{"type":"input","data":"x","encoding":"base64"}"#,
    ] {
        t.ws.send(Message::Text(bad.into())).await.unwrap();
        let frame = loop {
            let f = t.frame(Duration::from_secs(10)).await.expect("still open");
            if f["type"] == "error" {
                break f;
            }
        };
        assert!(
            frame["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{bad} -> {frame}"
        );
        assert!(frame["code"].as_str().is_some(), "{frame}");
    }
    // Binary frames are typed as they are.
    t.ws.send(Message::Binary(b"echo still-$((6*7))\n".to_vec().into()))
        .await
        .unwrap();
    t.wait_for("still-42").await;
    // Refused before the upgrade: HTTP errors with our body.
    let (status, err) = sb.call(Method::GET, "/terminal?cols=wide", None).await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = sb.call(Method::GET, "/terminal", None).await;
    assert_eq!(status, 400, "a plain GET is told the route is a WebSocket");
}

#[tokio::test]
async fn several_terminals_run_at_once_up_to_the_cap() {
    let s = Server::start_with(Some("test-key"), &["--max-terminals", "3"]).await;
    let sb = s.create("base").await;
    let mut sessions = Vec::new();
    for i in 0..3 {
        let mut t = Ws::open(&sb, "").await;
        t.type_line(&format!("export N={i}")).await;
        sessions.push(t);
    }
    let (status, err) = sb.call(Method::POST, "/terminals", Some(json!({}))).await;
    assert_eq!(status, 429, "{err}");
    assert_eq!(err["code"], "RESOURCE_LIMIT_ERROR");
    for (i, t) in sessions.iter_mut().enumerate() {
        t.type_line("echo mine-$N").await;
        t.wait_for(&format!("mine-{i}")).await;
    }
    let (_, list) = sb.call(Method::GET, "/terminals", None).await;
    assert_eq!(list["count"], 3, "{list}");
    // Closing a socket kills the terminal it opened, which frees its slot.
    drop(sessions.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = sb.call(Method::POST, "/terminals", Some(json!({}))).await;
        if status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Host pids of the sandbox's terminal shells (by their cgroup or command line).
fn pids_in_terminal_cgroups(sandbox_id: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            if cg.contains(&format!("{sandbox_id}/term_")) && common::pid_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

#[tokio::test]
async fn killing_the_sandbox_ends_its_terminals_and_leaves_no_process_on_the_host() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    let mut ws = Ws::open(&sb, "").await;
    let http_id = open_http(&sb, json!({})).await;
    // A background job in the terminal too: it must not survive either.
    ws.type_line("sleep 1000 & echo shell-pid=$$").await;
    ws.wait_for("shell-pid=").await;
    type_http(&sb, &http_id, "sleep 999 &\n").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = loop {
        let pids = pids_in_terminal_cgroups(&sb.id);
        let sleeps = pids
            .iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"))
            })
            .count();
        if sleeps == 2 {
            break pids;
        }
        assert!(
            Instant::now() < deadline,
            "expected two sleeps in terminal cgroups: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(before.len() >= 4, "two shells and two sleeps: {before:?}");

    let (status, _) = s
        .cp(Method::DELETE, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    assert_eq!(status, 200);
    let code = ws.wait_exit().await;
    assert!(code.as_i64().is_some_and(|c| c != 0), "killed: {code}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(alive) = before.iter().find(|p| common::pid_alive(**p)) {
        assert!(
            Instant::now() < deadline,
            "pid {alive} of a terminal outlived its sandbox"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        pids_in_terminal_cgroups(&sb.id).is_empty(),
        "nothing is left in the sandbox's terminal cgroups"
    );
}

#[tokio::test]
async fn a_terminal_killed_by_delete_reports_its_exit_and_takes_its_jobs_with_it() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    let id = open_http(&sb, json!({"cwd": "/tmp", "env": {"GREETING": "hey"}})).await;
    type_http(&sb, &id, "echo $GREETING from $(pwd); sleep 500 &\n").await;
    let (text, _, _) = read_sse(&sb, &id, None, |t| t.contains("hey from /tmp")).await;
    assert!(text.contains("hey from /tmp"), "{text:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids_in_terminal_cgroups(&sb.id).len() < 2 {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pids = pids_in_terminal_cgroups(&sb.id);
    let (status, info) = sb
        .call(Method::DELETE, &format!("/terminals/{id}"), None)
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["status"], "exited");
    assert!(info["exit_code"].as_i64().is_some(), "{info}");
    for p in pids {
        assert!(!common::pid_alive(p), "pid {p} outlived its terminal");
    }
    // The sandbox itself carries on.
    assert_eq!(sb.run("bash", "echo fine").await["stdout"], "fine\n");
}

#[tokio::test]
async fn a_terminal_without_any_client_is_killed_after_the_detach_limit() {
    // An SSE client that went away is noticed at the next keepalive write.
    let s = Server::start_with(
        Some("test-key"),
        &[
            "--terminal-detach-secs",
            "2",
            "--stream-keepalive-secs",
            "1",
        ],
    )
    .await;
    let sb = s.create("base").await;
    let id = open_http(&sb, json!({})).await;
    // Attached: it lives past the limit.
    let reader = {
        let sb = sb.clone();
        let id = id.clone();
        tokio::spawn(async move { read_sse(&sb, &id, None, |_| false).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, info) = sb
        .call(Method::GET, &format!("/terminals/{id}"), None)
        .await;
    assert_eq!(info["status"], "running", "{info}");
    assert_eq!(info["attached"], 1, "{info}");
    reader.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, info) = sb
            .call(Method::GET, &format!("/terminals/{id}"), None)
            .await;
        if info["status"] == "exited" {
            break;
        }
        assert!(Instant::now() < deadline, "never killed: {info}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn server_shutdown_ends_terminals_with_an_exit_frame() {
    let mut s = Server::start().await;
    let sb = s.create("base").await;
    let mut t = Ws::open(&sb, "").await;
    t.type_line("echo rea$((0))dy").await;
    t.wait_for("rea0dy").await;
    let pids = pids_in_terminal_cgroups(&sb.id);
    assert!(!pids.is_empty());
    s.signal(libc::SIGTERM);
    let code = t.wait_exit().await;
    assert!(code.as_i64().is_some(), "{code}");
    assert!(s.wait_exit(Duration::from_secs(10)).await.is_some());
    for p in pids {
        assert!(!common::pid_alive(p), "pid {p} outlived the server");
    }
}
