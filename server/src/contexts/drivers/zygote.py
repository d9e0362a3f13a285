
# ---- Sandlot's python fork server ("zygote"), appended to the python driver above ----
#
# One per server. It has done the driver's preparation (IPython imported, the shell made and
# warmed up) once, outside every sandbox, and forks a context from that state in a few
# milliseconds instead of the ~250 ms a new interpreter takes.
#
# Control socket (fd 100, SOCK_SEQPACKET, to sandlotd only): first {"type":"init","seccomp":
# [[[code,jt,jf,k],...],...],"env":[[k,v],...],"workdir":W}, the seccomp programs the exec
# helper installs and what most contexts start with (see `_take_on_the_usual`), answered by
# {"type":"ready"}; then one message per context, {"n":N,"init_pid":P} (P: the host pid of
# the sandbox's pid 1) with four descriptors (the context's command pipe, stdout, stderr and
# reply pipe) and optionally a fifth (its tracking cgroup's directory, cgroup v2), answered
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
import fcntl
import resource
import site
import socket
import time
from pathlib import Path

from IPython.paths import get_ipython_package_dir

_CONTROL_FD = 100
# Descriptors the preparation opened and keeps (IPython's /dev/null): fd -> open flags. A
# fork opens the sandbox's /dev/null at the same numbers.
_kept = {}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]

_SYS_PIDFD_OPEN = 434  # the same number on x86-64 and aarch64
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
_MADV_COLLAPSE = 25
_CLONE_NEWPID = 0x20000000
# Joined first (the kernel's order) where the sandbox has a user namespace of its own.
_CLONE_NEWUSER = 0x10000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWPID | NEWNET: the sandbox's namespaces.
_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("flags", "pidfd", "child_tid", "parent_tid",
            "exit_signal", "stack", "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")]


_SYS_CLONE3 = 435  # x86-64 and aarch64
_CLONE_CHILD_SETTID = 0x01000000
_CLONE_INTO_CGROUP = 0x200000000
# Keeps the GIL through the call, as os.fork does around fork(2).
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long
_clone_into_cgroup = True  # until the kernel says it cannot
_tid_field = 0  # where libc keeps the main thread's id (fork(2) updates it in the child)

_programs = []  # (_SockFprog, its instructions), built once
try:  # the capabilities this kernel has (the exec helper tries 0..63; the rest do not exist)
    with open("/proc/sys/kernel/cap_last_cap") as _f:
        _last_cap = int(_f.read())
except OSError:
    _last_cap = 63


def _check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


# A context's own start reads and writes files with plain system calls: Python's `open`
# (a buffered text file, its codec) costs a fresh fork ~20 copied pages a file.
def _write_file(path, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_exactly(fd, n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError("the configuration was cut short")
        data += chunk
    return data


def _read_config(fd):
    # What the server wrote ahead of the commands: "<length>\n<ExecConfig JSON>" (the exec
    # helper's format, with no program after it). Read byte by byte up to the newline so
    # nothing of the commands that follow is taken.
    line = b""
    while not line.endswith(b"\n"):
        if len(line) > 20:
            raise ValueError("bad configuration length")
        line += _read_exactly(fd, 1)
    return json.loads(_read_exactly(fd, int(line)))


def _limit(limits):
    """The exec helper's `set_rlimits`."""
    for res, value in (
        (resource.RLIMIT_NOFILE, limits["nofile"]),
        (resource.RLIMIT_NPROC, limits["nproc"]),
        (resource.RLIMIT_FSIZE, limits["fsize_bytes"]),
        (resource.RLIMIT_CORE, 0),
    ) + (((resource.RLIMIT_AS, limits["as_bytes"]),) if limits.get("as_bytes") else ()):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass


def _confine(cfg):
    """The exec helper's `exec_child` and `drop_privileges_and_exec`, minus the exec."""
    os.setsid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != 0:  # P1 died before the death signal was armed
        os._exit(137)
    for fd, flags in _kept.items():
        null = os.open("/dev/null", flags)
        if null != fd:
            os.dup2(null, fd, inheritable=False)
            os.close(null)
    os.chdir(cfg["cwd"])
    for cap in range(_last_cap + 1):
        _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    os.setgroups([])
    os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
    os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
    # No exec follows to clear them: check that the change of ids left no capability.
    status = _read_file("/proc/self/status")
    held = [l.decode() for l in status.splitlines() if l.startswith((b"CapPrm:", b"CapEff:")) and int(l.split()[1], 16)]
    if held:
        raise PermissionError(f"capabilities left after dropping to the sandbox user: {held}")
    # A change of ids clears these two; an exec would have reset them the same way.
    _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != 0:
        os._exit(137)
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for prog, _ in _programs:
        _check(_libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0), "seccomp")


def _become_the_program(cfg):
    """What a new interpreter would have picked up from its environment at start."""
    env = dict(cfg["env"])
    wanted = _with_driver_env(env)
    # Only what differs from the zygote's own (compared with its plain copy: reading
    # os.environ decodes every name anew), usually nothing.
    for key in [k for k in _zygote_env if k not in wanted]:
        del os.environ[key]
    for key, value in wanted.items():
        if _zygote_env.get(key) != value:
            os.environ[key] = value
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    # sys.path: "" first (the driver's), then PYTHONPATH, then the rest; the user's site
    # directory under the new HOME if it exists (site.py's rule at start).
    extra = [p for p in env.get("PYTHONPATH", "").split(":") if p]
    sys.path[1:1] = extra
    # site's cached answers are the zygote's: dropped, so whatever asks later gets the
    # sandbox's. The check itself is site's rule (PYTHONUSERBASE, else ~/.local), without
    # site's machinery.
    site.USER_BASE = None
    site.USER_SITE = None
    if site.ENABLE_USER_SITE:
        base = env.get("PYTHONUSERBASE") or os.path.expanduser("~/.local")
        user_site = os.path.join(base, _USER_SITE_UNDER_BASE)
        if os.path.isdir(user_site):
            site.addsitedir(user_site)
    time.tzset()
    # The shell's own record of where it started and whose home it is.
    cwd = os.getcwd()
    shell.starting_dir = cwd
    shell.home_dir = os.path.realpath(os.path.expanduser("~"))  # IPython's get_home_dir()
    shell.user_ns["_dh"][:] = [_usual_dirs.get(cwd) or Path(cwd)]
    # Its profile directory (the same path: IPYTHONDIR is the default), which the shell made
    # in the zygote's private /tmp, made here as the shell makes it: after the first run has
    # answered, as nothing in a run before needs it (half a millisecond off the first run).
    _after_first_run.append(_make_profile_dir)


def _profile_layout():
    """What the shell's profile directory is made of (`ProfileDir.check_dirs`): each
    directory with its mode, and the startup directory's README. Read once, in the zygote:
    a context keeps the zygote's shell, and with it these paths."""
    pd = shell.profile_dir
    dirs = [
        (pd.location, 0o755),
        (pd.security_dir, 0o700),
        (pd.log_dir, 0o777),
        (pd.pid_dir, 0o700),
        (pd.startup_dir, 0o777),
    ]
    try:
        with open(os.path.join(get_ipython_package_dir(), "core", "profile", "README_STARTUP"), "rb") as f:
            readme = f.read()
    except OSError:
        readme = None
    return shell.ipython_dir, dirs, os.path.join(pd.startup_dir, "README"), readme


def _make_profile_dir():
    # What the shell's own calls do, with plain mkdirs: its traitlets-driven path took
    # 0.4 ms of every context's start.
    ipython_dir, dirs, readme_path, readme = _profile
    try:
        os.makedirs(ipython_dir, exist_ok=True)
        for path, mode in dirs:
            try:
                os.mkdir(path, mode)
            except FileExistsError:
                pass
        if readme is not None and not os.path.exists(readme_path):
            with open(readme_path, "wb") as f:
                f.write(readme)
    except OSError as e:  # a full /tmp: the shell works without it, as it does there
        sys.stderr.write(f"[sandlot: could not make IPython's profile directory: {e}]\n")


def _nothing():
    pass


def _skip_fork_handlers_of_threads():
    """Python's fork handlers that reset the state of other threads (threading's, logging's
    locks) have nothing to reset in a fork of the single-threaded zygote, and cost a context
    0.4 ms and ~150 copied pages: the zygote's forks skip them. Returns what a context puts
    back first thing, so that its own forks (multiprocessing, os.fork) run them."""
    import logging
    import threading

    skipped = []
    for handler in (threading._after_fork, getattr(logging, "_after_at_fork_child_reinit_locks", None)):
        if handler is not None and not handler.__code__.co_freevars:
            skipped.append((handler, handler.__code__))
            handler.__code__ = _nothing.__code__
    return skipped


def _restore_fork_handlers():
    for handler, code in _skipped_fork_handlers:
        handler.__code__ = code


def _context(fds, in_cgroup):
    """The fork, in the sandbox's pid namespace (and in its tracking cgroup if `in_cgroup`):
    join the rest of the sandbox, confine yourself, become the driver."""
    _restore_fork_handlers()
    try:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        # Move the four out of the way first: any may sit on another's target.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in fds]
        for fd, target in zip(high, (0, 1, 2, _reply_fd)):
            os.dup2(fd, target)
        os.closerange(3, _reply_fd)
        os.closerange(_reply_fd + 1, 1 << 20)  # the control socket and every other one
        cfg = _read_config(0)
        # "0" is the writer itself: for a v1 group's `tasks` the kernel then skips its global
        # cgroup lock (any other pid, even our own, takes it). The v2 group's `cgroup.procs`
        # is listed for a fork that could not be made in it.
        for procs in cfg["cgroup_procs"]:
            if in_cgroup and procs.endswith("/cgroup.procs"):
                continue
            _write_file(procs, b"0")
        # Before joining: raising a hard limit takes the host's CAP_SYS_RESOURCE, which is
        # gone once in the sandbox's user namespace.
        _limit(cfg["rlimits"])
        pidfd = _check(_libc.syscall(_SYS_PIDFD_OPEN, 1, 0), "pidfd_open")
        joined = _libc.setns(pidfd, _NAMESPACES | (_CLONE_NEWUSER if cfg.get("user_ns") else 0))
        os.close(pidfd)
        _check(joined, "setns")
        if cfg.get("user_ns"):
            # Host root is no one in the sandbox's user namespace: become its root first, so
            # the drop to the sandbox's user below clears every capability, as for root.
            os.setgroups([])
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        _confine(cfg)
        _become_the_program(cfg)
    except BaseException as e:
        try:
            os.write(2, f"sandlot: could not start the context: {e!r}\n".encode())
        finally:
            os._exit(127)
    _take_stdio()
    serve()
    os._exit(0)


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
    return {"MPLBACKEND": f"module://{_MPL_BACKEND}", "IPYTHONDIR": "/tmp/.ipython", **env}


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
    args = _CloneArgs(
        flags=_CLONE_INTO_CGROUP | (_CLONE_CHILD_SETTID if _tid_field else 0),
        child_tid=_tid_field,
        exit_signal=signal.SIGCHLD,
        cgroup=cgroup_fd,
    )
    # What os.fork does around fork(2): the interpreter's own before/after work (its locks,
    # threads, os.register_at_fork callbacks).
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _pylibc.syscall(ctypes.c_long(_SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0, True
    err = ctypes.get_errno()
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid > 0:
        return pid, True
    if err in (errno.ENOSYS, errno.E2BIG, errno.EINVAL, errno.EOPNOTSUPP):
        _clone_into_cgroup = False  # an older kernel: fork, and the child joins by a write
        return os.fork(), False
    raise OSError(err, f"clone3: {os.strerror(err)}")


def _fork_into(init_pid, cgroup_fd):
    """Forks a child whose pid namespace is the sandbox's (that of its pid 1, `init_pid`),
    in the cgroup `cgroup_fd` if it can: (pid, in_cgroup)."""
    pidfd = _check(_libc.syscall(_SYS_PIDFD_OPEN, init_pid, 0), "pidfd_open")
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


_control = None
_own_pid_ns = None
_zygote_env = {}  # os.environ as the forks find it, as a plain dict
_usual_dirs = {}  # directory -> its Path
_skipped_fork_handlers = []
_profile = None
# Where site puts the user's site directory under its base (lib/pythonX.Y/site-packages).
_USER_SITE_UNDER_BASE = os.path.relpath(site.getusersitepackages(), site.getuserbase())


def _zygote():
    global _control, _own_pid_ns, _tid_field, _skipped_fork_handlers, _profile
    _control = socket.socket(fileno=_CONTROL_FD)
    _note_kept_descriptors()
    _own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY)
    _tid_field = _find_tid_field()
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
    while True:
        msg, fds, _, _ = socket.recv_fds(_control, 4096, 8)
        if not msg:
            os._exit(0)
        n = None
        try:
            req = json.loads(msg)
            n = req.get("n")
            if len(fds) not in (4, 5):
                raise ValueError(f"expected 4 or 5 descriptors, got {len(fds)}")
            pid, in_cgroup = _fork_into(int(req["init_pid"]), fds[4] if len(fds) == 5 else None)
            if pid == 0:
                _context(fds[:4], in_cgroup)
            reply = {"n": n, "pid": pid}
        except Exception as e:
            reply = {"n": n, "error": repr(e)}
        for fd in fds:
            os.close(fd)
        _control.send(json.dumps(reply).encode())


if _ZYGOTE:
    _zygote()
