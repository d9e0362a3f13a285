//! `sandlotd __sandbox-exec`: run one process inside an existing sandbox.
//!
//! The helper joins the sandbox's cgroups (so limits and kill-the-tree cover the process from
//! its first instruction), joins its namespaces through a pidfd of the sandbox's pid 1, and
//! forks: only children land in the joined pid namespace. The child drops every privilege and
//! execs the program; the helper waits and exits with the child's status (128+signal when the
//! child was killed). stdout/stderr are the server's pipes, inherited untouched. The config
//! and the program text arrive on stdin ([`super::exec_input`]), so nothing of the process's
//! environment shows in the helper's command line.

use std::io::Write;
use std::os::fd::FromRawFd;

use super::sys::{
    check, clone3_unsupported, clone_into_cgroup, die, fork, wait_exit_code, write_file,
};
use super::{
    read_exec_input, seccomp, CodeDelivery, ExecConfig, Rlimits, DRIVER_REPLY_FD,
    DRIVER_REPLY_FD_HELPER, NAMESPACES,
};

pub fn main() -> ! {
    // Unbuffered: a driver's commands follow the program on stdin and are its to read.
    // SAFETY: fd 0 is our stdin; ManuallyDrop keeps it open.
    let mut stdin = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let (cfg, code) =
        read_exec_input(&mut *stdin).unwrap_or_else(|e| die("read exec config and program", e));
    let code = &code[..];

    // Before joining: raising a hard limit takes the host's CAP_SYS_RESOURCE, which a
    // helper in the sandbox's user namespace no longer has. The process inherits them.
    set_rlimits(&cfg.rlimits);
    let joined = join_sandbox(&cfg.cgroup_procs, cfg.init_pid, cfg.user_ns, Entry::Clone)
        .unwrap_or_else(|e| die("join sandbox", e));
    let program = memfd_with(code).unwrap_or_else(|e| die("stage program", e));
    let filter = seccomp::filter().unwrap_or_else(|e| die("seccomp", e));

    let child = joined
        .fork()
        .unwrap_or_else(|e| die("start the process", e));
    if child == 0 {
        exec_child(&cfg, program, &filter);
    }
    // SAFETY: our copy of the program fd is no longer needed.
    unsafe { libc::close(program) };
    if cfg.code == CodeDelivery::Driver {
        // The server interrupts a driver's cell through the program's process group.
        // SAFETY: fd 3 is the reply pipe the server gave us; closing our copy leaves the
        // program the only writer, so the server sees its end.
        let mut replies = unsafe { std::fs::File::from_raw_fd(DRIVER_REPLY_FD_HELPER) };
        // One write: the driver writes to the same pipe, and a line in pieces could
        // interleave with its own.
        let line = format!("{{\"type\":\"spawned\",\"pid\":{child}}}\n");
        let _ = replies.write_all(line.as_bytes());
    }
    std::process::exit(wait_exit_code(child));
}

/// How a helper's child gets into the sandbox's v2 group.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// Cloned straight into it: no lock. The helper stays host root until it forks.
    Clone,
    /// The helper joins it by a write (the kernel's global lock) and becomes the sandbox's
    /// root at once: the terminal helper opens the terminal, which must be the sandbox's, as
    /// that root, before it forks.
    Now,
}

/// A helper on its way into its sandbox: in the sandbox's v1 limit groups and its
/// namespaces (all but the cgroup one with [`Entry::Clone`]), ready to fork the process.
pub(super) struct Joined {
    /// Pid 1's cgroup namespace, for the child to join ([`Entry::Clone`]): opened while the
    /// helper was still host root (a namespace's descriptor is joined without the ptrace
    /// check a pidfd would need by then).
    cgroup_ns: Option<libc::c_int>,
    /// The process's v2 tracking group (its directory, and its `cgroup.procs`).
    v2: Option<(std::fs::File, String)>,
    user_ns: bool,
}

/// Joins the sandbox whose pid 1 is `init_pid`, without the kernel's global cgroup lock:
/// `cgroups` are the v1 groups' `tasks` files (this single-threaded helper moves its own
/// thread, which skips the lock; the child inherits them) and the process's v2
/// `cgroup.procs` (the child is cloned straight into that group, [`Joined::fork`]). Then
/// every namespace of the sandbox but the cgroup one, at once (the user namespace first, by
/// the kernel's order, so the others are joined with its capabilities); the child joins the
/// cgroup namespace itself, after the clone, since its group lies outside that namespace.
pub(super) fn join_sandbox(
    cgroups: &[String],
    init_pid: i32,
    user_ns: bool,
    entry: Entry,
) -> std::io::Result<Joined> {
    let mut v2 = None;
    for path in cgroups {
        match path.strip_suffix("/cgroup.procs") {
            Some(_) if entry == Entry::Now => write_file(path, &std::process::id().to_string())?,
            Some(dir) => v2 = Some((std::fs::File::open(dir)?, path.clone())),
            None => write_file(path, "0")?,
        }
    }
    let user = if user_ns { libc::CLONE_NEWUSER } else { 0 };
    if entry == Entry::Now {
        join_namespaces(init_pid, NAMESPACES | user)?;
        if user_ns {
            super::sys::become_namespace_root()?;
        }
        return Ok(Joined {
            cgroup_ns: None,
            v2: None,
            user_ns: false,
        });
    }
    let path = super::sys::cstr(&format!("/proc/{init_pid}/ns/cgroup"))?;
    // SAFETY: opening a path; the descriptor stays open for the child (closed in `fork`).
    let cgroup_ns = check(
        unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) },
        "open the cgroup namespace",
    )?;
    if let Err(e) = join_namespaces(init_pid, (NAMESPACES & !libc::CLONE_NEWCGROUP) | user) {
        // SAFETY: our own descriptor.
        unsafe { libc::close(cgroup_ns) };
        return Err(e);
    }
    Ok(Joined {
        cgroup_ns: Some(cgroup_ns),
        v2,
        user_ns,
    })
}

/// Joins the namespaces `namespaces` names of the sandbox whose pid 1 is `init_pid`, at once.
fn join_namespaces(init_pid: i32, namespaces: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain syscalls; the pidfd is closed after use.
    unsafe {
        let pidfd = check(
            libc::syscall(libc::SYS_pidfd_open, init_pid, 0) as libc::c_int,
            "pidfd_open",
        )?;
        let joined = check(libc::setns(pidfd, namespaces), "setns");
        libc::close(pidfd);
        joined.map(|_| ())
    }
}

impl Joined {
    /// Forks the sandbox's process into its v2 group (by `clone3(CLONE_INTO_CGROUP)`; where
    /// the kernel cannot, the helper joins the group by a write, lock and all, and forks).
    /// Both sides then become root of the sandbox's user namespace, if it has one: host root
    /// is no one there, so the helper stops being host root at all, and the child's later drop
    /// to the sandbox's user clears every capability (the kernel does so on leaving a
    /// namespace's root). Returns 0 in the child.
    pub(super) fn fork(self) -> std::io::Result<libc::pid_t> {
        let child = match clone_into_cgroup(self.v2.as_ref().map(|(dir, _)| dir), 0) {
            Ok(pid) => pid,
            Err(e) if clone3_unsupported(&e) => {
                if let Some((_, procs)) = &self.v2 {
                    write_file(procs, &std::process::id().to_string())?;
                }
                fork()?
            }
            Err(e) => return Err(e),
        };
        if let Some(cgroup_ns) = self.cgroup_ns {
            // SAFETY: joining pid 1's cgroup namespace through our descriptor (the child),
            // and closing our copy (both).
            unsafe {
                if child == 0 {
                    check(
                        libc::setns(cgroup_ns, libc::CLONE_NEWCGROUP),
                        "setns cgroup",
                    )?;
                }
                libc::close(cgroup_ns);
            }
        }
        if self.user_ns {
            super::sys::become_namespace_root()?;
        }
        Ok(child)
    }
}

/// An anonymous in-memory file holding the program text, positioned at its start.
pub(super) fn memfd_with(code: &[u8]) -> std::io::Result<libc::c_int> {
    // SAFETY: the name is NUL-terminated; writes stay within `code`.
    unsafe {
        let fd = check(libc::memfd_create(c"program".as_ptr(), 0), "memfd_create")?;
        let mut written = 0;
        while written < code.len() {
            let n = libc::write(
                fd,
                code[written..].as_ptr() as *const libc::c_void,
                code.len() - written,
            );
            if n <= 0 {
                return Err(std::io::Error::last_os_error());
            }
            written += n as usize;
        }
        check(libc::lseek(fd, 0, libc::SEEK_SET) as libc::c_int, "lseek")?;
        Ok(fd)
    }
}

/// In the forked child, now pid N of the sandbox: drop everything and exec.
fn exec_child(cfg: &ExecConfig, program: libc::c_int, filter: &seccomp::Program) -> ! {
    // SAFETY: syscalls on our own process; all strings are built before exec and outlive it.
    unsafe {
        // A new session makes the process a group leader; the helper's death kills it.
        libc::setsid();
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        // The helper lives outside the sandbox's pid namespace, so our parent pid reads as 0
        // while it lives; anything else means it died before PDEATHSIG was armed.
        if libc::getppid() != 0 {
            libc::_exit(137);
        }

        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        match cfg.code {
            CodeDelivery::Stdin => {
                libc::dup2(program, 0);
            }
            CodeDelivery::Fd3 => {
                libc::dup2(devnull, 0);
                libc::dup2(program, 3);
            }
            CodeDelivery::Driver => {
                // Move both out of the way first: either may sit on the other's target.
                let replies = libc::fcntl(DRIVER_REPLY_FD_HELPER, libc::F_DUPFD_CLOEXEC, 64);
                let prog = libc::fcntl(program, libc::F_DUPFD_CLOEXEC, 64);
                if replies < 0 || prog < 0 {
                    die("driver descriptors", std::io::Error::last_os_error());
                }
                libc::dup2(prog, 3);
                libc::dup2(replies, DRIVER_REPLY_FD);
            }
        }
        close_fds_from(match cfg.code {
            CodeDelivery::Stdin => 3,
            CodeDelivery::Fd3 => 4,
            CodeDelivery::Driver => DRIVER_REPLY_FD + 1,
        });
    }
    drop_privileges_and_exec(cfg.uid, cfg.gid, &cfg.cwd, &cfg.argv, &cfg.env, filter)
}

/// The last steps of every sandboxed process, in the forked child: enter the working
/// directory, set the limits, give up every privilege (capabilities, ids, `no_new_privs`,
/// the seccomp allow-list) and exec.
pub(super) fn drop_privileges_and_exec(
    uid: u32,
    gid: u32,
    cwd: &str,
    argv: &[String],
    env: &[(String, String)],
    filter: &seccomp::Program,
) -> ! {
    // SAFETY: syscalls on our own process; all strings are built before exec and outlive it.
    unsafe {
        let cwd_c = super::sys::cstr(cwd).unwrap_or_else(|e| die("workdir", e));
        if libc::chdir(cwd_c.as_ptr()) != 0 {
            die(&format!("workdir {cwd}"), std::io::Error::last_os_error());
        }

        // Drop the capability bounding set while still privileged, then the ids.
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            die("drop privileges", std::io::Error::last_os_error());
        }
        // A change of ids clears the parent-death signal armed by the caller: arm it again
        // (and, as there, give up if the helper died in between: our parent, outside the
        // sandbox's pid namespace, reads as 0 while it lives).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != 0 {
            libc::_exit(137);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            die("no_new_privs", std::io::Error::last_os_error());
        }
        if let Err(e) = seccomp::apply(filter) {
            die("seccomp", e);
        }

        let argv_c: Vec<_> = argv.iter().map(|a| cstring(a)).collect();
        let env_c: Vec<_> = env
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}")))
            .collect();
        let mut argv_ptrs: Vec<_> = argv_c.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<_> = env_c.iter().map(|e| e.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        libc::execve(argv_ptrs[0], argv_ptrs.as_ptr(), env_ptrs.as_ptr());
        die(
            &format!("exec {}", argv[0]),
            std::io::Error::last_os_error(),
        );
    }
}

fn cstring(s: &str) -> std::ffi::CString {
    // NULs cannot be passed to exec; drop them rather than fail the run.
    std::ffi::CString::new(s.replace('\0', "")).expect("NULs removed")
}

pub(super) fn close_fds_from(first: libc::c_int) {
    // SAFETY: closing descriptors we do not hand to the program.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        ) != 0
        {
            for fd in first..1024 {
                libc::close(fd);
            }
        }
    }
}

pub(super) fn set_rlimits(limits: &Rlimits) {
    let set = |resource, value: u64| {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: valid pointer to a local rlimit.
        unsafe { libc::setrlimit(resource, &lim) };
    };
    set(libc::RLIMIT_NOFILE, limits.nofile);
    set(libc::RLIMIT_NPROC, limits.nproc);
    set(libc::RLIMIT_FSIZE, limits.fsize_bytes);
    set(libc::RLIMIT_CORE, 0);
    if limits.as_bytes > 0 {
        set(libc::RLIMIT_AS, limits.as_bytes);
    }
}
