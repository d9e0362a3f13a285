//! The way into a sandbox's ports: a TCP socket created inside the sandbox's network
//! namespace, connected to its `127.0.0.1:<port>`. Works with or without internet access
//! (a sandbox's `lo` is always up) and needs no route from the host: nothing outside can
//! reach a sandbox's ports except through sandlotd.
//!
//! `setns` changes the namespace of the calling thread only, so the socket is made on a
//! short-lived thread of its own that enters the namespace, creates the socket and ends;
//! the socket keeps the namespace it was made in, and is connected from tokio as usual.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

/// How long a connect to a sandbox port may take (a listening port answers at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `127.0.0.1:port` in the network namespace of `init_pid`.
pub async fn connect(init_pid: i32, port: u16) -> std::io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sandbox-port".into())
        .spawn(move || {
            let _ = tx.send(socket_in(init_pid));
        })?;
    let fd = rx
        .await
        .map_err(|_| std::io::Error::other("the port thread died"))??;
    // SAFETY: `fd` is a fresh, owned, non-blocking TCP socket.
    let socket = unsafe { TcpSocket::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

fn socket_in(init_pid: i32) -> std::io::Result<OwnedFd> {
    let target = std::fs::File::open(format!("/proc/{init_pid}/ns/net"))?;
    let own = std::fs::File::open("/proc/thread-self/ns/net")?;
    // SAFETY: plain syscalls on descriptors we own; this thread ends right after.
    unsafe {
        if libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        let made = if fd < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(OwnedFd::from_raw_fd(fd))
        };
        // The thread ends next anyway; going back keeps it harmless until then.
        libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET);
        made
    }
}
