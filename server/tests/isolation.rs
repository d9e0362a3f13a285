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
async fn each_sandbox_has_a_network_namespace_of_its_own_with_lo_up() {
    // More at once than the server makes ahead: some sandboxes get a namespace made
    // beforehand, the rest make their own; none may share one, with the host or each other.
    let s = Server::start().await;
    let sandboxes =
        futures_util::future::join_all((0..8).map(|_| s.create("code-interpreter"))).await;
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let mut seen = std::collections::HashSet::new();
    for sb in &sandboxes {
        let r = sb
            .run(
                "python",
                "import os, socket\nl = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
                 c = socket.create_connection(l.getsockname()); a, _ = l.accept(); c.send(b'x')\n\
                 print(os.readlink('/proc/self/ns/net'), a.recv(1).decode())",
            )
            .await;
        let out = r["stdout"].as_str().unwrap().trim().to_string();
        let (ns, echoed) = out.split_once(' ').unwrap_or_else(|| panic!("{r}"));
        assert_eq!(echoed, "x", "lo is up: {r}");
        assert_ne!(std::path::Path::new(ns), host, "not the host's");
        assert!(seen.insert(ns.to_string()), "{ns} is shared");
    }
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
    // The killed interpreter was the python context's: the next run restarts it and says so
    // (without running), the one after runs as usual.
    let restarted = sb.run("python", "print('after oom')").await;
    assert_eq!(
        restarted["execution_error"]["name"], "ContextRestarted",
        "{restarted}"
    );
    assert_eq!(
        sb.run("python", "print('after oom')").await["stdout"],
        "after oom\n"
    );
}

#[tokio::test]
async fn proc_hides_host_kernel_files_and_is_read_only() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import errno, os\n\
             def read(p):\n    try: return repr(open(p, 'rb').read())\n    except OSError as e: return errno.errorcode[e.errno]\n\
             def write(p):\n    try:\n        with open(p, 'w') as f: f.write('1')\n        return 'written'\n    except OSError as e: return errno.errorcode[e.errno]\n\
             for p in ['kcore', 'keys', 'timer_list', 'sched_debug']: print(p, read('/proc/' + p))\n\
             print('acpi', os.listdir('/proc/acpi') if os.path.isdir('/proc/acpi') else 'absent')\n\
             print('ns_last_pid', write('/proc/sys/kernel/ns_last_pid'))\n\
             print('sysrq-trigger', write('/proc/sysrq-trigger'))\n\
             opts = {l.split()[4]: l.split()[5].split(',')[0] for l in open('/proc/self/mountinfo')}\n\
             for m in ['sys', 'irq', 'bus', 'fs']: print('mount-' + m, opts.get('/proc/' + m, 'absent'))",
        )
        .await;
    let got = common::key_values(r["stdout"].as_str().unwrap());
    // Masked files read as /dev/null; kcore does not exist on every kernel (not on this one).
    for file in ["kcore", "keys", "timer_list", "sched_debug"] {
        assert!(
            got[file] == "b''" || got[file] == "ENOENT",
            "/proc/{file} shows nothing: {r}"
        );
    }
    assert!(
        std::fs::metadata("/proc/timer_list").is_ok_and(|m| m.len() == 0)
            && !std::fs::read("/proc/timer_list").unwrap().is_empty(),
        "the host's timer_list has content, so the empty read above is the mask"
    );
    assert!(got["acpi"] == "[]" || got["acpi"] == "absent", "{r}");
    // ns_last_pid is 0666; without the read-only mount the write would fail with EPERM
    // (a capability check), not EROFS.
    assert_eq!(got["ns_last_pid"], "EROFS", "{r}");
    assert_ne!(got["sysrq-trigger"], "written", "{r}");
    for dir in ["sys", "irq", "bus", "fs"] {
        if std::path::Path::new(&format!("/proc/{dir}")).exists() {
            assert_eq!(
                got[&format!("mount-{dir}")],
                "ro",
                "/proc/{dir} read-only: {r}"
            );
        }
    }
}

#[tokio::test]
async fn workspace_is_nosuid_nodev_and_setuid_files_confer_nothing() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    // A set-user-ID root binary placed in the workspace from the host (the case nosuid is
    // for: a file the sandbox could not have made itself).
    let ws = s.sandboxes_dir().join(&sb.id).join("workspace");
    let rootid = ws.join("rootid");
    std::fs::copy("/usr/bin/id", &rootid).unwrap();
    std::os::unix::fs::chown(&rootid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(
        &rootid,
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    let r = sb
        .run(
            "bash",
            "grep ' /workspace ' /proc/self/mountinfo | cut -d' ' -f6; \
             cp /usr/bin/id /workspace/myid && chmod u+s /workspace/myid && stat -c %A /workspace/myid; \
             stat -c '%U %A' /workspace/rootid; /workspace/rootid -u; /workspace/myid -u; id -u",
        )
        .await;
    let lines: Vec<&str> = r["stdout"].as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 6, "{r}");
    let opts: Vec<&str> = lines[0].split(',').collect();
    assert!(opts.contains(&"nosuid") && opts.contains(&"nodev"), "{r}");
    assert_eq!(lines[1], "-rwsr-xr-x", "the set-user-ID bit is set: {r}");
    // Host root is no one in the sandbox's user namespace.
    assert_eq!(lines[2], "nobody -rwsr-xr-x", "{r}");
    let own = lines[5];
    assert_ne!(own, "0");
    assert_eq!(
        lines[3], own,
        "a set-user-ID root file runs as the sandbox user: {r}"
    );
    assert_eq!(lines[4], own, "{r}");
}

#[tokio::test]
async fn host_sandbox_directories_are_closed_to_other_host_users() {
    use std::os::unix::fs::MetadataExt;
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let user: u32 = sb.sh("id -u").await.trim().parse().unwrap();
    let sandboxes = s.sandboxes_dir();
    // The sandboxes' directory is root's; each sandbox's own is its root id's (the host id
    // root has in its user namespace, no one else's), so its pid 1 can mount in it.
    for (dir, owner) in [
        (sandboxes.clone(), 0),
        (sandboxes.join(&sb.id), user + 60_000),
    ] {
        let m = std::fs::metadata(&dir).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o700, "{}", dir.display());
        assert_eq!(m.uid(), owner, "{}", dir.display());
    }
    // The workspace is still the sandbox's, through its bind mount.
    let r = sb
        .run("bash", "echo hi > /workspace/f && cat /workspace/f")
        .await;
    assert_eq!(r["stdout"], "hi\n", "{r}");
}

#[tokio::test]
async fn a_create_that_fails_releases_its_uid_and_leaves_nothing_behind() {
    let s = Server::start_with(Some("test-key"), &["--max-sandboxes", "1"]).await;
    // Make the sandbox directories impossible to create: a file where the directory was.
    let sandboxes = s.sandboxes_dir();
    let away = sandboxes.with_extension("away");
    std::fs::rename(&sandboxes, &away).unwrap();
    std::fs::write(&sandboxes, "").unwrap();
    let body = json!({"template_name": "code-interpreter"});
    for _ in 0..2 {
        let (status, reply) = s
            .cp(Method::POST, "/v1/sandboxes", Some(body.clone()))
            .await;
        assert_eq!(
            status, 500,
            "fails on its directories, not on a uid still held: {reply}"
        );
    }
    std::fs::remove_file(&sandboxes).unwrap();
    std::fs::rename(&away, &sandboxes).unwrap();
    assert_eq!(
        std::fs::read_dir(&sandboxes).unwrap().count(),
        0,
        "no directory left behind"
    );
    // With --max-sandboxes 1, a uid leaked by either failure would make this a 429.
    let sb = s.create("code-interpreter").await;
    assert_eq!(sb.run("bash", "echo up").await["stdout"], "up\n");
}

#[tokio::test]
async fn open_files_beyond_the_per_process_budget_fail_with_emfile() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let r = sb
        .run(
            "python",
            "import errno, os, resource\nprint(*resource.getrlimit(resource.RLIMIT_NOFILE))\nn = 0\n\
             try:\n    while True: os.open('/dev/null', os.O_RDONLY); n += 1\n\
             except OSError as e: print(n, errno.errorcode[e.errno])\n\
             try: resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096)); print('raised')\n\
             except (ValueError, OSError): print('cannot raise')",
        )
        .await;
    let lines: Vec<&str> = r["stdout"].as_str().unwrap().lines().collect();
    assert_eq!(
        lines[0], "1024 1024",
        "256 pids x 1024 = the 262,144 budget: {r}"
    );
    let (opened, err) = lines[1].split_once(' ').unwrap();
    let opened: u32 = opened.parse().unwrap();
    assert!((1000..1024).contains(&opened), "{r}");
    assert_eq!(err, "EMFILE", "{r}");
    assert_eq!(lines[2], "cannot raise", "{r}");
}

#[tokio::test]
async fn exec_config_never_appears_on_a_host_command_line() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).unwrap();
    let secret = format!(
        "s3cr3t-{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let p = sb
        .background(json!({
            "code": "echo \"started ${#SECRET_TOKEN}\"; sleep 30",
            "language": "bash",
            "env": {"SECRET_TOKEN": secret},
            "timeout": 60,
        }))
        .await;
    let id = p["process_id"].as_str().unwrap();
    // The process has the variable (its length printed) and is still running, so its
    // helper is alive too.
    sb.wait_output(id, &format!("started {}", secret.len()), 10)
        .await;
    assert!(
        common::pids_with_cmdline(&secret).is_empty(),
        "the secret shows in a host command line"
    );
    assert!(
        common::pids_with_cmdline("SECRET_TOKEN").is_empty(),
        "the environment shows in a host command line"
    );
    let (status, _) = sb
        .call(Method::POST, &format!("/execute/kill/{id}"), None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_sandbox_sees_its_own_cgroups_as_the_root_and_nothing_of_the_host_tree() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let own = sb.sh("cat /proc/self/cgroup").await;
    let init = sb.sh("cat /proc/1/cgroup").await;
    for line in own.lines().chain(init.lines()) {
        let path = line.splitn(3, ':').nth(2).unwrap();
        assert!(
            !path.contains("sandlot-") && !path.contains(&sb.id),
            "no host cgroup path shows inside: {line}"
        );
    }
    // pid 1 is at the root of every hierarchy (its namespace was made with its groups).
    assert!(init.lines().all(|l| l.ends_with(":/")), "{init}");
}

#[tokio::test]
async fn pid_1_names_no_host_path() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    let cmdline = sb.sh("tr '\\0' ' ' < /proc/1/cmdline").await;
    assert_eq!(cmdline.trim(), "sandlot-init __sandbox-spawner");
}
