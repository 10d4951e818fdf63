"""The ``watchdog`` backend: file-system events (inotify, FSEvents, kqueue,
ReadDirectoryChangesW) through the watchdog package.

Watches go only on the folders that hold watched files and on the project's
folders, one folder each, never recursively: a ``sys.path`` tree can hold tens
of thousands of folders, enough to exhaust inotify's watch limit and to flood
its queue. Folders that cannot be watched by events are polled every
``reloader_interval`` seconds instead, after one line (once per run) that
says which and why:

- folders on a file system where changes made elsewhere send no events
  (network and VM-shared mounts, see :mod:`.mounts`);
- once inotify's watch limit is reached, that folder and every folder after
  it, with the ``sysctl`` command that raises the limit;
- folders whose events never arrive: with ``verify=True`` (the serving
  child), a probe file is created and removed in one watched folder of each
  mount, in a thread, and a mount whose probe is not heard within
  :data:`PROBE_WAIT` seconds is polled from then on (the answer is
  remembered for the rest of the run);
- folders that cannot be watched for another reason (permission denied, the
  folder does not exist yet).

When the kernel's event queue overflows, the next :meth:`wait` asks for one
full check rather than rebuilding watches.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import typing as t

from .._log import echo
from .base import (
    PROBE_PREFIX,
    background_thread,
    display_path,
    is_ignored_name,
    remember,
    remembered,
    warn_once,
)
from .mounts import mount_of, why_no_events

if t.TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

#: The sysctl value suggested when inotify runs out of watches.
SUGGESTED_MAX_USER_WATCHES = 524288
#: ... and when it runs out of instances.
SUGGESTED_MAX_USER_INSTANCES = 1024
#: Seconds to wait for the event of a probe file before polling its mount.
PROBE_WAIT = 2.0

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


def _short_key(text: str) -> str:
    """A short name for ``text`` that fits in a comma-separated list."""
    import hashlib

    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=5).hexdigest()


def _root_of(folder: str) -> tuple[str, str]:
    """``(key, words)`` for the mount that holds ``folder``: its mount point
    (``"nfs4 on '/srv'"``), else (no mount table) its device."""
    mount = mount_of(folder)
    if mount is not None:
        return mount.point, f"{mount.fstype} on {display_path(mount.point)}"
    try:
        device = f"device {os.stat(folder).st_dev}"
    except OSError:
        device = folder
    return device, f"its {device}"


class WatchdogBackend:
    """Collects the paths of file-system events until :meth:`wait` takes them.

    :param interval: seconds between polling passes over folders that could
        not be watched by events.
    :param verify: test, once per mount and per run, that events really
        arrive (see the module doc).
    """

    def __init__(self, interval: float = 1, *, verify: bool = False) -> None:
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
        self._closed = False
        self._verify = verify
        self._files: list[str] = []
        #: The first limit error (``ENOSPC``, ``EMFILE``): no more watches.
        self._limit: OSError | None = None
        #: Folders polled because of the limit, not yet reported.
        self._over_limit: list[str] = []
        #: Mounts whose events cannot be trusted, and mounts tested (by key).
        self._deaf_roots: set[str] = set()
        self._tested_roots: set[str] = set()
        self._probes: dict[str, threading.Event] = {}
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self._overflow = _OverflowHandler(self)
        self._overflow_logger = logging.getLogger("watchdog.observers.inotify_c")
        self._overflow_logger.addHandler(self._overflow)

    # watchdog calls this (FileSystemEventHandler's interface) from its thread.
    def dispatch(self, event: FileSystemEvent) -> None:
        """Record the paths of one event."""
        if self._probes:
            heard = self._probes.get(os.path.abspath(os.fsdecode(event.src_path)))
            if heard is not None:
                heard.set()
                return
        if event.is_directory or event.event_type in _IGNORED_EVENT_TYPES:
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

    @property
    def polled(self) -> int:
        """How many folders are polled instead of watched by events."""
        with self._cond:
            return len(self._polled_dirs)

    def update(self, files: t.Collection[str], dirs: t.Collection[str]) -> None:
        """Watch the folders of ``files`` and the folders ``dirs``, one level each."""
        self._files = list(files)
        needed = {os.path.dirname(p) for p in files} | set(dirs)
        for folder in sorted(needed - self._watched - self._polled_dirs):
            self._watch(folder)
        self._report_limit()
        self._poll_files()
        if self._verify:
            self._test_roots(sorted(self._watched))

    def _poll_files(self) -> None:
        with self._cond:
            self._polled_files = {
                p for p in self._files if os.path.dirname(p) in self._polled_dirs
            }

    def _poll(self, folder: str) -> None:
        with self._cond:
            self._polled_dirs.add(folder)

    def _watch(self, folder: str) -> None:
        if not os.path.isdir(folder):
            self._poll(folder)
            return
        key, label = _root_of(folder)
        if key in self._deaf_roots or remembered(f"no-events-{_short_key(key)}"):
            self._deaf_roots.add(key)
            self._poll(folder)
            return
        mount = mount_of(folder)
        why = why_no_events(mount) if mount is not None else None
        if mount is not None and why is not None:
            self._deaf_roots.add(key)
            self._poll(folder)
            warn_once(
                f"no-events-{_short_key(key)}",
                f" * Polling {display_path(mount.point)} every {self.interval:g} s"
                f" instead of waiting for events: it is a {mount.fstype} mount"
                f" ({why}), where changes made outside this system send none.",
            )
            return
        if self._limit is not None:  # no watch is left: poll the rest
            self._poll(folder)
            self._over_limit.append(folder)
            return
        try:
            self._observer.schedule(self, folder, recursive=False)  # type: ignore[arg-type]
        except OSError as error:
            self._poll(folder)
            if error.errno in (errno.ENOSPC, errno.EMFILE):
                self._limit = error
                self._over_limit.append(folder)
            else:
                echo(
                    f" * Cannot watch {display_path(folder)} for changes"
                    f" ({error.strerror or error}); polling it every"
                    f" {self.interval:g} s instead.",
                    err=True,
                )
        else:
            self._watched.add(folder)

    def _report_limit(self) -> None:
        """Say, once per run, that inotify's limit was reached, and how to
        raise it."""
        error, folders = self._limit, self._over_limit
        if error is None or not folders:
            return
        self._over_limit = []
        if error.errno == errno.ENOSPC:
            setting = f"fs.inotify.max_user_watches={SUGGESTED_MAX_USER_WATCHES}"
        else:
            setting = f"fs.inotify.max_user_instances={SUGGESTED_MAX_USER_INSTANCES}"
        which = (
            display_path(folders[0])
            if len(folders) == 1
            else f"{display_path(folders[0])} and {len(folders) - 1} more"
            f" folder{'s' * (len(folders) > 2)}"
        )
        them = "it" if len(folders) == 1 else "them"
        warn_once(
            f"inotify-limit-{error.errno}",
            f" * Cannot watch {which} with inotify: the system's limit is reached"
            f" ({error.strerror}); polling {them} every {self.interval:g} s"
            f" instead. Raise the limit: sudo sysctl {setting}",
        )

    # The self-test ---------------------------------------------------------------

    def _test_roots(self, folders: list[str]) -> None:
        """Start a probe in one watched folder of each mount not tested yet."""
        try:
            here = os.getcwd() + os.sep
        except OSError:
            here = os.sep

        def rank(folder: str) -> tuple[bool, int]:
            # The project first (where the user works), then the shortest.
            return (not (folder + os.sep).startswith(here), len(folder))

        first: dict[str, str] = {}
        for folder in folders:
            key = _root_of(folder)[0]
            if key not in self._tested_roots and key not in self._deaf_roots:
                if key not in first or rank(folder) < rank(first[key]):
                    first[key] = folder
        for key, folder in first.items():
            self._tested_roots.add(key)
            if remembered(f"events-ok-{_short_key(key)}"):
                continue
            background_thread(self._probe, key, folder, name="citus-probe")

    def _probe(self, key: str, folder: str) -> None:
        """Create and remove a file in ``folder``; poll its mount if the event
        does not arrive within :data:`PROBE_WAIT` seconds."""
        path = os.path.join(folder, f"{PROBE_PREFIX}{os.getpid()}")
        heard = threading.Event()
        self._probes[path] = heard
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except OSError:
            return  # a read-only folder: nothing can change it from here
        try:
            os.close(fd)
            arrived = heard.wait(PROBE_WAIT)
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
        if self._closed:
            return
        if arrived:
            remember(f"events-ok-{_short_key(key)}")
            return
        self._deaf_roots.add(key)
        for watched in sorted(self._watched):
            if _root_of(watched)[0] == key:
                self._poll(watched)
        self._poll_files()
        words = _root_of(folder)[1]
        warn_once(
            f"no-events-{_short_key(key)}",
            f" * No change event arrived within {PROBE_WAIT:g} s for a test file"
            f" in {display_path(folder)}: polling the folders on {words} every"
            f" {self.interval:g} s instead.",
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
