//! Starting a sandbox's `__sandbox-init` helper: forked by the spawner
//! (`sandlotd __sandbox-spawner`, [`crate::sandbox::isolation::spawner`]) when it runs,
//! executed as its own process otherwise. Either way the helper gets three pipes as its
//! stdio and is watched through a pidfd, so the rest of the server cannot tell the two apart.
//!
//! The spawner starts with the server (in the background) and again on demand if it dies.
//! While it cannot serve, helpers are executed as before, only slower.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use super::isolation::fdpass::{pipe_pair, recv_fds, seqpacket_pair};
use super::isolation::{INIT_SUBCOMMAND, SPAWNER_SUBCOMMAND};
use super::supervised::{send_message, Connection, Supervised};

/// How long one fork may take before the spawner counts as stuck.
const FORK_TIMEOUT: Duration = Duration::from_secs(5);

/// The most configuration a helper's stdin pipe holds before anyone reads it (Linux's
/// default pipe capacity): it is written before the helper starts, so the helper never
/// waits for the server to write it.
const MAX_CONFIG: usize = 64 * 1024;

/// A started `__sandbox-init`: what it says and its process.
pub struct InitHelper {
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    pub process: HelperProcess,
}

/// A helper process, known by a pidfd: no pid reuse can make it another's.
pub struct HelperProcess(AsyncFd<OwnedFd>);

impl HelperProcess {
    pub fn kill(&self) {
        // SAFETY: a signal through our own pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Resolves once the helper has exited (a pidfd becomes readable then).
    pub async fn exited(&self) {
        let _ = self.0.readable().await;
    }
}

pub struct InitSpawner {
    exe: PathBuf,
    spawner: tokio::sync::Mutex<Supervised<Conn>>,
}

/// A running spawner.
struct Conn {
    sock: AsyncFd<OwnedFd>,
    child: Child,
}

impl Connection for Conn {
    fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl InitSpawner {
    pub fn new(exe: PathBuf) -> Self {
        Self {
            exe,
            spawner: tokio::sync::Mutex::new(Supervised::new("sandbox spawner")),
        }
    }

    /// Starts the spawner unless it runs (at server start, so the first create need not wait).
    pub async fn prepare(&self) {
        let mut spawner = self.spawner.lock().await;
        let _ = self.ensure(&mut spawner);
    }

    /// Stops the spawner (server shutdown). The helpers it forked live on with their sandboxes.
    pub async fn stop(&self) {
        self.spawner.lock().await.stop().await;
    }

    /// Starts a `__sandbox-init` helper with `config` on its stdin, forked when the spawner
    /// can, executed otherwise.
    pub async fn start(&self, config: &[u8]) -> std::io::Result<InitHelper> {
        if config.len() > MAX_CONFIG {
            return Err(std::io::Error::other(
                "the sandbox's init config is too large",
            ));
        }
        let (stdin_r, stdin_w) = pipe_pair()?;
        // Fits in the pipe: written at once, and the helper finds it there from its start.
        // Non-blocking, so that a pipe smaller than usual is an error rather than a hang.
        // SAFETY: setting a flag on our own descriptor.
        unsafe { libc::fcntl(stdin_w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        std::fs::File::from(stdin_w).write_all(config)?;
        let (stdout_r, stdout_w) = pipe_pair()?;
        let (stderr_r, stderr_w) = pipe_pair()?;
        let theirs = [stdin_r, stdout_w, stderr_w];
        let pidfd = match self.fork(&theirs).await {
            Ok(pidfd) => pidfd,
            Err(why) => {
                if !why.is_empty() {
                    warn!("sandbox spawner failed ({why}); executing the helper instead");
                }
                self.execute(theirs)?
            }
        };
        Ok(InitHelper {
            stdout: pipe::Receiver::from_owned_fd(stdout_r)?,
            stderr: pipe::Receiver::from_owned_fd(stderr_r)?,
            // SAFETY: an `OwnedFd` keeps its descriptor open until it is dropped, which
            // happens only with the `AsyncFd`.
            process: HelperProcess(unsafe { AsyncFd::register(pidfd) }?),
        })
    }

    /// The helper's pidfd from the spawner; an error (empty: the spawner is not available)
    /// means: execute it.
    async fn fork(&self, fds: &[OwnedFd; 3]) -> Result<OwnedFd, String> {
        let mut spawner = self.spawner.lock().await;
        let conn = self.ensure(&mut spawner).map_err(|_| String::new())?;
        let raw = fds.each_ref().map(|fd| fd.as_raw_fd());
        match tokio::time::timeout(FORK_TIMEOUT, conn.fork(&raw)).await {
            Ok(Ok(pidfd)) => Ok(pidfd),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => "no answer within 5 s".into(),
                };
                spawner.forget();
                Err(why)
            }
        }
    }

    /// Executes the helper as a process of its own.
    fn execute(&self, [stdin, stdout, stderr]: [OwnedFd; 3]) -> std::io::Result<OwnedFd> {
        let mut child = Command::new(&self.exe)
            // The sandbox's pid 1 is this process: its command line is world-readable
            // inside, so it names no host path.
            .arg0("sandlot-init")
            .arg(INIT_SUBCOMMAND)
            .env_clear()
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()?;
        let pid = child.id().ok_or_else(|| std::io::Error::other("no pid"))?;
        // Not reaped before the task below waits for it: the pid is still the helper's.
        let pidfd = pidfd_open(pid as libc::pid_t);
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        pidfd
    }

    fn ensure<'a>(&self, spawner: &'a mut Supervised<Conn>) -> Result<&'a mut Conn, ()> {
        if spawner.alive() {
            return Ok(spawner.conn());
        }
        if !spawner.may_start() {
            return Err(());
        }
        match self.spawn() {
            Ok(conn) => {
                info!("sandbox spawner started");
                Ok(spawner.started(conn))
            }
            Err(e) => {
                warn!("sandbox spawner did not start ({e}); sandboxes start without it");
                spawner.start_failed();
                Err(())
            }
        }
    }

    fn spawn(&self) -> std::io::Result<Conn> {
        let (ours, theirs) = seqpacket_pair()?;
        let mut child = Command::new(&self.exe)
            // Its forks become the sandboxes' pid 1 (see `execute`).
            .arg0("sandlot-init")
            .arg(SPAWNER_SUBCOMMAND)
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    warn!("sandbox spawner: {line}");
                }
            });
        }
        Ok(Conn {
            // SAFETY: as for the pidfd in `start`.
            sock: unsafe { AsyncFd::register(ours) }?,
            child,
        })
    }
}

impl Conn {
    async fn fork(&mut self, fds: &[libc::c_int]) -> Result<OwnedFd, String> {
        send_message(&self.sock, b"init", fds).await?;
        let (mut got, text) = loop {
            let mut guard = self.sock.readable().await.map_err(|e| e.to_string())?;
            match guard.try_io(|s| recv_fds(s.as_raw_fd(), 1, libc::MSG_DONTWAIT)) {
                Ok(Ok(Some(answer))) => break answer,
                Ok(Ok(None)) => return Err("the spawner closed its socket".into()),
                Ok(Err(e)) => return Err(format!("receive: {e}")),
                Err(_would_block) => continue,
            }
        };
        got.pop()
            .ok_or_else(|| String::from_utf8_lossy(&text).into_owned())
    }
}

fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; a non-negative result is a descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
