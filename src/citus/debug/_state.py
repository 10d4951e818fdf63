"""The debugger's state shared across the reloader's processes: the PIN, the
count of wrong PINs, the lockout and the tokens of unlocked browsers.

The first process creates a private folder holding ``state.json`` and names it
in ``CITUS_DEBUGGER_STATE``; children inherit the variable and reuse the file.
Every change happens under a thread lock and an exclusive file lock
(:func:`citus._compat.lock_file`), so counting is atomic across threads and
processes.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import typing as t

from .._compat import lock_file, unlock_file

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


class SharedState:
    """The PIN and the failed-attempt count, in a file shared across processes.

    The first process creates a private folder and the file and puts its path
    in ``CITUS_DEBUGGER_STATE``; the reloader's children inherit the variable
    and reuse the file, so a reload keeps the PIN, the count and the unlocked
    browsers. Every update takes a thread lock and an exclusive file lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        path = os.environ.get(STATE_ENV)
        if path and self._usable(path):
            self.path = path
            return
        folder = tempfile.mkdtemp(prefix="citus-debugger-")
        self.path = os.path.join(folder, "state.json")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(self._fresh(), file)
        os.environ[STATE_ENV] = self.path
        owner = os.getpid()

        def cleanup() -> None:
            if os.getpid() == owner:
                shutil.rmtree(folder, ignore_errors=True)

        atexit.register(cleanup)

    @staticmethod
    def _fresh() -> dict[str, t.Any]:
        return {"pin": generate_pin(), "failures": 0, "locked_until": 0, "tokens": {}}

    @staticmethod
    def _usable(path: str) -> bool:
        try:
            info = os.stat(path)
        except OSError:
            return False
        if sys.platform != "win32":
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                return False
        return os.path.isfile(path)

    def _open(self) -> t.IO[str]:
        try:
            return open(self.path, "r+", encoding="utf-8")
        except FileNotFoundError:
            # Removed under us (a temp-folder cleaner): start a fresh state
            # rather than failing every debugger request from now on.
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as file:
                    json.dump(self._fresh(), file)
            except FileExistsError:
                pass
            return open(self.path, "r+", encoding="utf-8")

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
