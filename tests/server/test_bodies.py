"""Request bodies of every size reach ``wsgi.input`` whole, however they are
read, and the connection's next request follows them. With threads, the rest
of a sized body is read around the parser, straight into the bytes handed to
the application (``Client.recv_body``)."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import typing as t

import pytest
from serverkit import read_all, statuses, wait_until

pytestmark = pytest.mark.live_server

threaded = pytest.mark.parametrize("threaded", [True, False], ids=["threads", "one"])


def digest_app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    """Answers the SHA-256 of the body, read in the way the path names."""
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    how = environ["PATH_INFO"]
    if how == "/whole":
        body = stream.read(length)
    elif how == "/all":
        body = stream.read()
    elif how == "/pieces":
        parts = [stream.read(100), stream.read(70000), stream.readline()]
        parts.append(stream.read(1 << 20))
        parts.append(stream.read())
        body = b"".join(parts)
    else:
        body = b""
    answer = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    start_response("200 OK", [("Content-Length", str(len(answer)))])
    return [answer]


def post(path: str, body: bytes) -> bytes:
    return b"POST %b HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (
        path.encode(),
        len(body),
        body,
    )


def bodies(received: bytes) -> list[bytes]:
    """The bodies of the responses in ``received`` (each with a length)."""
    found = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        found.append(rest[:length])
        received = rest[length:]
    return found


def expected(body: bytes) -> bytes:
    return f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()


@threaded
@pytest.mark.parametrize("how", ["/whole", "/all", "/pieces"])
def test_a_large_body_arrives_whole_and_the_next_requests_follow(
    serve: t.Any, threaded: bool, how: str
) -> None:
    run = serve(digest_app, threaded=threaded)
    big = os.urandom(3 * (1 << 20) + 17)  # more than one read around the parser
    small = b"line\n" * 30000
    chunked = (
        b"POST /all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    # Everything in one stream: the body, then pipelined requests behind it.
    stream = post(how, big) + post(how, small) + chunked
    stream += b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with run.connect() as sock:
        sender = threading.Thread(target=sock.sendall, args=(stream,))
        sender.start()
        try:
            received = read_all(sock)
        finally:
            sender.join(10)
    assert statuses(received) == [200] * 4
    assert bodies(received) == [
        expected(big),
        expected(small),
        expected(b"hello"),
        expected(b""),
    ]


@threaded
def test_a_client_leaving_mid_body_is_one_log_line(
    serve: t.Any, threaded: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="citus")
    errors: list[BaseException] = []

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        except OSError as error:
            errors.append(error)
            raise
        start_response("200 OK", [])
        return [b""]

    run = serve(app, threaded=threaded)
    with run.connect() as sock:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n"
        sock.sendall(head + b"x" * 200000)
    wait_until(lambda: bool(errors))
    assert "closed the connection" in str(errors[0])
    wait_until(
        lambda: any("closed the connection" in r.getMessage() for r in caplog.records)
    )
    assert not any(r.exc_info for r in caplog.records)
    with run.connect() as again:
        again.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert statuses(read_all(again)) == [200]
