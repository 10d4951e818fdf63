"""Live reload: open pages follow every save.

:class:`LiveReload` is WSGI middleware that :func:`citus.serving.run_simple`
puts outermost when the reloader and the debugger are on (and
``live_reload`` is not turned off). It adds a small script to every full HTML
document the app serves (rules in :mod:`.inject`) and serves, under
:data:`PREFIX`, the event stream the script follows (:mod:`.hub`); those
requests never reach the app. :func:`start` also watches the app's static and
template folders (:mod:`.changes`) and makes the reloader tell the streams
when this process stops for a reload.

See docs/live-reload.md.
"""

from __future__ import annotations

import base64
import io
import typing as t

from . import inject
from .hub import Hub

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ..reloader.base import Backend
    from .changes import AssetSource, AssetWatcher

#: Finds the framework of an app (``None`` for a plain WSGI app). The
#: frameworks package lives on a floor above serving, so it hands its
#: ``detect`` down here when it is imported (``citus run`` imports it).
_lookup: t.Callable[[object], AssetSource | None] | None = None

__all__ = [
    "EVENTS",
    "PREFIX",
    "LiveReload",
    "framework_of",
    "set_framework_lookup",
    "start",
]

#: URL prefix of live reload's own endpoints; requests under it never reach
#: the app.
PREFIX = "/__citus_live__"
#: The event stream, under :data:`PREFIX`.
EVENTS = PREFIX + "/events"
#: A document with a ``Content-Length`` above this passes through untouched
#: (it would have to be held whole in memory).
MAX_DOCUMENT = 16 * 1024 * 1024
#: A non-GET request body up to this size is kept in the page, so that the
#: page can offer to repeat the request after a reload (live.js names the size).
MAX_REPEAT_BODY = 1024 * 1024
#: The environ key of the server's hook that hands over a connection.
TAKE_SOCKET_KEY = "citus.take_socket"


class LiveReload:
    """WSGI middleware: the script in every HTML page, and its event stream.

    :param app: the WSGI application to wrap (the debugger, in
        :func:`~citus.serving.run_simple`).
    :param hub: the streams of this process; a new one by default.
    """

    def __init__(self, app: WSGIApplication, hub: Hub | None = None) -> None:
        self.app = app
        self.hub = hub if hub is not None else Hub()

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Serve the event stream, or the app with the script added."""
        path = environ.get("PATH_INFO") or ""
        if path == PREFIX or path.startswith(PREFIX + "/"):
            return self._endpoint(environ, start_response, path)
        method = str(environ.get("REQUEST_METHOD") or "GET").upper()
        if method == "HEAD":
            return self.app(environ, start_response)
        settings = {
            "url": environ.get("SCRIPT_NAME", "").rstrip("/") + EVENTS,
            "id": self.hub.id,
        }
        if method != "GET":
            settings["method"] = method
            body = _keep_body(environ)
            if body is not None:
                settings["body"] = base64.b64encode(body).decode("ascii")
                content_type = environ.get("CONTENT_TYPE")
                if content_type:
                    settings["type"] = str(content_type)
        return _Injection(self.app, settings).run(environ, start_response)

    def _endpoint(
        self, environ: WSGIEnvironment, start_response: StartResponse, path: str
    ) -> t.Iterable[bytes]:
        if path != EVENTS:
            start_response(
                "404 Not Found", [("Content-Type", "text/plain; charset=utf-8")]
            )
            return [b"Not Found: live reload has only " + EVENTS.encode() + b"\n"]
        if environ.get("REQUEST_METHOD") != "GET":
            start_response(
                "405 Method Not Allowed",
                [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET")],
            )
            return [b"The event stream answers GET only.\n"]
        take = environ.get(TAKE_SOCKET_KEY)
        if callable(take):
            self.hub.add(take())
            return []
        # Another server: one hello, and the page asks again later.
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-store"),
            ],
        )
        from .hub import event

        return [event("hello", {"id": self.hub.id})]


def _keep_body(environ: WSGIEnvironment) -> bytes | None:
    """Read a small request body, leaving an equal ``wsgi.input`` behind."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0:
        return b"" if "HTTP_TRANSFER_ENCODING" not in environ else None
    if length > MAX_REPEAT_BODY:
        return None
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class _Injection:
    """One response on its way out, changed only where :mod:`.inject` allows."""

    def __init__(self, app: WSGIApplication, settings: dict[str, str]) -> None:
        self.app = app
        self.settings = settings
        self.method = settings.get("method", "GET")
        #: ``None`` (no start_response yet), ``"pass"``, ``"whole"``, ``"stream"``.
        self.mode: str | None = None
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.started = False
        self._start_response: StartResponse | None = None

    def run(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        self._start_response = start_response
        result = self.app(environ, self._intercept)
        if self.mode == "pass":
            return result  # untouched, file wrappers included
        return self._iterate(result)

    def _intercept(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: t.Any = None,
    ) -> t.Callable[[bytes], object]:
        assert self._start_response is not None
        if self.started:
            # Too late to change anything: the real one re-raises.
            return self._start_response(status, headers, exc_info)
        self.status, self.headers = status, headers
        if not inject.eligible(self.method, status, headers):
            self.mode = "pass"
            self.started = True
            return self._start_response(status, headers, exc_info)
        length = inject.header(headers, "Content-Length")
        self.mode = "stream" if length is None else "whole"
        return self._write

    def _write(self, data: bytes) -> object:
        """``write()``: the rare app that uses it gets its response untouched."""
        assert self._start_response is not None
        if not self.started:
            self.mode = "pass"
            self.started = True
            write = self._start_response(self.status, self.headers)
            self._real_write = write
        return self._real_write(data)

    def _begin(self, headers: list[tuple[str, str]]) -> None:
        assert self._start_response is not None
        self.started = True
        self._real_write = self._start_response(self.status, headers)

    def _iterate(self, result: t.Iterable[bytes]) -> t.Iterator[bytes]:
        buffered: list[bytes] = []
        repeat = self.method != "GET"
        size = 0
        decided = False
        document = False
        try:
            for chunk in result:
                mode = self.mode
                if mode == "whole" and not self.started:
                    buffered.append(chunk)
                    size += len(chunk)
                    if size > MAX_DOCUMENT:
                        self._begin(self.headers)
                        self.mode = "pass"
                        yield b"".join(buffered)
                        buffered = []
                    continue
                if mode == "stream" and not self.started:
                    if not chunk:
                        continue
                    decided = True
                    document = inject.is_document(chunk)
                    if document:
                        chunk = inject.allow_in_meta(chunk, repeat)
                        self._begin(inject.with_headers(self.headers, None, repeat))
                    else:
                        self._begin(self.headers)
                        self.mode = "pass"
                    yield chunk
                    continue
                yield chunk
            if self.started:
                if self.mode == "stream" and decided and document:
                    yield inject.script_tag(self.settings)
                return
            if self.mode == "whole":
                body = b"".join(buffered)
                declared = inject.header(self.headers, "Content-Length") or ""
                if declared.strip() == str(len(body)) and inject.is_document(body):
                    body = inject.insert(
                        inject.allow_in_meta(body, repeat),
                        inject.script_tag(self.settings),
                    )
                    self._begin(inject.with_headers(self.headers, len(body), repeat))
                else:
                    self._begin(self.headers)
                yield body
            elif self.mode == "stream":
                self._begin(self.headers)  # an empty body: nothing to add to
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def set_framework_lookup(lookup: t.Callable[[object], AssetSource | None]) -> None:
    """Say how to find an app's framework (called by :mod:`citus.frameworks`)."""
    global _lookup
    _lookup = lookup


def framework_of(app: object) -> AssetSource | None:
    """The framework of the app that ``citus run`` serves, seen through the
    wrappers it serves it in (Django's static files handler, say); ``None``
    for a plain WSGI app, or when no framework lookup was set."""
    current = app
    for _ in range(4):
        known = getattr(current, "framework", None)
        if callable(getattr(known, "static_folders", None)):
            return t.cast("AssetSource", known)
        found = _lookup(current) if _lookup is not None else None
        if found is not None:
            return found
        inner = getattr(current, "application", None)
        if inner is None or inner is current:
            break
        current = inner
    return None


def start(
    app: object,
    live: LiveReload,
    make_backend: t.Callable[[], Backend],
    static_files: dict[str, str] | None = None,
) -> AssetWatcher | None:
    """In the serving process: watch ``app``'s asset folders.

    :param app: the application as the user gave it (asked through
        :func:`citus.frameworks.detect`).
    :param live: the middleware whose streams are told.
    :param make_backend: makes the file watcher's backend.
    :param static_files: ``run_simple``'s static folders, watched as well.
    """
    import importlib

    from .changes import AssetWatcher, Folders, apply

    if _lookup is None:
        # citus.frameworks hands its lookup down when imported (citus run
        # has done so); app.run() and run_simple() scripts import it here, by
        # name, as a plug-in: it lives on a floor above this one.
        importlib.import_module("citus.frameworks")
    framework = framework_of(app)
    folders = Folders.of(framework, extra_static=(static_files or {}).items())
    if not folders.all:
        return None
    watcher = AssetWatcher(
        folders, make_backend, lambda change: apply(change, live.hub, framework)
    )
    watcher.start()
    return watcher
