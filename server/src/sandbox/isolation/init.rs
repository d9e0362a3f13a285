//! `sandlotd __sandbox-init`: create a sandbox and keep it alive.
//!
//! Protocol with the server: the helper reads an [`InitConfig`] as JSON on stdin, prints
//! `pid <host pid of the sandbox's pid 1>` on stdout as soon as pid 1 exists, and
//! `ready <the same pid>` once the sandbox is ready. It then waits
//! for pid 1 and exits when the sandbox dies (the server kills pid 1 to kill the sandbox).
//! Any failure is printed on stderr and the helper exits non-zero.

use std::io::{Read, Write};

use super::exec::close_fds_from;
use super::sys::{
    check, clone3_unsupported, clone_into_cgroup, die, fork, wait_exit_code, write_file,
};
use super::{rootfs, InitConfig, NAMESPACES};

pub fn main() -> ! {
    run(false)
}

/// The helper, in a network namespace of its own already (`network_ready`: one the spawner
/// made ahead, its `lo` up) or making one for the sandbox.
pub fn run(network_ready: bool) -> ! {
    let namespaces = if network_ready {
        NAMESPACES & !libc::CLONE_NEWNET
    } else {
        NAMESPACES
    };
    // Only stdin, stdout and stderr are meant for us: a descriptor the server had open
    // without close-on-exec stays out of the sandbox.
    close_fds_from(3);
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        die("read config", e);
    }
    let cfg: InitConfig = serde_json::from_str(&input).unwrap_or_else(|e| die("parse config", e));

    // Join the sandbox's v1 cgroups first, so pid 1 and everything after it is accounted
    // there. "0" is this thread, the helper's only one: moving a thread rather than a
    // process skips the kernel's global lock (and the grace period it can wait for).
    for tasks in &cfg.cgroup_tasks {
        if let Err(e) = write_file(tasks, "0") {
            die("join cgroup", e);
        }
    }
    let v2 = cfg.cgroup_v2.as_ref().map(|dir| {
        std::fs::File::open(dir).unwrap_or_else(|e| die(&format!("open cgroup {dir}"), e))
    });
    if let Some(userns) = cfg.user_namespace {
        // Returns only without clone3 (kernels before 5.3): the sandbox is then made
        // without a user namespace, below.
        start_in_user_namespace(&cfg, userns, v2.as_ref(), namespaces);
    }
    // The cgroup namespace is pid 1's alone, made as it is created (below).
    // SAFETY: plain syscall.
    let unshared = unsafe { libc::unshare(namespaces & !libc::CLONE_NEWCGROUP) };
    if let Err(e) = check(unshared, "unshare") {
        die("create namespaces", e);
    }
    if namespaces & libc::CLONE_NEWNET != 0 {
        if let Err(e) = loopback_up() {
            die("bring up lo", e);
        }
    }

    let (ready_r, ready_w) = pipe().unwrap_or_else(|e| die("pipe", e));
    let child = fork_pid1(&cfg, v2.as_ref());
    // Neither pid 1 nor the helper keeps a handle on the host's cgroup tree.
    drop(v2);
    if child == 0 {
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(ready_r) };
        run_pid1(&cfg, ready_w);
    }
    // SAFETY: closing our copy of the write end so EOF means pid 1 died.
    unsafe { libc::close(ready_w) };
    report_and_wait(child, ready_r)
}

/// Creates pid 1 with every namespace at once, a user namespace among them, directly in
/// the sandbox's v2 group; writes its id maps from out here (only a process privileged over
/// the parent namespace may map two ids), then lets it go on. Returns only if this kernel
/// has no clone3.
fn start_in_user_namespace(
    cfg: &InitConfig,
    userns: super::UserNamespace,
    v2: Option<&std::fs::File>,
    namespaces: libc::c_int,
) {
    // Pid 1 is the sandbox's root, not the host's: it cannot walk the data dir (0700) to
    // its own directories. It starts in the sandbox's directory instead (a new mount
    // namespace carries the working directory over) and names them relative to it.
    let cfg = enter_sandbox_dir(cfg, userns).unwrap_or_else(|e| die("sandbox dirs", e));
    let cfg = &cfg;
    let (ready_r, ready_w) = pipe().unwrap_or_else(|e| die("pipe", e));
    let (go_r, go_w) = pipe().unwrap_or_else(|e| die("pipe", e));
    let child = match clone_into_cgroup(v2, namespaces | libc::CLONE_NEWUSER) {
        Ok(pid) => pid,
        // No clone3 (before 5.3) or no CLONE_INTO_CGROUP (before 5.7): made without a user
        // namespace, below.
        Err(e) if clone3_unsupported(&e) => {
            // SAFETY: closing the pipes we made.
            unsafe {
                for fd in [ready_r, ready_w, go_r, go_w] {
                    libc::close(fd);
                }
            }
            return;
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSPC)) => die(
            "create pid 1 in a user namespace (are user namespaces disabled on this host? \
             start sandlotd with --user-namespace false)",
            e,
        ),
        Err(e) => die("create pid 1", e),
    };
    if child == 0 {
        // SAFETY: closing our copies of the ends the helper uses, and pid 1's copy of the
        // host cgroup directory (it keeps no handle on the host's tree).
        unsafe {
            libc::close(ready_r);
            libc::close(go_w);
            if let Some(dir) = v2 {
                libc::close(std::os::fd::AsRawFd::as_raw_fd(dir));
            }
        }
        let mut go = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer; EOF means the helper gave up.
        if unsafe { libc::read(go_r, go.as_mut_ptr() as *mut libc::c_void, 1) } != 1 {
            std::process::exit(1);
        }
        // SAFETY: closing the pipe we are done with.
        unsafe { libc::close(go_r) };
        if let Err(e) = super::sys::become_namespace_root() {
            die("become root in the user namespace", e);
        }
        if namespaces & libc::CLONE_NEWNET != 0 {
            if let Err(e) = loopback_up() {
                die("bring up lo", e);
            }
        }
        run_pid1(cfg, ready_w);
    }
    // SAFETY: closing our copies of pid 1's ends.
    unsafe {
        libc::close(ready_w);
        libc::close(go_r);
    }
    let map = userns.id_map();
    for file in ["uid_map", "gid_map"] {
        if let Err(e) = write_file(&format!("/proc/{child}/{file}"), &map) {
            // SAFETY: our own child, not yet running anything of the sandbox.
            unsafe { libc::kill(child, libc::SIGKILL) };
            die(&format!("write {file}"), e);
        }
    }
    // SAFETY: one byte to our pipe, then closing it.
    unsafe {
        libc::write(go_w, b"g".as_ptr() as *const libc::c_void, 1);
        libc::close(go_w);
    }
    report_and_wait(child, ready_r)
}

/// Gives the sandbox's directory (its root's mount point and its workspace are in it) to
/// the sandbox's root id, makes it the working directory, and returns the config with the
/// two paths relative to it.
fn enter_sandbox_dir(
    cfg: &InitConfig,
    userns: super::UserNamespace,
) -> std::io::Result<InitConfig> {
    let root = std::path::Path::new(&cfg.root_dir);
    let workspace = std::path::Path::new(&cfg.workspace_dir);
    let dir = root
        .parent()
        .filter(|d| workspace.parent() == Some(*d))
        .ok_or_else(|| std::io::Error::other("root and workspace are not in one directory"))?;
    std::os::unix::fs::chown(dir, Some(userns.root), Some(userns.root))?;
    std::env::set_current_dir(dir)?;
    let name = |p: &std::path::Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let mut cfg = cfg.clone();
    cfg.root_dir = name(root);
    cfg.workspace_dir = name(workspace);
    Ok(cfg)
}

/// Says `pid <pid>` at once (the server may start forking into the sandbox's pid namespace
/// meanwhile), `ready <pid>` once pid 1 reported its root built, then waits for pid 1 and
/// exits with its status (the sandbox's end).
fn report_and_wait(child: libc::pid_t, ready_r: libc::c_int) -> ! {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "pid {child}");
    let _ = out.flush();
    let mut status = [0u8; 64];
    // SAFETY: reading into a valid buffer.
    let n = unsafe {
        libc::read(
            ready_r,
            status.as_mut_ptr() as *mut libc::c_void,
            status.len(),
        )
    };
    if n <= 0 || !status.starts_with(b"ok") {
        // pid 1 printed its own reason on stderr.
        std::process::exit(wait_exit_code(child).max(1));
    }
    let _ = writeln!(out, "ready {child}");
    let _ = out.flush();
    std::process::exit(wait_exit_code(child));
}

/// Creates pid 1 in a cgroup namespace of its own, rooted at the sandbox's groups, and
/// directly in the sandbox's v2 group. Returns 0 in pid 1.
fn fork_pid1(cfg: &InitConfig, v2: Option<&std::fs::File>) -> libc::pid_t {
    match clone_into_cgroup(v2, libc::CLONE_NEWCGROUP) {
        Ok(pid) => pid,
        // No clone3 or no CLONE_INTO_CGROUP (kernels before 5.7): join the v2 group as a
        // whole process, the slow way, then fork.
        Err(e) if clone3_unsupported(&e) => {
            if let Some(dir) = &cfg.cgroup_v2 {
                let procs = format!("{dir}/cgroup.procs");
                if let Err(e) = write_file(&procs, &std::process::id().to_string()) {
                    die("join cgroup", e);
                }
            }
            // SAFETY: plain syscall.
            let unshared = unsafe { libc::unshare(libc::CLONE_NEWCGROUP) };
            if let Err(e) = check(unshared, "unshare") {
                die("create the cgroup namespace", e);
            }
            fork().unwrap_or_else(|e| die("fork", e))
        }
        Err(e) => die("create pid 1", e),
    }
}

/// Brings up the new network namespace's `lo`: programs in the sandbox talk to themselves
/// over 127.0.0.1, and sandlotd's port proxy connects there (`network::ports`).
pub(super) fn loopback_up() -> std::io::Result<()> {
    // SAFETY: an ioctl on a socket we own with a zeroed, NUL-terminated ifreq.
    unsafe {
        let fd = check(
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0),
            "socket",
        )?;
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let ret = check(libc::ioctl(fd, libc::SIOCSIFFLAGS, &req), "SIOCSIFFLAGS");
        libc::close(fd);
        ret.map(|_| ())
    }
}

fn pipe() -> std::io::Result<(libc::c_int, libc::c_int)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array of two ints.
    check(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        "pipe2",
    )?;
    Ok((fds[0], fds[1]))
}

/// Pid 1 of the sandbox: build the root, report readiness, then reap forever.
fn run_pid1(cfg: &InitConfig, ready_w: libc::c_int) -> ! {
    if let Err(e) = rootfs::build(cfg) {
        die("build sandbox root", e);
    }
    // SAFETY: writing a constant buffer to our pipe, then closing it.
    unsafe {
        libc::write(ready_w, b"ok".as_ptr() as *const libc::c_void, 2);
        libc::close(ready_w);
    }
    set_process_name(b"sandlot-init\0");
    reap_forever()
}

fn set_process_name(name: &[u8]) {
    // SAFETY: `name` is NUL-terminated and at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

extern "C" fn on_sigchld(_: libc::c_int) {}

/// Processes that join the sandbox are re-parented to us when their helper exits; reap them
/// so no zombie outlives its process. SIGCHLD stays blocked except inside `sigsuspend`, so a
/// child that exits between the reap loop and the wait cannot be missed.
fn reap_forever() -> ! {
    // SAFETY: installing a no-op handler and adjusting our own signal mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigchld as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_NOCLDSTOP;
        libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut());
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &block, std::ptr::null_mut());
        let mut wait_mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut wait_mask);
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            libc::sigsuspend(&wait_mask);
        }
    }
}
