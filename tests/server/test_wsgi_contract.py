"""PEP 3333 from the application's side: start_response, write(), close(), errors."""

from __future__ import annotations

import logging
import sys
import typing as t

import pytest
from serverkit import read_all, read_response, statuses, wait_until

pytestmark = pytest.mark.live_server


class Tracked:
    """An iterable response that records whether ``close()`` was called."""

    def __init__(self, parts: t.Iterable[bytes], fail_at: int | None = None) -> None:
        self.parts = list(parts)
        self.fail_at = fail_at
        self.closed = False

    def __iter__(self) -> t.Iterator[bytes]:
        for index, part in enumerate(self.parts):
            if index == self.fail_at:
                raise RuntimeError("boom in the middle")
            yield part

    def close(self) -> None:
        self.closed = True


def test_write_callable(serve: t.Any) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"from write, ")
        return [b"then returned"]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
    assert body == b"from write, then returned"
    assert headers["transfer-encoding"] == "chunked"


def test_start_response_with_exc_info_replaces_the_status(serve: t.Any) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("503 Busy", [("X-Second", "1")], sys.exc_info())
        return [b"busy"]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
    assert (status, body) == (503, b"busy")
    assert "x-second" in headers and "x-first" not in headers


def test_start_response_twice_without_exc_info_is_an_error(
    serve: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 500


def test_close_is_called_on_success_and_on_error(serve: t.Any, caplog: t.Any) -> None:
    results: list[Tracked] = []

    def app(environ: dict[str, t.Any], start_response: t.Any) -> Tracked:
        start_response("200 OK", [])
        fail = 1 if environ["PATH_INFO"] == "/fail" else None
        result = Tracked([b"a", b"b"], fail_at=fail)
        results.append(result)
        return result

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[2] == b"ab"
        sock.sendall(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_all(sock)
    assert [r.closed for r in results] == [True, True]
    # Headers and the first chunk were sent: the connection is aborted, and
    # the chunked body never gets its terminating zero-size chunk.
    assert b"\r\n0\r\n\r\n" not in data
    assert data.endswith(b"1\r\na\r\n")


def test_error_after_content_length_aborts(serve: t.Any) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> t.Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        yield b"12345"
        raise RuntimeError("half way")

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_all(sock)
    assert data.endswith(b"\r\n\r\n12345")


def test_short_content_length_aborts(serve: t.Any) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> t.Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "10")])
        yield b"12345"

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = read_all(sock)  # closed instead of serving the second request
    assert statuses(data) == [200]


@pytest.mark.parametrize(
    ("declared", "body"),
    [("10", [b"12345"]), ("3", [b"12345"]), ("4", [])],
    ids=["short", "long", "empty"],
)
def test_wrong_content_length_known_before_sending_is_a_500(
    serve: t.Any,
    caplog: pytest.LogCaptureFixture,
    declared: str,
    body: list[bytes],
) -> None:
    # The whole body is in hand before a byte goes out: the mismatch is
    # answered with a 500 (and logged), not a connection closed on nothing.
    caplog.set_level(logging.INFO, logger="citus")

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", declared)])
        return body

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = read_all(sock)
    assert statuses(data) == [500]
    assert "Content-Length" in caplog.text
    assert '"GET / HTTP/1.1" 500' in caplog.text


def test_app_exception_is_a_500_and_a_logged_traceback(
    serve: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="citus")

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        raise KeyError("missing")

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 500
    assert b"KeyError" not in body
    wait_until(lambda: any(r.exc_info for r in caplog.records))
    record = next(r for r in caplog.records if r.exc_info)
    assert record.name == "citus"
    assert "GET /boom" in record.getMessage()


@pytest.mark.parametrize("threaded", [False, True])
def test_sys_exit_in_the_app_is_a_500_not_the_end_of_the_server(
    serve: t.Any, caplog: pytest.LogCaptureFixture, threaded: bool
) -> None:
    caplog.set_level(logging.INFO, logger="citus")

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/exit":
            sys.exit("bye")
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    run = serve(app, threaded=threaded)
    with run.connect() as sock:
        sock.sendall(b"GET /exit HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 500
    wait_until(lambda: any(r.exc_info for r in caplog.records))
    record = next(r for r in caplog.records if r.exc_info)
    assert record.exc_info is not None and record.exc_info[0] is SystemExit
    # The server is still there for the next client.
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[::2] == (200, b"ok")


@pytest.mark.parametrize(
    "header",
    [
        ("X-Evil", "a\r\nSet-Cookie: hacked=1"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "nul\x00"),
        ("X-Bad Name", "v"),
        ("X-Evil\r\nInjected", "v"),
    ],
)
def test_response_splitting_is_refused(
    serve: t.Any, caplog: pytest.LogCaptureFixture, header: tuple[str, str]
) -> None:
    caplog.set_level(logging.INFO, logger="citus")

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [header])
        return [b"body"]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_all(sock)
    assert statuses(data) == [500]
    assert b"hacked" not in data and b"Injected" not in data
    wait_until(
        lambda: any("Invalid response header" in r.getMessage() for r in caplog.records)
    )
    assert not any(r.exc_info for r in caplog.records)


def test_each_request_is_logged(serve: t.Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="citus.serving")

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("404 Not Found", [])
        return [b""]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"GET /missing?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        read_all(sock)
    wait_until(lambda: any("/missing" in r.getMessage() for r in caplog.records))
    line = next(r.getMessage() for r in caplog.records if "/missing" in r.getMessage())
    assert line.startswith("127.0.0.1 - - [")
    assert '"GET /missing?q=1 HTTP/1.1" 404' in line


def test_input_stream_methods(serve: t.Any) -> None:
    seen = {}

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        seen["read3"] = stream.read(3)
        seen["line2"] = stream.readline(2)
        seen["line"] = stream.readline()
        seen["lines"] = stream.readlines()
        seen["end"] = stream.read()
        start_response("200 OK", [])
        return [b"ok"]

    run = serve(app)
    body = b"abcdef\nline two\nthree\n"
    with run.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(body), body)
        )
        assert statuses(read_all(sock)) == [200]
    assert seen == {
        "read3": b"abc",
        "line2": b"de",
        "line": b"f\n",
        "lines": [b"line two\n", b"three\n"],
        "end": b"",
    }


@pytest.mark.parametrize(
    "bad",
    ["str body", "no start_response", "bad status"],
)
def test_broken_applications_get_a_500(
    serve: t.Any, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    caplog.set_level(logging.INFO, logger="citus")

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[t.Any]:
        if bad == "str body":
            start_response("200 OK", [])
            return ["text, not bytes"]
        if bad == "bad status":
            start_response("OK", [])
            return [b""]
        return [b"forgot start_response"]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = read_all(sock)
    assert statuses(data) == [500]  # and the connection is closed
    wait_until(lambda: any(r.levelno >= logging.ERROR for r in caplog.records))
