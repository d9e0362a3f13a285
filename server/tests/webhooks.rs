//! Async execution with signed webhooks, against receivers this test runs on loopback.
//!
//! Targets that must be refused (internal addresses) are checked by validation only: the
//! server refuses them before anything connects, so no traffic leaves loopback.

mod common;

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
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

/// A webhook receiver on 127.0.0.1 that answers with `status` (after `delay`) and records
/// every request as it arrives.
#[derive(Clone)]
struct Receiver {
    url: String,
    port: u16,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Delivery>>>,
    /// The most requests it was answering at once.
    max_open: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        Self::start_slow(status, Duration::ZERO).await
    }

    async fn start_slow(status: u16, delay: Duration) -> Self {
        let status = Arc::new(AtomicU16::new(status));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (open, max_open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (s, g, o, m) = (status.clone(), got.clone(), open.clone(), max_open.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (s, g, o, m) = (s.clone(), g.clone(), o.clone(), m.clone());
                async move {
                    g.lock().unwrap().push(Delivery { headers, body });
                    let now_open = o.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now_open, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                    StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/hook");
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url,
            port,
            status,
            got,
            max_open,
        }
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

/// A server with an API key that allows callbacks to 127.0.0.1 (any port).
async fn server_allowing_loopback(extra: &[&str]) -> Server {
    let mut args = vec!["--webhook-allow-hosts", "127.0.0.1"];
    args.extend_from_slice(extra);
    Server::start_with(Some("test-key"), &args).await
}

/// Starts an async run with `callback` (plus `extra` request fields); returns the reply.
async fn run_async(sb: &common::Sandbox, callback: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"code": "print(1)", "callback_url": callback});
    if let (Some(b), Value::Object(more)) = (body.as_object_mut(), extra) {
        b.extend(more);
    }
    sb.call(Method::POST, "/execute/async", Some(body)).await
}

#[tokio::test]
async fn the_result_reaches_the_receiver_signed() {
    let s = server_allowing_loopback(&[]).await;
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
    let s = server_allowing_loopback(&["--webhook-retry-base-ms", "100"]).await;
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
    let s = server_allowing_loopback(&[
        "--webhook-retry-base-ms",
        "50",
        "--webhook-max-attempts",
        "3",
    ])
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
    let mut s = server_allowing_loopback(&["--webhook-retry-base-ms", "2000"]).await;
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
    let mut s = server_allowing_loopback(&[]).await;
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

#[tokio::test]
async fn with_an_api_key_no_callback_host_is_allowed_until_the_operator_allows_one() {
    let s = Server::start().await;
    let rx = Receiver::start(200).await;
    let sb = s.create("code-interpreter").await;
    for url in [
        rx.url.as_str(),
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
    ] {
        let (status, b) = run_async(&sb, url, json!({})).await;
        assert_eq!(status, 400, "{url}: {b}");
        assert!(
            b["error"]
                .as_str()
                .unwrap()
                .contains("--webhook-allow-hosts"),
            "the message names the flag: {b}"
        );
    }
    let (_, list) = sb.call(Method::GET, "/execute/processes", None).await;
    assert_eq!(list["count"], 0, "nothing ran");
    assert!(rx.deliveries().is_empty());
}

#[tokio::test]
async fn internal_addresses_are_refused_before_anything_connects() {
    // `*` allows any host, but only at public addresses.
    let s = Server::start_with(Some("test-key"), &["--webhook-allow-hosts", "*"]).await;
    let sb = s.create("code-interpreter").await;
    for (url, kind) in [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.1.1:8080/hook", "private"),
        ("http://100.64.0.1/hook", "CGNAT"),
        ("http://[::1]:9/hook", "loopback"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[fd00::1]/hook", "private"),
        ("http://[::ffff:169.254.169.254]/hook", "link-local"),
        ("http://0.0.0.0:9/hook", "unspecified"),
        ("http://2130706433:9/hook", "loopback"),
    ] {
        let (status, b) = run_async(&sb, url, json!({})).await;
        assert_eq!(status, 400, "{url}: {b}");
        assert_eq!(b["code"], "INVALID_REQUEST");
        let msg = b["error"].as_str().unwrap();
        assert!(
            msg.contains(kind) && msg.contains("address"),
            "{url}: {msg}"
        );
    }
    let (_, list) = sb.call(Method::GET, "/execute/processes", None).await;
    assert_eq!(list["count"], 0, "nothing ran for a refused callback");
}

#[tokio::test]
async fn allow_list_entries_can_name_a_port() {
    let rx = Receiver::start(200).await;
    let entry = format!("127.0.0.1:{}", rx.port);
    let s = Server::start_with(Some("test-key"), &["--webhook-allow-hosts", &entry]).await;
    let sb = s.create("code-interpreter").await;
    let other = format!("http://127.0.0.1:{}/hook", rx.port.wrapping_add(1).max(1));
    let (status, b) = run_async(&sb, &other, json!({})).await;
    assert_eq!(status, 400, "another port of the same host: {b}");
    assert!(b["error"].as_str().unwrap().contains("not allowed"), "{b}");
    let (status, b) = run_async(&sb, &rx.url, json!({})).await;
    assert_eq!(status, 200, "{b}");
    let d = rx.wait_for(1, 20).await;
    let body: Value = serde_json::from_str(&d[0].body).unwrap();
    assert_eq!(body["status"], "completed");
}

#[tokio::test]
async fn a_host_name_resolving_to_loopback_is_refused_unless_the_operator_named_it() {
    // `localhost` resolves to loopback. Named with the port of `named`, it may be called
    // there; at `refused`'s port only `*` matches, which covers public addresses only. The
    // name is resolved when the delivery goes out, so the request itself is accepted.
    let named = Receiver::start(200).await;
    let refused = Receiver::start(200).await;
    let list = format!("*,localhost:{}", named.port);
    let s = Server::start_with(Some("test-key"), &["--webhook-allow-hosts", &list]).await;
    let sb = s.create("code-interpreter").await;
    let (status, b) = run_async(
        &sb,
        &format!("http://localhost:{}/hook", refused.port),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let (status, b) = run_async(
        &sb,
        &format!("http://localhost:{}/hook", named.port),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    named.wait_for(1, 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        refused.deliveries().is_empty(),
        "a name that resolves to loopback is not called through '*'"
    );
}

#[tokio::test]
async fn sandlotds_own_port_is_never_a_callback_target() {
    // Local mode allows loopback receivers, but not sandlotd itself.
    let s = Server::start_with(None, &[]).await;
    let port = s.url.rsplit(':').next().unwrap().to_string();
    let sb = s.create("code-interpreter").await;
    for url in [
        format!("http://127.0.0.1:{port}/v1/sandboxes"),
        format!("http://[::1]:{port}/v1/sandboxes"),
    ] {
        let (status, b) = run_async(&sb, &url, json!({})).await;
        assert_eq!(status, 400, "{url}: {b}");
        assert!(
            b["error"].as_str().unwrap().contains("own listen address"),
            "{url}: {b}"
        );
    }
    // Local mode still allows a loopback receiver.
    let rx = Receiver::start(200).await;
    let (status, b) = run_async(&sb, &rx.url, json!({})).await;
    assert_eq!(status, 200, "{b}");
    rx.wait_for(1, 20).await;
}

#[tokio::test]
async fn credential_and_routing_headers_cannot_be_chosen_by_the_caller() {
    let s = server_allowing_loopback(&[]).await;
    let rx = Receiver::start(200).await;
    let sb = s.create("code-interpreter").await;
    for name in [
        "Authorization",
        "authorization",
        "Cookie",
        "HOST",
        "Proxy-Authorization",
        "X-HopX-Signature",
    ] {
        let (status, b) =
            run_async(&sb, &rx.url, json!({"callback_headers": {name: "value"}})).await;
        assert_eq!(status, 400, "{name}: {b}");
        assert!(
            b["error"].as_str().unwrap().contains("cannot be set"),
            "{b}"
        );
    }
    let (_, list) = sb.call(Method::GET, "/execute/processes", None).await;
    assert_eq!(list["count"], 0);
}

#[tokio::test]
async fn a_slow_receiver_of_one_sandbox_does_not_delay_another_sandboxs_callback() {
    let s = server_allowing_loopback(&[]).await;
    // Sandbox A: 33 callbacks to a receiver that answers after 10 s (the delivery timeout).
    let slow = Receiver::start_slow(200, Duration::from_secs(10)).await;
    let fast = Receiver::start(200).await;
    let a = s.create("code-interpreter").await;
    let b = s.create("code-interpreter").await;
    for _ in 0..33 {
        let (status, r) = run_async(&a, &slow.url, json!({})).await;
        assert_eq!(status, 200, "{r}");
    }
    // A's runs are all over (the CPU is quiet again) and its receiver holds deliveries.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = a
            .call(
                Method::GET,
                "/execute/processes?status=completed&output=false",
                None,
            )
            .await;
        if list["count"] == 33 {
            break;
        }
        assert!(Instant::now() < deadline, "A's runs did not finish: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slow.wait_for(4, 20).await;

    // Sandbox B's single callback arrives at once.
    let started = Instant::now();
    let (status, r) = run_async(&b, &fast.url, json!({})).await;
    assert_eq!(status, 200, "{r}");
    fast.wait_for(1, 10).await;
    let took = started.elapsed();
    eprintln!(
        "B's callback arrived {} ms after its request; A's receiver has seen {} (at most {} at once)",
        took.as_millis(),
        slow.deliveries().len(),
        slow.max_open.load(Ordering::SeqCst)
    );
    assert!(
        took < Duration::from_secs(2),
        "B waited {took:?} behind A's slow receiver"
    );
    assert!(
        slow.max_open.load(Ordering::SeqCst) <= 4,
        "A has at most --webhook-concurrency-per-sandbox (4) deliveries in flight"
    );
}
