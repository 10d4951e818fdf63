"""The debugger's page for an app that failed to load, under a real ``citus run``.

With ``--lazy-loading`` (as after a broken reload) every request re-raises the
import error. What the page shows starts in the user's files, in every format,
and it is shown only to requests the debugger trusts in full
(``DebuggedApplication.trusts_request``: a trusted ``Host`` and a same-origin
``Origin`` / ``Sec-Fetch-Site``), the rule of the reloader's page for a server
that is down.
"""

from __future__ import annotations

import http.client
import json
import textwrap
import time
import typing as t
from pathlib import Path

import pytest

from .conftest import BROWSER_ACCEPT

if t.TYPE_CHECKING:
    from conftest import CitusProcess

pytestmark = pytest.mark.live_server

HELLO = """
    import helper
    from citus import API

    app = API(__name__)
"""
HELPER = """
    def connect():
        raise RuntimeError("broken helper")

    connect()
"""
SYNTAX = """
    from citus import API

    def index(:
        return "hi"
"""
LAZY = ("--app", "hello", "run", "--port", "0", "--debug", "--lazy-loading")


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return path


def fetch(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET / with exactly these headers (``Host`` included, when given)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start(
    run_citus: t.Callable[..., CitusProcess], env: dict[str, str] | None = None
) -> int:
    """Start ``citus run --lazy-loading``; the port once the error is served."""
    proc = run_citus(*LAZY, env={"CITUS_DEBUGGER_TRUSTED_HOSTS": "", **(env or {})})
    port = int(proc.wait_for_url().rsplit(":", 1)[1])
    proc.wait_for_log(r"The app failed to load")
    deadline = time.monotonic() + 20
    while True:
        try:
            status, _ = fetch(port, {"Host": f"localhost:{port}"})
        except OSError:
            status = 0
        if status == 500:
            return port
        assert time.monotonic() < deadline, f"no error page:\n{proc.log.text}"
        time.sleep(0.1)


def test_every_format_starts_in_the_users_files(
    run_citus: t.Callable[..., CitusProcess], tmp_path: Path
) -> None:
    hello = write(tmp_path, "hello.py", HELLO)
    helper = write(tmp_path, "helper.py", HELPER)
    port = start(run_citus)
    host = {"Host": f"localhost:{port}"}
    expected = [
        (str(hello), 1, "<module>"),
        (str(helper), 4, "<module>"),
        (str(helper), 2, "connect"),
    ]

    status, body = fetch(port, {**host, "Accept": "application/json"})
    assert status == 500
    doc = json.loads(body)
    frames = [(f["file"], f["line"], f["function"]) for f in doc["chain"][0]["frames"]]
    assert frames == expected
    assert doc["error"] == {"type": "RuntimeError", "message": "broken helper"}

    status, body = fetch(port, {**host, "Accept": "text/plain"})
    assert status == 500
    lines = body.decode().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1] == f'  File "{hello}", line 1, in <module>'
    assert f'  File "{helper}", line 2, in connect' in lines
    assert lines[-1] == "RuntimeError: broken helper"
    assert doc["traceback"] == body.decode()

    status, body = fetch(port, {**host, "Accept": BROWSER_ACCEPT})
    assert status == 500
    assert str(helper).encode() in body
    assert b"loader.py" not in body


def test_a_syntax_error_shows_only_its_place(
    run_citus: t.Callable[..., CitusProcess], tmp_path: Path
) -> None:
    hello = write(tmp_path, "hello.py", SYNTAX)
    port = start(run_citus)
    host = {"Host": f"localhost:{port}"}
    status, body = fetch(port, {**host, "Accept": "text/plain"})
    assert status == 500
    lines = body.decode().splitlines()
    assert lines[0] == f'  File "{hello}", line 3'
    assert lines[-1].startswith("SyntaxError: ")
    assert "citus" not in body.decode()
    status, body = fetch(port, {**host, "Accept": "application/json"})
    frames = json.loads(body)["chain"][0]["frames"]
    assert [(f["file"], f["line"]) for f in frames] == [(str(hello), 3)]


def test_only_trusted_same_origin_requests_see_it(
    run_citus: t.Callable[..., CitusProcess], tmp_path: Path
) -> None:
    """Exactly the debugger's rule, configured trusted hosts included: a page
    on another origin (a cross-site fetch, a DNS-rebound name) learns only
    that the app failed to load."""
    write(tmp_path, "hello.py", HELLO)
    write(tmp_path, "helper.py", HELPER)
    port = start(run_citus, {"CITUS_DEBUGGER_TRUSTED_HOSTS": "myapp.test"})
    local = f"localhost:{port}"
    shown = {
        "no Origin": {"Host": local},
        "same Origin": {"Host": local, "Origin": f"http://{local}"},
        "same-origin fetch": {"Host": local, "Sec-Fetch-Site": "same-origin"},
        "typed URL": {"Host": local, "Sec-Fetch-Site": "none"},
        "configured host": {
            "Host": f"myapp.test:{port}",
            "Origin": f"http://myapp.test:{port}",
        },
    }
    refused = {
        "cross-site Origin": {"Host": local, "Origin": "http://evil.example"},
        "null Origin": {"Host": local, "Origin": "null"},
        "other port": {"Host": local, "Origin": "http://localhost:9"},
        "other scheme": {"Host": local, "Origin": f"https://{local}"},
        "cross-site fetch": {"Host": local, "Sec-Fetch-Site": "cross-site"},
        "same-site fetch": {"Host": local, "Sec-Fetch-Site": "same-site"},
        "configured host, other Origin": {
            "Host": f"myapp.test:{port}",
            "Origin": f"http://other.test:{port}",
        },
    }
    for name, headers in shown.items():
        status, body = fetch(port, {**headers, "Accept": "text/plain"})
        assert status == 500, name
        assert b"RuntimeError: broken helper" in body, name
    for name, headers in refused.items():
        for accept in ("text/plain", "application/json", BROWSER_ACCEPT):
            status, body = fetch(port, {**headers, "Accept": accept})
            assert status == 500, name
            for leak in (b"broken helper", b"helper.py", b"hello.py", b"Traceback"):
                assert leak not in body, (name, accept)
            assert b"another origin" in body, (name, accept)
    # A foreign Host is refused as before, with its own reason.
    status, body = fetch(port, {"Host": "evil.example", "Accept": "text/plain"})
    assert status == 500
    assert b"broken helper" not in body
    assert b"trusted host" in body
