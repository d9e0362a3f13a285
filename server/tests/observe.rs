//! Commands (`/commands/run`, `/commands/background`) and observability (`/processes`,
//! `/metrics/snapshot`, `/metrics/prometheus`, `/system`, the server's `/metrics`), and the
//! out-of-memory killer named in a process's record, stream and reply.

mod common;

use common::{send, Server};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn commands_run_in_both_request_forms_and_failures_are_a_200_with_the_exit_code() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    // The HopX SDKs' form: a program with arguments, passed as they are.
    let (status, out) = sb
        .call(
            Method::POST,
            "/commands/run",
            Some(json!({"command": "bash", "args": ["-c", "echo \"$1|$0\"", "it's $HOME", "x"]})),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["stdout"], "x|it's $HOME\n", "{out}");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["success"], true);

    // The docs' form: a shell line, with workdir (docs' spelling) and env.
    let (status, out) = sb
        .call(
            Method::POST,
            "/commands/run",
            Some(json!({"command": "pwd; echo $GREETING; id -un; exit 3", "working_dir": "/tmp", "env": {"GREETING": "hi"}})),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["stdout"], "/tmp\nhi\nuser\n");
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["success"], false);

    // A timeout stops it and says so.
    let (_, out) = sb
        .call(
            Method::POST,
            "/commands/run",
            Some(json!({"command": "sleep 30", "timeout": 1})),
        )
        .await;
    assert_eq!(out["status"], "timeout", "{out}");

    for bad in [
        json!({}),
        json!({"command": ""}),
        json!({"command": 7}),
        json!({"command": "ls", "args": "-la"}),
    ] {
        let (status, out) = sb
            .call(Method::POST, "/commands/run", Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad} -> {out}");
    }
}

#[tokio::test]
async fn a_background_command_is_listed_followed_and_killed_like_a_process() {
    // Without the warm python context, whose interpreter `/processes` would list too (with
    // its `context_id`): this test pins down what it says of API processes.
    let s = Server::start_with(Some("test-key"), &["--warm-python-context", "false"]).await;
    let sb = s.create("code-interpreter").await;
    let (status, started) = sb
        .call(
            Method::POST,
            "/commands/background",
            Some(json!({"command": "echo started; sleep 30"})),
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let id = started["process_id"].as_str().unwrap().to_string();
    assert_eq!(started["name"], "echo started; sleep 30");
    let running = sb.wait_output(&id, "started", 10).await;
    assert_eq!(running["status"], "running");

    let (_, list) = sb.call(Method::GET, "/execute/processes", None).await;
    assert!(list["processes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["process_id"] == id.as_str()));
    // The operating system's view: the shell and its sleep, as the sandbox's user.
    let (status, ps) = sb.call(Method::GET, "/processes", None).await;
    assert_eq!(status, 200, "{ps}");
    let procs = ps["processes"].as_array().unwrap();
    assert!(
        procs
            .iter()
            .any(|p| p["name"] == "sleep" && p["command"] == "sleep 30" && p["user"] == "user"),
        "{ps}"
    );
    // Each names the API process it belongs to, so the async HopX SDK can kill it from here.
    assert!(procs.iter().all(|p| p["process_id"] == id.as_str()), "{ps}");
    assert!(
        procs.iter().all(|p| p["pid"].as_i64().unwrap() > 1),
        "pid 1 and host pids stay hidden: {ps}"
    );

    let (status, _) = sb
        .call(Method::POST, &format!("/execute/kill/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let done = sb.wait_final(&id, 10).await;
    assert_eq!(done["status"], "killed");
    assert_eq!(done["stdout"], "started\n");
}

#[tokio::test]
async fn metrics_report_use_against_the_limits() {
    let s = Server::start_with(
        Some("test-key"),
        &["--sandbox-disk-mb", "64", "--sandbox-memory-mb", "256"],
    )
    .await;
    let sb = s.create("code-interpreter").await;
    let out = sb
        .run("bash", "dd if=/dev/zero of=/workspace/f bs=1M count=20 2>/dev/null; sync; for i in $(seq 200000); do :; done")
        .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let (status, _) = sb.call(Method::POST, "/execute", Some(json!({}))).await;
    assert_eq!(status, 400); // an error, counted

    for path in ["/metrics/snapshot", "/metrics"] {
        let (status, m) = sb.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "{m}");
        assert_eq!(m["system"]["memory"]["limit_mb"], 256.0);
        assert!(
            m["system"]["memory"]["used_mb"].as_f64().unwrap() > 0.0,
            "{m}"
        );
        assert_eq!(m["system"]["disk"]["limit_mb"], 64.0);
        let disk = m["system"]["disk"]["used_mb"].as_f64().unwrap();
        assert!(
            (19.0..=24.0).contains(&disk),
            "20 MiB written, {disk} reported"
        );
        assert!(
            m["system"]["cpu"]["usage_seconds"].as_f64().unwrap() > 0.0,
            "{m}"
        );
        assert!(m["total_requests"].as_u64().unwrap() >= 2, "{m}");
        assert!(m["total_errors"].as_u64().unwrap() >= 1, "{m}");
        assert!(
            m["requests_total"]["POST /execute"].as_u64().unwrap() >= 1,
            "{m}"
        );
        assert_eq!(
            m["total_executions"], 0,
            "a synchronous run is not recorded"
        );
    }
    let (status, sys) = sb.call(Method::GET, "/system", None).await;
    assert_eq!(status, 200);
    assert_eq!(sys["memory_mb"], 256);
    assert_eq!(sys["disk_mb"], 64);

    let page = reqwest::Client::new()
        .get(format!(
            "{}/sandboxes/{}/agent/metrics/prometheus",
            s.url, sb.id
        ))
        .bearer_auth(&sb.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!(
        "sandlot_sandbox_disk_limit_bytes{{sandbox=\"{}\"}} {}",
        sb.id,
        64 << 20
    );
    assert!(page.contains(&line), "{page}");

    // The server-wide page needs the API key.
    let (status, _) = send(reqwest::Client::new().get(format!("{}/metrics", s.url))).await;
    assert_eq!(status, 401);
    let page = reqwest::Client::new()
        .get(format!("{}/metrics", s.url))
        .header("X-API-Key", "test-key")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("sandlot_sandboxes 1\n"), "{page}");
    assert!(
        page.contains(&format!(
            "sandlot_sandbox_processes{{sandbox=\"{}\"}}",
            sb.id
        )),
        "{page}"
    );
}

#[tokio::test]
async fn a_process_the_oom_killer_ends_says_so_in_its_record_stream_and_reply() {
    let s = Server::start_with(Some("test-key"), &["--sandbox-memory-mb", "96"]).await;
    let sb = s.create("code-interpreter").await;
    let hog = "x = bytearray(512 * 1024 * 1024)";
    let out = sb.run("python", hog).await;
    assert_eq!(out["oom_killed"], true, "{out}");
    // `/execute`'s `error` is the record's text, `execution_error` the object.
    assert!(out["error"].as_str().unwrap().contains("96 MiB"), "{out}");
    assert_eq!(out["execution_error"]["name"], "OutOfMemoryError", "{out}");
    assert!(
        out["execution_error"]["value"]
            .as_str()
            .unwrap()
            .contains("out-of-memory"),
        "{out}"
    );

    let started = sb
        .background(json!({"code": hog, "language": "python"}))
        .await;
    let id = started["process_id"].as_str().unwrap();
    let done = sb.wait_final(id, 20).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["oom_killed"], true, "{done}");
    assert!(done["error"].as_str().unwrap().contains("96 MiB"), "{done}");

    // The stream's exit event carries it too (replayed from the record).
    let body = reqwest::Client::new()
        .get(format!("{}/execute/processes/{id}/stream", sb.agent))
        .bearer_auth(&sb.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"oom_killed\":true"), "{body}");

    // A process that exits on its own is not blamed on the killer.
    let out = sb.run("bash", "kill -9 $$").await;
    assert_eq!(out["exit_code"], 137);
    assert!(out.get("oom_killed").is_none(), "{out}");
}
