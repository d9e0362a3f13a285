//! The terminals of a node's sandboxes: checking and starting them, and the runner that
//! owns each one from its start to its exit.
//!
//! Bounds and lifetimes (documented in `docs/protocol.md`):
//! - at most `--max-terminals` (16) running per sandbox; more is a 429;
//! - output kept for replay: `--terminal-replay-bytes` (256 KiB) per terminal, whatever the
//!   number or speed of its readers;
//! - a terminal no client has followed for `--terminal-detach-secs` (300 s) is killed;
//! - a terminal ends with its shell, when killed, with its sandbox, and on server shutdown;
//!   whatever ends it, its whole session (every process in its tracking cgroup) goes too;
//! - an exited terminal stays listed for [`EXITED_LINGER`], so late readers get its exit
//!   and input gets a clear refusal, then it is forgotten.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sandlot_protocol::{defaults, terminal as wire, CreateTerminalRequest, TerminalInfo};
use tokio::process::Child;

use super::follow::TerminalFollower;
use super::pty;
use super::ring::utf8_complete_len;
use super::{InputError, Terminal};
use crate::config::Config;
use crate::exec::launch::{self, check_env};
use crate::ids;
use crate::node::{NodeError, NodeResult, TerminalEvents};
use crate::sandbox::cgroup::Cgroups;
use crate::sandbox::isolation::PtyConfig;
use crate::sandbox::Sandbox;
use crate::shutdown::Shutdown;
use sandlot_protocol::SandboxStatus;

/// How long an exited terminal stays listed.
pub const EXITED_LINGER: Duration = Duration::from_secs(60);
/// How long typing may wait for a shell that does not read its input.
const INPUT_STALL: Duration = Duration::from_secs(5);
/// After the shell exits, how long its last output may take to drain from the PTY.
const DRAIN: Duration = Duration::from_secs(1);

pub struct TerminalManager {
    cfg: Arc<Config>,
    cgroups: Arc<Cgroups>,
    exe: PathBuf,
    shutdown: Shutdown,
}

impl TerminalManager {
    pub fn new(cfg: Arc<Config>, cgroups: Arc<Cgroups>, exe: PathBuf, shutdown: Shutdown) -> Self {
        Self {
            cfg,
            cgroups,
            exe,
            shutdown,
        }
    }

    fn keepalive(&self) -> Duration {
        Duration::from_secs(self.cfg.stream_keepalive_secs.max(1))
    }

    pub async fn open(
        &self,
        sandbox: &Arc<Sandbox>,
        spec: CreateTerminalRequest,
    ) -> NodeResult<TerminalInfo> {
        if sandbox.status() == SandboxStatus::Paused {
            return Err(NodeError::Paused);
        }
        let size = check_size(
            spec.cols.unwrap_or(wire::DEFAULT_COLS),
            spec.rows.unwrap_or(wire::DEFAULT_ROWS),
        )?;
        let cwd = spec.cwd.unwrap_or_else(|| defaults::WORKDIR.into());
        check_path("cwd", &cwd)?;
        if let Some(shell) = &spec.shell {
            check_path("shell", shell)?;
        }
        let mut env = spec.env.unwrap_or_default();
        check_env(&env)?;
        env.entry("TERM".into())
            .or_insert_with(|| "xterm-256color".into());
        let max = self.cfg.max_terminals_per_sandbox;
        let slot = sandbox.terminals.reserve(max).ok_or_else(|| {
            NodeError::LimitReached(format!(
                "this sandbox runs at most {max} terminals at once; close one first"
            ))
        })?;

        let id = ids::terminal_id();
        let procs = self
            .cgroups
            .create_process(&sandbox.id, &id)
            .map_err(|e| NodeError::Internal(format!("terminal cgroup: {e}")))?;
        let cfg = PtyConfig {
            init_pid: sandbox.init_pid(),
            cgroup_procs: procs,
            uid: sandbox.uid,
            gid: sandbox.uid,
            cwd: cwd.clone(),
            shell: spec.shell,
            env: launch::environment(sandbox.env_vars(), &env),
            rlimits: launch::rlimits(
                self.cfg.sandbox_pids,
                self.cfg.sandbox_memory_mb,
                self.cgroups.enforces_limits(),
            ),
            cols: size.0,
            rows: size.1,
            user_ns: crate::sandbox::isolation::has_own_user_namespace(sandbox.init_pid()),
        };
        let started = match pty::start(&self.exe, &cfg).await {
            Ok(started) => started,
            Err(reason) => {
                let (cgroups, sid, tid) = (self.cgroups.clone(), sandbox.id.clone(), id.clone());
                tokio::task::spawn_blocking(move || cgroups.remove_process(&sid, &tid));
                // The helper names what the client got wrong; anything else is ours.
                return Err(
                    if reason.contains(": shell: ") || reason.contains(": workdir") {
                        NodeError::Invalid(reason)
                    } else {
                        NodeError::Internal(reason)
                    },
                );
            }
        };
        let terminal = Arc::new(Terminal::new(
            id,
            started.shell,
            cwd,
            started.master,
            size,
            self.cfg.terminal_replay_bytes,
        ));
        sandbox.terminals.insert(terminal.clone(), slot);
        let runner = Runner {
            sandbox: sandbox.clone(),
            terminal: terminal.clone(),
            cgroups: self.cgroups.clone(),
            shutdown: self.shutdown.clone(),
            detach_limit: Duration::from_secs(self.cfg.terminal_detach_secs.max(1)),
        };
        tokio::spawn(runner.run(started.helper));
        Ok(terminal.info())
    }

    fn get(&self, sandbox: &Sandbox, terminal_id: &str) -> NodeResult<Arc<Terminal>> {
        sandbox
            .terminals
            .get(terminal_id)
            .ok_or(NodeError::TerminalNotFound)
    }

    pub fn list(&self, sandbox: &Sandbox) -> Vec<TerminalInfo> {
        sandbox.terminals.all().iter().map(|t| t.info()).collect()
    }

    pub fn info(&self, sandbox: &Sandbox, terminal_id: &str) -> NodeResult<TerminalInfo> {
        Ok(self.get(sandbox, terminal_id)?.info())
    }

    pub async fn input(&self, sandbox: &Sandbox, terminal_id: &str, data: &[u8]) -> NodeResult<()> {
        let terminal = self.get(sandbox, terminal_id)?;
        terminal
            .input(data, INPUT_STALL)
            .await
            .map_err(|e| match e {
                InputError::Exited(code) => NodeError::TerminalExited(code),
                InputError::Stalled(after) => NodeError::Conflict(format!(
                    "the terminal has not read its input for {} s; try again later",
                    after.as_secs()
                )),
                InputError::Io(e) => NodeError::Internal(format!("terminal input: {e}")),
            })
    }

    pub fn resize(
        &self,
        sandbox: &Sandbox,
        terminal_id: &str,
        cols: u16,
        rows: u16,
    ) -> NodeResult<TerminalInfo> {
        let (cols, rows) = check_size(cols, rows)?;
        let terminal = self.get(sandbox, terminal_id)?;
        terminal
            .resize(cols, rows)
            .map_err(|e| NodeError::Internal(format!("terminal resize: {e}")))?;
        Ok(terminal.info())
    }

    pub async fn kill(&self, sandbox: &Sandbox, terminal_id: &str) -> NodeResult<TerminalInfo> {
        let terminal = self.get(sandbox, terminal_id)?;
        terminal.request_stop();
        let _ = tokio::time::timeout(Duration::from_secs(10), terminal.wait()).await;
        Ok(terminal.info())
    }

    pub fn follow(
        &self,
        sandbox: &Sandbox,
        terminal_id: &str,
        after: u64,
    ) -> NodeResult<TerminalEvents> {
        let terminal = self.get(sandbox, terminal_id)?;
        Ok(TerminalFollower::new(terminal, after, self.keepalive()).into_events())
    }

    /// Ends every terminal of a sandbox and waits (at most `wait` each) for their exits.
    pub async fn stop_all(&self, sandbox: &Sandbox, wait: Duration) {
        let all = sandbox.terminals.all();
        for t in &all {
            t.request_stop();
        }
        for t in &all {
            let _ = tokio::time::timeout(wait, t.wait()).await;
        }
    }
}

fn check_size(cols: u16, rows: u16) -> NodeResult<(u16, u16)> {
    let ok = |n: u16| (1..=wire::MAX_SIDE).contains(&n);
    if !ok(cols) || !ok(rows) {
        return Err(NodeError::Invalid(format!(
            "cols and rows must be between 1 and {} (got {cols}x{rows})",
            wire::MAX_SIDE
        )));
    }
    Ok((cols, rows))
}

fn check_path(field: &str, path: &str) -> NodeResult<()> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(NodeError::Invalid(format!(
            "{field} must be an absolute path without NUL characters"
        )));
    }
    Ok(())
}

/// Owns one terminal from its start to its exit (and its linger).
struct Runner {
    sandbox: Arc<Sandbox>,
    terminal: Arc<Terminal>,
    cgroups: Arc<Cgroups>,
    shutdown: Shutdown,
    detach_limit: Duration,
}

impl Runner {
    async fn run(self, mut helper: Child) {
        let term = self.terminal.clone();
        let reader = tokio::spawn(pump(term.clone()));
        let status = tokio::select! {
            status = helper.wait() => status.ok(),
            _ = term.stop_requested() => None,
            _ = self.shutdown.requested() => None,
            _ = self.detached_too_long() => {
                tracing::info!(terminal = %term.id, "no client for {:?}; killing the terminal", self.detach_limit);
                None
            }
        };
        // Whatever ended it, the session goes with it: its background jobs and anything
        // else in its tracking cgroup, then the helper (whose exit is the shell's).
        let status = match status {
            Some(status) => {
                self.kill_session().await;
                Some(status)
            }
            None => {
                let mut ended = None;
                for _ in 0..50 {
                    self.kill_session().await;
                    let _ = helper.start_kill();
                    let waited = tokio::time::timeout(Duration::from_millis(100), helper.wait());
                    if let Ok(status) = waited.await {
                        ended = status.ok();
                        break;
                    }
                }
                self.kill_session().await;
                ended
            }
        };
        // The last output is in the PTY until every slave is closed; then reads end.
        if tokio::time::timeout(DRAIN, reader).await.is_err() {
            tracing::warn!(terminal = %term.id, "terminal output did not end after its shell");
        }
        let (cgroups, sid, tid) = (
            self.cgroups.clone(),
            self.sandbox.id.clone(),
            term.id.clone(),
        );
        let _ = tokio::task::spawn_blocking(move || cgroups.remove_process(&sid, &tid)).await;
        term.finish(status.map(|s| exit_code_of(&s)));

        tokio::select! {
            _ = tokio::time::sleep(EXITED_LINGER) => {}
            _ = self.shutdown.requested() => {}
        }
        self.sandbox.terminals.remove(&term.id);
    }

    async fn kill_session(&self) {
        let (cgroups, sid, tid) = (
            self.cgroups.clone(),
            self.sandbox.id.clone(),
            self.terminal.id.clone(),
        );
        let _ = tokio::task::spawn_blocking(move || cgroups.kill_process(&sid, &tid)).await;
    }

    /// Resolves once no client has been attached for the detach limit.
    async fn detached_too_long(&self) {
        loop {
            let detached = self.terminal.detached_for();
            if detached >= self.detach_limit {
                return;
            }
            let next = (self.detach_limit - detached).min(Duration::from_secs(1));
            tokio::time::sleep(next.max(Duration::from_millis(100))).await;
        }
    }
}

fn exit_code_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Drains the master into the terminal's ring until every slave is closed. A character
/// split by a read waits for the rest of it, so chunks are whole text.
async fn pump(terminal: Arc<Terminal>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut held = 0;
    loop {
        let n = match terminal.master.read(&mut buf[held..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let filled = held + n;
        let complete = utf8_complete_len(&buf[..filled]);
        terminal.push_output(&buf[..complete]);
        buf.copy_within(complete..filled, 0);
        held = filled - complete;
    }
    if held > 0 {
        terminal.push_output(&buf[..held]);
    }
}
