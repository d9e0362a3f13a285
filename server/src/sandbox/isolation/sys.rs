//! Thin, checked wrappers over the raw syscalls the helpers use.

use std::ffi::CString;
use std::io;

pub fn check(ret: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if ret < 0 {
        let err = io::Error::last_os_error();
        Err(io::Error::new(err.kind(), format!("{what}: {err}")))
    } else {
        Ok(ret)
    }
}

pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in string"))
}

pub fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cstr).transpose()?;
    let target_c = cstr(target)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    // SAFETY: every pointer is either null or a valid NUL-terminated string that outlives
    // the call.
    let ret = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target_c.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
        )
    };
    check(ret, &format!("mount {target}")).map(|_| ())
}

/// Writes `data` to an existing file (cgroupfs, procfs).
pub fn write_file(path: &str, data: &str) -> io::Result<()> {
    std::fs::write(path, data).map_err(|e| io::Error::new(e.kind(), format!("write {path}: {e}")))
}

pub fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the helpers are single-threaded, so the child may keep using the allocator.
    let pid = unsafe { libc::fork() };
    check(pid, "fork")
}

/// Whether [`clone_into_cgroup`] failed because the kernel has no clone3 (before 5.3) or no
/// `CLONE_INTO_CGROUP` (before 5.7): the caller then takes the older way.
pub fn clone3_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
    )
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `fork` whose child starts in the new namespaces `namespaces` names (`CLONE_NEW*`) and,
/// given an open cgroup2 directory, in that group (with `CLONE_NEWCGROUP`, the kernel makes
/// the child's group the namespace's root). Starting in a group is no migration: it takes
/// no global lock.
///
/// The child returns from a raw clone3, so glibc's cached thread id is still its
/// parent's: nothing in the child may rely on it (raise, pthread_kill; pid 1 and the
/// helpers' children, which exec, use neither).
pub fn clone_into_cgroup(
    cgroup: Option<&std::fs::File>,
    namespaces: libc::c_int,
) -> io::Result<libc::pid_t> {
    use std::os::fd::AsRawFd;
    let mut args = CloneArgs {
        flags: namespaces as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(dir) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    // SAFETY: the helpers are single-threaded, so (as after fork) the child may keep using
    // the allocator; `args` is a valid clone_args of the size passed.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as libc::pid_t)
}

/// Becomes root of the user namespace just joined or made (the host id its map gives
/// root), with no supplementary groups.
pub fn become_namespace_root() -> io::Result<()> {
    // SAFETY: plain syscalls on our own credentials.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()), "setgroups")?;
        check(libc::setresgid(0, 0, 0), "setresgid")?;
        check(libc::setresuid(0, 0, 0), "setresuid")?;
    }
    Ok(())
}

/// Blocks until `pid` ends; returns the shell-style exit status (128+signal when killed).
pub fn wait_exit_code(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: plain syscall with a valid out-pointer.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret == pid {
            break;
        }
        if ret < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 255;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Prints a helper failure on stderr (which the server captures) and exits.
pub fn die(context: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("sandlot: {context}: {err}");
    // SAFETY: exiting without running destructors is what a failed helper wants.
    unsafe { libc::_exit(126) }
}
