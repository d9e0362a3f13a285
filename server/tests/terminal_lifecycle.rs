//! How terminals end: with their sandbox (no process left on the host), by a delete, by the
//! detach limit when no client is attached, and at the server's shutdown.

mod common;

use std::time::{Duration, Instant};

use common::terminal::{open_http, read_sse, type_http, Ws};
use common::Server;
use reqwest::Method;
use serde_json::json;

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
