"""What a code reload cannot pick up: dependencies and the environment.

A reload calls in a warm spare that may hold modules and values of the old
environment. Some changes need a *cold* restart instead, a new process started
from scratch with the environment read again:

- the project's dependency declarations: ``pyproject.toml``, ``setup.cfg``,
  ``requirements*.txt`` (and ``requirements/*.txt``), ``uv.lock``,
  ``poetry.lock``, ``Pipfile.lock``, in the project folder (the nearest folder,
  from the current one up, that holds one of them, a ``setup.py`` or ``.git``);
- the packages installed in the environment (``pip install``, ``uv pip
  uninstall``...): the entries of the folders of ``sys.path`` that hold
  installed distributions (site-packages), that is their ``*.dist-info``,
  ``*.egg-info``, ``*.egg-link`` and ``*.pth`` names, never every file;
- the ``.env``, ``.citusenv`` and ``--env-file`` files that were loaded
  (see :func:`citus._env.dotenv_watch_paths`).

:class:`EnvironmentWatcher` watches them with any reloader backend, in the
supervisor, for the whole run, and says what changed in one sentence per
change (:attr:`Change.line`). Files count as changed only when their content
changed, as in :class:`~citus.reloader.base.Watcher`; package folders when the
set of installed distributions changed, once ``pip`` has been quiet for
:data:`PACKAGES_QUIET` seconds.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import threading
import time
import typing as t

from .base import (
    Backend,
    FileState,
    Stamp,
    digest,
    display_path,
    library_dirs,
    same_bytes,
    stamp,
)

#: Dependency declarations, in the project folder.
DEPENDENCY_NAMES = (
    "pyproject.toml",
    "setup.cfg",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
)
#: Patterns of more dependency declarations, relative to the project folder.
DEPENDENCY_PATTERNS = ("requirements*.txt", "requirements/*.txt")
#: Names whose presence makes a folder the project folder.
PROJECT_MARKERS = (*DEPENDENCY_NAMES, "setup.py", "requirements.txt", ".git")
#: The entries of a package folder that say what is installed.
PACKAGE_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".pth")

#: After the first sign of change in a file, wait until it is quiet this long.
FILE_QUIET = 0.05
#: A package folder must be quiet this long before the change counts: an
#: install or an upgrade takes several steps (old version out, new one in).
PACKAGES_QUIET = 0.5
#: ... but never wait longer than this.
PACKAGES_MAX = 30.0
#: The end of each sentence that announces a cold restart.
RESTARTING = "restarting with a fresh environment"


class Change(t.NamedTuple):
    """One reason for a cold restart."""

    #: The file or the package folder that changed.
    path: str
    #: The sentence to print, without the leading `` * ``.
    line: str


def project_folder(start: str | None = None) -> str:
    """The nearest folder, from ``start`` (the current folder) up, holding a
    project marker (:data:`PROJECT_MARKERS`); ``start`` when there is none."""
    if start is None:
        start = os.getcwd()
    here = os.path.abspath(start)
    folder = here
    while True:
        if any(os.path.exists(os.path.join(folder, m)) for m in PROJECT_MARKERS):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return here
        folder = parent


def dependency_files(folder: str) -> list[str]:
    """The dependency declarations of the project in ``folder``: the fixed
    names (present or not: one created later counts) and the pattern matches."""
    found = {os.path.join(folder, name) for name in DEPENDENCY_NAMES}
    for pattern in DEPENDENCY_PATTERNS:
        sub, _, names = pattern.rpartition("/")
        where = os.path.join(folder, sub) if sub else folder
        try:
            entries = os.listdir(where)
        except OSError:
            continue
        found.update(
            os.path.join(where, name)
            for name in entries
            if fnmatch.fnmatch(name, names)
        )
    return sorted(found)


def _pattern_folders(folder: str) -> list[str]:
    return sorted(
        {os.path.join(folder, p.rpartition("/")[0]) for p in DEPENDENCY_PATTERNS}
    )


def package_entries(folder: str) -> frozenset[str]:
    """The names in ``folder`` that say what is installed there."""
    try:
        names = os.listdir(folder)
    except OSError:
        return frozenset()
    return frozenset(n for n in names if n.endswith(PACKAGE_SUFFIXES))


def package_folders() -> list[str]:
    """The folders of ``sys.path`` that hold installed distributions: the
    site-packages folders, and any other that holds a ``*.dist-info``."""
    _, site_dirs = library_dirs()
    found: list[str] = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.curdir)
        if path in found or not os.path.isdir(path):
            continue
        real = os.path.normcase(os.path.realpath(path)) + os.sep
        plain = os.path.normcase(path) + os.sep
        if real in site_dirs or plain in site_dirs or package_entries(path):
            found.append(path)
    return found


def _distribution(entry: str) -> tuple[str, str] | None:
    """``(name, version)`` of a ``*.dist-info``/``*.egg-info`` name."""
    for suffix in (".dist-info", ".egg-info"):
        if entry.endswith(suffix):
            name, _, rest = entry[: -len(suffix)].partition("-")
            return name, rest.partition("-")[0]
    return None


def describe_packages(before: frozenset[str], after: frozenset[str]) -> str:
    """What ``pip`` did, in words: ``'requests' 2.32.3 installed``,
    ``'requests' upgraded from 2.31.0 to 2.32.3``, ``'six' 1.16.0 removed``."""
    old: dict[str, str] = {}
    new: dict[str, str] = {}
    other: list[str] = []
    for entries, into in ((before - after, old), (after - before, new)):
        for entry in sorted(entries):
            dist = _distribution(entry)
            if dist is None:
                other.append(entry)
            else:
                into[dist[0]] = dist[1]
    words: list[str] = []
    for name in sorted({*old, *new}, key=str.lower):
        version = f" {new.get(name) or old[name]}".rstrip()
        if name in old and name in new:
            if old[name] == new[name]:
                words.append(f"'{name}' {old[name]} reinstalled")
            else:
                words.append(f"'{name}' upgraded from {old[name]} to {new[name]}")
        elif name in new:
            words.append(f"'{name}'{version} installed")
        else:
            words.append(f"'{name}'{version} removed")
    words.extend(f"change in '{entry}'" for entry in sorted(set(other)))
    if not words:
        return "change in installed packages"
    if len(words) > 3:
        words[2:] = [f"{len(words) - 2} more package changes"]
    return ", ".join(words)


class EnvironmentWatcher:
    """Blocks until a dependency declaration, an env file or the installed
    packages change (see the module doc).

    :param env_files: the env files to watch (present or not).
    :param project: the project folder; found from the current folder when
        not given.
    :param packages: the package folders; :func:`package_folders` when not
        given.
    :param since: files modified after this time (``time.time()``, not in the
        future) count as changed at the first check: the supervisor read them
        before the watcher started.
    """

    def __init__(
        self,
        env_files: t.Iterable[str] = (),
        *,
        project: str | None = None,
        packages: t.Iterable[str] | None = None,
        since: float | None = None,
    ) -> None:
        self.project = project if project is not None else project_folder()
        self.env_files = [os.path.abspath(p) for p in env_files]
        self.package_dirs = (
            list(packages) if packages is not None else package_folders()
        )
        self.since = since
        self._files: dict[str, FileState] = {}
        self._packages: dict[str, tuple[Stamp, frozenset[str]]] = {}
        self._stop = threading.Event()
        self._backend: Backend | None = None

    # Snapshots ---------------------------------------------------------------

    def _wanted_files(self) -> list[str]:
        return sorted({*dependency_files(self.project), *self.env_files})

    def _take(self, path: str) -> FileState:
        current = stamp(path)
        for _ in range(3):
            if current is None:
                return FileState(None, None)
            taken = digest(path)
            after = stamp(path)
            if after == current:
                return FileState(current, taken)
            current = after  # saved while it was read: read it again
        # Still being written: no digest, so that its next stamp counts.
        return FileState(current, None)

    def snapshot(self) -> list[Change]:
        """Take the first snapshot; return the files already changed since
        :attr:`since`."""
        stale: list[Change] = []
        for path in self._wanted_files():
            entry = self._take(path)
            # Read after the file: a save just before the look is not "in
            # the future" (it would be missed: the snapshot already has it).
            now = time.time()
            self._files[path] = entry
            if (
                self.since is not None
                and entry.stamp is not None
                and self.since <= entry.stamp[1] / 1e9 <= now
            ):
                stale.append(self._file_change(path))
        for folder in self.package_dirs:
            self._packages[folder] = (stamp(folder), package_entries(folder))
        return stale

    @property
    def files(self) -> list[str]:
        """The files watched (present or not)."""
        return sorted(self._files)

    @property
    def folders(self) -> list[str]:
        """The folders watched: the files' folders and the package folders."""
        found = {os.path.dirname(p) for p in self._files}
        found.update(_pattern_folders(self.project))
        found.update(self.package_dirs)
        return sorted(found)

    def _file_change(self, path: str) -> Change:
        return Change(path, f"Detected change in {display_path(path)}, {RESTARTING}")

    # Checks -------------------------------------------------------------------

    def _changed_files(self, hint: set[str] | None) -> list[str]:
        wanted = self._wanted_files()
        for path in wanted:
            if path not in self._files:  # a new requirements file
                self._files[path] = FileState(None, None)
        if hint is None:
            candidates = wanted
        else:
            folders = {os.path.dirname(p) for p in hint} | hint
            candidates = [
                p for p in wanted if p in hint or os.path.dirname(p) in folders
            ]
        changed = []
        for path in candidates:
            old = self._files[path]
            current = stamp(path)
            if current == old.stamp:
                continue
            if same_bytes(path, old, current):
                self._files[path] = FileState(current, old.digest)  # touched only
                continue
            changed.append(path)
        return changed

    def _changed_packages(self, hint: set[str] | None) -> list[str]:
        changed = []
        for folder in self.package_dirs:
            if hint is not None and not (
                folder in hint or any(os.path.dirname(p) == folder for p in hint)
            ):
                continue
            old_stamp, old_entries = self._packages[folder]
            current = stamp(folder)
            if current == old_stamp and hint is None:
                continue
            entries = package_entries(folder)
            if entries == old_entries:
                self._packages[folder] = (current, old_entries)
            else:
                changed.append(folder)
        return changed

    def _settle_files(self, paths: list[str]) -> None:
        assert self._backend is not None
        deadline = time.monotonic() + 0.5
        last = {p: stamp(p) for p in paths}
        while time.monotonic() < deadline and not self._stop.is_set():
            self._backend.wait(FILE_QUIET)
            now = {p: stamp(p) for p in paths}
            if now == last:
                return
            last = now

    def _settle_packages(self, folders: list[str]) -> None:
        """Wait until the package folders have been quiet for
        :data:`PACKAGES_QUIET` (an install in progress)."""
        assert self._backend is not None
        deadline = time.monotonic() + PACKAGES_MAX
        last = {f: package_entries(f) for f in folders}
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and not self._stop.is_set():
            self._backend.wait(0.1)
            now = {f: package_entries(f) for f in folders}
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= PACKAGES_QUIET:
                return

    def check(self, hint: set[str] | None) -> list[Change]:
        """Handle one answer of the backend; return the changes, if any."""
        files = self._changed_files(hint)
        folders = self._changed_packages(hint)
        if not files and not folders:
            return []
        if files:
            self._settle_files(files)
        if folders:
            self._settle_packages(folders)
        changes = []
        for path in files:
            entry = self._take(path)
            if entry != self._files[path]:
                self._files[path] = entry
                changes.append(self._file_change(path))
        for folder in folders:
            old_entries = self._packages[folder][1]
            entries = package_entries(folder)
            self._packages[folder] = (stamp(folder), entries)
            if entries != old_entries:
                what = describe_packages(old_entries, entries)
                changes.append(Change(folder, f"Detected {what}, {RESTARTING}"))
        return changes

    def run(self, backend: Backend) -> list[Change]:
        """Block until something changes (see :meth:`check`); empty after
        :meth:`stop`. Call again to wait for the next change."""
        if self._backend is None:
            self._backend = backend
            stale = self.snapshot() if not self._files else []
            backend.update(self.files, self.folders)
            if stale:
                return stale
            changed = self.check(None)  # what changed before watching began
            if changed:
                return changed
        while not self._stop.is_set():
            hint = backend.wait(1.0)
            if self._stop.is_set():
                break
            if hint is None or hint:
                changes = self.check(hint)
                if changes:
                    return changes
        return []

    def stop(self) -> None:
        """Make :meth:`run` return (from another thread)."""
        self._stop.set()
        if self._backend is not None:
            self._backend.close()
