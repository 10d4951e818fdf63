"""Worker threads for ``threaded=True`` (and for TLS handshakes).

A few threads start as work arrives; the loop adds one more whenever queued
work has waited longer than :data:`STARVED`, so that a request holding its
thread (a stream, a slow upstream) cannot starve the others. Threads above
the base ones exit after :data:`IDLE_THREAD_EXIT` idle seconds.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t
from collections import deque

from .._log import log_error

if t.TYPE_CHECKING:
    from ._connection import Client

logger = logging.getLogger("citus")

#: Worker threads started as work arrives; more only when work waits.
BASE_THREADS = 4
#: Seconds queued work may wait before another worker thread is started.
STARVED = 0.02
#: Idle threads above the base ones exit after this many seconds.
IDLE_THREAD_EXIT = 10.0


class Pool:
    """Worker threads: a few to start with, more when work waits too long.

    Requests are short and share the GIL, so a handful of threads serve them
    fastest; a request that holds its thread for long (a stream, a slow
    upstream) must not starve the others, so when work has waited more than
    ``STARVED`` seconds :meth:`check` adds a thread, up to ``max_threads``.
    """

    def __init__(
        self, handler: t.Callable[[Client], None], base: int, max_threads: int
    ) -> None:
        self._handler = handler
        self._base = base
        self._max = max(base, max_threads)
        self._queue: deque[tuple[float, Client | None]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._start_failed = False

    @property
    def waiting(self) -> bool:
        """Whether work is queued (the loop then checks for starvation)."""
        return bool(self._queue)

    def submit(self, item: Client) -> None:
        with self._cond:
            self._queue.append((time.monotonic(), item))
            if self._idle >= len(self._queue):
                self._cond.notify()
                return
            if len(self._threads) >= self._base:
                return
            thread = self._new_thread()
        self._start(thread)

    def check(self, now: float) -> None:
        """Add a thread if the oldest queued work waited too long."""
        with self._cond:
            if not self._queue or now - self._queue[0][0] < STARVED:
                return
            if self._idle or len(self._threads) >= self._max:
                return
            thread = self._new_thread()
        self._start(thread)

    def _start(self, thread: threading.Thread) -> None:
        """Start ``thread``; if the system refuses, forget it and say so once."""
        try:
            thread.start()
        except RuntimeError as error:  # "can't start new thread"
            with self._cond:
                if thread in self._threads:
                    self._threads.remove(thread)
                warn = not self._start_failed
                self._start_failed = True
            if warn:
                log_error(
                    f"Cannot start another worker thread: {error}. Requests wait"
                    " for the running ones; lower the load or raise the limit on"
                    " threads (ulimit -u)."
                )

    def _new_thread(self) -> threading.Thread:
        thread = threading.Thread(
            target=self._work,
            name=f"citus-worker-{len(self._threads)}",
            daemon=True,
        )
        self._threads.append(thread)
        return thread

    def _work(self) -> None:
        cond = self._cond
        queue = self._queue
        handler = self._handler
        while True:
            with cond:
                while not queue:
                    self._idle += 1
                    woken = cond.wait(IDLE_THREAD_EXIT)
                    self._idle -= 1
                    me = threading.current_thread()
                    if (
                        not woken
                        and not queue
                        and len(self._threads) > self._base
                        and me in self._threads
                    ):
                        self._threads.remove(me)
                        return
                item = queue.popleft()[1]
            if item is None:
                return
            try:
                handler(item)
            except Exception:
                # passthrough_errors (or a bug): the thread lives on.
                logger.exception("Error in a worker thread:")

    def stop(self, timeout: float) -> None:
        """Ask every thread to exit; wait up to ``timeout`` seconds in all.

        Never raises and never waits longer: work still queued is dropped (its
        connections are closed by then), and a thread that was created but
        never started (Ctrl+C between the two steps) is not waited for.
        """
        with self._cond:
            threads = list(self._threads)
            self._threads = []
            self._queue.clear()
            for _ in threads:
                self._queue.append((0.0, None))
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread.ident is None or thread is threading.current_thread():
                continue
            try:
                thread.join(max(0.0, deadline - time.monotonic()))
            except RuntimeError:  # pragma: no cover - not started after all
                pass
