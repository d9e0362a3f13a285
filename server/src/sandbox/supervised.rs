//! What the server's long-lived helper processes have in common (the sandbox spawner,
//! `sandbox::init_helper`, and the python fork server, `contexts::zygote`): one of each runs,
//! started again when it has died, with a pause after a failed start during which the
//! callers take their slower path; and a `SOCK_SEQPACKET` socket to it, written to with
//! descriptors attached.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::process::Child;
use tracing::warn;

use super::isolation::fdpass::send_fds;

/// After a failed start, the helper is not tried again for this long.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A connection to a running helper: it owns the helper's process.
pub trait Connection {
    fn child(&mut self) -> &mut Child;
}

/// The one running helper of its kind, if any, and when it may be started again.
pub struct Supervised<C> {
    /// Named in the log ("python fork server").
    what: &'static str,
    conn: Option<C>,
    retry_at: Option<Instant>,
}

impl<C: Connection> Supervised<C> {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            conn: None,
            retry_at: None,
        }
    }

    /// Whether the helper still runs; one that died is forgotten (and said so).
    pub fn alive(&mut self) -> bool {
        let alive = self
            .conn
            .as_mut()
            .is_some_and(|c| matches!(c.child().try_wait(), Ok(None)));
        if !alive && self.conn.take().is_some() {
            warn!("{} exited; starting it again", self.what);
        }
        alive
    }

    /// The running helper (after [`Supervised::alive`] said so).
    pub fn conn(&mut self) -> &mut C {
        self.conn.as_mut().expect("a running helper")
    }

    /// Whether a start may be tried now (not within the pause after a failed one).
    pub fn may_start(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    /// Keeps a helper that started.
    pub fn started(&mut self, conn: C) -> &mut C {
        self.retry_at = None;
        self.conn.insert(conn)
    }

    /// Notes a failed start: none is tried for a while.
    pub fn start_failed(&mut self) {
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
    }

    /// Drops a helper that misbehaved; the next call starts a new one.
    pub fn forget(&mut self) {
        self.conn = None;
    }

    /// Stops the helper and starts none again (server shutdown).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.child().start_kill();
            let _ = c.child().wait().await;
        }
        self.retry_at = Some(Instant::now() + Duration::from_secs(3600));
    }
}

/// Sends one message with `fds` attached on a helper's non-blocking socket.
pub async fn send_message(
    sock: &AsyncFd<OwnedFd>,
    msg: &[u8],
    fds: &[RawFd],
) -> Result<(), String> {
    loop {
        let mut guard = sock.writable().await.map_err(|e| e.to_string())?;
        match guard.try_io(|s| send_fds(s.as_raw_fd(), fds, msg, libc::MSG_DONTWAIT)) {
            Ok(sent) => return sent.map_err(|e| format!("send: {e}")),
            Err(_would_block) => continue,
        }
    }
}
