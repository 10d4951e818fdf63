"""An in-process test client: requests to a WSGI application without a socket.

:class:`Client` builds a WSGI environ for each request (query string, headers,
form or JSON body, multipart uploads, cookies), calls the application, reads
the whole answer and returns a :class:`TestResponse`. Cookies the application
sets are kept and sent back on later requests, as a browser would. Exceptions
the application lets through (in debug mode) reach the test unchanged.

::

    client = app.test_client()
    response = client.post("/notes", json={"text": "hi"})
    assert response.status_code == 201
    assert response.get_json()["text"] == "hi"
"""

from __future__ import annotations

import io
import json as _json
import mimetypes
import os
import sys
import time
import typing as t
import uuid
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit

from .wrappers.datastructures import Headers
from .wrappers.response import Response

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = ["Client", "TestResponse"]

_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_REDIRECTS = 20


class TestResponse(Response):
    """The answer to a test request, fully read.

    Has everything of :class:`~citus.Response` (``status_code``, ``headers``,
    ``data``, ``text``, ``get_json()``, ``json``) plus the :attr:`request`
    environ and, after ``follow_redirects``, the :attr:`history` of redirects.
    """

    __test__ = False  # not a pytest test class

    #: The WSGI environ of the request that got this answer.
    request: WSGIEnvironment
    #: The redirect responses followed to get here.
    history: list[TestResponse]

    @classmethod
    def from_wsgi(
        cls,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
        environ: WSGIEnvironment,
    ) -> TestResponse:
        """A response holding exactly what the application sent."""
        response = cls(body, status=status)
        response.headers = Headers(headers)
        response.request = environ
        response.history = []
        return response


class _Cookie(t.NamedTuple):
    name: str
    value: str
    domain: str
    host_only: bool
    path: str
    expires: float | None


class Client:
    """Sends requests to ``app`` in-process and keeps its cookies.

    :param app: any WSGI application (an :class:`~citus.API` gives one with
        ``app.test_client()``).
    :param base_url: scheme and host of the requests (``http://localhost``).
    :param use_cookies: keep cookies between requests.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: WSGIApplication,
        base_url: str = "http://localhost",
        use_cookies: bool = True,
    ) -> None:
        self.app = app
        self.base_url = base_url
        self.use_cookies = use_cookies
        self._cookies: dict[tuple[str, str, str], _Cookie] = {}

    def __enter__(self) -> Client:
        """``with app.test_client() as client:``, as Flask tests write it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Forget the cookies: the next ``with`` block starts afresh."""
        self._cookies.clear()

    # -- cookies ------------------------------------------------------------------

    def set_cookie(
        self, key: str, value: str = "", domain: str = "localhost", path: str = "/"
    ) -> None:
        """Store a cookie as if the application had set it."""
        self._cookies[(domain, path, key)] = _Cookie(
            key, value, domain.lstrip("."), True, path, None
        )

    def get_cookie(self, key: str, domain: str | None = None) -> str | None:
        """The value of the stored cookie ``key`` (``None`` when there is none)."""
        self._expire()
        for cookie in self._cookies.values():
            if cookie.name == key and (domain is None or cookie.domain == domain):
                return cookie.value
        return None

    def delete_cookie(self, key: str) -> None:
        """Forget every stored cookie named ``key``."""
        for index in [k for k in self._cookies if k[2] == key]:
            del self._cookies[index]

    @property
    def cookies(self) -> dict[str, str]:
        """The stored cookies' names and values."""
        self._expire()
        return {cookie.name: cookie.value for cookie in self._cookies.values()}

    def _expire(self) -> None:
        now = time.time()
        for key, cookie in list(self._cookies.items()):
            if cookie.expires is not None and cookie.expires <= now:
                del self._cookies[key]

    def _cookie_header(self, host: str, path: str) -> str | None:
        self._expire()
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        pairs = []
        for cookie in self._cookies.values():
            if cookie.host_only:
                ok = hostname == cookie.domain
            else:
                ok = hostname == cookie.domain or hostname.endswith("." + cookie.domain)
            if ok and (
                path == cookie.path
                or path.startswith(cookie.path.rstrip("/") + "/")
                or cookie.path == "/"
            ):
                pairs.append(f"{cookie.name}={cookie.value}")
        return "; ".join(pairs) or None

    def _store_cookies(self, headers: Headers, host: str) -> None:
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        for line in headers.getlist("Set-Cookie"):
            first, *attributes = line.split(";")
            name, _, value = first.strip().partition("=")
            domain, host_only, path = hostname, True, "/"
            expires: float | None = None
            max_age: float | None = None
            for attribute in attributes:
                key, _, text = attribute.strip().partition("=")
                key = key.lower()
                if key == "domain" and text:
                    domain, host_only = text.lstrip(".").lower(), False
                elif key == "path" and text:
                    path = text
                elif key == "max-age":
                    try:
                        max_age = time.time() + int(text)
                    except ValueError:
                        pass
                elif key == "expires":
                    try:
                        expires = parsedate_to_datetime(text).timestamp()
                    except (TypeError, ValueError, IndexError):
                        pass
            if max_age is not None:
                expires = max_age
            cookie = _Cookie(
                name.strip(), value.strip(), domain, host_only, path, expires
            )
            self._cookies[(domain, path, cookie.name)] = cookie
        self._expire()

    # -- requests -------------------------------------------------------------------

    def open(
        self,
        path: str = "/",
        method: str = "GET",
        *,
        query_string: t.Mapping[str, t.Any] | str | None = None,
        headers: t.Mapping[str, str] | t.Iterable[tuple[str, str]] | None = None,
        data: t.Mapping[str, t.Any] | str | bytes | None = None,
        json: t.Any = None,
        content_type: str | None = None,
        follow_redirects: bool = False,
        environ_overrides: t.Mapping[str, t.Any] | None = None,
    ) -> TestResponse:
        """Send one request and return the whole answer.

        :param path: the path (``/search?q=x``) or a full URL
            (``http://api.localhost:8000/``: sets the scheme and ``Host``).
        :param method: the HTTP method.
        :param query_string: a dict (lists give repeated keys) or a string.
        :param headers: request headers.
        :param data: a dict sent as a form (multipart when a value is a file
            or a ``(file, filename[, content_type])`` tuple, urlencoded
            otherwise), or a raw ``str``/``bytes`` body.
        :param json: a value sent as a JSON body.
        :param content_type: the body's ``Content-Type``.
        :param follow_redirects: follow redirects (up to 20) and return the last
            answer, with the others in ``history``.
        :param environ_overrides: WSGI environ entries to set last.
        """
        environ = self._environ(
            path,
            method,
            query_string,
            headers,
            data,
            json,
            content_type,
            environ_overrides,
        )
        response = self._run(environ)
        history: list[TestResponse] = []
        while follow_redirects and response.status_code in _REDIRECTS:
            if len(history) >= _MAX_REDIRECTS:
                raise RuntimeError(
                    f"More than {_MAX_REDIRECTS} redirects from {path!r}: the"
                    " application redirects in a loop."
                )
            history.append(response)
            location = response.headers.get("Location", "")
            here = (
                f"{environ['wsgi.url_scheme']}://{environ['HTTP_HOST']}"
                f"{environ['PATH_INFO']}"
            )
            target = urljoin(here, location)
            keep = response.status_code in (307, 308)
            environ = self._environ(
                target,
                method if keep else ("HEAD" if method == "HEAD" else "GET"),
                None,
                headers,
                data if keep else None,
                json if keep else None,
                content_type if keep else None,
                environ_overrides,
            )
            response = self._run(environ)
        response.history = history
        return response

    def _run(self, environ: WSGIEnvironment) -> TestResponse:
        captured: list[t.Any] = []

        def start_response(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: t.Any = None,
        ) -> t.Callable[[bytes], object]:
            if exc_info is not None and captured:
                raise exc_info[1].with_traceback(exc_info[2])
            captured[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        body = self.app(environ, start_response)
        try:
            for chunk in body:
                chunks.append(chunk)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if not captured:
            raise RuntimeError(
                "The application returned without calling start_response: a WSGI"
                " application must call it before returning its body."
            )
        status, headers = captured
        response = TestResponse.from_wsgi(status, headers, b"".join(chunks), environ)
        if self.use_cookies:
            self._store_cookies(response.headers, environ["HTTP_HOST"])
        return response

    def _environ(
        self,
        path: str,
        method: str,
        query_string: t.Mapping[str, t.Any] | str | None,
        headers: t.Mapping[str, str] | t.Iterable[tuple[str, str]] | None,
        data: t.Mapping[str, t.Any] | str | bytes | None,
        json: t.Any,
        content_type: str | None,
        overrides: t.Mapping[str, t.Any] | None,
    ) -> WSGIEnvironment:
        base = urlsplit(self.base_url)
        url = urlsplit(path)
        scheme = url.scheme or base.scheme or "http"
        host = url.netloc or base.netloc or "localhost"
        query = url.query
        if query_string is not None:
            extra = (
                query_string
                if isinstance(query_string, str)
                else urlencode(
                    [
                        (k, item)
                        for k, v in query_string.items()
                        for item in (v if isinstance(v, (list, tuple)) else [v])
                    ]
                )
            )
            query = f"{query}&{extra}" if query else extra
        body = b""
        if json is not None:
            if data is not None:
                raise TypeError("Give either data= or json=, not both.")
            body = _json.dumps(json).encode()
            content_type = content_type or "application/json"
        elif isinstance(data, str):
            body = data.encode()
        elif isinstance(data, (bytes, bytearray)):
            body = bytes(data)
        elif data is not None:
            if any(
                _is_file(v) or (isinstance(v, list) and any(map(_is_file, v)))
                for v in data.values()
            ):
                body, content_type = _multipart(data)
            else:
                body = urlencode(
                    [
                        (k, item)
                        for k, v in data.items()
                        for item in (v if isinstance(v, (list, tuple)) else [v])
                    ]
                ).encode()
                content_type = content_type or "application/x-www-form-urlencoded"
        name, _, port = (
            host.rpartition(":") if not host.endswith("]") else (host, "", "")
        )
        if not name or not port.isdigit():
            name, port = host, ("443" if scheme == "https" else "80")
        environ: dict[str, t.Any] = {
            "REQUEST_METHOD": method.upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(url.path or "/").encode("utf-8").decode("latin-1"),
            "QUERY_STRING": quote(query, safe="&=+%/?:@!$'()*,;~[]"),
            "SERVER_NAME": name,
            "SERVER_PORT": port,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": host,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            environ["CONTENT_LENGTH"] = str(len(body))
        if content_type:
            environ["CONTENT_TYPE"] = content_type
        given: set[str] = set()
        for key, value in Headers(headers).items():
            upper = key.upper().replace("-", "_")
            if upper in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[upper] = value
                continue
            upper = "HTTP_" + upper
            if upper in given:
                # A header sent twice reaches the app joined, as servers do.
                separator = "; " if upper == "HTTP_COOKIE" else ", "
                environ[upper] = f"{environ[upper]}{separator}{value}"
            else:
                environ[upper] = value
                given.add(upper)
        if self.use_cookies and "HTTP_COOKIE" not in environ:
            cookie = self._cookie_header(environ["HTTP_HOST"], url.path or "/")
            if cookie:
                environ["HTTP_COOKIE"] = cookie
        if overrides:
            environ.update(overrides)
        return environ

    def get(self, path: str = "/", **kwargs: t.Any) -> TestResponse:
        """Send a GET request (see :meth:`open` for the arguments)."""
        return self.open(path, "GET", **kwargs)

    def post(self, path: str = "/", **kwargs: t.Any) -> TestResponse:
        """Send a POST request."""
        return self.open(path, "POST", **kwargs)

    def put(self, path: str = "/", **kwargs: t.Any) -> TestResponse:
        """Send a PUT request."""
        return self.open(path, "PUT", **kwargs)

    def patch(self, path: str = "/", **kwargs: t.Any) -> TestResponse:
        """Send a PATCH request."""
        return self.open(path, "PATCH", **kwargs)

    def delete(self, path: str = "/", **kwargs: t.Any) -> TestResponse:
        """Send a DELETE request."""
        return self.open(path, "DELETE", **kwargs)

    def head(self, path: str = "/", **kwargs: t.Any) -> TestResponse:
        """Send a HEAD request."""
        return self.open(path, "HEAD", **kwargs)

    def options(self, path: str = "/", **kwargs: t.Any) -> TestResponse:
        """Send an OPTIONS request."""
        return self.open(path, "OPTIONS", **kwargs)


def _is_file(value: t.Any) -> bool:
    return hasattr(value, "read") or (
        isinstance(value, tuple) and len(value) >= 2 and hasattr(value[0], "read")
    )


def _guess_type(filename: object) -> str:
    """The content type a browser would send for ``filename``."""
    guessed = mimetypes.guess_type(str(filename), strict=False)[0]
    return guessed or "application/octet-stream"


def _multipart(data: t.Mapping[str, t.Any]) -> tuple[bytes, str]:
    boundary = f"citus-{uuid.uuid4().hex}"
    out = io.BytesIO()
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            out.write(f"--{boundary}\r\n".encode())
            if _is_file(item):
                if isinstance(item, tuple):
                    stream, filename = item[0], item[1]
                    ctype = item[2] if len(item) > 2 else _guess_type(item[1])
                else:
                    stream = item
                    filename = os.path.basename(str(getattr(item, "name", name)))
                    ctype = _guess_type(filename)
                content = stream.read()
                if isinstance(content, str):
                    content = content.encode()
                safe = str(filename).replace('"', "%22")
                out.write(
                    f'Content-Disposition: form-data; name="{name}"; filename="{safe}"'
                    f"\r\nContent-Type: {ctype}\r\n\r\n".encode()
                )
                out.write(content)
            else:
                out.write(
                    f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                )
                out.write(str(item).encode())
            out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"
