"""Preloading: the spare child imports the libraries the last generation used.

A reload should cost only the project's own code. The serving child records
which modules it imported (:class:`ImportRecorder`), in the order they were
first imported, and tells the supervisor the ones that are safe to import
ahead of time (:meth:`ImportRecorder.candidates`): standard-library and
third-party modules (never a file the reloader watches), first imported while
the environment was the one the child started with. The supervisor keeps that
list (:class:`PreloadPlan`) and hands it to the next spare, which imports it
(:func:`preload`) before the save arrives.

Safety comes before speed. A module whose preloading fails, changes the
environment, ``sys.path`` or the current folder, shows a warning, or resolves
to another file than it did in the last generation is *skipped*: the spare
reports it and is replaced by a fresh one, and the supervisor never asks for
that module again in this run. A module first imported after the project
changed ``os.environ`` (it may read the value) is never a candidate.

The messages on the control socket (see ``docs/internals.md``):

- child → supervisor: ``{"op": "imported", "modules": [[name, file], ...]}``;
- supervisor → spare: ``{"op": "preload", "modules": [[name, file], ...]}``;
- spare → supervisor: ``{"op": "skip", "modules": [name, ...]}``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import types
import typing as t
import warnings

from .._env import FLASK_RUN_FROM_CLI_ENV
from .base import is_ignored_name, is_library_file

#: Set to ``0`` (``citus run --no-preload``) to make spares import nothing of
#: the last generation's.
PRELOAD_ENV = "CITUS_RELOADER_PRELOAD"

#: Modules never preloaded: they are the program itself, not a library.
_NEVER = frozenset({"__main__", "__mp_main__"})

#: One module to preload: its name and the file it came from (``""`` for
#: built-in and frozen modules and namespace packages).
Entry = tuple[str, str]


def preload_wanted() -> bool:
    """False when ``CITUS_RELOADER_PRELOAD`` turns preloading off."""
    value = os.environ.get(PRELOAD_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def _environment() -> dict[str, str]:
    """The environment, without the variables citus sets itself: its own (the
    reloader sets those differently in each child) and Flask's
    ``FLASK_RUN_FROM_CLI`` (set while the app loads, the same in every
    child); libraries do not read them at import."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CITUS_") and k != FLASK_RUN_FROM_CLI_ENV
    }


def _raw_environment() -> dict[t.Any, t.Any]:
    """A copy of the environment as cheap to take and compare as can be (the
    encoded mapping behind :data:`os.environ`)."""
    data = getattr(os.environ, "_data", None)
    return dict(data) if isinstance(data, dict) else dict(os.environ)


def _module_file(module: types.ModuleType) -> str | None:
    """The file a library module comes from, ``""`` when it has none (built-in,
    frozen, a namespace package of library folders), or ``None`` when it is not
    a library module (the project's, a watched file, or made by hand)."""
    spec = getattr(module, "__spec__", None)
    if not isinstance(spec, importlib.machinery.ModuleSpec):
        return None
    if spec.origin in ("built-in", "frozen"):
        return ""
    filename = getattr(module, "__file__", None)
    if filename is None:
        locations = list(spec.submodule_search_locations or [])
        if locations and all(is_library_file(p + os.sep) for p in locations):
            return ""
        return None
    if not isinstance(filename, str) or is_ignored_name(filename):
        return None
    return filename if is_library_file(filename) else None


class ImportRecorder:
    """Notes each module as it is first imported, and whether the environment
    still was the one this process started with at that moment.

    Installed first in :data:`sys.meta_path`, it finds nothing: the import
    system asks it about every module not yet imported, which is exactly the
    moment of a first import.
    """

    def __init__(self) -> None:
        self._before = set(sys.modules)
        self._seen: set[str] = set()
        #: Modules first imported while the environment differed.
        self.unsafe: set[str] = set()
        self._base = _environment()
        self._last = _raw_environment()
        self._differs = False
        self._reported: set[str] = set()

    def install(self) -> None:
        """Start recording (first in :data:`sys.meta_path`)."""
        sys.meta_path.insert(0, self)

    def find_spec(
        self,
        fullname: str,
        path: t.Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Record ``fullname``; find nothing (the next finder does)."""
        if fullname not in self._seen:
            self._seen.add(fullname)
            raw = _raw_environment()
            if raw != self._last:
                self._last = raw
                self._differs = _environment() != self._base
            if self._differs:
                self.unsafe.add(fullname)
        return None

    def candidates(self, exclude: t.Collection[str] = ()) -> list[Entry]:
        """The modules a spare may preload, in the order of their first import.

        :param exclude: files never to preload (the watched files).
        """
        found: list[Entry] = []
        for name, module in list(sys.modules.items()):
            if name in _NEVER or name in self.unsafe:
                continue
            if name not in self._seen and name not in self._before:
                continue  # put in sys.modules by hand, not imported
            if not isinstance(module, types.ModuleType):
                continue
            filename = _module_file(module)
            if filename is None or filename in exclude:
                continue
            found.append((name, filename))
        return found

    def news(self) -> list[Entry] | None:
        """The candidates not reported yet, or ``None`` when there are none."""
        entries = [e for e in self.candidates() if e[0] not in self._reported]
        if not entries:
            return None
        self._reported.update(name for name, _ in entries)
        return entries


def entries_in(message: dict[str, t.Any]) -> list[Entry]:
    """The ``[name, file]`` pairs of a message, ignoring malformed ones."""
    found: list[Entry] = []
    for item in message.get("modules") or []:
        if (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
        ):
            found.append((item[0], item[1]))
    return found


class PreloadPlan:
    """The supervisor's side: what the next spare should import, and what
    never to import again in this run."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._entries: dict[str, str] = {}
        #: Modules that failed or misbehaved when preloaded.
        self.skipped: set[str] = set()

    def add(self, entries: t.Iterable[Entry]) -> list[Entry]:
        """Take the entries a serving child reported; return the new ones
        (to pass on to a spare already waiting)."""
        new = []
        for name, filename in entries:
            if name not in self._entries and name not in self.skipped:
                self._entries[name] = filename
                new.append((name, filename))
        return new

    def skip(self, names: t.Iterable[str]) -> bool:
        """Never preload ``names`` again; True when one of them is new."""
        new = set(names) - self.skipped
        self.skipped |= new
        for name in new:
            self._entries.pop(name, None)
        if not new:
            # A spare that misbehaved without naming a new module: stop
            # preloading rather than replace spares forever.
            self.enabled = False
        return bool(new)

    def message(
        self, entries: t.Iterable[Entry] | None = None, watched: t.Collection[str] = ()
    ) -> dict[str, object] | None:
        """The ``preload`` message for a spare (all entries, or ``entries``),
        leaving out watched files; ``None`` when there is nothing to send."""
        if not self.enabled:
            return None
        items = self._entries.items() if entries is None else entries
        watched = set(watched)
        modules = [
            [name, filename]
            for name, filename in items
            if name not in self.skipped and filename not in watched
        ]
        return {"op": "preload", "modules": modules} if modules else None


def _show_nothing(*args: object, **kwargs: object) -> None:
    raise _WarningShown()


class _WarningShown(Exception):
    """A preloaded module showed a warning: the user would miss it."""


def preload(entries: t.Iterable[Entry], stop: t.Callable[[], bool]) -> list[str]:
    """Import ``entries`` in order; return the modules that misbehaved.

    Stops early when ``stop()`` becomes true (the spare was called in). After
    a module misbehaves, the environment, ``sys.path`` and the current folder
    are put back and the others are still tried (to learn all the bad ones at
    once), but this process must not serve: the caller reports the names.
    """
    bad: list[str] = []
    for name, filename in entries:
        if stop():
            break
        if name in sys.modules:
            continue
        env = dict(os.environ)
        path = list(sys.path)
        try:
            cwd: str | None = os.getcwd()
        except OSError:
            cwd = None
        shown = warnings.showwarning
        warnings.showwarning = _show_nothing
        ok = True
        try:
            module = importlib.import_module(name)
        except KeyboardInterrupt:
            raise
        except BaseException:  # SystemExit at import time too
            ok = False
        else:
            ok = _module_file(module) == filename
        finally:
            if warnings.showwarning is _show_nothing:
                warnings.showwarning = shown
        try:
            same_cwd = cwd is None or os.getcwd() == cwd
        except OSError:
            same_cwd = False
        if not ok or dict(os.environ) != env or sys.path != path or not same_cwd:
            bad.append(name)
            os.environ.clear()
            os.environ.update(env)
            sys.path[:] = path
            if cwd is not None:
                try:
                    os.chdir(cwd)
                except OSError:
                    pass
    return bad
