//! The files API cannot leave its sandbox: `..`, absolute symlinks to host paths or to
//! another sandbox's workspace, `/proc` magic links, a symlink flipped while the API works,
//! FIFOs and devices. Each test plants something on the host that must never be read or
//! written through the API.

mod common;

use std::time::{Duration, Instant};

use common::files::get;
use common::Server;
use reqwest::Method;
use serde_json::{json, Value};

/// A host directory holding `secret.txt` with a marker no sandbox file contains.
fn host_secret() -> (std::path::PathBuf, String) {
    let dir = common::unique_temp_dir("sandlot-host-secret");
    std::fs::create_dir_all(&dir).unwrap();
    let marker = format!("HOST-SECRET-{}", dir.display());
    std::fs::write(dir.join("secret.txt"), &marker).unwrap();
    (dir, marker)
}

fn assert_not_exposed(status: u16, body: &Value, marker: &str, what: &str) {
    assert_ne!(status, 200, "{what} was answered: {body}");
    assert!(
        !body.to_string().contains(marker),
        "{what} exposed the host file: {body}"
    );
}

#[tokio::test]
async fn symlinks_cannot_reach_host_files_or_another_sandbox() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let other = s.create("code-interpreter").await;
    other
        .sh("echo other-sandbox-private > /workspace/private.txt")
        .await;
    let (host_dir, marker) = host_secret();
    let other_ws = s.sandboxes_dir().join(&other.id).join("workspace");
    assert!(
        other_ws.join("private.txt").exists(),
        "the other workspace is at {other_ws:?}"
    );
    let shadow_before = std::fs::read("/etc/shadow").ok();

    sb.sh(&format!(
            "cd /workspace && ln -s /etc/shadow shadow && ln -s {h} hostdir && ln -s {h}/secret.txt hostfile \
             && ln -s {o} otherws && ln -s ../../../../../../..{o}/private.txt rel \
             && ln -s {d} datadir && ln -s /proc/self/root procself && ln -s /proc/1/root proc1 \
             && ln -s /proc/1/cwd cwd1",
            h = host_dir.display(),
            o = other_ws.display(),
            d = s.data_dir.display()
        ),
    )
    .await;
    for path in [
        "/workspace/shadow",
        "/workspace/hostfile",
        "/workspace/hostdir/secret.txt",
        "/workspace/otherws/private.txt",
        "/workspace/rel",
        "/workspace/datadir/sandlot.db",
        "/workspace/procself/etc/hostname",
        "/workspace/proc1/workspace/../etc/passwd",
        "/workspace/proc1/tmp",
        "/workspace/cwd1/shadow",
    ] {
        for route in ["/files/read", "/files/download", "/files/list"] {
            let (status, body) = get(&sb, route, path).await;
            assert_not_exposed(status, &body, &marker, &format!("{route} {path}"));
            assert!(
                !body.to_string().contains("other-sandbox-private"),
                "{route} {path}: {body}"
            );
        }
    }
    // /proc/self names no process of the sandbox's pid namespace for the server (404), and
    // /proc/1 is root's, out of the sandbox user's reach (403). A magic link of the sandbox
    // user's own process passes those checks and is refused as a magic link.
    let (status, body) = get(&sb, "/files/read", "/workspace/proc1/etc/hostname").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{body}"
    );
    sb.background(
        json!({"language": "bash", "code": "ln -s /proc/$$/cwd /workspace/mycwd; exec sleep 60"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&sb, "/files/list", "/workspace")
        .await
        .1
        .to_string()
        .contains("mycwd")
    {
        assert!(Instant::now() < deadline, "the magic link was never made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(&sb, "/files/read", "/workspace/mycwd/otherws").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_PATH")),
        "magic links are refused: {body}"
    );
    let (_, e) = get(&sb, "/files/exists", "/workspace/hostfile").await;
    assert_eq!(
        e["exists"], false,
        "the host path does not exist inside the sandbox"
    );

    // Writes through the links land inside the sandbox or nowhere, never on the host.
    for path in [
        "/workspace/hostdir/pwned.txt",
        "/workspace/otherws/pwned.txt",
        "/workspace/datadir/pwned.txt",
    ] {
        let (status, body) = sb
            .call(
                Method::POST,
                "/files/write",
                Some(json!({"path": path, "content": "pwned"})),
            )
            .await;
        assert!(status != 200 || !body.to_string().is_empty(), "{path}");
    }
    let (status, _) = sb
        .call(
            Method::POST,
            "/files/write",
            Some(json!({"path": "/workspace/shadow", "content": "pwned"})),
        )
        .await;
    assert_eq!(status, 200, "a final symlink is replaced, not followed");
    let (status, _) = sb
        .call(
            Method::POST,
            "/files/rename",
            Some(json!({"from": "/workspace/hostfile", "to": "/workspace/moved"})),
        )
        .await;
    assert_eq!(status, 200, "rename moves the link itself");
    let (status, _) = sb
        .call(
            Method::DELETE,
            "/files/remove?path=/workspace/hostdir",
            None,
        )
        .await;
    assert_eq!(status, 200, "remove deletes the link itself");
    sb.sh("test -L /workspace/moved && ! test -e /workspace/hostdir")
        .await;

    assert!(
        !host_dir.join("pwned.txt").exists(),
        "a write reached the host"
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("secret.txt")).unwrap(),
        marker,
        "the host file is intact"
    );
    assert!(
        !other_ws.join("pwned.txt").exists(),
        "a write reached the other sandbox"
    );
    assert!(
        !s.data_dir.join("pwned.txt").exists(),
        "a write reached the data dir"
    );
    assert_eq!(
        std::fs::read("/etc/shadow").ok(),
        shadow_before,
        "/etc/shadow is untouched"
    );
    let _ = std::fs::remove_dir_all(&host_dir);
}

#[tokio::test]
async fn a_symlink_flipped_during_reads_and_writes_never_reaches_the_host() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let (host_dir, marker) = host_secret();
    let host_hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    sb.sh("mkdir -p /workspace/real && echo sandbox-data > /workspace/real/secret.txt && cp /etc/hostname /workspace/real/hostname").await;
    // A sandbox process flips /workspace/flip between its own dir, a host path and /etc.
    let flipper = format!(
        "import os\nn = 0\ntargets = ['/workspace/real', '{h}', '/etc', '/proc/1/root/etc']\n\
         while True:\n    t = targets[n % 4]; n += 1\n    os.symlink(t, '/workspace/.flip.tmp')\n    os.rename('/workspace/.flip.tmp', '/workspace/flip')\n",
        h = host_dir.display()
    );
    let p = sb
        .background(json!({"code": flipper, "language": "python", "timeout": 120}))
        .await;
    let pid = p["process_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut ok, mut refused) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..400 {
        if Instant::now() > deadline {
            break;
        }
        let name = if i % 2 == 0 { "secret.txt" } else { "hostname" };
        let (status, body) = get(&sb, "/files/read", &format!("/workspace/flip/{name}")).await;
        assert!(
            !body.to_string().contains(&marker),
            "a host file was read: {body}"
        );
        if status == 200 {
            let content = body["content"].as_str().unwrap();
            assert!(
                host_hostname.is_empty() || content != host_hostname,
                "the host's /etc/hostname was read"
            );
            ok += 1;
        } else {
            refused += 1;
        }
        let (status, _) = sb
            .call(
                Method::POST,
                "/files/write",
                Some(json!({"path": format!("/workspace/flip/w{i}.txt"), "content": "w"})),
            )
            .await;
        assert!(status != 500, "a write under the race is an error of ours");
    }
    sb.call(Method::POST, &format!("/execute/kill/{pid}"), None)
        .await;
    assert!(
        ok > 0,
        "some reads hit the sandbox's own files ({refused} refused)"
    );
    let leaked: Vec<_> = std::fs::read_dir(&host_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leaked.len(),
        1,
        "only secret.txt is in the host dir: {leaked:?}"
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("secret.txt")).unwrap(),
        marker
    );
    assert!(
        !std::path::Path::new("/etc/w0.txt").exists()
            && !std::path::Path::new("/etc/w1.txt").exists()
    );
    let _ = std::fs::remove_dir_all(&host_dir);
}

#[tokio::test]
async fn fifos_and_devices_are_refused_without_blocking() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    sb.sh(
        "mkfifo /workspace/fifo && ln -s /dev/zero /workspace/zero && ln -s /dev/urandom /tmp/rnd",
    )
    .await;
    for path in ["/workspace/fifo", "/workspace/zero", "/tmp/rnd"] {
        for route in ["/files/read", "/files/download"] {
            let started = Instant::now();
            let (status, body) =
                tokio::time::timeout(Duration::from_secs(10), get(&sb, route, path))
                    .await
                    .unwrap_or_else(|_| panic!("{route} {path} blocked"));
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some("NOT_A_REGULAR_FILE")),
                "{route} {path}: {body}"
            );
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
    // Writing onto a FIFO replaces it (temp file + rename), never opens it.
    let (status, body) = sb
        .call(
            Method::POST,
            "/files/write",
            Some(json!({"path": "/workspace/fifo", "content": "x"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, r) = get(&sb, "/files/read", "/workspace/fifo").await;
    assert_eq!(r["content"], "x");
}
