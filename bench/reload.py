"""Benchmark the reloader against its peers: how fast a save is served, whether
any request fails meanwhile, what an idle server costs, how fast it starts.

For each server and each app (``hello``, and ``heavy``: one that imports about
800 modules) it:

1. starts the server and times launch → first answer (``start``);
2. saves the app file ``--reloads`` times with a new message and times each
   write → first answer showing the new message (``write-to-served``), while a
   second client requests every 5 ms and counts every failed request (refused,
   reset, timed out, or a 5xx);
3. measures the CPU that the whole process tree uses over ``--idle`` seconds
   of doing nothing (all threads of all processes, from ``/proc``), and the
   tree's memory at the end: the sum of each process's RSS, and of its PSS
   (shared pages divided among the processes that share them);
4. breaks the app ``--broken`` times (a syntax error saved, then the fix) and
   times write → first error answer (a 5xx) and fix → first answer showing
   the fixed code, counting the requests that got no HTTP answer at all
   (refused, reset, timed out) meanwhile: a 5xx is the right answer while the
   code is broken;
5. stops it with Ctrl+C (SIGINT to its process group), then kills what is left
   of that group. Only processes this script started are touched, and only
   loopback addresses are used.

Servers: ``citus run --debug`` with each backend, Werkzeug's reloader through
``flask run --debug`` with each backend, ``uvicorn --reload`` and ``granian
--reload`` (skipped when not installed). Needs Linux (``/proc``) for CPU.

    python bench/reload.py                       # everything, ~10 minutes
    python bench/reload.py --only citus-watchdog,citus-stat --idle 5 --reloads 5
    python bench/reload.py --reloads 0 --idle 0 --broken 3   # broken code only
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

HEAVY_IMPORTS = """\
import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
        ]
    )
    django.setup()
import argparse, asyncio, csv, decimal, email.mime.multipart, http.server  # noqa
import logging.handlers, multiprocessing, pydoc, sqlite3, unittest  # noqa
import xml.etree.ElementTree  # noqa
import cryptography.x509  # noqa
import django.contrib.admin.sites, django.db.models, django.test  # noqa
import flask  # noqa
import pytest  # noqa
"""

WSGI_APP = """\
{heavy}
MESSAGE = {message!r}


def app(environ, start_response):
    body = MESSAGE.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""

FLASK_APP = """\
{heavy}
from flask import Flask

MESSAGE = {message!r}
app = Flask(__name__)


@app.route("/")
def index():
    return MESSAGE
"""

ASGI_APP = """\
{heavy}
MESSAGE = {message!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = MESSAGE.encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": body}})
"""

#: Werkzeug's reloader with a chosen backend, as ``flask run --debug`` runs it
#: (``flask run`` itself has no option to choose the backend).
WERKZEUG_RUN = """\
import sys

from werkzeug.serving import run_simple

from app import app

run_simple("127.0.0.1", int(sys.argv[1]), app, use_reloader=True,
           use_debugger=True, reloader_type=sys.argv[2])
"""

BIN = Path(sys.executable).parent
#: Seconds between a change being served and the next save (``--pause``).
PAUSE = 0.3
# citus is installed editable here, so its own source is outside site-packages
# and would be watched (and edited by others while the benchmark runs): leave it
# out, as it is for anyone who installed citus from a wheel.
_CITUS_SRC = Path(__file__).resolve().parent.parent / "src" / "citus"
EXCLUDE_CITUS = ["--exclude-patterns", f"{_CITUS_SRC}{os.sep}*"]


class ServerKind(t.NamedTuple):
    name: str
    template: str
    command: t.Callable[[int], list[str]]
    needs: str  # an executable in the venv's bin folder


SERVERS = [
    ServerKind(
        "citus-watchdog",
        WSGI_APP,
        lambda port: [
            str(BIN / "citus"),
            "--app",
            "app",
            "run",
            "--debug",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--reloader-type",
            "watchdog",
            *EXCLUDE_CITUS,
        ],
        "citus",
    ),
    ServerKind(
        "citus-stat",
        WSGI_APP,
        lambda port: [
            str(BIN / "citus"),
            "--app",
            "app",
            "run",
            "--debug",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--reloader-type",
            "stat",
            *EXCLUDE_CITUS,
        ],
        "citus",
    ),
    ServerKind(
        "citus-nopreload",
        WSGI_APP,
        lambda port: [
            str(BIN / "citus"),
            "--app",
            "app",
            "run",
            "--debug",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--reloader-type",
            "watchdog",
            "--no-preload",
            *EXCLUDE_CITUS,
        ],
        "citus",
    ),
    ServerKind(
        "werkzeug-stat",
        FLASK_APP,
        lambda port: [sys.executable, "werkzeug_run.py", str(port), "stat"],
        "flask",
    ),
    ServerKind(
        "werkzeug-watchdog",
        FLASK_APP,
        lambda port: [sys.executable, "werkzeug_run.py", str(port), "watchdog"],
        "flask",
    ),
    ServerKind(
        "uvicorn",
        ASGI_APP,
        lambda port: [
            str(BIN / "uvicorn"),
            "app:app",
            "--reload",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
        ],
        "uvicorn",
    ),
    ServerKind(
        "granian",
        WSGI_APP,
        lambda port: [
            str(BIN / "granian"),
            "--interface",
            "wsgi",
            "--reload",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "app:app",
        ],
        "granian",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(port: int, timeout: float = 2.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def tree_of(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.split("/")[2])
        parents.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_by_pid(pids: t.Iterable[int]) -> dict[int, float]:
    """CPU seconds used so far by each process (all its threads)."""
    found: dict[int, float] = {}
    for pid in pids:
        total = 0
        for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(path) as file:
                    total += int(file.read().split()[0])
        found[pid] = total / 1e9
    return found


def memory_mb(pids: t.Iterable[int]) -> tuple[float, float]:
    """``(RSS, PSS)`` of ``pids`` together, in MB (from /proc)."""
    totals = [0, 0]
    for pid in pids:
        for index, (path, field) in enumerate(
            [(f"/proc/{pid}/status", "VmRSS:"), (f"/proc/{pid}/smaps_rollup", "Pss:")]
        ):
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(path) as file:
                    for line in file:
                        if line.startswith(field):
                            totals[index] += int(line.split()[1])
                            break
    return totals[0] / 1024, totals[1] / 1024


class Poller(threading.Thread):
    """Requests every 5 ms and counts failures (a 5xx is one unless
    ``errors_ok``: while the code is broken, an error page is the answer)."""

    def __init__(self, port: int, errors_ok: bool = False) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.errors_ok = errors_ok
        self.stop = threading.Event()
        self.requests = 0
        self.failures = 0
        self.errors: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            self.requests += 1
            try:
                status, _ = request(self.port)
                if status >= 500 and not self.errors_ok:
                    raise RuntimeError(f"status {status}")
            except Exception as error:
                self.failures += 1
                key = type(error).__name__
                self.errors[key] = self.errors.get(key, 0) + 1
            self.stop.wait(0.005)


def wait_answer(
    port: int, check: t.Callable[[int, str], bool], timeout: float = 10
) -> float | None:
    """Seconds until an answer passes ``check``, or ``None`` past ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check(*request(port, 2)):
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.002)
    return None


def break_and_fix(
    kind: ServerKind,
    proc: subprocess.Popen[bytes],
    port: int,
    app: Path,
    heavy_code: str,
    times: int,
) -> dict[str, t.Any]:
    """Save a syntax error, then its fix, ``times`` times (see step 4)."""
    poller = Poller(port, errors_ok=True)
    poller.start()
    to_error: list[float] = []
    to_fixed: list[float] = []
    note = None
    for number in range(1, times + 1):
        good = kind.template.format(heavy=heavy_code, message=f"fixed{number}")
        app.write_text(good.replace(f"'fixed{number}'", "'broken"))
        shown = wait_answer(port, lambda status, body: status >= 500)
        if shown is None:
            note = "server exited" if proc.poll() is not None else "no error shown"
        else:
            to_error.append(shown)
        time.sleep(0.3)
        message = f"fixed{number}"

        def shows_fix(status: int, body: str, message: str = message) -> bool:
            return status == 200 and body.strip() == message

        app.write_text(good)
        fixed = wait_answer(port, shows_fix)
        if fixed is None:
            note = note or ("server exited" if proc.poll() is not None else "stuck")
            break
        to_fixed.append(fixed)
        time.sleep(0.3)
    poller.stop.set()
    poller.join(5)
    return {
        "broken_note": note,
        "write_to_error_median_s": statistics.median(to_error) if to_error else None,
        "fix_to_served_median_s": statistics.median(to_fixed) if to_fixed else None,
        "broken_requests": poller.requests,
        "broken_unanswered": poller.failures,
        "broken_errors": poller.errors,
    }


def measure(
    kind: ServerKind, heavy: bool, reloads: int, idle: float, broken: int = 0
) -> dict[str, t.Any]:
    top = Path(tempfile.mkdtemp(prefix=f"citus-bench-{kind.name}-"))
    folder = top / "project"
    folder.mkdir()
    app = folder / "app.py"
    heavy_code = HEAVY_IMPORTS if heavy else ""
    app.write_text(kind.template.format(heavy=heavy_code, message="m0"))
    (folder / "werkzeug_run.py").write_text(WERKZEUG_RUN)
    port = free_port()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    env.pop("CITUS_RUN_MAIN", None)
    result: dict[str, t.Any] = {
        "server": kind.name,
        "app": "heavy" if heavy else "hello",
    }
    log = open(top / "server.log", "wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        kind.command(port),
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = started + 30
        while True:
            try:
                if request(port, 1)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                result["error"] = "did not start"
                return result
            time.sleep(0.005)
        result["start_s"] = time.monotonic() - started
        time.sleep(1.0)  # let reloaders finish setting up their watches

        poller = Poller(port)
        if reloads > 0:
            poller.start()
        times: list[float] = []
        misses = 0
        for number in range(1, reloads + 1):
            message = f"m{number}"
            text = kind.template.format(heavy=heavy_code, message=message)
            written = time.monotonic()
            app.write_text(text)
            deadline = written + 10
            served = None
            while time.monotonic() < deadline:
                try:
                    status, body = request(port, 2)
                    if status == 200 and body.strip() == message:
                        served = time.monotonic()
                        break
                except OSError:
                    pass
                time.sleep(0.002)
            if served is None:
                misses += 1
                if misses >= 2:
                    break
            else:
                times.append(served - written)
            time.sleep(PAUSE)  # a human does not save every 100 ms
        poller.stop.set()
        if reloads > 0:
            poller.join(5)
        result["reloads"] = len(times)
        result["missed"] = misses
        result["write_to_served_median_s"] = statistics.median(times) if times else None
        result["write_to_served_max_s"] = max(times) if times else None
        result["write_to_served_all_s"] = [round(x, 3) for x in times]
        result["requests"] = poller.requests
        result["failed_requests"] = poller.failures
        result["errors"] = poller.errors

        if idle > 0:
            time.sleep(3.0)  # old processes stopped, spares started
            pids = tree_of(proc.pid)
            before, at = cpu_by_pid(pids), time.monotonic()
            time.sleep(idle)
            after = cpu_by_pid(tree_of(proc.pid))
            if sorted(after) != sorted(pids):
                result["idle_note"] = "processes changed while idle"
            used = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
            result["idle_cpu_percent"] = 100 * used / (time.monotonic() - at)
            result["idle_processes"] = len(after)
            rss, pss = memory_mb(after)
            result["idle_rss_mb"] = round(rss, 1)
            result["idle_pss_mb"] = round(pss, 1)
            result["idle_by_process"] = {
                pid: round(100 * (cpu - before.get(pid, 0.0)) / idle, 3)
                for pid, cpu in after.items()
            }
        if broken > 0:
            result.update(break_and_fix(kind, proc, port, app, heavy_code, broken))
        return result
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        log.close()
        shutil.rmtree(top, ignore_errors=True)


def app_import_time(heavy: bool, runs: int = 3) -> float:
    """Median seconds to import the app module alone, in a fresh interpreter."""
    folder = Path(tempfile.mkdtemp(prefix="citus-bench-import-"))
    try:
        code = WSGI_APP.format(heavy=HEAVY_IMPORTS if heavy else "", message="m0")
        (folder / "app.py").write_text(code)
        probe = (
            "import sys, time; sys.path.insert(0, '.'); t = time.perf_counter(); "
            "import app; print(time.perf_counter() - t)"
        )
        times = []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", probe],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            times.append(float(out.stdout.strip()))
        return statistics.median(times)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fmt(value: float | None, unit: str = "ms") -> str:
    if value is None:
        return "never"
    return f"{value * 1000:.0f} ms" if unit == "ms" else f"{value:.2f}%"


def memory(result: dict[str, t.Any]) -> str:
    if "idle_rss_mb" not in result:
        return "-"
    return f"{result['idle_rss_mb']:.0f} MB ({result['idle_pss_mb']:.0f} MB)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated server names")
    parser.add_argument("--apps", default="hello,heavy")
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds idle")
    parser.add_argument(
        "--broken", type=int, default=3, help="times to save a syntax error and its fix"
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--keepalive",
        type=int,
        default=0,
        metavar="WRITES",
        help="instead: count failed requests of kept-alive, close and pipelined"
        " clients while the hello app is saved WRITES times, 250 ms apart"
        " (bench/keepalive.py)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=PAUSE,
        help="seconds between a change being served and the next save",
    )
    args = parser.parse_args()
    globals()["PAUSE"] = args.pause
    # Started in the background, SIGINT may be ignored, and the servers would
    # inherit that: make Ctrl+C reach them (they are stopped with it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    names = set(args.only.split(",")) if args.only else None
    if args.keepalive > 0:
        import keepalive

        keepalive.main(SERVERS, names, args.keepalive, args.json)
        return
    results = []
    for heavy in [False, True]:
        if ("heavy" if heavy else "hello") not in args.apps.split(","):
            continue
        for kind in SERVERS:
            if names is not None and kind.name not in names:
                continue
            if not (BIN / kind.needs).exists():
                print(f"skip {kind.name}: {kind.needs} is not installed", flush=True)
                continue
            result = measure(kind, heavy, args.reloads, args.idle, args.broken)
            results.append(result)
            print(json.dumps(result), flush=True)
    print()
    print(
        "| server | app | start | write-to-served (median) | failed / requests"
        " | idle CPU | idle RSS (PSS) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results if args.reloads > 0 or args.idle > 0 else []:
        if "error" in r:
            print(f"| {r['server']} | {r['app']} | {r['error']} | | | | |")
            continue
        missed = f" ({r['missed']} never served)" if r.get("missed") else ""
        idle = r.get("idle_cpu_percent")
        print(
            f"| {r['server']} | {r['app']} | {fmt(r['start_s'])} "
            f"| {fmt(r['write_to_served_median_s'])}{missed} "
            f"| {r['failed_requests']} / {r['requests']} "
            f"| {fmt(idle, '%') if idle is not None else '-'} "
            f"| {memory(r)} |"
        )
    if args.broken > 0:
        print()
        print(
            "| server | app | write-to-error (median) | fix-to-served (median)"
            " | unanswered / requests while broken |"
        )
        print("| --- | --- | --- | --- | --- |")
        for r in results:
            if "error" in r:
                continue
            note = f" ({r['broken_note']})" if r.get("broken_note") else ""
            print(
                f"| {r['server']} | {r['app']} | {fmt(r['write_to_error_median_s'])}"
                f" | {fmt(r['fix_to_served_median_s'])}{note}"
                f" | {r['broken_unanswered']} / {r['broken_requests']} |"
            )
    for heavy in [False, True]:
        name = "heavy" if heavy else "hello"
        if name in args.apps.split(","):
            print(
                f"import time of the {name} app alone: "
                f"{app_import_time(heavy) * 1000:.0f} ms"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
