"""Raw-socket helpers for the server-core tests (imported by test modules)."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
import typing as t

from citus.serving.server import Server

DEADLINE = 10.0


class Running:
    """A :class:`Server` serving in a thread; stopped and closed by the fixture."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    def connect(self, timeout: float = DEADLINE, tls: bool = False) -> socket.socket:
        """A connection to the server; with ``tls``, over TLS (the server's
        certificate is not checked)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if not tls:
            return sock
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(sock)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "serve_forever did not return"
        self.server.server_close()


def read_response(
    sock: socket.socket, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Read one response (Content-Length, chunked or until close)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a complete head: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if head_only or status in (100, 204, 304):
        return status, headers, rest
    if "content-length" in headers:
        size = int(headers["content-length"])
        while len(rest) < size:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            rest += chunk
        read_response.leftover = rest[size:]  # type: ignore[attr-defined]
        return status, headers, rest[:size]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed mid-chunk")
                rest += chunk
            line, _, rest = rest.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed mid-chunk")
                rest += chunk
            if size == 0:
                return status, headers, body
            body += rest[:size]
            rest = rest[size + 2 :]
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return status, headers, rest
        rest += chunk


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def is_closed(sock: socket.socket, timeout: float = DEADLINE) -> bool:
    """Whether the server closes ``sock`` (reads EOF) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def statuses(data: bytes) -> list[int]:
    """The status codes of all responses in ``data``."""
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def wait_until(predicate: t.Callable[[], bool], timeout: float = DEADLINE) -> None:
    """Poll ``predicate`` until it is true; fail past ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def hello_app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    """A picklable hello-world app for servers in other processes."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def serve_in_process(queue: t.Any, stop: t.Any) -> None:
    """Target of a ``multiprocessing.Process``: serve until ``stop`` is set."""
    from citus.serving import make_server

    server = make_server("127.0.0.1", 0, hello_app, threaded=True)
    threading.Thread(
        target=lambda: (stop.wait(), server.shutdown()), daemon=True
    ).start()
    queue.put(server.port)
    server.serve_forever()
    server.server_close()
