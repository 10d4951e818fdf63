"""Failed requests while reloading, for clients that keep their connections.

``python bench/reload.py --keepalive 100`` runs this (see ``bench/README.md``):
each server (the hello app) gets the load of issue 12 while its app file is
saved ``WRITES`` times with a new message: each save once the previous one is
served (so each save is one reload), and at most every 250 ms:

- four clients POST a small form over one kept-alive connection each, with
  3 ms pauses (as python-requests sessions do);
- one client GETs over one kept-alive connection;
- one client opens a new connection for each GET (``Connection: close``);
- one client pipelines three requests (GET, POST, GET) at once, then reads the
  three answers.

A request fails when it gets no complete answer (a reset, a closed
connection, a timeout) or a 5xx status (another answer, such as Flask's 405
for a POST to a GET-only view, is an answer); a kept-alive client then opens a
new connection, as requests does. A pipelined request left unanswered counts
as failed, unless the server had announced its close (``Connection: close``,
as HTTP/1.0 servers do): it is then sent again on a new connection, as
RFC 9112 allows, since the server processed nothing after that answer. Only loopback
addresses are used and only processes this script started are stopped.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    from reload import ServerKind

FORM = b"name=citus&message=hello+world&n=42"
PAUSE = 0.003
INTERVAL = 0.25


class Load:
    """What the clients saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.requests = 0
        self.failed = 0
        self.errors: dict[str, int] = {}
        self.messages: set[str] = set()

    def answered(self, status: int, body: bytes, who: str) -> None:
        with self.lock:
            self.requests += 1
            if status >= 500:
                self._fail(who, f"status {status}")
            elif status == 200:
                self.messages.add(body.decode("latin-1").strip())

    def failed_one(self, who: str, why: str, count: int = 1) -> None:
        with self.lock:
            self.requests += count
            for _ in range(count):
                self._fail(who, why)

    def _fail(self, who: str, why: str) -> None:
        self.failed += 1
        key = f"{who}: {why}"
        self.errors[key] = self.errors.get(key, 0) + 1


def _error(error: BaseException) -> str:
    return type(error).__name__


def keep_alive_client(port: int, load: Load, method: str, who: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    while not load.stop.is_set():
        try:
            if method == "POST":
                conn.request("POST", "/", body=FORM, headers=headers)
            else:
                conn.request("GET", "/")
            response = conn.getresponse()
            load.answered(response.status, response.read(), who)
        except (OSError, http.client.HTTPException) as error:
            load.failed_one(who, _error(error))
            conn.close()
        load.stop.wait(PAUSE)
    conn.close()


def close_client(port: int, load: Load, who: str) -> None:
    while not load.stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            response = conn.getresponse()
            load.answered(response.status, response.read(), who)
        except (OSError, http.client.HTTPException) as error:
            load.failed_one(who, _error(error))
        finally:
            conn.close()
        load.stop.wait(PAUSE)


def _read_response(stream: t.IO[bytes]) -> tuple[int, bytes, bool]:
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length: int | None = None
    closes = chunked = False
    while True:
        line = stream.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            closes = "close" in value.lower()
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
    if chunked:
        body = b""
        while True:
            size = int(stream.readline().split(b";")[0], 16)
            if not size:
                while stream.readline() not in (b"\r\n", b""):
                    pass  # trailer fields, then the blank line
                return status, body, closes
            body += stream.read(size + 2)[:size]
    return status, stream.read(length or 0), closes


def pipelined_client(port: int, load: Load, who: str, depth: int = 3) -> None:
    post = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-" + (
        b"urlencoded\r\nContent-Length: %d\r\n\r\n%s" % (len(FORM), FORM)
    )
    get = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    batch = [post if number % 2 else get for number in range(depth)]
    sock: socket.socket | None = None
    stream: t.IO[bytes] | None = None
    while not load.stop.is_set():
        todo = list(batch)
        while todo:
            keep = False
            try:
                if sock is None or stream is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                    stream = sock.makefile("rb")
                sock.sendall(b"".join(todo))
                closes = False
                while todo and not closes:
                    status, body, closes = _read_response(stream)
                    todo.pop(0)
                    load.answered(status, body, who)
                # A server that announced its close processed nothing after
                # that answer: the rest is sent again on a new connection.
                keep = not closes
            except (OSError, ValueError, IndexError) as error:
                load.failed_one(who, _error(error), len(todo))
                todo = []
            if not keep and sock is not None and stream is not None:
                stream.close()
                sock.close()
                sock = stream = None
        load.stop.wait(PAUSE)
    if sock is not None and stream is not None:
        stream.close()
        sock.close()


def _get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode("latin-1").strip()
    finally:
        conn.close()


def measure(kind: ServerKind, port: int, reloads: int) -> dict[str, t.Any]:
    """Run ``kind`` on the hello app under the load, rewriting it ``reloads``
    times, ``INTERVAL`` apart."""
    top = Path(tempfile.mkdtemp(prefix=f"citus-bench-keepalive-{kind.name}-"))
    folder = top / "project"
    folder.mkdir()
    app = folder / "app.py"
    app.write_text(kind.template.format(heavy="", message="m0"))
    from reload import WERKZEUG_RUN

    (folder / "werkzeug_run.py").write_text(WERKZEUG_RUN)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", NO_COLOR="1")
    env.pop("CITUS_RUN_MAIN", None)
    result: dict[str, t.Any] = {"server": kind.name, "load": "keep-alive"}
    log_path = top / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        kind.command(port),
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    load = Load()
    threads: list[threading.Thread] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if _get(port)[0] == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                result["error"] = "did not start"
                return result
            time.sleep(0.01)
        time.sleep(1.0)  # let reloaders finish setting up their watches
        threads = [
            *(
                threading.Thread(
                    target=keep_alive_client,
                    args=(port, load, "POST", "keep-alive POST"),
                )
                for _ in range(4)
            ),
            threading.Thread(
                target=keep_alive_client, args=(port, load, "GET", "keep-alive GET")
            ),
            threading.Thread(target=close_client, args=(port, load, "close")),
            threading.Thread(target=pipelined_client, args=(port, load, "pipelined")),
        ]
        for thread in threads:
            thread.start()
        writes = served = misses = 0
        for number in range(1, reloads + 1):
            if misses >= 2:
                break  # this server does not reload: stop saving
            written = time.monotonic()
            message = f"m{number}"
            app.write_text(kind.template.format(heavy="", message=message))
            writes += 1
            # The next save once this one is served (a reload per save), and
            # not sooner than INTERVAL after it.
            while time.monotonic() < written + 10:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if _get(port) == (200, message):
                        served += 1
                        break
                time.sleep(0.005)
            else:
                misses += 1
            time.sleep(max(written + INTERVAL - time.monotonic(), 0.0))
        time.sleep(0.5)  # after the last reload, under load too
        load.stop.set()
        for thread in threads:
            thread.join(15)
        result["writes"] = writes
        result["writes_served"] = served
        result["versions_served"] = len(load.messages)
        result["requests"] = load.requests
        result["failed_requests"] = load.failed
        result["errors"] = load.errors
        if kind.name.startswith("citus"):
            text = log_path.read_text(errors="replace")
            result["reloads"] = len(re.findall(r"Reloaded in", text))
        return result
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(15)
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


def table(results: list[dict[str, t.Any]]) -> list[str]:
    """The Markdown table of ``results``."""
    lines = [
        "| server | saves served | failed / requests | failures by client |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['server']} | {r['error']} | | |")
            continue
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items()))
        lines.append(
            f"| {r['server']} | {r['writes_served']} / {r['writes']}"
            f" | {r['failed_requests']} / {r['requests']} | {errors or '-'} |"
        )
    return lines


def main(
    servers: list[ServerKind],
    names: set[str] | None,
    writes: int,
    json_path: str | None,
) -> None:
    """Measure each of ``servers`` (those in ``names``, or all) and print the
    results, then the table."""
    import json

    from reload import BIN, free_port

    results = []
    for kind in servers:
        if names is not None and kind.name not in names:
            continue
        if not (BIN / kind.needs).exists():
            print(f"skip {kind.name}: {kind.needs} is not installed", flush=True)
            continue
        result = measure(kind, free_port(), writes)
        results.append(result)
        print(json.dumps(result), flush=True)
    print()
    print("\n".join(table(results)))
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))
