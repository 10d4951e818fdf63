"""Which files the reloader watches, and how it decides that one really changed.

A backend (:mod:`.stat_backend`, :mod:`.watchdog_backend`) only says *where* to
look: the paths that may have changed since it was last asked. Everything else
lives here, shared by both backends and by both processes (the serving child
and the supervisor waiting after a crash): the set of files to watch (imported
modules outside the standard library and site-packages, extra files, files named
by a failed import's traceback), the names never worth watching (bytecode,
editor swap and temp files, VCS folders, ``exclude_patterns``), the snapshot of
each file (size, mtime and a content digest) that turns "an event happened" into
"the content changed", and the short settling wait that makes one save, however
many steps the editor takes, cause exactly one restart.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import site
import sys
import sysconfig
import threading
import time
import typing as t

from .._compat import block_stop_signals

#: Environment variable that opts in to watching loaded modules that live in
#: site-packages (``1``/``true``/``yes``).
WATCH_SITE_PACKAGES_ENV = "CITUS_RELOADER_WATCH_SITE_PACKAGES"

#: Warnings already given by this run of the server (comma-separated keys):
#: each is printed by one process only, not again after every reload.
WARNED_ENV = "CITUS_RELOADER_WARNED"

#: After the first sign of a change, wait until the watched files have been
#: quiet this long, so that the steps of one save are seen as one change.
SETTLE_QUIET = 0.03
#: ... but never wait longer than this for them to settle.
SETTLE_MAX = 0.5
#: How often the watcher looks for newly imported modules (when ``len(sys.modules)``
#: changed) and, with the events backend, how long it blocks at most.
RESCAN_EVERY = 1.0
#: Files larger than this are compared by size and mtime only, never read.
DIGEST_LIMIT = 8 * 1024 * 1024

_VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", "CVS", ".jj"})
_IGNORED_DIRS = _VCS_DIRS | {"__pycache__", ".mypy_cache", ".ruff_cache", ".tox"}
_IGNORED_SUFFIXES = (
    ".pyc",
    ".pyo",
    ".swp",
    ".swo",
    ".swx",
    ".swn",
    "~",
    ".tmp",
    ".temp",
    ".bak",
    ".kate-swp",
    "___jb_tmp___",
    "___jb_old___",
)
#: The name of the files the events backend creates to test that events
#: arrive (see :mod:`.watchdog_backend`); never a change worth a reload.
PROBE_PREFIX = ".citus-probe-"
_IGNORED_PREFIXES = (".#", ".goutputstream-", ".~lock.", PROBE_PREFIX)
_TRACEBACK_FILE = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+', re.MULTILINE)

#: A file's state: ``(size, mtime_ns)``, or ``None`` when it does not exist.
Stamp = t.Optional[tuple[int, int]]  # noqa: UP045 (a runtime alias on 3.10)


class Backend(t.Protocol):
    """What a reloader backend does: say which paths may have changed.

    A backend never decides that a file changed; :class:`Watcher` does, by
    comparing each candidate with its snapshot.
    """

    #: The name shown in the banner: ``stat`` or ``watchdog (inotify)``.
    name: str

    def update(self, files: t.Collection[str], dirs: t.Collection[str]) -> None:
        """Watch exactly ``files`` and the folders ``dirs`` (for new modules)."""

    def wait(self, timeout: float) -> set[str] | None:
        """Block up to ``timeout`` seconds for a sign of change.

        :returns: the paths (files or watched folders) that may have changed,
            an empty set when nothing happened, or ``None`` when every watched
            file must be checked (a polling pass is due, or events were lost).
        """

    def close(self) -> None:
        """Stop watching and release threads and file descriptors."""


_warning_listener: t.Callable[[str], None] | None = None


def set_warning_listener(listener: t.Callable[[str], None] | None) -> None:
    """Call ``listener(key)`` after each warning :func:`warn_once` prints (the
    serving child tells the supervisor, which passes it on to later children)."""
    global _warning_listener
    _warning_listener = listener


def note_warning(key: str) -> bool:
    """Record in :data:`WARNED_ENV` that the warning ``key`` was given.

    :returns: ``False`` if it was recorded already.
    """
    given = [k for k in os.environ.get(WARNED_ENV, "").split(",") if k]
    if key in given:
        return False
    os.environ[WARNED_ENV] = ",".join([*given, key])
    return True


def remembered(key: str) -> bool:
    """Whether this run of the server noted ``key`` already (a warning
    given, or a fact found out, see :func:`remember`)."""
    return key in os.environ.get(WARNED_ENV, "").split(",")


def remember(key: str) -> None:
    """Note a fact found out once per run (events arrive from a folder), so
    that the next serving processes need not find it out again."""
    if note_warning(key) and _warning_listener is not None:
        _warning_listener(key)


def warn_once(key: str, message: str, *, err: bool = True) -> None:
    """Print ``message`` to standard error, unless the warning ``key`` was
    given already by this run of the server (see :data:`WARNED_ENV`).

    :param err: a warning (red where the log is coloured); ``False`` for
        news said once per run.
    """
    from .._log import echo

    if not note_warning(key):
        return
    echo(message, err=err)
    if _warning_listener is not None:
        _warning_listener(key)


def background_thread(
    target: t.Callable[..., object], *args: object, name: str | None = None
) -> threading.Thread:
    """Start a daemon thread that never takes Ctrl+C or SIGTERM for the process.

    The kernel hands a signal to any thread that does not block it; one that
    lands in a helper thread leaves the main thread asleep (for up to its
    next timeout) before it can stop the process. Helper threads (and the
    threads they start) block both signals, so the main thread gets them at
    once.
    """

    def run() -> None:
        block_stop_signals()  # until the thread ends
        target(*args)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


# -- which files ---------------------------------------------------------------


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The standard library folders and the site-packages folders."""
    stdlib: set[str] = set()
    packages: set[str] = set()
    schemes = [sysconfig.get_paths()]
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    schemes.append(sysconfig.get_paths(vars=base))
    for paths in schemes:
        stdlib.update(paths[key] for key in ("stdlib", "platstdlib") if key in paths)
        packages.update(paths[key] for key in ("purelib", "platlib") if key in paths)
    try:
        packages.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - old virtualenv's site module
        pass
    user = getattr(site, "getusersitepackages", None)
    if user is not None:
        packages.add(user())
    # Debian keeps third-party packages in dist-packages next to the stdlib.
    packages.update(
        os.path.join(p, "dist-packages") for p in list(stdlib) if os.path.isdir(p)
    )

    # Both spellings of each folder: as configured and with symlinks resolved.
    def prefixes(paths: set[str]) -> tuple[str, ...]:
        found = set()
        for path in paths:
            found.add(os.path.normcase(os.path.abspath(path)) + os.sep)
            found.add(_real(path) + os.sep)
        return tuple(sorted(found))

    return prefixes(stdlib), prefixes(packages)


_LIBRARY_DIRS: tuple[tuple[str, ...], tuple[str, ...]] | None = None


def library_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(stdlib_prefixes, site_packages_prefixes)``, each ending with a separator."""
    global _LIBRARY_DIRS
    if _LIBRARY_DIRS is None:
        _LIBRARY_DIRS = _library_dirs()
    return _LIBRARY_DIRS


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def is_library_file(path: str) -> bool:
    """True for files of the standard library and, unless opted in, site-packages.

    Reads ``CITUS_RELOADER_WATCH_SITE_PACKAGES``: when true, files in
    site-packages count as the user's own.
    """
    stdlib, packages = library_dirs()
    real = os.path.normcase(os.path.abspath(path))
    if real.startswith(packages):
        return not _truthy(os.environ.get(WATCH_SITE_PACKAGES_ENV))
    return real.startswith(stdlib)


def is_ignored_name(path: str) -> bool:
    """True for bytecode, editor swap/backup/temp files and anything in a VCS
    or ``__pycache__`` folder: files whose changes never mean a reload."""
    name = os.path.basename(path)
    if (
        name.endswith(_IGNORED_SUFFIXES)
        or name.startswith(_IGNORED_PREFIXES)
        or name == "4913"  # vim's "can I write here?" probe
        or (name.startswith("#") and name.endswith("#"))  # emacs auto-save
    ):
        return True
    parts = path.replace("\\", "/").split("/")
    return any(part in _IGNORED_DIRS for part in parts[:-1])


def is_excluded(path: str, patterns: t.Sequence[str]) -> bool:
    """True when ``path`` (whole or its file name) matches an fnmatch pattern."""
    if not patterns:
        return False
    name = os.path.basename(path)
    return any(
        fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(name, pattern)
        for pattern in patterns
    )


def _source_of(filename: str) -> str | None:
    """The file on disk behind a module's ``__file__`` (source over bytecode,
    the archive for a module imported from a zip file)."""
    if filename.endswith((".pyc", ".pyo")):
        candidate = filename[:-1]
        if os.path.isfile(candidate):
            return candidate
    path = os.path.abspath(filename)
    while not os.path.isfile(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return path


def module_files(modules: t.Iterable[object] | None = None) -> set[str]:
    """The files of the loaded modules that belong to the user.

    Leaves out the standard library and site-packages (see
    :func:`is_library_file`), frozen and built-in modules.
    """
    if modules is None:
        modules = list(sys.modules.copy().values())
    found: set[str] = set()
    for module in modules:
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str) or not filename:
            continue
        path = _source_of(filename)
        if path is None or is_library_file(path) or is_ignored_name(path):
            continue
        found.add(path)
    return found


def files_of_error(error: BaseException) -> set[str]:
    """The files named by ``error``: its traceback's frames (chained errors
    included) and a :exc:`SyntaxError`'s file."""
    found: set[str] = set()
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, SyntaxError) and current.filename:
            found.add(os.path.abspath(current.filename))
        tb = current.__traceback__
        while tb is not None:
            found.add(os.path.abspath(tb.tb_frame.f_code.co_filename))
            tb = tb.tb_next
        todo.extend([current.__cause__, current.__context__])
    return {p for p in found if os.path.isfile(p) and not is_library_file(p)}


def files_of_traceback_text(text: str) -> set[str]:
    """The files named in a printed traceback (``File "...", line N`` lines)."""
    found = set()
    for match in _TRACEBACK_FILE.finditer(text):
        path = os.path.abspath(match.group("path"))
        if os.path.isfile(path) and not is_library_file(path):
            found.add(path)
    return found


def display_path(path: str) -> str:
    """``path`` for a log line: relative to the current folder when inside it,
    quoted, with control characters escaped."""
    try:
        cwd = os.getcwd()
        if path.startswith(cwd + os.sep):
            path = os.path.relpath(path, cwd)
    except (OSError, ValueError):
        pass
    escaped = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        for ch in path
    )
    return f"'{escaped}'"


# -- snapshots -----------------------------------------------------------------

#: ``(size, mtime)`` of each source file as the import system saw it, by path.
_import_stamps: dict[str, tuple[int, float]] = {}


def record_import_stamps() -> None:
    """From now on, note each Python source file's size and modification time
    at the moment it is imported.

    The first snapshot then knows whether a module changed after it was
    imported, by comparing with what the import saw, instead of guessing from
    the time (a modification time in the future, clock skew or a file
    unpacked from an archive, would look like a change made during the
    start). It costs no system call: the import system stats each source file
    anyway (``SourceFileLoader.path_stats``, wrapped here).
    """
    from importlib.machinery import SourceFileLoader

    original = SourceFileLoader.path_stats
    if getattr(original, "_citus_records", False):
        return

    def path_stats(self: SourceFileLoader, path: str) -> t.Mapping[str, t.Any]:
        stats = original(self, path)
        try:
            _import_stamps[os.path.abspath(path)] = (stats["size"], stats["mtime"])
        except (KeyError, TypeError):  # pragma: no cover - a foreign loader
            pass
        return stats

    path_stats._citus_records = True  # type: ignore[attr-defined]
    SourceFileLoader.path_stats = path_stats  # type: ignore[method-assign]


def stamp(path: str) -> Stamp:
    """``(size, mtime_ns)`` of ``path``, or ``None`` when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def digest(path: str) -> bytes | None:
    """A digest of the content, or ``None`` for unreadable or very large files."""
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size > DIGEST_LIMIT:
                return None
            return hashlib.blake2b(file.read(), digest_size=16).digest()
    except OSError:
        return None


class FileState(t.NamedTuple):
    """What a watcher remembers of a file: its stamp, and a digest of its
    bytes when it was worth taking (see :func:`same_bytes`)."""

    stamp: Stamp
    digest: bytes | None


def same_bytes(path: str, old: FileState, current: Stamp) -> bool:
    """Whether ``path``, whose stamp went from ``old.stamp`` to ``current``,
    still holds the bytes that ``old.digest`` was taken of: touched, or
    rewritten with the same bytes (same size, same digest), which is no change."""
    return (
        current is not None
        and old.stamp is not None
        and current[0] == old.stamp[0]
        and old.digest is not None
        and digest(path) == old.digest
    )


def _python_files_in(folder: str) -> set[str]:
    try:
        names = os.listdir(folder)
    except OSError:
        return set()
    return {
        os.path.join(folder, name)
        for name in names
        if name.endswith(".py") and not name.startswith(".")
    }


class Watcher:
    """Decides when a watched file's content changed, with any backend.

    :param backend: tells where to look (see :class:`Backend`); may be given
        later, to :meth:`run`.
    :param extra_files: watched besides the modules' files.
    :param exclude_patterns: fnmatch patterns of paths never watched.
    :param scan_modules: also watch the files of ``sys.modules``, scanned again
        when modules are imported later.
    :param since: a time (``time.time()``): files modified after it count as
        changed at once (they may have changed after the process read them).
    :param on_watch: called with the sorted list of watched files each time the
        set changes.
    """

    def __init__(
        self,
        backend: Backend | None,
        extra_files: t.Iterable[str] = (),
        exclude_patterns: t.Iterable[str] = (),
        *,
        scan_modules: bool = True,
        since: float | None = None,
        on_watch: t.Callable[[list[str]], None] | None = None,
    ) -> None:
        self.backend = backend
        self.exclude_patterns = tuple(exclude_patterns)
        self.extra_files = {os.path.abspath(p) for p in extra_files}
        self.scan_modules = scan_modules
        self.since = since
        self.on_watch = on_watch
        self._stop = threading.Event()
        self._entries: dict[str, FileState] = {}
        self._dirs: dict[str, set[str]] = {}
        self._module_count = -1
        self._more: set[str] = set()
        self._lock = threading.Lock()
        #: True when :meth:`run` returned files that changed while the process
        #: started (before it could have served anything).
        self.stale_at_start = False
        self._prepared = False

    # The set of files ------------------------------------------------------

    def add_files(self, paths: t.Iterable[str]) -> None:
        """Watch ``paths`` too (thread-safe; picked up on the next rescan)."""
        with self._lock:
            self._more.update(os.path.abspath(p) for p in paths)
            self._module_count = -1

    def _wanted(self) -> tuple[set[str], set[str]]:
        files = set(self.extra_files)
        project: set[str] = set()
        with self._lock:
            files.update(self._more)
        if self.scan_modules:
            modules = {
                p for p in module_files() if not is_excluded(p, self.exclude_patterns)
            }
            files.update(modules)
            # A folder is a project folder when it holds a watched module.
            project.update(os.path.dirname(p) for p in modules if p.endswith(".py"))
        files = {p for p in files if not is_excluded(p, self.exclude_patterns)}
        return files, project

    def refresh(self) -> list[str]:
        """Bring the watched set up to date; return files already changed since
        :attr:`since` (they were modified while the process started)."""
        files, project = self._wanted()
        new_files = files - self._entries.keys()
        new_dirs = project - self._dirs.keys()
        stale: list[str] = []
        for path in sorted(new_files):
            current = stamp(path)
            entry = FileState(current, None)
            if current is not None:
                entry = FileState(current, digest(path))
                if self.since is not None and self._changed_since_read(path, current):
                    stale.append(path)
            self._entries[path] = entry
        # Only the first scan can race with the process's own imports.
        self.since = None
        for folder in new_dirs:
            self._dirs[folder] = _python_files_in(folder)
        if new_files or new_dirs:
            if self.backend is not None:
                self.backend.update(list(self._entries), list(self._dirs))
            if self.on_watch is not None:
                self.on_watch(sorted(self._entries))
        return stale

    def _changed_since_read(self, path: str, current: tuple[int, int]) -> bool:
        """Whether ``path`` may have changed after this process read it."""
        assert self.since is not None
        read = _import_stamps.get(path)
        if read is not None:
            # Imported since recording began: compare with what the import saw.
            return read[0] != current[0] or abs(read[1] - current[1] / 1e9) > 1e-6
        mtime = current[1] / 1e9
        # A modification time in the future (clock skew on a mounted folder,
        # files unpacked from an archive) says nothing about this start: only
        # a change of content, seen later, reloads such a file.
        return self.since <= mtime <= time.time()

    @property
    def files(self) -> list[str]:
        """The files watched now."""
        return sorted(self._entries)

    @property
    def project_folders(self) -> list[str]:
        """The folders watched for new modules."""
        return sorted(self._dirs)

    @property
    def folders(self) -> list[str]:
        """Every folder watched: the files' folders and the project folders."""
        return sorted({os.path.dirname(p) for p in self._entries} | set(self._dirs))

    # Detecting a change --------------------------------------------------------

    def _touched(self, hint: set[str] | None) -> tuple[set[str], set[str]]:
        """Files whose stamp differs from the snapshot, and new modules."""
        if hint is None:
            files: t.Iterable[str] = list(self._entries)
            dirs: t.Iterable[str] = list(self._dirs)
        else:
            files = [p for p in hint if p in self._entries]
            dirs = {p for p in hint if p in self._dirs}
            dirs.update(
                d
                for d in (os.path.dirname(p) for p in hint if p.endswith(".py"))
                if d in self._dirs
            )
        touched = {p for p in files if stamp(p) != self._entries[p].stamp}
        new: set[str] = set()
        for folder in dirs:
            for path in _python_files_in(folder) - self._dirs[folder]:
                if not is_ignored_name(path) and not is_excluded(
                    path, self.exclude_patterns
                ):
                    new.add(path)
        return touched, new

    def _relevant(self, hint: set[str]) -> set[str]:
        """The paths of ``hint`` that matter: watched files, watched folders
        and Python files in them (a log file written next to them is not)."""
        return {
            p
            for p in hint
            if p in self._entries
            or p in self._dirs
            or (p.endswith(".py") and os.path.dirname(p) in self._dirs)
        }

    def _settle(self, touched: set[str], new: set[str]) -> None:
        """Wait until the files stop changing (one save = one restart)."""
        assert self.backend is not None
        deadline = time.monotonic() + SETTLE_MAX
        last = {p: stamp(p) for p in touched | new}
        while time.monotonic() < deadline and not self._stop.is_set():
            hint = self.backend.wait(SETTLE_QUIET)
            active = False
            if hint is None or hint:
                relevant = None if hint is None else self._relevant(hint)
                if relevant is None or relevant:
                    more_touched, more_new = self._touched(relevant)
                    touched.update(more_touched)
                    new.update(more_new)
                    active = bool(relevant)
            now = {p: stamp(p) for p in touched | new}
            if now == last and not active:
                return
            last = now

    def _really_changed(self, touched: set[str]) -> list[str]:
        changed = []
        for path in sorted(touched):
            old = self._entries[path]
            current = stamp(path)
            if current == old.stamp:
                continue
            if same_bytes(path, old, current):
                # Touched, or rewritten with the same bytes: no restart.
                self._entries[path] = FileState(current, old.digest)
                continue
            changed.append(path)
        return changed

    def check(self, hint: set[str] | None) -> list[str]:
        """Handle one answer of the backend; return the files that changed."""
        touched, new = self._touched(hint)
        if not touched and not new:
            return []
        self._settle(touched, new)
        changed = self._really_changed(touched)
        new = {p for p in new if os.path.isfile(p)}
        for path in new:
            self._dirs[os.path.dirname(path)].add(path)
        return changed + sorted(new)

    def prepare(self) -> list[str]:
        """Take the first snapshot; return the files that changed since
        :attr:`since` already (see :attr:`stale_at_start`).

        Cheap enough to call before serving, so that no change made once the
        process serves can fall between its imports and the snapshot.
        """
        self._prepared = True
        stale = self.refresh()
        self.stale_at_start = bool(stale)
        return stale

    def run(self, backend: Backend | None = None) -> list[str]:
        """Block until a watched file changes; return the changed files.

        :param backend: the backend, if not given to the constructor.

        Returns an empty list when :meth:`stop` was called.
        """
        if backend is not None:
            self.backend = backend
        assert self.backend is not None, "Watcher.run() needs a backend"
        if self._stop.is_set():
            self.backend.close()
            return []
        if not self._prepared:
            stale = self.prepare()
            if stale:
                return stale
        # Changes made between the snapshot and the backend's first watch
        # would be missed by events: look once after watching starts.
        self.backend.update(list(self._entries), list(self._dirs))
        changed = self.check(None)
        if changed:
            return changed
        next_rescan = time.monotonic() + RESCAN_EVERY
        while not self._stop.is_set():
            hint = self.backend.wait(RESCAN_EVERY)
            if self._stop.is_set():
                break
            if hint is None or hint:
                changed = self.check(hint)
                if changed:
                    return changed
            if time.monotonic() >= next_rescan or hint is None:
                next_rescan = time.monotonic() + RESCAN_EVERY
                count = len(sys.modules)
                if count != self._module_count:
                    self._module_count = count
                    stale = self.refresh()
                    if stale:
                        return stale
        return []

    def stop(self) -> None:
        """Make :meth:`run` return (from another thread)."""
        self._stop.set()
        if self.backend is not None:
            self.backend.close()
