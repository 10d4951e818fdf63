"""The incoming HTTP request: :class:`Request`, a view of the WSGI environ.

Everything is computed lazily from the environ: the query string and headers
when first read, the body only when a view asks for ``form``, ``files``,
``json`` or ``get_data()``. Bodies are bounded: ``max_content_length`` (the
application's ``MAX_CONTENT_LENGTH``) is answered with 413, and uploaded files
move from memory to a temporary file past ``form_memory_threshold`` bytes.
Multipart bodies are parsed by ``python-multipart``, streamed chunk by chunk.
"""

from __future__ import annotations

import functools
import io
import json as _json
import tempfile
import typing as t
from urllib.parse import parse_qsl, quote, unquote

from ..exceptions import (
    BadRequest,
    HTTPException,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from .datastructures import FileStorage, Headers, MultiDict

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


__all__ = ["Request"]

_CHUNK = 64 * 1024


def _wsgi_decode(value: str) -> str:
    """A WSGI "native string" (bytes as latin-1) decoded as UTF-8."""
    return value.encode("latin-1", "replace").decode("utf-8", "replace")


def parse_options(value: str | None) -> tuple[str, dict[str, str]]:
    """Split a header like ``text/html; charset=utf-8`` into value and params."""
    if not value:
        return "", {}
    main, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        key, sep, val = item.strip().partition("=")
        if not sep:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1]
        params[key.strip().lower()] = val
    return main.strip().lower(), params


class _LimitedInput:
    """Reads at most ``limit`` bytes of the input; 413 past ``max_size``."""

    def __init__(self, stream: t.IO[bytes], limit: int | None, max_size: int | None):
        self._stream = stream
        self._remaining = limit
        self._max = max_size
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        if self._remaining is not None:
            if self._remaining <= 0:
                return b""
            size = self._remaining if size < 0 else min(size, self._remaining)
        data = self._stream.read(size) if size >= 0 else self._stream.read()
        if self._remaining is not None:
            self._remaining = 0 if not data else self._remaining - len(data)
        self._read += len(data)
        if self._max is not None and self._read > self._max:
            raise RequestEntityTooLarge(
                f"The request body is larger than the {self._max} bytes this"
                " application accepts."
            )
        return data


class Request:
    """The HTTP request being handled, built from a WSGI ``environ``.

    Inside a view, ``citus.request`` is the current one.

    :param environ: the WSGI environment of the request.
    """

    #: Largest body accepted, in bytes (``None``: no limit); more gets 413.
    max_content_length: int | None = None
    #: Largest non-file form field (and urlencoded body) kept in memory.
    max_form_memory_size: int | None = 500_000
    #: Most parts (fields and files) a form may have; more gets 413.
    max_form_parts: int | None = 1000
    #: Uploaded files larger than this many bytes go to a temporary file.
    form_memory_threshold: int = 500_000

    def __init__(self, environ: WSGIEnvironment) -> None:
        self.environ = environ
        self._data: bytes | None = None
        self._form: MultiDict[str] | None = None
        self._files: MultiDict[FileStorage] | None = None
        self._json: t.Any = _UNSET
        self._stream: _LimitedInput | None = None
        self._headers: Headers | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.url!r}>"

    def __enter__(self) -> Request:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release uploaded files (their temporary files are removed)."""
        if self._files is not None:
            for _, storage in self._files.items(multi=True):
                storage.close()

    # -- the URL ---------------------------------------------------------------

    @property
    def method(self) -> str:
        """The HTTP method, upper-case (``GET``, ``POST`` ...)."""
        return str(self.environ.get("REQUEST_METHOD", "GET")).upper()

    @property
    def scheme(self) -> str:
        """``http`` or ``https``."""
        return str(self.environ.get("wsgi.url_scheme", "http"))

    @property
    def host(self) -> str:
        """The ``Host`` header (``localhost:8000``), or the server's address."""
        host = self.environ.get("HTTP_HOST")
        if host:
            return str(host)
        name = str(self.environ.get("SERVER_NAME", "localhost"))
        port = str(self.environ.get("SERVER_PORT", ""))
        if port and (self.scheme, port) not in (("http", "80"), ("https", "443")):
            if ":" in name:
                name = f"[{name}]"
            return f"{name}:{port}"
        return name

    @property
    def script_root(self) -> str:
        """Where the application is mounted (``SCRIPT_NAME``), without a slash."""
        return _wsgi_decode(str(self.environ.get("SCRIPT_NAME", ""))).rstrip("/")

    @property
    def path(self) -> str:
        """The decoded path below the mount point, e.g. ``/users/42``."""
        path = _wsgi_decode(str(self.environ.get("PATH_INFO", "")))
        return path if path.startswith("/") else "/" + path

    @property
    def query_string(self) -> bytes:
        """The raw query string, without ``?``."""
        return str(self.environ.get("QUERY_STRING", "")).encode("latin-1", "replace")

    @property
    def full_path(self) -> str:
        """The path and the query string: ``/search?q=citus``."""
        query = self.query_string.decode("utf-8", "replace")
        return f"{self.path}?{query}" if query else self.path

    @property
    def host_url(self) -> str:
        """``scheme://host/``."""
        return f"{self.scheme}://{self.host}/"

    @property
    def url_root(self) -> str:
        """The application's root URL, with a slash at the end."""
        return f"{self.scheme}://{self.host}{quote(self.script_root)}/"

    @property
    def base_url(self) -> str:
        """The URL without the query string."""
        return f"{self.scheme}://{self.host}{quote(self.script_root + self.path)}"

    @property
    def url(self) -> str:
        """The full URL: ``http://localhost:8000/search?q=citus``.

        Characters a URL cannot hold as they are (a raw ``é`` in the query
        string) are percent-encoded, as in :attr:`base_url`.
        """
        query = quote(self.query_string, safe="&=+%/?:@!$'()*,;~[]")
        return f"{self.base_url}?{query}" if query else self.base_url

    @functools.cached_property
    def args(self) -> MultiDict[str]:
        """The query string's values; ``getlist()`` gives repeated keys."""
        query = self.query_string.decode("utf-8", "replace")
        return MultiDict(
            parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")
        )

    # -- headers ---------------------------------------------------------------

    @property
    def headers(self) -> Headers:
        """The request headers (case-insensitive names, repeated values kept)."""
        if self._headers is None:
            headers = Headers()
            for key, value in self.environ.items():
                if key.startswith("HTTP_") and key not in (
                    "HTTP_CONTENT_TYPE",
                    "HTTP_CONTENT_LENGTH",
                ):
                    name = key[5:].replace("_", "-").title()
                    headers.add(name, _wsgi_decode(str(value)))
                elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                    headers.add(key.replace("_", "-").title(), str(value))
            self._headers = headers
        return self._headers

    @property
    def remote_addr(self) -> str | None:
        """The client's address (``REMOTE_ADDR``)."""
        value = self.environ.get("REMOTE_ADDR")
        return str(value) if value is not None else None

    @property
    def user_agent(self) -> str:
        """The ``User-Agent`` header (empty when missing)."""
        return str(self.environ.get("HTTP_USER_AGENT", ""))

    @functools.cached_property
    def cookies(self) -> MultiDict[str]:
        """The cookies the client sent (values percent-decoded)."""
        result: MultiDict[str] = MultiDict()
        raw = _wsgi_decode(str(self.environ.get("HTTP_COOKIE", "")))
        for item in raw.split(";"):
            name, sep, value = item.strip().partition("=")
            name = name.strip()
            if not sep or not name:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            result.add(name, unquote(value))
        return result

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header (empty when missing)."""
        return str(self.environ.get("CONTENT_TYPE", ""))

    @property
    def mimetype(self) -> str:
        """The content type without parameters, lower-cased."""
        return parse_options(self.content_type)[0]

    @property
    def mimetype_params(self) -> dict[str, str]:
        """The content type's parameters (``charset``, ``boundary`` ...)."""
        return parse_options(self.content_type)[1]

    @property
    def content_length(self) -> int | None:
        """The declared body length, or ``None``.

        :raises BadRequest: the header is not a number.
        """
        value = str(self.environ.get("CONTENT_LENGTH", "")).strip()
        if not value:
            return None
        if not value.isdigit():
            raise BadRequest(f"Invalid Content-Length header {value!r}.")
        return int(value)

    @property
    def is_json(self) -> bool:
        """True for ``application/json`` and ``application/*+json`` bodies."""
        mimetype = self.mimetype
        return mimetype == "application/json" or (
            mimetype.startswith("application/") and mimetype.endswith("+json")
        )

    # -- the body --------------------------------------------------------------

    @property
    def stream(self) -> t.Any:
        """The body as a file-like object with ``read()``, bounded by the
        declared length and by :attr:`max_content_length` (413 past it)."""
        if self._stream is None:
            length = self.content_length
            limit = self.max_content_length
            if length is not None and limit is not None and length > limit:
                raise RequestEntityTooLarge(
                    f"The request body ({length} bytes) is larger than the"
                    f" {limit} bytes this application accepts."
                )
            raw = self.environ.get("wsgi.input") or io.BytesIO()
            if length is None and not self.environ.get("wsgi.input_terminated"):
                length = 0  # no length and no end of input: no body
            self._stream = _LimitedInput(raw, length, limit)
        return self._stream

    def get_data(self, as_text: bool = False) -> t.Any:
        """The whole body, read once and kept (``str`` with ``as_text``).

        :raises RequestEntityTooLarge: past :attr:`max_content_length`.
        """
        if self._data is None:
            chunks = []
            while True:
                chunk = self.stream.read(_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
            self._data = b"".join(chunks)
        if as_text:
            charset = self.mimetype_params.get("charset", "utf-8")
            try:
                return self._data.decode(charset, "replace")
            except LookupError:
                return self._data.decode("utf-8", "replace")
        return self._data

    @property
    def data(self) -> bytes:
        """The whole body as bytes."""
        data: bytes = self.get_data()
        return data

    def get_json(self, force: bool = False, silent: bool = False) -> t.Any:
        """The body parsed as JSON.

        :param force: parse even when the content type is not JSON.
        :param silent: return ``None`` instead of raising.
        :raises UnsupportedMediaType: (415) the body is not declared as JSON.
        :raises BadRequest: (400) the body is not valid JSON.
        """
        if self._json is not _UNSET:
            return self._json
        if not (force or self.is_json):
            if silent:
                return None
            raise UnsupportedMediaType(
                "The body was not read as JSON: its Content-Type is"
                f" {self.content_type or 'missing'!r}. Send it as"
                " 'application/json'."
            )
        try:
            value = _json.loads(self.get_data())
        except ValueError as error:  # includes UnicodeDecodeError
            if silent:
                return None
            raise BadRequest(f"The body is not valid JSON: {error}.") from None
        self._json = value
        return value

    @property
    def json(self) -> t.Any:
        """The body parsed as JSON (see :meth:`get_json`)."""
        return self.get_json()

    @property
    def form(self) -> MultiDict[str]:
        """Form fields from an urlencoded or multipart body."""
        if self._form is None:
            self._parse_form()
        assert self._form is not None
        return self._form

    @property
    def files(self) -> MultiDict[FileStorage]:
        """Uploaded files (:class:`FileStorage`) of a multipart body."""
        if self._files is None:
            self._parse_form()
        assert self._files is not None
        return self._files

    @property
    def values(self) -> MultiDict[str]:
        """The query string's values and the form's together."""
        combined: MultiDict[str] = MultiDict(self.args.items(multi=True))
        for key, value in self.form.items(multi=True):
            combined.add(key, value)
        return combined

    def _parse_form(self) -> None:
        self._form, self._files = MultiDict(), MultiDict()
        if self.method in ("GET", "HEAD"):
            return
        mimetype = self.mimetype
        if mimetype == "application/x-www-form-urlencoded":
            data = self._read_limited(self.max_form_memory_size)
            text = data.decode("utf-8", "replace")
            try:
                pairs = parse_qsl(
                    text,
                    keep_blank_values=True,
                    encoding="utf-8",
                    errors="replace",
                    max_num_fields=self.max_form_parts,
                )
            except ValueError:
                raise RequestEntityTooLarge(
                    f"The form has more than {self.max_form_parts} fields."
                ) from None
            self._form = MultiDict(pairs)
        elif mimetype == "multipart/form-data":
            boundary = self.mimetype_params.get("boundary")
            if not boundary:
                raise BadRequest(
                    "The multipart/form-data body has no boundary in its"
                    " Content-Type header."
                )
            _MultipartReader(self, boundary).parse(self._form, self._files)

    def _read_limited(self, limit: int | None) -> bytes:
        if self._data is not None:
            data = self._data
        else:
            chunks, size = [], 0
            while True:
                chunk = self.stream.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if limit is not None and size > limit:
                    raise RequestEntityTooLarge(
                        f"The form data is larger than the {limit} bytes kept in"
                        " memory."
                    )
                chunks.append(chunk)
            data = self._data = b"".join(chunks)
        if limit is not None and len(data) > limit:
            raise RequestEntityTooLarge(
                f"The form data is larger than the {limit} bytes kept in memory."
            )
        return data

    def _body_chunks(self) -> t.Iterator[bytes]:
        if self._data is not None:
            yield self._data
            return
        while True:
            chunk = self.stream.read(_CHUNK)
            if not chunk:
                return
            yield chunk

    # -- as a WSGI application ---------------------------------------------------

    @classmethod
    def application(cls, view: t.Callable[..., t.Any]) -> WSGIApplication:
        """Turn ``view(request) -> Response`` into a WSGI application.

        ::

            @Request.application
            def app(request):
                return Response(f"Hello {request.args.get('name', 'World')}!")

        The view may also return anything an ``API`` view may (``str``,
        ``dict``, a ``(body, status)`` tuple ...); anything else is a
        ``TypeError`` naming it. An :class:`~citus.exceptions.HTTPException`
        raised by the view becomes its error page. Methods work too
        (``view(self, request)``).
        """
        from .response import error_response, to_response

        @functools.wraps(view)
        def wsgi_app(*args: t.Any) -> t.Iterable[bytes]:
            environ: WSGIEnvironment = args[-2]
            start_response: StartResponse = args[-1]
            request = cls(environ)
            try:
                try:
                    response = to_response(view(*args[:-2], request), view)
                except HTTPException as error:
                    response = error_response(error)
                body = response(environ, start_response)
            except BaseException:
                request.close()
                raise
            if not response.is_streamed:
                request.close()
                return body
            # A streamed body may still read the uploads: close them after it.
            return _ClosingBody(body, request.close)

        return wsgi_app


_UNSET: t.Any = object()


class _ClosingBody:
    """A response body that calls ``on_close`` once the server closes it."""

    def __init__(self, body: t.Iterable[bytes], on_close: t.Callable[[], None]):
        self._body = body
        self._on_close = on_close

    def __iter__(self) -> t.Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


class _MultipartReader:
    """Feeds the body to python-multipart and collects fields and files."""

    def __init__(self, request: Request, boundary: str) -> None:
        self.request = request
        self.boundary = boundary.encode("latin-1", "replace")
        self.parts = 0
        self.headers: list[tuple[str, str]] = []
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.name = ""
        self.filename: str | None = None
        self.content_type: str | None = None
        self.buffer = bytearray()
        self.file: t.IO[bytes] | None = None
        self.form: MultiDict[str] = MultiDict()
        self.files: MultiDict[FileStorage] = MultiDict()
        self.error: BaseException | None = None

    def parse(self, form: MultiDict[str], files: MultiDict[FileStorage]) -> None:
        from python_multipart import MultipartParser
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import MultipartState

        self.form, self.files = form, files
        parser = MultipartParser(
            self.boundary,
            {
                "on_part_begin": self.on_part_begin,
                "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end,
            },
        )
        try:
            for chunk in self.request._body_chunks():
                parser.write(chunk)
                if self.error is not None:
                    raise self.error
            parser.finalize()
        except FormParserError as error:
            self._discard()
            raise BadRequest(
                f"The multipart body could not be parsed: {error}"
            ) from None
        except BaseException:
            self._discard()
            raise
        if parser.state != MultipartState.END:
            self._discard()
            raise BadRequest(
                "The multipart body ended before its closing boundary: it was cut"
                " short or its boundary is wrong."
            )

    def _discard(self) -> None:
        if self.file is not None:
            self.file.close()
        for _, storage in self.files.items(multi=True):
            storage.close()

    def on_part_begin(self) -> None:
        self.parts += 1
        limit = self.request.max_form_parts
        if limit is not None and self.parts > limit:
            self.error = RequestEntityTooLarge(f"The form has more than {limit} parts.")
        self.headers = []
        self.name, self.filename, self.content_type = "", None, None
        self.buffer = bytearray()
        self.file = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers.append(
            (
                self.header_name.decode("latin-1"),
                self.header_value.decode("utf-8", "replace"),
            )
        )
        self.header_name, self.header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        headers = Headers(self.headers)
        disposition = headers.get("Content-Disposition", "")
        _, params = parse_options_header(disposition.encode("utf-8"))
        self.name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        self.filename = (
            None if filename is None else filename.decode("utf-8", "replace")
        )
        self.content_type = headers.get("Content-Type")
        if self.filename is not None:
            threshold = self.request.form_memory_threshold
            # max_size=0 would mean "never roll over" to SpooledTemporaryFile.
            self.file = (
                tempfile.SpooledTemporaryFile(max_size=threshold)
                if threshold > 0
                else tempfile.TemporaryFile()
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self.file is not None:
            self.file.write(data[start:end])
            return
        self.buffer += data[start:end]
        limit = self.request.max_form_memory_size
        if limit is not None and len(self.buffer) > limit:
            self.error = RequestEntityTooLarge(
                f"The form field {self.name!r} is larger than the {limit} bytes"
                " kept in memory."
            )

    def on_part_end(self) -> None:
        if self.error is not None:
            return
        if self.file is not None:
            self.file.seek(0)
            self.files.add(
                self.name,
                FileStorage(
                    self.file,
                    self.filename,
                    self.name,
                    self.content_type,
                    Headers(self.headers),
                ),
            )
            self.file = None
        else:
            charset = parse_options(self.content_type)[1].get("charset", "utf-8")
            try:
                value = bytes(self.buffer).decode(charset, "replace")
            except LookupError:
                value = bytes(self.buffer).decode("utf-8", "replace")
            self.form.add(self.name, value)
