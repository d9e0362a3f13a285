//! Runs one process in a sandbox through the `__sandbox-exec` helper and records its end.
//!
//! The runner owns the process from spawn to final status: it feeds the exec config and the
//! program text on the helper's stdin, pumps stdout and stderr into the entry's bounded
//! buffers, and waits for whichever comes first of exit, timeout, a stop request, or server
//! shutdown. Stopping kills
//! the process's whole tree through its tracking cgroup (and its process group as a fallback).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::events::Stream;
use super::launch::Launch;
use super::{ProcessEntry, StopReason};
use crate::sandbox::isolation::{exec_input, ExecConfig, EXEC_SUBCOMMAND};

/// Runs the process to its end and leaves the final state in `entry`.
pub async fn run(entry: Arc<ProcessEntry>, launch: Launch, code: String) {
    let procs = match launch.cgroups.create_process(&launch.sandbox_id, &entry.id) {
        Ok(p) => p,
        Err(e) => return entry.fail_to_start(format!("could not create the process cgroup: {e}")),
    };
    let cfg = ExecConfig {
        init_pid: launch.init_pid,
        cgroup_procs: procs,
        uid: launch.uid,
        gid: launch.uid,
        cwd: launch.cwd.clone(),
        argv: launch.argv.clone(),
        env: launch.env.clone(),
        code: launch.delivery,
        rlimits: launch.rlimits.clone(),
        program_len: None,
        user_ns: crate::sandbox::isolation::has_own_user_namespace(launch.init_pid),
    };
    // The config (with the process's environment) goes on stdin ahead of the program: a
    // command line is readable by every user of the host.
    let input = exec_input(&cfg, code.as_bytes());
    drop(code);
    let mut cmd = Command::new(&launch.exe);
    cmd.arg(EXEC_SUBCOMMAND)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The sandbox's count of out-of-memory kills before this process: more after a SIGKILL
    // nobody asked for means the killer chose it (or a process of its tree).
    let oom_kills_before = launch.cgroups.oom_kills(&launch.sandbox_id);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return entry.fail_to_start(format!("could not start the process: {e}")),
    };
    entry.mark_running(child.id());

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    });
    let out = tokio::spawn(pump(
        child.stdout.take().expect("piped"),
        entry.clone(),
        Stream::Stdout,
    ));
    let err = tokio::spawn(pump(
        child.stderr.take().expect("piped"),
        entry.clone(),
        Stream::Stderr,
    ));

    let deadline = tokio::time::sleep(Duration::from_secs(entry.timeout_secs));
    let mut status = tokio::select! {
        status = child.wait() => status.ok(),
        _ = deadline => { entry.request_stop(StopReason::Timeout); None }
        _ = entry.stop_requested() => None,
        _ = launch.shutdown.requested() => { entry.request_stop(StopReason::SandboxGone); None }
    };
    if status.is_none() {
        kill_tree(&launch, &entry, &mut child).await;
        status = child.wait().await.ok();
    }
    feed.abort();
    // Everything that held the pipes is dead once the tree is gone; don't wait forever on a
    // pipe some escaped holder keeps open.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = out.await;
        let _ = err.await;
    })
    .await;

    let cgroups = launch.cgroups.clone();
    let (sandbox, process) = (launch.sandbox_id.clone(), entry.id.clone());
    tokio::task::spawn_blocking(move || cgroups.remove_process(&sandbox, &process));
    let exit_code = status.map(|s| exit_code_of(&s));
    let oom_killed = exit_code == Some(128 + libc::SIGKILL)
        && oom_kills_before
            .zip(launch.cgroups.oom_kills(&launch.sandbox_id))
            .is_some_and(|(before, after)| after > before);
    entry.finish(exit_code, oom_killed.then_some(launch.memory_mb));
}

fn exit_code_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Kills the helper and everything in the process's tracking cgroup. A stop can race with
/// the helper joining its cgroup, so repeat until the helper is gone, then sweep the group
/// once more for anything it left.
async fn kill_tree(launch: &Launch, entry: &ProcessEntry, child: &mut tokio::process::Child) {
    for _ in 0..50 {
        kill_group(launch, entry).await;
        let _ = child.start_kill();
        if tokio::time::timeout(Duration::from_millis(100), child.wait())
            .await
            .is_ok()
        {
            break;
        }
    }
    kill_group(launch, entry).await;
}

async fn kill_group(launch: &Launch, entry: &ProcessEntry) {
    let cgroups = launch.cgroups.clone();
    let (sandbox, process) = (launch.sandbox_id.clone(), entry.id.clone());
    let _ = tokio::task::spawn_blocking(move || cgroups.kill_process(&sandbox, &process)).await;
}

async fn pump(mut pipe: impl AsyncRead + Unpin, entry: Arc<ProcessEntry>, stream: Stream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => entry.push_output(stream, &buf[..n]),
        }
    }
}
