//! Starting a context's driver, one of two ways:
//!
//! * **forked** from the python fork server ([`super::zygote`]): a python context whose
//!   environment a fork can reproduce ([`driver::forkable_env`]) is ready in milliseconds;
//! * **exec'd** through the exec helper (`sandlotd __sandbox-exec`), like any process: every
//!   javascript and bash context, and python whenever the fork server cannot serve.
//!
//! Both end the same way: the driver runs in the sandbox as its uid under its seccomp
//! programs, with the same four pipes (commands on its stdin, stdout, stderr, replies on
//! fd 4), and the first process outside the sandbox's pid namespace (the exec helper, or the
//! fork's first process) says `spawned` with the driver's host pid before the driver says
//! `ready`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandlot_protocol::Language;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::Command;

use super::driver::{self, Reply};
use super::process::{ContextProcess, Lifeline};
use super::replies::Replies;
use super::zygote::{Forked, Zygote};
use crate::exec::launch::Launch;
use crate::sandbox::cgroup::Cgroups;
use crate::sandbox::isolation::fdpass::pipe_pair;
use crate::sandbox::isolation::{
    exec_input, CodeDelivery, ExecConfig, DRIVER_REPLY_FD_HELPER, EXEC_SUBCOMMAND,
};

/// How long a driver may take to import its runtime and say `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The driver's four pipes: the driver's ends and ours.
#[derive(Debug)]
struct Pipes {
    cmd_r: OwnedFd,
    out_w: OwnedFd,
    err_w: OwnedFd,
    rep_w: OwnedFd,
    cmd_w: pipe::Sender,
    out_r: pipe::Receiver,
    err_r: pipe::Receiver,
    rep_r: pipe::Receiver,
}

impl Pipes {
    fn new() -> std::io::Result<Self> {
        let (cmd_r, cmd_w) = pipe_pair()?;
        let (out_r, out_w) = pipe_pair()?;
        let (err_r, err_w) = pipe_pair()?;
        let (rep_r, rep_w) = pipe_pair()?;
        Ok(Self {
            cmd_r,
            out_w,
            err_w,
            rep_w,
            cmd_w: pipe::Sender::from_owned_fd(cmd_w)?,
            out_r: pipe::Receiver::from_owned_fd(out_r)?,
            err_r: pipe::Receiver::from_owned_fd(err_r)?,
            rep_r: pipe::Receiver::from_owned_fd(rep_r)?,
        })
    }
}

impl ContextProcess {
    /// Starts a driver (forked when it can be) and waits until it is ready.
    pub async fn start(
        language: Language,
        launch: Launch,
        cgroup: String,
        result_cap: usize,
        zygote: Option<&Zygote>,
        preforked: Option<Preforked>,
    ) -> Result<Self, String> {
        let (argv, program, delivery) = driver::launcher(language);
        let mut cfg = ExecConfig {
            init_pid: launch.init_pid,
            cgroup_procs: Vec::new(),
            uid: launch.uid,
            gid: launch.uid,
            cwd: launch.cwd.clone(),
            argv,
            env: launch.env.clone(),
            code: delivery,
            rlimits: launch.rlimits.clone(),
            program_len: Some(program.len() as u64),
            user_ns: crate::sandbox::isolation::has_own_user_namespace(launch.init_pid),
        };
        let io = |e: std::io::Error| format!("could not start the context: {e}");
        let oom_kills_at_start = launch.cgroups.oom_kills(&launch.sandbox_id);
        let forkable = language == Language::Python && driver::forkable_env(&cfg.env);
        let (mut pipes, lifeline) = match preforked {
            Some(p) if forkable && p.group == cgroup => {
                let Preforked {
                    mut pipes,
                    forked,
                    cgroup_procs,
                    ..
                } = p;
                let input = fork_input(&cfg, cgroup_procs);
                pipes.cmd_w.write_all(&input).await.map_err(io)?;
                (pipes, Some(forked.lifeline()))
            }
            other => {
                if let Some(p) = other {
                    // Forked for an environment the sandbox no longer has: it goes.
                    discard(&launch.cgroups, &launch.sandbox_id, &p.group).await;
                }
                let mut pipes = Pipes::new().map_err(io)?;
                let lifeline = match zygote.filter(|_| forkable) {
                    Some(z) => fork(z, &launch, &cgroup, &cfg, &mut pipes).await?,
                    None => None,
                };
                (pipes, lifeline)
            }
        };
        if lifeline.is_none() {
            cfg.cgroup_procs = launch
                .cgroups
                .create_process(&launch.sandbox_id, &cgroup)
                .map_err(|e| format!("could not create the context's cgroup: {e}"))?;
        }
        let (lifeline, pgid) = match lifeline {
            Some(forked) => forked,
            // The helper says `spawned` with the driver's pid.
            None => (
                Lifeline::Helper(exec_helper(&launch, &cfg, program, &mut pipes).await?),
                None,
            ),
        };
        let Pipes {
            cmd_r,
            out_w,
            err_w,
            rep_w,
            cmd_w,
            out_r,
            err_r,
            rep_r,
        } = pipes;
        // Our copies of the driver's ends: only the driver's may keep the pipes open.
        drop((cmd_r, out_w, err_w, rep_w));
        let mut me = Self {
            lifeline,
            stdin: cmd_w,
            stdout: out_r,
            stderr: err_r,
            replies: Replies::new(rep_r, result_cap + (1 << 20)),
            pgid,
            launch,
            cgroup,
            oom_kills_at_start,
            next_id: 1,
            result_cap,
            last_used: Instant::now(),
        };
        match tokio::time::timeout(READY_TIMEOUT, me.wait_ready()).await {
            Ok(Ok(())) => Ok(me),
            Ok(Err(e)) => {
                me.kill().await;
                Err(e)
            }
            Err(_) => {
                me.kill().await;
                Err(format!(
                    "the {language} context did not start within {} s",
                    READY_TIMEOUT.as_secs()
                ))
            }
        }
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let mut early = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut sink = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                line = self.replies.next() => match line.map(|l| serde_json::from_slice::<Reply>(&l)) {
                    Some(Ok(Reply::Spawned { pid })) => self.pgid = Some(pid),
                    Some(Ok(Reply::Ready {})) => return Ok(()),
                    Some(_) => {}
                    None => {
                        let _ = tokio::time::timeout(Duration::from_millis(500), async {
                            while let Ok(n) = self.stderr.read(&mut buf).await {
                                if n == 0 { break; }
                                early.extend_from_slice(&buf[..n]);
                            }
                        }).await;
                        let text = String::from_utf8_lossy(&early);
                        let tail: String = text.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
                        return Err(format!("the context's interpreter failed to start: {}", tail.trim()));
                    }
                },
                n = self.stderr.read(&mut buf) => if let Ok(n @ 1..) = n {
                    if early.len() < 64 * 1024 { early.extend_from_slice(&buf[..n]); }
                },
                n = self.stdout.read(&mut sink) => { let _ = n; }
            }
        }
    }
}

/// A python context forked before its sandbox was ready (at create, as soon as the sandbox's
/// pid 1 exists, while its root is being built): the fork waits for its configuration,
/// which [`ContextProcess::start`] writes once the sandbox is ready. Its cgroup and pipes
/// are made, and the fork server's work done, off the path to the first run.
#[derive(Debug)]
pub struct Preforked {
    group: String,
    pipes: Pipes,
    forked: Forked,
    cgroup_procs: Vec<String>,
}

impl Preforked {
    pub fn group(&self) -> &str {
        &self.group
    }
}

impl Forked {
    /// The fork leads its own process group, as an exec'd driver does.
    fn lifeline(self) -> (Lifeline, Option<i32>) {
        (Lifeline::Forked(self.exit), Some(self.pid))
    }
}

/// Forks a python context into the sandbox whose pid 1 is `init_pid`, in the tracking group
/// `group`, with no configuration yet (see [`Preforked`]).
pub async fn prefork(
    zygote: &Zygote,
    cgroups: &Arc<Cgroups>,
    sandbox_id: &str,
    init_pid: i32,
    group: String,
) -> Result<Preforked, String> {
    let io = |e: std::io::Error| format!("could not start the context: {e}");
    let (cgroup_procs, dir) = fork_groups(cgroups, sandbox_id, &group)?;
    let pipes = Pipes::new().map_err(io)?;
    match zygote.fork(init_pid, &fork_fds(&pipes, dir.as_ref())).await {
        Ok(forked) => Ok(Preforked {
            group,
            pipes,
            forked,
            cgroup_procs,
        }),
        Err(e) => {
            discard(cgroups, sandbox_id, &group).await;
            Err(e)
        }
    }
}

/// Kills a context process that is not wanted (forked ahead for nothing, or half-started),
/// and removes its group.
pub async fn discard(cgroups: &Arc<Cgroups>, sandbox_id: &str, group: &str) {
    let (c, sid, g) = (cgroups.clone(), sandbox_id.to_string(), group.to_string());
    let _ = tokio::task::spawn_blocking(move || {
        // Removed, not only killed: a start that goes on (through the exec helper after a
        // failed fork) makes a group of the same name.
        c.kill_process(&sid, &g);
        c.remove_process(&sid, &g);
    })
    .await;
}

/// The tracking group of a fork: the `tasks`/`cgroup.procs` files it joins itself (joining
/// its v2 group by `cgroup.procs` is for a kernel that cannot clone into it; the fork skips
/// it when it was made there) and the v2 directory to clone it into.
fn fork_groups(
    cgroups: &Cgroups,
    sandbox_id: &str,
    group: &str,
) -> Result<(Vec<String>, Option<std::fs::File>), String> {
    let groups = cgroups
        .create_forked_process(sandbox_id, group)
        .map_err(|e| format!("could not create the context's cgroup: {e}"))?;
    let dir = match &groups.v2_dir {
        Some(dir) => Some(
            std::fs::File::open(dir)
                .map_err(|e| format!("could not open the context's cgroup: {e}"))?,
        ),
        None => None,
    };
    let procs = groups
        .v1_tasks
        .iter()
        .cloned()
        .chain(groups.v2_procs())
        .collect();
    Ok((procs, dir))
}

fn fork_fds(pipes: &Pipes, group_dir: Option<&std::fs::File>) -> Vec<RawFd> {
    let mut fds = vec![
        pipes.cmd_r.as_raw_fd(),
        pipes.out_w.as_raw_fd(),
        pipes.err_w.as_raw_fd(),
        pipes.rep_w.as_raw_fd(),
    ];
    fds.extend(group_dir.map(|d| d.as_raw_fd()));
    fds
}

/// What a fork reads: the exec helper's input, the config with no program.
fn fork_input(cfg: &ExecConfig, cgroup_procs: Vec<String>) -> Vec<u8> {
    let fork_cfg = ExecConfig {
        cgroup_procs,
        program_len: Some(0),
        argv: Vec::new(),
        ..cfg.clone()
    };
    exec_input(&fork_cfg, b"")
}

/// Forks the driver from the fork server: straight into its tracking group where the kernel
/// can clone into a cgroup (no `cgroup.procs` write, which takes the kernel's global cgroup
/// lock and, after a quiet spell, waits for an RCU grace period); the fork then joins the v1
/// limit groups by its only thread. `None` (the fork server failed, and said why in the
/// log): use the exec helper, with new pipes.
async fn fork(
    zygote: &Zygote,
    launch: &Launch,
    cgroup: &str,
    cfg: &ExecConfig,
    pipes: &mut Pipes,
) -> Result<Option<(Lifeline, Option<i32>)>, String> {
    let io = |e: std::io::Error| format!("could not start the context: {e}");
    let (cgroup_procs, dir) = fork_groups(&launch.cgroups, &launch.sandbox_id, cgroup)?;
    // The configuration is in the command pipe before the fork is asked for (as much as the
    // pipe holds; the rest follows), so the fork does not wait for it.
    let input = fork_input(cfg, cgroup_procs);
    let mut written = 0;
    while written < input.len() {
        match pipes.cmd_w.try_write(&input[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(io(e)),
        }
    }
    match zygote
        .fork(launch.init_pid, &fork_fds(pipes, dir.as_ref()))
        .await
    {
        Ok(forked) => {
            pipes.cmd_w.write_all(&input[written..]).await.map_err(io)?;
            Ok(Some(forked.lifeline()))
        }
        Err(_) => {
            // Whatever the fork server may have started goes.
            discard(&launch.cgroups, &launch.sandbox_id, cgroup).await;
            *pipes = Pipes::new().map_err(io)?;
            Ok(None)
        }
    }
}

/// Starts the driver through the exec helper: the helper's stdin is the command pipe (the
/// config and program first), its fd 3 the reply pipe.
async fn exec_helper(
    launch: &Launch,
    cfg: &ExecConfig,
    program: &str,
    pipes: &mut Pipes,
) -> Result<tokio::process::Child, String> {
    let io = |e: std::io::Error| format!("could not start the context: {e}");
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(io);
    let mut cmd = Command::new(&launch.exe);
    cmd.arg(EXEC_SUBCOMMAND)
        .env_clear()
        .stdin(Stdio::from(dup(&pipes.cmd_r)?))
        .stdout(Stdio::from(dup(&pipes.out_w)?))
        .stderr(Stdio::from(dup(&pipes.err_w)?))
        .kill_on_drop(true);
    let rep_fd = pipes.rep_w.as_raw_fd();
    debug_assert_eq!(cfg.code, CodeDelivery::Driver);
    // SAFETY: only async-signal-safe calls between fork and exec: the reply pipe becomes
    // the helper's fd 3, without close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if rep_fd == DRIVER_REPLY_FD_HELPER {
                libc::fcntl(rep_fd, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(rep_fd, DRIVER_REPLY_FD_HELPER) >= 0
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let child = cmd.spawn().map_err(io)?;
    drop(cmd);
    pipes
        .cmd_w
        .write_all(&exec_input(cfg, program.as_bytes()))
        .await
        .map_err(io)?;
    Ok(child)
}
