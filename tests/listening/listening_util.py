"""Helpers shared by the listening tests: raw loopback clients, no mocks."""

from __future__ import annotations

import socket


def connect_and_accept(
    listener: socket.socket, address: tuple[str, int]
) -> tuple[str, int]:
    """Connect to ``address``, accept on ``listener``; the peer address seen."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(address)
        listener.settimeout(5)
        conn, peer = listener.accept()
        conn.close()
    return str(peer[0]), int(peer[1])


def http_get(
    address: tuple[str, int] | str, path: str = "/", host: str = "localhost"
) -> bytes:
    """Send ``GET path`` over TCP (``(host, port)``) or a Unix socket (a path);
    return everything the server sends until it closes."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


class PtyProcess:
    """A process whose standard streams are a pseudo-terminal, as in a shell.

    A thread collects what it writes; :meth:`wait_for` polls that with a
    deadline. Use as a context manager: the process is killed by PID on exit.
    """

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import os
        import pty
        import subprocess
        import threading

        self._master, slave = pty.openpty()
        full_env = dict(os.environ)
        for name in ("NO_COLOR", "FORCE_COLOR", "CITUS_RUN_MAIN", "CITUS_SERVER_FDS"):
            full_env.pop(name, None)
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=full_env
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        import os

        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: the other side is closed
                data = b""
            with self._cond:
                if not data:
                    self._done = True
                    self._cond.notify_all()
                    return
                self._chunks.append(data)
                self._cond.notify_all()

    @property
    def output(self) -> bytes:
        with self._cond:
            return b"".join(self._chunks)

    def wait_for(self, needle: bytes, timeout: float = 20.0) -> bytes:
        """Wait until the output contains ``needle``; return the output."""
        import time

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = b"".join(self._chunks)
                if needle in text:
                    return text
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._done:
                    raise AssertionError(f"{needle!r} not in output: {text!r}")
                self._cond.wait(remaining)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to end and for its output to be read."""
        code = self.proc.wait(timeout)
        self._thread.join(5)
        return code

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._thread.join(5)
        os.close(self._master)
