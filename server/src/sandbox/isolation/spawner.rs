//! `sandlotd __sandbox-spawner`: starts each sandbox's `__sandbox-init` by forking instead of
//! re-executing the server's binary.
//!
//! Executing the 18 MB `sandlotd` anew for every create (the kernel's exec, the dynamic
//! loader relocating the binary, the runtime's start) cost ~1.5 ms of CPU per sandbox and
//! about as much of its create's latency. This helper is executed once per server; it is
//! single-threaded and small, and each fork of it runs [`super::init::main`] exactly as an
//! executed `__sandbox-init` would, on the descriptors it was given.
//!
//! Making a network namespace (~0.8 ms here) and bringing up its `lo` (~0.3 ms) is the
//! slowest step of a sandbox's start, and it depends on nothing about the sandbox. So once
//! requests have stopped for a moment, the spawner makes some ahead ([`NetnsPool`]); a fork
//! joins one and the helper creates the sandbox's other namespaces in it. Such a namespace belongs to the
//! host's user namespace rather than the sandbox's: its root holds no capability over it,
//! which it never needed (its addresses and routes are set from outside, by the server).
//! With the pool empty (deep into a burst), the helper makes its own.
//!
//! Protocol, on a `SOCK_SEQPACKET` socket that is the helper's stdin: a request is any text
//! with three descriptors, the new helper's stdin, stdout and stderr; the answer is the
//! fork's pid as text with a pidfd of it, or `error: <why>` without one. The server learns
//! of a helper's end from its pidfd; the kernel reaps it (SIGCHLD is ignored here). The end
//! of the socket is the server's end: the spawner exits, and the sandboxes' helpers live on,
//! as they do when the server dies.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::exec::close_fds_from;
use super::fdpass::{recv_fds, send_fds};
use super::sys::{die, fork};

const SOCKET: libc::c_int = 0;

/// Network namespaces made ahead: as many as the largest burst of requests seen so far
/// asked for, within these bounds. Each holds ~100 KB of kernel memory while it waits, so a
/// server that never sees a burst keeps few.
const POOL_MIN: usize = 4;
const POOL_MAX: usize = 32;

/// Namespaces are made ahead only once requests have stopped for this long: made between a
/// burst's requests, each would cost the burst as much as the helper making its own.
const FILL_QUIET: Duration = Duration::from_millis(10);

pub fn main() -> ! {
    close_fds_from(3);
    // SAFETY: setting a signal disposition in our own single-threaded process. Ignored,
    // exited children are reaped by the kernel: nobody here waits for them.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut pool = NetnsPool::new();
    let mut last_request: Option<Instant> = None;
    loop {
        if pool.wants_more() {
            let quiet_left =
                last_request.map_or(Duration::ZERO, |at| FILL_QUIET.saturating_sub(at.elapsed()));
            if !request_waiting(quiet_left) {
                if quiet_left.is_zero() {
                    pool.note_quiet();
                    pool.make_one();
                }
                continue;
            }
        }
        let fds = match recv_fds(SOCKET, 3, 0) {
            Ok(Some((fds, _))) => fds,
            Ok(None) => std::process::exit(0),
            Err(e) => die("receive a request", e),
        };
        last_request = Some(Instant::now());
        let answer = match start(fds, pool.take()) {
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

/// Forks a helper on `fds` (its stdin, stdout, stderr), in `netns` if given: its pid and a
/// pidfd of it.
fn start(fds: Vec<OwnedFd>, netns: Option<OwnedFd>) -> std::io::Result<(libc::pid_t, OwnedFd)> {
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
        let joined = netns.is_some_and(|ns| {
            // SAFETY: joining a namespace on a descriptor we own.
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) == 0 }
        });
        super::init::run(joined)
    }
    drop(fds);
    drop(netns);
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

/// Whether a request is waiting on the socket, or arrives within `within`.
fn request_waiting(within: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: SOCKET,
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = within.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // An error (none is expected) counts as a request: the receive that follows says more.
    // SAFETY: polling one descriptor of ours.
    unsafe { libc::poll(&mut fd, 1, timeout_ms) != 0 }
}

/// Network namespaces made ahead, each with its `lo` up.
struct NetnsPool {
    /// The spawner's own namespace, to return to after making one; `None` when this host
    /// does not let us make them (then every helper makes its own, and fails there if it must).
    home: Option<OwnedFd>,
    ready: Vec<OwnedFd>,
    /// How many to keep ready.
    target: usize,
    /// Requests since requests last stopped.
    burst: usize,
}

impl NetnsPool {
    fn new() -> Self {
        let home = std::fs::File::open("/proc/self/ns/net")
            .ok()
            .map(OwnedFd::from);
        Self {
            home,
            ready: Vec::new(),
            target: POOL_MIN,
            burst: 0,
        }
    }

    fn wants_more(&self) -> bool {
        self.home.is_some() && self.ready.len() < self.target
    }

    fn take(&mut self) -> Option<OwnedFd> {
        self.burst += 1;
        self.ready.pop()
    }

    /// Requests have stopped: the burst that just ended may raise the target.
    fn note_quiet(&mut self) {
        self.target = self.target.max(self.burst.min(POOL_MAX));
        self.burst = 0;
    }

    fn make_one(&mut self) {
        let Some(home) = &self.home else { return };
        // SAFETY: namespace calls on our own single-threaded process; it returns `home`.
        let made = unsafe {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                Err(std::io::Error::last_os_error())
            } else {
                let made = std::fs::File::open("/proc/self/ns/net")
                    .map(OwnedFd::from)
                    .and_then(|ns| super::init::loopback_up().map(|()| ns));
                if libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    die(
                        "return to the host's network namespace",
                        std::io::Error::last_os_error(),
                    );
                }
                made
            }
        };
        match made {
            Ok(ns) => self.ready.push(ns),
            Err(e) => {
                eprintln!("sandlot: network namespaces are not made ahead: {e}");
                self.home = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_as_many_as_the_largest_burst_asked_for_within_bounds() {
        let mut pool = NetnsPool {
            home: None,
            ready: Vec::new(),
            target: POOL_MIN,
            burst: 0,
        };
        let burst = |pool: &mut NetnsPool, n| {
            for _ in 0..n {
                pool.take();
            }
            pool.note_quiet();
            pool.target
        };
        assert_eq!(
            burst(&mut pool, 1),
            POOL_MIN,
            "one create at a time keeps the minimum"
        );
        assert_eq!(burst(&mut pool, 12), 12);
        assert_eq!(burst(&mut pool, 3), 12, "a smaller burst does not lower it");
        assert_eq!(burst(&mut pool, 100), POOL_MAX);
    }
}
