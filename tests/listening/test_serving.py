"""End to end: a real server answers where it listens, over HTTP and HTTPS.

Servers run in a thread (``make_server``) or as a real process
(``run_simple``); clients are raw sockets, :mod:`http.client` and :mod:`ssl`.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import sys
import threading
import typing as t
from pathlib import Path

import pytest
from listening_util import PtyProcess, http_get

from citus.serving import Server, make_server, make_ssl_devcert

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from conftest import CitusProcess

    RunPython = t.Callable[..., CitusProcess]

pytestmark = pytest.mark.live_server

ENVIRON_KEYS = (
    "REMOTE_ADDR",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
    "PATH_INFO",
)


def environ_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Answers with the parts of the environ these tests look at, as JSON."""
    body = json.dumps({key: environ.get(key) for key in ENVIRON_KEYS}).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class Running:
    """A server serving in a thread; stopped and closed on exit."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


def _body(raw: bytes) -> dict[str, t.Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    return t.cast("dict[str, t.Any]", json.loads(body))


def test_localhost_answers_on_both_families(ipv6: None) -> None:
    with Running(make_server("localhost", 0, environ_app)) as server:
        port = server.port
        assert port
        assert [sock.getsockname()[0] for sock in server.sockets] == [
            "127.0.0.1",
            "::1",
        ]
        v4 = _body(http_get(("127.0.0.1", port)))
        v6 = _body(http_get(("::1", port)))
    assert v4["REMOTE_ADDR"] == "127.0.0.1"
    assert v6["REMOTE_ADDR"] == "::1"
    assert v4["SERVER_PORT"] == v6["SERVER_PORT"] == str(port)


def test_localhost_ipv4_half() -> None:
    with Running(make_server("localhost", 0, environ_app)) as server:
        assert server.port
        assert _body(http_get(("127.0.0.1", server.port)))["REMOTE_ADDR"] == (
            "127.0.0.1"
        )


def test_ipv6_literal_server(ipv6: None) -> None:
    with Running(make_server("::1", 0, environ_app)) as server:
        assert server.port
        assert _body(http_get(("::1", server.port)))["REMOTE_ADDR"] == "::1"


def test_ipv4_client_of_a_dual_stack_socket(ipv6: None) -> None:
    # A server on "::" also takes IPv4 clients, which the system reports as
    # "::ffff:127.0.0.1". Bound to that mapped loopback address, the socket
    # stays on this machine and takes the same path.
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::ffff:127.0.0.1", 0))
    except OSError as error:
        sock.close()
        pytest.skip(f"no dual-stack sockets here: {error}")
    sock.listen()
    port = sock.getsockname()[1]
    with Running(Server([sock], environ_app)):
        seen = _body(http_get(("127.0.0.1", port)))
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["SERVER_NAME"] == "127.0.0.1"


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets on POSIX only")
def test_unix_socket_request(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    # A stale socket file from a server that died: replaced, not an error.
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()
    with Running(make_server(f"unix://{path}", 0, environ_app)):
        environ = _body(http_get(str(path), "/hello"))
    assert environ["PATH_INFO"] == "/hello"
    assert environ["REMOTE_ADDR"]  # something an app can log, never empty
    # Names that build a valid URL when a request has no Host header.
    assert environ["SERVER_NAME"] == "localhost"
    assert environ["SERVER_PORT"].isdigit()
    assert not path.exists()  # removed when the server closed


@pytest.fixture
def devcert(tmp_path: Path) -> tuple[str, str]:
    return make_ssl_devcert(tmp_path / "dev")


def _https_get(port: int, cafile: str, host: str = "localhost") -> dict[str, t.Any]:
    context = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        conn.request("GET", "/secure")
        response = conn.getresponse()
        assert response.status == 200
        return t.cast("dict[str, t.Any]", json.loads(response.read()))
    finally:
        conn.close()


def test_https_verified_against_the_devcert(devcert: tuple[str, str]) -> None:
    with Running(
        make_server("127.0.0.1", 0, environ_app, ssl_context=devcert)
    ) as server:
        assert server.port
        environ = _https_get(server.port, devcert[0])
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["PATH_INFO"] == "/secure"


def test_https_on_ipv6(ipv6: None, devcert: tuple[str, str]) -> None:
    with Running(make_server("::1", 0, environ_app, ssl_context=devcert)) as server:
        assert server.port
        assert _https_get(server.port, devcert[0], "::1")["REMOTE_ADDR"] == "::1"


def test_plain_http_to_the_tls_port_then_garbage_then_served(
    devcert: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with Running(
        make_server("127.0.0.1", 0, environ_app, ssl_context=devcert)
    ) as server:
        port = server.port
        assert port
        # Plain HTTP: a 400 that says why, then the connection closes.
        raw = http_get(("127.0.0.1", port))
        assert raw.startswith(b"HTTP/1.1 400 ")
        assert b"plain HTTP request to an HTTPS server: use https://" in raw
        assert b"\r\nDate: " in raw and b"\r\nServer: citus/" in raw
        # A handshake record that is garbage: closed, no traceback.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
            try:
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):  # a TLS alert at most, then the close
                    pass
            except (ConnectionResetError, OSError):
                # The server may close (or reset, with our garbage unread)
                # before we finish: either way the connection is closed.
                pass
        # A client that gives up mid-handshake.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"\x16\x03")
        # Still serving, and verified.
        assert _https_get(port, devcert[0])["wsgi.url_scheme"] == "https"
    text = caplog.text
    assert "Traceback" not in text
    assert "plain HTTP request to an HTTPS server" in text


def test_untrusted_certificate_is_one_readable_log_line(
    devcert: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with Running(
        make_server("127.0.0.1", 0, environ_app, ssl_context=devcert)
    ) as server:
        assert server.port
        client = ssl.create_default_context()  # does not trust the devcert
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                client.wrap_socket(raw, server_hostname="localhost")
        # Still serving, for a client that trusts it.
        assert _https_get(server.port, devcert[0])["wsgi.url_scheme"] == "https"
    lines = [r.getMessage() for r in caplog.records if "TLS" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "does not trust the certificate" in lines[0]
    assert "_ssl.c" not in lines[0]


def test_stalled_handshake_does_not_block_others(devcert: tuple[str, str]) -> None:
    with Running(
        make_server("127.0.0.1", 0, environ_app, ssl_context=devcert)
    ) as server:
        port = server.port
        assert port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            stalled.sendall(b"\x16")  # one byte of a handshake, then nothing
            context = ssl.create_default_context(cafile=devcert[0])
            conn = http.client.HTTPSConnection(
                "localhost", port, context=context, timeout=3
            )
            try:
                conn.request("GET", "/")
                assert conn.getresponse().status == 200
            finally:
                conn.close()


# A real run_simple process, as a user starts it.
SERVE = """
import sys
from citus.serving import run_simple

def app(environ, start_response):
    status = environ["PATH_INFO"].strip("/") or "200"
    start_response(status + " X", [("Content-Length", "2")])
    return [b"ok"]

ssl_context = sys.argv[3] if len(sys.argv) > 3 else None
run_simple(sys.argv[1], int(sys.argv[2]), app, ssl_context=ssl_context)
"""


def test_run_simple_banner_lists_every_url(ipv6: None, run_python: RunPython) -> None:
    proc = run_python("-c", SERVE, "localhost", "0")
    url = proc.wait_for_url()
    port = int(url.rsplit(":", 1)[1])
    proc.wait_for_log(r"Press CTRL\+C to quit")
    lines = proc.log.lines
    assert f" * Running on http://127.0.0.1:{port}" in lines
    assert f" * Running on http://[::1]:{port}" in lines
    assert http_get(("::1", port)).startswith(b"HTTP/1.1 200")
    assert http_get(("127.0.0.1", port), "/404").startswith(b"HTTP/1.1 404")
    proc.wait_for_log(r'^::1 - - \[.*\] "GET / HTTP/1\.1" 200 (2|-) [\d.]+ m?s$')
    proc.wait_for_log(
        r'^127\.0\.0\.1 - - \[.*\] "GET /404 HTTP/1\.1" 404 (2|-) [\d.]+ m?s$'
    )
    assert "\x1b" not in proc.log.text


def test_run_simple_adhoc_banner_is_https(run_python: RunPython) -> None:
    proc = run_python("-c", SERVE, "127.0.0.1", "0", "adhoc")
    url = proc.wait_for_url()
    assert url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets on POSIX only")
def test_run_simple_unix_socket_banner_and_cleanup(
    run_python: RunPython, tmp_path: Path
) -> None:
    path = tmp_path / "s.sock"
    proc = run_python("-c", SERVE, f"unix://{path}", "0")
    proc.wait_for_log(rf"^ \* Running on unix://{path}$")
    assert http_get(str(path)).startswith(b"HTTP/1.1 200")
    proc.interrupt()
    assert proc.wait() == 0
    assert not path.exists()
    assert "Traceback" not in proc.log.text


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets and SIGTERM on POSIX")
def test_run_simple_unix_socket_removed_on_sigterm(
    run_python: RunPython, tmp_path: Path
) -> None:
    # `kill PID`, an IDE's stop button and `docker stop` send SIGTERM, not Ctrl+C.
    path = tmp_path / "t.sock"
    proc = run_python("-c", SERVE, f"unix://{path}", "0")
    proc.wait_for_log(rf"^ \* Running on unix://{path}$")
    assert http_get(str(path)).startswith(b"HTTP/1.1 200")  # serving by now
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait() == 0
    assert not path.exists()
    assert "Traceback" not in proc.log.text


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
@pytest.mark.parametrize(
    ("env", "coloured"),
    [({}, True), ({"NO_COLOR": "1"}, False)],
    ids=["terminal", "terminal-NO_COLOR"],
)
def test_request_log_in_a_terminal(env: dict[str, str], coloured: bool) -> None:
    with PtyProcess([sys.executable, "-c", SERVE, "127.0.0.1", "0"], env) as proc:
        output = proc.wait_for(b"Press CTRL+C to quit").decode()
        port = int(output.split("http://127.0.0.1:", 1)[1].split()[0])
        assert http_get(("127.0.0.1", port), "/404").startswith(b"HTTP/1.1 404")
        output = proc.wait_for(b'"GET /404 HTTP/1.1" 404 ').decode()
    if coloured:
        assert "\x1b[33m127.0.0.1 - - [" in output
    else:
        assert "\x1b" not in output


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets on POSIX only")
def test_unix_socket_with_the_reloader(
    run_citus: t.Callable[..., CitusProcess], tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n"
    )
    path = tmp_path / "r.sock"
    proc = run_citus("run", "--debug", "--host", f"unix://{path}")
    proc.wait_for_log(r"Debugger PIN|Debugger is active")
    assert http_get(str(path)).startswith(b"HTTP/1.1 200")
    proc.interrupt()
    assert proc.wait() == 0
    # The supervisor bound it and removed it; the child never did before.
    assert not path.exists()


def test_force_color_through_a_pipe(run_python: RunPython) -> None:
    proc = run_python(
        "-c", SERVE, "127.0.0.1", "0", env={"NO_COLOR": "", "FORCE_COLOR": "1"}
    )
    url = proc.wait_for_url()
    port = int(url.rsplit(":", 1)[1])
    assert http_get(("127.0.0.1", port), "/500").startswith(b"HTTP/1.1 500")
    proc.wait_for_log(r'\x1b\[1;31m127\.0\.0\.1 - - \[.*\] "GET /500 HTTP/1\.1" 500')
