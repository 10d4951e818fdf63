"""What a saved file means for the open pages, and the watch on asset folders.

The app's static and template folders come from the framework interface
(:func:`citus.frameworks.detect`). They are watched here, apart from the
reloader (which watches code and restarts the process), and a change in them
never restarts anything:

=====================================  ========================================
what changed                           what the open pages do
=====================================  ========================================
only ``.css`` files in static folders  swap their stylesheets in place (``css``)
other static files, templates          reload, served by the same process
                                       (``reload``, after the framework forgot
                                       its cached templates)
=====================================  ========================================

The folders are left out of the reloader's own watch (see
:func:`exclude_patterns`), so a template also listed in ``extra_files`` does
not restart the process either.
"""

from __future__ import annotations

import os
import threading
import time
import typing as t

from ..reloader.base import background_thread, is_ignored_name

if t.TYPE_CHECKING:
    from ..reloader.base import Backend
    from .hub import Hub

#: After the first sign of a change, wait until the folders are quiet this long.
SETTLE_QUIET = 0.02
#: ... but no longer than this.
SETTLE_MAX = 0.3
#: How often the folders are scanned again for new sub-folders (events backend).
RESCAN_EVERY = 2.0

#: A file's state: ``(size, mtime_ns)``.
Stamp = tuple[int, int]


class AssetSource(t.Protocol):
    """What live reload asks about an app's assets: the three questions of
    :class:`citus.frameworks.Framework` that concern it (the frameworks
    package, a floor above this one, answers them; see
    :func:`citus.live.set_framework_lookup`)."""

    def static_folders(self) -> list[tuple[str, str]]:
        """``(url_prefix, folder)`` pairs of static files."""
        ...

    def template_folders(self) -> list[str]:
        """Template folders."""
        ...

    def templates_changed(self, paths: t.Sequence[str]) -> None:
        """Forget cached templates after ``paths`` changed."""
        ...


class Change(t.NamedTuple):
    """One batch of saved files, sorted by what the pages must do."""

    #: URL paths of changed stylesheets (``/static/site.css``).
    css: list[str]
    #: Other changed static files.
    static: list[str]
    #: Changed template files.
    templates: list[str]

    @property
    def styles_only(self) -> bool:
        """Only stylesheets changed: swap them, no reload."""
        return bool(self.css) and not self.static and not self.templates


class Folders:
    """The asset folders of one app.

    :param static: ``(url_prefix, folder)`` pairs.
    :param templates: template folders.
    """

    def __init__(
        self, static: t.Iterable[tuple[str, str]], templates: t.Iterable[str]
    ) -> None:
        self.static = [(p, os.path.abspath(f)) for p, f in static if f]
        self.templates = [os.path.abspath(f) for f in templates if f]

    @classmethod
    def of(
        cls,
        framework: AssetSource | None,
        extra_static: t.Iterable[tuple[str, str]] = (),
    ) -> Folders:
        """The folders ``framework`` names (none when it cannot tell), and
        ``extra_static`` ``(url_prefix, folder)`` pairs."""
        static: list[tuple[str, str]] = []
        templates: list[str] = []
        if framework is not None:
            try:
                static = list(framework.static_folders())
            except Exception:  # a framework module's bug must not stop serving
                static = []
            try:
                templates = list(framework.template_folders())
            except Exception:
                templates = []
        static += [(p, f) for p, f in extra_static if os.path.isdir(f)]
        return cls(static, templates)

    @property
    def all(self) -> list[str]:
        """Every folder, without duplicates."""
        seen: dict[str, None] = {}
        for folder in [f for _, f in self.static] + self.templates:
            seen.setdefault(folder, None)
        return list(seen)

    def classify(self, paths: t.Iterable[str]) -> Change:
        """Sort changed ``paths``; paths in no folder are left out."""
        css: list[str] = []
        static: list[str] = []
        templates: list[str] = []
        for path in sorted(paths):
            url = self._static_url(path)
            if url is not None:
                if path.lower().endswith(".css"):
                    css.append(url)
                else:
                    static.append(path)
            elif any(_inside(path, f) for f in self.templates):
                templates.append(path)
        return Change(css, static, templates)

    def _static_url(self, path: str) -> str | None:
        for prefix, folder in self.static:
            if _inside(path, folder):
                rel = os.path.relpath(path, folder).replace(os.sep, "/")
                return prefix.rstrip("/") + "/" + rel
        return None


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def exclude_patterns(folders: Folders) -> list[str]:
    """fnmatch patterns that keep the reloader out of the asset folders."""
    return [os.path.join(folder, "*") for folder in folders.all]


def scan(folders: t.Iterable[str]) -> tuple[dict[str, Stamp], set[str]]:
    """Every file under ``folders`` with its stamp, and every folder."""
    files: dict[str, Stamp] = {}
    dirs: set[str] = set()
    for top in folders:
        for root, subdirs, names in os.walk(top):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            dirs.add(root)
            for name in names:
                path = os.path.join(root, name)
                if is_ignored_name(path):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                files[path] = (st.st_size, st.st_mtime_ns)
    return files, dirs


def apply(change: Change, hub: Hub, framework: AssetSource | None) -> None:
    """Tell the open pages (and the framework) about ``change``."""
    if change.styles_only:
        hub.broadcast("css", {"paths": change.css})
        return
    if change.templates and framework is not None:
        try:
            framework.templates_changed(change.templates)
        except Exception:  # a framework module's bug: the page still reloads
            pass
    hub.bump()


class AssetWatcher:
    """Watches the asset folders with a reloader backend, in a daemon thread.

    :param folders: what to watch.
    :param make_backend: makes the backend (events or polling).
    :param on_change: called with each :class:`Change` that holds something.
    """

    def __init__(
        self,
        folders: Folders,
        make_backend: t.Callable[[], Backend],
        on_change: t.Callable[[Change], None],
    ) -> None:
        self.folders = folders
        self.make_backend = make_backend
        self.on_change = on_change
        self._stop = threading.Event()
        self._backend: Backend | None = None
        self._files, self._dirs = scan(folders.all)
        self.ready = threading.Event()

    def start(self) -> None:
        """Start watching (the first snapshot was taken already)."""
        background_thread(self._run, name="citus-live-watch")

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._backend is not None:
            self._backend.close()

    def _run(self) -> None:
        try:
            backend = self._backend = self.make_backend()
        except Exception:
            from ..reloader.stat_backend import StatBackend

            backend = self._backend = StatBackend(1)
        folders = self.folders.all
        backend.update(list(self._files), sorted(self._dirs | set(folders)))
        self.ready.set()
        next_rescan = time.monotonic() + RESCAN_EVERY
        while not self._stop.is_set():
            hint = backend.wait(RESCAN_EVERY)
            if self._stop.is_set():
                break
            due = time.monotonic() >= next_rescan
            if not hint and hint is not None and not due:
                continue
            if hint:
                self._settle(backend)
            next_rescan = time.monotonic() + RESCAN_EVERY
            files, dirs = scan(folders)
            changed = {
                p
                for p in files.keys() | self._files.keys()
                if files.get(p) != self._files.get(p)
            }
            if dirs != self._dirs or files.keys() != self._files.keys():
                backend.update(list(files), sorted(dirs | set(folders)))
            self._files, self._dirs = files, dirs
            if changed:
                change = self.folders.classify(changed)
                if change.css or change.static or change.templates:
                    try:
                        self.on_change(change)
                    except Exception:  # pragma: no cover - never stop watching
                        pass

    def _settle(self, backend: Backend) -> None:
        """Wait until the folders are quiet (one save, one event)."""
        deadline = time.monotonic() + SETTLE_MAX
        while time.monotonic() < deadline and not self._stop.is_set():
            more = backend.wait(SETTLE_QUIET)
            if more is not None and not more:
                return
