//! Interactive terminals against the real server: a shell on a real PTY in a real sandbox,
//! over HopX's WebSocket and over Sandlot's SSE + POST variant.

mod common;

use std::time::{Duration, Instant};

use common::terminal::{open_http, read_sse, type_http, Ws};
use common::Server;
use futures_util::SinkExt;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

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
