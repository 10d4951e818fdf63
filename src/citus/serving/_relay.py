"""The relay: with ``threaded=True``, the loop's thread serves requests itself,
and a watchdog hands the loop to another thread when a request holds it.

Handing each request from the loop's thread to a worker costs two thread
wake-ups and a GIL hand-over per request, more than a small request itself.
So the thread that runs the loop (poll, accept) serves the requests it finds
ready, one after the other, as a server without threads would. A request that
takes long (a slow body, a stream, a sleeping view) must not hold the others:
the watchdog looks every :data:`HOLD` seconds, and when the same request has
held the loop's thread since its last look, it gives the loop to another
thread of the pool. The held thread finishes its request, then goes back to
the pool. The watchdog sleeps while no request is served.
"""

from __future__ import annotations

import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from ._pool import Pool

#: Seconds between two looks of the watchdog: a request that holds the loop's
#: thread for one to two of them gets the loop handed to another thread.
HOLD = 0.002
#: Looks without a request after which the watchdog sleeps until one comes.
QUIET_LOOKS = 100
#: Seconds the sleeping watchdog waits at most before looking again (the
#: next request wakes it sooner).
SLEEP = 1.0


class Lead:
    """The pool's work item that tells a thread to run the loop."""

    __slots__ = ()


#: The one work item that runs the loop (see :meth:`Relay.hand_over`).
LEAD = Lead()


class Relay:
    """Who runs the loop: the turn, the request in progress, the watchdog.

    Each hand-over starts a new turn; the thread whose turn it is runs the
    loop, and a thread that finds its turn over after a request leaves it.
    """

    def __init__(self, pool: Pool[t.Any]) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        #: The loop's current turn, one more at every hand-over.
        self.turn = 0
        self._served = 0  # requests started by the loop's thread
        self._inside = False  # whether the loop's thread serves one now
        self._asleep = False
        self._wake = threading.Event()
        self._running = False
        self._thread: threading.Thread | None = None
        #: Set by :meth:`stop`: no thread may run the loop any more.
        self.closed = False

    def start(self) -> None:
        """Start the watchdog and give the loop to a thread of the pool."""
        self._running = True
        self._thread = threading.Thread(
            target=self._watch, name="citus-watchdog", daemon=True
        )
        self._thread.start()
        self._pool.submit(LEAD)

    def stop(self) -> None:
        """End the last turn, and stop the watchdog (waited for: it exits
        within a look).

        A thread that was to run the loop next finds :attr:`closed` set.
        """
        with self._lock:
            self.closed = True
            self.turn += 1
        self._running = False
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(0.5)  # it hands nothing to the pool any more

    def enter(self) -> None:
        """The loop's thread starts serving a connection."""
        self._served += 1
        self._inside = True
        if self._asleep:
            self._asleep = False
            self._wake.set()

    def leave(self, turn: int) -> bool:
        """The loop's thread is done with the connection: whether ``turn`` is
        still the current one (False: the loop went to another thread)."""
        with self._lock:
            if self.turn != turn:
                return False
            self._inside = False
            return True

    def hand_over(self, turn: int) -> None:
        """Give the loop to another thread, unless ``turn`` ended already
        (for a thread that leaves the loop on an error)."""
        with self._lock:
            if self.turn != turn:
                return
            self.turn += 1
            self._inside = False
        self._pool.submit(LEAD)
        self._wake.set()  # the watchdog sees that the loop waits for a thread

    def _watch(self) -> None:
        seen = -1
        quiet = 0
        pool = self._pool
        while self._running:
            if quiet >= QUIET_LOOKS:
                self._asleep = True
                # enter() sets _served before it reads _asleep: either it
                # wakes this wait, or the check below sees its request.
                woken = True
                if self._served == seen and not self._inside:
                    woken = self._wake.wait(SLEEP)
                    self._wake.clear()
                self._asleep = False
                if woken:
                    quiet = 0  # (else: still quiet, asleep again after a look)
            else:
                time.sleep(HOLD)
            with self._lock:
                served = self._served
                held = self._inside and served == seen and not self.closed
                if held:
                    self.turn += 1
                    self._inside = False
            if held:
                pool.submit(LEAD)
            moved = served != seen
            seen = served
            if pool.waiting:
                # The loop (or a handshake) waits for a free thread: keep
                # looking, to add one if it waits too long.
                pool.check(time.monotonic())
                quiet = 0
            elif held or moved:
                quiet = 0
            else:
                quiet += 1
