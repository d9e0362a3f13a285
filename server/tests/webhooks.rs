//! Async execution with signed webhooks, against a receiver this test runs on loopback.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::Server;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

#[derive(Clone, Debug)]
struct Delivery {
    headers: HeaderMap,
    body: String,
}

/// A webhook receiver on 127.0.0.1 that answers with `status` and records every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let status = Arc::new(AtomicU16::new(status));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (status.clone(), got.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (s, g) = (s.clone(), g.clone());
                async move {
                    g.lock().unwrap().push(Delivery { headers, body });
                    StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, status, got }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize, secs: u64) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let d = self.deliveries();
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} deliveries arrived",
                d.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn verify(secret: &str, d: &Delivery) -> bool {
    let ts = d.headers["x-hopx-timestamp"].to_str().unwrap();
    let sig = d.headers["x-hopx-signature"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(d.body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sig == format!("sha256={hex}")
}

#[tokio::test]
async fn the_result_reaches_the_receiver_signed() {
    let s = Server::start().await;
    let rx = Receiver::start(200).await;
    let sb = s.create("code-interpreter").await;
    let (status, r) = sb
        .call(
            Method::POST,
            "/execute/async",
            Some(json!({
                "code": "print('from async')", "callback_url": rx.url,
                "callback_headers": {"X-Custom": "yes"}, "callback_signature_secret": "s3cret"
            })),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert!(r["execution_id"].is_string());
    assert_eq!(r["callback_url"], rx.url);
    let d = rx.wait_for(1, 20).await;
    assert!(verify("s3cret", &d[0]), "signature verifies");
    assert!(!verify("other", &d[0]));
    assert_eq!(d[0].headers["x-custom"], "yes");
    assert_eq!(d[0].headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&d[0].body).unwrap();
    assert_eq!(body["execution_id"], r["execution_id"]);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["success"], true);
    assert_eq!(body["stdout"], "from async\n");
    assert_eq!(body["exit_code"], 0);
    // The run is an ordinary process record too.
    let p = sb.process(r["process_id"].as_str().unwrap()).await;
    assert_eq!(p["status"], "completed");
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_until_it_accepts() {
    let s = Server::start_with(Some("test-key"), &["--webhook-retry-base-ms", "100"]).await;
    let rx = Receiver::start(500).await;
    let sb = s.create("code-interpreter").await;
    sb.call(
        Method::POST,
        "/execute/async",
        Some(json!({"code": "import sys; sys.exit(4)", "callback_url": rx.url})),
    )
    .await;
    rx.wait_for(3, 20).await;
    rx.status.store(200, Ordering::SeqCst);
    let n = rx.deliveries().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = rx.deliveries();
    assert!(
        all.len() <= n + 1,
        "no retries after a 2xx: {} then {}",
        n,
        all.len()
    );
    let body: Value = serde_json::from_str(&all.last().unwrap().body).unwrap();
    assert_eq!(
        (body["status"].as_str(), body["exit_code"].as_i64()),
        (Some("failed"), Some(4))
    );
    assert!(
        all.iter()
            .all(|d| d.headers.get("x-hopx-signature").is_none()),
        "no secret, no signature"
    );
}

#[tokio::test]
async fn attempts_are_bounded() {
    let s = Server::start_with(
        Some("test-key"),
        &[
            "--webhook-retry-base-ms",
            "50",
            "--webhook-max-attempts",
            "3",
        ],
    )
    .await;
    let rx = Receiver::start(503).await;
    let sb = s.create("code-interpreter").await;
    sb.call(
        Method::POST,
        "/execute/async",
        Some(json!({"code": "print(1)", "callback_url": rx.url})),
    )
    .await;
    rx.wait_for(3, 20).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rx.deliveries().len(), 3);
}

#[tokio::test]
async fn a_delivery_pending_at_kill_9_is_sent_after_restart() {
    let mut s = Server::start_with(Some("test-key"), &["--webhook-retry-base-ms", "2000"]).await;
    let rx = Receiver::start(500).await;
    let sb = s.create("code-interpreter").await;
    let (_, r) = sb
        .call(Method::POST, "/execute/async", Some(json!({"code": "print('survives')", "callback_url": rx.url, "callback_signature_secret": "k"})))
        .await;
    rx.wait_for(1, 20).await; // first attempt failed; the next is 2 s away
    s.crash_and_restart().await;
    rx.status.store(200, Ordering::SeqCst);
    let d = rx.wait_for(2, 20).await;
    let last = d.last().unwrap();
    assert!(verify("k", last));
    let body: Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(body["execution_id"], r["execution_id"]);
    assert_eq!(body["stdout"], "survives\n");
}

#[tokio::test]
async fn a_process_running_at_kill_9_still_reports_after_restart() {
    let mut s = Server::start().await;
    let rx = Receiver::start(200).await;
    let sb = s.create("code-interpreter").await;
    sb.call(
        Method::POST,
        "/execute/async",
        Some(json!({"code": "import time; time.sleep(60)", "callback_url": rx.url})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.crash_and_restart().await;
    let d = rx.wait_for(1, 20).await;
    let body: Value = serde_json::from_str(&d[0].body).unwrap();
    assert_eq!(body["status"], "failed");
    assert!(body["error"].as_str().unwrap().contains("restarted"));
}

#[tokio::test]
async fn callback_targets_are_validated() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    for (url, why) in [
        ("ftp://127.0.0.1/x", "http or https"),
        ("http://example.com/hook", "not allowed"),
        ("not a url", "not a URL"),
    ] {
        let (status, b) = sb
            .call(
                Method::POST,
                "/execute/async",
                Some(json!({"code": "print(1)", "callback_url": url})),
            )
            .await;
        assert_eq!(status, 400, "{url}");
        assert!(b["error"].as_str().unwrap().contains(why), "{url}: {b}");
    }
    let (status, b) = sb
        .call(
            Method::POST,
            "/execute/async",
            Some(json!({"code": "print(1)"})),
        )
        .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (400, Some("MISSING_PARAMETER"))
    );
    let (_, list) = sb.call(Method::GET, "/execute/processes", None).await;
    assert_eq!(list["count"], 0, "nothing ran for a refused callback");
}
