"""One accepted connection: its socket, its HTTP state, its timers.

:class:`Client` is what the server keeps per connection and the
:class:`.wsgi.Transport` its exchanges write through. The helpers here act on
connections without knowing about the loop: :func:`with_data`
(:func:`readable_within` for plain sockets, which the reloader's error page
uses too) waits once for several connections' next bytes (used while
stopping).
"""

from __future__ import annotations

import os
import selectors
import socket
import ssl
import threading
import time
import typing as t

from .._compat import MSG_DONTWAIT, MSG_WAITALL
from . import http11
from .wsgi import ResponseTimeoutError

#: Bytes asked for per read of a request head.
RECV_SIZE = 65536
#: Bytes asked for per read of a request body (fewer, larger reads).
BODY_RECV_SIZE = 262144
#: Bytes per second a client must keep sending a body at, past its first
#: seconds of grace, when one slow body would hold the whole server
#: (``threaded=False``): each byte received buys ``1 / BODY_MIN_RATE`` s more.
BODY_MIN_RATE = 65536


_local = threading.local()


def _thread_buffer() -> memoryview:
    """This thread's body buffer (one per worker thread, made on first use)."""
    try:
        return t.cast(memoryview, _local.view)
    except AttributeError:
        _local.view = memoryview(bytearray(BODY_RECV_SIZE))
        return t.cast(memoryview, _local.view)


class Client:
    """One accepted connection: its socket, HTTP state and timers.

    It is the :class:`.wsgi.Transport` of the exchanges on the connection.
    """

    __slots__ = (
        "base",
        "body_wait",
        "busy",
        "client",
        "conn",
        "deadline",
        "fd",
        "head_timer",
        "io_timeout",
        "last_chance",
        "lingering",
        "registered",
        "send_wait",
        "sock",
        "tls",
        "tls_pending",
    )

    def __init__(self, sock: socket.socket, fd: int) -> None:
        self.sock = sock
        self.fd = fd
        self.conn = http11.Connection()
        self.deadline = 0.0
        self.busy = False
        self.head_timer = True
        self.last_chance = False
        #: True once the server ended its side after an answer and only
        #: reads (and drops) what the client still sends (Server._linger).
        self.lingering = False
        self.registered = False
        self.tls = False
        self.tls_pending = False
        self.base: dict[str, t.Any] = {}
        self.client = ""
        #: Seconds left to wait for the current request's body, or ``None``
        #: for no bound but the socket's I/O timeout (see :meth:`recv`).
        self.body_wait: float | None = None
        #: Seconds the client may go without taking more of a response, or
        #: ``None`` for the socket's I/O timeout (see :meth:`send`).
        self.send_wait: float | None = None
        #: The socket's I/O timeout (set_io_timeout), restored after a
        #: bounded read or write.
        self.io_timeout = 30.0

    def recv(self, size: int = 0) -> bytes | memoryview:
        """Bytes of a request body, as a view of this thread's buffer (valid
        until its next ``recv``); empty at the end of input, ``TimeoutError``
        when they come too slowly.

        Without ``size``, what one read brings; with it, up to ``size`` bytes,
        waited for (fewer only at the end of input). Reusing one buffer per
        thread spares a large body fresh memory (and page faults) per piece.

        Too slowly is past the socket's I/O timeout, or, when
        :attr:`body_wait` is set (a server without threads, which this client
        would hold), once the time spent waiting for this body exceeds it;
        every byte received adds ``1 / BODY_MIN_RATE`` seconds.
        """
        view = _thread_buffer()
        try:
            if size <= 0:
                return view[: self._recv_into(view)]
            size = min(size, BODY_RECV_SIZE)
            got = self._recv_into(view[:size])
            while got and got < size:
                more = self._recv_into(view[got:size])
                if not more:
                    break
                got += more
            return view[:got]
        except (BlockingIOError, TimeoutError):
            raise TimeoutError("timed out waiting for the client") from None

    def _recv_into(self, view: memoryview) -> int:
        """One ``recv_into``, bounded by :attr:`body_wait` when it is set."""
        sock = self.sock
        left = self.body_wait
        if left is None:
            return sock.recv_into(view)
        if left <= 0:
            raise TimeoutError
        sock.settimeout(min(left, self.io_timeout))
        started = time.monotonic()
        try:
            got = sock.recv_into(view)
        finally:
            self.body_wait = left - (time.monotonic() - started)
            sock.settimeout(self.io_timeout)
        self.body_wait += got / BODY_MIN_RATE
        return got

    def recv_body(self, size: int) -> bytes | None:
        """Up to ``size`` body bytes in one new ``bytes``, copied there by the
        kernel: the call waits for all of them (``MSG_WAITALL``), and returns
        fewer only when the I/O timeout or a signal cut the wait short, or at
        the end of input (empty). ``None`` over TLS, where reads are bounded
        by :attr:`body_wait`, or without ``MSG_WAITALL``.
        """
        if self.tls or self.body_wait is not None or not MSG_WAITALL:
            return None
        try:
            return self.sock.recv(size, MSG_WAITALL)
        except (BlockingIOError, TimeoutError):
            raise TimeoutError("timed out waiting for the client") from None

    def send(self, data: bytes) -> None:
        """Send all of ``data``; ``OSError`` when the client is gone or
        takes nothing of it for the socket's I/O timeout, or, when
        :attr:`send_wait` is set (a server without threads, which this client
        would hold), ``ResponseTimeoutError`` once it takes nothing for that
        long.
        """
        if self.send_wait is None:
            self.sock.sendall(data)
            return
        sock = self.sock
        view = memoryview(data)
        if MSG_DONTWAIT and not self.tls:
            # Most answers fit in the socket's buffer: one call, no waiting.
            try:
                sent = sock.send(view, MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            view = view[sent:]
            if not view:
                return
        sock.settimeout(0.0)
        try:
            while view:
                try:
                    sent = sock.send(view)
                except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                    self._wait_writable()
                    continue
                view = view[sent:]
        finally:
            sock.settimeout(self.io_timeout)

    def sendfile(self, file: t.IO[bytes], offset: int, count: int) -> int | None:
        """Send part of ``file`` with ``os.sendfile``, bounded as :meth:`send`;
        ``None`` where it cannot (TLS, or no ``os.sendfile`` on a server
        without threads: then the file goes through :meth:`send`)."""
        if self.tls:
            return None
        bounded = self.send_wait is not None
        if not hasattr(os, "sendfile"):
            return None if bounded else self.sock.sendfile(file, offset, count)
        out = self.sock.fileno()
        source = file.fileno()
        sent = 0
        if bounded:
            self.sock.settimeout(0.0)
        try:
            while sent < count:
                try:
                    # Blocking, waits at most the I/O timeout (BlockingIOError
                    # then); bounded, never waits here.
                    size = os.sendfile(
                        out, source, offset + sent, min(count - sent, 1 << 20)
                    )
                except BlockingIOError:
                    if not bounded:
                        raise
                    self._wait_writable()
                    continue
                if not size:
                    break
                sent += size
        finally:
            if bounded:
                self.sock.settimeout(self.io_timeout)
        return sent

    def _wait_writable(self) -> None:
        """Wait until the client takes more of the response (and makes room
        for the next part), for :attr:`send_wait` seconds at most."""
        wait = self.send_wait
        assert wait is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_WRITE)
            ready = selector.select(min(wait, self.io_timeout))
        if not ready:
            raise ResponseTimeoutError(
                "The client stopped reading the response (timed out)."
            )


def readable_within(
    socks: t.Sequence[socket.socket], wait: float
) -> set[socket.socket]:
    """The sockets among ``socks`` with bytes to read (or at their end)
    within ``wait`` seconds: one wait for all of them."""
    ready: set[socket.socket] = set()
    if not socks:
        return ready
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            try:
                selector.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + wait
        while len(ready) < len(socks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                events = selector.select(remaining)
            except OSError:
                break
            for key, _ in events:
                sock = t.cast(socket.socket, key.fileobj)
                ready.add(sock)
                selector.unregister(sock)
    return ready


def with_data(clients: list[Client], wait: float = 0.2) -> set[Client]:
    """The clients whose request bytes arrive within ``wait`` seconds (one wait
    for all of them)."""
    by_socket = {client.sock: client for client in clients}
    return {by_socket[sock] for sock in readable_within(list(by_socket), wait)}
