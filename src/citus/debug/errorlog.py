"""The recent errors of a running server, for ``citus errors`` in another
terminal.

The serving process writes two private files next to the debugger's state file
(``<pid>-<random>.json`` in the per-user folder ``citus-debugger-<uid>`` of
the temporary folder, see :mod:`._state`):

- ``<pid>-<random>.server``: who serves (``pid``, ``owner``: the process that
  created the state, the ``citus run`` itself), where (``cwd``, ``ports``,
  ``addresses``) and since when (``started``), rewritten at each start of a serving
  process;
- ``<pid>-<random>.errors``: one JSON document per line, the debugger's JSON
  document of each error plus ``id``, ``time`` and ``request``, the oldest
  first; only the last :data:`KEEP` are kept.

Nothing listens anywhere: readers find the files by looking in the folder,
which only this user may read, and keep only servers whose process is alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
import typing as t

from .._compat import is_private, lock_file, process_alive, unlock_file
from ._state import BASE_NAME
from .page import request_url
from .share import markdown_report

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .tbtools import Link, Traceback

#: How many errors the file keeps (it is cut back to this many when it holds
#: twice as many).
KEEP = 50
SERVER_SUFFIX = ".server"
ERRORS_SUFFIX = ".errors"


def _base(state_path: str) -> str:
    root, ext = os.path.splitext(state_path)
    return root if ext == ".json" else state_path


def _create_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600), replacing it atomically."""
    temporary = path + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.remove(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


class ErrorLog:
    """The writing side: the server's record and its recent errors.

    :param state_path: the debugger's state file; the two files sit next to it.
    """

    def __init__(self, state_path: str) -> None:
        base = _base(state_path)
        self.server_path = base + SERVER_SUFFIX
        self.errors_path = base + ERRORS_SUFFIX
        #: Whether this process serves (and so records its errors).
        self.active = False

    def announce(self, ports: list[str], addresses: list[str]) -> None:
        """Record that this process serves, in the current folder.

        :param ports: the listening ports (or Unix socket paths), as text.
        :param addresses: where it listens (``127.0.0.1:8000``, ``[::1]:8000``).
        """
        owner = os.path.basename(self.server_path).split("-", 1)[0]
        record = {
            "pid": os.getpid(),
            "owner": int(owner) if owner.isdigit() else os.getpid(),
            "cwd": os.getcwd(),
            "ports": ports,
            "addresses": addresses,
            "started": time.time(),
        }
        try:
            _create_private(self.server_path, json.dumps(record).encode())
        except OSError:
            return  # citus errors won't find this server; serving goes on
        self.active = True

    def record(
        self, tb: Traceback, environ: WSGIEnvironment, link: Link | None
    ) -> None:
        """Add the error of ``tb``, from the request ``environ``.

        :param tb: the traceback.
        :param environ: the request that failed.
        :param link: gives the editor URL of a file and line, if any.
        """
        if not self.active:
            return
        document = tb.to_json(link, markdown_report(tb, environ))
        document["id"] = tb.id
        document["time"] = tb.created
        document["request"] = {
            "method": environ.get("REQUEST_METHOD", "GET"),
            "url": request_url(environ),
        }
        self.add(document)

    def add(self, document: dict[str, t.Any]) -> None:
        """Append one error's document, cutting the file back to :data:`KEEP`.

        :param document: the JSON document, with ``id`` and ``time``.
        """
        if not self.active:
            return
        line = json.dumps(document).encode() + b"\n"
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.errors_path, flags, 0o600)
        except OSError:
            return
        with os.fdopen(fd, "r+b") as file:
            if not is_private(os.fstat(file.fileno())):
                return
            lock_file(file)
            try:
                file.seek(0)
                lines = file.read().splitlines(keepends=True)
                lines.append(line)
                if len(lines) > 2 * KEEP:
                    lines = lines[-KEEP:]
                    file.seek(0)
                    file.write(b"".join(lines))
                    file.truncate()
                else:
                    file.seek(0, os.SEEK_END)
                    file.write(line)
                file.flush()
            finally:
                unlock_file(file)


# --- the reading side (citus errors) ------------------------------------------


class Server(t.NamedTuple):
    """A running server found in the state folders."""

    pid: int
    owner: int
    cwd: str
    ports: list[str]
    addresses: list[str]
    started: float
    errors_path: str


def _state_folders() -> list[str]:
    """The per-user state folders: ``citus-debugger-<uid>`` and the private
    ``citus-debugger-*`` folders made when that one could not be trusted."""
    root = tempfile.gettempdir()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    folders = []
    for entry in entries:
        if not entry.name.startswith(BASE_NAME):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and is_private(info):
            folders.append(entry.path)
    return folders


def _read_private(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or not is_private(info):
            return None
        return file.read()


def running_servers() -> list[Server]:
    """The servers of this user that record their errors, newest first."""
    servers = []
    for folder in _state_folders():
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if not name.endswith(SERVER_SUFFIX):
                continue
            path = os.path.join(folder, name)
            data = _read_private(path)
            if data is None:
                continue
            try:
                record = json.loads(data)
                server = Server(
                    pid=int(record["pid"]),
                    owner=int(record["owner"]),
                    cwd=str(record["cwd"]),
                    ports=[str(p) for p in record["ports"]],
                    addresses=[str(a) for a in record["addresses"]],
                    started=float(record["started"]),
                    errors_path=path[: -len(SERVER_SUFFIX)] + ERRORS_SUFFIX,
                )
            except (ValueError, KeyError, TypeError):
                continue
            if process_alive(server.owner) and process_alive(server.pid):
                servers.append(server)
    servers.sort(key=lambda s: s.started, reverse=True)
    return servers


def _inside(folder: str, root: str) -> bool:
    folder = os.path.normcase(os.path.realpath(folder))
    root = os.path.normcase(os.path.realpath(root))
    return folder == root or folder.startswith(root.rstrip(os.sep) + os.sep)


def find_server(port: str | None = None, cwd: str | None = None) -> Server | None:
    """The server ``citus errors`` reads: the one on ``port``, else the newest
    one started in ``cwd`` (the current folder) or a folder above it.

    :param port: a port number (or Unix socket path), if given.
    :param cwd: the folder to look from; the current folder by default.
    """
    servers = running_servers()
    if port is not None:
        for server in servers:
            if port in server.ports:
                return server
        return None
    here = os.getcwd() if cwd is None else cwd
    matching = [s for s in servers if _inside(here, s.cwd)]
    # The deepest project folder first (a server in ./api over one in .).
    matching.sort(key=lambda s: len(os.path.realpath(s.cwd)), reverse=True)
    return matching[0] if matching else None


def read_errors(server: Server) -> list[dict[str, t.Any]]:
    """The errors recorded by ``server``, oldest first."""
    data = _read_private(server.errors_path)
    if not data:
        return []
    documents = []
    for line in data.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue  # a line being written
        if isinstance(document, dict):
            documents.append(document)
    return documents


__all__ = [
    "KEEP",
    "ErrorLog",
    "Server",
    "find_server",
    "read_errors",
    "running_servers",
]
