//! Files API against the real server: every endpoint, text and binary round trips, list
//! fields, ownership, bad paths, and watches over WebSocket and SSE. Streamed transfers are
//! in `files_transfer.rs`, escapes and races in `files_security.rs`.

mod common;

use std::time::{Duration, Instant};

use common::files::{get, raw, write};
use common::{Server, SseParser};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn text_and_base64_round_trip_with_both_spellings_of_list_fields() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let w = write(
        &sb,
        json!({"path": "/workspace/notes/hello.txt", "content": "héllo\nworld"}),
    )
    .await;
    assert_eq!(
        (w["success"].as_bool(), w["size"].as_u64()),
        (Some(true), Some(12))
    );
    assert_eq!(w["path"], "/workspace/notes/hello.txt");
    assert!(w["message"].is_string() && w["timestamp"].is_string());
    let (status, r) = get(&sb, "/files/read", "/workspace/notes/hello.txt").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["content"].as_str(), r["size"].as_u64()),
        (Some("héllo\nworld"), Some(12))
    );

    let bytes: Vec<u8> = (0..=255u8).collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    write(
        &sb,
        json!({"path": "/workspace/bin.dat", "content": b64, "encoding": "base64", "mode": "0600"}),
    )
    .await;
    let (_, r) = sb
        .call(
            Method::GET,
            "/files/read?path=/workspace/bin.dat&encoding=base64",
            None,
        )
        .await;
    assert_eq!(
        (r["content"].as_str(), r["encoding"].as_str()),
        (Some(b64.as_str()), Some("base64"))
    );
    let (status, r) = get(&sb, "/files/read", "/workspace/bin.dat").await;
    assert_eq!(
        (status, r["code"].as_str()),
        (400, Some("FILE_NOT_TEXT")),
        "{r}"
    );
    let down = raw(&sb, Method::GET, "/files/download?path=/workspace/bin.dat")
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 200);
    assert_eq!(down.headers()["accept-ranges"], "bytes");
    assert_eq!(down.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let (status, list) = get(&sb, "/files/list", "/workspace").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        (list["path"].as_str(), list["count"].as_u64()),
        (Some("/workspace"), Some(2))
    );
    let files = list["files"].as_array().unwrap();
    let (bin, notes) = (&files[0], &files[1]);
    assert_eq!(
        (bin["name"].as_str(), bin["path"].as_str()),
        (Some("bin.dat"), Some("/workspace/bin.dat"))
    );
    assert_eq!(
        (
            bin["size"].as_u64(),
            bin["permissions"].as_str(),
            bin["mode"].as_str()
        ),
        (Some(256), Some("rw-------"), Some("0600"))
    );
    assert_eq!(
        (
            bin["is_dir"].as_bool(),
            bin["is_directory"].as_bool(),
            bin["is_file"].as_bool()
        ),
        (Some(false), Some(false), Some(true))
    );
    assert_eq!(
        (notes["is_dir"].as_bool(), notes["is_directory"].as_bool()),
        (Some(true), Some(true))
    );
    let modified = bin["modified_time"].as_str().unwrap();
    assert_eq!(bin["modified"], modified);
    assert!(
        modified.ends_with('Z') && modified.contains('T'),
        "RFC 3339 with an offset: {modified}"
    );
    let (_, list) = sb.call(Method::GET, "/files/list", None).await;
    assert_eq!(list["path"], "/workspace", "the default list path");

    let (_, e) = get(&sb, "/files/exists", "/workspace/notes").await;
    assert_eq!(e["exists"], true);
    let (_, e) = get(&sb, "/files/exists", "/workspace/nope").await;
    assert_eq!(e["exists"], false);
    // overwrite: false keeps what is there.
    let (status, r) = sb
        .call(
            Method::POST,
            "/files/write",
            Some(json!({"path": "/workspace/bin.dat", "content": "x", "overwrite": false})),
        )
        .await;
    assert_eq!(
        (status, r["code"].as_str()),
        (409, Some("FILE_ALREADY_EXISTS")),
        "{r}"
    );
    let (_, r) = sb
        .call(
            Method::GET,
            "/files/read?path=/workspace/bin.dat&encoding=base64",
            None,
        )
        .await;
    assert_eq!(r["size"], 256);
}

#[tokio::test]
async fn mkdir_makes_parents_remove_is_recursive_and_rename_moves() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let (status, r) = sb
        .call(
            Method::POST,
            "/files/mkdir",
            Some(json!({"path": "/workspace/a/b/c"})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (status, _) = sb
        .call(
            Method::POST,
            "/files/mkdir",
            Some(json!({"path": "/workspace/a/b/c"})),
        )
        .await;
    assert_eq!(status, 200, "an existing directory is fine");
    write(
        &sb,
        json!({"path": "/workspace/a/b/c/f.txt", "content": "deep"}),
    )
    .await;
    write(
        &sb,
        json!({"path": "/workspace/a/top.txt", "content": "top"}),
    )
    .await;

    let (status, r) = sb
        .call(
            Method::POST,
            "/files/rename",
            Some(json!({"from": "/workspace/a/b/c/f.txt", "to": "/workspace/moved/f2.txt"})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (_, r) = get(&sb, "/files/read", "/workspace/moved/f2.txt").await;
    assert_eq!(r["content"], "deep");
    let (status, r) = sb
        .call(
            Method::POST,
            "/files/rename",
            Some(
                json!({"old_path": "/workspace/a/top.txt", "new_path": "/workspace/moved/f2.txt"}),
            ),
        )
        .await;
    assert_eq!(
        (status, r["code"].as_str()),
        (409, Some("FILE_ALREADY_EXISTS")),
        "no silent replace: {r}"
    );
    let (status, _) = sb
        .call(Method::POST, "/files/rename", Some(json!({"old_path": "/workspace/a/top.txt", "new_path": "/workspace/moved/f2.txt", "overwrite": true})))
        .await;
    assert_eq!(status, 200);
    let (_, r) = get(&sb, "/files/read", "/workspace/moved/f2.txt").await;
    assert_eq!(r["content"], "top");
    let (status, r) = sb
        .call(
            Method::POST,
            "/files/rename",
            Some(json!({"from": "/workspace/none", "to": "/workspace/x"})),
        )
        .await;
    assert_eq!((status, r["code"].as_str()), (404, Some("FILE_NOT_FOUND")));

    let (status, r) = sb
        .call(Method::DELETE, "/files/remove?path=/workspace/a", None)
        .await;
    assert_eq!(status, 200, "{r}");
    let (_, e) = get(&sb, "/files/exists", "/workspace/a").await;
    assert_eq!(e["exists"], false);
    let (status, r) = sb
        .call(Method::DELETE, "/files/remove?path=/workspace/a", None)
        .await;
    assert_eq!((status, r["code"].as_str()), (404, Some("FILE_NOT_FOUND")));
    let (status, r) = sb
        .call(Method::DELETE, "/files/remove?path=/workspace", None)
        .await;
    assert_eq!(
        (status, r["code"].as_str()),
        (400, Some("INVALID_PATH")),
        "{r}"
    );
    let (_, e) = get(&sb, "/files/exists", "/workspace/moved/f2.txt").await;
    assert_eq!(
        e["exists"], true,
        "removing /workspace itself removed nothing"
    );
}

#[tokio::test]
async fn files_cross_between_code_and_api_and_belong_to_the_sandbox_user() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    sb.sh("echo from-code > /workspace/code.txt; echo in-tmp > /tmp/t.txt")
        .await;
    let (_, r) = get(&sb, "/files/read", "/workspace/code.txt").await;
    assert_eq!(r["content"], "from-code\n");
    let (_, r) = get(&sb, "/files/read", "/tmp/t.txt").await;
    assert_eq!(
        r["content"], "in-tmp\n",
        "the sandbox's own /tmp, not the host's"
    );
    assert!(
        !std::path::Path::new("/tmp/t.txt").exists()
            || std::fs::read_to_string("/tmp/t.txt").unwrap() != "in-tmp\n"
    );

    write(
        &sb,
        json!({"path": "/workspace/api/made.txt", "content": "from-api", "mode": "0640"}),
    )
    .await;
    write(&sb, json!({"path": "/tmp/api.txt", "content": "tmp-api"})).await;
    let out = sb
        .sh(
            "cat /workspace/api/made.txt; echo; cat /tmp/api.txt; echo; id -u; \
         stat -c '%u %g %a' /workspace/api/made.txt /workspace/api /tmp/api.txt",
        )
        .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["from-api", "tmp-api"], "{out}");
    let uid = lines[2];
    assert_ne!(uid, "0");
    assert_eq!(
        lines[3],
        format!("{uid} {uid} 640"),
        "file owned by the sandbox user: {out}"
    );
    assert_eq!(
        lines[4],
        format!("{uid} {uid} 755"),
        "parent dir too: {out}"
    );
    assert_eq!(lines[5], format!("{uid} {uid} 644"), "{out}");
}

#[tokio::test]
async fn bad_paths_get_clear_codes() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    write(&sb, json!({"path": "/workspace/f.txt", "content": "x"})).await;
    for (path, status, code) in [
        ("/etc/passwd", 403, "PATH_NOT_ALLOWED"),
        ("/workspace/../etc/passwd", 403, "PATH_NOT_ALLOWED"),
        ("workspace/f.txt", 403, "PATH_NOT_ALLOWED"),
        ("/proc/self/root/etc/passwd", 403, "PATH_NOT_ALLOWED"),
        ("/workspace/missing.txt", 404, "FILE_NOT_FOUND"),
        ("/workspace", 400, "IS_A_DIRECTORY"),
        ("/workspace/f.txt/x", 400, "NOT_A_DIRECTORY"),
    ] {
        let (got, r) = get(&sb, "/files/read", path).await;
        assert_eq!(
            (got, r["code"].as_str()),
            (status, Some(code)),
            "read {path}: {r}"
        );
        assert!(
            r["error"].is_string() && r["request_id"].is_string(),
            "agent error body: {r}"
        );
    }
    let (status, r) = get(&sb, "/files/list", "/workspace/f.txt").await;
    assert_eq!((status, r["code"].as_str()), (400, Some("NOT_A_DIRECTORY")));
    let (status, r) = sb.call(Method::GET, "/files/read", None).await;
    assert_eq!(
        (status, r["code"].as_str()),
        (400, Some("MISSING_PARAMETER"))
    );
    let (status, r) = sb
        .call(
            Method::POST,
            "/files/write",
            Some(json!({"path": "/workspace/f.txt/y", "content": "x"})),
        )
        .await;
    assert_eq!(
        (status, r["code"].as_str()),
        (400, Some("NOT_A_DIRECTORY")),
        "{r}"
    );
    let (status, r) = sb
        .call(
            Method::POST,
            "/files/write",
            Some(json!({"path": "/workspace", "content": "x"})),
        )
        .await;
    assert_eq!(status, 400, "{r}");
    let (status, r) = sb
        .call(
            Method::POST,
            "/files/write",
            Some(json!({"path": "/workspace/m", "content": "x", "mode": "4755"})),
        )
        .await;
    assert_eq!((status, r["code"].as_str()), (400, Some("INVALID_REQUEST")));
    let (status, r) = sb
        .call(
            Method::POST,
            "/files/write",
            Some(json!({"path": "/workspace/b", "content": "!!", "encoding": "base64"})),
        )
        .await;
    assert_eq!((status, r["code"].as_str()), (400, Some("INVALID_REQUEST")));
    let (_, r) = get(&sb, "/files/exists", "/workspace/f.txt/x").await;
    assert_eq!(r["exists"], false);
}

async fn next_change(ws: &mut common::WebSocket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a watch event within 10 s")
            .expect("the socket stays open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn watches_report_created_modified_and_deleted_over_websocket_and_sse() {
    use tokio_tungstenite::tungstenite::Message;
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let mut ws = sb.ws_connect_at("/files/watch").await;
    ws.send(Message::Text(
        json!({"action": "watch", "path": "/workspace"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    sb.sh("echo one > /workspace/w.txt").await;
    let e = next_change(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["event"].as_str(), e["path"].as_str()),
        (Some("change"), Some("created"), Some("/workspace/w.txt")),
        "{e}"
    );
    assert!(e["timestamp"].is_string());
    let e = next_change(&mut ws).await;
    assert_eq!(e["event"], "modified", "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    sb.sh("echo two >> /workspace/w.txt").await;
    assert_eq!(next_change(&mut ws).await["event"], "modified");
    sb.call(Method::DELETE, "/files/remove?path=/workspace/w.txt", None)
        .await;
    let e = next_change(&mut ws).await;
    assert_eq!(
        (e["event"].as_str(), e["path"].as_str()),
        (Some("deleted"), Some("/workspace/w.txt")),
        "{e}"
    );

    // SSE, recursive: a file in a new subdirectory is seen.
    let resp = raw(
        &sb,
        Method::GET,
        "/files/watch?path=/workspace&recursive=true",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut mkdir_done = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !events.iter().any(|e: &common::SseEvent| {
        e.data["path"] == "/workspace/sub/x.txt" && e.data["event"] == "created"
    }) {
        assert!(
            Instant::now() < deadline,
            "no created event for the new subdirectory's file: {events:?}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap_or_else(|_| panic!("no SSE data for 10 s; so far {events:?}"))
            .unwrap()
            .unwrap();
        events.extend(parser.push(&chunk));
        if !mkdir_done && events.iter().any(|e| e.event == "watching") {
            mkdir_done = true;
            sb.call(
                Method::POST,
                "/files/mkdir",
                Some(json!({"path": "/workspace/sub"})),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            write(&sb, json!({"path": "/workspace/sub/x.txt", "content": "x"})).await;
        }
    }
    assert!(events
        .iter()
        .any(|e| e.data["path"] == "/workspace/sub" && e.data["event"] == "created"));

    // Watches per sandbox are bounded.
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        let r = raw(&sb, Method::GET, "/files/watch?path=/tmp")
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            refused = Some(r.status().as_u16());
            break;
        }
        held.push(r);
    }
    assert_eq!(refused, Some(429), "a 17th watch is refused");

    // The sandbox dies: the WebSocket watch ends.
    s.cp(Method::DELETE, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Close(_)) {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch ends with its sandbox");
}
