# Sandlot's python context driver: one IPython InteractiveShell, driven by the server.
#
# Commands arrive on stdin, one JSON object per line: {"type":"run","id":N,"code":...,
# "env":{...},"cwd":...|null}, {"type":"warm","id":N} (a context made ahead for the
# warm pool: the warm-up runs again in it, answered by "done") or {"type":"env","id":N,
# "env":[[k,v],...]} (such a context handed to a sandbox with variables of its own: its whole
# environment from now on, answered by "done"). Replies go to fd 4, one JSON object per line: "ready" once,
# then per run any number of "result" frames (MIME bundles), at most one "error", and "done"
# with the exit code. Output is the process's own stdout/stderr (the server reads them);
# both are flushed before "done". SIGINT interrupts a run (KeyboardInterrupt) and nothing
# else. stdin is /dev/null for the code: the commands are on a private descriptor.
#
# The file is in two parts. Everything up to `serve` prepares the interpreter (imports, the
# shell, a warm-up run); `_take_stdio` and `serve` then talk to the server. Started by the
# exec helper, it does both in turn. In the fork server (`zygote.py`, appended to this text
# when `SANDLOT_ZYGOTE` is set) the preparation happens once, and every context is a fork
# that confines itself and then calls `_take_stdio` and `serve`.
import os
import sys
import json
import signal
# signal.signal converts its arguments and its answer through enums (and, for a function
# handler, tries and fails a lookup): 10x the cost of the C call, and in a fresh fork ~60
# copied pages. The calls on a run's path use the C module directly.
import _signal
import warnings

# The script is a memfd (/proc/self/fd/3): imports resolve from the working directory, as
# in a notebook.
sys.path[0] = ""
_ZYGOTE = os.environ.get("SANDLOT_ZYGOTE") == "1"
_reply_fd = 4
_cmd_in_fd = None
# Between runs an interrupt has nothing to stop; during one, the C handler raises
# KeyboardInterrupt (no driver frame in the traceback).
signal.signal(signal.SIGINT, signal.SIG_IGN)


def _send(obj):
    data = (json.dumps(obj, default=str) + "\n").encode()
    while data:
        n = os.write(_reply_fd, data)
        data = data[n:]


# matplotlib draws with Agg through a backend of ours whose show() emits the open figures
# at once, so a figure shown mid-cell comes before what the cell displays after it.
_MPL_BACKEND = "sandlot_matplotlib_backend"
_MPL_BACKEND_SOURCE = """
from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas
from matplotlib.backend_bases import FigureManagerBase as FigureManager


def show(*args, **kwargs):
    _flush()
"""


class _MplBackendFinder:
    # Imported by matplotlib only when pyplot is first used, so matplotlib loads no sooner.
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != _MPL_BACKEND:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(name, _MplBackendFinder)

    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module):
        module.__dict__["_flush"] = lambda: _flush_figures()
        exec(_MPL_BACKEND_SOURCE, module.__dict__)


sys.meta_path.append(_MplBackendFinder)
# What the driver adds to its environment unless it is there (a fork adds it over its own).
_DRIVER_ENV = {"MPLBACKEND": f"module://{_MPL_BACKEND}", "IPYTHONDIR": "/tmp/.ipython"}
for _name, _value in _DRIVER_ENV.items():
    os.environ.setdefault(_name, _value)
warnings.filterwarnings("ignore", message="To exit: use")
warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")

from traitlets.config import Config  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.core.displayhook import DisplayHook  # noqa: E402
from IPython.core.displaypub import DisplayPublisher  # noqa: E402

_cell_id = None
_error = None
_result_bytes = 0
_RESULT_LIMIT = 8 << 20
# Set while the driver warms the shell up: nothing it displays goes anywhere.
_muted = False


def _emit(data, main):
    global _result_bytes
    if _muted:
        return
    bundle = {k: v for k, v in data.items() if isinstance(k, str)}
    size = sum(len(v) if isinstance(v, str) else len(json.dumps(v, default=str)) for v in bundle.values())
    if _result_bytes + size > _RESULT_LIMIT:
        sys.stderr.write(f"[sandlot: a result of {size} bytes was dropped: results are limited to {_RESULT_LIMIT} bytes per run]\n")
        return
    _result_bytes += size
    sys.stdout.flush()
    sys.stderr.flush()
    _send({"type": "result", "id": _cell_id, "data": bundle, "main": main})


class _Hook(DisplayHook):
    def start_displayhook(self):
        pass

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        _emit(format_dict, True)

    def finish_displayhook(self):
        pass


class _Publisher(DisplayPublisher):
    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        _emit(data, False)

    def clear_output(self, wait=False):
        pass


_config = Config()
_config.HistoryManager.enabled = False
_config.InteractiveShell.colors = "NoColor"
_config.InteractiveShell.xmode = "Plain"
shell = InteractiveShell.instance(
    config=_config, displayhook_class=_Hook, display_pub_class=_Publisher
)


def _showtraceback(etype, evalue, stb):
    global _error
    if issubclass(etype, SystemExit):
        return
    text = "\n".join(stb)
    _error = {"name": etype.__name__, "value": str(evalue), "traceback": text}
    sys.stderr.write(text + "\n")


shell._showtraceback = _showtraceback


def _skip_token_transforms_without_special_syntax():
    """IPython tokenizes every cell to find its special syntax (`%magic`, `!cmd`, `x = %m`,
    `x = !cmd`, `obj?`, and `,` `;` `/` starting a line). A cell with none of those
    characters there has nothing to find: it skips the tokenizer, which cost a context's
    first run ~50 copied pages and 0.2 ms (a warm run 0.1 ms). Its cleanup and line
    transforms and the prefilter (automagic) run as before. One difference: a cell whose
    indentation the tokenizer rejects fails in `compile` instead, with the same
    IndentationError."""
    import re

    special = re.compile(r"[%!?]|^[ \t\f]*[,;/]", re.MULTILINE)
    manager = shell.input_transformer_manager
    tokenize_all = manager.do_token_transforms

    def do_token_transforms(lines):
        return tokenize_all(lines) if special.search("".join(lines)) else lines

    manager.do_token_transforms = do_token_transforms


_skip_token_transforms_without_special_syntax()


def _figure_formats():
    try:
        from matplotlib_inline.backend_inline import InlineBackend

        formats = set(InlineBackend.instance().figure_formats)
    except Exception:
        formats = {"png"}
    return formats or {"png"}


def _flush_figures():
    # Open figures become display results, in the order they were made, then close: at
    # plt.show() (our backend's show) and for figures still open at the end of a cell.
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    import base64
    import io

    formats = _figure_formats()
    for num in plt.get_fignums():
        fig = plt.figure(num)
        bundle = {"text/plain": repr(fig)}
        try:
            if "png" in formats or "retina" in formats:
                buf = io.BytesIO()
                fig.savefig(buf, format="png", bbox_inches="tight")
                bundle["image/png"] = base64.b64encode(buf.getvalue()).decode()
            if "svg" in formats:
                buf = io.StringIO()
                fig.savefig(buf, format="svg", bbox_inches="tight")
                bundle["image/svg+xml"] = buf.getvalue()
        except Exception as e:  # a figure that cannot draw must not break the context
            sys.stderr.write(f"[sandlot: a figure could not be drawn: {e}]\n")
            continue
        _emit(bundle, False)
    plt.close("all")


def _run(cmd):
    global _cell_id, _error, _result_bytes
    _cell_id, _error, _result_bytes = cmd.get("id"), None, 0
    env = cmd.get("env") or {}
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    cwd = cmd.get("cwd")
    before = os.getcwd() if cwd else None
    exit_code = 0
    try:
        if cwd:
            os.chdir(cwd)
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        try:
            result = shell.run_cell(cmd.get("code", ""), store_history=True)
        finally:
            _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
        try:
            _flush_figures()
        except KeyboardInterrupt:
            pass
        err = result.error_in_exec or result.error_before_exec
        if isinstance(err, SystemExit):
            code = err.code
            if code is None:
                exit_code = 0
            elif isinstance(code, int):
                exit_code = code
            else:
                sys.stderr.write(f"{code}\n")
                exit_code = 1
            if exit_code != 0:
                _error = {"name": "SystemExit", "value": str(code), "traceback": ""}
        elif err is not None:
            exit_code = 1
            if _error is None:
                _error = {"name": type(err).__name__, "value": str(err), "traceback": ""}
    except KeyboardInterrupt:
        exit_code = 1
        _error = {"name": "KeyboardInterrupt", "value": "", "traceback": ""}
    except BaseException as e:  # the driver itself failed around the cell
        exit_code = 1
        _error = {"name": type(e).__name__, "value": str(e), "traceback": ""}
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
    finally:
        if cwd and before and os.getcwd() == os.path.realpath(cwd):
            try:
                os.chdir(before)
            except OSError:
                pass
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    if _error is not None:
        _send({"type": "error", "id": _cell_id, **_error})
    _send({"type": "done", "id": _cell_id, "exit_code": exit_code, "count": shell.execution_count - 1})


def _commands():
    buf = b""
    while True:
        try:
            chunk = os.read(_cmd_in_fd, 65536)
        except KeyboardInterrupt:
            continue
        except InterruptedError:
            continue
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def _copy_of(value):
    return dict(value) if isinstance(value, dict) else list(value)


def _warm_up():
    # The first runs of a new shell compile and import what every later run uses, and make
    # what a stored run fills (the history, the output cache, their names); doing them here
    # keeps that off the first run the server asks for (and, in the fork server, puts their
    # pages in the memory the contexts share: 0.25 ms and ~55 copied pages less per
    # context). Nothing is displayed, and all a user could see of them is put back: the
    # execution counter, the history, the output cache, the namespace.
    global _muted
    import io
    import linecache

    hm, dh = shell.history_manager, shell.displayhook
    history = ("input_hist_parsed", "input_hist_raw", "output_hist", "output_hist_reprs", "dir_hist",
               "db_input_cache", "db_output_cache")
    saved_history = {name: _copy_of(getattr(hm, name)) for name in history if hasattr(hm, name)}
    saved_ns = dict(shell.user_ns)
    saved_caches = {name: getattr(dh, name) for name in ("_", "__", "___") if hasattr(dh, name)}
    saved_shell = (shell.execution_count, shell.last_execution_result, shell.last_execution_succeeded)
    saved_lines = set(linecache.cache)
    saved_names = dict(getattr(shell.compile, "_filename_map", {}))
    stdout, sys.stdout = sys.stdout, io.StringIO()
    _muted = True
    try:
        for code in ("print(1)", "1", "_sl_x = 1\ndel _sl_x", "pass"):
            shell.run_cell(code, store_history=True)
    finally:
        _muted = False
        sys.stdout = stdout
        for name, value in saved_history.items():
            current = getattr(hm, name)
            current.clear()
            if isinstance(current, dict):
                current.update(value)
            else:
                current.extend(value)
        for key in [k for k in shell.user_ns if k not in saved_ns]:
            del shell.user_ns[key]
        for key, value in saved_ns.items():
            if shell.user_ns.get(key, value) is not value:
                shell.user_ns[key] = value
        for name, value in saved_caches.items():
            setattr(dh, name, value)
        shell.execution_count, shell.last_execution_result, shell.last_execution_succeeded = saved_shell
        for name in [n for n in linecache.cache if n not in saved_lines]:
            del linecache.cache[name]
        if hasattr(shell.compile, "_filename_map"):
            shell.compile._filename_map.clear()
            shell.compile._filename_map.update(saved_names)


def _take_stdio():
    # The server's commands are on fd 0: keep them on a private descriptor and give the code
    # /dev/null. fd 3 (this program's text) has been read; fd 4 (replies) is not inherited
    # by what the code starts.
    global _cmd_in_fd, _RESULT_LIMIT
    try:
        os.close(3)
    except OSError:
        pass
    _cmd_in_fd = os.dup(0)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.set_inheritable(_reply_fd, False)
    _RESULT_LIMIT = int(os.environ.get("SANDLOT_RESULT_LIMIT", str(8 << 20)))


# Work that must happen in a context but not before its first run answers (the fork server
# leaves some here); done after that run's "done".
_after_first_run = []


def serve():
    _send({"type": "ready", "pid": os.getpid()})
    for cmd in _commands():
        if cmd.get("type") == "run":
            _run(cmd)
        elif cmd.get("type") == "warm":
            # A context made ahead (the warm pool): its first run prepared while nothing waits.
            _warm_up()
            _send({"type": "done", "id": cmd.get("id"), "exit_code": 0, "count": shell.execution_count - 1})
        elif cmd.get("type") == "env":
            # A context made ahead, handed to a sandbox with variables of its own: they become
            # its environment, as if it had started with them (forked contexts only).
            taken = "_take_env" in globals()
            if taken:
                try:
                    _take_env(dict(cmd.get("env") or ()), dict(os.environ))
                except BaseException as e:  # the server makes the sandbox anew
                    sys.stderr.write(f"[sandlot: could not take the environment: {e!r}]\n")
                    taken = False
            _send({"type": "done", "id": cmd.get("id"), "exit_code": 0 if taken else 1, "count": shell.execution_count - 1})
        else:
            continue
        while _after_first_run:
            _after_first_run.pop(0)()


_warm_up()
if not _ZYGOTE:
    _take_stdio()
    serve()
