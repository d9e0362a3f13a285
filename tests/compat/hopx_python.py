"""The official HopX Python SDK (hopx-ai 0.5.0), unmodified, against a real sandlotd.

Usage: python hopx_python.py <base_url> <api_key>. Prints one line per check and a closing
'N passed, N failed' line; exits non-zero on any failure.
"""

import asyncio
import sys
import time
import traceback

from hopx_ai import AsyncSandbox, Sandbox

BASE, KEY = sys.argv[1], sys.argv[2]
results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            results.append((name, e))
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            traceback.print_exc()
        return fn

    return wrap


sb = Sandbox.create(template="code-interpreter", api_key=KEY, base_url=BASE, env_vars={"GREETING": "hi"})


@check("create and get_info")
def _():
    info = sb.get_info()
    assert info.status == "running", info.status
    assert info.template_name == "code-interpreter"


@check("run_code sees env_vars from create")
def _():
    r = sb.run_code("import os; print(os.environ['GREETING'], 6 * 7)")
    assert (r.stdout, r.exit_code, r.success) == ("hi 42\n", 0, True), r


@check("run_code keeps state and returns rich_outputs (matplotlib PNG, DataFrame HTML)")
def _():
    r = sb.run_code("import pandas as pd\ndf = pd.DataFrame({'n': [1, 2, 3]})\ndf")
    assert (r.exit_code, r.success) == (0, True), r
    mime = lambda o: getattr(o.type, "value", o.type)  # noqa: E731 (an enum in the SDK)
    html = [o for o in r.rich_outputs or [] if mime(o) == "text/html"]
    assert html and "<table" in str(html[0].data), html[0]
    r = sb.run_code(
        "import matplotlib.pyplot as plt\nplt.plot(df['n'])\nplt.show()\nprint(len(df))"
    )
    assert (r.stdout, r.exit_code) == ("3\n", 0), r
    png = [o for o in r.rich_outputs or [] if mime(o) == "image/png"]
    assert png and "iVBORw0KGgo" in str(png[0].data), r.rich_outputs  # base64 of a PNG header


@check("failing bash is a result with its exit code")
def _():
    r = sb.run_code("echo out; exit 3", language="bash")
    assert (r.stdout, r.exit_code) == ("out\n", 3), r


@check("background run, list, wait for completion")
def _():
    bg = sb.run_code_background("import time; print('bg'); time.sleep(0.3)", name="job")
    pid = bg["process_id"]
    assert bg["name"] == "job"
    for _ in range(100):
        proc = next(p for p in sb.list_processes() if p["process_id"] == pid)
        if proc["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert (proc["status"], proc["stdout"], proc["exit_code"]) == ("completed", "bg\n", 0), proc


@check("kill_process")
def _():
    bg = sb.run_code_background("import time; time.sleep(60)")
    reply = sb.kill_process(bg["process_id"])
    assert reply["status"] == "killed", reply
    proc = next(p for p in sb.list_processes() if p["process_id"] == bg["process_id"])
    assert proc["status"] == "killed", proc


@check("run_code_stream over WebSocket")
def _():
    async def collect():
        return [m async for m in sb.run_code_stream("for i in range(3): print(i)")]

    msgs = asyncio.run(collect())
    out = "".join(m["data"] for m in msgs if m["type"] == "stdout")
    assert out == "0\n1\n2\n", msgs
    assert msgs[-1] == {"type": "complete", "success": True}, msgs[-1]


@check("commands.run in the foreground and the background")
def _():
    res = sb.commands.run("echo $0 && node -v")
    assert res.stdout.startswith("bash\nv"), res.stdout
    assert res.exit_code == 0
    failed = sb.commands.run("exit 4")
    assert failed.exit_code == 4, failed
    bg = sb.commands.run("sleep 0.2; echo later", background=True)
    assert "Background process started" in bg.stdout, bg.stdout


@check("list_system_processes, metrics")
def _():
    started = sb.run_code_background("import time; time.sleep(5)", name="sleeper")
    deadline = time.time() + 10
    while True:  # the run starts in the background: wait for its process to appear
        procs = sb.list_system_processes()
        if any(p["name"].startswith("python") for p in procs) or time.time() > deadline:
            break
        time.sleep(0.1)
    assert any(p["name"].startswith("python") for p in procs), procs
    metrics = sb.get_agent_metrics()
    assert metrics["total_requests"] >= 1, metrics
    snap = sb.get_metrics_snapshot()
    assert snap["system"]["memory"]["limit_mb"] > 0, snap
    assert snap["process"]["count"] >= 1, snap
    assert snap["cache"]["size"] == 0, snap
    sb.kill_process(started["process_id"])


@check("AsyncSandbox: list_processes (GET /processes), kill_process, get_metrics_snapshot")
def _():
    bg = sb.run_code_background("import time; time.sleep(30)", name="async-target")

    async def go():
        asb = await AsyncSandbox.connect(sb.sandbox_id, api_key=KEY, base_url=BASE)
        deadline = time.time() + 10
        while True:
            procs = await asb.list_processes()
            mine = [p for p in procs if p.get("process_id") == bg["process_id"]]
            if mine or time.time() > deadline:
                break
            await asyncio.sleep(0.1)
        assert mine, procs
        await asb.kill_process(mine[0]["process_id"])
        metrics = await asb.get_metrics_snapshot()
        assert "system" in metrics, metrics

    asyncio.run(go())
    # The kill answers once the process tree is dead.
    listed = [p for p in sb.list_processes() if p["process_id"] == bg["process_id"]]
    assert listed and listed[0]["status"] == "killed", listed


@check("terminal over WebSocket: output, resize, exit code")
def _():
    async def session():
        out, exit_frame = "", None
        async with await sb.terminal.connect() as ws:
            await sb.terminal.resize(ws, 100, 30)
            await sb.terminal.send_input(ws, "stty size; echo hi-$((40+2)); exit 3\n")
            async for msg in sb.terminal.iter_output(ws):
                if msg["type"] == "output":
                    out += msg["data"]
                elif msg["type"] == "exit":
                    exit_frame = msg
                    break
        return out, exit_frame

    out, exit_frame = asyncio.run(session())
    assert "30 100" in out and "hi-42" in out, out
    assert exit_frame == {"type": "exit", "code": 3}, exit_frame


@check("files.watch over WebSocket: a write is reported")
def _():
    async def session():
        async def writer():
            for i in range(60):
                await asyncio.sleep(0.2)
                await asyncio.to_thread(sb.files.write, "/workspace/watched.txt", str(i))

        task = asyncio.create_task(writer())
        try:
            async for event in sb.files.watch("/workspace"):
                if event.get("type") == "change" and event.get("path") == "/workspace/watched.txt":
                    return event
        finally:
            task.cancel()

    event = asyncio.run(asyncio.wait_for(session(), 15))
    assert event["event"] in ("created", "modified"), event


@check("files: write, read, bytes, list, exists, mkdir, upload, download, remove")
def _():
    import os
    import tempfile

    sb.files.mkdir("/workspace/compat/sub")
    sb.files.write("/workspace/compat/hello.txt", "hi from hopx\n")
    assert sb.files.read("/workspace/compat/hello.txt") == "hi from hopx\n"
    blob = bytes(range(256)) * 4
    sb.files.write_bytes("/workspace/compat/blob.bin", blob)
    assert sb.files.read_bytes("/workspace/compat/blob.bin") == blob
    entries = {f.name: f for f in sb.files.list("/workspace/compat")}
    assert set(entries) == {"hello.txt", "blob.bin", "sub"}, entries
    assert entries["sub"].is_dir and not entries["hello.txt"].is_dir, entries
    assert entries["blob.bin"].size == len(blob), entries["blob.bin"]
    assert sb.files.exists("/workspace/compat/hello.txt")
    assert not sb.files.exists("/workspace/compat/nope.txt")
    # Code in the sandbox sees what the API wrote.
    assert sb.run_code("print(open('/workspace/compat/hello.txt').read(), end='')").stdout == "hi from hopx\n"
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "up.bin")
        with open(local, "wb") as f:
            f.write(os.urandom(300_000))
        sb.files.upload(local, "/workspace/compat/up.bin")
        back = os.path.join(tmp, "down.bin")
        sb.files.download("/workspace/compat/up.bin", back)
        assert open(back, "rb").read() == open(local, "rb").read()
    sb.files.remove("/workspace/compat")
    assert not sb.files.exists("/workspace/compat")


@check("env get, set, update")
def _():
    assert sb.env.get_all().get("GREETING") == "hi"
    sb.env.update({"EXTRA": "1"})
    r = sb.run_code("echo $GREETING$EXTRA", language="bash")
    assert r.stdout == "hi1\n", r


@check("pause and resume")
def _():
    sb.pause()
    assert sb.get_info().status == "paused"
    sb.resume()
    assert sb.get_info().status == "running"


@check("set_timeout and refresh_token")
def _():
    sb.set_timeout(600)
    sb.refresh_token()
    assert sb.run_code("print('after refresh')").stdout == "after refresh\n"


@check("list sandboxes and connect")
def _():
    ids = [s.sandbox_id for s in Sandbox.list(api_key=KEY, base_url=BASE)]
    assert sb.sandbox_id in ids, ids
    again = Sandbox.connect(sb.sandbox_id, api_key=KEY, base_url=BASE)
    assert again.run_code("print(1)").stdout == "1\n"


@check("kill the sandbox")
def _():
    sb.kill()
    ids = [s.sandbox_id for s in Sandbox.list(api_key=KEY, base_url=BASE)]
    assert sb.sandbox_id not in ids


failed = sum(1 for _, e in results if e)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
