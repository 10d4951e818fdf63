"""Slow, idle, many and vanishing clients don't hold or break the server."""

from __future__ import annotations

import logging
import socket
import ssl
import sys
import textwrap
import threading
import time
import typing as t
from pathlib import Path

import pytest
from serverkit import is_closed, read_all, read_response, statuses, wait_until

from citus.serving.tls import load_ssl_context

pytestmark = pytest.mark.live_server


def hello(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_slow_headers_are_cut_off(serve: t.Any) -> None:
    run = serve(hello, header_timeout=0.5)
    with run.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        # Keep dribbling a header byte by byte (slowloris): the timer is not reset.
        for byte in b"X-Slow: abcdefgh":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if time.monotonic() - started > 0.8:
                break
            time.sleep(0.05)
        data = read_all(sock)
        elapsed = time.monotonic() - started
    assert statuses(data) == [408]
    assert elapsed < 3


def read_body(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got %d" % len(body)]


def dribble(sock: socket.socket, data: bytes, stop_after: float) -> None:
    """Send ``data`` a byte every 50 ms (slowloris), for at most ``stop_after`` s."""
    started = time.monotonic()
    for byte in data:
        if time.monotonic() - started > stop_after:
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("app", [read_body, hello], ids=["read", "unread"])
def test_slow_body_does_not_hold_a_single_threaded_server(
    serve: t.Any, app: t.Any
) -> None:
    # The I/O timeout is far away: what stops the slow client is the body's
    # own bound, taken from the header timeout.
    run = serve(app, header_timeout=0.5, io_timeout=30)
    with run.connect() as slow:
        started = time.monotonic()
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        slow.sendall(b"a")
        sender = threading.Thread(target=dribble, args=(slow, b"b" * 99, 4.0))
        sender.start()
        try:
            # Another client waits behind the slow one, not for 30 s.
            with run.connect() as other:
                other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert statuses(read_all(other)) == [200]
            assert time.monotonic() - started < 3
            data = read_all(slow)
        finally:
            sender.join(10)
    if app is read_body:
        assert statuses(data) == [408]
    else:
        # The answer went out before the body: the unread rest is not waited for.
        assert statuses(data) == [200]


def test_steady_body_is_not_cut_off(serve: t.Any) -> None:
    # Half a second of grace; a body that keeps coming fast enough gets more.
    run = serve(read_body, header_timeout=0.5)
    size = 1_000_000
    with run.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(10):
            sock.sendall(b"x" * (size // 10))
            time.sleep(0.1)
        assert read_response(sock)[2] == b"got %d" % size


#: A response far bigger than the socket buffers between server and client.
BIG = 16 * 1024 * 1024


def big_answer(environ: dict[str, t.Any], start_response: t.Any) -> t.Any:
    path = environ["PATH_INFO"]
    if environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got %d" % len(body)]
    if path == "/small":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"small"]
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(BIG))],
    )
    if path == "/file":
        return environ["wsgi.file_wrapper"](open(environ["big.file"], "rb"))
    return [b"x" * BIG]


def read_exactly(sock: socket.socket, size: int, pause: float = 0.0) -> bytes:
    """``size`` bytes, with ``pause`` s after every 256 KiB."""
    parts = []
    since_pause = 0
    while size > 0:
        chunk = sock.recv(min(size, 262144))
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
        since_pause += len(chunk)
        if since_pause >= 262144:
            time.sleep(pause)
            since_pause = 0
    return b"".join(parts)


@pytest.fixture
def big_file(tmp_path: Path) -> t.Callable[..., t.Any]:
    path = tmp_path / "big.bin"
    path.write_bytes(b"y" * BIG)

    def app(environ: dict[str, t.Any], start_response: t.Any) -> t.Any:
        environ["big.file"] = str(path)
        return big_answer(environ, start_response)

    return app


#: Each response path: a list, a file (sendfile), and over TLS (no sendfile).
READERS = [("/list", False), ("/file", False), ("/file", True)]
READER_IDS = ["list", "file", "tls"]


@pytest.mark.parametrize(("target", "tls"), READERS, ids=READER_IDS)
def test_slow_reader_does_not_hold_a_single_threaded_server(
    serve: t.Any, big_file: t.Any, target: str, tls: bool
) -> None:
    context = load_ssl_context("adhoc") if tls else None
    run = serve(big_file, header_timeout=0.5, io_timeout=30, ssl_context=context)
    with run.connect(tls=tls) as slow:
        slow.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
        assert slow.recv(5) == b"HTTP/"  # the answer has started
        started = time.monotonic()
        # The slow client reads no more; another one waits seconds, not 30.
        with run.connect(timeout=5, tls=tls) as other:
            other.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other)[2] == b"small"
        assert time.monotonic() - started < 3
        # The slow reader's connection was dropped mid-answer.
        slow.settimeout(5)
        data = b""
        try:
            data = read_all(slow)
        except (ConnectionResetError, ssl.SSLError):
            pass
        assert len(data) < BIG


@pytest.mark.parametrize(("target", "tls"), READERS, ids=READER_IDS)
def test_steady_reader_is_not_cut_off(
    serve: t.Any, big_file: t.Any, target: str, tls: bool
) -> None:
    # Half a second of grace for each stall; a reader that keeps taking the
    # answer gets all of it. A body before it on the same connection changes
    # nothing (it used to cut the file short).
    context = load_ssl_context("adhoc") if tls else None
    run = serve(big_file, header_timeout=0.5, ssl_context=context)
    with run.connect(tls=tls) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        sock.sendall(b"z" * 300000)
        assert read_response(sock)[2] == b"got 300000"
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
        time.sleep(0.3)  # the server's buffers fill while nobody reads
        status, headers, rest = read_response(sock, head_only=True)
        assert int(headers["content-length"]) == BIG
        body = rest + read_exactly(sock, BIG - len(rest), pause=0.02)
        assert len(body) == BIG
        # The connection is still good for another request.
        sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[2] == b"small"


def test_slow_body_with_threads_waits_for_the_io_timeout(serve: t.Any) -> None:
    # A worker thread is held, not the server: the body may take its time.
    run = serve(read_body, header_timeout=0.3, threaded=True)
    with run.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
        dribble(sock, b"abcdefghijkl", 5.0)
        assert read_response(sock)[2] == b"got 12"


def test_idle_keep_alive_connection_is_closed(serve: t.Any) -> None:
    run = serve(hello, keepalive_timeout=0.3)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        started = time.monotonic()
        assert is_closed(sock, timeout=5)
        assert 0.2 < time.monotonic() - started < 3


def test_silent_connection_is_closed(serve: t.Any) -> None:
    run = serve(hello, header_timeout=0.3)
    with run.connect() as sock:
        assert is_closed(sock, timeout=5)


def test_a_thousand_idle_connections_cost_no_threads(serve: t.Any) -> None:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2300:
        wanted = min(hard, 4096)
        if wanted < 2300:
            pytest.skip(f"the open-file limit ({hard}) is below 2,300")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    run = serve(hello, threaded=True)
    threads_before = threading.active_count()
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = socket.socket()
            sock.settimeout(10)
            sock.connect(("127.0.0.1", run.port))
            idle.append(sock)
        # Half of them made one request and stay open with keep-alive.
        for sock in idle[:500]:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock)[0] == 200
        started = time.monotonic()
        with run.connect() as fresh:
            fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(read_all(fresh)) == [200]
        assert time.monotonic() - started < 1.0
        assert threading.active_count() - threads_before < 40
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_streaming_response_does_not_starve_others(serve: t.Any) -> None:
    stop = threading.Event()

    def app(environ: dict[str, t.Any], start_response: t.Any) -> t.Iterator[bytes]:
        if environ["PATH_INFO"] == "/events":
            start_response("200 OK", [("Content-Type", "text/event-stream")])
            while not stop.is_set():
                yield b"data: tick\n\n"
                stop.wait(0.05)
            return
        start_response("200 OK", [])
        yield b"other"

    run = serve(app, threaded=True)
    # More streams than the pool's first threads: it must add threads.
    streams = [run.connect() for _ in range(6)]
    try:
        for sock in streams:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"data: tick" in sock.recv(4096)
        for _ in range(5):
            with run.connect(timeout=3) as sock:
                sock.sendall(
                    b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                assert b"\r\nother\r\n" in read_all(sock)
    finally:
        stop.set()
        for sock in streams:
            sock.close()


def test_client_disconnecting_mid_response(
    serve: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="citus")
    closed = threading.Event()

    class Endless:
        def __iter__(self) -> t.Iterator[bytes]:
            while True:
                yield b"x" * 65536

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, t.Any], start_response: t.Any) -> t.Any:
        if environ["PATH_INFO"] == "/endless":
            start_response("200 OK", [])
            return Endless()
        return hello(environ, start_response)

    run = serve(app, threaded=True)
    sock = run.connect()
    sock.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(1000)
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    sock.close()
    assert closed.wait(10)
    wait_until(lambda: any("disconnected" in r.getMessage() for r in caplog.records))
    assert not any(r.exc_info for r in caplog.records)
    with run.connect() as again:
        again.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert statuses(read_all(again)) == [200]


def test_client_disconnecting_mid_body(serve: t.Any, caplog: t.Any) -> None:
    caplog.set_level(logging.INFO, logger="citus")
    errors: list[BaseException] = []

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as error:
            errors.append(error)
            raise
        start_response("200 OK", [])
        return [b""]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial"
        )
    wait_until(lambda: bool(errors))
    wait_until(
        lambda: any("closed the connection" in r.getMessage() for r in caplog.records)
    )
    assert not any(r.exc_info for r in caplog.records)


def test_malformed_request_is_one_log_line(
    serve: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="citus")
    run = serve(hello)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n")
        assert statuses(read_all(sock)) == [400]
    wait_until(lambda: any("Malformed" in r.getMessage() for r in caplog.records))
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX open-file limit")
def test_running_out_of_file_descriptors(run_python: t.Any, tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import resource, socket
            from citus.serving.server import Server

            def app(environ, start_response):
                start_response("200 OK", [])
                return [b"ok"]

            resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
            sock = socket.create_server(("127.0.0.1", 0))
            print("PORT", sock.getsockname()[1], flush=True)
            Server([sock], app, threaded=True).serve_forever()
            """
        )
    )
    proc = run_python(str(script))
    port = int(proc.wait_for_log(r"PORT (\d+)").group(1))
    hogs = [
        socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(60)
    ]
    proc.wait_for_log("Cannot accept a connection")
    for sock in hogs:
        sock.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if statuses(read_all(sock)) == [200]:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, proc.log.text[-2000:]
        time.sleep(0.05)
    # Paused, not spinning: a handful of lines, not thousands.
    assert proc.log.text.count("Cannot accept") < 20


def sleepy(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(1.0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.mark.parametrize("kept_alive", [False, True], ids=["new", "kept-alive"])
def test_a_request_sent_while_another_holds_the_server_is_answered(
    serve: t.Any, kept_alive: bool
) -> None:
    # Without threads, a one-second request holds the loop past the other
    # connection's header (or keep-alive) timer; that connection's request,
    # sent meanwhile, is answered, not dropped unread.
    run = serve(sleepy, header_timeout=0.4, keepalive_timeout=0.4)
    with run.connect() as other:
        if kept_alive:
            other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other)[2] == b"hello"
        else:
            wait_until(lambda: len(run.server._clients) == 1)
        with run.connect() as long:
            long.sendall(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.1)  # the long request has started
            other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(long)[2] == b"hello"
        assert read_response(other)[2] == b"hello"
