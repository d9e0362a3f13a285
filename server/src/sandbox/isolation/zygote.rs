//! `sandlotd __sandbox-zygote`: start the python fork server that contexts are forked from
//! (`crate::contexts::zygote`).
//!
//! The fork server runs as root on the host, outside every sandbox; each context it forks
//! confines itself as [`super::exec`] does. This helper only gives the fork server a place
//! of its own before it execs the interpreter: a private mount namespace whose `/tmp` is a
//! small tmpfs, so what IPython writes while it starts up (its profile directory) never
//! lands in the host's `/tmp`.
//!
//! Its stdin is the server's control socket (`SOCK_SEQPACKET`). The first message is a
//! [`ZygoteConfig`]; the helper moves the socket to fd [`ZYGOTE_CONTROL_FD`], puts the
//! program text in a memfd at fd 3 (the interpreter runs `/proc/self/fd/3`, as a context's
//! driver does), gives the interpreter `/dev/null` as stdin and as fd 4, and execs it with
//! the configured environment only. The messages after the first are the fork server's.
//!
//! Descriptors 0–4 are taken as they are in an exec'd driver (stdin, stdout, stderr, the
//! program, the replies), so whatever the interpreter opens while it starts up and keeps
//! (IPython keeps a `/dev/null`) gets the number it gets in an exec'd driver; a fork opens
//! the sandbox's `/dev/null` at those numbers.

use serde::{Deserialize, Serialize};

use super::sys::{check, die, mount};

/// Where the fork server finds its control socket: out of the way of the descriptors the
/// interpreter opens as it starts.
pub const ZYGOTE_CONTROL_FD: libc::c_int = 100;
/// Size of the fork server's private `/tmp`.
const TMP_SIZE: &str = "size=16m,mode=1777";

/// The first message on the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZygoteConfig {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The interpreter's program, handed over as fd 3.
    pub program: String,
}

pub fn main() -> ! {
    let mut buf = vec![0u8; 4 << 20];
    // SAFETY: a read into our own buffer from the socket on fd 0.
    let n = unsafe { libc::recv(0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
    if n <= 0 {
        die("read zygote config", std::io::Error::last_os_error());
    }
    let cfg: ZygoteConfig =
        serde_json::from_slice(&buf[..n as usize]).unwrap_or_else(|e| die("parse config", e));
    drop(buf);
    if let Err(e) = private_tmp() {
        die("private /tmp", e);
    }
    let program =
        super::exec::memfd_with(cfg.program.as_bytes()).unwrap_or_else(|e| die("stage program", e));
    // SAFETY: descriptor shuffling on our own, single-threaded process before exec.
    unsafe {
        let control = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 64);
        let prog = libc::fcntl(program, libc::F_DUPFD_CLOEXEC, 64);
        if control < 0 || prog < 0 {
            die("descriptors", std::io::Error::last_os_error());
        }
        libc::dup2(prog, 3);
        libc::dup2(control, ZYGOTE_CONTROL_FD);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        libc::dup2(null, 0);
        libc::dup2(null, 4);
        // Everything else goes: 5..ZYGOTE_CONTROL_FD, and the copies above it.
        for fd in 5..ZYGOTE_CONTROL_FD {
            libc::close(fd);
        }
        super::exec::close_fds_from(ZYGOTE_CONTROL_FD + 1);
    }
    let argv: Vec<_> = cfg.argv.iter().map(|a| cstring(a)).collect();
    let env: Vec<_> = cfg
        .env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect();
    let mut argv_ptrs: Vec<_> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<_> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated argument and environment arrays that outlive the call.
    unsafe { libc::execve(argv_ptrs[0], argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    die(
        &format!("exec {}", cfg.argv[0]),
        std::io::Error::last_os_error(),
    )
}

fn cstring(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s.replace('\0', "")).expect("NULs removed")
}

/// A mount namespace of our own, nothing propagating back to the host, with a fresh tmpfs
/// on `/tmp`.
fn private_tmp() -> std::io::Result<()> {
    // SAFETY: unshare on our own single-threaded process.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }, "unshare")?;
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(TMP_SIZE),
    )
}
