"""``run_simple()`` as a program sees it: its banner and ``passthrough_errors``.

Each test runs a real script in its own process and talks to it over a socket.
"""

from __future__ import annotations

import socket
import textwrap
import typing as t
from pathlib import Path

import pytest
from serverkit import read_all, statuses

pytestmark = pytest.mark.live_server

WARNING = (
    "WARNING: This is a development server. Do not use it in a production deployment."
)

APP = """
def app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def start(run_python: t.Any, tmp_path: Path, call: str) -> t.Any:
    script = tmp_path / "serve.py"
    script.write_text(APP + textwrap.dedent(call))
    proc = run_python(str(script))
    url = proc.wait_for_url()
    return proc, int(url.rsplit(":", 1)[1])


def get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        return read_all(sock)


@pytest.mark.parametrize(
    ("call", "warned"),
    [
        ('run_simple("127.0.0.1", 0, app)', True),
        ('run_simple("127.0.0.1", 0, app, threaded=True)', True),
        ('run_simple("127.0.0.1", 0, app, use_debugger=True)', False),
    ],
    ids=["plain", "threaded", "debugger"],
)
def test_run_simple_warns_that_it_is_a_development_server(
    run_python: t.Any, tmp_path: Path, call: str, warned: bool
) -> None:
    proc, port = start(
        run_python, tmp_path, f"from citus.serving import run_simple\n{call}\n"
    )
    assert statuses(get(port, "/")) == [200]
    lines = proc.log.lines
    running = next(i for i, line in enumerate(lines) if "Running on" in line)
    assert lines.count(WARNING) == int(warned)
    if warned:
        assert lines.index(WARNING) < running  # as citus run prints it


@pytest.mark.parametrize("debug", [False, True])
def test_app_run_warns_once(run_python: t.Any, tmp_path: Path, debug: bool) -> None:
    call = f"""
        import citus
        api = citus.API("hello")
        api.route("/")(lambda: "ok")
        api.run(port=0, debug={debug}, use_reloader=False, load_dotenv=False)
    """
    proc, port = start(run_python, tmp_path, call)
    assert statuses(get(port, "/")) == [200]
    assert proc.log.lines.count(WARNING) == int(not debug)


def test_passthrough_errors_single_threaded(run_python: t.Any, tmp_path: Path) -> None:
    proc, port = start(
        run_python,
        tmp_path,
        """
        from citus.serving import run_simple
        run_simple("127.0.0.1", 0, app, passthrough_errors=True)
        """,
    )
    assert statuses(get(port, "/")) == [200]
    assert get(port, "/boom") == b""  # closed, nothing answered
    # The error leaves run_simple(), as asked.
    assert proc.wait(10) != 0
    text = proc.log.text
    assert "RuntimeError: boom" in text
    assert '"GET /boom HTTP/1.1" 500' not in text
    assert "no response to GET /boom HTTP/1.1" in text


def test_passthrough_errors_threaded(run_python: t.Any, tmp_path: Path) -> None:
    proc, port = start(
        run_python,
        tmp_path,
        """
        from citus.serving import run_simple
        run_simple("127.0.0.1", 0, app, threaded=True, passthrough_errors=True)
        """,
    )
    assert get(port, "/boom") == b""
    proc.wait_for_log("RuntimeError: boom")
    # The worker thread lives on: the server still answers.
    assert statuses(get(port, "/")) == [200]
    text = proc.log.text
    assert '"GET /boom HTTP/1.1" 500' not in text
    assert "no response to GET /boom HTTP/1.1" in text


def test_every_request_is_logged_once_under_load(
    run_python: t.Any, tmp_path: Path
) -> None:
    # While worker threads are busy, log lines are written in batches: none
    # may be lost, doubled or held back once the load stops.
    import threading

    from serverkit import read_response, wait_until

    proc, port = start(
        run_python,
        tmp_path,
        """
        from citus.serving import run_simple
        run_simple("127.0.0.1", 0, app, threaded=True)
        """,
    )
    per_client, clients = 60, 8

    def client(number: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for i in range(per_client):
                sock.sendall(f"GET /c{number}/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert read_response(sock)[0] == 200

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    def logged() -> list[str]:
        return [line for line in proc.log.lines if '" 200 ' in line]

    wait_until(lambda: len(logged()) >= per_client * clients, timeout=10)
    paths = sorted(line.split('"GET ')[1].split(" ")[0] for line in logged())
    wanted = sorted(f"/c{n}/{i}" for n in range(clients) for i in range(per_client))
    assert paths == wanted
