"""The server's hooks for reloads: ``hand_off`` on a stop, ``adopt`` after it.

Two real servers in threads stand for the old and the new reloader child:
the old one's ``hand_off`` gives copies of its connections to the new one's
``adopt``, as the supervisor does between processes.
"""

from __future__ import annotations

import socket
import threading
import typing as t

import pytest
from serverkit import DEADLINE, Running, is_closed

from citus.serving.server import Server

pytestmark = pytest.mark.live_server

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
HELD = b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n"


def named_app(
    name: str,
    gate: threading.Event | None = None,
    entered: threading.Event | None = None,
) -> t.Any:
    """Answers with ``name``; ``/held`` sets ``entered``, then waits for
    ``gate``."""

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/held" and gate is not None:
            if entered is not None:
                entered.set()
            gate.wait(DEADLINE)
        body = name.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


def read_response(stream: t.IO[bytes]) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length from a buffered ``stream`` (so that
    pipelined answers read together are not lost)."""
    line = stream.readline()
    if not line:
        raise ConnectionError("closed")
    headers: dict[str, str] = {}
    while (field := stream.readline()) not in (b"\r\n", b""):
        name, _, value = field.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(line.split()[1]), headers, stream.read(int(headers["content-length"]))


def handing_to(
    target: Server, handed: list[int]
) -> t.Callable[[list[socket.socket]], bool]:
    def hand_off(socks: list[socket.socket]) -> bool:
        handed.append(len(socks))
        target.adopt([sock.dup() for sock in socks])  # the caller closes its own
        return True

    return hand_off


def stop_in_thread(run: Running) -> threading.Thread:
    thread = threading.Thread(target=run.server.shutdown)
    thread.start()
    return thread


@pytest.mark.parametrize("threaded", [True, False])
def test_an_idle_connection_moves_to_the_next_server(
    serve: t.Callable[..., Running], threaded: bool
) -> None:
    old = serve(named_app("old"), threaded=threaded)
    new = serve(named_app("new"), threaded=threaded)
    handed: list[int] = []
    old.server.hand_off = handing_to(new.server, handed)
    with old.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET)
        status, headers, body = read_response(stream)
        assert body == b"old" and headers.get("connection") != "close"
        old.server.shutdown()
        old.thread.join(DEADLINE)
        assert handed == [1]
        for _ in range(2):  # kept alive by the new server too
            sock.sendall(GET)
            assert read_response(stream)[2] == b"new"


@pytest.mark.parametrize("threaded", [True, False])
def test_a_busy_connection_is_answered_then_moves(
    serve: t.Callable[..., Running], threaded: bool
) -> None:
    gate, entered = threading.Event(), threading.Event()
    old = serve(named_app("old", gate, entered), threaded=threaded)
    new = serve(named_app("new"), threaded=threaded)
    handed: list[int] = []
    old.server.hand_off = handing_to(new.server, handed)
    with old.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(HELD + GET)  # pipelined: both read by the old server
        assert entered.wait(DEADLINE)
        stopping = stop_in_thread(old)
        stopping.join(DEADLINE)
        gate.set()
        first = read_response(stream)
        assert first[2] == b"old" and first[1].get("connection") != "close"
        second = read_response(stream)
        assert second[2] in (b"old", b"new")
        old.thread.join(DEADLINE)
        assert handed == [1]
        sock.sendall(GET)
        assert read_response(stream)[2] == b"new"


def test_connections_that_cannot_be_handed_over_are_closed(
    serve: t.Callable[..., Running],
) -> None:
    old = serve(named_app("old"), threaded=True)
    old.server.hand_off = lambda socks: False  # the supervisor is gone
    with old.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET)
        assert read_response(stream)[2] == b"old"
        old.server.shutdown()
        assert is_closed(sock)


def test_connections_adopted_while_stopping_are_handed_on(
    serve: t.Callable[..., Running],
) -> None:
    old = serve(named_app("old"), threaded=True)
    new = serve(named_app("new"), threaded=True)
    middle = serve(named_app("middle"), threaded=True)
    handed: list[int] = []
    middle.server.hand_off = handing_to(new.server, handed)
    middle.server.shutdown()
    middle.thread.join(DEADLINE)
    with old.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET)
        assert read_response(stream)[2] == b"old"
        # A connection that reaches a server which has stopped moves on.
        old.server.hand_off = handing_to(middle.server, [])
        old.server.shutdown()
        old.thread.join(DEADLINE)
        assert handed == [1]
        sock.sendall(GET)
        assert read_response(stream)[2] == b"new"
