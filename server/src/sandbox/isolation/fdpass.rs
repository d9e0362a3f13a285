//! Passing a file descriptor over a Unix socket (`SCM_RIGHTS`), with a few bytes of text
//! alongside: how the terminal helper hands a PTY master to the server.
//!
//! Written against libc like the rest of the helpers (the standard library's ancillary-data
//! API is still unstable, and one message type does not justify another dependency).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Room for the control message of up to [`MAX_FDS`] descriptors (8-byte aligned).
const CMSG_BUF: usize = 64;
/// The most descriptors one message carries.
pub const MAX_FDS: usize = 8;

/// Sends `fd` with `text` on the socket `sock` (blocking).
pub fn send_fd(sock: RawFd, fd: RawFd, text: &[u8]) -> io::Result<()> {
    send_fds(sock, &[fd], text, 0)
}

/// Sends `fds` (at most [`MAX_FDS`]) with `text` on the socket `sock`; `flags` are
/// `sendmsg`'s (e.g. `MSG_DONTWAIT` on a socket driven by readiness).
pub fn send_fds(sock: RawFd, fds: &[RawFd], text: &[u8], flags: libc::c_int) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    let mut control = [0u64; CMSG_BUF / 8];
    let payload: &[u8] = if text.is_empty() { b"\0" } else { text };
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let fds_len = std::mem::size_of_val(fds) as u32;
    // SAFETY: the message points at live locals; CMSG_* walk the control buffer we sized.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = libc::CMSG_SPACE(fds_len) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fds_len) as _;
        let data = libc::CMSG_DATA(cmsg) as *mut RawFd;
        for (i, fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(data.add(i), *fd);
        }
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL | flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives one descriptor (close-on-exec) and the text sent with it (blocking; the socket's
/// receive timeout bounds the wait). `Ok(None)` when the peer closed without sending one.
pub fn recv_fd(sock: &impl AsRawFd) -> io::Result<Option<(OwnedFd, Vec<u8>)>> {
    Ok(match recv_fds(sock.as_raw_fd(), 1, 0)? {
        Some((mut fds, text)) if !fds.is_empty() => Some((fds.swap_remove(0), text)),
        _ => None,
    })
}

/// Receives one message: its descriptors (close-on-exec; beyond `max`, closed) and its text.
/// `Ok(None)` at the end of the stream (the peer closed); `flags` are `recvmsg`'s.
pub fn recv_fds(
    sock: RawFd,
    max: usize,
    flags: libc::c_int,
) -> io::Result<Option<(Vec<OwnedFd>, Vec<u8>)>> {
    let mut control = [0u64; CMSG_BUF / 8];
    let mut text = vec![0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: text.as_mut_ptr() as *mut libc::c_void,
        iov_len: text.len(),
    };
    // SAFETY: as in `send_fds`; a received descriptor is owned by us from here on.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC | flags);
            if n >= 0 {
                break n as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
        let mut received = Vec::new();
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i)));
                    // More than asked for would be a broken peer: those are closed.
                    if received.len() < max {
                        received.push(fd);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if n == 0 && received.is_empty() {
            return Ok(None);
        }
        text.truncate(n);
        Ok(Some((received, text)))
    }
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A `SOCK_SEQPACKET` pair to a helper: (ours, theirs). Ours is non-blocking (driven by
/// readiness); both are close-on-exec (a spawn hands the helper's over as its stdin).
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two descriptors we then own.
    unsafe {
        if libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let ours = OwnedFd::from_raw_fd(fds[0]);
        let theirs = OwnedFd::from_raw_fd(fds[1]);
        let flags = libc::fcntl(fds[0], libc::F_GETFL);
        libc::fcntl(fds[0], libc::F_SETFL, flags | libc::O_NONBLOCK);
        Ok((ours, theirs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_descriptor_and_its_text_cross_a_socket_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, mut w) = UnixStream::pair().unwrap();
        send_fd(a.as_raw_fd(), w.as_raw_fd(), b"/bin/bash").unwrap();
        let (fd, text) = recv_fd(&b).unwrap().expect("a descriptor arrives");
        assert_eq!(text, b"/bin/bash");
        // The received descriptor is the same socket: what goes in comes out at `r`.
        let mut sent = UnixStream::from(fd);
        sent.write_all(b"ping").unwrap();
        drop(sent);
        w.flush().unwrap();
        drop(w);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "ping");
        drop(a);
        assert!(recv_fd(&b).unwrap().is_none(), "EOF is no descriptor");
    }
}
