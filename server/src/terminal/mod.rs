//! Interactive terminals: a shell on a real PTY inside a sandbox, its output kept in a ring
//! for any number of readers, its input and size set by the API.
//!
//! A [`Terminal`] is started by the `__sandbox-pty` helper (same cgroups, namespaces, uid,
//! `no_new_privs` and seccomp as every sandboxed process), which hands the PTY master back
//! to the server ([`pty`]). One reader task per terminal drains the master into an
//! [`ring::OutputRing`], so the shell never waits on a client; WebSockets and SSE streams
//! follow the ring from a sequence number ([`follow`]). The [`manager`] bounds terminals per
//! sandbox, ends them with their sandbox and on shutdown, and kills those no client has
//! been attached to for a while.

pub mod follow;
pub mod manager;
pub mod pty;
pub mod ring;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;
use sandlot_protocol::{TerminalInfo, TerminalStatus};
use tokio::sync::{watch, Notify};

use crate::time::rfc3339_millis;
use pty::PtyMaster;
use ring::OutputRing;

/// Why typing into a terminal failed.
#[derive(Debug)]
pub enum InputError {
    /// The shell has exited (with this code).
    Exited(Option<i32>),
    /// The shell did not read its input for this long.
    Stalled(Duration),
    Io(std::io::Error),
}

#[derive(Debug)]
struct TermState {
    ring: OutputRing,
    cols: u16,
    rows: u16,
    exit_code: Option<i32>,
    exited_at: Option<SystemTime>,
    /// Clients following the output now.
    attached: usize,
    /// Since when no client follows (the idle clock; `None` while one does).
    detached_since: Option<Instant>,
    stop: bool,
}

#[derive(Debug)]
pub struct Terminal {
    pub id: String,
    pub shell: String,
    pub cwd: String,
    pub created_at: SystemTime,
    master: PtyMaster,
    /// Serialises writers, so two inputs never interleave their bytes.
    input: tokio::sync::Mutex<()>,
    state: Mutex<TermState>,
    /// Wakes followers when output arrives or the shell exits.
    changed: Notify,
    stop_requested: Notify,
    finished: watch::Sender<bool>,
}

impl Terminal {
    pub fn new(
        id: String,
        shell: String,
        cwd: String,
        master: PtyMaster,
        (cols, rows): (u16, u16),
        replay_bytes: usize,
    ) -> Self {
        Self {
            id,
            shell,
            cwd,
            created_at: SystemTime::now(),
            master,
            input: tokio::sync::Mutex::new(()),
            state: Mutex::new(TermState {
                ring: OutputRing::new(replay_bytes),
                cols,
                rows,
                exit_code: None,
                exited_at: None,
                attached: 0,
                detached_since: Some(Instant::now()),
                stop: false,
            }),
            changed: Notify::new(),
            stop_requested: Notify::new(),
            finished: watch::channel(false).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TermState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_running(&self) -> bool {
        self.lock().exited_at.is_none()
    }

    pub fn info(&self) -> TerminalInfo {
        let st = self.lock();
        TerminalInfo {
            terminal_id: self.id.clone(),
            status: if st.exited_at.is_some() {
                TerminalStatus::Exited
            } else {
                TerminalStatus::Running
            },
            shell: self.shell.clone(),
            cwd: self.cwd.clone(),
            cols: st.cols,
            rows: st.rows,
            exit_code: st.exit_code,
            attached: st.attached,
            last_seq: st.ring.last_seq(),
            created_at: rfc3339_millis(self.created_at),
            exited_at: st.exited_at.map(rfc3339_millis),
        }
    }

    /// Records what the shell wrote and wakes followers.
    fn push_output(&self, data: &[u8]) {
        self.lock().ring.push(data);
        self.changed.notify_waiters();
    }

    /// The shell has exited: the code is final and followers see the end.
    fn finish(&self, code: Option<i32>) {
        {
            let mut st = self.lock();
            if st.exited_at.is_some() {
                return;
            }
            st.exit_code = code;
            st.exited_at = Some(SystemTime::now());
        }
        self.finished.send_replace(true);
        self.changed.notify_waiters();
    }

    /// Asks the runner to end the terminal (kill its whole session).
    pub fn request_stop(&self) {
        self.lock().stop = true;
        self.stop_requested.notify_one();
    }

    async fn stop_requested(&self) {
        loop {
            if self.lock().stop {
                return;
            }
            self.stop_requested.notified().await;
        }
    }

    /// Resolves once the shell has exited and the exit is recorded.
    pub async fn wait(&self) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// How long no client has followed the output (zero while one does).
    fn detached_for(&self) -> Duration {
        self.lock()
            .detached_since
            .map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Counts a client as attached until the guard is dropped.
    pub fn attach(self: &Arc<Self>) -> Attached {
        let mut st = self.lock();
        st.attached += 1;
        st.detached_since = None;
        Attached(self.clone())
    }

    /// Types `data` into the terminal, waiting at most `stall` for the shell to take it.
    pub async fn input(&self, data: &[u8], stall: Duration) -> Result<(), InputError> {
        if let Some(code) = self.exit() {
            return Err(InputError::Exited(code));
        }
        let _writer = self.input.lock().await;
        match tokio::time::timeout(stall, self.master.write_all(data)).await {
            Ok(Ok(())) => Ok(()),
            // Writing to a master whose shell is gone fails (EIO) a moment before the runner
            // records the exit; wait for it and say so as the exit it is.
            Ok(Err(e)) => {
                let _ = tokio::time::timeout(Duration::from_secs(3), self.wait()).await;
                match self.exit() {
                    Some(code) => Err(InputError::Exited(code)),
                    None => Err(InputError::Io(e)),
                }
            }
            Err(_) => Err(InputError::Stalled(stall)),
        }
    }

    /// `Some(code)` once the shell has exited.
    fn exit(&self) -> Option<Option<i32>> {
        let st = self.lock();
        st.exited_at.map(|_| st.exit_code)
    }

    pub fn resize(&self, cols: u16, rows: u16) -> std::io::Result<()> {
        if self.exit().is_none() {
            self.master.resize(cols, rows)?;
        }
        let mut st = self.lock();
        st.cols = cols;
        st.rows = rows;
        Ok(())
    }
}

/// A client following a terminal's output (see [`Terminal::attach`]).
#[derive(Debug)]
pub struct Attached(Arc<Terminal>);

impl Drop for Attached {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.attached = st.attached.saturating_sub(1);
        if st.attached == 0 {
            st.detached_since = Some(Instant::now());
        }
    }
}

/// The terminals of one sandbox, in start order: running ones and, for a while after they
/// end, exited ones (so late readers still get the exit and input a clear refusal).
#[derive(Debug, Default)]
pub struct TerminalTable {
    inner: Mutex<TableState>,
}

#[derive(Debug, Default)]
struct TableState {
    terminals: IndexMap<String, Arc<Terminal>>,
    /// Terminals being started (they count against the cap before they exist).
    starting: usize,
}

/// A slot under the cap held by a terminal being started; dropped when it is in the table
/// or failed.
pub struct Reservation<'a>(&'a TerminalTable);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut t = self.0.lock();
        t.starting = t.starting.saturating_sub(1);
    }
}

impl TerminalTable {
    fn lock(&self) -> MutexGuard<'_, TableState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new terminal, unless `max` run or are starting already.
    pub fn reserve(&self, max: usize) -> Option<Reservation<'_>> {
        let mut t = self.lock();
        let running = t.terminals.values().filter(|t| t.is_running()).count();
        if running + t.starting >= max {
            return None;
        }
        t.starting += 1;
        Some(Reservation(self))
    }

    pub fn insert(&self, terminal: Arc<Terminal>, _slot: Reservation<'_>) {
        self.lock()
            .terminals
            .insert(terminal.id.clone(), terminal.clone());
    }

    pub fn get(&self, id: &str) -> Option<Arc<Terminal>> {
        self.lock().terminals.get(id).cloned()
    }

    pub fn remove(&self, id: &str) {
        self.lock().terminals.shift_remove(id);
    }

    pub fn all(&self) -> Vec<Arc<Terminal>> {
        self.lock().terminals.values().cloned().collect()
    }
}
