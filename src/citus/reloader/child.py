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

import json
import os
import socket
import threading
import time
import typing as t

from .._log import echo
from . import BACKEND_ENV, EXIT_RELOAD
from .base import Backend, Watcher, display_path, files_of_error

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
_received: list[str] | None = None
_buffer = b""


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


def _read_message(sock: socket.socket, timeout: float | None) -> dict[str, t.Any]:
    """Read one JSON line from the supervisor (``{}`` at its end or on error)."""
    global _buffer
    sock.settimeout(timeout)
    try:
        while b"\n" not in _buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return {}
            _buffer += chunk
    except OSError:
        return {}
    finally:
        try:
            sock.settimeout(None)
        except OSError:
            pass
    line, _, _buffer = _buffer.partition(b"\n")
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _files_in(message: dict[str, t.Any]) -> list[str]:
    files = message.get("files")
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def _receive_watched(sock: socket.socket) -> list[str]:
    """Read the supervisor's first message: the files watched so far.

    Files that a previous child watched stay watched, so that a module which
    now fails to import (and so is missing from ``sys.modules``) is still
    watched and its fix reloads.
    """
    return _files_in(_read_message(sock, 5))


def wait_if_spare() -> None:
    """In a spare child, wait until the supervisor needs it (see
    :func:`citus.reloader.wait_if_spare`)."""
    global _control, _received
    if os.environ.get("CITUS_RUN_MAIN") != "true":
        return
    if _control is None:
        _control = _open_control()
    if _control is None:
        return
    _send({"op": "spare-capable"})
    if os.environ.get(SPARE_ENV) != "1":
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
        message = _read_message(_control, None)
    except KeyboardInterrupt:
        os._exit(0)
    if message.get("op") != "go":
        os._exit(0)  # dismissed, or the supervisor is gone
    env = message.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if isinstance(key, str) and isinstance(value, str):
                os.environ[key] = value
    for key in message.get("unset", []) or []:
        if isinstance(key, str):
            os.environ.pop(key, None)
    os.environ.pop(SPARE_ENV, None)
    _received = _files_in(message)


def _lifeline(sock: socket.socket) -> None:
    """Exit as soon as the supervisor's end of the control socket closes."""
    while True:
        try:
            data = sock.recv(4096)
        except InterruptedError:  # pragma: no cover - retried by Python already
            continue
        except OSError:
            data = b""
        if not data:
            os._exit(EXIT_RELOAD)


def watch_files_of(error: BaseException) -> None:
    """Also watch the files named by ``error``.

    See :func:`citus.reloader.watch_files_of`.
    """
    files = files_of_error(error)
    with _error_lock:
        _error_files.update(files)
        if _watcher is not None:
            _watcher.add_files(files)


def reload_requested() -> bool:
    """True once this child has decided to reload (its server is stopping)."""
    return _reloading.is_set()


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
    threading.Thread(target=_exit_after_grace, daemon=True).start()
    try:
        stop_serving()
    except Exception:
        os._exit(EXIT_RELOAD)


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
    global _control, _watcher
    if _control is None:
        _control = _open_control()
    since = _float_env(SPAWNED_AT_ENV)
    if _received is not None:
        inherited = _received
    else:
        inherited = _receive_watched(_control) if _control is not None else []

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
    if stale:
        # A file changed while this child started: it has served nothing yet.
        _reload(stale, None)

    def run() -> None:
        if _control is not None:
            threading.Thread(
                target=_lifeline, args=(_control,), name="citus-lifeline", daemon=True
            ).start()
        try:
            backend = make_backend()
        except Exception as error:  # watchdog found but unusable here
            from .stat_backend import StatBackend

            echo(
                f" * Cannot watch files with events ({error}); polling every"
                " 1 s instead. Use --reloader-type stat to say so.",
                err=True,
            )
            backend = StatBackend(1)
        changed = watcher.run(backend)
        if changed:
            _reload(changed, stop_serving)

    threading.Thread(target=run, name="citus-reloader", daemon=True).start()
    changed_at = _float_env(CHANGED_AT_ENV)
    if changed_at is not None:
        elapsed = max(time.time() - changed_at, 0.0)
        echo(f" * Reloaded in {elapsed:.2f} s")
