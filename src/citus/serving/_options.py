"""Checks of the server's options that are made before anything is bound.

Kept apart from :mod:`.server` so that a process that does not serve (the
reloader's supervisor) can check them without importing the server.
"""

from __future__ import annotations

from .._compat import CAN_FORK


def check_concurrency(threaded: bool, processes: int) -> None:
    """Raise :class:`ValueError` for a ``threaded``/``processes`` pair that
    cannot be served (both at once, fewer than one process, forks on Windows).
    """
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise ValueError(
            f"processes must be a whole number, 1 or more, not {processes!r}."
        )
    if threaded and processes > 1:
        raise ValueError(
            "Cannot combine threaded=True with processes > 1: pick one of them."
        )
    if processes > 1 and not CAN_FORK:
        raise ValueError(
            f"processes={processes!r} needs os.fork(), which Windows does not"
            " have: use threaded=True instead."
        )
