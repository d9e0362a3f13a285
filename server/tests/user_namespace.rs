//! Each sandbox's user namespace: its pid 1 (root inside) is an unprivileged host id of that
//! sandbox's own, its user keeps one id inside and out, and nothing else is mapped.

mod common;

use common::{pids_with_cmdline, Server};

/// The `Uid:` line of a host process: real, effective, saved, fs.
fn host_uids(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect()
}

/// The id map a sandbox reports, as (inside, outside, count) lines.
fn id_map(text: &str) -> Vec<(u64, u64, u64)> {
    text.lines()
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (v[0], v[1], v[2])
        })
        .collect()
}

#[tokio::test]
async fn root_inside_a_sandbox_is_an_unprivileged_host_id_of_its_own() {
    let s = Server::start().await;
    let a = s.create("code-interpreter").await;
    let b = s.create("base").await;
    let user: u64 = a.sh("id -u").await.trim().parse().unwrap();
    let map = id_map(&a.sh("cat /proc/self/uid_map").await);
    assert_eq!(map, vec![(0, user + 60_000, 1), (user, user, 1)], "uid_map");
    assert_eq!(
        id_map(&a.sh("cat /proc/self/gid_map").await),
        map,
        "gid_map"
    );
    assert_eq!(
        a.sh("awk '/^Uid:/ {print $2}' /proc/1/status").await.trim(),
        "0",
        "pid 1 is root inside"
    );
    // Another sandbox's ids are its own.
    let other_user: u64 = b.sh("id -u").await.trim().parse().unwrap();
    assert_ne!(other_user, user);
    assert_eq!(
        id_map(&b.sh("cat /proc/self/uid_map").await)[0],
        (0, other_user + 60_000, 1)
    );

    // On the host, pid 1 of each sandbox runs as that root id, not as root.
    let roots: Vec<Vec<u32>> = pids_with_cmdline("sandlot-init __sandbox-spawner")
        .into_iter()
        .map(host_uids)
        .filter(|uids| uids[0] != 0)
        .collect();
    for expected in [user + 60_000, other_user + 60_000] {
        assert!(
            roots.contains(&vec![expected as u32; 4]),
            "a pid 1 runs as host uid {expected}: {roots:?}"
        );
    }
    // Nothing else of the host is mapped: host root's files show as nobody's.
    let owner = a.sh("stat -c %u:%g /usr/bin/env").await;
    assert_eq!(owner.trim(), "65534:65534");
}

#[tokio::test]
async fn a_process_cannot_become_root_again_in_its_sandbox() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import os\ntry:\n    os.setuid(0)\n    print('became root')\nexcept PermissionError as e:\n    print('refused', e.errno)",
        )
        .await;
    assert_eq!(r["stdout"], "refused 1\n", "{r}");
}

#[tokio::test]
async fn without_a_user_namespace_sandboxes_still_run() {
    let s = Server::start_with(None, &["--user-namespace", "false"]).await;
    let sb = s.create("code-interpreter").await;
    let map = id_map(&sb.sh("cat /proc/self/uid_map").await);
    assert_eq!(map, vec![(0, 0, 4_294_967_295)], "the host's own namespace");
    let r = sb.run("python", "print(6 * 7)").await;
    assert_eq!(r["stdout"], "42\n", "{r}");
}
