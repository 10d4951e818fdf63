"""The poller: one wait for the listening sockets and every idle connection.

``epoll`` on Linux (one-shot for connections, so a connection that a thread
is reading is never reported twice); :mod:`selectors` elsewhere, where other
threads hand connections back through a queue that the polling thread (the
last to call :meth:`Poller.own`) registers. :meth:`Poller.wake` interrupts a
wait from any thread or a signal handler.
"""

from __future__ import annotations

import selectors
import socket
import threading
import typing as t
from collections import deque

from .._compat import EPOLLIN, EPOLLIN_ONESHOT, open_epoll


class Poller:
    """Watches listening sockets and idle connections for readability.

    Connections are one-shot: once reported, a connection is not reported
    again until :meth:`rearm` (callable from any thread) is called for it.
    """

    def __init__(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.wake_fd = self._wake_r.fileno()
        self._epoll: t.Any = None
        self._selector: selectors.BaseSelector | None = None
        self._pending: deque[int] = deque()
        self._ready: deque[int] = deque()
        self._main = threading.get_ident()
        self._epoll = open_epoll()
        if self._epoll is not None:
            self._epoll.register(self.wake_fd, EPOLLIN)
        else:
            self._selector = selectors.DefaultSelector()
            self._selector.register(self.wake_fd, selectors.EVENT_READ)

    def own(self) -> None:
        """Make the calling thread the one that polls from now on (where
        registrations are not thread-safe, only it makes them directly)."""
        self._main = threading.get_ident()

    def add_listener(self, fd: int) -> None:
        """Watch a listening socket (level-triggered)."""
        if self._epoll is not None:
            self._epoll.register(fd, EPOLLIN)
        else:
            assert self._selector is not None
            self._selector.register(fd, selectors.EVENT_READ)

    def forget(self, fd: int) -> None:
        """Stop watching a connection that is about to be closed."""
        if self._epoll is not None:
            return  # closing the socket removes it from the epoll set
        self.remove(fd)

    def remove(self, fd: int) -> None:
        """Stop watching ``fd`` (a listener, or a connection about to close)."""
        if self._epoll is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass
        elif threading.get_ident() == self._main:
            assert self._selector is not None
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass

    def add_conn(self, fd: int) -> None:
        """Watch a new connection (from the loop's thread)."""
        if self._epoll is not None:
            self._epoll.register(fd, EPOLLIN_ONESHOT)
        else:
            assert self._selector is not None
            self._selector.register(fd, selectors.EVENT_READ)

    def rearm(self, fd: int, first: bool = False) -> None:
        """Watch ``fd`` (again) once it was reported, from any thread.

        ``first`` for a connection that was read before it was ever watched.
        """
        if self._epoll is not None:
            if first:
                self._epoll.register(fd, EPOLLIN_ONESHOT)
            else:
                self._epoll.modify(fd, EPOLLIN_ONESHOT)
        elif threading.get_ident() == self._main:
            assert self._selector is not None
            self._selector.register(fd, selectors.EVENT_READ)
        else:
            self._pending.append(fd)
            self.wake()

    def push_ready(self, fd: int) -> None:
        """Report ``fd`` as ready at the next :meth:`poll` (from any thread)."""
        self._ready.append(fd)
        self.wake()

    def wake(self) -> None:
        """Make :meth:`poll` return now (safe from signal handlers)."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def poll(self, timeout: float, listeners: set[int]) -> list[int]:
        """The ready file descriptors (connections are unwatched until rearmed)."""
        if self._epoll is not None:
            try:
                events = self._epoll.poll(timeout)
            except InterruptedError:
                return []
            ready = [fd for fd, _ in events]
        else:
            selector = self._selector
            assert selector is not None
            while self._pending:
                fd = self._pending.popleft()
                try:
                    selector.register(fd, selectors.EVENT_READ)
                except (KeyError, ValueError, OSError):
                    pass
            ready = [key.fd for key, _ in selector.select(timeout)]
            for fd in ready:
                if fd not in listeners and fd != self.wake_fd:
                    selector.unregister(fd)
        if self.wake_fd in ready:
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass
        while self._ready:
            ready.append(self._ready.popleft())
        return ready

    def close(self) -> None:
        """Release the poller and its wake-up sockets."""
        if self._epoll is not None:
            self._epoll.close()
        if self._selector is not None:
            self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
