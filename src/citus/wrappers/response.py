"""The outgoing HTTP response: :class:`Response`, plus :func:`jsonify`,
:func:`redirect` and :func:`error_response`.

A response holds a status, :class:`~.datastructures.Headers` and a body. The body
is either known in full (``str`` or ``bytes``, sent with a ``Content-Length``) or
an iterable of chunks that is streamed as it is produced. A response is itself a
WSGI application, so it can be returned from any WSGI callable.
"""

from __future__ import annotations

import collections.abc as cabc
import datetime as _dt
import json as _json
import typing as t
from email.utils import format_datetime
from http import HTTPStatus
from urllib.parse import quote

from .._status import reason_phrase
from ..exceptions import HTTPException, RequestRedirect
from .datastructures import Headers

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["Response", "error_response", "jsonify", "redirect", "to_response"]

#: Body types a response accepts.
BodyType = str | bytes | bytearray | t.Iterable[bytes] | t.Iterable[str] | None

_SAMESITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


def _status_line(status: int | str | HTTPStatus) -> tuple[int, str]:
    if isinstance(status, HTTPStatus):
        return status.value, f"{status.value} {reason_phrase(status.value)}"
    if isinstance(status, int) and not isinstance(status, bool):
        code = status
        phrase = reason_phrase(code, "UNKNOWN")
    elif isinstance(status, str):
        text = status.strip()
        head, _, phrase = text.partition(" ")
        if not head.isdigit():
            raise ValueError(
                f"Invalid status {status!r}: give a number such as 404 or a status"
                " line such as '404 Not Found'."
            )
        code = int(head)
        if not phrase:
            phrase = reason_phrase(code, "UNKNOWN")
    else:
        raise TypeError(
            f"Invalid status {status!r} of type {type(status).__name__!r}: give an"
            " int such as 404 or a string such as '404 Not Found'."
        )
    if not 100 <= code <= 999:
        raise ValueError(
            f"Invalid status code {code}: HTTP status codes have three digits"
            " (100-999)."
        )
    return code, f"{code} {phrase}"


R = t.TypeVar("R", bound="Response")


class _JsonHelper:
    """``Response.json(data, status=200, headers=None)`` makes a JSON response;
    ``response.json`` on a response is its body parsed as JSON (for tests)."""

    @t.overload
    def __get__(self, instance: None, owner: type[R]) -> t.Callable[..., R]: ...
    @t.overload
    def __get__(self, instance: Response, owner: type[Response]) -> t.Any: ...

    def __get__(self, instance: Response | None, owner: type[Response]) -> t.Any:
        if instance is not None:
            return instance.get_json()

        def make(
            data: t.Any = None,
            status: int | str = 200,
            headers: t.Mapping[str, str] | t.Iterable[tuple[str, str]] | None = None,
            **kwargs: t.Any,
        ) -> Response:
            """A JSON response: ``Response.json({"id": 1}, status=201)``."""
            return jsonify(data, status, headers, _response_class=owner, **kwargs)

        return make


class Response:
    """An HTTP response, usable as a WSGI application.

    :param body: ``str`` (encoded with :attr:`charset`), ``bytes``, or an
        iterable of ``bytes``/``str`` chunks sent as they are produced
        (streaming; the iterable's ``close()`` is called at the end).
    :param status: an int (``404``) or a status line (``"404 Not Found"``).
    :param headers: a mapping or ``(name, value)`` pairs.
    :param mimetype: e.g. ``text/plain``; ``charset=utf-8`` is added to text
        types. Defaults to ``text/html``.
    :param content_type: the full ``Content-Type`` value, used as given.
    """

    #: Encoding of ``str`` bodies and of the ``charset`` parameter.
    charset = "utf-8"
    #: Mimetype when none is given.
    default_mimetype = "text/html"

    def __init__(
        self,
        body: BodyType = b"",
        status: int | str | HTTPStatus = 200,
        headers: t.Mapping[str, str] | t.Iterable[tuple[str, str]] | None = None,
        mimetype: str | None = None,
        content_type: str | None = None,
    ) -> None:
        self.headers = Headers(headers)
        self.status = status
        if content_type is None:
            if mimetype is None and "content-type" not in self.headers:
                mimetype = self.default_mimetype
            if mimetype is not None:
                content_type = self._with_charset(mimetype)
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        #: Hand the body to the server untouched (static files use this to
        #: keep ``wsgi.file_wrapper``).
        self.direct_passthrough = False
        self._body: list[bytes] | None = None
        self._iterable: t.Iterable[bytes] | t.Iterable[str] | None = None
        self.set_body(body)

    def _with_charset(self, mimetype: str) -> str:
        if "charset=" not in mimetype.lower() and (
            mimetype.startswith("text/")
            or mimetype
            in ("application/xml", "application/javascript", "image/svg+xml")
        ):
            return f"{mimetype}; charset={self.charset}"
        return mimetype

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.status}]>"

    # -- status ---------------------------------------------------------------

    @property
    def status(self) -> str:
        """The status line, e.g. ``"404 Not Found"``; assign an int or a str."""
        return self._status

    @status.setter
    def status(self, value: int | str | HTTPStatus) -> None:
        self._status_code, self._status = _status_line(value)

    @property
    def status_code(self) -> int:
        """The status code, e.g. ``404``."""
        return self._status_code

    @status_code.setter
    def status_code(self, value: int) -> None:
        self.status = value

    # -- content type -----------------------------------------------------------

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header."""
        return self.headers.get("Content-Type")

    @content_type.setter
    def content_type(self, value: str) -> None:
        self.headers["Content-Type"] = value

    @property
    def mimetype(self) -> str | None:
        """The content type without parameters; setting it adds the charset."""
        value = self.content_type
        return value.split(";", 1)[0].strip().lower() if value else None

    @mimetype.setter
    def mimetype(self, value: str) -> None:
        self.headers["Content-Type"] = self._with_charset(value)

    # -- body ---------------------------------------------------------------------

    def set_body(self, body: BodyType) -> None:
        """Replace the body (same types as the constructor's ``body``)."""
        self._iterable = None
        if body is None:
            body = b""
        if isinstance(body, str):
            self._body = [body.encode(self.charset)]
        elif isinstance(body, (bytes, bytearray, memoryview)):
            self._body = [bytes(body)]
        elif isinstance(body, (dict, set, frozenset)):
            raise TypeError(
                f"A response body must be str, bytes or an iterable of them, not"
                f" {type(body).__name__!r}: use jsonify(...) to send JSON."
            )
        elif isinstance(body, t.Iterable):
            self._body = None
            self._iterable = body
        else:
            raise TypeError(
                f"A response body must be str, bytes or an iterable of them, not"
                f" {type(body).__name__!r}."
            )
        if self._body is not None:
            self.headers["Content-Length"] = str(len(self._body[0]))
        else:
            self.headers.remove("Content-Length")

    @property
    def is_streamed(self) -> bool:
        """True when the body is an iterable not yet read."""
        return self._body is None

    def get_data(self, as_text: bool = False) -> t.Any:
        """The whole body, as bytes (or str with ``as_text``).

        A streamed body is read (and closed) to answer; it is kept afterwards.
        """
        if self._body is None:
            original = self._iterable
            try:
                chunks = list(self.iter_encoded())
            finally:
                close = getattr(original, "close", None)
                if close is not None:
                    close()
            self._body = [b"".join(chunks)]
            self._iterable = None
        data = self._body[0]
        return data.decode(self.charset, "replace") if as_text else data

    @property
    def data(self) -> bytes:
        """The whole body as bytes; assign bytes or str to replace it."""
        data: bytes = self.get_data()
        return data

    @data.setter
    def data(self, value: str | bytes) -> None:
        self.set_body(value)

    @property
    def text(self) -> str:
        """The whole body decoded with :attr:`charset`."""
        text: str = self.get_data(as_text=True)
        return text

    def get_json(self, silent: bool = False) -> t.Any:
        """The body parsed as JSON (``None`` on bad JSON with ``silent``)."""
        try:
            return _json.loads(self.get_data())
        except ValueError:
            if silent:
                return None
            raise

    #: ``Response.json(data, status=200, headers=None)`` makes a JSON response;
    #: ``response.json`` is a response's body parsed as JSON (handy in tests).
    json = _JsonHelper()

    def iter_encoded(self) -> t.Iterator[bytes]:
        """The body's chunks as bytes (the caller closes a streamed iterable)."""
        if self._body is not None:
            yield from self._body
            return
        iterable = self._iterable
        assert iterable is not None
        for chunk in iterable:
            if isinstance(chunk, str):
                yield chunk.encode(self.charset)
            elif isinstance(chunk, (bytes, bytearray, memoryview)):
                yield bytes(chunk)
            else:
                raise TypeError(
                    "A streamed response body must yield str or bytes, not"
                    f" {type(chunk).__name__!r}."
                )

    # -- cookies ------------------------------------------------------------------

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | _dt.timedelta | None = None,
        expires: _dt.datetime | int | float | str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = None,
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header.

        :param key: the cookie's name.
        :param value: its value; characters outside the cookie alphabet are
            percent-encoded.
        :param max_age: seconds (or a timedelta) until it expires.
        :param expires: a datetime, a timestamp or a preformatted date.
        :param path: the URL path it applies to (``/`` by default).
        :param domain: the domain it applies to (e.g. ``.localhost`` to share
            it with subdomains); the current host only when ``None``.
        :param secure: only over HTTPS.
        :param httponly: hidden from JavaScript.
        :param samesite: ``"Strict"``, ``"Lax"`` or ``"None"``; ``"None"``
            implies ``secure``, as browsers drop such cookies without it.
        :param partitioned: CHIPS partitioned cookie (implies ``secure``).
        :raises ValueError: a bad name or ``samesite`` value.
        """
        if not _is_token(key):
            raise ValueError(
                f"Invalid cookie name {key!r}: use letters, digits and !#$%&'*+-.^_`|~."
            )
        normal = None
        if samesite is not None:
            normal = _SAMESITE.get(str(samesite).lower())
            if normal is None:
                raise ValueError(
                    f"Invalid samesite {samesite!r}: use 'Strict', 'Lax' or 'None'."
                )
            secure = secure or normal == "None"
        parts = [f"{key}={quote(value, safe=_COOKIE_SAFE)}"]
        if max_age is not None:
            if isinstance(max_age, _dt.timedelta):
                max_age = int(max_age.total_seconds())
            parts.append(f"Max-Age={int(max_age)}")
            if expires is None:
                expires = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(
                    seconds=int(max_age)
                )
        if expires is not None:
            parts.append(f"Expires={_cookie_date(expires)}")
        if domain:
            parts.append(f"Domain={domain}")
        if path:
            parts.append(f"Path={path}")
        if secure or partitioned:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if normal is not None:
            parts.append(f"SameSite={normal}")
        if partitioned:
            parts.append("Partitioned")
        self.headers.add("Set-Cookie", "; ".join(parts))

    def delete_cookie(
        self,
        key: str,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = None,
        partitioned: bool = False,
    ) -> None:
        """Tell the client to forget a cookie (same ``path``/``domain`` as set)."""
        self.set_cookie(
            key,
            "",
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )

    # -- WSGI ---------------------------------------------------------------------

    def check_headers(self) -> None:
        """Make sure every header can go on the wire, before anything is sent.

        :raises ValueError: a header name is not an HTTP token, or a value has
            characters outside Latin-1 (HTTP headers are bytes; PEP 3333 sends
            them as Latin-1).
        """
        for name, value in self.headers.items():
            if not _is_token(name):
                raise ValueError(
                    f"Invalid header name {name!r}: use letters, digits and"
                    " !#$%&'*+-.^_`|~ only, e.g. 'X-Request-Id'."
                )
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(
                    f"The header {name!r} has characters that HTTP headers"
                    f" cannot carry: {value!r}. Percent-encode the value"
                    " (urllib.parse.quote), or for a download's file name use"
                    " filename*=UTF-8''<percent-encoded name>."
                ) from None

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Send this response as a WSGI application.

        :raises ValueError: a header cannot be sent (see :meth:`check_headers`).
        """
        self.check_headers()
        if self._status_code in (204, 304) or self._status_code < 200:
            # No body, and no Content-Length, for these statuses (RFC 9110).
            headers = [
                (k, v)
                for k, v in self.headers.to_wsgi_list()
                if k.lower() != "content-length"
            ]
            start_response(self.status, headers)
            if self._iterable is not None:
                close = getattr(self._iterable, "close", None)
                if close is not None:
                    close()
            return []
        start_response(self.status, self.headers.to_wsgi_list())
        if self._body is not None:
            return list(self._body)
        if self.direct_passthrough:
            return t.cast("t.Iterable[bytes]", self._iterable)
        return _Closing(self.iter_encoded(), self._iterable)


class _Closing:
    """An iterator that closes the original iterable even when never started."""

    def __init__(self, chunks: t.Iterator[bytes], original: object) -> None:
        self._chunks = chunks
        self._original = original

    def __iter__(self) -> t.Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        try:
            t.cast("t.Generator[bytes, None, None]", self._chunks).close()
        finally:
            close = getattr(self._original, "close", None)
            if close is not None:
                close()


_COOKIE_SAFE = "!#$&'()*+-./:<>?@[]^_`{|}~"
#: The characters of an HTTP token (RFC 9110, 5.6.2): header and cookie names.
_TOKEN = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _is_token(text: str) -> bool:
    """Whether ``text`` is a non-empty HTTP token (a header or cookie name)."""
    return bool(text) and _TOKEN.issuperset(text)


def _cookie_date(value: _dt.datetime | int | float | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        value = _dt.datetime.fromtimestamp(value, _dt.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return format_datetime(value.astimezone(_dt.timezone.utc), usegmt=True)


_VALID_RETURN = (
    "Return a string, bytes, a dict or list (sent as JSON), a Response, an HTTP"
    " error (its page), or a (body, status) or (body, status, headers) tuple."
)


def to_response(
    value: t.Any,
    view: t.Callable[..., t.Any] | None = None,
    response_class: type[Response] | None = None,
) -> Response:
    """Turn what a view returned into a :class:`Response`.

    :param value: ``str``/``bytes`` (HTML), ``dict``/``list`` (JSON), a
        ``Response``, an :class:`~citus.HTTPException` (its error page, see
        :func:`error_response`), an iterator of chunks (streamed), or a tuple
        ``(body, status)``, ``(body, headers)`` or ``(body, status, headers)``.
    :param view: the function that returned it, named in errors.
    :param response_class: the class of new responses (:class:`Response`).
    :raises TypeError: ``value`` is none of those.
    """
    response_class = response_class or Response
    name = getattr(view, "__name__", "?")
    status: t.Any = None
    headers: t.Any = None
    if isinstance(value, tuple):
        if len(value) == 3:
            value, status, headers = value
        elif len(value) == 2:
            value, second = value
            if isinstance(second, (Headers, dict, list)):
                headers = second
            else:
                status = second
        else:
            raise TypeError(
                f"The view function {name!r} returned a tuple of"
                f" {len(value)} items. {_VALID_RETURN}"
            )
    if value is None:
        raise TypeError(
            f"The view function {name!r} did not return a valid response: it"
            f" returned None (or ended without a return statement). {_VALID_RETURN}"
        )
    if isinstance(value, Response):
        response = value
    elif isinstance(value, HTTPException):
        response = error_response(value)
    elif isinstance(value, (str, bytes, bytearray)):
        response = response_class(value)
    elif isinstance(value, (dict, list)):
        response = jsonify(value, _response_class=response_class)
    elif isinstance(value, cabc.Iterator):
        response = response_class(value)
    else:
        raise TypeError(
            f"The view function {name!r} returned an object of type"
            f" {type(value).__name__!r}, which is not a valid response."
            f" {_VALID_RETURN}"
        )
    if status is not None:
        try:
            response.status = status
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"The view function {name!r} returned an invalid status: {error}"
            ) from None
    if headers:
        pairs = headers.items() if isinstance(headers, (dict, Headers)) else headers
        seen: set[str] = set()
        for key, item in pairs:
            if key.lower() in seen:
                response.headers.add(key, item)
            else:
                response.headers.set(key, item)
                seen.add(key.lower())
    return response


def jsonify(
    data: t.Any = None,
    status: int | str = 200,
    headers: t.Mapping[str, str] | t.Iterable[tuple[str, str]] | None = None,
    _response_class: type[Response] | None = None,
    **kwargs: t.Any,
) -> Response:
    """A JSON response: ``jsonify({"id": 1})`` or ``jsonify(id=1)``.

    Dates become ISO 8601 strings and other unknown objects their ``str()``.

    :param data: what to encode (keyword arguments make a dict when omitted).
    :param status: the status code.
    :param headers: extra headers.
    """
    if data is None and kwargs:
        data = kwargs
    body = _json.dumps(data, ensure_ascii=False, default=_json_default) + "\n"
    cls = _response_class or Response
    return cls(body, status=status, headers=headers, mimetype="application/json")


def _json_default(value: t.Any) -> t.Any:
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "__html__"):
        return str(value.__html__())
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def redirect(location: str, code: int = 302) -> Response:
    """A redirect to ``location`` (``302 Found`` unless ``code`` says otherwise).

    Use 303 after a form POST so that the browser follows with GET, and
    307/308 to keep the method.
    """
    import html

    escaped = html.escape(location)
    response = Response(
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n"
        f'<h1>Redirecting...</h1>\n<p>Go to <a href="{escaped}">{escaped}</a>.</p>\n',
        status=code,
    )
    response.headers["Location"] = quote(location, safe="/:?#[]@!$&'()*+,;=%~")
    return response


def error_response(error: HTTPException) -> Response:
    """The response that answers the HTTP error ``error``.

    That is the ready response the error carries (``abort(Response(...))``),
    a redirect for a :class:`~citus.exceptions.RequestRedirect`, or else the
    error's page: its :meth:`~citus.exceptions.HTTPException.get_body` with
    its code and :meth:`~citus.exceptions.HTTPException.get_headers`.

    :param error: the HTTP error to answer.
    :raises TypeError: the error carries a ready answer that is not a
        :class:`Response`.
    """
    ready = error.response
    if ready is not None:
        if not isinstance(ready, Response):
            raise TypeError(
                f"The HTTP error {error.code} carries {ready!r} as its response;"
                " pass a citus.Response to abort() or HTTPException(response=...)."
            )
        return ready
    if isinstance(error, RequestRedirect):
        return redirect(error.new_url, error.code)
    return Response(error.get_body(), status=error.code, headers=error.get_headers())
