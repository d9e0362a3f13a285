//! The seccomp allow-list applied to every sandboxed process.
//!
//! The facts come from Docker's default profile (which syscalls an unprivileged container
//! may make, and which argument filters apply), applied to a process that holds no
//! capabilities at all: every syscall Docker gates behind a capability is left out. Where
//! this list is stricter than Docker's, the reason is next to the entry in [`REFUSED`].
//!
//! Three filters are stacked. The kernel runs all of them on every syscall and takes the
//! strictest answer; between two errno answers, the filter installed last wins.
//!
//! 1. [`allow_list`]: the syscalls below, a few with argument filters; anything else gets
//!    **EPERM**. EPERM is the kernel's own "you may not" for privileged operations, so a
//!    program that tries one fails visibly instead of quietly taking another path; it is
//!    also Docker's and runc's default. Foreign-architecture syscalls (`int 0x80`, i386
//!    numbers) kill the process: seccompiler checks the audit arch first.
//! 2. [`enosys_list`]: `clone3` answers **ENOSYS**, so libc falls back to `clone`, whose
//!    flags a filter can inspect (clone3 passes them in memory, out of the filter's reach).
//! 3. [`number_ranges`]: syscalls numbered above the newest one this list knows
//!    ([`LAST_KNOWN_SYSCALL`]) answer **ENOSYS**, as on an older kernel, so a libc newer than
//!    this list falls back to the older call it would use there instead of failing with
//!    EPERM (runc does the same). x32-ABI numbers (`__X32_SYSCALL_BIT`) answer EPERM: the
//!    x32 ABI is a second syscall table on the native arch, and nothing here uses it.
//!
//! Unconditionally allowed syscalls cost nothing per call: the kernel caches a verdict that
//! does not depend on the arguments. Only `clone`, `socket`, `socketpair` and `personality`
//! run the filter.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};

// Syscalls newer than the libc crate's table (the numbers from 424 up are shared by every
// architecture).
const SYS_CACHESTAT: libc::c_long = 451;
const SYS_MAP_SHADOW_STACK: libc::c_long = 453;
const SYS_FUTEX_WAKE: libc::c_long = 454;
const SYS_FUTEX_WAIT: libc::c_long = 455;
const SYS_FUTEX_REQUEUE: libc::c_long = 456;
const SYS_SETXATTRAT: libc::c_long = 463;
const SYS_GETXATTRAT: libc::c_long = 464;
const SYS_LISTXATTRAT: libc::c_long = 465;
const SYS_REMOVEXATTRAT: libc::c_long = 466;
const SYS_OPEN_TREE_ATTR: libc::c_long = 467;
/// `file_setattr` (Linux 6.17), the newest syscall as of Linux 6.18. Anything above answers
/// ENOSYS (see [`number_ranges`]); raise it when the list is reviewed for a newer kernel.
const LAST_KNOWN_SYSCALL: libc::c_long = 469;

/// Allowed with any arguments: what Docker's default profile allows every container,
/// minus the entries in [`REFUSED`].
const ALLOWED: &[libc::c_long] = &[
    // Files and directories.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_lseek,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_ioctl,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_readlinkat,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmodat2,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_umask,
    libc::SYS_utimensat,
    libc::SYS_truncate,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fadvise64,
    libc::SYS_readahead,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_sync,
    libc::SYS_syncfs,
    libc::SYS_sync_file_range,
    libc::SYS_sendfile,
    libc::SYS_copy_file_range,
    libc::SYS_splice,
    libc::SYS_tee,
    libc::SYS_vmsplice,
    SYS_CACHESTAT,
    libc::SYS_getxattr,
    libc::SYS_lgetxattr,
    libc::SYS_fgetxattr,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_flistxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_fremovexattr,
    SYS_SETXATTRAT,
    SYS_GETXATTRAT,
    SYS_LISTXATTRAT,
    SYS_REMOVEXATTRAT,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_rm_watch,
    libc::SYS_fanotify_mark,
    libc::SYS_io_setup,
    libc::SYS_io_destroy,
    libc::SYS_io_submit,
    libc::SYS_io_cancel,
    libc::SYS_io_getevents,
    // Descriptors that wait or signal.
    libc::SYS_pipe2,
    libc::SYS_eventfd2,
    libc::SYS_signalfd4,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_timerfd_gettime,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_pselect6,
    libc::SYS_ppoll,
    libc::SYS_memfd_create,
    // Memory.
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_msync,
    libc::SYS_mincore,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_munlock,
    libc::SYS_mlockall,
    libc::SYS_munlockall,
    libc::SYS_remap_file_pages,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_membarrier,
    libc::SYS_mseal,
    SYS_MAP_SHADOW_STACK,
    libc::SYS_process_mrelease,
    // Processes and threads (`clone` is in `conditional_rules`).
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_set_tid_address,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    SYS_FUTEX_WAKE,
    SYS_FUTEX_WAIT,
    SYS_FUTEX_REQUEUE,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getppid,
    libc::SYS_getpgid,
    libc::SYS_setpgid,
    libc::SYS_getsid,
    libc::SYS_setsid,
    libc::SYS_prctl,
    libc::SYS_getrlimit,
    libc::SYS_setrlimit,
    libc::SYS_prlimit64,
    libc::SYS_getrusage,
    libc::SYS_getpriority,
    libc::SYS_setpriority,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_setattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_setparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_seccomp,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_restrict_self,
    // Identity: without capabilities these only move between ids the process already has.
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getgroups,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_setgroups,
    libc::SYS_capget,
    libc::SYS_capset,
    // Signals.
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sigaltstack,
    libc::SYS_kill,
    libc::SYS_tkill,
    libc::SYS_tgkill,
    libc::SYS_restart_syscall,
    // Time and timers (reading only: setting the clock needs CAP_SYS_TIME).
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_nanosleep,
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_timer_create,
    libc::SYS_timer_settime,
    libc::SYS_timer_gettime,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_delete,
    libc::SYS_times,
    // Sockets (creating one is in `conditional_rules`); the sandbox's network namespace is
    // empty, so these reach only its own loopback and unix sockets.
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_shutdown,
    // System V and POSIX IPC, private to the sandbox's IPC namespace.
    libc::SYS_shmget,
    libc::SYS_shmat,
    libc::SYS_shmdt,
    libc::SYS_shmctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_semctl,
    libc::SYS_msgget,
    libc::SYS_msgsnd,
    libc::SYS_msgrcv,
    libc::SYS_msgctl,
    libc::SYS_mq_open,
    libc::SYS_mq_unlink,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_notify,
    libc::SYS_mq_getsetattr,
    // System information.
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_getcpu,
    libc::SYS_getrandom,
];

/// The x86-64 table's older entry points (aarch64 has only the `*at` forms).
#[cfg(target_arch = "x86_64")]
const ALLOWED_X86_64: &[libc::c_long] = &[
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_getdents,
    libc::SYS_mkdir,
    libc::SYS_rmdir,
    libc::SYS_mknod,
    libc::SYS_unlink,
    libc::SYS_rename,
    libc::SYS_link,
    libc::SYS_symlink,
    libc::SYS_readlink,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_futimesat,
    libc::SYS_dup2,
    libc::SYS_pipe,
    libc::SYS_eventfd,
    libc::SYS_signalfd,
    libc::SYS_inotify_init,
    libc::SYS_epoll_create,
    libc::SYS_epoll_wait,
    libc::SYS_poll,
    libc::SYS_select,
    libc::SYS_pause,
    libc::SYS_alarm,
    libc::SYS_time,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_getpgrp,
    libc::SYS_arch_prctl,
    libc::SYS_set_thread_area,
    libc::SYS_get_thread_area,
    333, // io_pgetevents (not in the libc crate's table)
    // The uretprobe trampoline's syscall (335): blocking it would crash a process the host
    // attaches a uretprobe to; it does nothing when called directly.
    335,
];

/// Left out on purpose, with the reason; each answers EPERM (or ENOSYS, see the module
/// doc). A unit test keeps these out of the allowed lists.
const REFUSED: &[(libc::c_long, &str)] = &[
    // Needs CAP_SYS_ADMIN in Docker, so refused for capability-less processes there too.
    (libc::SYS_mount, "mounting changes what the sandbox sees of the host"),
    (libc::SYS_umount2, "unmounting could uncover what the sandbox root hides"),
    (libc::SYS_pivot_root, "changes the root of the mount namespace"),
    (libc::SYS_open_tree, "new mount API: clones mounts"),
    (libc::SYS_move_mount, "new mount API: attaches mounts"),
    (libc::SYS_fsopen, "new mount API: creates file system contexts"),
    (libc::SYS_fsconfig, "new mount API: configures file systems"),
    (libc::SYS_fsmount, "new mount API: creates mounts"),
    (libc::SYS_fspick, "new mount API: reconfigures mounts"),
    (libc::SYS_mount_setattr, "new mount API: changes mount flags"),
    (SYS_OPEN_TREE_ATTR, "new mount API: clones mounts with new flags"),
    (libc::SYS_unshare, "new namespaces are new kernel attack surface"),
    (libc::SYS_setns, "joining namespaces could leave the sandbox's"),
    (libc::SYS_quotactl, "disk quotas are the host's"),
    (libc::SYS_quotactl_fd, "disk quotas are the host's"),
    (libc::SYS_fanotify_init, "whole-mount file monitoring"),
    (libc::SYS_bpf, "loads programs into the kernel"),
    (libc::SYS_perf_event_open, "kernel profiling: a large, often-exploited surface"),
    (libc::SYS_sethostname, "the host name is set once by sandlot-init"),
    (libc::SYS_setdomainname, "the domain name is the sandbox's, set at creation"),
    (libc::SYS_syslog, "the kernel log belongs to the host"),
    // Tracing and inspecting other processes (CAP_SYS_PTRACE in Docker; Docker allows plain
    // ptrace on kernels >= 4.8, sandlot does not: nothing it runs needs a debugger).
    (libc::SYS_ptrace, "reads and writes other processes"),
    (libc::SYS_process_vm_readv, "reads other processes' memory"),
    (libc::SYS_process_vm_writev, "writes other processes' memory"),
    (libc::SYS_kcmp, "compares kernel objects of other processes (a KASLR oracle)"),
    (libc::SYS_pidfd_getfd, "steals descriptors from other processes"),
    (libc::SYS_process_madvise, "changes other processes' memory"),
    // Kernel facilities stricter than Docker (which allows them).
    (libc::SYS_io_uring_setup, "io_uring bypasses seccomp for the I/O it runs and has a long CVE record; EPERM is what kernel.io_uring_disabled answers, and libuv and liburing fall back"),
    (libc::SYS_io_uring_enter, "io_uring (see io_uring_setup)"),
    (libc::SYS_io_uring_register, "io_uring (see io_uring_setup)"),
    (libc::SYS_userfaultfd, "stalls kernel page faults at will, a staple of kernel exploits"),
    (libc::SYS_memfd_secret, "removes pages from the kernel's direct map; no runtime needs it"),
    (libc::SYS_name_to_handle_at, "file handles are for open_by_handle_at, refused below"),
    (libc::SYS_open_by_handle_at, "opens files by handle, bypassing the path (the Shocker escape)"),
    (libc::SYS_add_key, "kernel keyrings are not namespaced"),
    (libc::SYS_request_key, "kernel keyrings are not namespaced"),
    (libc::SYS_keyctl, "kernel keyrings are not namespaced"),
    // The host's machine and clock.
    (libc::SYS_reboot, "the host's"),
    (libc::SYS_kexec_load, "replaces the host kernel"),
    (libc::SYS_kexec_file_load, "replaces the host kernel"),
    (libc::SYS_init_module, "loads kernel code"),
    (libc::SYS_finit_module, "loads kernel code"),
    (libc::SYS_delete_module, "unloads kernel code"),
    (libc::SYS_swapon, "the host's swap"),
    (libc::SYS_swapoff, "the host's swap"),
    (libc::SYS_acct, "process accounting is the host's"),
    (libc::SYS_chroot, "with pivot_root gone, only useful for escapes"),
    (libc::SYS_settimeofday, "the clock is the host's"),
    (libc::SYS_clock_settime, "the clock is the host's"),
    (libc::SYS_adjtimex, "the clock is the host's"),
    (libc::SYS_clock_adjtime, "the clock is the host's"),
    (libc::SYS_vhangup, "terminal control is the host's"),
    (libc::SYS_mbind, "NUMA placement is the host's (CAP_SYS_NICE in Docker)"),
    (libc::SYS_set_mempolicy, "NUMA placement is the host's (CAP_SYS_NICE in Docker)"),
    (libc::SYS_get_mempolicy, "NUMA placement is the host's (CAP_SYS_NICE in Docker)"),
    (libc::SYS_set_mempolicy_home_node, "NUMA placement is the host's (CAP_SYS_NICE in Docker)"),
    (libc::SYS_migrate_pages, "moves other processes' memory"),
    (libc::SYS_move_pages, "moves other processes' memory"),
    (libc::SYS_lookup_dcookie, "kernel profiling"),
    (libc::SYS_clone3, "flags live in memory a filter cannot read: ENOSYS, so libc uses clone"),
];

/// x86-64 only entries of [`REFUSED`].
#[cfg(target_arch = "x86_64")]
const REFUSED_X86_64: &[(libc::c_long, &str)] = &[
    (libc::SYS_iopl, "raw I/O port access"),
    (libc::SYS_ioperm, "raw I/O port access"),
    (
        libc::SYS_modify_ldt,
        "16-bit segments, for Wine and DOS emulators; a history of kernel bugs",
    ),
    (libc::SYS_uselib, "obsolete a.out loader"),
    (libc::SYS_ustat, "obsolete"),
    (libc::SYS_sysfs, "obsolete"),
    (libc::SYS__sysctl, "obsolete"),
    (libc::SYS_nfsservctl, "obsolete"),
];

/// `clone` flags that would create namespaces.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWCGROUP) as u64;

/// Socket families a sandbox may create: local sockets, IPv4/IPv6 (its network namespace
/// decides where they reach), and netlink (libc lists interfaces and addresses with it).
/// Everything else (vsock to the hypervisor, packet, bluetooth, the many rarely-used
/// protocol families) is refused: it is kernel code nothing here needs.
const SOCKET_FAMILIES: &[libc::c_int] = &[
    libc::AF_UNIX,
    libc::AF_INET,
    libc::AF_INET6,
    libc::AF_NETLINK,
];

/// `personality` values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, both, and the
/// query. Others (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) weaken the process's hardening.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `__X32_SYSCALL_BIT`: x32-ABI syscalls are native-arch syscalls with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The filters to install, in order (see the module doc).
pub fn filters() -> io::Result<Vec<BpfProgram>> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| io::Error::other(format!("seccomp arch: {e:?}")))?;
    let allow = SeccompFilter::new(
        allow_list()?,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    );
    let enosys = SeccompFilter::new(
        enosys_list(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    );
    let mut programs = [allow, enosys]
        .into_iter()
        .map(|f| {
            f.and_then(|f| f.try_into())
                .map_err(|e| io::Error::other(format!("seccomp filter: {e:?}")))
        })
        .collect::<io::Result<Vec<BpfProgram>>>()?;
    programs.push(number_ranges());
    Ok(programs)
}

/// Every allowed syscall with its rules (an empty rule list allows any arguments).
fn allow_list() -> io::Result<BTreeMap<i64, Vec<SeccompRule>>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        allowed().into_iter().map(|nr| (nr, Vec::new())).collect();
    rules
        .extend(conditional_rules().map_err(|e| io::Error::other(format!("seccomp rule: {e:?}")))?);
    // A refused syscall that slipped onto the list is a bug: fail closed.
    if let Some((nr, why)) = refused().into_iter().find(|(nr, _)| rules.contains_key(nr)) {
        return Err(io::Error::other(format!(
            "syscall {nr} is on the allow-list but refused: {why}"
        )));
    }
    Ok(rules)
}

fn refused() -> Vec<(libc::c_long, &'static str)> {
    let mut all = REFUSED.to_vec();
    #[cfg(target_arch = "x86_64")]
    all.extend_from_slice(REFUSED_X86_64);
    all
}

fn allowed() -> Vec<libc::c_long> {
    let mut all = ALLOWED.to_vec();
    #[cfg(target_arch = "x86_64")]
    all.extend_from_slice(ALLOWED_X86_64);
    all
}

/// The syscalls allowed only with some arguments.
fn conditional_rules() -> Result<Vec<(i64, Vec<SeccompRule>)>, seccompiler::BackendError> {
    let arg0_is = |value: u64| -> Result<SeccompRule, seccompiler::BackendError> {
        SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            value,
        )?])
    };
    // Threads and processes, but no namespaces: those would be new kernel attack surface
    // and could undo the sandbox's own (clone's flags are its first argument on x86-64 and
    // aarch64).
    let clone = SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS),
        0,
    )?])?;
    let families = SOCKET_FAMILIES
        .iter()
        .map(|&f| arg0_is(f as u64))
        .collect::<Result<Vec<_>, _>>()?;
    // socketpair only makes sense for local sockets.
    let pair = vec![arg0_is(libc::AF_UNIX as u64)?];
    let personalities = PERSONALITIES
        .iter()
        .map(|&p| arg0_is(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![
        (libc::SYS_clone, vec![clone]),
        (libc::SYS_socket, families),
        (libc::SYS_socketpair, pair),
        (libc::SYS_personality, personalities),
    ])
}

/// Refused with ENOSYS rather than EPERM: callers have a fallback they take on ENOSYS.
fn enosys_list() -> BTreeMap<i64, Vec<SeccompRule>> {
    BTreeMap::from([(libc::SYS_clone3, Vec::new())])
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 62 | 0x8000_0000 | 0x4000_0000; // EM_X86_64, 64-bit, LE
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 183 | 0x8000_0000 | 0x4000_0000; // EM_AARCH64, 64-bit, LE

/// Answers by syscall number range, which seccompiler's per-number rules cannot express:
/// x32-ABI numbers get EPERM, numbers beyond [`LAST_KNOWN_SYSCALL`] get ENOSYS, and the
/// rest is left to the allow-list. Only instructions the kernel's verdict cache understands
/// (loads of the number and arch, constant jumps), so allowed syscalls stay free.
fn number_ranges() -> BpfProgram {
    const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    // Offsets of `struct seccomp_data`: nr at 0, arch at 4.
    vec![
        op(LD_ABS_W, 4, 0, 0),
        op(JEQ, AUDIT_ARCH_NATIVE, 1, 0),
        op(RET, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        op(LD_ABS_W, 0, 0, 0),
        op(JGE, X32_SYSCALL_BIT, 0, 1),
        op(RET, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32, 0, 0),
        op(JGT, LAST_KNOWN_SYSCALL as u32, 0, 1),
        op(RET, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32, 0, 0),
        op(RET, libc::SECCOMP_RET_ALLOW, 0, 0),
    ]
}

/// Installs the filters on the calling thread (requires `no_new_privs`).
pub fn apply(programs: &[BpfProgram]) -> io::Result<()> {
    for p in programs {
        seccompiler::apply_filter(p).map_err(|e| io::Error::other(format!("seccomp: {e:?}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_syscalls_are_never_allowed() {
        // allow_list() fails when a refused syscall is on it.
        allow_list().unwrap();
    }

    #[test]
    fn each_syscall_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for nr in allowed()
            .into_iter()
            .chain(refused().into_iter().map(|(nr, _)| nr))
        {
            assert!(seen.insert(nr), "syscall {nr} is listed twice");
            assert!(
                nr <= LAST_KNOWN_SYSCALL,
                "syscall {nr} is beyond the last known one"
            );
        }
        for (nr, _) in conditional_rules().unwrap() {
            assert!(
                seen.insert(nr),
                "syscall {nr} is both conditional and listed"
            );
        }
    }

    #[test]
    fn the_filters_compile_within_the_kernel_limit() {
        let programs = filters().unwrap();
        assert_eq!(programs.len(), 3);
        // BPF_MAXINSNS is 4096 per program.
        assert!(programs.iter().all(|p| p.len() < 4096));
    }
}
