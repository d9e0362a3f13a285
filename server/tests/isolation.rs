//! Isolation of real sandboxes: identity, privileges, filesystem, network and limits.

mod common;

use common::Server;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn code_runs_unprivileged_with_no_capabilities_and_seccomp() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import os\nst = dict(l.split(':\\t') for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n\
             print(os.getuid(), os.geteuid(), st['CapEff'].strip(), st['CapBnd'].strip(), st['NoNewPrivs'].strip(), st['Seccomp'].strip())",
        )
        .await;
    let out: Vec<&str> = r["stdout"].as_str().unwrap().split_whitespace().collect();
    assert_ne!(out[0], "0", "not root: {r}");
    assert_eq!(out[0], out[1]);
    assert_eq!(out[2], "0000000000000000", "no effective capabilities");
    assert_eq!(out[3], "0000000000000000", "empty bounding set");
    assert_eq!(out[4], "1", "no_new_privs");
    assert_eq!(out[5], "2", "seccomp filter mode");
}

#[tokio::test]
async fn dangerous_syscalls_are_refused() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
             for name, call in [('unshare', lambda: libc.unshare(0x10000000)), ('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))]:\n\
             \x20   rc = call(); print(name, rc, os.strerror(ctypes.get_errno()))",
        )
        .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.contains("unshare -1 Operation not permitted"), "{r}");
    assert!(out.contains("mount -1 Operation not permitted"), "{r}");
}

#[tokio::test]
async fn host_files_are_invisible_and_the_system_is_read_only() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let data_dir = s.data_dir.to_string_lossy().to_string();
    let r = sb
        .run(
            "bash",
            &format!(
                "find /root /home -mindepth 1 | wc -l; test -e /etc/shadow && echo shadow-visible; test -e {data_dir} && echo datadir-visible; \
                 ls /proc | grep -E '^[0-9]+$' | wc -l; touch /usr/x 2>&1 | grep -c 'Read-only'; touch /etc/x 2>/dev/null || echo etc-ro; \
                 hostname"
            ),
        )
        .await;
    let lines: Vec<&str> = r["stdout"].as_str().unwrap().lines().collect();
    assert_eq!(lines[0].trim(), "0", "/root and /home are empty: {r}");
    let joined = lines.join("\n");
    assert!(
        !joined.contains("shadow-visible") && !joined.contains("datadir-visible"),
        "{r}"
    );
    let visible_pids: u32 = lines[1].trim().parse().unwrap();
    assert!(
        visible_pids < 10,
        "only the sandbox's own processes are visible, saw {visible_pids}"
    );
    assert_eq!(lines[2].trim(), "1", "/usr is read-only");
    assert_eq!(lines[3].trim(), "etc-ro");
    assert!(lines[4].starts_with("sandbox-"));
}

#[tokio::test]
async fn there_is_no_network() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import socket, os\nprint(sorted(n for _, n in socket.if_nameindex()))\n\
             try:\n    socket.getaddrinfo('pypi.org', 443); print('dns ok')\nexcept OSError as e: print('dns fails')\n\
             s = socket.socket()\ntry:\n    s.connect(('192.0.2.1', 9)); print('connected')\nexcept OSError as e: print('connect', e.errno)",
        )
        .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.starts_with("['lo']"), "{r}");
    assert!(out.contains("dns fails"), "{r}");
    assert!(
        out.contains(&format!("connect {}", libc::ENETUNREACH)),
        "{r}"
    );
}

#[tokio::test]
async fn each_sandbox_has_its_own_workspace_and_tmp() {
    let s = Server::start().await;
    let a = s.create("code-interpreter").await;
    let b = s.create("code-interpreter").await;
    a.run(
        "bash",
        "echo secret-a > /workspace/a.txt; echo tmp-a > /tmp/t.txt",
    )
    .await;
    let r = a.run("bash", "cat /workspace/a.txt /tmp/t.txt").await;
    assert_eq!(
        r["stdout"], "secret-a\ntmp-a\n",
        "files persist across runs in one sandbox"
    );
    let r = b
        .run("bash", "ls -A /workspace; cat /tmp/t.txt 2>&1 || true")
        .await;
    assert!(!r["stdout"].as_str().unwrap().contains("a.txt"), "{r}");
    assert!(
        r["stdout"].as_str().unwrap().contains("No such file"),
        "{r}"
    );
    let r = b.run("python", "import os; print(os.getuid())").await;
    let r2 = a.run("python", "import os; print(os.getuid())").await;
    assert_ne!(r["stdout"], r2["stdout"], "sandboxes run as different uids");
}

#[tokio::test]
async fn a_fork_bomb_hits_the_pids_limit_and_everything_else_carries_on() {
    let s = Server::start_with(Some("test-key"), &["--sandbox-pids", "32"]).await;
    let bomb = s.create("code-interpreter").await;
    let other = s.create("code-interpreter").await;
    let r = bomb
        .run(
            "python",
            "import os, time\nn = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n\
             \x20   if pid == 0:\n        time.sleep(5); os._exit(0)\n    n += 1\nprint('forked', n)",
        )
        .await;
    let forked: u32 = r["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .trim_start_matches("forked ")
        .parse()
        .unwrap();
    assert!(forked < 32, "pids limit holds: {forked} forks");
    // A classic shell fork bomb, in the background, bounded by its timeout.
    let p = bomb
        .background(json!({"code": ":(){ :|:& };:", "language": "bash", "timeout": 3}))
        .await;
    assert_eq!(
        other.run("python", "print('alive')").await["stdout"],
        "alive\n"
    );
    let done = bomb.wait_final(p["process_id"].as_str().unwrap(), 30).await;
    assert!(
        matches!(
            done["status"].as_str(),
            Some("timeout") | Some("completed") | Some("failed")
        ),
        "{done}"
    );
    let (status, _) = s.cp(Method::GET, "/health", None).await;
    assert_eq!(status, 200);
    let (status, _) = s
        .cp(Method::DELETE, &format!("/v1/sandboxes/{}", bomb.id), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(other.run("bash", "echo still").await["stdout"], "still\n");
}

#[tokio::test]
async fn the_memory_limit_holds_and_the_server_carries_on() {
    let s = Server::start_with(Some("test-key"), &["--sandbox-memory-mb", "128"]).await;
    let sb = s.create("code-interpreter").await;
    let r = sb.run("python", "x = bytearray(400 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])\nprint('allocated')").await;
    assert_ne!(
        r["exit_code"], 0,
        "400 MB in a 128 MB sandbox must fail: {r}"
    );
    assert!(!r["stdout"].as_str().unwrap().contains("allocated"));
    assert_eq!(
        sb.run("python", "print('after oom')").await["stdout"],
        "after oom\n"
    );
}
