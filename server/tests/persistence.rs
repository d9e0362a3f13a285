//! State across faults: a `kill -9` of the server (records survive, running work is failed,
//! nothing of the old run keeps running) and a full data disk (writes are refused cleanly,
//! nothing is lost, and the server recovers once space is freed).

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use reqwest::Method;
use serde_json::{json, Value};

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

/// A second sandlotd on a data dir in use is refused, and the first one's sandboxes live on
/// (without the lock, its recovery killed them as leftovers of a crash).
#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused_and_harms_nothing() {
    let mut s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    assert_eq!(sb.run("python", "x = 41").await["exit_code"], 0);

    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_sandlotd"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "other",
            "--data-dir",
        ])
        .arg(&s.data_dir)
        .env("SANDLOT_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sandlotd runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second sandlotd started on a data dir in use");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains(&format!(
            "another sandlotd (pid {}) is using the data dir",
            s.pid()
        )),
        "{stderr}"
    );
    // The first server's sandbox, its context's state included, is untouched.
    assert_eq!(sb.run("python", "x + 1").await["results"][0]["text"], "42");

    // Once the first has gone, the directory is free again (a crash frees it too).
    s.crash_and_restart().await;
    let (status, list) = s.cp(Method::GET, "/v1/sandboxes", None).await;
    assert_eq!(status, 200, "{list}");
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

/// One client's view of a process it saw finished.
#[derive(Debug, Clone)]
struct SeenFinished {
    sandbox: usize,
    process_id: String,
    status: Value,
    exit_code: Value,
    stdout: Value,
}

/// A request that may fail (the server is killed under the clients): `None` then.
async fn try_call(
    sb: &common::Sandbox,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut rb = sb
        .http
        .request(method, format!("{}{path}", sb.agent))
        .header("Authorization", format!("Bearer {}", sb.token))
        .timeout(Duration::from_secs(10));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.ok()?;
    Some((status, body))
}

fn is_final(p: &Value) -> bool {
    !matches!(p["status"].as_str(), Some("queued" | "running"))
}

/// One of the 50 clients: starts runs, waits for each to end, lists; notes every process it
/// sees finished. Stops at the first failed request (the server is gone) or after `rounds`.
async fn client(
    n: usize,
    sandbox: usize,
    sb: common::Sandbox,
    rounds: usize,
    seen: Arc<Mutex<Vec<SeenFinished>>>,
) {
    let note = |p: &Value| {
        if is_final(p) {
            seen.lock().unwrap().push(SeenFinished {
                sandbox,
                process_id: p["process_id"].as_str().unwrap().to_string(),
                status: p["status"].clone(),
                exit_code: p["exit_code"].clone(),
                stdout: p["stdout"].clone(),
            });
        }
    };
    for round in 0..rounds {
        let code = format!("echo client-{n}-round-{round}; exit {}", round % 3);
        let body = json!({"code": code, "language": "bash", "name": format!("c{n}")});
        let Some((200, started)) =
            try_call(&sb, Method::POST, "/execute/background", Some(body)).await
        else {
            return;
        };
        let id = started["process_id"].as_str().unwrap().to_string();
        for _ in 0..200 {
            let Some((200, p)) =
                try_call(&sb, Method::GET, &format!("/execute/processes/{id}"), None).await
            else {
                return;
            };
            if is_final(&p) {
                note(&p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if round % 2 == 1 {
            let Some((200, list)) = try_call(&sb, Method::GET, "/execute/processes", None).await
            else {
                return;
            };
            list["processes"].as_array().unwrap().iter().for_each(note);
        }
    }
}

#[tokio::test]
async fn kill_9_among_50_busy_clients_loses_no_record_a_client_saw_finished() {
    let mut s = Server::start().await;
    let mut sandboxes = Vec::new();
    for _ in 0..5 {
        sandboxes.push(s.create("code-interpreter").await);
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..50)
        .map(|n| {
            let sandbox = n % sandboxes.len();
            tokio::spawn(client(
                n,
                sandbox,
                sandboxes[sandbox].clone(),
                100,
                seen.clone(),
            ))
        })
        .collect();
    // Let them work until plenty of runs have finished, then kill -9 in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.crash_and_restart().await; // the new server has another port: the clients stop
    for c in clients {
        c.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 50,
        "the clients saw only {} runs end",
        seen.len()
    );

    let mut listed = std::collections::HashMap::new();
    for (i, sb) in sandboxes.iter().enumerate() {
        let sb = common::Sandbox {
            agent: format!("{}/sandboxes/{}/agent", s.url, sb.id),
            ..sb.clone()
        };
        let (status, list) = sb.call(Method::GET, "/execute/processes", None).await;
        assert_eq!(status, 200, "{list}");
        for p in list["processes"].as_array().unwrap() {
            listed.insert(
                (i, p["process_id"].as_str().unwrap().to_string()),
                p.clone(),
            );
        }
    }
    let mut distinct = std::collections::HashSet::new();
    for f in &seen {
        distinct.insert(f.process_id.clone());
        let p = listed
            .get(&(f.sandbox, f.process_id.clone()))
            .unwrap_or_else(|| panic!("{} was seen finished and is not listed", f.process_id));
        assert_eq!(
            (&p["status"], &p["exit_code"], &p["stdout"]),
            (&f.status, &f.exit_code, &f.stdout),
            "{} changed across the kill",
            f.process_id
        );
    }
    eprintln!(
        "{} distinct processes seen finished by 50 clients, all listed after kill -9 ({} records listed)",
        distinct.len(),
        listed.len()
    );
}

/// A process's status as the store has it, read straight from the database file.
fn stored_status(db: &std::path::Path, process_id: &str) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT status FROM processes WHERE process_id = ?1",
        [process_id],
        |r| r.get(0),
    )
    .unwrap()
}

/// A small tmpfs the test mounts for a data dir; unmounted when dropped, also on failure.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(size_mb: u32) -> Self {
        let dir = common::unique_temp_dir("sandlot-fulldisk");
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mb}m,mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a {size_mb} MiB tmpfs on {}",
            dir.display()
        );
        SmallDisk { dir }
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x55u8; 64 * 1024];
        for size in [64 * 1024, 4096, 512, 1] {
            for _ in 0..1024 {
                if f.write_all(&chunk[..size])
                    .and_then(|()| f.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[tokio::test]
async fn a_full_data_disk_fails_writes_cleanly_keeps_records_and_recovers_once_freed() {
    let disk = SmallDisk::mount(16); // dropped after the server: unmounted last
    let mut s = Server::start_in(
        disk.dir.join("data"),
        Some("test-key"),
        &["--max-sandboxes", "2"],
    )
    .await;
    let sb = s.create("code-interpreter").await;
    let mut finished = Vec::new();
    for i in 0..3 {
        let p = sb
            .background(json!({"code": format!("echo before-{i}"), "language": "bash"}))
            .await;
        let id = p["process_id"].as_str().unwrap().to_string();
        finished.push(sb.wait_final(&id, 20).await);
    }

    // A run that ends while the disk is full: its final record waits for space.
    let late = sb
        .background(json!({
            "code": "sleep 1.5; head -c 262144 /dev/zero | tr '\\0' y", "language": "bash"
        }))
        .await;
    let late_id = late["process_id"].as_str().unwrap().to_string();

    let filler = disk.fill();
    // Runs that print 256 KiB each need room for their records: sooner or later a write is
    // refused, with a status and a code of its own.
    let big = "head -c 262144 /dev/zero | tr '\\0' x";
    let mut refused = None;
    for _ in 0..60 {
        let (status, body) = sb
            .call(
                Method::POST,
                "/execute/background",
                Some(json!({"code": big, "language": "bash"})),
            )
            .await;
        match status {
            200 => {
                let id = body["process_id"].as_str().unwrap().to_string();
                finished.push(sb.wait_final(&id, 20).await);
            }
            507 => {
                refused = Some(body);
                break;
            }
            other => panic!("a write on a full disk answered {other}: {body}"),
        }
    }
    let refused = refused.expect("no write was refused on a full disk");
    assert_eq!(refused["code"], "INSUFFICIENT_STORAGE", "{refused}");
    // Creating a sandbox fails cleanly too, and gives its uid back: with --max-sandboxes 2
    // and one sandbox, a leaked uid would turn the next attempts into 429s.
    for _ in 0..3 {
        let (status, body) = s
            .cp(
                Method::POST,
                "/v1/sandboxes",
                Some(json!({"template_name": "base"})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (507, Some("INSUFFICIENT_STORAGE")),
            "{body}"
        );
    }
    let late = sb.wait_final(&late_id, 20).await;
    assert_eq!(late["status"], "completed", "{late}");
    assert_eq!(late["stdout"].as_str().unwrap().len(), 262144);
    let db = disk.dir.join("data/sandlot.db");
    let held_back = stored_status(&db, &late_id);
    assert!(
        matches!(held_back.as_str(), "queued" | "running"),
        "the full disk refused its final record (or this test no longer fills it): {held_back}"
    );
    finished.push(late);
    // What was written before is intact and still served.
    for p in &finished {
        let now = sb.process(p["process_id"].as_str().unwrap()).await;
        assert_eq!(
            (&now["status"], &now["stdout"]),
            (&p["status"], &p["stdout"])
        );
    }

    std::fs::remove_file(filler).unwrap();
    let p = sb
        .background(json!({"code": "echo after", "language": "bash"}))
        .await;
    let after = sb.wait_final(p["process_id"].as_str().unwrap(), 20).await;
    assert_eq!(after["stdout"], "after\n");
    finished.push(after);
    let second = s.create("base").await;
    assert_ne!(second.id, sb.id);

    // The record the full disk held back is stored once there is room again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored_status(&db, &late_id) != "completed" {
        assert!(
            Instant::now() < deadline,
            "the held-back record was never stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After a kill -9 every run that finished is there as it was.
    s.crash_and_restart().await;
    let sb = common::Sandbox {
        agent: format!("{}/sandboxes/{}/agent", s.url, sb.id),
        ..sb
    };
    for p in &finished {
        let now = sb.process(p["process_id"].as_str().unwrap()).await;
        assert_eq!(
            (&now["status"], &now["exit_code"], &now["stdout"]),
            (&p["status"], &p["exit_code"], &p["stdout"]),
            "{}",
            p["process_id"]
        );
    }
    drop(s);
}
