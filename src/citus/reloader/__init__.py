"""The reloader: a supervisor that restarts the serving process on changes.

Placeholder: the reloader issue replaces this module.
"""

from __future__ import annotations

import os
import socket
import typing as t

#: Set to ``"true"`` in the environment of the serving child.
RUN_MAIN_ENV = "CITUS_RUN_MAIN"
#: The child's exit status that asks the supervisor for a restart.
EXIT_RELOAD = 3


def is_running_from_reloader() -> bool:
    """True inside the serving child process that the reloader runs."""
    return os.environ.get(RUN_MAIN_ENV) == "true"


def run_with_reloader(
    sockets: list[socket.socket],
    *,
    extra_files: t.Iterable[str] | None = None,
    exclude_patterns: t.Iterable[str] | None = None,
    interval: float = 1,
    reloader_type: str = "auto",
) -> None:
    """Supervise serving children on ``sockets`` until Ctrl+C."""
    raise NotImplementedError("the reloader is not available yet")


def start_child_watcher(
    *,
    extra_files: t.Iterable[str] | None = None,
    exclude_patterns: t.Iterable[str] | None = None,
    interval: float = 1,
    reloader_type: str = "auto",
) -> None:
    """In the serving child: watch files and exit with :data:`EXIT_RELOAD`."""
    raise NotImplementedError("the reloader is not available yet")
