"""Benchmark cold restarts: what a developer feels when the environment changes.

For ``citus run --debug`` with each backend, on a one-module app that shows
an environment variable and its process id, it times:

1. a code change (a warm reload, for comparison): write → first answer that
   shows it;
2. an edit of ``.env``: write → first answer that shows the new value (a cold
   restart: the supervisor polls the file twice a second, then starts a new
   process without the spare);
3. an edit of ``pyproject.toml``: write → first answer from a new process;

each ``--rounds`` times, while a second client requests every 5 ms and counts
every failed request (refused, reset, timed out, or a 5xx). Then it measures
the CPU the supervisor alone uses over ``--idle`` seconds of doing nothing
(it polls the dependency and env files), from ``/proc``. Linux only; only
processes this script started are touched, on loopback.

    python bench/environment.py
    python bench/environment.py --rounds 3 --idle 5 --only watchdog
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

APP = """\
import os

from citus import API

app = API(__name__)
MARK = {mark!r}


@app.route("/")
def hello():
    return "%s %s pid=%d" % (MARK, os.environ.get("GREETING", "unset"), os.getpid())
"""
CITUS_SRC = os.path.dirname(os.path.abspath(__import__("citus").__file__))


def get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


class Load(threading.Thread):
    """Requests every 5 ms and counts the failures."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.failed, self.done = port, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                status, _ = get(self.port)
                self.failed += status >= 500
            except OSError:
                self.failed += 1
            time.sleep(0.005)


def until(port: int, ok: t.Callable[[str], bool], timeout: float = 30) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            status, body = get(port)
            if status == 200 and ok(body):
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.002)
    raise TimeoutError("no answer as expected")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(backend: str, rounds: int, idle: float) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="citus-envbench-"))
    (folder / "hello.py").write_text(APP.format(mark="m0"))
    (folder / ".env").write_text("GREETING=g0\n")
    (folder / "pyproject.toml").write_text('[project]\nname = "x0"\n')
    citus = Path(sys.executable).with_name("citus")
    args = [str(citus), "--app", "hello", "run", "--debug", "--port", "0"]
    args += ["--reloader-type", backend, "--exclude-patterns", CITUS_SRC + "/*"]
    proc = subprocess.Popen(
        args,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        start_new_session=True,
    )
    assert proc.stdout is not None
    port = 0
    for line in proc.stdout:
        found = re.search(r"Running on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    try:
        until(port, lambda body: body.startswith("m0 g0"))
        time.sleep(1.5)  # the spare is ready, the supervisor polls
        load = Load(port)
        load.start()
        times: dict[str, list[float]] = {"code": [], "env": [], "deps": []}
        for n in range(1, rounds + 1):
            (folder / "hello.py").write_text(APP.format(mark=f"m{n}"))
            times["code"].append(until(port, lambda b, n=n: b.startswith(f"m{n} ")))
            time.sleep(0.5)
            (folder / ".env").write_text(f"GREETING=g{n}\n")
            times["env"].append(until(port, lambda b, n=n: f" g{n} " in b))
            time.sleep(0.5)
            pid = get(port)[1].rsplit("pid=", 1)[1]
            (folder / "pyproject.toml").write_text(f'[project]\nname = "x{n}"\n')
            times["deps"].append(until(port, lambda b, p=pid: not b.endswith(p)))
            time.sleep(0.5)
        load.done.set()
        load.join()
        before = cpu_seconds(proc.pid)
        time.sleep(idle)
        idle_cpu = (cpu_seconds(proc.pid) - before) / idle * 100 if idle else 0.0
        return {
            **{k: statistics.median(v) for k, v in times.items()},
            "failed": load.failed,
            "idle": idle_cpu,
        }
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--only", default="watchdog,stat")
    options = parser.parse_args()
    print(
        "| backend | code change (warm) | .env edit (cold) | pyproject.toml edit"
        " (cold) | failed requests | supervisor idle CPU |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for backend in options.only.split(","):
        r = measure(backend, options.rounds, options.idle)
        print(
            f"| {backend} | {r['code'] * 1000:.0f} ms | {r['env'] * 1000:.0f} ms"
            f" | {r['deps'] * 1000:.0f} ms | {r['failed']} |"
            f" {r['idle']:.2f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
