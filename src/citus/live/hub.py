"""The event streams of one serving process, held by one thread.

Each open page keeps one connection to ``/__citus_live__/events``. The
server hands that connection's socket over (:data:`citus.serving.wsgi.
TAKE_SOCKET_KEY`) and :class:`Hub` keeps it, non-blocking, in one selector
served by one daemon thread: an idle stream costs a file descriptor, never
a thread, so it cannot hold up the server's pool (or, without threads, the
server), a reload, a shutdown or Ctrl+C.

What goes down a stream (Server-Sent Events, a body that ends with the
connection):

- ``hello`` with ``{"id": ID}`` when it opens: the id names this process and
  its revision, and a page served under another id reloads itself;
- ``reload`` with the new id after templates or static files changed;
- ``css`` with ``{"paths": [...]}`` after stylesheets changed;
- the end of the stream when this process stops for a reload: the page
  connects again at once and reaches the next process.

A stream that cannot take an event at once (its client stopped reading) is
closed rather than waited for.
"""

from __future__ import annotations

import json
import secrets
import selectors
import socket
import ssl
import threading
import typing as t

#: The response head of every stream.
HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-store\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Connection: close\r\n\r\n"
)


def event(name: str, data: dict[str, t.Any]) -> bytes:
    """One Server-Sent Event."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class Hub:
    """Holds the streams of this process and sends them events.

    :param token: names the process that serves (each start of the server
        gets a new one); the id sent to pages is ``token.revision``.
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_hex(6)
        self.revision = 0
        self._lock = threading.Lock()
        self._streams: dict[int, socket.socket] = {}
        self._selector: selectors.BaseSelector | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None
        self.closing = False

    @property
    def id(self) -> str:
        """The id of what this process serves now."""
        return f"{self.token}.{self.revision}"

    @property
    def count(self) -> int:
        """How many streams are open."""
        with self._lock:
            return len(self._streams)

    def add(self, sock: socket.socket) -> None:
        """Answer a stream request on ``sock`` and keep it open.

        While this process stops (:meth:`close_all`), the stream ends at
        once: the page asks again and reaches the next process.
        """
        try:
            sock.setblocking(False)
            with self._lock:
                closing = self.closing
                hello = event("hello", {"id": self.id})
            data = HEAD if closing else HEAD + hello
            sent = sock.send(data)
            if closing or sent != len(data):
                _close(sock)
                return
        except (OSError, ValueError):
            _close(sock)
            return
        with self._lock:
            if self.closing:
                _close(sock)
                return
            selector = self._ensure_thread()
            fd = sock.fileno()
            self._streams[fd] = sock
            try:
                selector.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError, KeyError):
                self._streams.pop(fd, None)
                _close(sock)
                return
        self._poke()

    def broadcast(self, name: str, data: dict[str, t.Any]) -> int:
        """Send one event to every stream; return how many took it."""
        payload = event(name, data)
        with self._lock:
            streams = list(self._streams.items())
        took = 0
        for fd, sock in streams:
            try:
                if sock.send(payload) == len(payload):
                    took += 1
                    continue
            except (OSError, ValueError):
                pass
            self._drop(fd)
        return took

    def bump(self) -> str:
        """A new revision (templates or files changed): every page reloads."""
        with self._lock:
            self.revision += 1
            new = self.id
        self.broadcast("reload", {"id": new})
        return new

    def close_all(self) -> None:
        """End every stream now, and every stream asked for from now on."""
        with self._lock:
            self.closing = True
            streams = list(self._streams)
        for fd in streams:
            self._drop(fd)

    # --- the thread ------------------------------------------------------------

    def _ensure_thread(self) -> selectors.BaseSelector:
        """The selector, and its thread started (called with the lock held)."""
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            self._wake = socket.socketpair()
            self._wake[0].setblocking(False)
            self._selector.register(self._wake[0], selectors.EVENT_READ)
            self._thread = threading.Thread(
                target=self._run, args=(self._selector,), name="citus-live", daemon=True
            )
            self._thread.start()
        return self._selector

    def _poke(self) -> None:
        wake = self._wake
        if wake is not None:
            try:
                wake[1].send(b"x")
            except OSError:
                pass

    def _run(self, selector: selectors.BaseSelector) -> None:
        """Wait for streams to close (a page went away) and forget them."""
        assert self._wake is not None
        wake = self._wake[0]
        while True:
            try:
                ready = selector.select()
            except (OSError, ValueError):
                return
            for key, _ in ready:
                sock = t.cast(socket.socket, key.fileobj)
                if sock is wake:
                    try:
                        while wake.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                try:
                    data = sock.recv(4096)
                except (
                    BlockingIOError,
                    InterruptedError,
                    ssl.SSLWantReadError,
                    ssl.SSLWantWriteError,
                ):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._drop(key.fd)

    def _drop(self, fd: int) -> None:
        with self._lock:
            sock = self._streams.pop(fd, None)
            selector = self._selector
            if sock is None:
                return
            if selector is not None:
                try:
                    selector.unregister(sock)
                except (KeyError, ValueError, OSError):
                    pass
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
