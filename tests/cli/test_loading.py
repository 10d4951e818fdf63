"""Lazy or eager loading under the reloader, through a real ``citus run``.

An app broken at start fails at once (unless ``--lazy-loading``); an app broken
by an edit keeps the server up and every request shows the error until the fix
is saved (unless ``--eager-loading``). The banner is printed once, by the
supervisor, never again by the children it restarts.
"""

from __future__ import annotations

import http.client
import json
import os
import textwrap
import time
import typing as t
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.live_server

READY = r"^Press CTRL\+C to quit$"
RELOAD = ("run", "--port", "0", "--debug")

GOOD = """
    from citus import API

    app = API(__name__)

    @app.route("/")
    def index():
        return "version {n}"
"""
BROKEN = """
    from citus import API

    app = API(__name__)
    raise RuntimeError("broken by an edit {n}")
"""
EXITING = """
    import sys

    from citus import API

    app = API(__name__)
    sys.exit("no DATABASE_URL {n}")
"""


def save(path: Path, source: str, n: int) -> None:
    """Write ``source`` and move its mtime forward, as an editor's save does."""
    path.write_text(textwrap.dedent(source.format(n=n)).lstrip(), encoding="utf-8")
    stamp = time.time() + n
    os.utime(path, (stamp, stamp))


def get(url: str, accept: str = "text/plain") -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Accept": accept})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def poll(
    url: str, expected: t.Callable[[int, bytes], bool], timeout: float = 20
) -> None:
    """Request ``url`` until the answer is ``expected``, up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    answer: tuple[int, bytes] | None = None
    while time.monotonic() < deadline:
        try:
            answer = get(url)
        except OSError:
            answer = None
        if answer is not None and expected(*answer):
            return
        time.sleep(0.1)
    raise AssertionError(f"no expected answer from {url} in {timeout}s: {answer}")


def test_reload_keeps_serving_through_a_broken_edit(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    app = tmp_path / "hello.py"
    save(app, GOOD, 1)
    with run_citus("--app", "hello", *RELOAD, "--reloader-type", "stat") as proc:
        url = proc.wait_for_url()
        proc.wait_for_log("Restarting with")
        poll(url, lambda status, body: body == b"version 1")
        save(app, BROKEN, 2)
        poll(url, lambda status, body: status == 500 and b"broken by an edit 2" in body)
        status, body = get(url)  # again: the error stays until the fix
        assert status == 500 and b"hello.py" in body
        assert b"broken by an edit 2" in body
        save(app, GOOD, 3)
        poll(url, lambda status, body: body == b"version 3")
        proc.interrupt()
        assert proc.wait() == 0
    text = proc.log.text
    assert text.count(" * Serving citus app 'hello'") == 1
    assert text.count(" * Debug mode: on") == 1
    assert "every request shows the error until the fix is saved" in text


def test_error_at_start_fails_at_once(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    save(tmp_path / "hello.py", BROKEN, 1)
    with run_citus("--app", "hello", *RELOAD) as proc:
        assert proc.wait() == 1
    assert proc.log.text.count("RuntimeError: broken by an edit 1") == 1
    assert 'hello.py", line 4, in <module>' in proc.log.text


def test_lazy_loading_serves_an_error_at_start(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    app = tmp_path / "hello.py"
    save(app, BROKEN, 1)
    args = ("--app", "hello", *RELOAD, "--lazy-loading", "--reloader-type", "stat")
    with run_citus(*args) as proc:
        url = proc.wait_for_url()
        poll(url, lambda status, body: status == 500 and b"broken by an edit 1" in body)
        save(app, GOOD, 2)
        poll(url, lambda status, body: body == b"version 2")


def test_the_message_says_what_requests_get(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    """With the debugger, each request shows the error; without it, the
    message says they get a 500 and where the error is."""
    save(tmp_path / "hello.py", BROKEN, 1)
    args = ("--app", "hello", *RELOAD, "--lazy-loading", "--reloader-type", "stat")
    with run_citus(*args) as proc:
        proc.wait_for_log(r"failed to load")
    assert (
        " * The app failed to load; the server is up and every request shows the"
        " error until the fix is saved."
    ) in proc.log.lines
    with run_citus(*args, "--no-debugger") as proc:
        url = proc.wait_for_url()
        poll(url, lambda status, body: status == 500)
    assert (
        " * The app failed to load; the server is up and every request fails with"
        " a 500 (the debugger is off; the error is above) until the fix is saved."
    ) in proc.log.lines


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (BROKEN, "RuntimeError: broken by an edit 2"),
        (EXITING, "SystemExit: no DATABASE_URL 2"),
    ],
    ids=["exception", "sys-exit"],
)
def test_eager_loading_fails_even_on_reload(
    run_citus: t.Callable[..., t.Any], tmp_path: Path, source: str, error: str
) -> None:
    app = tmp_path / "hello.py"
    save(app, GOOD, 1)
    args = ("--app", "hello", *RELOAD, "--eager-loading", "--reloader-type", "stat")
    with run_citus(*args) as proc:
        url = proc.wait_for_url()
        poll(url, lambda status, body: body == b"version 1")
        save(app, source, 2)
        assert proc.wait() == 1
    assert error in proc.log.text


def test_wrong_app_under_the_reloader_is_a_usage_error(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    save(tmp_path / "hello.py", GOOD, 1)
    with run_citus("--app", "hello:nope", *RELOAD) as proc:
        assert proc.wait() == 2
    # Last, after the supervisor's lines (a forked first child's words wait
    # for " * Restarting with").
    assert proc.log.lines[-1] == (
        "Error: Module 'hello' has no attribute 'nope'. It defines: app."
        " Use 'hello:NAME' with the name of the application."
    )
    assert "Traceback" not in proc.log.text
    # A module that does not exist is caught before any child starts.
    with run_citus("--app", "nothere", *RELOAD) as proc:
        assert proc.wait() == 2
    assert "Running on" not in proc.log.text
    assert proc.log.lines[-1].startswith("Error: Could not import 'nothere'")


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (":app", "Error: The app reference names no module before the colon."),
        ("my app", "Error: Could not import 'my app': 'my app' is not a module"),
        ("hello:create_app(x)", "Error: The arguments in 'create_app(x)' are not"),
        ("hello:1bad", "Error: Could not read '1bad' in 'hello:1bad'"),
    ],
)
def test_a_malformed_app_is_refused_before_the_reloader_starts(
    run_citus: t.Callable[..., t.Any], tmp_path: Path, reference: str, message: str
) -> None:
    """What can be told without running the app's code is told at once: no
    banner, no server, no child."""
    save(tmp_path / "hello.py", GOOD, 1)
    with run_citus("--app", reference, *RELOAD) as proc:
        assert proc.wait() == 2
    assert proc.log.lines[-1].startswith(message)
    assert "Serving citus app" not in proc.log.text
    assert "Running on" not in proc.log.text


def get_json(url: str) -> tuple[int, t.Any]:
    status, body = get(url, accept="application/json")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None  # not the debugger's answer (the crash page's text)


def poll_json(url: str, expected: t.Callable[[int, t.Any], bool]) -> t.Any:
    """Request ``url`` as JSON until ``expected``; return the document."""
    deadline = time.monotonic() + 20
    answer: tuple[int, t.Any] | None = None
    while time.monotonic() < deadline:
        try:
            answer = get_json(url)
        except OSError:
            answer = None
        if answer is not None and expected(*answer):
            return answer[1]
        time.sleep(0.1)
    raise AssertionError(f"no expected answer from {url} in 20s: {answer}")


def shows_sys_exit(status: int, doc: t.Any) -> bool:
    """The debugger's JSON for ``sys.exit()`` at import, not the crash page."""
    if status != 500 or not isinstance(doc, dict) or "chain" not in doc:
        return False
    types = [block["type"] for block in doc["chain"]]
    return "SystemExit" in types


@pytest.mark.parametrize("mode", ["--debug", "--no-reload"])
def test_sys_exit_at_start_fails_at_once_with_the_traceback(
    run_citus: t.Callable[..., t.Any], tmp_path: Path, mode: str
) -> None:
    """``sys.exit("...")`` at import is an import error like any other: the
    same exit status and a traceback into the user's file, not a crash page
    (under the reloader) nor a bare message."""
    save(tmp_path / "hello.py", EXITING, 1)
    with run_citus("--app", "hello", "run", "--port", "0", mode) as proc:
        assert proc.wait() == 1
    text = proc.log.text
    assert 'hello.py", line 6, in <module>' in text
    assert text.count("SystemExit: no DATABASE_URL 1") == 1
    assert "The server process stopped" not in text


def test_sys_exit_0_at_start_is_not_a_clean_exit(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    (tmp_path / "hello.py").write_text("import sys\nsys.exit(0)\n", encoding="utf-8")
    with run_citus("--app", "hello", "run", "--port", "0", "--no-reload") as proc:
        assert proc.wait() == 1
    assert 'hello.py", line 2, in <module>' in proc.log.text
    assert "SystemExit: 0" in proc.log.text
    assert "Running on" not in proc.log.text


def test_sys_exit_after_a_reload_shows_the_error_page(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    app = tmp_path / "hello.py"
    save(app, GOOD, 1)
    with run_citus("--app", "hello", *RELOAD, "--reloader-type", "stat") as proc:
        url = proc.wait_for_url()
        poll(url, lambda status, body: body == b"version 1")
        save(app, EXITING, 2)
        doc = poll_json(url, shows_sys_exit)
        cause = doc["chain"][0]
        assert cause["message"] == "no DATABASE_URL 2"
        assert cause["frames"][0]["file"] == str(app)
        assert cause["frames"][0]["line"] == 6
        save(app, GOOD, 3)
        poll(url, lambda status, body: body == b"version 3")
        proc.interrupt()
        assert proc.wait() == 0
    assert "The server process stopped" not in proc.log.text


def test_lazy_loading_serves_sys_exit_at_start(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    app = tmp_path / "hello.py"
    save(app, EXITING, 1)
    args = ("--app", "hello", *RELOAD, "--lazy-loading", "--reloader-type", "stat")
    with run_citus(*args) as proc:
        url = proc.wait_for_url()
        doc = poll_json(url, shows_sys_exit)
        assert doc["error"]["message"].endswith("no DATABASE_URL 1")
        status, body = get(url)  # curl: the text starts in the user's file
        assert status == 500
        assert body.startswith(b'Traceback (most recent call last):\n  File "')
        assert body.splitlines()[1].endswith(b'hello.py", line 6, in <module>')
        save(app, GOOD, 2)
        poll(url, lambda status, body: body == b"version 2")


def test_a_base_exception_of_the_users_is_an_import_error_too(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    """Not only SystemExit: any BaseException but Ctrl+C's is shown, and the
    server (which catches only Exception from apps) answers a 500."""
    app = tmp_path / "hello.py"
    source = """
        class Stop(BaseException):
            pass

        raise Stop("odd {n}")
    """
    save(app, source, 1)
    args = ("--app", "hello", *RELOAD, "--lazy-loading", "--reloader-type", "stat")
    with run_citus(*args) as proc:
        url = proc.wait_for_url()
        doc = poll_json(url, lambda status, doc: status == 500 and doc is not None)
        assert [b["type"] for b in doc["chain"]][0] == "hello.Stop"
        assert doc["chain"][0]["frames"][0]["file"] == str(app)
    with run_citus("--app", "hello", "run", "--port", "0", "--no-reload") as proc:
        assert proc.wait() == 1
    assert "hello.Stop: odd 1" in proc.log.text


def test_keyboard_interrupt_at_import_stays_a_quiet_stop(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    (tmp_path / "hello.py").write_text("raise KeyboardInterrupt\n", encoding="utf-8")
    with run_citus("--app", "hello", "run", "--port", "0", "--no-reload") as proc:
        assert proc.wait() == 0
    assert "Traceback" not in proc.log.text
    assert "KeyboardInterrupt" not in proc.log.text


@pytest.mark.parametrize("command", ["routes", "shell"])
def test_routes_and_shell_show_sys_exit_at_import(
    run_citus: t.Callable[..., t.Any], tmp_path: Path, command: str
) -> None:
    save(tmp_path / "hello.py", EXITING, 1)
    with run_citus("--app", "hello", command) as proc:
        assert proc.wait() == 1
    assert 'hello.py", line 6, in <module>' in proc.log.text
    assert proc.log.lines[-1] == "SystemExit: no DATABASE_URL 1"
