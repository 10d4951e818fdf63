"""The reloader: a supervisor that restarts the serving process on changes.

:func:`run_with_reloader` runs in the first process and supervises serving
children (:mod:`.supervisor`); each child calls :func:`start_child_watcher`,
which watches files with a backend (:mod:`.stat_backend` polls,
:mod:`.watchdog_backend` uses file-system events) and makes the child stop and
exit with :data:`EXIT_RELOAD` when one of them really changed (:mod:`.base`).
``reloader_type="auto"`` picks ``watchdog`` when it can be imported, else
``stat``. See ``docs/reloader.md`` for users and ``docs/internals.md`` for the
protocol between the processes.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
import typing as t

from .base import Backend

if t.TYPE_CHECKING:
    import ssl

    from ..debug import DebuggedApplication

__all__ = [
    "BACKENDS",
    "EXIT_FATAL",
    "EXIT_RELOAD",
    "EXIT_USAGE",
    "ReloaderError",
    "check_options",
    "is_first_start",
    "is_running_from_reloader",
    "on_reload",
    "run_with_reloader",
    "share_connections",
    "start_child_watcher",
    "wait_if_spare",
    "watch_files_of",
]

#: Set to ``"true"`` in the environment of the serving child.
RUN_MAIN_ENV = "CITUS_RUN_MAIN"
#: The number of the serving child: ``"0"`` for the first, then 1, 2, ...
GENERATION_ENV = "CITUS_RUN_GENERATION"
#: The child's exit status that asks the supervisor for a restart.
EXIT_RELOAD = 3
#: The child's exit status that stops the supervisor too (an app that fails to
#: load at start, or on any load with ``--eager-loading``); it exits with 1.
EXIT_FATAL = 4
#: Like :data:`EXIT_FATAL`, for a usage error (a wrong ``--app``) found by the
#: child: the supervisor stops too and exits with 2, click's usage-error status.
EXIT_USAGE = 5

#: Seconds between two looks of the supervisor at the dependency and env
#: files (at most: ``reloader_interval`` when shorter).
ENVIRONMENT_POLL = 0.5

#: The backend the supervisor resolved ``"auto"`` to, for its children.
BACKEND_ENV = "CITUS_RELOADER_BACKEND"

#: The reloader backends by name, each ``"module:class"`` below this package.
#: ``reloader_type`` also accepts ``"auto"``: ``watchdog`` when importable,
#: else ``stat``.
BACKENDS: dict[str, str] = {
    "stat": "stat_backend:StatBackend",
    "watchdog": "watchdog_backend:WatchdogBackend",
}


class ReloaderError(RuntimeError):
    """The reloader cannot run as asked (a backend's package is missing)."""


def is_running_from_reloader() -> bool:
    """True inside the serving child process that the reloader runs.

    Reads ``CITUS_RUN_MAIN`` (``"true"`` in the child).
    """
    return os.environ.get(RUN_MAIN_ENV) == "true"


def is_first_start() -> bool:
    """True unless this is a serving child started again after a change.

    Reads ``CITUS_RUN_GENERATION`` (``"0"`` for the first child).
    """
    return os.environ.get(GENERATION_ENV, "0") == "0"


def resolve_backend(reloader_type: str) -> str:
    """The backend name that ``reloader_type`` stands for (``"auto"`` resolved).

    :raises ValueError: for an unknown name.
    :raises ReloaderError: for ``"watchdog"`` when watchdog is not installed.
    """
    _check_type(reloader_type)
    if reloader_type in ("auto", "watchdog"):
        # Finding it is enough here (importing it costs 30 ms at each start);
        # a child whose import then fails falls back to polling, and says so.
        try:
            found = importlib.util.find_spec("watchdog.observers") is not None
            problem = "not installed"
        except (ImportError, ValueError) as error:
            found, problem = False, str(error)
        if not found:
            if reloader_type == "watchdog":
                raise ReloaderError(
                    "The 'watchdog' reloader needs the watchdog package, which"
                    f" could not be found ({problem}). Install 'citus[watchdog]',"
                    " or use the 'stat' reloader."
                )
            return "stat"
        return "watchdog"
    return reloader_type


def make_backend(name: str, interval: float, *, verify: bool = False) -> Backend:
    """A new backend ``name`` (already resolved) polling every ``interval`` s.

    :param verify: with events, test that they arrive from each mount (the
        serving child's watcher; see :mod:`.watchdog_backend`).
    """
    module_name, _, class_name = BACKENDS[name].partition(":")
    module = importlib.import_module(f".{module_name}", __name__)
    kind = getattr(module, class_name)
    backend: Backend = kind(interval, verify=True) if verify else kind(interval)
    return backend


def check_options(reloader_type: str, interval: float) -> None:
    """Refuse the ``reloader_type`` and ``interval`` that
    :func:`run_with_reloader` would refuse, before anything is bound or printed.

    :raises ValueError: for an unknown name or an interval that is not a
        positive number.
    """
    _check_type(reloader_type)
    _check_interval(interval)


def _check_type(reloader_type: str) -> None:
    valid = ["auto", *BACKENDS]
    if reloader_type not in valid:
        names = ", ".join(repr(name) for name in valid)
        raise ValueError(
            f"Unknown reloader_type {reloader_type!r}: use one of {names}."
        )


def _check_interval(interval: float) -> float:
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(
            f"reloader_interval must be a number of seconds, got {interval!r}."
        )
    if not interval > 0:
        raise ValueError(
            f"reloader_interval must be more than 0 seconds, got {interval!r}:"
            " pass 1 for one polling pass per second."
        )
    return float(interval)


def run_with_reloader(
    sockets: list[socket.socket],
    *,
    extra_files: t.Iterable[str] | None = None,
    exclude_patterns: t.Iterable[str] | None = None,
    interval: float = 1,
    reloader_type: str = "auto",
    ssl_context: ssl.SSLContext | None = None,
    debugger: DebuggedApplication | None = None,
    live_reload: bool = False,
) -> int:
    """Supervise serving children on ``sockets`` until Ctrl+C.

    Starts this program again as a child (same interpreter, arguments and
    environment, plus ``CITUS_RUN_MAIN=true``, ``CITUS_RUN_GENERATION``,
    ``CITUS_SERVER_FDS`` and the reloader's control variables), restarts it
    when it reports a change, and while a crashed child is down answers
    requests itself with a page showing its error, until a watched file
    changes (its error output is shown only in debug mode, to trusted
    requests). Prints `` * Restarting with <backend>`` first. A change of the
    project's dependencies, of the installed packages or of an env file
    restarts cold: the env files are read again and a new child starts
    without a warm spare (see :mod:`.environment`).

    :param sockets: the bound, listening sockets, kept open across restarts.
    :param extra_files: more files to watch.
    :param exclude_patterns: :mod:`fnmatch` patterns of paths not to watch.
    :param interval: seconds between polls of the ``stat`` backend.
    :param reloader_type: ``"auto"``, ``"stat"`` or ``"watchdog"``.
    :param ssl_context: the server's TLS context, for the error page.
    :param debugger: the debugger, when it is on: the error page then shows
        the crash to the requests it trusts (a local ``Host``, same origin).
        Without it the page only says that the app failed to load.
    :param live_reload: the error page carries live reload's script, and open
        pages reload once a child serves again.
    :returns: the status to exit with: 0 after Ctrl+C (or SIGTERM), 1 when a
        child exited with :data:`EXIT_FATAL`, 2 with :data:`EXIT_USAGE`. Any
        other end of a child, exit status 0 included, waits for a change.
    :raises ValueError: for an unknown ``reloader_type`` or a bad ``interval``.
    :raises ReloaderError: when the chosen backend cannot run.
    """
    from .supervisor import Supervisor

    interval = _check_interval(interval)
    name = resolve_backend(reloader_type)

    def label() -> str:
        if name != "watchdog":
            return name
        from .watchdog_backend import observer_label

        return f"watchdog ({observer_label()})"

    extra = [os.path.abspath(p) for p in (extra_files or ())]
    supervisor = Supervisor(
        sockets,
        lambda: make_backend(name, interval),
        label,
        extra_files=extra,
        exclude_patterns=list(exclude_patterns or ()),
        ssl_context=ssl_context,
        child_env={BACKEND_ENV: name},
        trust=debugger.trusts_request if debugger is not None else None,
        live_reload=live_reload,
        watch_environment=True,
        environment_interval=min(interval, ENVIRONMENT_POLL),
    )
    return supervisor.run()


def start_child_watcher(
    *,
    extra_files: t.Iterable[str] | None = None,
    exclude_patterns: t.Iterable[str] | None = None,
    interval: float = 1,
    reloader_type: str = "auto",
    stop_serving: t.Callable[[], None] | None = None,
) -> None:
    """In the serving child: watch files and reload when one changes.

    Watches, in a daemon thread, the files of every imported module (scanned
    again as modules are imported) except the standard library and
    site-packages, ``extra_files``, new ``.py`` files in the project's folders
    and the files given to :func:`watch_files_of`. On a real change it logs
    `` * Detected change in 'hello.py', reloading``, tells the supervisor,
    calls ``stop_serving`` (the server stops accepting and finishes its
    requests) and exits with :data:`EXIT_RELOAD` at the latest after a short
    grace period. When this child was started by a change, logs
    `` * Reloaded in 0.21 s``.

    Reads ``CITUS_RELOADER_FD`` (the control socket; its end-of-file means the
    supervisor is gone and the child exits), ``CITUS_RELOADER_CHANGED_AT``,
    ``CITUS_RELOADER_SPAWNED_AT`` and ``CITUS_RELOADER_WATCH_SITE_PACKAGES``
    (``1`` to watch loaded modules from site-packages too).

    :param extra_files: more files to watch.
    :param exclude_patterns: :mod:`fnmatch` patterns of paths not to watch.
    :param interval: seconds between polls of the ``stat`` backend.
    :param reloader_type: ``"auto"``, ``"stat"`` or ``"watchdog"``.
    :param stop_serving: stops the server's accept loop (``Server.shutdown``).
    """
    from . import child

    interval = _check_interval(interval)
    name = os.environ.get(BACKEND_ENV) or reloader_type
    if name not in BACKENDS:
        name = resolve_backend(reloader_type)
    child.start(
        lambda: make_backend(name, interval, verify=name == "watchdog"),
        extra_files=[os.path.abspath(p) for p in (extra_files or ())],
        exclude_patterns=list(exclude_patterns or ()),
        stop_serving=stop_serving,
    )


def wait_if_spare() -> None:
    """In a serving child, before loading the application: wait if this child
    is a spare.

    The supervisor starts the next child ahead of time (a *spare*), which
    imports the server and waits here, before any of the user's code runs,
    until a change calls it in: a reload then costs only the application's own
    import. While it waits it also imports the libraries that the serving
    child imported (see :mod:`.preload`; ``CITUS_RELOADER_PRELOAD=0``, which
    ``citus run --no-preload`` sets, turns that off). Programs that call this
    (``citus run`` does) tell the supervisor that they can wait this way; for
    others no spare is ever started. Outside a spare it returns at once.

    Reads ``CITUS_RELOADER_SPARE`` (``1`` in a spare); set
    ``CITUS_RELOADER_PRESTART=0`` in the supervisor's environment to start no
    spares at all.
    """
    from . import child

    child.wait_if_spare()


def share_connections(
    adopt: t.Callable[[list[socket.socket]], None],
) -> t.Callable[[list[socket.socket]], bool] | None:
    """In the serving child: let kept-alive connections survive reloads.

    The connections that the previous child handed over are given to
    ``adopt`` (from another thread, at once or whenever they arrive: the
    server watches them as if it had accepted them). The function returned
    hands this child's connections on at its own reload, through the
    supervisor, to the next child; it returns False when they could not be
    sent (the caller then closes them as before). Either way the caller
    closes its own copies, which does not end the connections.

    Returns ``None`` outside a reloader child and where open connections
    cannot move between processes (Windows): idle connections are then
    closed at a reload, as before. Connections that carry TLS cannot move
    either (their encryption state lives in the process): the caller does
    not share them.
    """
    from . import child

    return child.share_connections(adopt)


def reload_requested() -> bool:
    """True in a serving child that has begun to stop for a reload."""
    from . import child

    return child.reload_requested()


def on_reload(listener: t.Callable[[], None]) -> None:
    """In a serving child: call ``listener`` once the server has stopped
    accepting for a reload, before the process exits.

    Live reload ends its event streams there, so that open pages connect
    again at once and reach the next child.
    """
    from . import child

    child.on_reload(listener)


def watch_files_of(error: BaseException) -> None:
    """In the serving child: also watch the files named by ``error``.

    Called when the application fails to import, so that saving the fix in
    any file of the traceback (or a :exc:`SyntaxError`'s file) reloads. Files
    of the standard library and site-packages are left out.
    """
    from . import child

    child.watch_files_of(error)
