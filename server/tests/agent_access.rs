//! The agent's doors against the real server: tokens (missing, wrong, another sandbox's),
//! CORS for allowed origins only, health and info, unknown ids and bad requests answered
//! with the right status and code, losing nothing.

mod common;

use common::{send, Server};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn unknown_ids_are_404_with_the_right_code() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    for (method, path) in [
        (Method::GET, "/execute/processes/proc_nope"),
        (Method::POST, "/execute/kill/proc_nope"),
        (Method::DELETE, "/execute/processes/proc_nope"),
    ] {
        let (status, b) = sb.call(method, path, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(b["code"], "PROCESS_NOT_FOUND");
        assert_eq!(
            b["error"], b["message"],
            "agent errors carry the message as a string"
        );
    }
    let (status, b) = sb
        .call(
            Method::DELETE,
            "/execute/kill",
            Some(json!({"process_id": "proc_nope"})),
        )
        .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (404, Some("PROCESS_NOT_FOUND"))
    );
    // A valid token for a sandbox that is gone.
    s.cp(Method::DELETE, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    let (status, b) = sb.call(Method::GET, "/execute/processes", None).await;
    assert_eq!(
        (status, b["code"].as_str()),
        (404, Some("SANDBOX_NOT_FOUND"))
    );
}

#[tokio::test]
async fn bad_run_requests_are_400_and_lose_nothing() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let (status, b) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "print(1)", "language": "cobol"})),
        )
        .await;
    assert_eq!((status, b["code"].as_str()), (400, Some("INVALID_REQUEST")));
    assert!(b["error"].as_str().unwrap().contains("cobol"));
    let (status, b) = sb
        .call(
            Method::POST,
            "/execute/background",
            Some(json!({"language": "python"})),
        )
        .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (400, Some("MISSING_PARAMETER"))
    );
    let (status, b) = send(
        s.http
            .post(format!("{}/execute", sb.agent))
            .header("Authorization", format!("Bearer {}", sb.token))
            .body("{\"code\": "),
    )
    .await;
    assert_eq!((status, b["code"].as_str()), (400, Some("INVALID_JSON")));
    let (status, _) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "1", "timeout": 0})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "1", "workdir": "relative"})),
        )
        .await;
    assert_eq!(status, 400);
    let base = s.create("base").await;
    let (status, _) = base
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "print(1)", "language": "python"})),
        )
        .await;
    assert_eq!(status, 400, "the base template has bash only");
    assert_eq!(base.run("bash", "echo ok").await["stdout"], "ok\n");
    assert_eq!(
        sb.run("python", "print('still fine')").await["stdout"],
        "still fine\n"
    );
}

#[tokio::test]
async fn agent_auth_rejects_missing_wrong_and_foreign_tokens() {
    let s = Server::start().await;
    let a = s.create("code-interpreter").await;
    let b = s.create("code-interpreter").await;
    let url = format!("{}/execute/processes", a.agent);
    let (status, body) = send(s.http.get(&url)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("AUTHENTICATION_REQUIRED"))
    );
    let (status, body) = send(
        s.http
            .get(&url)
            .header("Authorization", "Bearer not-a-token"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("INVALID_TOKEN"))
    );
    let (status, body) = send(
        s.http
            .get(&url)
            .header("Authorization", format!("Bearer {}", b.token)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("INVALID_TOKEN")),
        "B's token does not open A"
    );
    let (status, _) = send(
        s.http
            .get(&url)
            .header("Authorization", format!("Bearer {}", a.token)),
    )
    .await;
    assert_eq!(status, 200);
    // The account key opens every sandbox's agent (what the JS HopX SDK falls back to).
    let (status, _) = send(s.http.get(&url).header("X-API-Key", "test-key")).await;
    assert_eq!(status, 200);
    let (status, _) = send(s.http.get(&url).header("X-API-Key", "wrong")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn agent_health_and_info() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let (status, h) = sb.call(Method::GET, "/health", None).await;
    assert_eq!((status, h["status"].as_str()), (200, Some("healthy")));
    let (status, i) = sb.call(Method::GET, "/info", None).await;
    assert_eq!(status, 200);
    assert_eq!(i["vm_id"], sb.id);
}

#[tokio::test]
async fn cors_opens_agents_to_allowed_origins_only_and_never_the_control_plane() {
    let s = Server::start_with(
        Some("test-key"),
        &["--cors-origins", "http://localhost:5173"],
    )
    .await;
    let sb = s.create("code-interpreter").await;
    let preflight = |url: String, origin: &'static str| {
        s.http
            .request(Method::OPTIONS, url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight(format!("{}/execute", sb.agent), "http://localhost:5173")
        .await
        .unwrap();
    assert!(ok.status().is_success());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));

    let other = preflight(format!("{}/execute", sb.agent), "http://evil.example")
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let cp = preflight(format!("{}/v1/sandboxes", s.url), "http://localhost:5173")
        .await
        .unwrap();
    assert!(
        cp.headers().get("access-control-allow-origin").is_none(),
        "control plane has no CORS"
    );

    let resp = s
        .http
        .post(format!("{}/execute", sb.agent))
        .header("Origin", "http://localhost:5173")
        .header("Authorization", format!("Bearer {}", sb.token))
        .json(&json!({"code": "print(1)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"));
}
