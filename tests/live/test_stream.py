"""The event stream over real sockets: no thread per stream, never reaches the
app, never delays a stop."""

from __future__ import annotations

import json
import socket
import threading
import time
import typing as t

import pytest

from citus.live import EVENTS, PREFIX, LiveReload
from citus.live.hub import Hub

from .test_inject import Served, request, split

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytestmark = pytest.mark.live_server

DEADLINE = 10.0


class Counting:
    """An app that counts the requests that reach it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> list[bytes]:
        self.paths.append(environ["PATH_INFO"])
        body = b"<html><body>ok</body></html>"
        start_response(
            "200 OK",
            [("Content-Type", "text/html"), ("Content-Length", str(len(body)))],
        )
        return [body]


def open_stream(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), DEADLINE)
    sock.sendall(f"GET {EVENTS} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before {marker!r}: {data!r}")
        data += chunk
    return data


def events(data: bytes) -> list[tuple[str, dict[str, t.Any]]]:
    found = []
    for block in data.split(b"\r\n\r\n", 1)[-1].split(b"\n\n"):
        lines = dict(
            line.split(": ", 1) for line in block.decode().splitlines() if ": " in line
        )
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def wait_until(condition: t.Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_streams_hold_no_thread_even_without_threads() -> None:
    app = Counting()
    live = LiveReload(app, Hub("tok"))
    served = Served(live, threaded=False)
    streams: list[socket.socket] = []
    try:
        for _ in range(30):
            sock = open_stream(served.port)
            streams.append(sock)
            data = read_until(sock, b"\n\n")
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Content-Type: text/event-stream" in data
            assert events(data) == [("hello", {"id": "tok.0"})]
        # The server (one thread, no pool) still answers at once.
        started = time.monotonic()
        status, _, body = split(served.raw(request("GET", "/")))
        assert status == "HTTP/1.1 200 OK"
        assert time.monotonic() - started < 2
        assert b'data-id="tok.0"' in body
        assert app.paths == ["/"]  # the streams never reached the app
        assert live.hub.count == 30
        # A change: every stream hears it.
        assert live.hub.bump() == "tok.1"
        for sock in streams:
            assert events(read_until(sock, b"\n\n")) == [("reload", {"id": "tok.1"})]
        assert live.hub.broadcast("css", {"paths": ["/static/a.css"]}) == 30
        # A page that goes away is forgotten by the hub's thread.
        streams.pop().close()
        wait_until(lambda: live.hub.count == 29)
    finally:
        for sock in streams:
            sock.close()
        served.stop()


def test_open_streams_never_delay_a_stop() -> None:
    live = LiveReload(Counting())
    served = Served(live)
    streams = [open_stream(served.port) for _ in range(5)]
    try:
        for sock in streams:
            read_until(sock, b"\n\n")
        started = time.monotonic()
        served.server.shutdown()
        served.thread.join(DEADLINE)
        assert not served.thread.is_alive()
        assert time.monotonic() - started < 1.5
        # The reloader's hook: the streams end at once, and later ones too.
        live.hub.close_all()
        for sock in streams:
            sock.settimeout(DEADLINE)
            assert sock.recv(65536) == b""
        assert live.hub.count == 0
    finally:
        for sock in streams:
            sock.close()
        served.server.server_close()


def test_a_stream_asked_for_while_closing_ends_at_once() -> None:
    live = LiveReload(Counting())
    live.hub.close_all()
    served = Served(live)
    try:
        data = served.raw(f"GET {EVENTS} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert data.endswith(b"\r\n\r\n")  # a head, no events, then the end
    finally:
        served.stop()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "405"),
        (f"GET {PREFIX}/other HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
        (f"GET {PREFIX} HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
    ],
)
def test_other_requests_under_the_prefix_never_reach_the_app(
    raw: str, status: str
) -> None:
    app = Counting()
    served = Served(LiveReload(app))
    try:
        line, _, _ = split(
            served.raw(
                raw.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1).encode()
            )
        )
    finally:
        served.stop()
    assert line.split()[1] == status
    assert app.paths == []


def test_stream_over_another_server_says_hello_and_ends() -> None:
    """Served by a server without the socket hook, the stream holds nothing."""
    live = LiveReload(Counting(), Hub("abc"))
    seen: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
    ) -> t.Callable[[bytes], object]:
        seen.append(status)
        return lambda data: None

    environ = {"PATH_INFO": EVENTS, "REQUEST_METHOD": "GET"}
    body = b"".join(live(environ, start_response))
    assert seen == ["200 OK"]
    assert body == b'event: hello\ndata: {"id": "abc.0"}\n\n'


def test_hub_thread_survives_many_streams_opening_and_closing() -> None:
    live = LiveReload(Counting())
    served = Served(live)
    try:
        for _ in range(3):
            batch = [open_stream(served.port) for _ in range(20)]
            for sock in batch:
                read_until(sock, b"\n\n")
            wait_until(lambda: live.hub.count == 20)
            for sock in batch:
                sock.close()
            wait_until(lambda: live.hub.count == 0)
        assert threading.active_count() < 20
    finally:
        served.stop()


def test_streams_over_tls(tmp_path: t.Any) -> None:
    """Over HTTPS the hub holds the TLS socket the server hands over."""
    import ssl

    pytest.importorskip("cryptography")
    from citus.serving import make_ssl_devcert
    from citus.serving.tls import load_ssl_context

    cert, key = make_ssl_devcert(str(tmp_path / "dev"), host="127.0.0.1")
    live = LiveReload(Counting(), Hub("tls"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    from citus.serving.server import Server

    server = Server([listener], live, ssl_context=load_ssl_context((cert, key)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=cert)
    streams = []
    try:
        for _ in range(3):
            raw = socket.create_connection(("127.0.0.1", server.port or 0), DEADLINE)
            sock = client.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(f"GET {EVENTS} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            streams.append(sock)
            assert events(read_until(sock, b"\n\n")) == [("hello", {"id": "tls.0"})]
        wait_until(lambda: live.hub.count == 3)
        live.hub.bump()
        for sock in streams:
            assert events(read_until(sock, b"\n\n")) == [("reload", {"id": "tls.1"})]
        streams.pop().close()
        wait_until(lambda: live.hub.count == 2)
        live.hub.close_all()
        for sock in streams:
            assert sock.recv(65536) == b""
    finally:
        for sock in streams:
            sock.close()
        server.shutdown()
        thread.join(DEADLINE)
        server.server_close()
