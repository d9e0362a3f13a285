//! What a sandbox's create or delete leaves when it is cut short: its client goes away, or
//! the server stops while it is under way. Nothing of the sandbox may outlive either.

mod common;

use std::time::{Duration, Instant};

use common::host_procs::{assert_no_process_of, descendants, instance_groups, instance_of};
use common::Server;
use serde_json::json;

/// SIGTERM, and a zero exit within 3 s.
async fn stop(s: &mut Server) {
    s.signal(libc::SIGTERM);
    exits_0_within(s, Duration::from_secs(3)).await;
}

/// A zero exit within `within` of a SIGTERM already sent.
async fn exits_0_within(s: &mut Server, within: Duration) {
    let status = s
        .wait_exit(within)
        .await
        .unwrap_or_else(|| panic!("sandlotd exits within {within:?} of SIGTERM"));
    assert!(
        status.success(),
        "sandlotd exits 0 on SIGTERM, got {status}"
    );
}

/// Every task (a request) ends within 5 s of the server.
async fn all_end_with_the_server<T>(tasks: Vec<tokio::task::JoinHandle<T>>) {
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("every request ends with the server");
    }
}

/// 100 creates at once, and SIGTERM once `running` sandboxes run (their groups name the
/// server's sub-tree, returned): the others are then queued for a start, starting, or being
/// answered, while the stop kills those that run.
async fn stop_amid_creates(running: usize) -> String {
    let mut s = Server::start().await;
    let creates: Vec<_> = (0..100)
        .map(|_| {
            let rb = s.control(s.http.post(format!("{}/v1/sandboxes", s.url)));
            tokio::spawn(async move {
                rb.json(&json!({"template_name": "code-interpreter"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let server_pid = s.pid() as i32;
    let deadline = Instant::now() + Duration::from_secs(10);
    let instance = loop {
        let inits = sandbox_inits(server_pid);
        if inits.len() >= running {
            if let Some(instance) = inits.iter().find_map(|&pid| instance_of(pid)) {
                break instance;
            }
        }
        assert!(Instant::now() < deadline, "no sandbox started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    stop(&mut s).await;
    all_end_with_the_server(creates).await;
    instance
}

#[tokio::test]
async fn creates_in_flight_at_sigterm_leave_no_sandbox_behind() {
    // The stop lands at a different point of the creates each time.
    for running in [1, 10, 30] {
        let instance = stop_amid_creates(running).await;
        assert_no_process_of(&instance).await;
    }
}

#[tokio::test]
async fn deletes_in_flight_at_sigterm_leave_no_sandbox_behind() {
    let mut s = Server::start().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(s.create("code-interpreter").await.id);
    }
    let server_pid = s.pid() as i32;
    let instance = descendants(server_pid)
        .iter()
        .find_map(|p| instance_of(p.pid))
        .expect("the sandboxes' processes are in the server's groups");
    let deletes: Vec<_> = ids
        .iter()
        .map(|id| {
            let rb = s.control(s.http.delete(format!("{}/v1/sandboxes/{id}", s.url)));
            tokio::spawn(async move { rb.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    stop(&mut s).await;
    all_end_with_the_server(deletes).await;
    assert_no_process_of(&instance).await;
    // And every group is gone: the deletes finished their cleanup before the server exited.
    assert_eq!(instance_groups(&instance), Vec::<std::path::PathBuf>::new());
}

/// The cgroup v2 directory a host process is in.
fn v2_group_of(pid: i32) -> std::path::PathBuf {
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = groups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 membership");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (fields, fs) = l.split_once(" - ")?;
            (fs.split_whitespace().next()? == "cgroup2")
                .then(|| fields.split_whitespace().nth(4))?
        })
        .expect("cgroup2 is mounted");
    std::path::Path::new(mount).join(rel.trim_start_matches('/'))
}

#[tokio::test]
async fn processes_that_join_a_sandbox_s_group_after_its_kill_go_at_shutdown() {
    // A process that lands in a sandbox's group after the sandbox was killed (a context
    // forked as its sandbox went) keeps the group busy past a delete's own retries. Here
    // the test adds one every 2 ms from just before the stop until the group is gone (or
    // 1.5 s): the shutdown kills them all and removes the group.
    let mut s = Server::start_with(Some("test-key"), &["--warm-pool", "0"]).await;
    let sb = s.create("base").await;
    assert_eq!(sb.run("bash", "true").await["exit_code"], 0);
    let group = v2_group_of(sandbox_inits(s.pid() as i32)[0]);
    let joined = keep_joining(&group, Duration::from_millis(1500), || {
        s.signal(libc::SIGTERM)
    })
    .await;
    assert!(joined.len() >= 3, "the stop came");
    // Its last sweep may wait up to 3 s for the groups to empty.
    exits_0_within(&mut s, Duration::from_secs(10)).await;
    assert_all_dead(joined, "a process in the server's groups outlived it");
    let base = server_subtree(&group);
    assert!(!base.exists(), "{} outlived the server", base.display());
}

#[tokio::test]
async fn processes_that_join_a_sandbox_s_group_as_it_is_deleted_go_with_it() {
    // As above, but the sandbox is deleted while the server runs on: its delete kills what
    // keeps joining its groups until it can remove them, rather than giving up and leaving
    // a live process in a deleted sandbox's group until the server stops.
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "0"]).await;
    let sb = s.create("base").await;
    assert_eq!(sb.run("bash", "true").await["exit_code"], 0);
    let group = v2_group_of(sandbox_inits(s.pid() as i32)[0]);
    let mut delete = None;
    let joined = keep_joining(&group, Duration::from_secs(5), || {
        let (http, url) = (s.http.clone(), format!("{}/v1/sandboxes/{}", s.url, sb.id));
        let request = s.control(http.delete(url));
        delete = Some(tokio::spawn(async move { request.send().await }));
    })
    .await;
    let answer = delete.expect("the delete was sent").await.unwrap().unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert!(
        !group.exists(),
        "the deleted sandbox's group is still there"
    );
    assert_all_dead(joined, "a process in a deleted sandbox's group lived on");
}

/// Adds a new `sleep` to the cgroup v2 `group` every 2 ms until the group is gone or
/// `within` has passed; `after_three` runs once three have joined. Returns those that joined.
async fn keep_joining(
    group: &std::path::Path,
    within: Duration,
    mut after_three: impl FnMut(),
) -> Vec<std::process::Child> {
    let mut joined = Vec::new();
    let until = Instant::now() + within;
    while Instant::now() < until {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        if std::fs::write(group.join("cgroup.procs"), child.id().to_string()).is_err() {
            child.kill().unwrap();
            child.wait().unwrap();
            break; // the group is gone
        }
        joined.push(child);
        if joined.len() == 3 {
            after_three();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    joined
}

/// Reaps `children`, failing with `what` if any was still alive.
fn assert_all_dead(children: Vec<std::process::Child>, what: &str) {
    for mut child in children {
        let alive = child.try_wait().unwrap().is_none();
        if alive {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        assert!(!alive, "{what}");
    }
}

#[tokio::test]
async fn a_server_that_died_for_good_is_swept_by_the_next_server_to_start() {
    // A crashed server's sandboxes run on (by design) until a server starts on its data dir
    // again; when none does (a temporary data dir, one moved away), the next server to start
    // anywhere kills them and removes their groups. One with no mark of its own is left alone.
    let mut dead = Server::start_with(Some("test-key"), &["--warm-pool", "0"]).await;
    let sb = dead.create("base").await;
    let init = sandbox_inits(dead.pid() as i32)[0];
    let subtree = server_subtree(&v2_group_of(init));
    let unmarked = subtree.with_file_name(format!("sandlot-unmarked-{}", std::process::id()));
    std::fs::create_dir(&unmarked).unwrap();
    dead.crash();

    let next = Server::start_with(Some("test-key"), &["--warm-pool", "0"]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while (is_running(init) || subtree.exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!is_running(init), "the dead server's sandbox was killed");
    assert!(!subtree.exists(), "{} was removed", subtree.display());
    assert!(
        unmarked.exists(),
        "a sub-tree no server marked as its own is left alone"
    );
    std::fs::remove_dir(&unmarked).unwrap();
    drop(next);

    // Started again on its data dir after all, the server brings the sandbox back.
    dead.crash_and_restart().await;
    let sb = common::Sandbox {
        agent: format!("{}/sandboxes/{}/agent", dead.url, sb.id),
        ..sb
    };
    assert_eq!(sb.run("bash", "echo back").await["stdout"], "back\n");
}

/// Whether a process exists and is not a zombie.
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// The server's own cgroup sub-tree (`sandlot-<instance>`) a group is in.
fn server_subtree(group: &std::path::Path) -> std::path::PathBuf {
    group
        .ancestors()
        .find(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("sandlot-"))
        })
        .expect("the sandbox's group is under the server's sub-tree")
        .to_path_buf()
}

/// Host pids of the sandboxes' pid 1s under `server_pid` (a pid 1 has two pids: the host's
/// and 1 in its own namespace).
fn sandbox_inits(server_pid: i32) -> Vec<i32> {
    descendants(server_pid)
        .iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{}/status", p.pid))
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("NSpid:") && l.split_whitespace().nth(2) == Some("1"))
        })
        .map(|p| p.pid)
        .collect()
}

#[tokio::test]
async fn a_create_whose_client_goes_away_leaves_a_listed_sandbox_or_nothing() {
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "0"]).await;
    // Clients that give up after 1..8 ms, in the middle of their create.
    for ms in 1..=8u64 {
        let rb = s
            .control(s.http.post(format!("{}/v1/sandboxes", s.url)))
            .timeout(Duration::from_millis(ms))
            .json(&json!({"template_name": "code-interpreter"}));
        let _ = rb.send().await;
    }
    // Every sandbox that runs is one the server lists (and can delete): none is lost.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, list) = s.cp(reqwest::Method::GET, "/v1/sandboxes", None).await;
        assert_eq!(status, 200);
        for sb in list["data"].as_array().unwrap() {
            let id = sb["id"].as_str().unwrap();
            s.cp(
                reqwest::Method::DELETE,
                &format!("/v1/sandboxes/{id}"),
                None,
            )
            .await;
        }
        let left = sandbox_inits(s.pid() as i32);
        if left.is_empty() && list["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sandboxes run that the server does not list: pid 1s {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sandboxes_deleted_before_their_context_warmed_leave_no_group() {
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "0"]).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(s.create("code-interpreter").await.id);
    }
    let instance = sandbox_inits(s.pid() as i32)
        .iter()
        .find_map(|&pid| instance_of(pid))
        .expect("the sandboxes' processes are in the server's groups");
    // Deleted at once: their default python contexts are still being started.
    let paths: Vec<String> = ids.iter().map(|id| format!("/v1/sandboxes/{id}")).collect();
    let deletes = paths
        .iter()
        .map(|path| s.cp(reqwest::Method::DELETE, path, None));
    for (status, body) in futures_util::future::join_all(deletes).await {
        assert_eq!(status, 200, "{body}");
    }
    // What was still starting then has given up by now; no sandbox's group is made again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left: Vec<_> = instance_groups(&instance)
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap().flatten())
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "groups of deleted sandboxes: {left:?}");
}

#[tokio::test]
async fn a_context_asked_of_a_sandbox_whose_pid_1_just_died_is_refused_and_the_fork_server_lives_on(
) {
    // A sandbox's pid 1 dead but not yet reaped (its helper stopped): the server still
    // counts it live, the fork server can open it but not enter its namespace, and
    // refuses. The refusal is an answer, not a fault: the fork server is not restarted.
    let s = Server::start_with(Some("test-key"), &["--warm-pool", "0"]).await;
    let sb = s.create("code-interpreter").await;
    assert_eq!(sb.run("python", "1 + 1").await["result"], "2");
    let zygote = common::zygote_pid(s.pid()).expect("the fork server runs");
    let init = sandbox_inits(s.pid() as i32)[0];
    let helper = parent_of(init);
    // SAFETY: signals to processes of this test's own server.
    unsafe {
        libc::kill(helper, libc::SIGSTOP);
        libc::kill(init, libc::SIGKILL);
    }
    while is_running(init) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = sb
        .call(
            reqwest::Method::POST,
            "/contexts",
            Some(json!({"language": "python"})),
        )
        .await;
    // SAFETY: as above.
    unsafe { libc::kill(helper, libc::SIGCONT) };
    // Refused, the start went on to the exec helper, which cannot join a dead sandbox either.
    assert!(!(200..300).contains(&status), "{status} {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("join sandbox"),
        "the exec helper's own failure: {body}"
    );
    assert_eq!(
        common::zygote_pid(s.pid()),
        Some(zygote),
        "the fork server was not restarted"
    );
    // It forks the next sandbox's contexts as before.
    let next = s.create("code-interpreter").await;
    assert_eq!(next.run("python", "2 + 2").await["result"], "4");
    assert_eq!(common::zygote_pid(s.pid()), Some(zygote));
}

/// The parent of a host process.
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}
