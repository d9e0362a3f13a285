//! One context's interpreter: a driver process started through the exec helper, and the
//! loop that runs a cell in it.
//!
//! The driver joins the sandbox like any process (namespaces, its own tracking cgroup, the
//! sandbox's uid, seccomp). Three pipes connect it to the server: stdout and stderr carry
//! the code's output into the cell's [`ProcessEntry`] (so output caps, truncation and
//! streaming are those of every process), and the reply pipe carries the driver's JSON
//! lines. A driver writes its output before it writes `done`, so once `done` is read, what
//! is left in the output pipes is drained without waiting and nothing is lost or misfiled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sandlot_protocol::{ExecutionError, Language, RichResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::sync::oneshot;

use super::driver::{self, Reply};
use super::replies::Replies;
use crate::exec::events::Stream;
use crate::exec::launch::Launch;
use crate::exec::{ProcessEntry, StopReason};

/// How long an interrupted cell may take to stop before its context is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// How the server learns that a driver ended, and with which status.
pub(super) enum Lifeline {
    /// Started by the exec helper, a child of ours whose exit status is the driver's.
    Helper(Child),
    /// Forked by the fork server, which reports its exit status.
    Forked(oneshot::Receiver<i32>),
    /// Ended with this status (128 + signal when killed; -1 when nobody could say).
    Ended(i32),
}

impl Lifeline {
    /// The driver's exit status, once it has ended.
    async fn wait(&mut self) -> i32 {
        let status = match self {
            Lifeline::Helper(child) => child.wait().await.map(code_of).unwrap_or(-1),
            Lifeline::Forked(exit) => exit.await.unwrap_or(-1),
            Lifeline::Ended(status) => *status,
        };
        *self = Lifeline::Ended(status);
        status
    }

    /// The driver's exit status if it has ended.
    fn try_wait(&mut self) -> Option<i32> {
        let status = match self {
            Lifeline::Helper(child) => match child.try_wait() {
                Ok(Some(status)) => code_of(status),
                Ok(None) => return None,
                Err(_) => -1,
            },
            Lifeline::Forked(exit) => match exit.try_recv() {
                Ok(status) => status,
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Err(oneshot::error::TryRecvError::Closed) => -1,
            },
            Lifeline::Ended(status) => *status,
        };
        *self = Lifeline::Ended(status);
        Some(status)
    }
}

/// An exit status as a code: the exit code, or 128 + the signal that killed it.
fn code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// What a python driver made ahead for the warm pool is told, beside runs.
pub enum Quiet<'a> {
    /// Its muted warm-up: the pages and caches a first run would fill are filled now, while
    /// nothing waits, and nothing of it shows.
    WarmUp,
    /// Its sandbox's whole environment, as if it had started with it (a pooled sandbox
    /// handed to a create with variables of its own).
    TakeEnv(&'a [(String, String)]),
}

/// A live driver.
pub struct ContextProcess {
    pub(super) lifeline: Lifeline,
    pub(super) stdin: pipe::Sender,
    pub(super) stdout: pipe::Receiver,
    pub(super) stderr: pipe::Receiver,
    pub(super) replies: Replies,
    /// The driver's host pid, which leads its process group.
    pub(super) pgid: Option<i32>,
    pub(super) launch: Launch,
    pub(super) cgroup: String,
    pub(super) oom_kills_at_start: Option<u64>,
    pub(super) next_id: u64,
    /// Bytes of results one cell may return (`--output-cap-bytes` × 4).
    pub(super) result_cap: usize,
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

impl ContextProcess {
    /// Whether the driver has ended (between runs).
    pub fn has_exited(&mut self) -> Option<(i32, bool)> {
        self.lifeline.try_wait().map(|code| self.exit_of_code(code))
    }

    /// An exit code (128 + signal when killed) and whether the out-of-memory killer caused it.
    fn exit_of_code(&self, code: i32) -> (i32, bool) {
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
        } else if code < 0 {
            "its interpreter ended, and how is unknown (the python fork server it was forked \
             from is gone)"
                .to_string()
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
                status = self.lifeline.wait() => {
                    self.drain(entry, &mut buf);
                    let (exit_code, oom) = self.exit_of_code(status);
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
                let status = tokio::time::timeout(Duration::from_secs(2), self.lifeline.wait())
                    .await
                    .unwrap_or(-1);
                self.drain(entry, &mut buf);
                let (exit_code, oom) = self.exit_of_code(status);
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

    /// Has the python driver carry out a command that shows nothing ([`Quiet`]): whether it
    /// answered within `within` with exit code 0 (if not, the caller discards the context).
    pub async fn quiet(&mut self, command: Quiet<'_>, within: Duration) -> bool {
        let id = self.next_id;
        self.next_id += 1;
        let line = match command {
            Quiet::WarmUp => driver::warm_up_command(id),
            Quiet::TakeEnv(env) => driver::env_command(id, env),
        };
        let done = async {
            if self.stdin.write_all(&line).await.is_err() {
                return false;
            }
            let (mut out, mut err) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
            let (mut out_open, mut err_open) = (true, true);
            loop {
                tokio::select! {
                    // Nothing is displayed; whatever comes is dropped.
                    n = self.stdout.read(&mut out), if out_open => out_open = matches!(n, Ok(1..)),
                    n = self.stderr.read(&mut err), if err_open => err_open = matches!(n, Ok(1..)),
                    line = self.replies.next() => match line.map(|l| serde_json::from_slice::<Reply>(&l)) {
                        None => return false,
                        Some(Ok(Reply::Done { id: rid, exit_code })) if rid == id => return exit_code == 0,
                        Some(Ok(Reply::Spawned { pid })) => self.pgid = Some(pid),
                        Some(_) => {}
                    },
                }
            }
        };
        tokio::time::timeout(within, done).await.unwrap_or(false)
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
            if let Lifeline::Helper(child) = &mut self.lifeline {
                let _ = child.start_kill();
            }
            // A fork is in its tracking group like any process (forks are only made where
            // there are tracking groups).
            let gone = tokio::time::timeout(Duration::from_millis(100), self.lifeline.wait())
                .await
                .is_ok();
            if gone {
                break;
            }
        }
        tokio::task::spawn_blocking(move || {
            cgroups.kill_process(&sandbox, &group);
            cgroups.remove_process(&sandbox, &group);
        });
    }
}
