
# ---- How a fork of the python fork server becomes a context (appended after python.py) ----
#
# Everything here runs in the fork, between the clone and the driver's loop: it joins the
# rest of its sandbox (cgroups, namespaces), confines itself with the exec helper's steps,
# and takes on what a new interpreter would have read as it started (`_become_the_program`).
# The fork server itself (`zygote.py`, appended after this) forks and supervises.

import ctypes
import fcntl
import resource
import site
import time
from pathlib import Path

from IPython.paths import get_ipython_package_dir

# Descriptors the preparation opened and keeps (IPython's /dev/null): fd -> open flags. A
# fork opens the sandbox's /dev/null at the same numbers.
_kept = {}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_MODE_FILTER = 2
# Joined first (the kernel's order) where the sandbox has a user namespace of its own.
_CLONE_NEWUSER = 0x10000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWPID | NEWNET: the sandbox's namespaces.
_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_programs = []  # (_SockFprog, its instructions), built once
try:  # the capabilities this kernel has (the exec helper tries 0..63; the rest do not exist)
    with open("/proc/sys/kernel/cap_last_cap") as _f:
        _last_cap = int(_f.read())
except OSError:
    _last_cap = 63
# Where site puts the user's site directory under its base (lib/pythonX.Y/site-packages).
_USER_SITE_UNDER_BASE = os.path.relpath(site.getusersitepackages(), site.getuserbase())


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
    """What a new interpreter would have picked up from its environment and directory at
    start."""
    # Compared with the zygote's plain copy: reading os.environ decodes every name anew.
    _take_env(dict(cfg["env"]), _zygote_env)
    # The shell's own record of where it started.
    cwd = os.getcwd()
    shell.starting_dir = cwd
    shell.user_ns["_dh"][:] = [_usual_dirs.get(cwd) or Path(cwd)]
    # Its profile directory (the same path: IPYTHONDIR is the default), which the shell made
    # in the zygote's private /tmp, made here as the shell makes it: after the first run has
    # answered, as nothing in a run before needs it (half a millisecond off the first run).
    _after_first_run.append(_make_profile_dir)


def _take_env(env, current):
    """Makes `env` (and what the driver adds) this interpreter's environment, with what a new
    interpreter would have picked up from it at start. `current` is a plain copy of
    os.environ as it is: only what differs is set, usually nothing."""
    wanted = _with_driver_env(env)
    for key in [k for k in current if k not in wanted]:
        del os.environ[key]
    for key, value in wanted.items():
        if current.get(key) != value:
            os.environ[key] = value
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    # sys.path: "" first (the driver's), then PYTHONPATH, then the rest; the user's site
    # directory under the new HOME if it exists (site.py's rule at start).
    old_extra = [p for p in current.get("PYTHONPATH", "").split(":") if p]
    if sys.path[1 : 1 + len(old_extra)] == old_extra:
        del sys.path[1 : 1 + len(old_extra)]
    sys.path[1:1] = [p for p in env.get("PYTHONPATH", "").split(":") if p]
    # site's cached answers are the zygote's: dropped, so whatever asks later gets the
    # sandbox's. The check itself is site's rule (PYTHONUSERBASE, else ~/.local), without
    # site's machinery.
    site.USER_BASE = None
    site.USER_SITE = None
    if site.ENABLE_USER_SITE:
        base = env.get("PYTHONUSERBASE") or os.path.expanduser("~/.local")
        user_site = os.path.join(base, _USER_SITE_UNDER_BASE)
        if os.path.isdir(user_site) and user_site not in sys.path:
            site.addsitedir(user_site)
    time.tzset()
    shell.home_dir = os.path.realpath(os.path.expanduser("~"))  # IPython's get_home_dir()


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
        pidfd = os.pidfd_open(1)
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
