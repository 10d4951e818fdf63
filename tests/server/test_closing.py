"""A connection closed with the client's bytes unread still delivers the answer.

Closing a socket whose receive buffer holds unread bytes makes the kernel
send a reset, and a reset can make the client lose the answer it was about to
read. When the server closes after an answer without having read the whole
request body, it ends its side first and reads on for a while (a lingering
close), as Apache and nginx do.
"""

from __future__ import annotations

import socket
import threading
import time
import typing as t

import pytest
from serverkit import read_all, read_response, statuses, wait_until

from citus.serving import server as server_module
from citus.serving.http11 import DRAIN_LIMIT
from citus.serving.tls import load_ssl_context

pytestmark = pytest.mark.live_server

#: Bigger than the server drains for keep-alive: it answers, then closes.
LARGE = DRAIN_LIMIT * 8


def refuse_upload(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    # Answers without reading the body, as an app refusing an upload does.
    start_response("413 Content Too Large", [("Content-Type", "text/plain")])
    return [b"too large"]


def read_body(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got %d" % len(body)]


def send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


@pytest.mark.parametrize(
    ("threaded", "tls"),
    [(False, False), (True, False), (True, True)],
    ids=["single", "threaded", "tls"],
)
def test_an_upload_answered_before_it_is_read_gets_its_answer(
    serve: t.Any, threaded: bool, tls: bool
) -> None:
    # As Python's http.client does: send the whole body, then read the
    # answer. The server answered (and closed) long before; the client must
    # not meet a reset.
    context = load_ssl_context("adhoc") if tls else None
    run = serve(refuse_upload, threaded=threaded, ssl_context=context)
    with run.connect(tls=tls) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % LARGE
        )
        sock.sendall(b"x" * LARGE)
        status, headers, body = read_response(sock)
        assert (status, body) == (413, b"too large")
        assert headers["connection"] == "close"
        assert read_all(sock) == b""


def test_a_bad_request_with_a_body_gets_its_answer(serve: t.Any) -> None:
    run = serve(refuse_upload)
    with run.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Bad Header\r\n\r\n" % LARGE
        )
        sock.sendall(b"x" * LARGE)
        assert statuses(read_all(sock)) == [400]


def test_a_client_still_sending_gets_the_answer_and_an_end(serve: t.Any) -> None:
    # The body comes too slowly for a server without threads: 408, then the
    # server closes while the client is still sending.
    run = serve(read_body, header_timeout=0.3, io_timeout=30)
    failures: list[OSError] = []
    with run.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")

        def dribble() -> None:
            # A byte every 20 ms for a second: well past the 408 (at 0.3 s),
            # well within the time the server reads on after it.
            for _ in range(50):
                try:
                    sock.send(b"b")
                except OSError as error:
                    failures.append(error)
                    return
                time.sleep(0.02)

        sender = threading.Thread(target=dribble)
        sender.start()
        try:
            data = read_all(sock)
        finally:
            sender.join(10)
    assert statuses(data) == [408]
    assert failures == []


def test_a_lingering_connection_does_not_hold_the_server(
    serve: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "LINGER_TIME", 0.5)
    run = serve(refuse_upload, threaded=False)
    with run.connect() as slow:
        slow.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % LARGE
        )
        assert read_response(slow)[0] == 413
        # This client never closes and keeps sending; others are served.
        started = time.monotonic()
        for _ in range(5):
            send_quietly(slow, b"x" * 1000)
            with run.connect() as other:
                other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert statuses(read_all(other)) == [413]
        assert time.monotonic() - started < 2
        # And the server lets it go after a bounded while.
        wait_until(lambda: not run.server._clients, timeout=5)
