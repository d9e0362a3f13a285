//! Runs one process in a sandbox through the `__sandbox-exec` helper and records its end.
//!
//! The runner owns the process from spawn to final status: it feeds the program text on the
//! helper's stdin, pumps stdout and stderr into the entry's bounded buffers, and waits for
//! whichever comes first of exit, timeout, or a stop request. Stopping kills the process's
//! whole tree through its tracking cgroup (and its process group as a fallback).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sandlot_protocol::ProcessStatus;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::events::Stream;
use super::{ProcessEntry, StopReason};
use crate::sandbox::cgroup::Cgroups;
use crate::sandbox::isolation::{CodeDelivery, ExecConfig, Rlimits, EXEC_SUBCOMMAND};

/// Everything about the sandbox a process needs to start in it.
#[derive(Debug, Clone)]
pub struct Launch {
    pub exe: PathBuf,
    pub cgroups: Arc<Cgroups>,
    pub sandbox_id: String,
    pub init_pid: i32,
    pub uid: u32,
    pub rlimits: Rlimits,
    pub argv: Vec<String>,
    pub delivery: CodeDelivery,
    pub env: Vec<(String, String)>,
    pub cwd: String,
}

/// Exit code reported for a process killed by its timeout (as GNU `timeout` does).
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// Runs the process to its end and leaves the final state in `entry`.
pub async fn run(entry: Arc<ProcessEntry>, launch: Launch, code: String) {
    let procs = match launch.cgroups.create_process(&launch.sandbox_id, &entry.id) {
        Ok(p) => p,
        Err(e) => return fail(&entry, format!("could not create the process cgroup: {e}")),
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
    };
    let cfg_json = serde_json::to_string(&cfg).expect("exec config serialises");
    let mut cmd = Command::new(&launch.exe);
    cmd.arg(EXEC_SUBCOMMAND)
        .arg(cfg_json)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(&entry, format!("could not start the process: {e}")),
    };
    {
        let mut st = entry.lock();
        st.status = ProcessStatus::Running;
        st.pid = child.id();
        st.started_at = SystemTime::now();
    }

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(code.as_bytes()).await;
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
    tokio::pin!(deadline);
    let stop = loop {
        tokio::select! {
            status = child.wait() => break (None, status.ok()),
            _ = &mut deadline => {
                entry.lock().stop.get_or_insert(StopReason::Timeout);
                break (Some(StopReason::Timeout), None);
            }
            _ = entry.stop_requested.notified() => {
                let reason = entry.lock().stop;
                if let Some(reason) = reason { break (Some(reason), None); }
            }
        }
    };
    let (stop, mut status) = stop;
    if stop.is_some() {
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

    let code = status.map(|s| exit_code_of(&s)).unwrap_or(-1);
    let mut st = entry.lock();
    st.completed_at = Some(SystemTime::now());
    let (status, exit_code) = match st.stop.or(stop) {
        Some(StopReason::Timeout) => (ProcessStatus::Timeout, TIMEOUT_EXIT_CODE),
        Some(StopReason::Killed) => (ProcessStatus::Killed, code),
        Some(StopReason::SandboxGone) => {
            st.error = Some("the sandbox was killed".into());
            (ProcessStatus::Killed, code)
        }
        None if code == 0 => (ProcessStatus::Completed, 0),
        None => (ProcessStatus::Failed, code),
    };
    if status == ProcessStatus::Timeout {
        st.error = Some(format!("timed out after {} s", entry.timeout_secs));
    }
    st.status = status;
    st.exit_code = Some(exit_code);
    st.events.finish();
    drop(st);
    entry.finished.send_replace(true);
    entry.changed.notify_waiters();
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

fn fail(entry: &ProcessEntry, reason: String) {
    let mut st = entry.lock();
    st.status = ProcessStatus::Failed;
    st.exit_code = Some(-1);
    st.completed_at = Some(SystemTime::now());
    st.stderr.push(reason.as_bytes());
    st.events.push(Stream::Stderr, reason.as_bytes());
    st.error = Some(reason);
    drop(st);
    entry.finished.send_replace(true);
    entry.changed.notify_waiters();
}
