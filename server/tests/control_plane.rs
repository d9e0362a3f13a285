//! Control plane against the real server: sandboxes, tokens, templates, auth, bad input.

mod common;

use common::{send, Server};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_answers_healthy_without_auth() {
    let s = Server::start().await;
    let (status, body) = send(s.http.get(format!("{}/health", s.url))).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
}

#[tokio::test]
async fn create_returns_everything_a_hopx_client_reads() {
    let s = Server::start().await;
    let (status, b) = s
        .cp(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({"template_name": "code-interpreter", "timeout_seconds": 600})),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    let id = b["id"].as_str().unwrap();
    assert_eq!(id.len(), 18, "10 digits of time + 8 alphanumerics: {id}");
    assert_eq!(b["status"], "running");
    assert_eq!(b["object"], "sandbox");
    assert_eq!(b["public_host"], format!("{}/sandboxes/{id}/agent", s.url));
    assert!(
        b["auth_token"].as_str().unwrap().split('.').count() == 3,
        "a JWT"
    );
    let exp = b["token_expires_at"].as_str().unwrap();
    assert!(
        exp.ends_with('Z') && exp.len() == 20,
        "second precision with Z: {exp}"
    );
    assert!(b["template_id"].is_string());
    assert!(b["organization_id"].is_i64());
    assert!(b["resources"]["disk_mb"].is_u64());
    assert_eq!(b["timeout_seconds"], 600);
    assert!(b["expires_at"].is_string());
    assert!(b["request_id"].is_string());

    let (status, got) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["id"], id);
    assert!(got.get("auth_token").is_none(), "get does not mint tokens");
}

#[tokio::test]
async fn template_id_may_be_a_number_or_numeric_string_and_unknown_templates_are_404() {
    let s = Server::start().await;
    for id in [json!("2"), json!(2)] {
        let (status, b) = s
            .cp(
                Method::POST,
                "/v1/sandboxes",
                Some(json!({"template_id": id})),
            )
            .await;
        assert_eq!(status, 201, "{b}");
        assert_eq!(b["template_name"], "base");
    }
    let (status, b) = s
        .cp(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({"template_name": "nope"})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(b["code"], "TEMPLATE_NOT_FOUND");
    assert_eq!(
        b["error"]["code"], "TEMPLATE_NOT_FOUND",
        "nested error object for the Python SDK"
    );
    let (status, b) = s.cp(Method::POST, "/v1/sandboxes", Some(json!({}))).await;
    assert_eq!(status, 400);
    assert_eq!(b["code"], "MISSING_PARAMETER");
}

#[tokio::test]
async fn list_pages_with_a_cursor_and_delete_removes() {
    let s = Server::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(s.create("base").await.id);
    }
    let (_, page1) = s.cp(Method::GET, "/v1/sandboxes?limit=2", None).await;
    assert_eq!(page1["object"], "list");
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    assert_eq!(page1["has_more"], true);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = s
        .cp(
            Method::GET,
            &format!("/v1/sandboxes?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert_eq!(page2["has_more"], false);
    let mut seen: Vec<String> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["data"].as_array().unwrap())
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);

    let (status, b) = s
        .cp(Method::DELETE, &format!("/v1/sandboxes/{}", ids[0]), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(b["status"], "deleted");
    let (status, b) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", ids[0]), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(b["code"], "SANDBOX_NOT_FOUND");
    let (status, _) = s
        .cp(Method::DELETE, &format!("/v1/sandboxes/{}", ids[0]), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn set_timeout_and_sandbox_expiry_kill_it() {
    let s = Server::start().await;
    let sb = s.create("base").await;
    let (status, b) = s
        .cp(
            Method::PUT,
            &format!("/v1/sandboxes/{}/timeout", sb.id),
            Some(json!({"timeout_seconds": 0})),
        )
        .await;
    assert_eq!(status, 400, "{b}");
    let (status, b) = s
        .cp(
            Method::PUT,
            &format!("/v1/sandboxes/{}/timeout", sb.id),
            Some(json!({"timeout_seconds": 1})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["timeout_seconds"], 1);
    let p = sb
        .background(json!({"code": "sleep 60", "language": "bash"}))
        .await;
    let _ = p;
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    let (status, _) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    assert_eq!(status, 404, "an expired sandbox is killed");
    assert!(common::pids_with_cmdline(&sb.id).is_empty());
}

#[tokio::test]
async fn token_refresh_issues_a_token_that_works() {
    let s = Server::start().await;
    let mut sb = s.create("code-interpreter").await;
    let (status, b) = s
        .cp(
            Method::POST,
            &format!("/v1/sandboxes/{}/token/refresh", sb.id),
            None,
        )
        .await;
    assert_eq!(status, 200);
    sb.token = b["auth_token"].as_str().unwrap().to_string();
    assert!(b["token_expires_at"].is_string());
    assert_eq!(sb.run("python", "print(6*7)").await["stdout"], "42\n");
}

#[tokio::test]
async fn control_plane_auth_accepts_both_headers_and_rejects_missing_or_wrong_keys() {
    let s = Server::start().await;
    let url = format!("{}/v1/sandboxes", s.url);
    let (status, b) = send(s.http.get(&url)).await;
    assert_eq!(status, 401);
    assert_eq!(b["code"], "AUTHENTICATION_REQUIRED");
    let (status, b) = send(s.http.get(&url).header("X-API-Key", "wrong")).await;
    assert_eq!(status, 401);
    assert_eq!(b["code"], "INVALID_TOKEN");
    let (status, _) = send(s.http.get(&url).header("Authorization", "Bearer test-key")).await;
    assert_eq!(status, 200);
    let (status, _) = send(s.http.get(&url).header("X-API-Key", "test-key")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn local_mode_accepts_any_key() {
    let s = Server::start_with(None, &[]).await;
    let (status, _) = send(
        s.http
            .get(format!("{}/v1/templates", s.url))
            .header("X-API-Key", "anything"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(s.http.get(format!("{}/v1/templates", s.url))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn non_loopback_without_a_key_refuses_to_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sandlotd"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(std::env::temp_dir().join("sandlot-refuse"))
        .env_remove("SANDLOT_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without an API key"));
}

#[tokio::test]
async fn templates_list_and_get() {
    let s = Server::start().await;
    let (status, b) = s.cp(Method::GET, "/v1/templates", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["code-interpreter", "base"]);
    let (status, t) = s
        .cp(Method::GET, "/v1/templates/code-interpreter", None)
        .await;
    assert_eq!(status, 200);
    assert!(t["display_name"].is_string() && t["id"].is_string());
    assert!(t["default_resources"]["disk_gb"].is_u64());
    let (status, t) = s.cp(Method::GET, "/v1/templates/2", None).await;
    assert_eq!((status, t["name"].as_str()), (200, Some("base")));
    let (status, _) = s.cp(Method::GET, "/v1/templates/nope", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn malformed_json_oversized_bodies_and_unknown_routes_get_clear_errors() {
    let s = Server::start_with(Some("test-key"), &["--max-body-bytes", "4096"]).await;
    let url = format!("{}/v1/sandboxes", s.url);
    let (status, b) = send(
        s.http
            .post(&url)
            .header("X-API-Key", "test-key")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(b["code"], "INVALID_JSON");
    let (status, b) = send(
        s.http
            .post(&url)
            .header("X-API-Key", "test-key")
            .body(r#"{"template_name": 5}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(b["code"], "INVALID_REQUEST");
    let big = format!(
        r#"{{"template_name":"base","env_vars":{{"A":"{}"}}}}"#,
        "x".repeat(10_000)
    );
    let (status, b) = send(s.http.post(&url).header("X-API-Key", "test-key").body(big)).await;
    assert_eq!(status, 413);
    assert_eq!(b["code"], "PAYLOAD_TOO_LARGE");
    let (status, b) = s.cp(Method::GET, "/v1/nothing", None).await;
    assert_eq!(status, 404);
    assert!(b["message"].is_string());
    let (status, b) = s.cp(Method::PATCH, "/v1/sandboxes", None).await;
    assert_eq!(status, 405);
    assert_eq!(b["code"], "METHOD_NOT_ALLOWED");
    // The server is still fine.
    s.create("base").await;
}

#[tokio::test]
async fn sandbox_cap_answers_429_and_frees_up_after_kill() {
    let s = Server::start_with(Some("test-key"), &["--max-sandboxes", "2"]).await;
    let a = s.create("base").await;
    s.create("base").await;
    let (status, b) = s
        .cp(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({"template_name": "base"})),
        )
        .await;
    assert_eq!(status, 429, "{b}");
    assert_eq!(b["code"], "RESOURCE_LIMIT_ERROR");
    s.cp(Method::DELETE, &format!("/v1/sandboxes/{}", a.id), None)
        .await;
    s.create("base").await;
}

#[tokio::test]
async fn sigterm_kills_sandboxes_and_exits_zero() {
    let mut s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let marker = format!("sandlot-marker-{}", sb.id);
    let p = sb
        .background(
            json!({"code": format!("echo up; exec -a {marker} sleep 300"), "language": "bash"}),
        )
        .await;
    sb.wait_output(p["process_id"].as_str().unwrap(), "up", 10)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        common::pids_with_cmdline(&marker).len(),
        1,
        "the sandboxed process runs"
    );
    let status = s.terminate();
    assert!(status.success(), "exit 0 on SIGTERM, got {status:?}");
    assert!(
        common::pids_with_cmdline(&marker).is_empty(),
        "no sandboxed process outlives the server"
    );
}
