"""The :mod:`selectors` poller that macOS, the BSDs and Windows use, tried on Linux.

Linux uses ``epoll`` directly; elsewhere the server falls back to
:mod:`selectors` and re-registers connections from its loop. These tests give
the server an ``open_epoll`` that finds no epoll, so that the fallback runs
here too.
"""

from __future__ import annotations

import threading
import time
import typing as t

import pytest
from serverkit import is_closed, read_all, read_response, statuses

from citus.serving import _poller as poller_module

pytestmark = pytest.mark.live_server


@pytest.fixture(autouse=True)
def no_epoll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poller_module, "open_epoll", lambda: None)


def echo(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [])
    return [environ["PATH_INFO"].encode() + b":" + body]


@pytest.mark.parametrize("threaded", [False, True])
def test_keep_alive_and_pipelining(serve: t.Any, threaded: bool) -> None:
    run = serve(echo, threaded=threaded)
    with run.connect() as sock:
        for i in range(5):
            sock.sendall(
                f"POST /{i} HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: 1\r\n\r\n{i}".encode()
            )
            assert read_response(sock)[2] == f"/{i}:{i}".encode()
        sock.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\n"
            b"\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = read_all(sock)
    assert statuses(data) == [200, 200] and data.endswith(b"/b:")
    poller = run.server._poller
    assert poller is not None and poller._epoll is None  # the fallback served


def test_idle_connection_closed(serve: t.Any) -> None:
    run = serve(echo, keepalive_timeout=0.3, threaded=True)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert is_closed(sock, timeout=5)


def test_streams_do_not_starve_others(serve: t.Any) -> None:
    stop = threading.Event()

    def app(environ: dict[str, t.Any], start_response: t.Any) -> t.Iterator[bytes]:
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/stream":
            while not stop.is_set():
                yield b"tick\n"
                stop.wait(0.05)
        else:
            yield b"other"

    run = serve(app, threaded=True)
    streams = [run.connect() for _ in range(6)]
    try:
        for sock in streams:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"tick" in sock.recv(4096)
        started = time.monotonic()
        with run.connect() as sock:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert b"other" in read_all(sock)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        for sock in streams:
            sock.close()


def test_a_held_request_hands_the_loop_on(serve: t.Any) -> None:
    # The thread that finishes the held request is no longer the one that
    # polls: it hands its connection back through the poller's queue.
    from test_relay import Holding, answers_while_held

    app = Holding()
    answers_while_held(serve(app, threaded=True), app)
