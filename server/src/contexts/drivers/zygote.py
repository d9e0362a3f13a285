
# ---- Sandlot's python fork server ("zygote"), appended to the python driver and to
# ---- zygote_context.py (what a fork does to become a context) ----
#
# One per server. It has done the driver's preparation (IPython imported, the shell made and
# warmed up) once, outside every sandbox, and forks a context from that state in a few
# milliseconds instead of the ~250 ms a new interpreter takes.
#
# Control socket (fd 100, SOCK_SEQPACKET, to sandlotd only): first {"type":"init","seccomp":
# [[[code,jt,jf,k],...],...],"env":[[k,v],...],"workdir":W}, the seccomp programs the exec
# helper installs and what most contexts start with (see `_take_on_the_usual`), answered by
# {"type":"ready"}; then one message per context, "N P" (two decimal numbers: the request's
# number and P, the host pid of the sandbox's pid 1) with four descriptors (the context's
# command pipe, stdout, stderr and reply pipe) and optionally a fifth (its tracking cgroup's directory, cgroup v2), answered
# by {"n":N,"pid":C} (C: the fork's host pid) or {"n":N,"error":...}; and, whenever a fork
# ends, {"type":"exited","pid":C,"status":S} (S: its exit code, or 128 + the signal that
# killed it). The socket's end is the server's end: the zygote exits.
#
# The zygote never learns anything about a sandbox but the pid of its pid 1 and where its
# context's cgroup is. Each context's configuration (the cgroups it joins, uid, directory,
# environment, limits) is read by the fork itself from its own command pipe, so no
# sandbox's data stays behind in the memory that the next sandbox's context is forked from.
#
# A context is one fork, made straight into the sandbox's pid namespace: the zygote points
# its children's pid namespace at the sandbox's (setns through a pidfd of its pid 1), forks,
# and points it back. Where it can, it forks with clone3(CLONE_INTO_CGROUP), so the fork
# starts in its tracking cgroup: moving a process between cgroups by a cgroup.procs write
# takes the kernel's global cgroup lock, which after a quiet spell waits for an RCU grace
# period (10-20 ms here). Its v1 limit groups the fork joins by its only thread (`tasks`),
# which skips that lock. The fork then does what the exec helper and its child do
# (sandbox/isolation/exec.rs), in their order: it joins the sandbox's cgroups and its other
# namespaces, starts a session, enters its directory, sets the limits, drops the capability
# bounding set, its groups and ids, sets no_new_privs and installs the same seccomp
# programs; then it sets the environment and runs the driver's loop. The zygote is its
# parent, as the exec helper is an exec'd driver's: it reaps it and reports its status.
import ctypes
import errno
import socket

_CONTROL_FD = 100
_MADV_COLLAPSE = 25
_CLONE_NEWPID = 0x20000000


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("flags", "pidfd", "child_tid", "parent_tid",
            "exit_signal", "stack", "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")]


_SYS_CLONE3 = 435  # x86-64 and aarch64
_CLONE_CHILD_SETTID = 0x01000000
_CLONE_INTO_CGROUP = 0x200000000
# Keeps the GIL through the call, as os.fork does around fork(2).
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long
_SYS_CLONE3_ARG = ctypes.c_long(_SYS_CLONE3)
_before_fork = ctypes.pythonapi.PyOS_BeforeFork
_after_fork_child = ctypes.pythonapi.PyOS_AfterFork_Child
_after_fork_parent = ctypes.pythonapi.PyOS_AfterFork_Parent
_clone_into_cgroup = True  # until the kernel says it cannot
_clone_args = _clone_args_ref = _clone_args_size = None  # made by _prepare_clone_args


def _reap(signum, frame):
    # Runs between two bytecodes of the loop below (or while it waits): one message each,
    # which a SOCK_SEQPACKET socket never interleaves with another.
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        try:
            _control.send(json.dumps({"type": "exited", "pid": pid, "status": code}).encode())
        except OSError:
            pass


def _note_kept_descriptors():
    # After the preparation: 0-2 are the zygote's, 3 and 4 (the program and a stand-in for
    # the reply pipe) go now; what else is open was opened by an import and is kept by it.
    # Only /dev/null can be reproduced in a sandbox; anything else would be a host file
    # inside one, so the zygote refuses to run.
    for fd in (3, 4):
        os.close(fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in (0, 1, 2, _CONTROL_FD):
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # listdir's own
        if target != "/dev/null":
            raise SystemExit(f"the fork server keeps {target} open (fd {fd}); it cannot fork contexts")
        _kept[fd] = fcntl.fcntl(fd, fcntl.F_GETFL) & (os.O_ACCMODE | os.O_APPEND)


def _collapse_into_huge_pages():
    # A fork copies the page table of every page the zygote wrote: ~9,000 entries for its
    # ~37 MB of heap. Where the heap is in huge pages, one entry stands for 2 MiB, and the
    # fork copies ~20x fewer (a fork's first write to one splits it and copies 4 KiB, as
    # before). MADV_COLLAPSE (Linux 6.1) makes them now, whatever the system's THP setting
    # short of "never"; elsewhere it fails and nothing changes.
    _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    huge = 2 << 20
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    for fields in regions:
        perms, inode, name = fields[1], fields[4], fields[5] if len(fields) > 5 else ""
        if not perms.startswith("rw") or inode != "0" or name not in ("", "[heap]"):
            continue  # only the anonymous, writable memory: the heap and the arenas
        start, end = (int(x, 16) for x in fields[0].split("-"))
        first, last = (start + huge - 1) & ~(huge - 1), end & ~(huge - 1)
        if last - first >= huge:
            _libc.madvise(first, last - first, _MADV_COLLAPSE)


def _with_driver_env(env):
    """A context's environment: the server's, and what the driver sets for itself."""
    return {**_DRIVER_ENV, **env}


def _take_on_the_usual(init):
    """After the preparation, the zygote takes on what most contexts start with: the
    environment of a sandbox that sets nothing of its own (its HOME pointed nowhere only
    while the preparation ran) and the default directory's `Path`. A fork then changes only
    what its sandbox has of its own; each value it compared or set, and building a `Path`,
    cost it copied pages (~80 together)."""
    global _zygote_env
    wanted = _with_driver_env(dict(init.get("env") or ()))
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    os.environ.update(wanted)
    _zygote_env = dict(os.environ)
    if init.get("workdir"):
        _usual_dirs[init["workdir"]] = Path(init["workdir"])
    # What the preparation read about the host, which a sandbox must read anew: dropped
    # here once, for every fork.
    import platform

    platform._uname_cache = None
    platform._os_release_cache = None
    platform._platform_cache.clear()


def _find_tid_field():
    # glibc's fork(2) writes the child's thread id into the thread's descriptor; clone3 does
    # the same when told where (CLONE_CHILD_SETTID). Found by value: the one int in the
    # descriptor equal to our thread id (none or several: not set, as nothing here needs it).
    import threading

    _libc.pthread_self.restype = ctypes.c_void_p
    base = _libc.pthread_self()
    tid = threading.get_native_id()
    words = (ctypes.c_int * 384).from_address(base)
    hits = [i for i, v in enumerate(words) if v == tid]
    return base + 4 * hits[0] if len(hits) == 1 else 0


def _clone_in(cgroup_fd):
    """os.fork(), but the child starts in the cgroup `cgroup_fd`: (pid, True), or
    (pid, False) from os.fork() where the kernel cannot do that."""
    global _clone_into_cgroup
    if cgroup_fd is None or not _clone_into_cgroup:
        return os.fork(), False
    _clone_args.cgroup = cgroup_fd
    # What os.fork does around fork(2): the interpreter's own before/after work (its locks,
    # threads, os.register_at_fork callbacks).
    _before_fork()
    pid = _pylibc.syscall(_SYS_CLONE3_ARG, _clone_args_ref, _clone_args_size)
    if pid == 0:
        _after_fork_child()
        return 0, True
    err = ctypes.get_errno() if pid < 0 else 0
    _after_fork_parent()
    if pid > 0:
        return pid, True
    if err in (errno.ENOSYS, errno.E2BIG, errno.EINVAL, errno.EOPNOTSUPP):
        _clone_into_cgroup = False  # an older kernel: fork, and the child joins by a write
        return os.fork(), False
    raise OSError(err, f"clone3: {os.strerror(err)}")


def _fork_into(init_pid, cgroup_fd):
    """Forks a child whose pid namespace is the sandbox's (that of its pid 1, `init_pid`),
    in the cgroup `cgroup_fd` if it can: (pid, in_cgroup)."""
    pidfd = os.pidfd_open(init_pid)
    try:
        _check(_libc.setns(pidfd, _CLONE_NEWPID), "setns")
    finally:
        os.close(pidfd)
    try:
        pid, in_cgroup = _clone_in(cgroup_fd)
    except BaseException:
        _check(_libc.setns(_own_pid_ns, _CLONE_NEWPID), "setns back")
        raise
    if pid:  # the zygote's own children are its own again
        _check(_libc.setns(_own_pid_ns, _CLONE_NEWPID), "setns back")
    return pid, in_cgroup


def _prepare_clone_args():
    """The clone3 call's arguments, made once: each fork sets only its cgroup."""
    global _clone_args, _clone_args_ref, _clone_args_size
    tid_field = _find_tid_field()
    _clone_args = _CloneArgs(
        flags=_CLONE_INTO_CGROUP | (_CLONE_CHILD_SETTID if tid_field else 0),
        child_tid=tid_field,
        exit_signal=signal.SIGCHLD,
    )
    _clone_args_ref = ctypes.byref(_clone_args)
    _clone_args_size = ctypes.c_size_t(ctypes.sizeof(_CloneArgs))


def _serve_forks():
    """The fork server's loop. Every page of the zygote it writes is copied again after each
    fork (the children share them all), so it touches as little as it can: no JSON for a
    fork's request or answer, no helper of the socket module, the clone3 arguments made
    once (151 -> 87 copied pages per fork, 1.3 -> 0.8 ms of the zygote's CPU)."""
    recvmsg, send, close = _control.recvmsg, _control.send, os.close
    fds_space = socket.CMSG_SPACE(8 * 4)
    while True:
        msg, ancillary, _, _ = recvmsg(64, fds_space)
        if not msg:
            os._exit(0)
        fds = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(memoryview(data[: len(data) - len(data) % 4]).cast("i"))
        n = 0
        try:
            n_text, _, pid_text = msg.partition(b" ")
            n = int(n_text)
            if len(fds) not in (4, 5):
                raise ValueError(f"expected 4 or 5 descriptors, got {len(fds)}")
            pid, in_cgroup = _fork_into(int(pid_text), fds[4] if len(fds) == 5 else None)
            if pid == 0:
                _context(fds[:4], in_cgroup)
            reply = b'{"n":%d,"pid":%d}' % (n, pid)
        except Exception as e:
            reply = json.dumps({"n": n, "error": repr(e)}).encode()
        for fd in fds:
            close(fd)
        send(reply)


_control = None
_own_pid_ns = None
_zygote_env = {}  # os.environ as the forks find it, as a plain dict
_usual_dirs = {}  # directory -> its Path
_skipped_fork_handlers = []
_profile = None


def _zygote():
    global _control, _own_pid_ns, _skipped_fork_handlers, _profile
    _control = socket.socket(fileno=_CONTROL_FD)
    _note_kept_descriptors()
    _own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY)
    _prepare_clone_args()
    init = json.loads(_control.recv(1 << 20))
    for program in init["seccomp"]:
        insns = (_SockFilter * len(program))(*[_SockFilter(*i) for i in program])
        _programs.append((_SockFprog(len(program), insns), insns))
    _take_on_the_usual(init)
    import gc
    import threading

    if threading.active_count() != 1:  # a fork takes only this thread: nothing may hold locks
        raise SystemExit(f"the fork server must be single-threaded, has {threading.active_count()} threads")
    _skipped_fork_handlers = _skip_fork_handlers_of_threads()
    _profile = _profile_layout()
    # Directories the zygote found missing may exist in a sandbox: forget that they were
    # missing (a finder's cache of one that exists is checked against its mtime at every
    # import). Done here, once, rather than in every fork.
    for path in [p for p, finder in sys.path_importer_cache.items() if finder is None]:
        del sys.path_importer_cache[path]
    gc.collect()
    gc.freeze()  # the collector leaves the shared objects alone: fewer pages copied per fork
    _collapse_into_huge_pages()
    signal.signal(signal.SIGCHLD, _reap)
    _control.send(json.dumps({"type": "ready"}).encode())
    _serve_forks()


if _ZYGOTE:
    _zygote()
