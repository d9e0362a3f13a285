//! `sandlotd __sandbox-pty`: start a shell on a pseudo-terminal inside an existing sandbox.
//!
//! Like `__sandbox-exec` ([`super::exec`]) the helper joins the sandbox's cgroups and
//! namespaces. Then, inside the sandbox's mount namespace, it opens `/dev/ptmx` (the
//! sandbox's own devpts instance, so the PTY is the sandbox's, numbered and bounded there)
//! and the matching slave, hands the slave to the sandbox uid, and sends the master to the
//! server over its stdout, a Unix socket (`SCM_RIGHTS`, with the chosen shell's path as the
//! message text). It forks: the child starts a new session with the slave as its
//! controlling terminal and stdin/stdout/stderr, drops every privilege exactly as other
//! sandboxed processes do, and execs the shell. The helper waits and exits with the shell's
//! status (128+signal when it was killed), which the server reports as the exit code.
//!
//! Failures before the master is sent go to stderr (the server reports them); failures in
//! the child after that go to the terminal itself, where its user sees them.

use std::io::Read;

use super::exec::{close_fds_from, drop_privileges_and_exec, join_sandbox, set_rlimits, Entry};
use super::fdpass::send_fd;
use super::sys::{check, die, wait_exit_code};
use super::{seccomp, PtyConfig};

/// Shells tried, in order, when the request names none.
const DEFAULT_SHELLS: &[&str] = &["/bin/bash", "/bin/sh"];

pub fn main() -> ! {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        die("read terminal config", e);
    }
    let cfg: PtyConfig =
        serde_json::from_slice(&input).unwrap_or_else(|e| die("parse terminal config", e));

    // Before joining: see the exec helper.
    set_rlimits(&cfg.rlimits);
    let joined = join_sandbox(&cfg.cgroup_procs, cfg.init_pid, cfg.user_ns, Entry::Now)
        .unwrap_or_else(|e| die("join sandbox", e));
    let shell = choose_shell(cfg.shell.as_deref()).unwrap_or_else(|e| die("shell", e));
    // Checked here, where the server can still refuse the request, rather than by the
    // child's chdir, whose failure only the terminal would show.
    match std::fs::metadata(&cfg.cwd) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => die(&format!("workdir {}", cfg.cwd), "not a directory"),
        Err(e) => die(&format!("workdir {}", cfg.cwd), e),
    }
    let (master, slave) = open_pty(&cfg).unwrap_or_else(|e| die("open a terminal", e));
    let filter = seccomp::filter().unwrap_or_else(|e| die("seccomp", e));

    let child = joined.fork().unwrap_or_else(|e| die("start the shell", e));
    if child == 0 {
        shell_child(&cfg, &shell, slave, &filter);
    }
    // The master goes to the server only once the shell exists, so the server never holds
    // a terminal without a process behind it.
    if let Err(e) = send_fd(1, master, shell.as_bytes()) {
        // SAFETY: the child is ours; without the server holding the master it is useless.
        unsafe { libc::kill(child, libc::SIGKILL) };
        die("hand the terminal to the server", e);
    }
    // SAFETY: closing our copies: the server holds the master, the shell the slave, and
    // stdout (the socket) is done with.
    unsafe {
        libc::close(master);
        libc::close(slave);
        libc::close(1);
    }
    std::process::exit(wait_exit_code(child));
}

/// The requested shell (it must exist and be executable), or the first default that is.
fn choose_shell(requested: Option<&str>) -> std::io::Result<String> {
    let executable = |path: &str| {
        super::sys::cstr(path)
            // SAFETY: a NUL-terminated path.
            .map(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0)
            .unwrap_or(false)
    };
    match requested {
        Some(path) if executable(path) => Ok(path.to_string()),
        Some(path) => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{path} is not an executable in this sandbox"),
        )),
        None => DEFAULT_SHELLS
            .iter()
            .find(|s| executable(s))
            .map(|s| s.to_string())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no /bin/bash nor /bin/sh")
            }),
    }
}

/// Opens a PTY pair in the sandbox's devpts: the master (close-on-exec) and its slave, the
/// slave owned by the sandbox uid (as `grantpt` would), the window size set.
fn open_pty(cfg: &PtyConfig) -> std::io::Result<(libc::c_int, libc::c_int)> {
    // SAFETY: plain syscalls on descriptors we own; the winsize outlives the ioctl.
    unsafe {
        let master = check(
            libc::open(
                c"/dev/ptmx".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ),
            "open /dev/ptmx",
        )?;
        let unlock: libc::c_int = 0;
        check(
            libc::ioctl(master, libc::TIOCSPTLCK, &unlock),
            "unlock the terminal",
        )?;
        // TIOCGPTPEER opens the slave through the master, not by a path a process of the
        // sandbox could swap.
        let slave = check(
            libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY),
            "open the terminal's slave",
        )?;
        check(libc::fchown(slave, cfg.uid, cfg.gid), "chown the terminal")?;
        check(libc::fchmod(slave, 0o620), "chmod the terminal")?;
        let size = libc::winsize {
            ws_row: cfg.rows,
            ws_col: cfg.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        check(libc::ioctl(master, libc::TIOCSWINSZ, &size), "set the size")?;
        Ok((master, slave))
    }
}

/// In the forked child: a new session on the slave, then the common privilege drop.
fn shell_child(cfg: &PtyConfig, shell: &str, slave: libc::c_int, filter: &seccomp::Program) -> ! {
    // SAFETY: syscalls on our own process and descriptors.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        // As in `exec`: a parent outside our pid namespace reads as 0 while it lives.
        if libc::getppid() != 0 {
            libc::_exit(137);
        }
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            die(
                "make the terminal controlling",
                std::io::Error::last_os_error(),
            );
        }
        for fd in 0..3 {
            libc::dup2(slave, fd);
        }
        close_fds_from(3);
    }
    let mut env = cfg.env.clone();
    env.retain(|(k, _)| k != "SHELL");
    env.push(("SHELL".into(), shell.into()));
    drop_privileges_and_exec(
        cfg.uid,
        cfg.gid,
        &cfg.cwd,
        &[shell.to_string()],
        &env,
        filter,
    )
}
