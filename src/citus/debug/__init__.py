"""The interactive debugger: :class:`DebuggedApplication`.

The middleware catches what the wrapped application raises and answers with an
error page (:mod:`.tbtools`, :mod:`.page`) in the client's format, records the
error for ``citus errors`` (:mod:`.errorlog`), and serves its own small API
under :data:`PREFIX` (:mod:`.endpoints`): static assets, the PIN check and the
per-frame console (:mod:`.console`). Who may see a traceback or use the
console, the PIN and the lockout after wrong PINs are :mod:`.guard`'s rules.
"""

from __future__ import annotations

import io
import os
import secrets
import socket
import sys
import threading
import typing as t
from collections import OrderedDict

from .._log import echo, escape_terminal, set_traceback_links
from ._http import PREFIX as PREFIX
from ._http import (
    SECURITY_HEADERS,
    negotiate,
    socket_exposed,
    to_json,
    utf8,
)
from ._multipart import MultipartTap, boundary_of
from ._state import STATE_ENV as STATE_ENV
from ._state import SharedState
from .editor import Editor, osc8_traceback, terminal_links
from .endpoints import Endpoints
from .errorlog import ErrorLog
from .guard import LOCKOUT_SECONDS as LOCKOUT_SECONDS
from .guard import MAX_PIN_ATTEMPTS as MAX_PIN_ATTEMPTS
from .guard import PIN_ENV as PIN_ENV
from .guard import TOKEN_LIFETIME as TOKEN_LIFETIME
from .guard import TRUSTED_HOSTS_ENV as TRUSTED_HOSTS_ENV
from .guard import Guard, lockout_message
from .page import find_config, render_minimal_page, render_page
from .repr import dump as dump
from .share import markdown_report
from .tbtools import Traceback, plain_text

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["PREFIX", "DebuggedApplication", "dump"]

#: How many tracebacks are kept for their consoles by default.
DEFAULT_MAX_TRACEBACKS = 20
#: Largest URL-encoded form body copied for the error page.
MAX_FORM_COPY = 64 * 1024
#: WSGI environ key an app sets when its error is that the real app failed to
#: load (``citus run`` does): the page for it says so when it is refused. Every
#: error page follows :meth:`DebuggedApplication.trusts_request`, as the
#: reloader's page for a server that is down does.
LOAD_ERROR_KEY = "citus.debug.load_error"

# Set by the reloader's supervisor: 0 in its first serving child, then 1, 2...
_GENERATION_ENV = "CITUS_RUN_GENERATION"


class DebuggedApplication:
    """WSGI middleware that shows an interactive debugger when ``app`` raises.

    Construction is cheap and can happen in a process that never serves (the
    reloader's supervisor): it prepares the PIN and the state shared with the
    serving children.

    :param app: the WSGI application to wrap.
    :param evalex: allow the per-frame Python console (behind the PIN).
    :param pin: the PIN; defaults to ``CITUS_DEBUGGER_PIN``, else a random one
        kept across reloads. ``"off"`` disables the lock.
    :param trusted_hosts: more host names the debugger answers (``.example.com``
        or ``*.example.com`` for a domain and its subdomains). Requests for these
        hosts may use the console from other machines.
    :param max_tracebacks: how many tracebacks are kept for their consoles.
    :param console_page: serve a standalone console at ``PREFIX + "/console"``.

    Reads ``CITUS_DEBUGGER_PIN``, ``CITUS_DEBUGGER_TRUSTED_HOSTS`` (comma
    separated), ``CITUS_DEBUGGER_STATE`` (set by the first process),
    ``CITUS_EDITOR`` and ``CITUS_EDITOR_PATH_MAP`` (editor links; unset, VS
    Code's terminal, ``TERM_PROGRAM=vscode``, means VS Code), and, for the
    links in tracebacks printed on a terminal, ``NO_COLOR``, ``TERM``,
    ``TERM_PROGRAM`` and ``FORCE_HYPERLINK``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        evalex: bool = True,
        *,
        pin: str | None = None,
        trusted_hosts: t.Iterable[str] = (),
        max_tracebacks: int = DEFAULT_MAX_TRACEBACKS,
        console_page: bool = False,
    ) -> None:
        if max_tracebacks < 1:
            raise ValueError(
                f"max_tracebacks={max_tracebacks!r} keeps nothing: use 1 or more."
            )
        self.app = app
        self.evalex = evalex
        self.max_tracebacks = max_tracebacks
        self.console_page = console_page
        #: The secret each page sends back with console requests.
        self.secret = secrets.token_urlsafe(24)
        self.tracebacks: OrderedDict[str, Traceback] = OrderedDict()
        #: Guards :attr:`tracebacks` (the endpoints read them too).
        self.lock = threading.Lock()
        self._state = SharedState()
        #: The PIN, the trusted hosts and the lockout (:mod:`.guard`).
        self.guard = Guard(pin, trusted_hosts, self._state)
        self._endpoints = Endpoints(self)
        #: Where tracebacks link to: ``CITUS_EDITOR``, ``CITUS_EDITOR_PATH_MAP``.
        self.editor = Editor.from_env()
        if terminal_links():
            # Tracebacks the server logs itself (an error after the response
            # started) link to the same places as the debugger's.
            editor = self.editor
            set_traceback_links(lambda text: osc8_traceback(text, editor))
        self._errors = ErrorLog(self._state.path)

    # --- start-up ----------------------------------------------------------

    def banner_lines(self, sockets: list[socket.socket]) -> list[str]:
        """The lines the serving process prints at start.

        `` * Debugger is active!``, `` * Debugger PIN: 123-456-789``, and
        warnings when the PIN is off, a socket is reachable from elsewhere, or
        ``CITUS_EDITOR`` names no editor citus knows.

        Only the process that serves calls it: from then on, this process
        records its errors for ``citus errors`` (:mod:`.errorlog`).

        :param sockets: the listening sockets.
        """
        self._errors.announce(*_where(sockets))
        lines = [" * Debugger is active!"]
        if self.evalex and self.pin is not None:
            lines.append(f" * Debugger PIN: {self.pin}")
        elif self.evalex:
            lines.append(
                f"WARNING: The debugger PIN is off ({PIN_ENV}=off): anyone who can"
                " send requests to this server can run code on this machine as you."
                f" Unset {PIN_ENV} to lock the console again."
            )
        exposed = [a for a in map(socket_exposed, sockets) if a is not None]
        if exposed:
            lines.append(
                f"WARNING: The debugger is on and the server listens on"
                f" {', '.join(exposed)}, which other machines can reach. Serve on"
                " 127.0.0.1 (--host 127.0.0.1) or turn the debugger off"
                " (--no-debugger)."
            )
        # Once per run: not again in the children a reload starts.
        if os.environ.get(_GENERATION_ENV, "0") in ("", "0"):
            lines.extend(self.editor.warnings)
        return lines

    # --- WSGI --------------------------------------------------------------

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Serve the debugger's endpoints, or run the app and catch its errors."""
        path = environ.get("PATH_INFO") or ""
        if path == PREFIX or path.startswith(PREFIX + "/"):
            return self._endpoints(environ, start_response, path[len(PREFIX) :])
        return self._run_app(environ, start_response)

    def _run_app(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterator[bytes]:
        form_body = self._keep_form(environ)
        sent = [False]

        def tracking_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
        ) -> t.Callable[[bytes], object]:
            write = start_response(status, headers, exc_info)

            def tracking_write(data: bytes) -> object:
                if data:
                    sent[0] = True
                return write(data)

            return tracking_write

        app_iter: t.Iterable[bytes] | None = None
        try:
            app_iter = self.app(environ, tracking_start_response)
            for chunk in app_iter:
                if chunk:
                    sent[0] = True
                yield chunk
        except (Exception, SystemExit) as error:
            # SystemExit too: sys.exit() in a view is a bug to show, and it
            # must not take the server's thread (or the server) down with it.
            if sent[0]:
                # The status line has gone out: only closing the connection
                # tells the client that the body is cut short. The server logs
                # the traceback as it does so (logging it here too would
                # print it twice).
                raise
            self._log_error(environ, error)
            try:
                status, headers, body = self._error_response(environ, error, form_body)
            except Exception as failure:  # a bug here must not hide the app's error
                kind = type(failure).__name__
                echo(
                    f"The debugger could not render its page: {kind}: {failure}",
                    err=True,
                )
                status = "500 INTERNAL SERVER ERROR"
                headers = self._headers("text/plain; charset=utf-8")
                body = b"Internal Server Error: the traceback is in the terminal.\n"
            start_response(status, headers, sys.exc_info())
            self._record(environ, error)
            yield body
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()

    def _keep_form(self, environ: WSGIEnvironment) -> bytes | MultipartTap | None:
        """Copy a small URL-encoded body so that the page can show the form, or
        put a :class:`MultipartTap` on a multipart body to note its fields."""
        content_type = environ.get("CONTENT_TYPE", "")
        boundary = boundary_of(content_type) if "multipart" in content_type else None
        if boundary is not None:
            tap = MultipartTap(environ["wsgi.input"], boundary)
            environ["wsgi.input"] = tap
            return tap
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if not 0 < length <= MAX_FORM_COPY:
            return None
        body: bytes = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def _log_error(self, environ: WSGIEnvironment, error: BaseException) -> None:
        text = plain_text(error)
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        editor = self.editor
        links = None
        if terminal_links():

            def links(message: str) -> str:
                return osc8_traceback(message, editor)

        echo(
            f"Error on request {method} {path!r}:\n{text.rstrip()}",
            err=True,
            hyperlinks=links,
        )

    def _record(self, environ: WSGIEnvironment, error: BaseException) -> None:
        """Add the error to the recent errors that ``citus errors`` reads."""
        if not self._errors.active:
            return
        with self.lock:
            kept = [k for k in self.tracebacks.values() if k.exception is error]
        link = self.editor.url if self.editor.template is not None else None
        try:
            # A refused request has no kept traceback: the page showed none.
            tb = kept[0] if kept else Traceback(error)
            self._errors.record(tb, environ, link)
        except Exception as failure:  # never at the cost of the error page
            echo(
                "The debugger could not record the error for 'citus errors':"
                f" {type(failure).__name__}: {failure}",
                err=True,
            )

    # --- the error response -------------------------------------------------

    def _store(self, error: BaseException) -> Traceback:
        with self.lock:
            for kept in self.tracebacks.values():
                if kept.exception is error:
                    self.tracebacks.move_to_end(kept.id)
                    return kept
        tb = Traceback(error)
        with self.lock:
            self.tracebacks[tb.id] = tb
            while len(self.tracebacks) > self.max_tracebacks:
                self.tracebacks.popitem(last=False)
        return tb

    def _error_response(
        self,
        environ: WSGIEnvironment,
        error: BaseException,
        form_body: bytes | MultipartTap | None,
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        status = "500 INTERNAL SERVER ERROR"
        kind = negotiate(environ.get("HTTP_ACCEPT", ""))
        if not self.guard.host_trusted(environ):
            host = environ.get("HTTP_HOST")
            if host:
                reason = (
                    "The debugger shows tracebacks only to requests for a trusted"
                    f" host, and this one was for {host!r}. Add it with"
                    f" {TRUSTED_HOSTS_ENV}=name if that is how you reach this server."
                )
            else:
                reason = (
                    "The debugger shows tracebacks only to requests for a trusted"
                    " host, and this one had no Host header (an HTTP/1.0 client?)."
                    " Send 'Host: localhost'."
                )
            return self._refusal(status, kind, reason)
        if not self.guard.same_origin(environ):
            # The rule of the debugger's endpoints and of the reloader's page:
            # a page on another site must not read tracebacks (a cross-site
            # fetch or a form posted from there).
            what = (
                "The app failed to load. The debugger shows why"
                if environ.get(LOAD_ERROR_KEY)
                else "The debugger shows tracebacks"
            )
            where = " and in 'citus errors'" if self._errors.active else ""
            reason = (
                f"{what} only to requests from the same origin, and this one"
                " came from another origin; open this URL directly. The"
                f" traceback is in the terminal{where}."
            )
            return self._refusal(status, kind, reason)
        tb = self._store(error)
        link = self.editor.url if self.editor.template is not None else None
        markdown = markdown_report(tb, environ)
        if kind == "json":
            data = tb.to_json(link, markdown)
            return status, self._headers("application/json"), to_json(data)
        if kind == "text":
            # Read in a terminal (curl): a message's escape codes stay inert.
            text = escape_terminal(tb.text)
            return status, self._headers("text/plain; charset=utf-8"), utf8(text)
        # A browser that unlocked before a lockout keeps its console, so the
        # page keeps the buttons and only warns.
        console_reason = self.guard.console_reason(environ, self.evalex)
        notice = None
        if console_reason is None and self.pin is not None:
            until = self.guard.lockout_until()
            notice = lockout_message(until) if until else None
        fields = None
        if isinstance(form_body, MultipartTap):
            form_body.drain()
            fields = form_body.fields()
            form_body = None
        page = render_page(
            tb,
            environ=environ,
            prefix=environ.get("SCRIPT_NAME", "").rstrip("/") + PREFIX,
            secret=self.secret,
            console_reason=console_reason,
            form_body=form_body,
            form_fields=fields,
            config=find_config(self.app),
            notice=notice,
            link=link,
            markdown=markdown,
        )
        return status, self._headers("text/html; charset=utf-8"), utf8(page)

    def _refusal(
        self, status: str, kind: str, reason: str
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """The page without the traceback, saying ``reason``."""
        if kind == "json":
            data = {"error": {"type": "InternalServerError", "message": reason}}
            return status, self._headers("application/json"), to_json(data)
        if kind == "text":
            text = f"Internal Server Error\n\n{reason}\n"
            return status, self._headers("text/plain; charset=utf-8"), utf8(text)
        page = render_minimal_page(reason)
        return status, self._headers("text/html; charset=utf-8"), utf8(page)

    @staticmethod
    def _headers(content_type: str) -> list[tuple[str, str]]:
        return [("Content-Type", content_type), *SECURITY_HEADERS]

    # --- who may use the debugger --------------------------------------------

    def trusts_request(self, environ: WSGIEnvironment) -> bool:
        """Whether a request may see tracebacks: its ``Host`` is trusted and its
        ``Origin`` / ``Sec-Fetch-Site``, when sent, are same-origin.

        The rule the debugger applies to its own endpoints, for other pages that
        show code (the reloader's page while the server process is down).

        :param environ: a WSGI environ; ``HTTP_HOST``, ``HTTP_ORIGIN``,
            ``HTTP_SEC_FETCH_SITE``, ``REQUEST_METHOD`` and ``wsgi.url_scheme``
            are read.
        """
        return self.guard.trusts_request(environ)

    @property
    def pin(self) -> str | None:
        """The PIN, or ``None`` when the lock is off."""
        return self.guard.pin

    @property
    def _cookie_name(self) -> str:
        return self.guard.cookie_name


def _where(sockets: list[socket.socket]) -> tuple[list[str], list[str]]:
    """The ports (or Unix socket paths) and addresses of ``sockets``."""
    ports: list[str] = []
    addresses: list[str] = []
    for sock in sockets:
        try:
            name = sock.getsockname()
        except OSError:
            continue
        if isinstance(name, tuple):
            host, port = str(name[0]), str(name[1])
            addresses.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        else:
            port = os.fsdecode(name)
            addresses.append(port)
        if port not in ports:
            ports.append(port)
    return ports, addresses
