//! Python contexts forked from the fork server ("zygote") against the real server: a forked
//! context is confined exactly like one started by the exec helper, reads nothing of the
//! host, and the fork server never holds a sandbox's data; contexts fall back to the exec
//! helper where a fork cannot reproduce the environment, and survive the fork server's
//! death by restarting.

mod common;

use common::{first_run, Sandbox, Server};
use reqwest::Method;
use serde_json::{json, Value};

/// What a python process says about its own confinement (run in a context or fresh).
const PROBE: &str = r#"
import ctypes, json, os, platform, random, resource, socket, sys
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
fds = {}
for f in os.listdir("/proc/self/fd"):
    try:
        fds[f] = os.readlink("/proc/self/fd/" + f)
    except OSError:
        pass
out = {k: status[k].strip() for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
        "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters", "PPid", "SigBlk")}
# Signals 1-31 (32 and 33 belong to glibc and depend on how the server was spawned).
out["SigIgn"] = int(status["SigIgn"], 16) & 0x7FFFFFFF
out["ns"] = {n: os.readlink("/proc/self/ns/" + n) for n in ("mnt", "pid", "net", "ipc", "uts", "cgroup")}
out["cgroup"] = open("/proc/self/cgroup").read().splitlines()
out["limits"] = {n: resource.getrlimit(getattr(resource, n)) for n in
        ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_AS")}
out["dumpable"] = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)
out["fds"] = fds
out["root"] = os.readlink("/proc/self/root")
out["cwd"] = os.getcwd()
out["leader"] = os.getsid(0) == os.getpid() == os.getpgid(0)
out["forked"] = "SANDLOT_ZYGOTE=1" in open("/proc/self/environ").read()
out["environ_owner"] = os.stat("/proc/self/environ").st_uid
out["uid"] = os.getuid()
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["host_paths"] = [p for p in ("/work", "/var/lib", "/sys/fs/cgroup/memory", "/etc/shadow") if os.path.exists(p)]
out["node"] = [platform.node(), socket.gethostname()]
out["path"] = sys.path
out["random"] = random.random()
out["home"] = os.environ.get("HOME")
out["env_keys"] = sorted(os.environ)
out["env"] = dict(os.environ)
# IPython's directory history (none in a fresh process): where the shell started.
out["dh"] = [str(p) for p in globals().get("_dh", [])]
# libc's record of the main thread's id is right (a fork made with clone3 must set it):
# signalling the main thread from another one reaches it.
import signal, threading
reached = []
t = threading.Thread(target=lambda: reached.append(signal.pthread_kill(threading.main_thread().ident, 0)))
t.start()
t.join()
out["pthread_kill_main"] = reached == [None]
print(json.dumps(out))
"#;

async fn probe(sb: &Sandbox, extra: Value) -> Value {
    let mut body = json!({"code": PROBE, "language": "python"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, out) = sb.call(Method::POST, "/execute", Some(body)).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["exit_code"], 0, "the probe ran: {out}");
    serde_json::from_str(out["stdout"].as_str().unwrap()).unwrap()
}

async fn create_with_env(s: &Server, env: Value) -> Sandbox {
    s.create_from(json!({"template_name": "code-interpreter", "env_vars": env}))
        .await
        .0
}

/// Restarts the sandbox's default python context: a new interpreter, forked again.
async fn restart_default_python(sb: &Sandbox) {
    let (_, restarted) = sb
        .call(
            Method::POST,
            "/contexts/default-python/restart",
            Some(json!({})),
        )
        .await;
    assert_eq!(restarted["state"], "idle", "{restarted}");
}

#[tokio::test]
async fn a_forked_python_context_is_confined_exactly_like_an_exec_d_one() {
    let s = Server::start().await;
    // The default environment can be forked; a locale of its own cannot (the interpreter
    // reads it only as it starts), so that context is exec'd.
    let forked_sb = s.create("code-interpreter").await;
    let exec_sb = create_with_env(&s, json!({"LC_ALL": "C.UTF-8"})).await;
    let forked = probe(&forked_sb, json!({})).await;
    let execd = probe(&exec_sb, json!({})).await;
    let fresh = probe(&forked_sb, json!({"fresh": true})).await;
    assert_eq!(forked["forked"], true, "{forked}");
    assert_eq!(execd["forked"], false, "{execd}");
    assert_eq!(fresh["forked"], false, "{fresh}");

    // The same confinement, field by field.
    for key in [
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
        "PPid",
        "SigBlk",
        "SigIgn",
        "limits",
        "dumpable",
        "root",
        "cwd",
        "leader",
        "host_paths",
        "path",
        "home",
        "pthread_kill_main",
    ] {
        assert_eq!(forked[key], execd[key], "{key}: forked vs exec'd context");
        if !["SigIgn", "path"].contains(&key) {
            assert_eq!(
                forked[key], fresh[key],
                "{key}: forked context vs fresh process"
            );
        }
    }
    assert_eq!(forked["CapEff"], "0000000000000000");
    assert_eq!(forked["CapBnd"], "0000000000000000");
    assert_eq!(forked["NoNewPrivs"], "1");
    assert_eq!(forked["Seccomp"], "2");
    assert_eq!(forked["PPid"], "0", "its parent is outside the sandbox");
    assert_eq!(forked["dumpable"], 1);
    assert_eq!(forked["pthread_kill_main"], true, "{forked}");
    assert_eq!(forked["host_paths"], json!([]), "{forked}");
    // The environment is the sandbox's, nothing of the fork server's (the exec'd context's
    // sandbox has LC_ALL besides).
    let mut forked_env: Vec<Value> = forked["env_keys"].as_array().unwrap().clone();
    forked_env.push(json!("LC_ALL"));
    forked_env.sort_by_key(|v| v.as_str().unwrap().to_string());
    assert_eq!(json!(forked_env), execd["env_keys"], "{forked}\n{execd}");
    // And so are the values (the fork server took the usual ones on before forking).
    let mut execd_env = execd["env"].as_object().unwrap().clone();
    execd_env.remove("LC_ALL");
    assert_eq!(forked["env"], Value::Object(execd_env), "{forked}\n{execd}");
    assert_eq!(forked["dh"], json!(["/workspace"]), "{forked}");
    assert_eq!(forked["dh"], execd["dh"]);
    // The sandbox's uid, as its fresh processes have it; /proc/self is its own.
    assert_eq!(forked["uid"], fresh["uid"]);
    assert_eq!(forked["environ_owner"], fresh["uid"]);
    let uid = fresh["uid"].as_u64().unwrap();
    assert_eq!(forked["Uid"], format!("{uid}\t{uid}\t{uid}\t{uid}"));
    // The sandbox's namespaces and cgroups (the last line is the context's tracking group).
    assert_eq!(forked["ns"], fresh["ns"], "namespaces of the sandbox");
    assert_ne!(forked["ns"], execd["ns"], "two sandboxes");
    let lines = |v: &Value| -> Vec<String> {
        v["cgroup"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let (fl, el, frl) = (lines(&forked), lines(&execd), lines(&fresh));
    assert_eq!(
        fl[..fl.len() - 1],
        frl[..frl.len() - 1],
        "{fl:?} vs {frl:?}"
    );
    assert!(fl
        .last()
        .unwrap()
        .starts_with("0::/context.default-python."));
    assert_eq!(fl.len(), el.len());
    // The same descriptors: the command pipe, stdout, stderr, the replies, IPython's
    // /dev/null; nothing of the host.
    let kinds = |v: &Value| -> Vec<(String, String)> {
        let mut k: Vec<_> = v["fds"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(fd, t)| {
                (
                    fd.clone(),
                    t.as_str().unwrap().split(':').next().unwrap().to_string(),
                )
            })
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        kinds(&forked),
        kinds(&execd),
        "{} vs {}",
        forked["fds"],
        execd["fds"]
    );
    // It sees its own sandbox: its hostname (not one the fork server read on the host) and
    // its own processes only.
    let node = &forked["node"];
    assert_eq!(node[0], node[1], "{node}");
    assert!(node[0].as_str().unwrap().starts_with("sandbox-"), "{node}");
    assert!(forked["pids"].as_array().unwrap().len() < 10, "{forked}");
}

#[tokio::test]
async fn forked_contexts_get_their_own_random_state_and_the_sandbox_env() {
    let s = Server::start().await;
    let a = create_with_env(&s, json!({"GREETING": "hello a"})).await;
    let b = create_with_env(&s, json!({"GREETING": "hello b"})).await;
    let code =
        "import os, random\nprint(os.environ['GREETING'], random.random(), os.urandom(8).hex())";
    let out_a = a.run("python", code).await;
    let out_b = b.run("python", code).await;
    let (sa, sb) = (
        out_a["stdout"].as_str().unwrap(),
        out_b["stdout"].as_str().unwrap(),
    );
    assert!(sa.starts_with("hello a "), "{out_a}");
    assert!(sb.starts_with("hello b "), "{out_b}");
    let tail = |s: &str| s.split(' ').skip(2).collect::<Vec<_>>().join(" ");
    assert_ne!(tail(sa), tail(sb), "two forks drew the same random numbers");
    // PYTHONPATH applies as it would at an interpreter's start.
    let c = create_with_env(&s, json!({"PYTHONPATH": "/workspace/lib"})).await;
    c.sh("mkdir -p /workspace/lib && echo 'X = 7' > /workspace/lib/mymod.py")
        .await;
    restart_default_python(&c).await;
    let out = c
        .run("python", "import mymod, sys\nprint(mymod.X, sys.path[1])")
        .await;
    assert_eq!(out["stdout"], "7 /workspace/lib\n", "{out}");
}

/// A sandbox's own variables over the usual ones, and a context in another directory: the
/// fork changes what differs from the fork server's usual environment and directory.
#[tokio::test]
async fn a_forked_context_takes_its_sandbox_s_variables_over_the_usual_ones() {
    let s = Server::start().await;
    let sb = create_with_env(
        &s,
        json!({"HOME": "/tmp", "PATH": "/usr/bin:/bin", "EXTRA": "x"}),
    )
    .await;
    let out = probe(&sb, json!({})).await;
    assert_eq!(out["forked"], true, "{out}");
    for (name, value) in [("HOME", "/tmp"), ("PATH", "/usr/bin:/bin"), ("EXTRA", "x")] {
        assert_eq!(out["env"][name], value, "{out}");
    }
    assert_eq!(
        out["env"]["USER"], "user",
        "the usual ones it did not replace"
    );
    assert!(out["env"].get("SANDLOT_ZYGOTE").is_none(), "{out}");
    let home = sb
        .run("python", "import os\nprint(os.path.expanduser('~'))")
        .await;
    assert_eq!(home["stdout"], "/tmp\n", "{home}");
    // Runs apply the sandbox's variables anew; between them the process's own environment
    // shows, which must be the sandbox's too.
    sb.run(
        "python",
        "import os, threading, time\nseen = []\n\
         threading.Thread(target=lambda: (time.sleep(0.3), seen.append(os.environ['HOME']))).start()",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let between = sb.run("python", "print(seen)").await;
    assert_eq!(between["stdout"], "['/tmp']\n", "{between}");

    let (status, ctx) = sb
        .call(
            Method::POST,
            "/contexts",
            Some(json!({"language": "python", "cwd": "/tmp"})),
        )
        .await;
    assert_eq!(status, 200, "{ctx}");
    let body = json!({"context_id": ctx["id"], "language": "python",
        "code": "import os\nprint(os.getcwd(), [str(p) for p in _dh], os.environ['EXTRA'])"});
    let (_, run) = sb.call(Method::POST, "/execute", Some(body)).await;
    assert_eq!(run["stdout"], "/tmp ['/tmp'] x\n", "{run}");
}

#[tokio::test]
async fn a_forked_context_is_a_whole_interpreter_fork_handlers_profile_and_user_site() {
    let s = Server::start().await;
    let sb = create_with_env(&s, json!({})).await;
    // The zygote's forks skip threading's fork handler; the context's own forks run it: a
    // fork made while another thread lives has only its main thread.
    let code = r#"
import os, threading
ev = threading.Event()
t = threading.Thread(target=ev.wait, daemon=True)
t.start()
r, w = os.pipe()
threads = threading.active_count()
pid = os.fork()
if pid == 0:
    os.write(w, f"{threading.active_count()} {threading.current_thread() is threading.main_thread()}".encode())
    os._exit(0)
os.waitpid(pid, 0)
ev.set()
print(os.read(r, 100).decode(), threads)
"#;
    let out = sb.run("python", code).await;
    assert_eq!(out["stdout"], "1 True 2\n", "{out}");
    // The shell's profile directory, made after the first run, as IPython makes it.
    let code = r#"
import os, stat
pd = get_ipython().profile_dir
print(sorted(os.listdir(pd.location)), oct(stat.S_IMODE(os.stat(pd.security_dir).st_mode)),
      os.path.getsize(os.path.join(pd.startup_dir, "README")) > 0)
"#;
    let out = sb.run("python", code).await;
    assert_eq!(
        out["stdout"], "['log', 'pid', 'security', 'startup'] 0o700 True\n",
        "{out}"
    );
    // The user's site directory under the sandbox's HOME is on sys.path, as at an
    // interpreter's start.
    sb.sh("d=$(python3 -c 'import site; print(site.getusersitepackages())') && mkdir -p $d && echo 'Y = 5' > $d/usermod.py")
        .await;
    restart_default_python(&sb).await;
    let code = "import usermod, site\nprint(usermod.Y, site.getusersitepackages() == usermod.__file__.rsplit('/', 1)[0])";
    let out = sb.run("python", code).await;
    assert_eq!(out["stdout"], "5 True\n", "{out}");
}

#[tokio::test]
async fn the_first_run_in_a_context_sees_a_shell_with_no_past() {
    // The driver warms its shell up with stored runs and then puts back all they changed:
    // the first run sees what a new IPython shell shows, made here in a fresh process.
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    first_run::assert_no_past(&sb).await;
}

#[tokio::test]
async fn a_forked_context_gets_an_environment_larger_than_a_pipe_holds() {
    // The fork's configuration is in its command pipe before it is forked, as much as the
    // pipe holds (64 KiB); an environment of 240 KB is the rest, written after the fork.
    let s = Server::start().await;
    let env: serde_json::Map<String, Value> = (0..4)
        .map(|i| (format!("BIG{i}"), json!(i.to_string().repeat(60_000))))
        .collect();
    let sb = create_with_env(&s, Value::Object(env)).await;
    let out = sb
        .run(
            "python",
            "import os\nprint([len(os.environ[f'BIG{i}']) for i in range(4)], os.environ['BIG3'][:3])\n\
             print('SANDLOT_ZYGOTE=1' in open('/proc/self/environ').read())",
        )
        .await;
    assert_eq!(
        out["stdout"], "[60000, 60000, 60000, 60000] 333\nTrue\n",
        "{out}"
    );
}

#[tokio::test]
async fn the_fork_server_never_holds_a_sandbox_s_data() {
    let s = Server::start().await;
    let secret = "s3cr3t-value-4f1c9e";
    let sb = create_with_env(&s, json!({"API_TOKEN": secret})).await;
    let out = sb
        .run("python", "import os\nprint(os.environ['API_TOKEN'][:6])")
        .await;
    assert_eq!(out["stdout"], "s3cr3t\n", "{out}");
    let probe = probe(&sb, json!({})).await;
    assert_eq!(probe["forked"], true, "the context was forked");
    // Every readable page of the fork server: the sandbox's environment is not there.
    let pid = common::zygote_pid(s.pid()).expect("the fork server runs");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut scanned = 0usize;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (range, perms) = (parts.next().unwrap(), parts.next().unwrap());
        if !perms.starts_with('r') || line.contains("[vvar") || line.contains("[vsyscall") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut buf = vec![0u8; (end - start) as usize];
        use std::io::{Read, Seek, SeekFrom};
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        scanned += buf.len();
        assert!(
            !buf.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the sandbox's secret is in the fork server's memory ({line})"
        );
    }
    assert!(scanned > 10 << 20, "scanned only {scanned} bytes");
}

#[tokio::test]
async fn without_the_fork_server_python_contexts_start_as_new_interpreters() {
    // Turned off: every context is exec'd, and works the same.
    let s = Server::start_with(Some("test-key"), &["--context-zygote", "false"]).await;
    let sb = s.create("code-interpreter").await;
    let out = probe(&sb, json!({})).await;
    assert_eq!(out["forked"], false, "{out}");
    assert_eq!(sb.run("python", "x = 1\nx + 1").await["result"], "2");
    assert!(common::zygote_pid(s.pid()).is_none(), "no fork server runs");
    drop(s);

    // On: an environment an interpreter reads only as it starts goes to the exec helper,
    // which applies it.
    let s = Server::start().await;
    let sb = create_with_env(&s, json!({"PYTHONHASHSEED": "0"})).await;
    let out = sb
        .run(
            "python",
            "import sys\nprint(sys.flags.hash_randomization, open('/proc/self/environ').read().count('SANDLOT_ZYGOTE'))",
        )
        .await;
    assert_eq!(out["stdout"], "0 0\n", "{out}");
}

#[tokio::test]
async fn contexts_restart_when_the_fork_server_dies_and_it_starts_again() {
    let s = Server::start().await;
    let sb = s.create("code-interpreter").await;
    assert_eq!(sb.run("python", "x = 5\nx").await["result"], "5");
    let pid = common::zygote_pid(s.pid()).expect("the fork server runs");
    // SAFETY: SIGKILL to the fork server this test's server started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Its forks die with it (as an exec'd driver dies with its helper): the next run says
    // the context was restarted; the one after runs in a new fork.
    let mut said = Value::Null;
    for _ in 0..50 {
        said = sb.run("python", "x").await;
        if said["execution_error"]["name"] == "ContextRestarted" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        said["execution_error"]["name"], "ContextRestarted",
        "{said}"
    );
    let again = probe(&sb, json!({})).await;
    assert_eq!(
        again["forked"], true,
        "forked from a new fork server: {again}"
    );
    let new_pid = common::zygote_pid(s.pid()).expect("the fork server runs again");
    assert_ne!(new_pid, pid);
}

#[tokio::test]
async fn an_idle_context_stops_and_the_next_run_starts_a_new_one_quietly() {
    let s = Server::start_with(Some("test-key"), &["--context-idle-secs", "1"]).await;
    let sb = s.create("code-interpreter").await;
    assert_eq!(sb.run("python", "x = 5\nx").await["result"], "5");
    // The reaper looks every second: within a few, the interpreter is gone.
    let mut state = Value::Null;
    for _ in 0..50 {
        let (_, list) = sb.call(Method::GET, "/contexts", None).await;
        state = list["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "default-python")
            .map(|c| c["state"].clone())
            .unwrap_or(Value::Null);
        if state == "stopped" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(state, "stopped", "the idle context was not stopped");
    // The next run starts a new interpreter without a word: no error, fresh state, forked.
    let out = sb
        .run(
            "python",
            "print('x' in dir())\nopen('/proc/self/environ').read().count('SANDLOT_ZYGOTE')",
        )
        .await;
    assert_eq!(out["stdout"], "False\n", "{out}");
    assert_eq!(out["result"], "1", "forked again: {out}");
    assert!(out.get("execution_error").is_none(), "{out}");
}
