//! `sandlotd __sandbox-spawner`: starts each sandbox's `__sandbox-init` by forking instead of
//! re-executing the server's binary.
//!
//! Executing the 18 MB `sandlotd` anew for every create (the kernel's exec, the dynamic
//! loader relocating the binary, the runtime's start) cost ~1.5 ms of CPU per sandbox and
//! about as much of its create's latency. This helper is executed once per server; it is
//! single-threaded and small, and each fork of it runs [`super::init::main`] exactly as an
//! executed `__sandbox-init` would, on the descriptors it was given.
//!
//! Protocol, on a `SOCK_SEQPACKET` socket that is the helper's stdin: a request is any text
//! with three descriptors, the new helper's stdin, stdout and stderr; the answer is the
//! fork's pid as text with a pidfd of it, or `error: <why>` without one. The server learns
//! of a helper's end from its pidfd; the kernel reaps it (SIGCHLD is ignored here). The end
//! of the socket is the server's end: the spawner exits, and the sandboxes' helpers live on,
//! as they do when the server dies.

use std::os::fd::{AsRawFd, OwnedFd};

use super::exec::close_fds_from;
use super::fdpass::{recv_fds, send_fds};
use super::sys::{die, fork};

const SOCKET: libc::c_int = 0;

pub fn main() -> ! {
    close_fds_from(3);
    // SAFETY: setting a signal disposition in our own single-threaded process. Ignored,
    // exited children are reaped by the kernel: nobody here waits for them.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    loop {
        let fds = match recv_fds(SOCKET, 3, 0) {
            Ok(Some((fds, _))) => fds,
            Ok(None) => std::process::exit(0),
            Err(e) => die("receive a request", e),
        };
        let answer = match start(fds) {
            Ok((pid, pidfd)) => {
                send_fds(SOCKET, &[pidfd.as_raw_fd()], pid.to_string().as_bytes(), 0)
            }
            Err(e) => send_fds(SOCKET, &[], format!("error: {e}").as_bytes(), 0),
        };
        if let Err(e) = answer {
            die("answer", e);
        }
    }
}

/// Forks a helper on `fds` (its stdin, stdout, stderr): its pid and a pidfd of it.
fn start(fds: Vec<OwnedFd>) -> std::io::Result<(libc::pid_t, OwnedFd)> {
    if fds.len() != 3 {
        return Err(std::io::Error::other(format!(
            "expected 3 descriptors, got {}",
            fds.len()
        )));
    }
    let pid = fork()?;
    if pid == 0 {
        // SAFETY: our own process, single-threaded: the child's stdio becomes the three
        // (dup2 onto 0 also closes the spawner's socket), and SIGCHLD is the default again
        // (the helper waits for the sandbox's pid 1).
        unsafe {
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
            for (fd, target) in fds.iter().zip(0..) {
                if libc::dup2(fd.as_raw_fd(), target) < 0 {
                    die("stdio", std::io::Error::last_os_error());
                }
            }
        }
        drop(fds);
        super::init::main()
    }
    drop(fds);
    // The child cannot have been reaped yet: its pid is still its own.
    // SAFETY: plain syscall; a non-negative result is a descriptor we own.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if pidfd < 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: our own child, which has not started the sandbox yet (its stdin is empty).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return Err(err);
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok((pid, unsafe { std::os::fd::FromRawFd::from_raw_fd(pidfd) }))
}
