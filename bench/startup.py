"""Benchmark start-up: launch to first answer, for citus and its peers, in one run.

Each server is started as its users start it, in a fresh folder holding a
hello-world app, and the script times launch → the first ``200`` answer to
``GET /`` on 127.0.0.1 (polled every 2 ms), then stops the server with Ctrl+C
(SIGINT to its process group) and kills what is left of that group. The
servers take turns, round after round, so that they share whatever else the
machine is doing; the median of each server's rounds counts.

Servers: ``citus run``, ``citus run --debug`` (reloader and debugger),
``citus run --debug --no-preload``, ``uvicorn`` (an ASGI hello app, no reload)
and ``flask run --debug`` (skipped when not installed).

    python bench/startup.py                  # 10 rounds
    python bench/startup.py --rounds 20 --only citus,citus-debug
"""

from __future__ import annotations

import argparse
import contextlib
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
import time
import typing as t
from pathlib import Path

BIN = Path(sys.executable).parent

WSGI_APP = """\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
"""

ASGI_APP = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})
"""

FLASK_APP = """\
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "hello"
"""


class Server(t.NamedTuple):
    name: str
    app: str
    command: t.Callable[[int], list[str]]
    needs: str
    #: Put first on ``PYTHONPATH`` (another checkout of citus, for ``--compare``).
    path: str | None = None


# citus is installed editable here, so its own source is outside site-packages
# and would be watched (installed from a wheel, it is not): leave it out.
_CITUS_SRC = Path(__file__).resolve().parent.parent / "src" / "citus"
EXCLUDE_CITUS = ("--exclude-patterns", f"{_CITUS_SRC}{os.sep}*")


def _citus(*extra: str) -> t.Callable[[int], list[str]]:
    return lambda port: [
        str(BIN / "citus"),
        "--app",
        "app",
        "run",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        *extra,
    ]


SERVERS = [
    Server("citus", WSGI_APP, _citus(), "citus"),
    Server("citus-debug", WSGI_APP, _citus("--debug", *EXCLUDE_CITUS), "citus"),
    Server(
        "citus-debug-nopreload",
        WSGI_APP,
        _citus("--debug", "--no-preload", *EXCLUDE_CITUS),
        "citus",
    ),
    Server(
        "uvicorn",
        ASGI_APP,
        lambda port: [
            str(BIN / "uvicorn"),
            "app:app",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
        ],
        "uvicorn",
    ),
    Server(
        "flask-debug",
        FLASK_APP,
        lambda port: [
            str(BIN / "flask"),
            "--app",
            "app",
            "run",
            "--debug",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        "flask",
    ),
]


def _elsewhere(server: Server, src: str) -> t.Callable[[int], list[str]]:
    """``server``'s command, leaving out the citus source in ``src`` instead."""
    ours = EXCLUDE_CITUS[1]
    theirs = f"{os.path.join(src, 'citus')}{os.sep}*"
    return lambda port: [theirs if a == ours else a for a in server.command(port)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def measure(server: Server, folder: Path) -> float | None:
    """Seconds from launch to the first answer, or ``None`` if none in 30 s."""
    port = free_port()
    env = dict(os.environ, NO_COLOR="1")
    if server.path:
        env["PYTHONPATH"] = server.path
    # As a user's: bytecode is written once and read after.
    for name in ("CITUS_RUN_MAIN", "CITUS_SERVER_FDS", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    started = time.monotonic()
    proc = subprocess.Popen(
        server.command(port),
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while time.monotonic() - started < 30:
            if answers(port):
                return time.monotonic() - started
            if proc.poll() is not None:
                return None
            time.sleep(0.002)
        return None
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--only", help="comma-separated server names")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--compare",
        metavar="SRC",
        help="also run citus and citus --debug from this other source folder"
        " (a checkout's src/), for an A/B in the same run",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    names = set(args.only.split(",")) if args.only else None
    servers = [
        s
        for s in SERVERS
        if (names is None or s.name in names) and (BIN / s.needs).exists()
    ]
    if args.compare:
        other = os.path.abspath(args.compare)
        servers += [
            s._replace(
                name=s.name + "@compare", path=other, command=_elsewhere(s, other)
            )
            for s in SERVERS[:2]
            if names is None or s.name in names
        ]
    top = Path(tempfile.mkdtemp(prefix="citus-bench-startup-"))
    times: dict[str, list[float]] = {s.name: [] for s in servers}
    failed: dict[str, int] = {s.name: 0 for s in servers}
    try:
        folders = {}
        for server in servers:
            folder = top / server.name
            folder.mkdir()
            (folder / "app.py").write_text(server.app)
            folders[server.name] = folder
            measure(server, folder)  # a first start writes bytecode: not counted
        for number in range(1, args.rounds + 1):
            for server in servers:
                took = measure(server, folders[server.name])
                if took is None:
                    failed[server.name] += 1
                else:
                    times[server.name].append(took)
            line = " ".join(
                f"{name}={values[-1] * 1000:.0f}ms"
                for name, values in times.items()
                if values
            )
            print(f"round {number}: {line}", flush=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    base = statistics.median(times["citus"]) if times.get("citus") else None
    print()
    print("| server | start to first answer (median) | min - max | vs citus run |")
    print("| --- | --- | --- | --- |")
    for name, values in times.items():
        if not values:
            print(f"| {name} | never ({failed[name]} failed) | | |")
            continue
        median = statistics.median(values)
        ratio = f"{median / base:.2f}x" if base else "-"
        print(
            f"| {name} | {median * 1000:.0f} ms | {min(values) * 1000:.0f} -"
            f" {max(values) * 1000:.0f} ms | {ratio} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"times": times, "failed": failed}))


if __name__ == "__main__":
    main()
