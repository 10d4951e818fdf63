"""Starting, stopping and scaling the server: threads, processes, shutdown, TLS."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import sys
import textwrap
import threading
import time
import typing as t
from pathlib import Path

import pytest
from serverkit import read_all, read_response, statuses, wait_until

from citus.serving import make_server
from citus.serving.server import Server

pytestmark = pytest.mark.live_server


def hello(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello from {os.getpid()}".encode()]


def test_make_server_reports_the_port_and_is_a_context_manager() -> None:
    with make_server("127.0.0.1", 0, hello, threaded=True) as server:
        assert server.port and server.port > 0
        assert server.server_address == ("127.0.0.1", server.port)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(read_all(sock)) == [200]
    thread.join(5)
    assert not thread.is_alive()
    assert server.sockets[0].fileno() == -1  # closed by __exit__


def test_threaded_and_processes_together_is_an_error() -> None:
    with pytest.raises(ValueError, match="threaded=True with processes > 1"):
        make_server("127.0.0.1", 0, hello, threaded=True, processes=2)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threaded": True, "processes": 2}, "threaded=True with processes > 1"),
        ({"processes": 0}, "processes must be a whole number, 1 or more, not 0"),
        ({"processes": "2"}, "processes must be a whole number"),
    ],
)
def test_run_simple_refuses_bad_concurrency_before_binding(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    options: dict[str, t.Any],
    message: str,
) -> None:
    from citus.serving import run_simple

    path = tmp_path / "s.sock"
    with pytest.raises(ValueError, match=message):
        run_simple(f"unix://{path}", 0, hello, **options)
    # Nothing was bound (no socket file left behind) and no banner printed.
    assert not path.exists()
    assert "Running on" not in caplog.text


def test_shutdown_returns_fast_and_lets_requests_finish() -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        entered.set()
        release.wait(10)
        start_response("200 OK", [])
        return [b"finished"]

    sock = socket.create_server(("127.0.0.1", 0))
    server = Server([sock], slow, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait(10)
        started = time.monotonic()
        server.shutdown()
        assert time.monotonic() - started < 1.0
        # No new connections are served, the idle one is closed ...
        assert idle.recv(10) == b""
        # ... and the one in flight gets its answer, then is closed.
        release.set()
        data = read_all(client)
        assert data.endswith(b"finished") and b"Connection: close" in data
        thread.join(5)
        assert not thread.is_alive()
        # The listening socket stays open (the reloader reuses it).
        assert sock.fileno() != -1
        client.close()
        idle.close()
    finally:
        release.set()
        server.shutdown()
        thread.join(5)
        server.server_close()
    assert sock.fileno() == -1


def test_shutdown_from_a_signal_handler(run_python: t.Any, tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import signal, socket
            from citus.serving.server import Server

            def app(environ, start_response):
                start_response("200 OK", [])
                return [b"ok"]

            sock = socket.create_server(("127.0.0.1", 0))
            server = Server([sock], app)
            signal.signal(signal.SIGTERM, lambda *a: server.shutdown())
            print("PORT", server.port, flush=True)
            server.serve_forever()
            print("STOPPED, socket open:", sock.fileno() != -1, flush=True)
            server.server_close()
            """
        )
    )
    proc = run_python(str(script))
    proc.wait_for_log(r"PORT \d+")
    started = time.monotonic()
    proc.proc.terminate()
    assert proc.wait(10) == 0
    assert time.monotonic() - started < 2
    assert "STOPPED, socket open: True" in proc.log.text


@pytest.mark.parametrize("threaded", [False, True])
def test_threaded_runs_requests_concurrently(threaded: bool) -> None:
    active = []
    overlap = []
    lock = threading.Lock()

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        with lock:
            active.append(1)
            overlap.append(len(active))
        time.sleep(0.2)
        with lock:
            active.pop()
        start_response("200 OK", [])
        return [b"ok"]

    with make_server("127.0.0.1", 0, app, threaded=threaded) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        socks = [
            socket.create_connection(("127.0.0.1", server.port), timeout=10)
            for _ in range(3)
        ]
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for sock in socks:
            assert statuses(read_all(sock)) == [200]
            sock.close()
    thread.join(5)
    assert (max(overlap) > 1) is threaded


@pytest.mark.skipif(sys.platform == "win32", reason="processes need fork()")
def test_processes_fork_workers_that_share_the_socket(
    run_python: t.Any, tmp_path: Path
) -> None:
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, time
            from citus.serving import make_server

            def app(environ, start_response):
                time.sleep(0.05)
                start_response("200 OK", [])
                return [f"{os.getpid()} {environ['wsgi.multiprocess']}".encode()]

            server = make_server("127.0.0.1", 0, app, processes=2)
            print("PORT", server.port, flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            server.server_close()
            """
        )
    )
    proc = run_python(str(script))
    port = int(proc.wait_for_log(r"PORT (\d+)").group(1))
    pids: set[bytes] = set()
    deadline = time.monotonic() + 15
    while len(pids) < 2 and time.monotonic() < deadline:
        socks = [
            socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)
        ]
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for sock in socks:
            pids.add(read_response(sock)[2])
            sock.close()
    assert len(pids) == 2
    assert all(body.endswith(b" True") for body in pids)
    pids = {body.split()[0] for body in pids}
    assert str(proc.pid).encode() not in pids
    started = time.monotonic()
    proc.interrupt()
    assert proc.wait(10) == 0
    # Every worker stopped at once (none left blocked in accept()).
    assert time.monotonic() - started < 3
    assert "Traceback" not in proc.log.text
    for pid in pids:
        wait_until(lambda pid=pid: not _alive(int(pid)))  # type: ignore[misc]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    "options",
    [
        "threaded=True",
        "threaded=False",
        pytest.param(
            "threaded=False, processes=2",
            marks=pytest.mark.skipif(sys.platform == "win32", reason="no fork"),
        ),
    ],
)
def test_run_simple_stops_on_ctrl_c(
    run_python: t.Any, tmp_path: Path, options: str
) -> None:
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from citus.serving import run_simple

            def app(environ, start_response):
                start_response("200 OK", [])
                return [b"ok"]

            run_simple("127.0.0.1", 0, app, {options})
            print("run_simple returned", flush=True)
            """
        )
    )
    proc = run_python(str(script))
    url = proc.wait_for_url()
    port = int(url.rsplit(":", 1)[1])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(read_all(sock)) == [200]
    # An idle keep-alive connection left open does not hold the exit either.
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        proc.wait_for_log(r'"GET /x HTTP/1.1" 200')
        proc.interrupt()
        assert proc.wait(15) == 0
    finally:
        idle.close()
    assert "run_simple returned" in proc.log.text
    assert "Traceback" not in proc.log.text


def test_run_simple_ctrl_c_with_a_request_in_flight(
    run_python: t.Any, tmp_path: Path
) -> None:
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from citus.serving import run_simple

            def app(environ, start_response):
                print("app entered", flush=True)
                time.sleep(30)
                start_response("200 OK", [])
                return [b"late"]

            run_simple("127.0.0.1", 0, app, threaded=True)
            """
        )
    )
    proc = run_python(str(script))
    url = proc.wait_for_url()
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        proc.wait_for_log("app entered")
        started = time.monotonic()
        proc.interrupt()
        assert proc.wait(15) == 0
        # Ctrl+C gives a stuck request a short grace, not its whole run.
        assert time.monotonic() - started < 10
    assert "Traceback" not in proc.log.text


@pytest.mark.parametrize("threaded", [False, True])
def test_a_server_that_stops_leaves_the_socket_to_another_still_accepting(
    threaded: bool,
) -> None:
    # Two servers of one process on one socket (a reload within a process):
    # the first to stop must not make the socket blocking under the other,
    # whose accept() could then hang while the requests it took wait.
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    first = Server([sock], hello, threaded=threaded)
    second = Server([sock], hello, threaded=threaded)
    threads = [
        threading.Thread(target=server.serve_forever, daemon=True)
        for server in (first, second)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: bool(first._listeners and second._listeners))
        first.shutdown()
        threads[0].join(10)
        assert not sock.getblocking()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(read_all(conn)) == [200]
        second.shutdown()
        threads[1].join(10)
        assert sock.getblocking()  # as it was given, once nobody accepts
    finally:
        for server in (first, second):
            server.shutdown()
        sock.close()


@pytest.mark.parametrize("threaded", [False, True])
def test_listener_made_blocking_by_another_holder_does_not_hang(
    threaded: bool,
) -> None:
    # The reloader's supervisor and child, and forked workers, hold the same
    # listening socket: its blocking flag is shared. A holder that sets it back
    # to blocking must not leave this server stuck in accept().
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = Server([sock], hello, threaded=threaded)
    other = sock.dup()  # another descriptor of the same open socket
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def get() -> list[int]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return statuses(read_all(conn))

    try:
        assert get() == [200]
        other.setblocking(True)
        assert get() == [200]
        assert get() == [200]
        started = time.monotonic()
        server.shutdown()
        thread.join(10)
        assert not thread.is_alive(), "the accept loop hung on a blocking socket"
        assert time.monotonic() - started < 5
    finally:
        other.close()
        server.server_close()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
@pytest.mark.parametrize("options", ["threaded=True", "processes=2"])
def test_run_simple_ctrl_c_before_serving_started(
    run_python: t.Any, tmp_path: Path, options: str
) -> None:
    # Ctrl+C right after the banner, before the server runs: quiet, status 0,
    # and the Unix socket file is removed.
    script = tmp_path / "serve.py"
    path = tmp_path / "s.sock"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging, signal
            from citus.serving import run_simple

            class CtrlC(logging.StreamHandler):
                def emit(self, record):
                    super().emit(record)
                    if record.getMessage() == "Press CTRL+C to quit":
                        signal.raise_signal(signal.SIGINT)

            logging.getLogger("citus").addHandler(CtrlC())

            def app(environ, start_response):
                start_response("200 OK", [])
                return [b"ok"]

            run_simple("unix://{path}", 0, app, {options})
            print("run_simple returned", flush=True)
            """
        )
    )
    proc = run_python(str(script))
    assert proc.wait(15) == 0
    assert "Press CTRL+C to quit" in proc.log.text
    assert "run_simple returned" in proc.log.text
    assert "Traceback" not in proc.log.text
    assert not path.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_ctrl_c_while_forking_workers(run_python: t.Any, tmp_path: Path) -> None:
    # A Ctrl+C that lands while a worker is being forked must neither be lost
    # (in fork's own hooks) nor leave a worker the parent does not know about.
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal
            from citus.serving import run_simple

            def app(environ, start_response):
                start_response("200 OK", [])
                return [b"ok"]

            os.register_at_fork(
                after_in_parent=lambda: signal.raise_signal(signal.SIGINT)
            )
            run_simple("127.0.0.1", 0, app, processes=2)
            print("run_simple returned", flush=True)
            """
        )
    )
    proc = run_python(str(script))
    url = proc.wait_for_url()
    port = int(url.rsplit(":", 1)[1])
    assert proc.wait(20) == 0
    assert "run_simple returned" in proc.log.text
    assert "Traceback" not in proc.log.text
    assert "Exception ignored" not in proc.log.text
    # No worker left behind serving the port.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_pool_stop_skips_a_thread_that_never_started() -> None:
    from citus.serving._pool import Pool

    pool = Pool(lambda client: None, 2, 2)
    # submit() creates a thread, then starts it: Ctrl+C can land in between.
    never_started = pool._new_thread()
    assert never_started.ident is None
    started = time.monotonic()
    pool.stop(5.0)  # no "cannot join thread before it is started"
    assert time.monotonic() - started < 1.0


def test_pool_stop_is_bounded_with_a_stuck_worker() -> None:
    from citus.serving._pool import Pool

    release = threading.Event()
    entered = threading.Event()

    def stuck(client: t.Any) -> None:
        entered.set()
        release.wait(30)

    pool = Pool(stuck, 1, 1)
    try:
        pool.submit(t.cast(t.Any, object()))
        assert entered.wait(10)
        pool.submit(t.cast(t.Any, object()))  # queued behind: dropped by stop()
        started = time.monotonic()
        pool.stop(0.3)
        assert time.monotonic() - started < 2.0
    finally:
        release.set()


def test_pool_starts_no_thread_once_stopped() -> None:
    # A late submit() or check() (the relay's watchdog looks every 2 ms) must
    # not start a thread that takes the stop marker meant for another one,
    # which would then wait for work until stop()'s deadline.
    from citus.serving._pool import Pool

    pool = Pool(lambda item: None, 2, 8)
    pool.submit(t.cast(t.Any, object()))
    pool.submit(t.cast(t.Any, object()))
    started = time.monotonic()
    pool.stop(5.0)
    assert time.monotonic() - started < 1.0
    threads = threading.active_count()
    pool.submit(t.cast(t.Any, object()))
    pool.check(time.monotonic() + 60)
    assert threading.active_count() == threads


def test_pool_survives_a_thread_that_cannot_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from citus.serving._pool import Pool

    class Refused(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    pool = Pool(lambda client: None, 2, 2)
    monkeypatch.setattr(
        pool,
        "_new_thread",
        lambda: pool._threads.append(Refused()) or pool._threads[-1],
    )
    pool.submit(t.cast(t.Any, object()))
    pool.submit(t.cast(t.Any, object()))
    assert pool._threads == []
    assert caplog.text.count("Cannot start another worker thread") == 1
    pool.stop(1.0)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    seen = {}

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return [b"unix"]

    with Server([listener], app) as server:
        assert server.port is None
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_all(sock).endswith(b"unix")
    thread.join(5)
    assert seen["REMOTE_ADDR"]
    assert seen["PATH_INFO"] == "/"


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "c.pem"
    key_file = tmp_path / "k.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.mark.parametrize("threaded", [False, True])
def test_tls(tmp_path: Path, threaded: bool) -> None:
    pytest.importorskip("cryptography")
    context = _self_signed(tmp_path)

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [environ["wsgi.url_scheme"].encode() + b" " + body]

    sock = socket.create_server(("127.0.0.1", 0))
    with Server(
        [sock], app, ssl_context=context, header_timeout=2, threaded=threaded
    ) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        client_context = ssl.create_default_context()
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with client_context.wrap_socket(raw) as tls:
                for _ in range(2):
                    tls.sendall(
                        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n"
                    )
                    tls.sendall(b"y" * 70000)
                    status, _, body = read_response(tls)
                    assert body == b"https " + b"y" * 70000
        # Plain HTTP on the TLS port: a short plain-text 400, then close.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = read_all(raw)
        assert data.startswith(b"HTTP/1.1 400 ")
        assert b"plain HTTP request to an HTTPS server" in data
        # A failed handshake does not stop the server.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x05hello")
            assert read_all(raw) in (b"",) or True
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with client_context.wrap_socket(raw) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert read_all(tls).endswith(b"https ")
    thread.join(5)


def test_shutdown_before_serve_forever_is_not_lost() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    with Server([sock], hello) as server:
        server.shutdown()
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        thread.join(5)
        assert not thread.is_alive()


def test_serving_again_on_the_same_sockets() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    for _ in range(2):
        server = Server([sock], hello, threaded=True)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(read_all(client)) == [200]
        server.shutdown()
        thread.join(5)
        assert not thread.is_alive()
    server.server_close()


def test_half_sent_tls_record_does_not_block_a_single_threaded_server(
    tmp_path: Path,
) -> None:
    pytest.importorskip("cryptography")
    context = _self_signed(tmp_path)
    sock = socket.create_server(("127.0.0.1", 0))
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    with Server([sock], hello, ssl_context=context) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with client_context.wrap_socket(raw) as stuck:
            # A TLS record header announcing 16 KiB, then only 10 bytes of it.
            os.write(stuck.fileno(), b"\x17\x03\x03\x40\x00" + b"x" * 10)
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as r:
                with client_context.wrap_socket(r) as tls:
                    tls.sendall(
                        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    assert statuses(read_all(tls)) == [200]
            assert time.monotonic() - started < 3
    thread.join(5)


def test_in_a_multiprocessing_process_stopped_from_outside() -> None:
    import multiprocessing

    from serverkit import serve_in_process

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    stop = context.Event()
    process = context.Process(target=serve_in_process, args=(queue, stop))
    process.start()
    try:
        port = queue.get(timeout=20)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_all(sock).endswith(b"hello")
        stop.set()
        process.join(10)
        assert process.exitcode == 0
    finally:
        if process.is_alive():
            process.kill()
            process.join(5)
        queue.close()
        queue.join_thread()


@pytest.mark.parametrize("threaded", [False, True])
def test_no_request_is_lost_when_a_new_server_takes_over_the_socket(
    threaded: bool,
) -> None:
    """What a reload does: a new server starts on the listening socket, then the
    old one is shut down. A client that connected to the old one and sends its
    request a moment later is answered, by one server or the other."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = sock.getsockname()[1]
    generation = [0]

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(generation[0]).encode()]

    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client(delay: float) -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                    if delay:
                        time.sleep(delay)  # a client that is slow to send
                    c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    data = read_all(c)
                if not data.startswith(b"HTTP/1.1 200 "):
                    failures.append(repr(data[:60]))
                answered[0] += 1
            except OSError as error:
                failures.append(repr(error))

    servers: list[tuple[Server, threading.Thread]] = []

    def start() -> None:
        server = Server([sock], app, threaded=threaded)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))

    clients = [
        threading.Thread(target=client, args=(delay,), daemon=True)
        for delay in (0, 0, 0.002, 0.02)
    ]
    start()
    for thread in clients:
        thread.start()
    try:
        for n in range(1, 16):
            seen = answered[0]
            wait_until(lambda seen=seen: answered[0] > seen + 8)
            generation[0] = n
            start()
            old, old_thread = servers.pop(0)
            old.shutdown()
            old_thread.join(10)
            assert not old_thread.is_alive()
    finally:
        stop.set()
        for thread in clients:
            thread.join(15)
        for server, thread in servers:
            server.shutdown()
            thread.join(10)
        sock.close()
    assert not failures, failures[:5]
    assert answered[0] > 100
