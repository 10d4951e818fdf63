"""The serving child's side of the reloader: watch, announce, stop, exit.

The supervisor starts the child with a control socket (``CITUS_RELOADER_FD``).
The child uses it both ways: it reports the files it watches (so that the
supervisor can keep watching them if the child crashes) and announces a reload
the moment it sees a change, so that the supervisor starts the next child while
this one stops accepting and finishes what it is serving; and it reads it,
because end-of-file means the supervisor is gone (even killed with SIGKILL), in
which case the child exits at once instead of outliving it.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import socket
import sys
import threading
import time
import typing as t
from collections import deque

from .._compat import (
    CAN_PASS_CONNECTIONS,
    MAX_PASSED_FDS,
    recv_with_fds,
    send_with_fds,
)
from .._log import echo
from . import BACKEND_ENV, EXIT_RELOAD
from .base import (
    Backend,
    Watcher,
    background_thread,
    display_path,
    files_of_error,
    record_import_stamps,
    set_warning_listener,
    warn_once,
)

#: The control socket's file number (a handle on Windows) in the child.
CONTROL_FD_ENV = "CITUS_RELOADER_FD"
#: ``time.time()`` of the change that caused this start (for "Reloaded in").
CHANGED_AT_ENV = "CITUS_RELOADER_CHANGED_AT"
#: ``time.time()`` when the supervisor started this child.
SPAWNED_AT_ENV = "CITUS_RELOADER_SPAWNED_AT"
#: ``"1"`` in a spare child: started ahead of time, it waits in
#: :func:`wait_if_spare` until the supervisor needs it.
SPARE_ENV = "CITUS_RELOADER_SPARE"
#: Modules a spare imports while it waits, so that they are ready when needed.
SPARE_PRELOAD = (
    "citus.serving.server",
    "citus.serving.wsgi",
    "citus.serving.http11",
    "citus.debug",
    "citus.reloader.base",
    "citus.reloader.stat_backend",
    "citus.reloader.watchdog_backend",
    "watchdog.observers",
)
#: How long the first child waits before it imports the events backend.
BACKEND_DELAY = 0.1
#: How long after it starts to serve a child first reports its imports (the
#: spare is started meanwhile, and reads the list when it is ready).
FIRST_IMPORTS_REPORT = 0.2
#: How often a serving child tells the supervisor about modules it imported
#: since it started serving (imported on a first request, say).
IMPORTS_REPORT_EVERY = 2.0
#: How long a child that announced a reload may take to finish its requests.
GRACE_PERIOD = 1.0
#: At most this many "Detected change" lines per reload.
MAX_REPORTED = 5

_error_files: set[str] = set()
_watcher: Watcher | None = None
_reloading = threading.Event()
_control: socket.socket | None = None
_control_lock = threading.Lock()
_error_lock = threading.Lock()
_reader_started = False
#: The supervisor's first message (the files to keep watching) has arrived.
_first_event = threading.Event()
_first_files: list[str] = []
#: A spare's call to serve has arrived.
_go_event = threading.Event()
_go_message: dict[str, t.Any] = {}
#: Connections handed over by the previous child: given to the server's
#: ``adopt`` once it is there (see :func:`share_connections`).
_adopt: t.Callable[[list[socket.socket]], None] | None = None
_adopted: list[socket.socket] = []
_adopt_lock = threading.Lock()
#: A spare's work while it waits: ``preload`` messages, then ``None`` (called in).
_inbox: queue.Queue[dict[str, t.Any] | None] = queue.Queue()
#: Records this serving child's imports for the next spare (see .preload).
_recorder: t.Any = None
#: The supervisor has put the next child in this one's place: it passes no
#: more connections to this one.
_replaced = threading.Event()
#: Most seconds to wait for that before stopping.
REPLACED_WAIT = 0.5
#: Called once this child has stopped accepting for a reload (live reload
#: ends its event streams there).
_reload_listeners: list[t.Callable[[], None]] = []
#: How this child stops serving, once :func:`start` was called.
_stop_serving: t.Callable[[], None] | None = None
#: :func:`start` was called; else the supervisor's cold restart waits for it.
_started = False
#: The supervisor asked for a cold restart before :func:`start` was called.
_restart_pending = False
_restart_lock = threading.Lock()


def _float_env(name: str) -> float | None:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return None


def _send(message: dict[str, object]) -> None:
    if _control is None:
        return
    data = json.dumps(message).encode() + b"\n"
    with _control_lock:
        try:
            _control.sendall(data)
        except OSError:
            pass


def _open_control() -> socket.socket | None:
    value = os.environ.get(CONTROL_FD_ENV)
    if not value:
        return None
    try:
        return socket.socket(fileno=int(value))
    except (OSError, ValueError):
        return None


def _files_in(message: dict[str, t.Any]) -> list[str]:
    files = message.get("files")
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def _ensure_reader() -> None:
    """Open the control socket and start reading it, once."""
    global _control, _reader_started
    if _reader_started:
        return
    if _control is None:
        _control = _open_control()
    if _control is None:
        return
    _reader_started = True
    background_thread(_read_supervisor, _control, name="citus-lifeline")


def _read_supervisor(sock: socket.socket) -> None:
    """Read the supervisor's messages; exit as soon as its end closes.

    End of file means the supervisor is gone (even killed with SIGKILL), so
    the child exits at once instead of outliving it, whatever it is doing
    (importing the app, serving, waiting as a spare).
    """
    global _first_files, _go_message
    buffer = b""
    fds: deque[int] = deque()  # passed connections, in the order they came
    while True:
        try:
            data, passed = recv_with_fds(sock, 65536)
        except InterruptedError:  # pragma: no cover - retried by Python already
            continue
        except OSError:
            data, passed = b"", []
        fds.extend(passed)
        if not data:
            os._exit(EXIT_RELOAD)
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if message.get("op") == "watch" and not _first_event.is_set():
                _first_files = _files_in(message)
                _first_event.set()
            elif message.get("op") == "go":
                _go_message = message
                _go_event.set()
                _inbox.put(None)
            elif message.get("op") == "preload":
                _inbox.put(message)
            elif message.get("op") == "replaced":
                _replaced.set()
            elif message.get("op") == "adopt":
                count = message.get("count")
                count = count if isinstance(count, int) else 0
                _adopt_fds([fds.popleft() for _ in range(min(count, len(fds)))])
            elif message.get("op") == "restart":
                _restart_for_supervisor()


def _adopt_fds(fds: list[int]) -> None:
    """Give connections passed by the supervisor to the server, or keep them
    until it is there."""
    socks = []
    for fd in fds:
        try:
            socks.append(socket.socket(fileno=fd))
        except OSError:
            os.close(fd)
    with _adopt_lock:
        adopt = _adopt
        if adopt is None:
            _adopted.extend(socks)
            return
    adopt(socks)


def share_connections(
    adopt: t.Callable[[list[socket.socket]], None],
) -> t.Callable[[list[socket.socket]], bool] | None:
    """Receive the previous child's connections through ``adopt``; return
    :func:`hand_off` (see :func:`citus.reloader.share_connections`)."""
    global _adopt
    if not CAN_PASS_CONNECTIONS or os.environ.get("CITUS_RUN_MAIN") != "true":
        return None
    _ensure_reader()
    if _control is None:
        return None
    with _adopt_lock:
        _adopt = adopt
        waiting = list(_adopted)
        _adopted.clear()
    if waiting:
        adopt(waiting)
    _send({"op": "adopting"})  # the supervisor passes connections from now on
    return hand_off


def hand_off(socks: list[socket.socket]) -> bool:
    """Send open connections to the supervisor, which passes them on to the
    next child. False when they could not be sent (the caller closes them
    then; it closes its own copies in any case)."""
    if _control is None or not CAN_PASS_CONNECTIONS:
        return False
    try:
        fds = [sock.fileno() for sock in socks]
    except OSError:
        return False
    with _control_lock:
        try:
            for start in range(0, len(fds), MAX_PASSED_FDS):
                chunk = fds[start : start + MAX_PASSED_FDS]
                line = json.dumps({"op": "handoff", "count": len(chunk)}) + "\n"
                send_with_fds(_control, line.encode(), chunk)
        except OSError:
            return False
    return True


def wait_if_spare() -> None:
    """In a spare child, wait until the supervisor needs it (see
    :func:`citus.reloader.wait_if_spare`)."""
    if os.environ.get("CITUS_RUN_MAIN") != "true":
        return
    record_import_stamps()  # before any of the user's code is imported
    _ensure_reader()
    if _control is None:
        return
    _send({"op": "spare-capable"})
    if os.environ.get(SPARE_ENV) != "1":
        _start_recording()
        return
    try:
        import importlib

        skip = "watchdog" if os.environ.get(BACKEND_ENV) == "stat" else "-"
        for name in SPARE_PRELOAD:
            if skip in name:
                continue
            try:
                importlib.import_module(name)
            except Exception:  # an optional warm-up: never fatal
                continue
        _send({"op": "parked"})
        _preload_until_called()
    except KeyboardInterrupt:
        os._exit(0)
    message = _go_message
    env = message.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if isinstance(key, str) and isinstance(value, str):
                os.environ[key] = value
    for key in message.get("unset", []) or []:
        if isinstance(key, str):
            os.environ.pop(key, None)
    os.environ.pop(SPARE_ENV, None)
    _first_files.extend(_files_in(message))
    _first_event.set()
    _start_recording()


def _preload_until_called() -> None:
    """In a spare: import what the supervisor asks for until it calls us in.

    A spare in which a module misbehaved reports it and must not serve: the
    supervisor replaces it, and if it is called in all the same, it exits
    with ``EXIT_RELOAD`` so that a fresh child serves instead.
    """
    from .preload import entries_in, preload

    tainted = False
    while True:
        message = _inbox.get()
        if message is None:
            break
        bad = preload(entries_in(message), _go_event.is_set)
        if bad:
            tainted = True
            _send({"op": "skip", "modules": bad})
        elif not tainted:
            _send({"op": "parked"})
    if tainted:
        os._exit(EXIT_RELOAD)


def _start_recording() -> None:
    """Record the modules this serving child imports, for the next spare."""
    global _recorder
    from .preload import ImportRecorder

    _recorder = ImportRecorder()
    _recorder.install()


def _report_imports() -> None:
    """Tell the supervisor about the modules imported since the last report."""
    if _recorder is None:
        return
    news = _recorder.news()
    if news:
        _send({"op": "imported", "modules": [list(entry) for entry in news]})


def _keep_reporting_imports() -> None:
    """Report the imports soon (once the first requests are served), then as
    they grow."""
    time.sleep(FIRST_IMPORTS_REPORT)
    _report_imports()
    count = len(sys.modules)
    while True:
        time.sleep(IMPORTS_REPORT_EVERY)
        if len(sys.modules) != count:
            count = len(sys.modules)
            _report_imports()


def watch_files_of(error: BaseException) -> None:
    """Also watch the files named by ``error``.

    See :func:`citus.reloader.watch_files_of`.
    """
    files = files_of_error(error)
    with _error_lock:
        _error_files.update(files)
        if _watcher is not None:
            _watcher.add_files(files)


def on_reload(listener: t.Callable[[], None]) -> None:
    """Call ``listener`` when this child stops for a reload (see
    :func:`citus.reloader.on_reload`)."""
    _reload_listeners.append(listener)


def reload_requested() -> bool:
    """True once this child has decided to reload (its server is stopping)."""
    return _reloading.is_set()


def _restart_for_supervisor() -> None:
    """The supervisor wants a cold restart (the environment changed): stop
    as for a change of code, without a "Detected change" line of our own."""
    global _restart_pending
    with _restart_lock:
        if _reloading.is_set():
            return
        if not _started:
            # Not serving yet: restart as soon as it is about to (it may hold
            # connections handed over by the previous child, see start()).
            _restart_pending = True
            return
    # In a thread of its own: this one goes on reading the supervisor.
    background_thread(_reload, [], _stop_serving, name="citus-restart")


def _exit_after_grace() -> None:
    time.sleep(GRACE_PERIOD)
    os._exit(EXIT_RELOAD)


def _reload(changed: list[str], stop_serving: t.Callable[[], None] | None) -> None:
    detected_at = time.time()
    for path in changed[:MAX_REPORTED]:
        echo(f" * Detected change in {display_path(path)}, reloading")
    if len(changed) > MAX_REPORTED:
        echo(f" * ... and {len(changed) - MAX_REPORTED} more files")
    _reloading.set()
    _send({"op": "reload", "at": detected_at, "paths": changed})
    if stop_serving is None:
        os._exit(EXIT_RELOAD)
    background_thread(_exit_after_grace)
    if _adopt is not None:
        # Connections may be on their way to this child until the supervisor
        # has put the next one in its place: the server hands them on as they
        # come, and the process waits for that moment before it exits.
        atexit.register(_replaced.wait, REPLACED_WAIT)
    try:
        stop_serving()
    except Exception:
        os._exit(EXIT_RELOAD)
    for listener in _reload_listeners:
        try:
            listener()
        except Exception:  # a listener's bug must not stop the reload
            pass


def _say_what_is_watched(watcher: Watcher, backend: Backend) -> None:
    """One line, once per run: the backend, how many files in how many
    folders, and how many of these are polled."""
    files, folders = len(watcher.files), len(watcher.folders)
    interval = getattr(backend, "interval", 1.0)
    line = (
        f" * Watching {files} file{'s' * (files != 1)} in {folders}"
        f" folder{'s' * (folders != 1)} with {backend.name}"
    )
    polled = getattr(backend, "polled", None)
    if polled is None:
        line += f", every {interval:g} s"
    elif polled:
        line += f", {polled} of them polled every {interval:g} s"
    warn_once("watching", line, err=False)  # news, not a warning


def start(
    make_backend: t.Callable[[], Backend],
    *,
    extra_files: t.Iterable[str],
    exclude_patterns: t.Iterable[str],
    stop_serving: t.Callable[[], None] | None,
) -> None:
    """Start watching in a daemon thread.

    See :func:`citus.reloader.start_child_watcher`.

    The backend is made in that thread, so that importing watchdog does not
    delay serving.
    """
    global _watcher, _stop_serving, _started
    _ensure_reader()
    set_warning_listener(lambda key: _send({"op": "warned", "key": key}))
    if _recorder is not None:
        background_thread(_keep_reporting_imports, name="citus-imports")
    since = _float_env(SPAWNED_AT_ENV)
    inherited: list[str] = []
    if _control is not None and _first_event.wait(5):
        inherited = list(_first_files)

    def report(files: list[str]) -> None:
        _send({"op": "watch", "files": files})

    watcher = Watcher(
        None,
        [*extra_files, *inherited],
        exclude_patterns,
        since=since,
        on_watch=report,
    )
    with _error_lock:
        watcher.add_files(_error_files)
        _watcher = watcher
    stale = watcher.prepare()
    with _restart_lock:
        _stop_serving, _started = stop_serving, True
        restart = _restart_pending
    if restart and not stale:
        _reload([], stop_serving if _adopt is not None else None)
        return
    if stale:
        # A file changed while this child started: it has served nothing
        # yet, but may hold connections that the previous one handed over,
        # which its server hands on as it stops (at once: it never started).
        _reload(stale, stop_serving if _adopt is not None else None)
        return

    def run() -> None:
        events = os.environ.get(BACKEND_ENV) != "stat"
        if events and "watchdog.observers" not in sys.modules:
            # Importing it now would hold the lock that the serving thread
            # needs for its first answer; changes meanwhile are still seen
            # (the watcher looks once the backend watches).
            time.sleep(BACKEND_DELAY)
        try:
            backend = make_backend()
        except Exception as error:  # watchdog found but unusable here
            from .stat_backend import StatBackend

            warn_once(
                "no-events",
                f" * Cannot watch files with events ({error}); polling every"
                " 1 s instead. Use --reloader-type stat to say so.",
            )
            backend = StatBackend(1)
        backend.update(watcher.files, watcher.project_folders)
        _say_what_is_watched(watcher, backend)
        changed = watcher.run(backend)
        if changed:
            _reload(changed, stop_serving)

    background_thread(run, name="citus-reloader")
    changed_at = _float_env(CHANGED_AT_ENV)
    if changed_at is not None:
        elapsed = max(time.time() - changed_at, 0.0)
        echo(f" * Reloaded in {elapsed:.2f} s")
