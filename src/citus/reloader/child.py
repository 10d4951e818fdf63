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
from . import EXIT_RELOAD
from .base import Backend, Watcher, display_path, files_of_error

#: The control socket's file number (a handle on Windows) in the child.
CONTROL_FD_ENV = "CITUS_RELOADER_FD"
#: ``time.time()`` of the change that caused this start (for "Reloaded in").
CHANGED_AT_ENV = "CITUS_RELOADER_CHANGED_AT"
#: ``time.time()`` when the supervisor started this child.
SPAWNED_AT_ENV = "CITUS_RELOADER_SPAWNED_AT"
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


def _receive_watched(sock: socket.socket) -> list[str]:
    """Read the supervisor's first message: the files watched so far.

    Files that a previous child watched stay watched, so that a module which
    now fails to import (and so is missing from ``sys.modules``) is still
    watched and its fix reloads.
    """
    data = b""
    sock.settimeout(5)
    try:
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return []
    finally:
        try:
            sock.settimeout(None)
        except OSError:
            pass
    try:
        message = json.loads(data.partition(b"\n")[0] or b"{}")
    except ValueError:
        return []
    files = message.get("files") if isinstance(message, dict) else None
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


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
    _control = _open_control()
    since = _float_env(SPAWNED_AT_ENV)
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
        changed = watcher.run(make_backend())
        if changed:
            _reload(changed, stop_serving)

    threading.Thread(target=run, name="citus-reloader", daemon=True).start()
    changed_at = _float_env(CHANGED_AT_ENV)
    if changed_at is not None:
        elapsed = max(time.time() - changed_at, 0.0)
        echo(f" * Reloaded in {elapsed:.2f} s")
