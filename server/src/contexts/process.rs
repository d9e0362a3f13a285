//! One context's interpreter: a driver process started through the exec helper, and the
//! loop that runs a cell in it.
//!
//! The driver joins the sandbox like any process (namespaces, its own tracking cgroup, the
//! sandbox's uid, seccomp). Three pipes connect it to the server: stdout and stderr carry
//! the code's output into the cell's [`ProcessEntry`] (so output caps, truncation and
//! streaming are those of every process), and the reply pipe carries the driver's JSON
//! lines. A driver writes its output before it writes `done`, so once `done` is read, what
//! is left in the output pipes is drained without waiting and nothing is lost or misfiled.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandlot_protocol::{ExecutionError, Language, RichResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin, Command};

use super::driver::{self, Reply};
use crate::exec::events::Stream;
use crate::exec::launch::Launch;
use crate::exec::{ProcessEntry, StopReason};
use crate::sandbox::isolation::{exec_input, ExecConfig, DRIVER_REPLY_FD_HELPER, EXEC_SUBCOMMAND};

/// How long a driver may take to import its runtime and say `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an interrupted cell may take to stop before its context is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// A live driver.
pub struct ContextProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    replies: Replies,
    /// The driver's host pid, which leads its process group.
    pgid: Option<i32>,
    launch: Launch,
    cgroup: String,
    oom_kills_at_start: Option<u64>,
    next_id: u64,
    /// Bytes of results one cell may return (`--output-cap-bytes` × 4).
    result_cap: usize,
    pub last_used: Instant,
}

/// How a cell ended.
pub enum CellEnd {
    /// The driver finished the run.
    Done {
        exit_code: i32,
        error: Option<ExecutionError>,
        results: Vec<RichResult>,
    },
    /// The driver ended during the run (`deliberate`: it exited with a status, e.g. bash's
    /// `exit 3`; otherwise a signal or the out-of-memory killer). The context is gone.
    Died {
        exit_code: i32,
        reason: String,
        deliberate: bool,
        oom: bool,
        results: Vec<RichResult>,
    },
    /// An interrupt did not stop the run within the grace period; the context was killed.
    Stuck { results: Vec<RichResult> },
}

fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl ContextProcess {
    /// Starts a driver and waits until it is ready.
    pub async fn start(
        language: Language,
        launch: Launch,
        cgroup: String,
        result_cap: usize,
    ) -> Result<Self, String> {
        let procs = launch
            .cgroups
            .create_process(&launch.sandbox_id, &cgroup)
            .map_err(|e| format!("could not create the context's cgroup: {e}"))?;
        let (argv, program, delivery) = driver::launcher(language);
        let cfg = ExecConfig {
            init_pid: launch.init_pid,
            cgroup_procs: procs,
            uid: launch.uid,
            gid: launch.uid,
            cwd: launch.cwd.clone(),
            argv,
            env: launch.env.clone(),
            code: delivery,
            rlimits: launch.rlimits.clone(),
            program_len: Some(program.len() as u64),
        };
        let io = |e: std::io::Error| format!("could not start the context: {e}");
        let (out_r, out_w) = pipe_pair().map_err(io)?;
        let (err_r, err_w) = pipe_pair().map_err(io)?;
        let (rep_r, rep_w) = pipe_pair().map_err(io)?;
        let mut cmd = Command::new(&launch.exe);
        cmd.arg(EXEC_SUBCOMMAND)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w))
            .kill_on_drop(true);
        let rep_fd = rep_w.as_raw_fd();
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
        let oom_kills_at_start = launch.cgroups.oom_kills(&launch.sandbox_id);
        let mut child = cmd.spawn().map_err(io)?;
        drop(cmd);
        drop(rep_w);
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(&exec_input(&cfg, program.as_bytes()))
            .await
            .map_err(io)?;
        let receiver = |fd| pipe::Receiver::from_owned_fd(fd).map_err(io);
        let mut me = Self {
            child,
            stdin,
            stdout: receiver(out_r)?,
            stderr: receiver(err_r)?,
            replies: Replies::new(receiver(rep_r)?, result_cap + (1 << 20)),
            pgid: None,
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

    /// Whether the driver has ended (between runs).
    pub fn has_exited(&mut self) -> Option<(i32, bool)> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(self.exit_of(status)),
            Ok(None) => None,
            Err(_) => Some((-1, false)),
        }
    }

    /// The exit code and whether the out-of-memory killer caused it.
    fn exit_of(&self, status: std::process::ExitStatus) -> (i32, bool) {
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let oom = code == 128 + libc::SIGKILL
            && self
                .oom_kills_at_start
                .zip(self.launch.cgroups.oom_kills(&self.launch.sandbox_id))
                .is_some_and(|(before, after)| after > before);
        (code, oom)
    }

    /// Why a driver that ended is gone, in words.
    pub fn death_reason(&self, code: i32, oom: bool) -> String {
        if oom {
            format!(
                "it was {} (the sandbox's memory limit is {} MiB)",
                sandlot_protocol::OOM_KILLED_ERROR,
                self.launch.memory_mb
            )
        } else if code > 128 {
            format!("its interpreter was killed by signal {}", code - 128)
        } else {
            format!("its interpreter exited with code {code}")
        }
    }

    /// Sends SIGINT to the driver's process group (the run's children too).
    fn interrupt(&self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: a signal to the process group of a driver we started.
            unsafe { libc::kill(-pgid, libc::SIGINT) };
        }
    }

    /// Runs one cell: output goes to `entry`, results are returned (and pushed to `entry`
    /// as events). A timeout or a stop request interrupts the cell.
    pub async fn run_cell(
        &mut self,
        entry: &Arc<ProcessEntry>,
        language: Language,
        code: &str,
        env: &std::collections::BTreeMap<String, String>,
        cwd: Option<&str>,
    ) -> CellEnd {
        let id = self.next_id;
        self.next_id += 1;
        self.last_used = Instant::now();
        let command = driver::run_command(language, id, code, env, cwd);
        let mut results = Vec::new();
        let mut result_bytes = 0usize;
        let mut error = None;
        let deadline = tokio::time::sleep(Duration::from_secs(entry.timeout_secs));
        tokio::pin!(deadline);
        let mut interrupted: Option<Instant> = None;
        let mut buf = vec![0u8; 64 * 1024];
        let mut ebuf = vec![0u8; 64 * 1024];
        // The driver reads a whole command before it runs anything, so this cannot wait on
        // output nobody reads.
        let write = tokio::time::timeout(
            Duration::from_secs(entry.timeout_secs),
            self.stdin.write_all(&command),
        );
        if !matches!(write.await, Ok(Ok(()))) {
            self.kill().await;
            return CellEnd::Died {
                exit_code: -1,
                reason: "its interpreter stopped reading commands".into(),
                deliberate: false,
                oom: false,
                results,
            };
        }
        let shutdown = self.launch.shutdown.clone();
        let end = loop {
            let grace = tokio::time::sleep_until(
                (interrupted.unwrap_or_else(Instant::now) + INTERRUPT_GRACE).into(),
            );
            tokio::select! {
                n = self.stdout.read(&mut buf) => if let Ok(n @ 1..) = n {
                    entry.push_output(Stream::Stdout, &buf[..n]);
                },
                n = self.stderr.read(&mut ebuf) => if let Ok(n @ 1..) = n {
                    entry.push_output(Stream::Stderr, &ebuf[..n]);
                },
                line = self.replies.next() => match line {
                    None => break None,
                    Some(line) => match serde_json::from_slice::<Reply>(&line) {
                        Ok(Reply::Result { id: rid, data, main }) if rid == id => {
                            let result = driver::rich_result(data, main);
                            let json = serde_json::to_string(&result).unwrap_or_default();
                            if result_bytes + json.len() > self.result_cap {
                                let note = format!("[sandlot: a result of {} bytes was dropped: results are limited to {} bytes per run]\n", json.len(), self.result_cap);
                                entry.push_output(Stream::Stderr, note.as_bytes());
                            } else {
                                result_bytes += json.len();
                                entry.push_output(Stream::Result, json.as_bytes());
                                results.push(result);
                            }
                        }
                        Ok(Reply::Error { id: rid, name, value, traceback }) if rid == id => {
                            error = Some(ExecutionError { name, value, traceback });
                        }
                        Ok(Reply::Done { id: rid, exit_code, .. }) if rid == id => {
                            self.drain(entry, &mut buf);
                            break Some(exit_code);
                        }
                        Ok(Reply::Spawned { pid }) => self.pgid = Some(pid),
                        Ok(_) => {}
                        Err(_) => {
                            entry.push_output(Stream::Stderr, b"[sandlot: an oversized or malformed result was dropped]\n");
                        }
                    },
                },
                _ = &mut deadline, if interrupted.is_none() => {
                    entry.request_stop(StopReason::Timeout);
                    self.interrupt();
                    interrupted = Some(Instant::now());
                }
                _ = entry.stop_requested(), if interrupted.is_none() => {
                    self.interrupt();
                    interrupted = Some(Instant::now());
                }
                _ = shutdown.requested(), if interrupted.is_none() => {
                    entry.request_stop(StopReason::SandboxGone);
                    self.interrupt();
                    interrupted = Some(Instant::now());
                }
                _ = grace, if interrupted.is_some() => {
                    self.kill().await;
                    return CellEnd::Stuck { results };
                }
                status = self.child.wait() => {
                    self.drain(entry, &mut buf);
                    let (exit_code, oom) = status.map(|s| self.exit_of(s)).unwrap_or((-1, false));
                    return CellEnd::Died {
                        exit_code,
                        reason: self.death_reason(exit_code, oom),
                        deliberate: !oom && (0..128).contains(&exit_code),
                        oom,
                        results,
                    };
                }
            }
        };
        self.last_used = Instant::now();
        match end {
            Some(exit_code) => CellEnd::Done {
                exit_code,
                error,
                results,
            },
            None => {
                // The reply channel closed: the driver is ending.
                let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
                self.drain(entry, &mut buf);
                let (exit_code, oom) = match status {
                    Ok(Ok(s)) => self.exit_of(s),
                    _ => (-1, false),
                };
                CellEnd::Died {
                    exit_code,
                    reason: self.death_reason(exit_code, oom),
                    deliberate: !oom && (0..128).contains(&exit_code),
                    oom,
                    results,
                }
            }
        }
    }

    /// Moves what is already in the output pipes into the entry, without waiting.
    fn drain(&mut self, entry: &ProcessEntry, buf: &mut [u8]) {
        for (pipe, stream) in [
            (&self.stdout, Stream::Stdout),
            (&self.stderr, Stream::Stderr),
        ] {
            while let Ok(n @ 1..) = pipe.try_read(buf) {
                entry.push_output(stream, &buf[..n]);
            }
        }
    }

    /// Kills the driver and everything it started, and removes its cgroup.
    pub async fn kill(&mut self) {
        let cgroups = self.launch.cgroups.clone();
        let (sandbox, group) = (self.launch.sandbox_id.clone(), self.cgroup.clone());
        for _ in 0..20 {
            let (c, s, g) = (cgroups.clone(), sandbox.clone(), group.clone());
            let _ = tokio::task::spawn_blocking(move || c.kill_process(&s, &g)).await;
            let _ = self.child.start_kill();
            if tokio::time::timeout(Duration::from_millis(100), self.child.wait())
                .await
                .is_ok()
            {
                break;
            }
        }
        tokio::task::spawn_blocking(move || {
            cgroups.kill_process(&sandbox, &group);
            cgroups.remove_process(&sandbox, &group);
        });
    }
}

/// JSON lines from the reply pipe, each at most `cap` bytes (longer ones are skipped and
/// reported as an empty line, which does not parse).
struct Replies {
    rx: pipe::Receiver,
    buf: Vec<u8>,
    cap: usize,
    skipping: bool,
    eof: bool,
}

impl Replies {
    fn new(rx: pipe::Receiver, cap: usize) -> Self {
        Self {
            rx,
            buf: Vec::new(),
            cap,
            skipping: false,
            eof: false,
        }
    }

    /// The next line; `None` once the pipe has closed. Cancel-safe.
    async fn next(&mut self) -> Option<Vec<u8>> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if std::mem::take(&mut self.skipping) {
                    return Some(Vec::new());
                }
                return Some(line);
            }
            if self.buf.len() > self.cap {
                self.buf.clear();
                self.skipping = true;
            }
            if self.eof {
                return None;
            }
            match self.rx.read(&mut chunk).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}
