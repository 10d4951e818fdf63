"""The supervisor's page while the server process is down, tested as an attacker.

A real ``citus run`` serves an app that then crashes its process at import (an
edit that prints a secret and ends the process with ``os._exit``). The page must show
that error only in debug mode and only to requests the debugger trusts: a local
``Host`` (DNS rebinding sends the attacker's name), a same-origin ``Origin`` and
``Sec-Fetch-Site`` (a cross-site page). Requests are written byte by byte on raw
sockets so that every header is exactly what an attacker would send.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest

from citus.reloader.errorpage import ErrorPage, ErrorServer, parse_head

from .conftest import (
    CITUS_SRC,
    count,
    spare_children,
    wait_for_body,
    wait_until,
    write,
)

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

SECRET = "hunter2-7f3a"

GOOD = """\
from citus import API

app = API(__name__)


@app.route("/")
def hello():
    return "hello one"
"""

# The process dies at import (os._exit: not an exception the loader could
# catch, as sys.exit() would be): only the supervisor is left to answer, with
# the child's last words.
CRASHING = (
    GOOD
    + f"""
import os
import sys

sys.stderr.write("boom: the password is {SECRET}\\n")
sys.stderr.flush()
os._exit(1)
"""
)


def raw_request(
    url: str, headers: list[tuple[str, str]], method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    """Send exactly ``headers`` (Host included, or not); ``(status, headers, body)``."""
    host, _, port = url.split("://", 1)[1].rpartition(":")
    lines = [f"{method} / HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    status = int(head_lines[0].split()[1])
    found = {}
    for line in head_lines[1:]:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return status, found, body.decode("utf-8", "replace")


def start_then_crash(
    run_citus: Runner, tmp_path: Path, *flags: str
) -> tuple[t.Any, str]:
    app = tmp_path / "hello.py"
    write(app, GOOD)
    proc = run_citus(
        "--app",
        "hello",
        "run",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--reloader-type",
        "stat",
        "--exclude-patterns",
        CITUS_SRC + os.sep + "*",
        *flags,
    )
    url = proc.wait_for_url()
    wait_for_body(url, lambda s, b: b == "hello one")
    if sys.platform.startswith("linux"):
        # A warm spare waits (started before the edit): it will be the one
        # that crashes.
        wait_until(lambda: bool(spare_children(proc.pid)))
    write(app, CRASHING)
    proc.wait_for_log(r"The server process stopped \(exit status 1\)")
    return proc, url


@pytest.mark.live_server
def test_crash_page_shows_the_error_only_to_trusted_requests(
    run_citus: Runner, tmp_path: Path
) -> None:
    proc, url = start_then_crash(run_citus, tmp_path, "--debug")
    port = url.rsplit(":", 1)[1]
    local = f"localhost:{port}"

    # The developer's own browser and curl see the error.
    status, headers, body = raw_request(url, [("Host", local)])
    assert status == 500 and SECRET in body
    status, headers, body = raw_request(
        url,
        [
            ("Host", f"127.0.0.1:{port}"),
            ("Accept", "text/html"),
            ("Origin", f"http://127.0.0.1:{port}"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    )
    assert status == 500 and SECRET in body
    assert headers["content-type"].startswith("text/html")
    # A strict CSP; the page's only style carries the nonce that CSP names.
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce is not None
    assert re.findall(r"<style[^>]*>", body) == [f'<style nonce="{nonce.group(1)}">']
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"

    attacks = {
        "DNS rebinding": [
            ("Host", f"evil.example:{port}"),
            ("Origin", f"http://evil.example:{port}"),
            ("Sec-Fetch-Site", "same-origin"),
            ("Accept", "text/html"),
        ],
        "foreign Host, plain": [("Host", "evil.example")],
        "no Host": [],
        "two Hosts": [("Host", local), ("Host", "evil.example")],
        "cross-site Origin": [
            ("Host", local),
            ("Origin", "http://evil.example"),
            ("Accept", "text/html"),
        ],
        "null Origin": [("Host", local), ("Origin", "null")],
        "cross-site fetch": [("Host", local), ("Sec-Fetch-Site", "cross-site")],
        "same-site fetch": [("Host", local), ("Sec-Fetch-Site", "same-site")],
    }
    for name, attack in attacks.items():
        status, headers, body = raw_request(url, attack)
        assert status == 500, name
        assert SECRET not in body and "boom" not in body, name
        assert "hello.py" not in body and "exit status" not in body, name
        assert "failed to load" in body, name
        assert "content-security-policy" in headers, name

    # Logged like the server logs requests, with '-' for the size.
    proc.wait_for_log(
        r'^127\.0\.0\.1 - - \[[^\]]+\] "GET / HTTP/1\.1" 500 - [\d.]+ m?s$'
    )
    logged = [line for line in proc.log.lines if '" 500 ' in line]
    assert all(
        re.search(r'"GET / HTTP/1\.1" 500 - [\d.]+ m?s$', line) for line in logged
    ), logged

    # The fix is picked up; the crash itself caused no second restart (the
    # warm spare that crashed had been started long before the edit).
    write(tmp_path / "hello.py", GOOD.replace("hello one", "hello two"))
    wait_for_body(url, lambda s, b: b == "hello two")
    assert count(proc.log.lines, "Detected change in 'hello.py'") == 2, proc.log.text
    assert count(proc.log.lines, "The server process stopped") == 1, proc.log.text


@pytest.mark.live_server
def test_crash_page_without_the_debugger_reveals_nothing(
    run_citus: Runner, tmp_path: Path
) -> None:
    proc, url = start_then_crash(run_citus, tmp_path, "--reload", "--no-debugger")
    port = url.rsplit(":", 1)[1]
    for accept in ("*/*", "text/html"):
        status, headers, body = raw_request(
            url, [("Host", f"localhost:{port}"), ("Accept", accept)]
        )
        assert status == 500
        assert SECRET not in body and "boom" not in body and "exit status" not in body
        assert "failed to load" in body and "terminal" in body
        # Nothing about trusted hosts either: no host would see more.
        assert "TRUSTED_HOSTS" not in body
    assert SECRET in proc.log.text  # the terminal has it


def test_page_hides_the_output_when_the_check_fails_or_breaks() -> None:
    environ = {"HTTP_HOST": "localhost", "HTTP_ACCEPT": "text/html"}
    assert (
        SECRET
        in ErrorPage(SECRET, "exit status 1", lambda e: True)
        .render(environ)[1]
        .decode()
    )

    def broken(environ: dict[str, t.Any]) -> bool:
        raise RuntimeError("a bug in the check")

    for trust in (None, lambda e: False, broken):
        _, body, csp = ErrorPage(SECRET, "exit status 1", trust).render(environ)
        assert SECRET not in body.decode()
        assert csp and "default-src 'none'" in csp[0]


def test_parse_head_drops_a_repeated_header() -> None:
    parsed = parse_head(b"GET / HTTP/1.1\r\nHost: localhost\r\nhost: evil\r\n\r\n")
    assert parsed == ("GET / HTTP/1.1", {"host": ""})
    assert parse_head(b"") is None


@pytest.mark.live_server
def test_losing_the_accept_race_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    # Two accept loops on one shared non-blocking listener, as when another
    # process takes a connection first: the loser's accept raises
    # BlockingIOError, which must be skipped without a word or a dead thread.
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    port = listener.getsockname()[1]
    page = ErrorPage("", "exit status 1", None)
    servers = [ErrorServer([listener], page, None) for _ in range(2)]
    errors: list[BaseException] = []
    previous = threading.excepthook

    def record(args: threading.ExceptHookArgs) -> None:
        errors.append(args.exc_value or RuntimeError("?"))

    threading.excepthook = record
    try:
        for server in servers:
            server.start()
        deadline = time.monotonic() + 20
        for _ in range(40):
            status, _, body = raw_request(
                f"http://127.0.0.1:{port}", [("Host", "localhost")]
            )
            assert status == 500 and "failed to load" in body
            assert time.monotonic() < deadline
    finally:
        for server in servers:
            server.stop()
        threading.excepthook = previous
        listener.close()
    assert errors == []
    err = capfd.readouterr().err
    assert "BlockingIOError" not in err and "Traceback" not in err


@pytest.mark.live_server
@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
def test_unix_socket_clients_are_logged_as_the_server_logs_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="citus")
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    server = ErrorServer([listener], ErrorPage("", "exit status 1", None), None)
    server.start()
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 500 ")
    finally:
        server.stop()
        listener.close()
    lines = [record.getMessage() for record in caplog.records]
    assert any(
        re.fullmatch(
            r'127\.0\.0\.1 - - \[[^\]]+\] "GET /x HTTP/1\.1" 500 - [\d.]+ m?s', line
        )
        for line in lines
    ), lines


@pytest.mark.live_server
def test_a_client_trickling_its_head_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from citus.reloader import errorpage

    monkeypatch.setattr(errorpage, "HEAD_TIMEOUT", 0.5)
    listener = socket.create_server(("127.0.0.1", 0))
    server = ErrorServer([listener], ErrorPage("", "exit status 1", None), None)
    server.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"GET / HTTP/1.1\r\n")
            sock.settimeout(0.2)
            received = None
            while received is None and time.monotonic() - started < 8:
                try:
                    sock.sendall(b"X: y\r\n")  # a head that never ends
                    received = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    received = b""
            assert received == b""  # closed, unanswered
            assert time.monotonic() - started < 5
    finally:
        server.stop()
        listener.close()


def test_page_follows_the_debuggers_trusted_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citus.debug import DebuggedApplication

    monkeypatch.setenv("CITUS_DEBUGGER_STATE", str(tmp_path / "state.json"))
    monkeypatch.setenv("CITUS_DEBUGGER_TRUSTED_HOSTS", "myapp.test")
    debugger = DebuggedApplication(lambda environ, start_response: [])
    page = ErrorPage(SECRET, "exit status 1", debugger.trusts_request)

    def body(host: str, **more: str) -> str:
        environ = {"HTTP_HOST": host, "wsgi.url_scheme": "http", **more}
        return page.render(environ)[1].decode()

    assert SECRET in body("myapp.test:8000")
    assert SECRET in body("app.localhost:8000")
    assert SECRET not in body("other.test:8000")
    assert SECRET not in body("myapp.test:8000", HTTP_ORIGIN="http://other.test:8000")
