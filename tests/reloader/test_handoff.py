"""Kept-alive connections survive reloads: ``citus run --debug`` under load.

Clients keep connections open (GET and POST, as browsers and python-requests
sessions do), open one per request (``Connection: close``) and pipeline
several requests at once, while the app's file is rewritten every 250 ms. No
request may fail, and every request sent after the test read " * Reloaded"
(so read by the server after it was printed) must be answered by the new code.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest

from .conftest import CITUS_SRC, pid_gone, run_debug, wait_for_body, write

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

pytestmark = [
    pytest.mark.live_server,
    pytest.mark.skipif(
        sys.platform == "win32", reason="Windows closes idle connections at reload"
    ),
]

APP = """\
import os
import time

VERSION = {version}


def app(environ, start_response):
    if environ["PATH_INFO"] == "/long":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return slow()
    if environ["PATH_INFO"] == "/held":  # answers once this process reloads
        from citus.reloader import child

        deadline = time.monotonic() + 10
        while not child._reloading.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
    size = int(environ.get("CONTENT_LENGTH") or 0)
    form = environ["wsgi.input"].read(size) if size else b""
    body = ("v%d %s %d pid=%d" % (
        VERSION, environ["REQUEST_METHOD"], len(form), os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def slow():
    for _ in range(300):
        yield b"." * 64
        time.sleep(0.05)
"""

FORM = b"name=citus&message=hello+world&n=42"


class Load:
    """What the clients saw: answers by send time, and failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        #: (monotonic time the request was sent, version that answered, client)
        self.answers: list[tuple[float, int, str]] = []
        self.failures: list[str] = []

    def answered(self, sent: float, body: bytes, who: str) -> None:
        text = body.decode("latin-1")
        if not text.startswith("v"):
            self.failed(who, f"unexpected body {text!r}")
            return
        with self.lock:
            self.answers.append((sent, int(text[1:].split()[0]), who))

    def failed(self, who: str, why: str) -> None:
        with self.lock:
            self.failures.append(f"{who}: {why}")


def keep_alive_client(port: int, load: Load, method: str, who: str) -> None:
    """One kept-alive connection, reopened only after a failure (counted)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    while not load.stop.is_set():
        sent = time.monotonic()
        try:
            if method == "POST":
                conn.request("POST", "/form", body=FORM, headers=headers)
            else:
                conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                load.failed(who, f"status {response.status}")
            else:
                load.answered(sent, body, who)
            if response.will_close:
                load.failed(who, "the server closed a kept-alive connection")
                conn.close()
        except (OSError, http.client.HTTPException) as error:
            load.failed(who, f"{type(error).__name__}: {error}")
            conn.close()
        load.stop.wait(0.003)
    conn.close()


def close_client(port: int, load: Load, who: str) -> None:
    """A new connection for each request, ``Connection: close``."""
    while not load.stop.is_set():
        sent = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            response = conn.getresponse()
            load.answered(sent, response.read(), who)
        except (OSError, http.client.HTTPException) as error:
            load.failed(who, f"{type(error).__name__}: {error}")
        finally:
            conn.close()
        load.stop.wait(0.003)


def read_response(stream: t.IO[bytes]) -> tuple[int, bytes, bool]:
    """One response from ``stream``: (status, body, whether it closes)."""
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    closes = False
    while True:
        line = stream.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "connection":
            closes = "close" in value.lower()
    return status, stream.read(length), closes


def pipelined_client(port: int, load: Load, who: str, depth: int = 3) -> None:
    """Sends ``depth`` requests (GET and POST) at once, then reads the answers."""
    batch = b"".join(
        b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: application/"
        b"x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s" % (len(FORM), FORM)
        if number % 2
        else b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        for number in range(depth)
    )
    sock: socket.socket | None = None
    stream: t.IO[bytes] | None = None
    while not load.stop.is_set():
        sent = time.monotonic()
        answered = 0
        try:
            if sock is None or stream is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                stream = sock.makefile("rb")
            sock.sendall(batch)
            for _ in range(depth):
                status, body, closes = read_response(stream)
                answered += 1
                if status != 200:
                    load.failed(who, f"status {status}")
                else:
                    load.answered(sent, body, who)
                if closes and answered < depth:
                    raise ConnectionError("closed with pipelined requests unanswered")
        except (OSError, ValueError, IndexError) as error:
            load.failed(who, f"{depth - answered} unanswered: {error}")
            if stream is not None:
                stream.close()
            if sock is not None:
                sock.close()
            sock = stream = None
        load.stop.wait(0.003)
    if sock is not None and stream is not None:
        stream.close()
        sock.close()


def reload_under_load(
    proc: CitusProcess, app: Path, port: int, reloads: int, interval: float = 0.25
) -> tuple[Load, list[float]]:
    """Rewrite ``app`` ``reloads`` times under the clients' load: each time once
    the previous version's " * Reloaded" is printed, ``interval`` seconds
    after the previous write at the soonest. With ``interval=0``, every
    ``0.1`` s without waiting: saves come faster than reloads.

    Returns what the clients saw, and when the test read each " * Reloaded"
    (index N-1 for version N; empty without waiting).
    """
    load = Load()
    clients = [
        *(
            threading.Thread(
                target=keep_alive_client, args=(port, load, "POST", f"post{i}")
            )
            for i in range(4)
        ),
        threading.Thread(target=keep_alive_client, args=(port, load, "GET", "get")),
        threading.Thread(target=close_client, args=(port, load, "close")),
        threading.Thread(target=pipelined_client, args=(port, load, "pipelined")),
    ]
    for thread in clients:
        thread.start()
    seen: list[float] = []
    cursor = len(proc.log.lines)
    try:
        for version in range(1, reloads + 1):
            written = time.monotonic()
            write(app, APP.format(version=version))
            deadline = written + 15
            while interval:
                lines = proc.log.lines
                hit = next(
                    (i for i in range(cursor, len(lines)) if "Reloaded in" in lines[i]),
                    None,
                )
                if hit is not None:
                    seen.append(time.monotonic())
                    cursor = hit + 1
                    break
                assert time.monotonic() < deadline, (
                    f"no reload {version}:\n{proc.log.text}"
                )
                assert proc.proc.poll() is None, proc.log.text
                time.sleep(0.002)
            time.sleep(max(0.0, written + (interval or 0.1) - time.monotonic()))
        deadline = time.monotonic() + 15
        while not any(answer[1] == reloads for answer in list(load.answers)):
            assert time.monotonic() < deadline, f"v{reloads} never served"
            time.sleep(0.01)
        time.sleep(0.3)  # requests on the last generation
    finally:
        load.stop.set()
        for thread in clients:
            thread.join(15)
    return load, seen


def start(
    run_citus: Runner, tmp_path: Path, *options: str
) -> tuple[CitusProcess, Path, int]:
    app = tmp_path / "hello.py"
    write(app, APP.format(version=0))
    proc, url = run_debug(run_citus, None, "--host", "127.0.0.1", *options)
    wait_for_body(url, lambda status, body: body.startswith("v0"))
    return proc, app, int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("option", "reloads"), [("--with-threads", 20), ("--without-threads", 10)]
)
def test_no_request_fails_and_new_requests_get_new_code(
    run_citus: Runner, tmp_path: Path, option: str, reloads: int
) -> None:
    proc, app, port = start(run_citus, tmp_path, option)
    # HANDOFF_RELOADS=100 for the full run.
    reloads = int(os.environ.get("HANDOFF_RELOADS", reloads))
    load, seen = reload_under_load(proc, app, port, reloads)

    assert load.failures == [], f"{len(load.failures)} failed: {load.failures[:10]}"
    kinds = {who.rstrip("0123456789") for _, _, who in load.answers}
    assert kinds == {"post", "get", "close", "pipelined"}
    assert len(load.answers) > 200  # the load really ran
    stale = []
    for sent, version, who in load.answers:
        # The newest version announced before the request was sent.
        due = sum(1 for at in seen if at < sent)
        if version < due:
            stale.append((who, version, due))
    assert stale == [], f"answered by old code after ' * Reloaded': {stale[:10]}"


SCRIPT = """
if __name__ == "__main__":
    from citus.serving import run_simple

    run_simple("127.0.0.1", 0, app, use_reloader=True, threaded=True,
               exclude_patterns=[{exclude!r}])
"""


def test_a_script_under_run_simple_keeps_its_connections_too(
    run_python: Runner, tmp_path: Path
) -> None:
    # No spare child here: each reload starts a new process.
    app = tmp_path / "hello.py"
    script = SCRIPT.format(exclude=CITUS_SRC + os.sep + "*")
    write(app, APP.format(version=0) + script)
    proc = run_python("hello.py")
    url = proc.wait_for_url()
    wait_for_body(url, lambda status, body: body.startswith("v0"))
    port = int(url.rsplit(":", 1)[1])
    load = Load()
    clients = [
        threading.Thread(target=keep_alive_client, args=(port, load, "POST", "post")),
        threading.Thread(target=pipelined_client, args=(port, load, "pipelined")),
    ]
    for thread in clients:
        thread.start()
    try:
        for version in range(1, 6):
            mark = len(proc.log.lines)
            write(app, APP.format(version=version) + script)
            proc.wait_for_log(r"Reloaded in", start=mark)
        wait_for_body(url, lambda status, body: body.startswith("v5 "))
    finally:
        load.stop.set()
        for thread in clients:
            thread.join(15)
    assert load.failures == [], f"{len(load.failures)} failed: {load.failures[:10]}"
    assert {version for _, version, _ in load.answers} >= {0, 5}


def test_saves_faster_than_reloads_fail_no_request(
    run_citus: Runner, tmp_path: Path
) -> None:
    # A child that sees a change as it starts stops at once: the connections
    # handed to it move on again.
    proc, app, port = start(run_citus, tmp_path)
    load, _ = reload_under_load(proc, app, port, reloads=15, interval=0)
    assert load.failures == [], f"{len(load.failures)} failed: {load.failures[:10]}"
    kinds = {who.rstrip("0123456789") for _, _, who in load.answers}
    assert kinds == {"post", "get", "close", "pipelined"}


def test_a_long_response_still_ends_within_the_grace_period(
    run_citus: Runner, tmp_path: Path
) -> None:
    proc, app, port = start(run_citus, tmp_path)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with contextlib.closing(conn), contextlib.closing(idle):
        check_long_response(proc, app, conn, idle)


def check_long_response(
    proc: CitusProcess,
    app: Path,
    conn: http.client.HTTPConnection,
    idle: http.client.HTTPConnection,
) -> None:
    conn.request("GET", "/long")
    response = conn.getresponse()
    assert response.read(64) == b"." * 64
    idle.request("GET", "/")
    old_pid = int(idle.getresponse().read().decode().rsplit("pid=", 1)[1])

    write(app, APP.format(version=1))
    proc.wait_for_log(r"Reloaded in")
    started = time.monotonic()
    # The stream is cut when the old child's grace period (1 s) ends.
    with pytest.raises((http.client.IncompleteRead, OSError)):
        while True:
            if not response.read(4096):
                raise ConnectionError("ended")
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 10
    while not pid_gone(old_pid):
        assert time.monotonic() < deadline, "the old child outlived its grace period"
        time.sleep(0.02)
    # The idle kept-alive connection moved on to the new code.
    idle.request("GET", "/")
    assert idle.getresponse().read().decode().startswith("v1 GET")


def test_a_connection_busy_at_the_reload_moves_on_after_its_answer(
    run_citus: Runner, tmp_path: Path
) -> None:
    proc, app, port = start(run_citus, tmp_path)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with contextlib.closing(conn):
        conn.request("GET", "/held")
        write(app, APP.format(version=1))
        response = conn.getresponse()
        # The old code answers the request it was serving when its reload
        # began (within the grace period, however slow the next child is to
        # start), and keeps the connection open for the next one, which the
        # new code answers once " * Reloaded" is printed (a request sent in
        # between may still meet the old code: the target speaks of requests
        # read after that line).
        assert response.read().decode().startswith("v0 GET")
        assert not response.will_close
        proc.wait_for_log(r"Reloaded in")
        conn.request("POST", "/form", body=FORM)
        assert conn.getresponse().read().decode().startswith("v1 POST 35")
