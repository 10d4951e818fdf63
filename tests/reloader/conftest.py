"""Helpers for the reloader's tests: app scripts on disk, HTTP probes, PIDs.

The apps are small WSGI scripts written into ``tmp_path`` and run with
``run_simple(..., use_reloader=True)`` (or ``citus run``). Each answers with
its message and the PID of the process that served it, so a test can tell
which child answered. citus's own source folder is excluded from watching so
that other people editing citus do not restart the servers under test.
"""

from __future__ import annotations

import http.client
import os
import sys
import time
import typing as t
from pathlib import Path

import pytest

import citus

BACKEND_NAMES = ["stat", "watchdog"]
CITUS_SRC = os.path.dirname(os.path.abspath(citus.__file__))

APP_TEMPLATE = """\
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
{imports}
from citus.serving import run_simple

MESSAGE = {message!r}


def app(environ, start_response):
    body = ("%s pid=%d" % ({expression}, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    run_simple(
        "127.0.0.1",
        0,
        app,
        use_reloader=True,
        reloader_type={backend!r},
        reloader_interval=0.1,
        extra_files={extra_files!r},
        exclude_patterns={exclude!r},
        threaded={threaded!r},
        use_debugger={debugger!r},
    )
"""


def app_source(
    message: str,
    backend: str,
    *,
    imports: str = "",
    expression: str = "MESSAGE",
    extra_files: list[str] | None = None,
    exclude: list[str] | None = None,
    threaded: bool = False,
    debugger: bool = False,
) -> str:
    """The source of an app script (see :data:`APP_TEMPLATE`)."""
    return APP_TEMPLATE.format(
        imports=imports,
        message=message,
        expression=expression,
        backend=backend,
        extra_files=extra_files or [],
        exclude=[CITUS_SRC + os.sep + "*", *(exclude or [])],
        threaded=threaded,
        debugger=debugger,
    )


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, making sure the (size, mtime) stamp moves.

    Two writes within one tick of the file system's clock can leave the same
    mtime; then the mtime is set one millisecond later with ``os.utime``.
    """
    before = os.stat(path) if path.exists() else None
    path.write_text(text)
    after = os.stat(path)
    if before is not None and (before.st_size, before.st_mtime_ns) == (
        after.st_size,
        after.st_mtime_ns,
    ):
        ns = after.st_mtime_ns + 1_000_000
        os.utime(path, ns=(ns, ns))


def get(url: str, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
    """One GET over a new connection: ``(status, body)``. Errors propagate."""
    host_port = url.split("://", 1)[1]
    host, _, port = host_port.rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def wait_for_body(
    url: str, predicate: t.Callable[[int, str], bool], timeout: float = 15.0
) -> tuple[int, str]:
    """Poll ``url`` until ``predicate(status, body)`` holds; fail past ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = get(url)
        except OSError as error:
            last = error
        else:
            if predicate(*last):
                return last
        time.sleep(0.02)
    raise AssertionError(f"{url} never answered as expected; last answer: {last!r}")


def pid_of(body: str) -> int:
    """The PID in an app's answer (``... pid=123``)."""
    return int(body.rsplit("pid=", 1)[1])


def pid_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie counts as gone)."""
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat") as file:
                return file.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def spare_children(parent: int) -> list[int]:
    """The supervisor's children that wait as spares (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                ppid = int(file.read().rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            with open(f"/proc/{entry}/environ", "rb") as file:
                if b"CITUS_RELOADER_SPARE=1\0" in file.read():
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def wait_until(condition: t.Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


#: A citus app (``hello.py``) whose page is its message.
CITUS_HELLO = """\
from citus import API

app = API(__name__)


@app.route("/")
def hello():
    return {message!r}
"""


def run_debug(
    run_citus: t.Callable[..., t.Any],
    backend: str | None = None,
    *more: str,
    group: t.Sequence[str] = (),
    app: str = "hello",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[t.Any, str]:
    """``citus [GROUP] --app APP run --debug [MORE]`` on port 0 with
    ``backend`` (``None``: the default one), citus's own source not watched;
    the process and its URL."""
    backend_option = ("--reloader-type", backend) if backend else ()
    proc = run_citus(
        *group,
        "--app",
        app,
        "run",
        "--debug",
        "--port",
        "0",
        *backend_option,
        "--exclude-patterns",
        CITUS_SRC + os.sep + "*",
        *more,
        env=env,
        cwd=cwd,
    )
    return proc, proc.wait_for_url()


def count(lines: list[str], text: str) -> int:
    """How many of ``lines`` contain ``text``."""
    return sum(text in line for line in list(lines))


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> str:
    """Each reloader backend in turn."""
    name: str = request.param
    return name
