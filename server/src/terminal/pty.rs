//! The server's end of a terminal: starting the `__sandbox-pty` helper, receiving the PTY
//! master it sends back, and reading, writing and resizing that master without blocking a
//! runtime thread (tokio's `AsyncFd` on the non-blocking descriptor).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::sandbox::isolation::fdpass::recv_fd;
use crate::sandbox::isolation::{PtyConfig, PTY_SUBCOMMAND};

/// How long the helper may take to join the sandbox and send the terminal back.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A PTY master, non-blocking, driven by the runtime's reactor.
#[derive(Debug)]
pub struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

/// A started terminal: the master, the helper whose exit is the shell's, and the shell the
/// helper chose.
pub struct Started {
    pub master: PtyMaster,
    pub helper: Child,
    pub shell: String,
}

/// Starts the helper and waits for the master. Errors carry the helper's own reason.
pub async fn start(exe: &Path, cfg: &PtyConfig) -> Result<Started, String> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| format!("socket pair for the terminal: {e}"))?;
    let mut helper = {
        let mut cmd = Command::new(exe);
        cmd.arg(PTY_SUBCOMMAND)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // `cmd` (and with it our copy of the helper's end) is dropped here, so the socket
        // reads EOF if the helper dies without sending.
        cmd.spawn()
            .map_err(|e| format!("could not start the terminal helper: {e}"))?
    };
    let json = serde_json::to_vec(cfg).expect("terminal config serialises");
    let mut stdin = helper.stdin.take().expect("stdin is piped");
    let _ = stdin.write_all(&json).await;
    drop(stdin);

    let received = tokio::task::spawn_blocking(move || {
        ours.set_read_timeout(Some(START_TIMEOUT))?;
        recv_fd(&ours)
    })
    .await
    .map_err(|e| format!("terminal start task: {e}"))?;
    let mut stderr = helper.stderr.take().expect("stderr is piped");
    let (fd, shell) = match received {
        Ok(Some(got)) => got,
        failed => {
            let _ = helper.start_kill();
            let _ = helper.wait().await;
            let mut said = String::new();
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                (&mut stderr).take(4096).read_to_string(&mut said),
            )
            .await;
            let said = said.trim().trim_start_matches("sandlot: ");
            return Err(match failed {
                Err(e) if said.is_empty() => format!("the terminal did not start: {e}"),
                _ if said.is_empty() => "the terminal did not start".into(),
                _ => format!("the terminal did not start: {said}"),
            });
        }
    };
    // Nothing more is said on stderr once the shell runs (its errors go to the terminal);
    // keep the pipe drained so the helper never blocks on it.
    tokio::spawn(async move {
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut stderr, &mut sink).await;
    });
    let master = PtyMaster::new(fd).map_err(|e| format!("terminal master: {e}"))?;
    Ok(Started {
        master,
        helper,
        shell: String::from_utf8_lossy(&shell).into_owned(),
    })
}

impl PtyMaster {
    fn new(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: an `OwnedFd` keeps its one descriptor open until it is dropped, which
        // happens only with the `AsyncFd`.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// Reads what the shell wrote; `Ok(0)` once every slave is closed (Linux answers EIO).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: reading into a buffer we own, of its length.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` (what the user typed), waiting while the terminal's input
    /// queue is full.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: writing from a slice we hold, of its length.
                let n = unsafe {
                    libc::write(
                        fd.as_raw_fd(),
                        data.as_ptr() as *const libc::c_void,
                        data.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Sets the window size; the kernel sends SIGWINCH to the terminal's foreground group.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we pass.
        let ret = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
