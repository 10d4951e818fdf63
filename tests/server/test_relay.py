"""With threads, the loop's thread serves requests itself and hands the loop on
to another thread when one request holds it (``serving/_relay.py``)."""

from __future__ import annotations

import socket
import threading
import time
import typing as t

import pytest
from serverkit import read_all, read_response, statuses, wait_until

pytestmark = pytest.mark.live_server


class Holding:
    """An app whose ``/hold`` waits until released; other paths answer at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/hold":
            self.entered.set()
            self.release.wait(20)
        elif path == "/exit":
            raise SystemExit(3)
        body = path.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]


def get(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def answers_while_held(run: t.Any, app: Holding) -> None:
    """Hold one request; 20 others on fresh connections are answered meanwhile;
    then the held connection serves its next request."""
    with run.connect() as held:
        get(held, "/hold")
        assert app.entered.wait(10)
        started = time.monotonic()
        for number in range(20):
            with run.connect() as sock:
                get(sock, f"/fast{number}")
                status, _, body = read_response(sock)
                assert (status, body) == (200, f"/fast{number}".encode())
        assert time.monotonic() - started < 5
        assert not app.release.is_set()
        app.release.set()
        assert read_response(held)[0] == 200
        # The held connection, handed back by the thread that served it (not
        # the one that polls now), serves again.
        get(held, "/again")
        assert read_response(held)[2] == b"/again"


def test_a_held_request_does_not_hold_the_others(serve: t.Any) -> None:
    app = Holding()
    run = serve(app, threaded=True)
    answers_while_held(run, app)


def test_requests_ready_beside_a_held_one_are_answered(serve: t.Any) -> None:
    # Kept-alive connections whose requests arrive together are served one
    # after the other by the loop's thread: those behind the held one must
    # not wait for it.
    app = Holding()
    run = serve(app, threaded=True)
    socks = [run.connect() for _ in range(8)]
    try:
        for sock in socks:  # each one known to the poller, idle
            get(sock, "/warm")
            assert read_response(sock)[0] == 200
        get(socks[0], "/hold")
        for number, sock in enumerate(socks[1:]):
            get(sock, f"/beside{number}")
        for number, sock in enumerate(socks[1:]):
            status, _, body = read_response(sock)
            assert (status, body) == (200, f"/beside{number}".encode())
        assert not app.release.is_set()
        app.release.set()
        assert read_response(socks[0])[0] == 200
    finally:
        app.release.set()
        for sock in socks:
            sock.close()


def test_a_request_after_a_quiet_spell_is_still_watched(serve: t.Any) -> None:
    # The watchdog sleeps while nothing is served; the next request wakes it.
    app = Holding()
    run = serve(app, threaded=True)
    with run.connect() as sock:
        get(sock, "/first")
        assert read_response(sock)[0] == 200
    relay = run.server._relay
    assert relay is not None
    wait_until(lambda: relay._asleep)
    answers_while_held(run, app)


def test_many_held_requests_each_get_a_thread(serve: t.Any) -> None:
    entered = threading.Semaphore(0)
    release = threading.Event()

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/hold":
            entered.release()
            release.wait(20)
        start_response("200 OK", [])
        return [b"ok"]

    run = serve(app, threaded=True)
    held = [run.connect() for _ in range(12)]
    try:
        for sock in held:
            get(sock, "/hold")
        for _ in held:  # all twelve run at once
            assert entered.acquire(timeout=10)
        with run.connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(read_all(sock)) == [200]
        release.set()
        for sock in held:
            assert read_response(sock)[0] == 200
    finally:
        release.set()
        for sock in held:
            sock.close()


def test_system_exit_passed_through_leaves_the_server_serving(serve: t.Any) -> None:
    # The exit leaves the thread that served it (which ran the loop): another
    # takes the loop over.
    app = Holding()
    run = serve(app, threaded=True, passthrough_errors=True)
    for _ in range(6):  # more than the pool's first threads
        with run.connect() as sock:
            get(sock, "/exit")
            assert read_all(sock) == b""  # closed, nothing answered
    with run.connect() as sock:
        get(sock, "/after")
        assert read_response(sock)[:3:2] == (200, b"/after")


def test_shutdown_while_the_loop_thread_is_held(serve: t.Any) -> None:
    app = Holding()
    run = serve(app, threaded=True, shutdown_timeout=5)
    with run.connect() as held:
        get(held, "/hold")
        assert app.entered.wait(10)
        started = time.monotonic()
        run.server.shutdown()  # the loop moved on: it sees the stop at once
        assert time.monotonic() - started < 1
        app.release.set()
        status, headers, _ = read_response(held)
        assert status == 200
        assert headers.get("connection") == "close"


@pytest.mark.parametrize("threaded", [True, False])
def test_shutdown_called_by_the_application(serve: t.Any, threaded: bool) -> None:
    # The request that asks for the stop runs on the loop's thread: the stop
    # must neither wait for that request nor leave it unanswered.
    servers: list[t.Any] = []

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        started = time.monotonic()
        servers[0].shutdown()
        took = f"{time.monotonic() - started:.3f}".encode()
        start_response("200 OK", [("Content-Length", str(len(took)))])
        return [took]

    run = serve(app, threaded=threaded)
    servers.append(run.server)
    with run.connect() as sock:
        get(sock, "/stop")
        status, headers, body = read_response(sock)
    assert status == 200
    assert headers.get("connection") == "close"
    assert float(body) < 1.5  # shutdown() returns within a second or so
    run.thread.join(10)
    assert not run.thread.is_alive()
