"""The reloader: a supervisor that restarts the serving process on changes.

Placeholder: the reloader issue replaces this module.
"""

from __future__ import annotations

import os
import socket
import typing as t

#: Set to ``"true"`` in the environment of the serving child.
RUN_MAIN_ENV = "CITUS_RUN_MAIN"
#: The number of the serving child: ``"0"`` for the first, then 1, 2, ...
GENERATION_ENV = "CITUS_RUN_GENERATION"
#: The child's exit status that asks the supervisor for a restart.
EXIT_RELOAD = 3
#: The child's exit status that stops the supervisor too (an app that fails to
#: load at start, or on any load with ``--eager-loading``); it exits with 1.
EXIT_FATAL = 4


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


def is_first_start() -> bool:
    """True unless this is a serving child started again after a change."""
    return os.environ.get(GENERATION_ENV, "0") == "0"


def watch_files_of(error: BaseException) -> None:
    """In the serving child: also watch the files named by ``error``.

    Called when the application fails to import, so that saving the fix in
    any file of the traceback (or a :exc:`SyntaxError`'s file) reloads.
    """
