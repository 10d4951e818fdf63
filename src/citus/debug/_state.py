"""The debugger's state shared across the reloader's processes: the PIN, the
count of wrong PINs, the lockout and the tokens of unlocked browsers.

The first process creates a private file, ``<pid>-<random>.json`` in the
per-user folder ``citus-debugger-<uid>`` of the temporary folder, and names it
in ``CITUS_DEBUGGER_STATE``; children inherit the variable and reuse the file.
Files left by processes that were killed are removed by the next one to start,
so they don't pile up. Every change happens under a thread lock and an
exclusive file lock (:func:`citus._compat.lock_file`), so counting is atomic
across threads and processes.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
import typing as t

from .._compat import (
    is_private,
    lock_file,
    per_user_name,
    process_alive,
    unlock_file,
)

#: Environment variable: the state file shared with the reloader's children.
STATE_ENV = "CITUS_DEBUGGER_STATE"


def generate_pin() -> str:
    """A random PIN in the form ``123-456-789``."""
    digits = f"{secrets.randbelow(10**9):09d}"
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def normalize_pin(value: str) -> str:
    """``value`` without spaces, dashes and case, for comparison."""
    return "".join(ch for ch in value if ch not in " -_\t").lower()


def hash_token(token: str) -> str:
    """How a cookie token is stored: its SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


#: Name of the per-user folder, in the temporary folder, that holds the state
#: files of every ``citus run`` of this user (POSIX adds the user id).
BASE_NAME = "citus-debugger"
# A state file is named after the process that created it: ``<pid>-<random>.json``;
# the files of :mod:`.errorlog` sit beside it (``.server``, ``.errors``).
_STATE_FILE = re.compile(r"(\d+)-[A-Za-z0-9_-]+\.(?:json|server|errors)")
#: Suffixes of the files kept beside a state file, removed with it.
SIBLING_SUFFIXES = (".server", ".errors")


def _private_folder(path: str) -> bool:
    """Create ``path`` as a private folder if missing; whether it is one now.

    A symbolic link, another user's folder or one others may write to is
    refused: whoever controls the folder could swap the state file.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and is_private(info)


def _base_folder() -> str | None:
    """The per-user folder for state files, or ``None`` when it can't be trusted."""
    path = os.path.join(tempfile.gettempdir(), per_user_name(BASE_NAME))
    return path if _private_folder(path) else None


def sweep_stale(folder: str) -> list[str]:
    """Remove the state files in ``folder`` whose creating process has ended.

    A ``citus run`` killed with SIGKILL (or a crash) cannot remove its file; the
    next one to start does. Only files named ``<pid>-<random>.json``, owned by
    this user and private, are considered (and the ``.server`` and
    ``.errors`` files beside them), and only when no process ``pid``
    exists. Returns the removed paths.

    :param folder: the per-user state folder (already checked to be private).
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _STATE_FILE.fullmatch(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or not is_private(info):
            continue
        if process_alive(int(match.group(1))):
            continue
        try:
            os.remove(entry.path)
        except OSError:
            continue
        removed.append(entry.path)
    return removed


def _write_new(path: str, data: dict[str, t.Any]) -> bool:
    """Create ``path`` (mode 0600) holding ``data``; False if it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        json.dump(data, file)
    return True


def _open_no_link(path: str) -> t.IO[str]:
    """Open ``path`` for reading and writing, refusing a symbolic link."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    return open(fd, "r+", encoding="utf-8")


class SharedState:
    """The PIN and the failed-attempt count, in a file shared across processes.

    The first process creates ``<pid>-<random>.json`` in a private per-user
    folder (``citus-debugger-<uid>`` in the temporary folder, mode 0700, checked
    to be this user's), removes the files left there by processes that no
    longer exist, and puts the file's path in ``CITUS_DEBUGGER_STATE``; the
    reloader's children inherit the variable and reuse the file, so a reload
    keeps the PIN, the count and the unlocked browsers. The first process
    removes the file when it exits. Every update takes a thread lock and an
    exclusive file lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The PIN last read from the file: kept if the file has to be made again.
        self._pin: str | None = None
        path = os.environ.get(STATE_ENV)
        if path and self._usable(path):
            self.path = path
            return
        self.path, own_folder = self._create(self._fresh())
        os.environ[STATE_ENV] = self.path
        owner = os.getpid()

        def cleanup() -> None:
            if os.getpid() == owner:
                base = os.path.splitext(self.path)[0]
                for path in (self.path, *(base + s for s in SIBLING_SUFFIXES)):
                    with contextlib.suppress(OSError):
                        os.remove(path)
                if own_folder is not None:
                    shutil.rmtree(own_folder, ignore_errors=True)

        atexit.register(cleanup)

    @staticmethod
    def _create(data: dict[str, t.Any]) -> tuple[str, str | None]:
        """Write ``data`` to a new private state file.

        Returns its path and, when it needed a folder of its own, that folder.
        """
        base = _base_folder()
        if base is not None:
            sweep_stale(base)
            while True:
                name = f"{os.getpid()}-{secrets.token_hex(6)}.json"
                path = os.path.join(base, name)
                if _write_new(path, data):
                    return path, None
        # The shared folder is not ours (someone else made it): a folder of our
        # own, as private, that nobody sweeps.
        folder = tempfile.mkdtemp(prefix=f"{BASE_NAME}-")
        path = os.path.join(folder, f"{os.getpid()}-state.json")
        _write_new(path, data)
        return path, folder

    def _fresh(self) -> dict[str, t.Any]:
        pin = self._pin or generate_pin()
        return {"pin": pin, "failures": 0, "locked_until": 0, "tokens": {}}

    @staticmethod
    def _usable(path: str) -> bool:
        try:
            info = os.lstat(path)
            folder = os.lstat(os.path.dirname(path) or ".")
        except OSError:
            return False
        return (
            stat.S_ISREG(info.st_mode)
            and is_private(info)
            and stat.S_ISDIR(folder.st_mode)
            and is_private(folder)
        )

    def _open(self) -> t.IO[str]:
        try:
            file = _open_no_link(self.path)
        except FileNotFoundError:
            pass
        except OSError:  # ELOOP: a symbolic link was put in its place
            self._relocate()
            return _open_no_link(self.path)
        else:
            if is_private(os.fstat(file.fileno())):
                return file
            file.close()
        # Removed under us (a temporary-folder cleaner) or no longer private:
        # make it again, with the same PIN, in its folder if that is still a
        # private one of ours, else somewhere new.
        folder = os.path.dirname(self.path)
        if not _private_folder(folder) or not (
            _write_new(self.path, self._fresh()) or self._usable(self.path)
        ):
            self._relocate()
        return _open_no_link(self.path)

    def _relocate(self) -> None:
        self.path = self._create(self._fresh())[0]
        os.environ[STATE_ENV] = self.path

    def update(self, change: t.Callable[[dict[str, t.Any]], t.Any]) -> t.Any:
        """Apply ``change`` to the state under both locks and return its result."""
        with self._lock, self._open() as file:
            lock_file(file)
            try:
                file.seek(0)
                try:
                    data = json.loads(file.read() or "{}")
                except ValueError:
                    data = {}
                if not isinstance(data, dict) or "pin" not in data:
                    data = self._fresh()
                self._pin = str(data["pin"])
                before = json.dumps(data, sort_keys=True)
                result = change(data)
                after = json.dumps(data, sort_keys=True)
                if after != before:
                    file.seek(0)
                    file.write(after)
                    file.truncate()
                    file.flush()
            finally:
                unlock_file(file)
        return result
