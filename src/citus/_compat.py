"""Platform differences in one place: code that must differ between POSIX and
Windows lives here, behind names that are the same on both.

Each branch tests ``sys.platform == "win32"`` literally so that mypy narrows it,
and both branches define the same names.
"""

from __future__ import annotations

import sys
import typing as t

if sys.platform == "win32":
    import msvcrt

    def lock_file(file: t.IO[t.Any]) -> None:
        """Block until this process holds an exclusive lock on ``file``."""
        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_LOCK, 1)

    def unlock_file(file: t.IO[t.Any]) -> None:
        """Release the lock taken by :func:`lock_file`."""
        file.seek(0)
        msvcrt.locking(file.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def lock_file(file: t.IO[t.Any]) -> None:
        """Block until this process holds an exclusive lock on ``file``."""
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)

    def unlock_file(file: t.IO[t.Any]) -> None:
        """Release the lock taken by :func:`lock_file`."""
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)
