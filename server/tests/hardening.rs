//! Inputs that must not hurt the server: numbers out of range, query strings that do not
//! parse, bodies too large for the client's patience, web pages against local mode, and
//! tokens after a rotation or a delete. Also the data dir's permissions.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{send, Server};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn sandbox_timeouts_out_of_range_get_a_clear_400_and_leak_no_slot() {
    let s = Server::start_with(Some("test-key"), &["--max-sandboxes", "2"]).await;
    let bad: [Value; 7] = [
        json!(u64::MAX),
        json!(i64::MAX),
        json!(10_u64.pow(12)),
        json!(0),
        json!(-1),
        json!(1.5),
        json!("60"),
    ];
    for timeout in &bad {
        let (status, body) = s
            .cp(
                Method::POST,
                "/v1/sandboxes",
                Some(json!({"template_name": "base", "timeout_seconds": timeout})),
            )
            .await;
        assert_eq!(status, 400, "timeout_seconds {timeout}: {body}");
        assert_eq!(body["code"], "INVALID_REQUEST", "timeout_seconds {timeout}");
    }
    // Both slots are still free: no failed create kept one.
    let a = s.create("base").await;
    let _b = s.create("base").await;
    for timeout in [json!(i64::MAX), json!(u64::MAX), json!(-5), json!(0)] {
        let (status, body) = s
            .cp(
                Method::PUT,
                &format!("/v1/sandboxes/{}/timeout", a.id),
                Some(json!({ "timeout_seconds": timeout })),
            )
            .await;
        assert_eq!(status, 400, "PUT timeout {timeout}: {body}");
    }
    let (status, body) = s
        .cp(
            Method::PUT,
            &format!("/v1/sandboxes/{}/timeout", a.id),
            Some(json!({ "timeout_seconds": 30 * 24 * 3600 })),
        )
        .await;
    assert_eq!(status, 200, "the largest allowed timeout: {body}");
    let (status, list) = s.cp(Method::GET, "/v1/sandboxes", None).await;
    assert_eq!(status, 200, "listing still works for everyone: {list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn run_timeouts_out_of_range_get_a_clear_400() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    for timeout in [json!(u64::MAX), json!(-1), json!(0), json!(2.5), json!("9")] {
        let (status, body) = sb
            .call(
                Method::POST,
                "/execute/background",
                Some(json!({"code": "true", "language": "bash", "timeout": timeout})),
            )
            .await;
        assert_eq!(status, 400, "timeout {timeout}: {body}");
    }
}

#[tokio::test]
async fn query_strings_that_do_not_parse_get_a_json_400() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    for path in ["/v1/sandboxes?limit=abc", "/v1/sandboxes?limit=-1"] {
        let (status, body) = s.cp(Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            body["code"], "INVALID_REQUEST",
            "{path} answers in JSON: {body}"
        );
    }
    let p = sb
        .background(json!({"code": "echo hi", "language": "bash"}))
        .await;
    let pid = p["process_id"].as_str().unwrap();
    for path in [
        format!("/execute/processes/{pid}/stream?since=x"),
        format!("/execute/processes/{pid}/stream?since=-3"),
        "/execute/processes?output=maybe".to_string(),
    ] {
        let (status, body) = sb.call(Method::GET, &path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            body["code"], "INVALID_REQUEST",
            "{path} answers in JSON: {body}"
        );
    }
}

/// Sends a whole request on a plain socket before reading anything, as Python's urllib does.
fn send_whole_then_read(url: &str, head: &str, body: &[u8]) -> String {
    let addr = url.trim_start_matches("http://");
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.write_all(head.as_bytes()).unwrap();
    sock.write_all(body)
        .expect("the server reads the whole body instead of closing on the client");
    let mut reply = String::new();
    let _ = sock.read_to_string(&mut reply);
    reply
}

#[tokio::test]
async fn an_oversized_body_sent_whole_before_reading_gets_its_413() {
    let s = Server::start().await;
    let body = vec![b' '; 3 * 1024 * 1024];
    let head = format!(
        "POST /v1/sandboxes HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: test-key\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let url = s.url.clone();
    let reply = tokio::task::spawn_blocking(move || send_whole_then_read(&url, &head, &body))
        .await
        .unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 413"),
        "got: {}",
        &reply[..reply.len().min(300)]
    );
    assert!(
        reply.contains("PAYLOAD_TOO_LARGE"),
        "a JSON error body: {reply}"
    );
    assert!(reply.to_ascii_lowercase().contains("connection: close"));
}

fn raw(s: &Server, method: Method, path: &str) -> reqwest::RequestBuilder {
    s.http.request(method, format!("{}{path}", s.url))
}

#[tokio::test]
async fn local_mode_refuses_foreign_hosts_foreign_origins_and_bodies_not_declared_json() {
    let s = Server::start_with(None, &[]).await;
    let create = json!({"template_name": "base"}).to_string();

    let (status, body) =
        send(raw(&s, Method::GET, "/v1/sandboxes").header("Host", "evil.example:7070")).await;
    assert_eq!(status, 403, "a rebinding page's Host: {body}");
    assert_eq!(body["code"], "FORBIDDEN");

    let (status, body) = send(
        raw(&s, Method::POST, "/v1/sandboxes")
            .header("Origin", "http://evil.example")
            .header("Content-Type", "application/json")
            .body(create.clone()),
    )
    .await;
    assert_eq!(status, 403, "a foreign page on the control plane: {body}");

    let (status, body) = send(
        raw(&s, Method::POST, "/v1/sandboxes")
            .header("Content-Type", "text/plain")
            .body(create.clone()),
    )
    .await;
    assert_eq!(status, 415, "a simple cross-site POST: {body}");
    assert_eq!(body["code"], "UNSUPPORTED_MEDIA_TYPE");

    let (status, body) = send(raw(&s, Method::POST, "/v1/sandboxes").body(create.clone())).await;
    assert_eq!(status, 415, "no content type at all: {body}");

    // What local tools send still works.
    let (status, body) = send(
        raw(&s, Method::POST, "/v1/sandboxes")
            .header("Host", "localhost")
            .header("Origin", "http://localhost:5173")
            .header("Content-Type", "application/json")
            .body(create),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    let (status, _) = send(raw(&s, Method::POST, &format!("/v1/sandboxes/{id}/pause"))).await;
    assert_eq!(status, 200, "a POST without a body needs no content type");
}

#[tokio::test]
async fn with_an_api_key_bodies_need_no_content_type() {
    let s = Server::start().await;
    let (status, body) = send(
        raw(&s, Method::POST, "/v1/sandboxes")
            .header("X-API-Key", "test-key")
            .body(json!({"template_name": "base"}).to_string()),
    )
    .await;
    assert_eq!(
        status, 201,
        "curl -d keeps working when a key guards the server: {body}"
    );
}

#[tokio::test]
async fn a_rotated_token_stops_working_after_its_grace_and_the_new_one_works() {
    let mut s = Server::start().await;
    let sb = s.create("base").await;
    let old = sb.token.clone();
    let http = s.http.clone();
    let url = format!("{}/health", sb.agent);
    let health = |token: String| {
        let (http, url) = (http.clone(), url.clone());
        async move { send(http.get(url).bearer_auth(token)).await }
    };

    // A plain refresh (what HopX SDKs do) leaves earlier tokens valid.
    let (status, plain) = s
        .cp(
            Method::POST,
            &format!("/v1/sandboxes/{}/token/refresh", sb.id),
            None,
        )
        .await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(
        health(old.clone()).await.0,
        200,
        "a plain refresh revokes nothing"
    );

    let (status, rotated) = s
        .cp(
            Method::POST,
            &format!("/v1/sandboxes/{}/token/refresh", sb.id),
            Some(json!({"rotate": true, "grace_seconds": 1})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["auth_token"].as_str().unwrap().to_string();
    assert_eq!(
        health(old.clone()).await.0,
        200,
        "within the grace the old token works"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = health(old.clone()).await;
    assert_eq!(
        status, 401,
        "after the grace the old token is refused: {body}"
    );
    assert_eq!(body["code"], "INVALID_TOKEN");
    let (status, _) = health(plain["auth_token"].as_str().unwrap().to_string()).await;
    assert_eq!(status, 401, "so is every token issued before the rotation");
    assert_eq!(health(new.clone()).await.0, 200, "the new token works");

    s.crash_and_restart().await;
    // The restarted server listens on a new port.
    let url = format!("{}/sandboxes/{}/agent/health", s.url, sb.id);
    let (status, _) = send(http.get(&url).bearer_auth(&old)).await;
    assert_eq!(status, 401, "a restart does not bring the old token back");
    assert_eq!(send(http.get(&url).bearer_auth(&new)).await.0, 200);

    let (status, body) = s
        .cp(
            Method::POST,
            &format!("/v1/sandboxes/{}/token/refresh", sb.id),
            Some(json!({"rotate": true, "grace_seconds": 100_000})),
        )
        .await;
    assert_eq!(status, 400, "the grace is bounded: {body}");
}

#[tokio::test]
async fn deleting_a_sandbox_makes_its_tokens_fail_at_once() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    assert_eq!(sb.call(Method::GET, "/health", None).await.0, 200);
    let (status, _) = s
        .cp(Method::DELETE, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = sb.call(Method::GET, "/health", None).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "true", "language": "bash"})),
        )
        .await;
    assert_eq!(status, 404, "the token runs nothing any more");
}

#[tokio::test]
async fn the_data_dir_and_the_store_are_root_only() {
    let s = Server::start().await;
    let _ = s.create("base").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.data_dir), 0o700, "data dir");
    for name in ["sandlot.db", "sandlot.db-wal", "token.key"] {
        let path = s.data_dir.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
    assert_eq!(mode(&s.data_dir.join("sandlot.db")), 0o600);
}

#[tokio::test]
async fn the_api_key_can_come_from_a_file_so_it_stays_off_the_command_line() {
    let dir = std::env::temp_dir().join(format!("sandlot-keyfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key");
    std::fs::write(&file, "file-key-123\n").unwrap();
    let s = Server::start_with(None, &["--api-key-file", file.to_str().unwrap()]).await;
    let body = json!({"template_name": "base"}).to_string();
    let post = |key: Option<&str>| {
        let mut rb = raw(&s, Method::POST, "/v1/sandboxes")
            .header("Content-Type", "application/json")
            .body(body.clone());
        if let Some(k) = key {
            rb = rb.header("X-API-Key", k);
        }
        send(rb)
    };
    assert_eq!(post(None).await.0, 401, "the file's key is required");
    assert_eq!(post(Some("wrong")).await.0, 401);
    assert_eq!(post(Some("file-key-123")).await.0, 201);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.pid())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("file-key-123"),
        "the key is not on sandlotd's command line"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_environment_too_large_to_exec_is_refused_up_front() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    let (status, body) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "true", "language": "bash", "env": {"BIG": "x".repeat(200_000)}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s
        .cp(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({"template_name": "base", "env_vars": {"BIG": "x".repeat(200_000)}})),
        )
        .await;
    assert_eq!(status, 400, "sandbox env too: {body}");
    let env: serde_json::Map<String, Value> = (0..5)
        .map(|i| (format!("V{i}"), json!("y".repeat(60_000))))
        .collect();
    let (status, body) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "true", "language": "bash", "env": env})),
        )
        .await;
    assert_eq!(status, 400, "the total is bounded: {body}");
}
