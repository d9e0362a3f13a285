//! State across a `kill -9` of the server: records survive, running work is failed, and
//! nothing of the old run keeps running.

mod common;

use common::Server;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn records_survive_kill_9_and_running_processes_become_failed() {
    let mut s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    sb.run("bash", "echo kept > /workspace/file.txt").await;

    let finished = sb
        .background(json!({"code": "print('finished output')", "name": "done-before"}))
        .await;
    let finished_id = finished["process_id"].as_str().unwrap().to_string();
    let before = sb.wait_final(&finished_id, 10).await;
    assert_eq!(before["status"], "completed");

    let marker = format!("sandlot-crash-{}", sb.id);
    let running = sb
        .background(json!({"code": format!("echo up; exec -a {marker} sleep 300"), "language": "bash", "name": "interrupted"}))
        .await;
    let running_id = running["process_id"].as_str().unwrap().to_string();
    sb.wait_output(&running_id, "up", 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(common::pids_with_cmdline(&marker).len(), 1);

    s.crash_and_restart().await;
    // The new server has a new port: the same token still opens the sandbox there.
    let sb = common::Sandbox {
        agent: format!("{}/sandboxes/{}/agent", s.url, sb.id),
        ..sb
    };

    assert!(
        common::pids_with_cmdline(&marker).is_empty(),
        "no process of the old run survives"
    );
    let (status, info) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    assert_eq!(status, 200, "the sandbox is still known: {info}");
    assert_eq!(info["status"], "running");

    let after = sb.process(&finished_id).await;
    assert_eq!(after["status"], "completed");
    assert_eq!(after["stdout"], "finished output\n");
    assert_eq!(after["exit_code"], 0);
    assert_eq!(after["name"], "done-before");
    assert_eq!(after["started_at"], before["started_at"]);
    assert_eq!(after["completed_at"], before["completed_at"]);

    let lost = sb.process(&running_id).await;
    assert_eq!(lost["status"], "failed");
    assert!(
        lost["error"].as_str().unwrap().contains("restarted"),
        "{lost}"
    );
    assert!(lost["completed_at"].is_string());

    let (_, list) = sb.call(Method::GET, "/execute/processes", None).await;
    assert_eq!(list["count"], 2);
    // The sandbox works again, with its workspace intact.
    assert_eq!(
        sb.run("bash", "cat /workspace/file.txt").await["stdout"],
        "kept\n"
    );
}

#[tokio::test]
async fn a_deleted_sandbox_stays_deleted_after_restart() {
    let mut s = Server::start().await;
    let gone = s.create("base").await;
    let kept = s.create("base").await;
    s.cp(Method::DELETE, &format!("/v1/sandboxes/{}", gone.id), None)
        .await;
    s.crash_and_restart().await;
    let (status, _) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", gone.id), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", kept.id), None)
        .await;
    assert_eq!(status, 200);
}
