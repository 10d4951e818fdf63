"""Worker threads for ``threaded=True`` (and for TLS handshakes).

Their work is a connection to serve (a TLS handshake) or the loop itself
(:data:`._relay.LEAD`). A few threads start as work arrives; one more is added
whenever queued work has waited longer than :data:`STARVED`, so that requests
holding their threads (streams, slow upstreams) cannot starve the others.
Threads above the base ones exit after :data:`IDLE_THREAD_EXIT` idle seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import typing as t

from .._log import log_error

#: The work a pool's threads are handed.
Work = t.TypeVar("Work")

logger = logging.getLogger("citus")

#: Worker threads started as work arrives; more only when work waits.
BASE_THREADS = 4
#: Seconds queued work may wait before another worker thread is started.
STARVED = 0.02
#: Idle threads above the base ones exit after this many seconds.
IDLE_THREAD_EXIT = 10.0


class Pool(t.Generic[Work]):
    """Worker threads: a few to start with, more when work waits too long.

    Requests are short and share the GIL, so a handful of threads serve them
    fastest; work that holds its thread for long (a stream, a slow upstream)
    must not starve the rest, so when work has waited more than ``STARVED``
    seconds :meth:`check` adds a thread, up to ``max_threads``.
    """

    def __init__(
        self, handler: t.Callable[[Work], None], base: int, max_threads: int
    ) -> None:
        self._handler = handler
        self._base = base
        self._max = max(base, max_threads)
        # A C queue: one call to hand work over and one to wait for it, where
        # a Condition costs a new lock and several acquisitions per request.
        self._queue: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _threads
        self._threads: list[threading.Thread] = []
        #: When work last moved: taken by a thread, or queued into an empty
        #: queue. Work that waits longer than STARVED past it means every
        #: thread is held.
        self._moved = 0.0
        self._start_failed = False
        #: Set by :meth:`stop`: no more work, no more threads.
        self._stopped = False

    @property
    def waiting(self) -> bool:
        """Whether work is queued (the loop then checks for starvation)."""
        return not self._queue.empty()

    def submit(self, item: Work) -> None:
        """Queue ``item`` for a worker thread (starting one of the first few)."""
        if self._stopped:
            return  # (its connection is closed by the server's stop)
        work = self._queue
        if work.empty():
            self._moved = time.monotonic()
        work.put(item)
        if len(self._threads) < self._base:
            with self._lock:
                if len(self._threads) >= self._base or self._stopped:
                    return
                thread = self._new_thread()
            self._start(thread)

    def check(self, now: float) -> None:
        """Add a thread if queued work waited too long."""
        if self._queue.empty() or now - self._moved < STARVED:
            return
        with self._lock:
            if len(self._threads) >= self._max or self._stopped:
                return
            thread = self._new_thread()
        self._moved = now  # give it time to take the work
        self._start(thread)

    def _start(self, thread: threading.Thread) -> None:
        """Start ``thread``; if the system refuses, forget it and say so once."""
        try:
            thread.start()
        except RuntimeError as error:  # "can't start new thread"
            with self._lock:
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
        get = self._queue.get
        handler = self._handler
        me = threading.current_thread()
        while True:
            try:
                item = get(timeout=IDLE_THREAD_EXIT)
            except queue.Empty:
                with self._lock:
                    if len(self._threads) > self._base and me in self._threads:
                        self._threads.remove(me)
                        return
                continue
            if item is None:
                return
            self._moved = time.monotonic()
            try:
                handler(item)
            except BaseException:
                # passthrough_errors (even a SystemExit) or a bug: the
                # thread lives on.
                logger.exception("Error in a worker thread:")

    def stop(self, timeout: float) -> None:
        """Ask every thread to exit; wait up to ``timeout`` seconds in all.

        Never raises and never waits longer: work still queued is dropped (its
        connections are closed by then), and a thread that was created but
        never started (Ctrl+C between the two steps) is not waited for.
        """
        with self._lock:
            # From here on, submit() and check() start no thread: one that
            # took a stop marker meant for another would leave that one
            # waiting for work until the deadline.
            self._stopped = True
            threads = list(self._threads)
            self._threads = []
        work = self._queue
        while True:
            try:
                work.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            work.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread.ident is None or thread is threading.current_thread():
                continue
            try:
                thread.join(max(0.0, deadline - time.monotonic()))
            except RuntimeError:  # pragma: no cover - not started after all
                pass
