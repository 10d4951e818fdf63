"""Containers shared by requests and responses: multi-valued dicts, headers and
uploaded files.

HTTP repeats keys (``?tag=a&tag=b``, several ``Set-Cookie`` headers), so
:class:`MultiDict` keeps every value of a key while ``d[key]`` still gives the
first one, and :class:`Headers` does the same with case-insensitive names, in
order. :class:`FileStorage` is one uploaded file of a multipart form.
"""

from __future__ import annotations

import os
import shutil
import typing as t

from ..exceptions import BadRequestKeyError

V = t.TypeVar("V")
T = t.TypeVar("T")


class MultiDict(t.Mapping[str, V]):
    """A read-mostly mapping that keeps every value given for a key.

    ``d[key]`` and ``d.get(key)`` return the first value; :meth:`getlist`
    returns all of them. A missing key raises :class:`KeyError`, which citus
    answers with 400 Bad Request when it escapes a view.
    """

    def __init__(self, items: t.Iterable[tuple[str, V]] = ()) -> None:
        self._data: dict[str, list[V]] = {}
        for key, value in items:
            self.add(key, value)

    def add(self, key: str, value: V) -> None:
        """Append ``value`` to the values of ``key``."""
        self._data.setdefault(key, []).append(value)

    def setlist(self, key: str, values: t.Iterable[V]) -> None:
        """Replace the values of ``key``."""
        values = list(values)
        if values:
            self._data[key] = values
        else:
            self._data.pop(key, None)

    def __setitem__(self, key: str, value: V) -> None:
        self._data[key] = [value]

    def __getitem__(self, key: str) -> V:
        try:
            return self._data[key][0]
        except KeyError:
            raise BadRequestKeyError(key) from None

    def __iter__(self) -> t.Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.items(multi=True))!r})"

    @t.overload
    def get(self, key: str) -> V | None: ...
    @t.overload
    def get(self, key: str, default: V | T) -> V | T: ...
    @t.overload
    def get(self, key: str, default: T, type: t.Callable[[V], T]) -> T: ...
    @t.overload
    def get(self, key: str, *, type: t.Callable[[V], T]) -> T | None: ...

    def get(
        self,
        key: str,
        default: object = None,
        type: t.Callable[[V], object] | None = None,
    ) -> object:
        """The first value of ``key``, or ``default``.

        :param type: convert the value with this callable; a ``ValueError``
            from it gives ``default`` too (``args.get("page", 1, type=int)``).
        """
        values = self._data.get(key)
        if not values:
            return default
        if type is None:
            return values[0]
        try:
            return type(values[0])
        except (ValueError, TypeError):
            return default

    def getlist(self, key: str) -> list[V]:
        """Every value of ``key``, in order (an empty list when missing)."""
        return list(self._data.get(key, ()))

    def items(self, multi: bool = False) -> t.Iterator[tuple[str, V]]:  # type: ignore[override]
        """``(key, first value)`` pairs, or every pair with ``multi=True``."""
        for key, values in self._data.items():
            if multi:
                for value in values:
                    yield key, value
            else:
                yield key, values[0]

    def lists(self) -> t.Iterator[tuple[str, list[V]]]:
        """``(key, all values)`` pairs."""
        for key, values in self._data.items():
            yield key, list(values)

    def to_dict(self, flat: bool = True) -> dict[str, t.Any]:
        """A plain dict: first values, or lists of values with ``flat=False``."""
        if flat:
            return dict(self.items())
        return dict(self.lists())


class Headers:
    """HTTP headers: ordered, multi-valued, with case-insensitive names.

    ``headers["content-type"]`` finds ``Content-Type``; assigning replaces every
    header of that name, :meth:`add` appends one more (as ``Set-Cookie`` needs).
    """

    def __init__(
        self,
        items: t.Mapping[str, str]
        | t.Iterable[tuple[str, str]]
        | Headers
        | None = None,
    ) -> None:
        self._list: list[tuple[str, str]] = []
        if items is not None:
            self.extend(items)

    def extend(
        self, items: t.Mapping[str, str] | t.Iterable[tuple[str, str]] | Headers
    ) -> None:
        """Append every header of ``items`` (a mapping or pairs)."""
        if isinstance(items, Headers):
            pairs: t.Iterable[tuple[str, str]] = items.items()
        elif isinstance(items, t.Mapping):
            pairs = items.items()
        else:
            pairs = items
        for key, value in pairs:
            self.add(key, value)

    @staticmethod
    def _check(key: str, value: object) -> str:
        text = str(value)
        if "\n" in text or "\r" in text or "\n" in key or "\r" in key:
            raise ValueError(
                f"Header {key!r} has a newline in its name or value {text!r}:"
                " remove it (a newline would split the header)."
            )
        return text

    def add(self, key: str, value: object) -> None:
        """Append a header, keeping others of the same name."""
        self._list.append((key, self._check(key, value)))

    def set(self, key: str, value: object) -> None:
        """Replace every header named ``key`` with one header."""
        text = self._check(key, value)
        lower = key.lower()
        for index, (name, _) in enumerate(self._list):
            if name.lower() == lower:
                self._list[index] = (key, text)
                self._list = [
                    pair
                    for number, pair in enumerate(self._list)
                    if number <= index or pair[0].lower() != lower
                ]
                return
        self._list.append((key, text))

    def setdefault(self, key: str, value: object) -> str:
        """The value of ``key``, setting it to ``value`` first when missing."""
        current = self.get(key)
        if current is None:
            self.add(key, value)
            return str(value)
        return current

    def __setitem__(self, key: str, value: object) -> None:
        self.set(key, value)

    def __getitem__(self, key: str) -> str:
        lower = key.lower()
        for name, value in self._list:
            if name.lower() == lower:
                return value
        raise KeyError(key)

    def __delitem__(self, key: str) -> None:
        lower = key.lower()
        self._list = [pair for pair in self._list if pair[0].lower() != lower]

    def remove(self, key: str) -> None:
        """Remove every header named ``key`` (no error when there is none)."""
        del self[key]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        lower = key.lower()
        return any(name.lower() == lower for name, _ in self._list)

    def __iter__(self) -> t.Iterator[tuple[str, str]]:
        return iter(list(self._list))

    def __len__(self) -> int:
        return len(self._list)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._list == other._list
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._list!r})"

    @t.overload
    def get(self, key: str) -> str | None: ...
    @t.overload
    def get(self, key: str, default: T) -> str | T: ...

    def get(self, key: str, default: object = None) -> object:
        """The first value of ``key``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order."""
        lower = key.lower()
        return [value for name, value in self._list if name.lower() == lower]

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, in order."""
        return list(self._list)

    def keys(self) -> list[str]:
        """Every header name, in order (repeated names repeat)."""
        return [name for name, _ in self._list]

    def to_wsgi_list(self) -> list[tuple[str, str]]:
        """The pairs, ready for ``start_response``."""
        return list(self._list)

    def copy(self) -> Headers:
        """A copy that can change on its own."""
        return Headers(self._list)


class FileStorage:
    """One uploaded file from a ``multipart/form-data`` body.

    Small files stay in memory, larger ones in a temporary file that is removed
    when the request ends.

    :param stream: the file's content, positioned at its start.
    :param filename: the name the client gave, as sent (never trust it as a
        path).
    :param name: the form field's name.
    :param content_type: the part's ``Content-Type``.
    """

    def __init__(
        self,
        stream: t.IO[bytes],
        filename: str | None,
        name: str,
        content_type: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        self.stream = stream
        self.filename = filename
        self.name = name
        self.content_type = content_type or "application/octet-stream"
        self.headers = headers or Headers()

    @property
    def mimetype(self) -> str:
        """The content type without its parameters, lower-cased."""
        return self.content_type.split(";", 1)[0].strip().lower()

    def read(self, size: int = -1) -> bytes:
        """Read from the file's content."""
        return self.stream.read(size)

    def save(self, destination: str | os.PathLike[str] | t.IO[bytes]) -> None:
        """Copy the content to a path or an open binary file."""
        self.stream.seek(0)
        if isinstance(destination, (str, os.PathLike)):
            with open(destination, "wb") as out:
                shutil.copyfileobj(self.stream, out)
        else:
            shutil.copyfileobj(self.stream, destination)

    def close(self) -> None:
        """Release the content (the temporary file, if any)."""
        self.stream.close()

    def __bool__(self) -> bool:
        return bool(self.filename)

    def __repr__(self) -> str:
        return f"<FileStorage {self.name!r}: {self.filename!r} ({self.content_type})>"
