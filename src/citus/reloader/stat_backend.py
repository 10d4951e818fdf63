"""The ``stat`` backend: poll the watched files every ``reloader_interval`` seconds.

It works everywhere, including where file-system events are not delivered
(network drives, Docker and WSL2 bind mounts), at the cost of up to one
interval of delay. Between passes it sleeps on an event, so an idle server
costs one cheap pass (a ``stat`` per watched file) per interval and nothing
else.
"""

from __future__ import annotations

import threading
import time
import typing as t


class StatBackend:
    """Says "check everything" once per ``interval`` seconds.

    :param interval: seconds between two polling passes.
    """

    name = "stat"

    def __init__(self, interval: float = 1) -> None:
        if interval <= 0:
            raise ValueError(
                f"reloader_interval must be a positive number of seconds, got"
                f" {interval!r}: pass 1 for one polling pass per second."
            )
        self.interval = float(interval)
        self._closed = threading.Event()
        self._next_pass = time.monotonic() + self.interval

    def update(self, files: t.Collection[str], dirs: t.Collection[str]) -> None:
        """Nothing to set up: every pass looks at all the watched files."""

    def wait(self, timeout: float) -> set[str] | None:
        """Sleep until the next pass is due (``None``) or ``timeout`` (empty set)."""
        remaining = self._next_pass - time.monotonic()
        if remaining > timeout:
            self._closed.wait(timeout)
            return set()
        if remaining > 0:
            self._closed.wait(remaining)
        self._next_pass = max(
            self._next_pass + self.interval, time.monotonic() + self.interval / 2
        )
        return None

    def close(self) -> None:
        """Wake up :meth:`wait` for good."""
        self._closed.set()
