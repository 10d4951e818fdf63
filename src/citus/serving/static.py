"""Static files: folders served at URL prefixes, safely and with HTTP caching.

:class:`StaticFilesMiddleware` serves ``run_simple(static_files={...})``, and
:func:`file_response` also serves an :class:`~citus.API`'s ``static/`` folder.

Safety first: :func:`resolve` maps a URL path to a file only if the file lies
inside the folder once symbolic links are followed. A ``..`` segment (however
it was percent-encoded: servers decode ``%2e%2e`` and ``%2f`` before the
application sees the path), a backslash, a drive letter or an absolute path gets
404, and a NUL byte gets 400. Files are sent with ``ETag`` and
``Last-Modified``, answer conditional requests with 304, single byte ranges
with 206 (416 when unsatisfiable), and use the server's ``wsgi.file_wrapper``
when there is one.
"""

from __future__ import annotations

import mimetypes
import os
import typing as t
from email.utils import formatdate, parsedate_to_datetime

from .._status import reason_phrase

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["BadPathError", "StaticFilesMiddleware", "file_response", "resolve"]

#: Bytes read from a file per chunk of the response body.
CHUNK_SIZE = 64 * 1024

_TEXT_TYPES = (
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
    "application/manifest+json",
)

_EXTRA_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
    ".webp": "image/webp",
    ".map": "application/json",
}

Result = tuple[int, list[tuple[str, str]], t.Iterable[bytes]]


class BadPathError(Exception):
    """A URL path that may not name a static file: 404, or 400 for a NUL byte.

    :param status: the status to answer with.
    """

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        super().__init__(reason)


def resolve(root: str, subpath: str) -> str | None:
    """The file ``subpath`` names inside the folder ``root``, or ``None`` when
    there is no such file.

    :param root: the folder (or a single file, served when ``subpath`` is empty).
    :param subpath: the rest of the URL path, ``/``-separated, already decoded.
    :raises BadPathError: ``subpath`` tries to leave ``root`` or holds a NUL byte.
    """
    if "\x00" in subpath:
        raise BadPathError(400, "NUL byte in the path")
    segments = []
    for segment in subpath.split("/"):
        if segment in ("", "."):
            continue
        if segment == ".." or "\\" in segment or ":" in segment:
            raise BadPathError(404, f"forbidden path segment {segment!r}")
        segments.append(segment)
    real_root = os.path.realpath(root)
    if os.path.isfile(real_root):
        return real_root if not segments else None
    if not segments:
        return None
    candidate = os.path.realpath(os.path.join(real_root, *segments))
    try:
        inside = os.path.commonpath([real_root, candidate]) == real_root
    except ValueError:  # different drives on Windows
        inside = False
    if not inside:
        raise BadPathError(404, "the path leaves the folder")
    if not os.path.isfile(candidate):
        return None
    return candidate


def guess_type(path: str) -> str:
    """The ``Content-Type`` for ``path``, with ``charset=utf-8`` for text."""
    extension = os.path.splitext(path)[1].lower()
    mimetype = _EXTRA_TYPES.get(extension) or mimetypes.guess_type(path)[0]
    if mimetype is None:
        return "application/octet-stream"
    if mimetype.startswith("text/") or mimetype in _TEXT_TYPES:
        return f"{mimetype}; charset=utf-8"
    return mimetype


def _error(status: int, headers: list[tuple[str, str]] | None = None) -> Result:
    body = f"{status} {reason_phrase(status, 'Error')}\n".encode()
    return (
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *(headers or []),
        ],
        [body],
    )


def _etag_matches(header: str, etag: str) -> bool:
    for item in header.split(","):
        item = item.strip()
        if item == "*":
            return True
        if item.startswith("W/"):
            item = item[2:]
        if item == etag:
            return True
    return False


def _parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """``(first, last)`` for one satisfiable range, ``None`` to ignore the
    header (bad syntax, several ranges), ``False`` when unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or not (first_text or last_text):
        return None
    if not (first_text.isdigit() or not first_text) or not (
        last_text.isdigit() or not last_text
    ):
        return None
    if not first_text:  # suffix: the last N bytes
        count = int(last_text)
        if count == 0 or size == 0:
            return False
        return max(size - count, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else None
    if last is not None and last < first:
        return None
    if first >= size:
        return False
    return first, size - 1 if last is None else min(last, size - 1)


class _FileChunks:
    """Reads ``length`` bytes of an open file from ``offset``, then closes it."""

    def __init__(self, file: t.BinaryIO, offset: int, length: int) -> None:
        self._file = file
        self._remaining = length
        file.seek(offset)

    def __iter__(self) -> t.Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._remaining <= 0:
            self.close()
            raise StopIteration
        data = self._file.read(min(CHUNK_SIZE, self._remaining))
        if not data:
            self.close()
            raise StopIteration
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


def file_response(environ: WSGIEnvironment, root: str, subpath: str) -> Result:
    """``(status, headers, body)`` answering ``environ``'s request for the file
    ``subpath`` of the folder ``root``: 200, 206, 304, 400, 404, 405 or 416.
    """
    try:
        path = resolve(root, subpath)
    except BadPathError as error:
        return _error(error.status)
    if path is None:
        return _error(404)
    return serve_file(environ, path)


def serve_file(environ: WSGIEnvironment, path: str) -> Result:
    """``(status, headers, body)`` sending the file ``path`` (already resolved)
    in answer to ``environ``'s request, honouring conditional and range headers.
    """
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    if method not in ("GET", "HEAD"):
        return _error(405, [("Allow", "GET, HEAD")])
    try:
        stat = os.stat(path)
    except OSError:
        return _error(404)
    size = stat.st_size
    etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
    last_modified = formatdate(stat.st_mtime, usegmt=True)
    headers = [
        ("ETag", etag),
        ("Last-Modified", last_modified),
        ("Cache-Control", "no-cache"),
    ]

    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        not_modified = _etag_matches(str(if_none_match), etag)
    else:
        not_modified = False
        since = environ.get("HTTP_IF_MODIFIED_SINCE")
        if since:
            try:
                when = parsedate_to_datetime(str(since)).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                when = None
            not_modified = when is not None and int(stat.st_mtime) <= when
    if not_modified:
        return 304, headers, []

    headers += [
        ("Content-Type", guess_type(path)),
        ("Accept-Ranges", "bytes"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    status, offset, length = 200, 0, size
    range_header = environ.get("HTTP_RANGE")
    if_range = environ.get("HTTP_IF_RANGE")
    if range_header and (
        if_range is None or str(if_range).strip() in (etag, last_modified)
    ):
        wanted = _parse_range(str(range_header), size)
        if wanted is False:
            return _error(416, [("Content-Range", f"bytes */{size}")])
        if isinstance(wanted, tuple):
            first, last = wanted
            status, offset, length = 206, first, last - first + 1
            headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
    headers.append(("Content-Length", str(length)))
    if method == "HEAD":
        return status, headers, []
    try:
        file = open(path, "rb")  # closed by the body iterator
    except OSError:
        return _error(404)
    wrapper = environ.get("wsgi.file_wrapper")
    if status == 200 and wrapper is not None:
        return status, headers, t.cast("t.Iterable[bytes]", wrapper(file, CHUNK_SIZE))
    return status, headers, _FileChunks(file, offset, length)


class StaticFilesMiddleware:
    """Serve folders at URL prefixes and pass every other request to ``app``.

    ::

        app = StaticFilesMiddleware(app, {"/static": "/srv/site/static"})

    A prefix may also map to a single file (``{"/favicon.ico": "icon.ico"}``).
    Paths that try to leave a folder get 404 (400 for a NUL byte); a file that
    does not exist is left to ``app``.

    :param app: the WSGI application for everything else.
    :param mapping: URL prefix -> folder or file.
    """

    def __init__(self, app: WSGIApplication, mapping: dict[str, str]) -> None:
        self.app = app
        self.mapping = mapping
        self._prefixes = sorted(
            (("/" + prefix.strip("/")).rstrip("/"), os.path.abspath(folder))
            for prefix, folder in mapping.items()
        )
        self._prefixes.sort(key=lambda item: len(item[0]), reverse=True)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Serve a static file or call the wrapped application."""
        raw = str(environ.get("PATH_INFO", "") or "/")
        path = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        for prefix, folder in self._prefixes:
            if prefix and path != prefix and not path.startswith(prefix + "/"):
                continue
            subpath = path[len(prefix) :]
            try:
                found = resolve(folder, subpath)
            except BadPathError as error:
                return self._send(_error(error.status), start_response)
            if found is not None:
                return self._send(serve_file(environ, found), start_response)
        return self.app(environ, start_response)

    @staticmethod
    def _send(result: Result, start_response: StartResponse) -> t.Iterable[bytes]:
        status, headers, body = result
        start_response(f"{status} {reason_phrase(status)}", headers)
        return body
