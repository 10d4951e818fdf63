"""The fields of a ``multipart/form-data`` body, for the error page, without
holding the uploaded files.

:class:`MultipartTap` stands in for ``wsgi.input``: everything the application
reads passes through unchanged, and on the way a small incremental parser
notes each part's name and, for plain fields, the first
:data:`MAX_FIELD_VALUE` bytes of its value. File parts are only named (field
name, file name, type, size); their bytes are never kept. Memory stays
bounded whatever the body's size.
"""

from __future__ import annotations

import re
import typing as t

#: Bytes of a plain field's value that are kept.
MAX_FIELD_VALUE = 4096
#: Parts noted at most.
MAX_PARTS = 100
#: Longest part header block that is parsed.
MAX_HEADERS = 16 * 1024
#: Bytes the debugger reads itself, after an error, from a body the
#: application left unread (the server would discard them anyway).
MAX_DRAIN = 1024 * 1024

_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type, else ``None``.

    :param content_type: the ``Content-Type`` header.
    """
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for name, value in _PARAM.findall(";" + params):
        if name.lower() == "boundary":
            value = value.strip()
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1]
            if 0 < len(value) <= 200:
                return str(value).encode("latin-1", "replace")
    return None


class _Part:
    def __init__(self, name: str, filename: str | None, content_type: str) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.value = bytearray()
        self.size = 0
        self.complete = False


class MultipartTap:
    """``wsgi.input`` that notes the form's fields as the body goes through.

    :param stream: the real ``wsgi.input``.
    :param boundary: the body's boundary (:func:`boundary_of`).
    """

    def __init__(self, stream: t.Any, boundary: bytes) -> None:
        self._stream = stream
        self._delimiter = b"\r\n--" + boundary
        # The first boundary has no line break before it: pretend it had.
        self._buffer = b"\r\n"
        self._state = "preamble"
        self._parts: list[_Part] = []
        self._current: _Part | None = None
        self._eof = False

    # --- the stream ---------------------------------------------------------

    def read(self, size: int | None = -1) -> bytes:
        data: bytes = self._stream.read() if size is None else self._stream.read(size)
        self._feed(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data: bytes = self._stream.readline(-1 if size is None else size)
        self._feed(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(hint)
        for line in lines:
            self._feed(line)
        return lines

    def readinto(self, buffer: t.Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def __iter__(self) -> t.Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._stream, name)

    def drain(self, limit: int = MAX_DRAIN) -> None:
        """Read what the application left of the body, up to ``limit`` bytes,
        so that fields it never read are listed too."""
        left = limit
        while left > 0 and not self._eof and self._state != "done":
            try:
                data = self.read(min(65536, left))
            except Exception:  # the client went away; list what we have
                return
            if not data:
                return
            left -= len(data)

    # --- the parser -----------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if not data:
            if not self._eof and self._state == "content":
                self._content(self._buffer)  # a body cut short: what it had
                self._buffer = b""
            self._eof = True
            return
        if self._state == "done":
            return
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Advance by one piece; False when more bytes are needed."""
        buffer = self._buffer
        delimiter = self._delimiter
        if self._state == "preamble":
            index = buffer.find(delimiter)
            if index < 0:
                self._buffer = buffer[-len(delimiter) :]
                return False
            self._buffer = buffer[index + len(delimiter) :]
            self._state = "after"
            return True
        if self._state == "after":
            if len(buffer) < 2:
                return False
            if buffer.startswith(b"--"):
                self._state = "done"
                self._buffer = b""
                return False
            end = buffer.find(b"\r\n")
            if end < 0:  # transport padding before the line break
                if len(buffer) > 1024:
                    self._state = "done"
                return False
            self._buffer = buffer[end + 2 :]
            self._state = "headers"
            return True
        if self._state == "headers":
            if buffer.startswith(b"\r\n"):  # a part without headers
                end = -2
            else:
                end = buffer.find(b"\r\n\r\n")
            if end == -1:
                if len(buffer) > MAX_HEADERS:
                    self._state = "done"
                return False
            self._start_part(buffer[: max(end, 0)])
            self._buffer = buffer[end + 4 :]
            self._state = "content"
            return True
        if self._state == "content":
            index = buffer.find(delimiter)
            if index < 0:
                keep = len(delimiter)
                self._content(buffer[:-keep] if len(buffer) > keep else b"")
                self._buffer = buffer[-keep:] if len(buffer) > keep else buffer
                return False
            self._content(buffer[:index])
            if self._current is not None:
                self._current.complete = True
            self._current = None
            self._buffer = buffer[index + len(delimiter) :]
            self._state = "after"
            return True
        return False

    def _start_part(self, head: bytes) -> None:
        name, filename, content_type = "", None, ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "content-disposition":
                for pname, pvalue in _PARAM.findall(value[value.find(";") :]):
                    pvalue = pvalue.strip()
                    if pvalue.startswith('"') and pvalue.endswith('"'):
                        pvalue = pvalue[1:-1].replace('\\"', '"')
                    if pname.lower() == "name":
                        name = pvalue
                    elif pname.lower() == "filename":
                        filename = pvalue
            elif key == "content-type":
                content_type = value.strip()
        if len(self._parts) >= MAX_PARTS:
            self._current = None
            return
        self._current = _Part(name, filename, content_type)
        self._parts.append(self._current)

    def _content(self, data: bytes) -> None:
        part = self._current
        if part is None or not data:
            return
        part.size += len(data)
        if part.filename is None and len(part.value) < MAX_FIELD_VALUE:
            part.value += data[: MAX_FIELD_VALUE - len(part.value)]

    # --- what the page shows ------------------------------------------------------

    def fields(self) -> list[tuple[str, str, bool]]:
        """``(name, shown value, is a file)`` for each part seen so far.

        A plain field's value is decoded as UTF-8 and cut after
        :data:`MAX_FIELD_VALUE` bytes; a file is described, never shown.
        """
        rows = []
        for part in self._parts:
            more = "" if part.complete else " (the body was not read to its end)"
            if part.filename is not None:
                kind = part.content_type or "no type"
                rows.append(
                    (
                        part.name,
                        f"file {part.filename!r}, {kind}, {part.size} bytes,"
                        f" not shown{more}",
                        True,
                    )
                )
                continue
            text = bytes(part.value).decode("utf-8", "replace")
            if part.size > len(part.value):
                text += f"... ({part.size - len(part.value)} more bytes)"
            rows.append((part.name, text + (more if not part.complete else ""), False))
        return rows
