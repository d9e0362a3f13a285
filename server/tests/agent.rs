//! Agent API against the real server: running code, background processes, kill, timeouts,
//! records, auth and bad input.

mod common;

use std::time::Duration;

use common::Server;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn execute_runs_each_language_and_reports_failure_as_200() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb.run("python", "print('py', 1+1)").await;
    assert_eq!(
        (
            r["stdout"].as_str(),
            r["exit_code"].as_i64(),
            r["success"].as_bool()
        ),
        (Some("py 2\n"), Some(0), Some(true))
    );
    assert!(r["execution_time"].as_f64().unwrap() > 0.0);
    let r = sb.run("javascript", "console.log('js', 2+2)").await;
    assert_eq!(r["stdout"], "js 4\n");
    let r = sb.run("node", "console.error('to stderr')").await;
    assert_eq!(r["stderr"], "to stderr\n");
    let r = sb.run("bash", "echo sh; exit 7").await;
    assert_eq!(
        (
            r["stdout"].as_str(),
            r["exit_code"].as_i64(),
            r["success"].as_bool()
        ),
        (Some("sh\n"), Some(7), Some(false))
    );
    let r = sb.run("python", "raise SystemExit('boom')").await;
    assert_eq!(r["exit_code"], 1);
    assert!(r["stderr"].as_str().unwrap().contains("boom"));
}

#[tokio::test]
async fn execute_honours_env_workdir_and_timeout() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let (status, r) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({
                "code": "import os; print(os.environ['SEED'], os.getcwd())",
                "env": {"SEED": "42"}, "workdir": "/tmp"
            })),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["stdout"], "42 /tmp\n");
    let (_, r) = sb
        .call(Method::POST, "/execute", Some(json!({"code": "import time; print('start', flush=True); time.sleep(30)", "timeout": 1})))
        .await;
    assert_eq!(r["status"], "timeout");
    assert_eq!(r["exit_code"], 124);
    assert_eq!(r["stdout"], "start\n");
    assert!(r["execution_time"].as_f64().unwrap() < 10.0);
}

#[tokio::test]
async fn background_run_goes_from_running_to_completed_with_output_and_times() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let started = std::time::Instant::now();
    let p = sb
        .background(json!({
            "code": "import os, time\nprint('seed', os.environ['SEED'])\ntime.sleep(1)\nprint('done')",
            "language": "python", "name": "long-task", "env": {"SEED": "42"}, "timeout": 30
        }))
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "returns before the code ends"
    );
    assert!(matches!(
        p["status"].as_str(),
        Some("queued") | Some("running")
    ));
    assert_eq!(p["name"], "long-task");
    assert_eq!(p["timeout"], 30);
    let id = p["process_id"].as_str().unwrap();
    assert!(p["execution_id"].is_string());

    // Unflushed prints show up while the process still runs.
    let running = sb.wait_output(id, "seed 42", 10).await;
    assert_eq!(running["status"], "running");
    assert!(running["exit_code"].is_null());
    assert!(running["completed_at"].is_null());

    let done = sb.wait_final(id, 15).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["exit_code"], 0);
    assert_eq!(done["stdout"], "seed 42\ndone\n");
    for field in ["started_at", "start_time", "completed_at", "end_time"] {
        assert!(done[field].is_string(), "{field} present");
    }
    assert!(done["execution_time"].as_f64().unwrap() >= 1.0);
    assert_eq!(done["duration"], done["execution_time"]);
    assert!(done["pid"].is_u64());

    let (_, list) = sb.call(Method::GET, "/execute/processes", None).await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["processes"][0]["process_id"], id);
}

#[tokio::test]
async fn failing_and_unnamed_processes_are_failed_without_a_name() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let p = sb
        .background(json!({"code": "import sys; print('oops', file=sys.stderr); sys.exit(3)"}))
        .await;
    assert!(p.get("name").is_none(), "no name key when unnamed: {p}");
    let done = sb.wait_final(p["process_id"].as_str().unwrap(), 10).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["exit_code"], 3);
    assert_eq!(done["stderr"], "oops\n");
    assert!(done.get("name").is_none());
}

#[tokio::test]
async fn several_named_processes_run_at_once() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let p = sb.background(json!({"code": format!("import time; time.sleep(1); print('{name}')"), "name": name})).await;
        ids.push((name, p["process_id"].as_str().unwrap().to_string()));
    }
    let started = std::time::Instant::now();
    for (name, id) in &ids {
        let done = sb.wait_final(id, 15).await;
        assert_eq!(done["name"], *name);
        assert_eq!(done["stdout"], format!("{name}\n"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "they ran concurrently"
    );
}

#[tokio::test]
async fn every_kill_route_kills_the_whole_tree() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let routes: [(Method, &str, bool); 3] = [
        (Method::POST, "/execute/kill/{}", false),
        (Method::DELETE, "/execute/kill", true),
        (Method::POST, "/processes/{}/kill", false),
    ];
    for (i, (method, route, body)) in routes.into_iter().enumerate() {
        let marker = format!("sandlot-tree-{}-{i}", sb.id);
        // A parent with a grandchild that ignores SIGTERM and sits in its own session.
        let code = format!("(setsid bash -c 'trap \"\" TERM; exec -a {marker}-grandchild sleep 300' &) ; echo up; exec -a {marker}-parent sleep 300");
        let p = sb
            .background(json!({"code": code, "language": "bash"}))
            .await;
        let id = p["process_id"].as_str().unwrap().to_string();
        sb.wait_output(&id, "up", 10).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            common::pids_with_cmdline(&marker).len(),
            2,
            "parent and grandchild run"
        );
        let path = route.replace("{}", &id);
        let (status, reply) = sb
            .call(method, &path, body.then(|| json!({"process_id": id})))
            .await;
        assert_eq!(status, 200, "{path}: {reply}");
        assert_eq!(reply["status"], "killed");
        assert_eq!(reply["process_id"], id);
        let done = sb.process(&id).await;
        assert_eq!(done["status"], "killed");
        assert!(
            common::pids_with_cmdline(&marker).is_empty(),
            "{path} left processes behind"
        );
    }
}

#[tokio::test]
async fn timeout_kills_the_tree_and_records_timeout() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let marker = format!("sandlot-timeout-{}", sb.id);
    let p = sb
        .background(json!({"code": format!("echo up; (exec -a {marker} sleep 300 &); sleep 300"), "language": "bash", "timeout": 1}))
        .await;
    let done = sb.wait_final(p["process_id"].as_str().unwrap(), 15).await;
    assert_eq!(done["status"], "timeout");
    assert_eq!(done["exit_code"], 124);
    assert_eq!(done["stdout"], "up\n");
    assert!(done["error"].as_str().unwrap().contains("timed out"));
    assert!(common::pids_with_cmdline(&marker).is_empty());
}

#[tokio::test]
async fn removing_a_record_needs_a_finished_process() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let p = sb
        .background(json!({"code": "sleep 30", "language": "bash"}))
        .await;
    let id = p["process_id"].as_str().unwrap();
    let (status, b) = sb
        .call(Method::DELETE, &format!("/execute/processes/{id}"), None)
        .await;
    assert_eq!(status, 409, "running records cannot be removed: {b}");
    sb.call(Method::POST, &format!("/execute/kill/{id}"), None)
        .await;
    let (status, b) = sb
        .call(Method::DELETE, &format!("/execute/processes/{id}"), None)
        .await;
    assert_eq!(status, 200, "{b}");
    let (status, b) = sb
        .call(Method::GET, &format!("/execute/processes/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(b["code"], "PROCESS_NOT_FOUND");
    let (_, list) = sb.call(Method::GET, "/execute/processes", None).await;
    assert_eq!(list["count"], 0);
}

#[tokio::test]
async fn output_is_capped_with_head_tail_and_a_truncated_flag() {
    let s = Server::start_with(Some("test-key"), &["--output-cap-bytes", "65536"]).await;
    let sb = s.create("code-interpreter").await;
    // ~50 MB of output: far beyond the cap.
    let p = sb
        .background(json!({"code": "import sys\nprint('FIRST')\nline = 'x' * 1023 + '\\n'\nfor _ in range(50000): sys.stdout.write(line)\nprint('LAST')"}))
        .await;
    let done = sb.wait_final(p["process_id"].as_str().unwrap(), 60).await;
    assert_eq!(done["status"], "completed");
    let out = done["stdout"].as_str().unwrap();
    assert!(out.starts_with("FIRST\n"));
    assert!(out.ends_with("LAST\n"));
    assert!(out.len() < 70_000, "kept {} bytes", out.len());
    assert_eq!(done["stdout_truncated"], true);
    assert_eq!(done["stdout_bytes"].as_u64().unwrap(), 6 + 50000 * 1024 + 5);
    assert!(out.contains("bytes of output dropped"));
}

#[tokio::test]
async fn process_cap_answers_429() {
    let s = Server::start_with(Some("test-key"), &["--max-processes", "2"]).await;
    let sb = s.create("code-interpreter").await;
    for _ in 0..2 {
        sb.background(json!({"code": "sleep 30", "language": "bash"}))
            .await;
    }
    let (status, b) = sb
        .call(
            Method::POST,
            "/execute/background",
            Some(json!({"code": "sleep 1", "language": "bash"})),
        )
        .await;
    assert_eq!(
        (status, b["code"].as_str()),
        (429, Some("RESOURCE_LIMIT_ERROR"))
    );
}

#[tokio::test]
async fn pause_freezes_and_resume_thaws() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let p = sb
        .background(json!({"code": "import time\nwhile True:\n  print('tick')\n  time.sleep(0.1)"}))
        .await;
    let id = p["process_id"].as_str().unwrap().to_string();
    sb.wait_output(&id, "tick", 10).await;
    let (status, b) = s
        .cp(
            Method::POST,
            &format!("/v1/sandboxes/{}/pause", sb.id),
            None,
        )
        .await;
    assert_eq!((status, b["status"].as_str()), (200, Some("paused")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sb.process(&id).await["stdout_bytes"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = sb.process(&id).await["stdout_bytes"].as_u64().unwrap();
    assert_eq!(before, after, "a paused sandbox makes no progress");
    let (status, b) = sb
        .call(Method::POST, "/execute", Some(json!({"code": "print(1)"})))
        .await;
    assert_eq!((status, b["code"].as_str()), (409, Some("SANDBOX_PAUSED")));
    let (_, info) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    assert_eq!(info["status"], "paused");
    let (status, b) = s
        .cp(
            Method::POST,
            &format!("/v1/sandboxes/{}/resume", sb.id),
            None,
        )
        .await;
    assert_eq!((status, b["status"].as_str()), (200, Some("running")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sb.process(&id).await["stdout_bytes"].as_u64().unwrap() > after,
        "progress again after resume"
    );
}

#[tokio::test]
async fn killing_a_sandbox_ends_all_its_processes() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let marker = format!("sandlot-sbkill-{}", sb.id);
    for i in 0..3 {
        let p = sb.background(json!({"code": format!("echo up; exec -a {marker}-{i} sleep 300"), "language": "bash", "name": format!("p{i}")})).await;
        sb.wait_output(p["process_id"].as_str().unwrap(), "up", 10)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(common::pids_with_cmdline(&marker).len(), 3);
    let (status, _) = s
        .cp(Method::DELETE, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    assert_eq!(status, 200);
    assert!(common::pids_with_cmdline(&marker).is_empty());
    assert!(
        !s.sandboxes_dir().join(&sb.id).exists(),
        "its files are removed"
    );
}

#[tokio::test]
async fn global_env_from_create_and_the_env_routes_reaches_every_process() {
    let s = Server::start().await;
    let (sb, _) = s
        .create_from(json!({"template_name": "code-interpreter", "env_vars": {"FROM_CREATE": "1"}}))
        .await;
    let (_, env) = sb.call(Method::GET, "/env", None).await;
    assert_eq!(env["env_vars"], json!({"FROM_CREATE": "1"}));
    let (status, env) = sb
        .call(
            Method::PATCH,
            "/env",
            Some(json!({"env_vars": {"A": "x"}, "merge": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(env["env_vars"], json!({"FROM_CREATE": "1", "A": "x"}));
    let r = sb.run("bash", "echo $FROM_CREATE-$A").await;
    assert_eq!(r["stdout"], "1-x\n");
    // The request's own env wins over the global one.
    let (_, r) = sb
        .call(
            Method::POST,
            "/execute",
            Some(json!({"code": "echo $A", "language": "bash", "env": {"A": "req"}})),
        )
        .await;
    assert_eq!(r["stdout"], "req\n");
    let (_, env) = sb
        .call(Method::PUT, "/env", Some(json!({"env_vars": {"B": "y"}})))
        .await;
    assert_eq!(env["env_vars"], json!({"B": "y"}));
    let (_, env) = sb.call(Method::DELETE, "/env", None).await;
    assert_eq!(env["count"], 0);
    let (status, _) = sb
        .call(
            Method::PUT,
            "/env",
            Some(json!({"env_vars": {"BAD=NAME": "1"}})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn process_lists_filter_by_status_and_name_and_can_leave_output_out() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let done = sb
        .background(json!({"code": "print('x' * 100)", "name": "quick"}))
        .await;
    sb.wait_final(done["process_id"].as_str().unwrap(), 10)
        .await;
    let running = sb
        .background(json!({"code": "sleep 30", "language": "bash", "name": "slow"}))
        .await;
    let (_, list) = sb
        .call(
            Method::GET,
            "/execute/processes?status=running,queued",
            None,
        )
        .await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["processes"][0]["process_id"], running["process_id"]);
    let (_, list) = sb
        .call(
            Method::GET,
            "/execute/processes?name=quick&output=false",
            None,
        )
        .await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["processes"][0]["stdout"], "");
    assert_eq!(list["processes"][0]["stdout_bytes"], 101);
    let (status, b) = sb
        .call(Method::GET, "/execute/processes?status=sleeping", None)
        .await;
    assert_eq!((status, b["code"].as_str()), (400, Some("INVALID_REQUEST")));
}
