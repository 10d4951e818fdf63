"""The ``watchdog`` backend: file-system events (inotify, FSEvents, kqueue,
ReadDirectoryChangesW) through the watchdog package.

Watches go only on the folders that hold watched files and on the project's
folders, one folder each, never recursively: a ``sys.path`` tree can hold tens
of thousands of folders, enough to exhaust inotify's watch limit and to flood
its queue. Folders that cannot be watched by events (the limit is reached,
permission denied, the folder does not exist yet) are polled every
``reloader_interval`` seconds instead, after one line that says so and how to
fix it. When the kernel's event queue overflows, the next :meth:`wait` asks for
one full check rather than rebuilding watches.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import typing as t

from .._log import echo
from .base import display_path, is_ignored_name, warn_once

if t.TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

#: The sysctl value suggested when inotify runs out of watches.
SUGGESTED_MAX_USER_WATCHES = 524288

_OBSERVER_LABELS = {
    "InotifyObserver": "inotify",
    "FSEventsObserver": "fsevents",
    "KqueueObserver": "kqueue",
    "WindowsApiObserver": "windows api",
    "PollingObserver": "polling",
}
_IGNORED_EVENT_TYPES = frozenset({"opened", "closed_no_write"})


def observer_label() -> str:
    """The name of the observer watchdog picks here: ``inotify``, ``fsevents``,
    ``kqueue``, ``windows api`` or ``polling``."""
    from watchdog.observers import Observer

    name = getattr(Observer, "__name__", type(Observer).__name__)
    return _OBSERVER_LABELS.get(name, name.replace("Observer", "").lower() or name)


class _OverflowHandler(logging.Handler):
    """Hears watchdog say that the kernel's event queue overflowed."""

    def __init__(self, backend: WatchdogBackend) -> None:
        super().__init__(logging.WARNING)
        self.backend = backend

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.backend.events_lost()


class WatchdogBackend:
    """Collects the paths of file-system events until :meth:`wait` takes them.

    :param interval: seconds between polling passes over folders that could
        not be watched by events.
    """

    def __init__(self, interval: float = 1) -> None:
        from watchdog.observers import Observer

        self.name = f"watchdog ({observer_label()})"
        self.interval = float(interval) if interval > 0 else 1.0
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._lost = False
        self._watched: set[str] = set()
        self._polled_dirs: set[str] = set()
        self._polled_files: set[str] = set()
        self._next_poll = time.monotonic() + self.interval
        self._warned_limit = False
        self._closed = False
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self._overflow = _OverflowHandler(self)
        self._overflow_logger = logging.getLogger("watchdog.observers.inotify_c")
        self._overflow_logger.addHandler(self._overflow)

    # watchdog calls this (FileSystemEventHandler's interface) from its thread.
    def dispatch(self, event: FileSystemEvent) -> None:
        """Record the paths of one event."""
        if event.event_type in _IGNORED_EVENT_TYPES or (
            # A folder created, deleted or renamed counts (a package installed
            # into site-packages); its "modified" only echoes its entries'.
            event.is_directory and event.event_type == "modified"
        ):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        found = {
            os.path.abspath(os.fsdecode(p))
            for p in paths
            if p and not is_ignored_name(os.fsdecode(p))
        }
        if found:
            with self._cond:
                self._pending.update(found)
                self._cond.notify_all()

    def events_lost(self) -> None:
        """The kernel dropped events: make the next :meth:`wait` check everything."""
        with self._cond:
            self._lost = True
            self._cond.notify_all()

    def update(self, files: t.Collection[str], dirs: t.Collection[str]) -> None:
        """Watch the folders of ``files`` and the folders ``dirs``, one level each."""
        needed = {os.path.dirname(p) for p in files} | set(dirs)
        for folder in sorted(needed - self._watched - self._polled_dirs):
            self._watch(folder)
        self._polled_files = {
            p for p in files if os.path.dirname(p) in self._polled_dirs
        }

    def _watch(self, folder: str) -> None:
        if not os.path.isdir(folder):
            self._polled_dirs.add(folder)
            return
        try:
            self._observer.schedule(self, folder, recursive=False)  # type: ignore[arg-type]
        except OSError as error:
            self._polled_dirs.add(folder)
            self._explain(folder, error)
        else:
            self._watched.add(folder)

    def _explain(self, folder: str, error: OSError) -> None:
        every = f"polling it every {self.interval:g} s instead"
        if error.errno in (errno.ENOSPC, errno.EMFILE):
            if self._warned_limit:
                return
            self._warned_limit = True
            setting = (
                f"fs.inotify.max_user_watches={SUGGESTED_MAX_USER_WATCHES}"
                if error.errno == errno.ENOSPC
                else "fs.inotify.max_user_instances=1024"
            )
            # Once per run of the server, not after every reload.
            warn_once(
                f"inotify-limit-{error.errno}",
                f" * Cannot watch {display_path(folder)} with inotify: the system's"
                f" limit is reached ({error.strerror}); {every} (and any folder"
                f" after it). Raise the limit with 'sudo sysctl {setting}'.",
            )
        else:
            echo(
                f" * Cannot watch {display_path(folder)} for changes"
                f" ({error.strerror or error}); {every}.",
                err=True,
            )

    def wait(self, timeout: float) -> set[str] | None:
        """Block until events arrive, events were lost, or ``timeout`` passes."""
        poll_due = False
        with self._cond:
            if self._polled_dirs:
                until_poll = self._next_poll - time.monotonic()
                if until_poll <= timeout:
                    poll_due = True
                    timeout = max(until_poll, 0.0)
            if not self._pending and not self._lost and not self._closed:
                self._cond.wait(timeout)
            if self._lost:
                self._lost = False
                self._pending.clear()
                return None
            found, self._pending = self._pending, set()
        if poll_due and time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.interval
            found |= self._polled_files | self._polled_dirs
        return found

    def close(self) -> None:
        """Stop the observer thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._overflow_logger.removeHandler(self._overflow)
        self._observer.stop()
        if self._observer.is_alive() and threading.current_thread() is not (
            self._observer
        ):
            self._observer.join(2)
