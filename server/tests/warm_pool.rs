//! The warm pool against the real server: sandboxes made ahead, each with its python context
//! ready, that a create takes; the pool gives way to creates and leaves nothing behind.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{first_run, Server};
use reqwest::Method;
use serde_json::json;

/// Sandboxes whose directories exist: live or pooled.
fn on_disk(s: &Server) -> BTreeSet<String> {
    std::fs::read_dir(s.sandboxes_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn listed(s: &Server) -> BTreeSet<String> {
    let (status, list) = s.cp(Method::GET, "/v1/sandboxes", None).await;
    assert_eq!(status, 200, "{list}");
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

async fn metrics(s: &Server) -> String {
    s.control(s.http.get(format!("{}/metrics", s.url)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Creates that took a pooled sandbox so far (the server's counter).
async fn taken(s: &Server) -> u64 {
    let page = metrics(s).await;
    let line = page
        .lines()
        .find_map(|l| l.strip_prefix("sandlot_warm_pool_taken_total "))
        .unwrap_or_else(|| panic!("no counter of pooled sandboxes taken:\n{page}"));
    line.parse().unwrap()
}

/// Waits until the pool holds `n` ready sandboxes (its gauge in `/metrics`) and returns
/// their ids (on disk, not listed).
async fn pooled(s: &Server, n: usize) -> BTreeSet<String> {
    let wanted = format!("sandlot_warm_pool_ready {n}\n");
    for _ in 0..400 {
        let page = metrics(s).await;
        if page.contains(&wanted) {
            let live = listed(s).await;
            let ahead: BTreeSet<String> = on_disk(s).difference(&live).cloned().collect();
            assert_eq!(ahead.len(), n, "{ahead:?}");
            return ahead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the pool did not fill to {n}");
}

#[tokio::test]
async fn a_create_takes_a_sandbox_made_ahead_with_its_python_context_ready() {
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "1"]).await;
    let ahead = pooled(&s, 1).await;
    assert!(
        listed(&s).await.is_empty(),
        "a pooled sandbox is not listed"
    );

    let before = std::time::SystemTime::now();
    let sb = s.create("code-interpreter").await;
    assert!(ahead.contains(&sb.id), "the create took the pooled one");
    let (_, info) = s
        .cp(Method::GET, &format!("/v1/sandboxes/{}", sb.id), None)
        .await;
    let created = humantime::parse_rfc3339_weak(info["created_at"].as_str().unwrap()).unwrap();
    assert!(
        created + Duration::from_secs(1) >= before,
        "created when taken, not when made: {info}"
    );
    // Its default context was running before the create and has run nothing yet.
    let (_, contexts) = sb.call(Method::GET, "/contexts", None).await;
    let default = &contexts["contexts"][0];
    assert_eq!(default["state"], "idle", "{contexts}");
    assert_eq!(default["starts"], 1, "{contexts}");
    assert_eq!(default["execution_count"], 0, "{contexts}");
    let out = sb.run("python", "x = 41\nx + 1").await;
    assert_eq!(out["execution_count"], 1, "{out}");
    assert_eq!(out["results"][0]["text"], "42", "{out}");

    // The pool fills again; a create that asks for a variable only an interpreter's start
    // reads gets a new sandbox.
    let next = pooled(&s, 1).await;
    assert!(next.is_disjoint(&ahead));
    let (status, body) = s
        .cp(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({"template_name": "code-interpreter", "env_vars": {"PYTHONHASHSEED": "7"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!next.contains(body["id"].as_str().unwrap()));
    // So does one of another template.
    let base = s.create("base").await;
    assert!(!next.contains(&base.id));
}

#[tokio::test]
async fn the_pool_fills_only_once_creates_pause() {
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "1"]).await;
    pooled(&s, 1).await;
    assert_eq!(taken(&s).await, 0);
    // Creates one after another, as a burst's reach the server: the first takes the pooled
    // sandbox, and the pool does not fill in the moments between two of them (a fill there
    // would compete with the creates still coming, and the next create would take it).
    for _ in 0..40 {
        s.create("code-interpreter").await;
    }
    let during = taken(&s).await;
    // 1: the first create. A pause of the test's own (a busy machine) may let one fill in.
    assert!(
        (1..=3).contains(&during),
        "{during} of 40 creates in a row took a pooled sandbox"
    );
    // Once they stop, it fills, and the next create takes that one.
    let ahead = pooled(&s, 1).await;
    let sb = s.create("code-interpreter").await;
    assert!(ahead.contains(&sb.id));
    assert_eq!(taken(&s).await, during + 1);
}

#[tokio::test]
async fn a_pooled_context_has_its_first_run_prepared_and_shows_none_of_it() {
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "1"]).await;
    let ahead = pooled(&s, 1).await;
    let sb = s.create("code-interpreter").await;
    assert!(ahead.contains(&sb.id), "the create took the pooled one");
    // What a context otherwise does once its first run has answered (IPython's profile
    // directory) was done by the warm-up, before the first run.
    let out = sb
        .run(
            "python",
            "import os\nprint(os.path.isdir(get_ipython().profile_dir.startup_dir))",
        )
        .await;
    assert_eq!(out["stdout"], "True\n", "{out}");
    assert_eq!(out["execution_count"], 1, "{out}");
    // And nothing of the warm-up runs shows in the shell.
    let next = pooled(&s, 1).await;
    let sb = s.create("code-interpreter").await;
    assert!(next.contains(&sb.id), "the create took the pooled one");
    first_run::assert_no_past(&sb).await;
    // A sandbox made on demand makes the directory only after its first run answered.
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "0"]).await;
    let fresh = s.create("code-interpreter").await;
    let out = fresh
        .run(
            "python",
            "import os\nprint(os.path.isdir(get_ipython().profile_dir.startup_dir))",
        )
        .await;
    assert_eq!(out["stdout"], "False\n", "{out}");
}

#[tokio::test]
async fn a_create_with_variables_takes_a_pooled_sandbox_whose_context_starts_with_them() {
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "1"]).await;
    let ahead = pooled(&s, 1).await;
    let env = json!({"GREETING": "hi", "TZ": "Asia/Tokyo", "PYTHONPATH": "/workspace/lib"});
    let (sb, _) = s
        .create_from(json!({"template_name": "code-interpreter", "env_vars": env}))
        .await;
    assert!(ahead.contains(&sb.id), "the create took the pooled one");
    assert_eq!(taken(&s).await, 1);
    // As if it had started with them: its environment and its children's, and what an
    // interpreter reads from them at start (the time zone, the import path).
    let out = sb
        .run(
            "python",
            "import os, subprocess, sys, time\n\
             print(os.environ['GREETING'], time.tzname[0], sys.path[1])\n\
             print(subprocess.run('echo $GREETING', shell=True, capture_output=True, text=True).stdout, end='')",
        )
        .await;
    assert_eq!(out["stdout"], "hi JST /workspace/lib\nhi\n", "{out}");
    assert_eq!(out["execution_count"], 1, "{out}");
    // And so do the sandbox's other processes and its record.
    assert_eq!(sb.run("bash", "echo $GREETING").await["stdout"], "hi\n");
    let (_, vars) = sb.call(Method::GET, "/env", None).await;
    assert_eq!(vars["env_vars"]["GREETING"], "hi", "{vars}");
}

/// Host processes in a sandbox's cgroups.
fn processes_of(id: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(id)))
        .count()
}

/// Whether a sandbox's processes are all gone within 3 s (a killed process is reaped by
/// its parent a moment later).
async fn gone(id: &str) -> bool {
    for _ in 0..60 {
        if processes_of(id) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn the_pool_gives_its_slots_to_creates_and_never_outlives_the_server() {
    let mut s = Server::start_with(
        Some("test-key"),
        &["--max-sandboxes", "3", "--warm-pool", "2"],
    )
    .await;
    // With 3 slots the pool takes at most 2, so one is always free.
    let ahead = pooled(&s, 2).await;
    // `base` never takes a pooled sandbox: each create needs a slot, the last two by
    // evicting one made ahead.
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(s.create("base").await.id);
    }
    let (status, b) = s
        .cp(
            Method::POST,
            "/v1/sandboxes",
            Some(json!({"template_name": "base"})),
        )
        .await;
    assert_eq!(status, 429, "{b}");
    for id in &ahead {
        assert!(!s.sandboxes_dir().join(id).exists(), "{id} was evicted");
        assert!(gone(id).await, "{id}'s processes were evicted with it");
    }

    // Once two slots are free again, it fills; and it is gone with the server.
    for id in &made[..2] {
        s.cp(Method::DELETE, &format!("/v1/sandboxes/{id}"), None)
            .await;
    }
    let refilled = pooled(&s, 1).await;
    let id = refilled.iter().next().unwrap().clone();
    assert!(processes_of(&id) >= 2, "its pid 1 and its context run");
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(gone(&id).await, "a pooled sandbox outlived the server");
    assert!(
        !s.sandboxes_dir().join(&id).exists(),
        "{id} was left on disk"
    );
}

#[tokio::test]
async fn a_pooled_sandbox_whose_interpreter_died_is_not_handed_out() {
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "1"]).await;
    let ahead = pooled(&s, 1).await;
    let id = ahead.iter().next().unwrap().clone();
    // The fork server's death takes its forks with it, the pooled context among them.
    let before = processes_of(&id);
    let zygote = common::zygote_pid(s.pid()).expect("the fork server runs");
    // SAFETY: killing a process of this test's server.
    unsafe { libc::kill(zygote, libc::SIGKILL) };
    let mut alone = false;
    for _ in 0..60 {
        if processes_of(&id) < before {
            alone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(alone, "the pooled context died with the fork server");
    let sb = s.create("code-interpreter").await;
    assert_ne!(
        sb.id, id,
        "a sandbox without its interpreter is not handed out"
    );
    let out = sb.run("python", "print(1)").await;
    assert_eq!(out["stdout"], "1\n", "{out}");
    assert!(
        out["execution_error"].is_null(),
        "no restart to report: {out}"
    );
    assert!(!s.sandboxes_dir().join(&id).exists(), "{id} was discarded");
}
