"""The interactive debugger: :class:`DebuggedApplication`, its PIN and who may
use it.

The middleware catches what the wrapped application raises and answers with an
error page (:mod:`.tbtools`, :mod:`.page`) in the client's format, and serves
its own small API under :data:`PREFIX`: static assets, the PIN check and the
per-frame console (:mod:`.console`). The rules that keep everyone else out live here:

- every debugger request must carry a trusted ``Host`` (local names, plus those
  the user configures) and, when sent, a same-origin ``Origin`` and
  ``Sec-Fetch-Site``; the console also needs a loopback peer (from the socket's
  address, ``REMOTE_ADDR``) unless the user trusted the host explicitly;
- the console needs the page's secret and a cookie obtained with the PIN; the
  cookie holds a random token that the server checks and that expires;
- wrong PINs are counted in a small state file shared by the reloader's
  processes and locked with :func:`citus._compat.lock_file`; after
  :data:`MAX_PIN_ATTEMPTS` unlocking is refused for :data:`LOCKOUT_SECONDS`.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import io
import os
import secrets
import socket
import sys
import threading
import time
import typing as t
from collections import OrderedDict
from importlib import resources

from .._log import echo, escape_terminal, set_traceback_links
from ._http import (
    LOCAL_HOSTS,
    SECURITY_HEADERS,
    get_cookie,
    host_name,
    is_loopback_address,
    negotiate,
    read_form,
    reply,
    socket_exposed,
    to_json,
)
from ._multipart import MultipartTap, boundary_of
from ._state import STATE_ENV as STATE_ENV
from ._state import SharedState, hash_token, normalize_pin
from .console import Console
from .editor import Editor, osc8_traceback, terminal_links
from .errorlog import ErrorLog
from .page import (
    find_config,
    render_console_page,
    render_minimal_page,
    render_page,
)
from .repr import dump as dump
from .share import markdown_report
from .tbtools import Traceback, plain_text

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["PREFIX", "DebuggedApplication", "dump"]

#: URL prefix of the debugger's own endpoints; no application route uses it.
PREFIX = "/__citus_debugger__"
#: Environment variable: the PIN, or ``off`` to disable the lock.
PIN_ENV = "CITUS_DEBUGGER_PIN"
#: Environment variable: more trusted host names, separated by commas.
TRUSTED_HOSTS_ENV = "CITUS_DEBUGGER_TRUSTED_HOSTS"
#: Wrong PINs accepted before unlocking is refused.
MAX_PIN_ATTEMPTS = 10
#: How long unlocking is refused after too many wrong PINs (seconds).
LOCKOUT_SECONDS = 300
#: How long an unlocked browser stays unlocked (seconds).
TOKEN_LIFETIME = 8 * 3600
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

_ASSETS = {
    "debugger.css": "text/css; charset=utf-8",
    "debugger.js": "text/javascript; charset=utf-8",
}


_PinResult = tuple[str, t.Any]


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
        self._lock = threading.Lock()
        self._standalone: Console | None = None
        self._state = SharedState()
        configured = list(trusted_hosts)
        configured += [
            h for h in os.environ.get(TRUSTED_HOSTS_ENV, "").split(",") if h.strip()
        ]
        names = {host_name(h.replace("*.", ".", 1)) for h in configured}
        # Local names are trusted anyway; listing them must not let other
        # machines (which can send "Host: localhost") use the console.
        self._trusted = {n for n in names if n and not _is_local_name(n)}
        if pin is None:
            pin = os.environ.get(PIN_ENV) or None
        if pin is not None and not normalize_pin(pin):
            pin = None  # blank (or only dashes): nobody could type it; use a random one
        if pin is None:
            pin = t.cast(str, self._state.update(lambda data: data["pin"]))
        #: The PIN, or ``None`` when the lock is off.
        self.pin: str | None = None if pin.strip().lower() == "off" else pin.strip()
        digest = hashlib.sha256(self._state.path.encode()).hexdigest()[:10]
        self._cookie_name = f"__citus_debugger_{digest}"
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
            return self._endpoint(environ, start_response, path[len(PREFIX) :])
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
        with self._lock:
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
        with self._lock:
            for kept in self.tracebacks.values():
                if kept.exception is error:
                    self.tracebacks.move_to_end(kept.id)
                    return kept
        tb = Traceback(error)
        with self._lock:
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
        if not self._host_trusted(environ):
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
        if not self._same_origin(environ):
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
            return status, self._headers("text/plain; charset=utf-8"), _utf8(text)
        # A browser that unlocked before a lockout keeps its console, so the
        # page keeps the buttons and only warns.
        console_reason = self._console_reason(environ)
        notice = None
        if console_reason is None and self.pin is not None:
            until = self._lockout_until()
            notice = _lockout_message(until) if until else None
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
        return status, self._headers("text/html; charset=utf-8"), _utf8(page)

    def _refusal(
        self, status: str, kind: str, reason: str
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """The page without the traceback, saying ``reason``."""
        if kind == "json":
            data = {"error": {"type": "InternalServerError", "message": reason}}
            return status, self._headers("application/json"), to_json(data)
        if kind == "text":
            text = f"Internal Server Error\n\n{reason}\n"
            return status, self._headers("text/plain; charset=utf-8"), _utf8(text)
        page = render_minimal_page(reason)
        return status, self._headers("text/html; charset=utf-8"), _utf8(page)

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
        return self._host_trusted(environ) and self._same_origin(environ)

    def _host_trusted(self, environ: WSGIEnvironment) -> bool:
        name = host_name(environ.get("HTTP_HOST", ""))
        return _is_local_name(name) or self._configured_host(name)

    def _configured_host(self, name: str) -> bool:
        if not name:
            return False
        for entry in self._trusted:
            if entry.startswith("."):
                if name == entry[1:] or name.endswith(entry):
                    return True
            elif name == entry:
                return True
        return False

    def _same_origin(self, environ: WSGIEnvironment) -> bool:
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            scheme = environ.get("wsgi.url_scheme", "http")
            expected = f"{scheme}://{environ.get('HTTP_HOST', '')}".lower()
            if origin.strip().lower() != expected:
                return False
        site = environ.get("HTTP_SEC_FETCH_SITE")
        if site is not None:
            method = environ.get("REQUEST_METHOD", "GET")
            if site == "same-origin":
                return True
            return site == "none" and method in ("GET", "HEAD")
        return True

    def _lockout_until(self) -> float:
        now = time.time()
        until = float(self._state.update(lambda data: data.get("locked_until", 0)))
        return until if until > now else 0.0

    def _console_reason(self, environ: WSGIEnvironment) -> str | None:
        """Why the console cannot be used for this request, or ``None``.

        A lockout after wrong PINs is not a reason here: it stops unlocking,
        not a browser that unlocked before.
        """
        if not self.evalex:
            return (
                "The console is off: the debugger was started without evaluation"
                " (use_evalex=False)."
            )
        peer = environ.get("REMOTE_ADDR")
        name = host_name(environ.get("HTTP_HOST", ""))
        if not is_loopback_address(peer) and not self._configured_host(name):
            where = peer if peer else "an unknown address"
            return (
                f"The console is off: this request came from {where}, not from"
                f" this machine. To allow it, set {TRUSTED_HOSTS_ENV} to the host"
                " name you use to reach this server."
            )
        return None

    def _authenticated(self, environ: WSGIEnvironment) -> bool:
        if self.pin is None:
            return True
        token = get_cookie(environ, self._cookie_name)
        if not token:
            return False
        digest = hash_token(token)
        now = time.time()

        def check(data: dict[str, t.Any]) -> bool:
            expiry = data.get("tokens", {}).get(digest)
            return isinstance(expiry, (int, float)) and expiry > now

        return bool(self._state.update(check))

    def _try_pin(self, given: str, peer: str) -> _PinResult:
        expected = normalize_pin(self.pin or "")
        attempt = normalize_pin(given)
        now = time.time()

        def change(data: dict[str, t.Any]) -> _PinResult:
            until = float(data.get("locked_until", 0))
            if until > now:
                return ("locked", until)
            if until:
                data["locked_until"] = 0
                data["failures"] = 0
            if attempt and hmac.compare_digest(attempt, expected):
                token = secrets.token_urlsafe(32)
                tokens = {k: v for k, v in data.get("tokens", {}).items() if v > now}
                tokens[hash_token(token)] = now + TOKEN_LIFETIME
                data["tokens"] = tokens
                data["failures"] = 0
                return ("ok", token)
            data["failures"] = int(data.get("failures", 0)) + 1
            if data["failures"] >= MAX_PIN_ATTEMPTS:
                data["locked_until"] = now + LOCKOUT_SECONDS
                return ("lockout", data["locked_until"])
            return ("wrong", MAX_PIN_ATTEMPTS - data["failures"])

        result: _PinResult = self._state.update(change)
        if result[0] == "wrong":
            echo(
                f" * Debugger: wrong PIN from {peer}"
                f" ({MAX_PIN_ATTEMPTS - result[1]} of {MAX_PIN_ATTEMPTS})",
                err=True,
            )
        elif result[0] == "lockout":
            echo(
                f" * Debugger: {MAX_PIN_ATTEMPTS} wrong PINs; unlocking the console"
                f" is refused until {_clock(result[1])} ({LOCKOUT_SECONDS // 60}"
                " minutes), even with the right PIN. Restart the server to reset.",
                err=True,
            )
        return result

    # --- the debugger's endpoints ---------------------------------------------

    def _endpoint(
        self, environ: WSGIEnvironment, start_response: StartResponse, sub: str
    ) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if not self._host_trusted(environ):
            return reply(
                start_response,
                "400 BAD REQUEST",
                {"error": "The debugger does not answer requests for this Host."},
            )
        if not self._same_origin(environ):
            return reply(
                start_response,
                "403 FORBIDDEN",
                {"error": "The debugger answers only requests from its own pages."},
            )
        if sub.startswith("/shared/"):
            if method not in ("GET", "HEAD"):
                return reply(start_response, "405 METHOD NOT ALLOWED", {}, "GET")
            return self._asset(start_response, sub[len("/shared/") :])
        if sub == "/console" and method in ("GET", "HEAD") and self.console_page:
            page = render_console_page(
                prefix=environ.get("SCRIPT_NAME", "").rstrip("/") + PREFIX,
                secret=self.secret,
                console_reason=self._console_reason(environ),
            )
            start_response("200 OK", self._headers("text/html; charset=utf-8"))
            return [_utf8(page)]
        handlers = {"/pin": self._pin, "/status": self._status, "/eval": self._eval}
        handler = handlers.get(sub)
        if handler is None:
            return reply(start_response, "404 NOT FOUND", {"error": "Not found."})
        if method != "POST":
            return reply(
                start_response,
                "405 METHOD NOT ALLOWED",
                {"error": "Use POST: PINs and code never travel in URLs."},
                "POST",
            )
        form = read_form(environ)
        if isinstance(form, tuple):
            return reply(start_response, form[0], {"error": form[1]})
        if not hmac.compare_digest(form.get("s", ""), self.secret):
            return reply(
                start_response,
                "403 FORBIDDEN",
                {
                    "error": "This page's secret is wrong or missing; reload the"
                    " error page (the server may have restarted)."
                },
            )
        return handler(environ, start_response, form)

    def _asset(self, start_response: StartResponse, name: str) -> list[bytes]:
        content_type = _ASSETS.get(name)
        if content_type is None:
            return reply(start_response, "404 NOT FOUND", {"error": "No such asset."})
        data = resources.files(__name__).joinpath("shared").joinpath(name).read_bytes()
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            *SECURITY_HEADERS,
        ]
        start_response("200 OK", headers)
        return [data]

    def _status(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        form: dict[str, str],
    ) -> list[bytes]:
        reason = self._console_reason(environ)
        until = self._lockout_until() if self.pin is not None else 0.0
        return reply(
            start_response,
            "200 OK",
            {
                "unlocked": reason is None and self._authenticated(environ),
                "pin_required": self.pin is not None,
                "locked_out": bool(until),
                "reason": reason,
            },
        )

    def _pin(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        form: dict[str, str],
    ) -> list[bytes]:
        reason = self._console_reason(environ)
        if reason is not None:
            return reply(
                start_response, "403 FORBIDDEN", {"ok": False, "error": reason}
            )
        if self.pin is None:
            return reply(start_response, "200 OK", {"ok": True})
        outcome, value = self._try_pin(
            form.get("pin", ""), environ.get("REMOTE_ADDR", "?")
        )
        if outcome == "ok":
            cookie = (
                f"{self._cookie_name}={value}; Path="
                f"{environ.get('SCRIPT_NAME', '').rstrip('/')}{PREFIX}/;"
                f" Max-Age={TOKEN_LIFETIME}; HttpOnly; SameSite=Strict"
            )
            if environ.get("wsgi.url_scheme") == "https":
                cookie += "; Secure"
            return reply(start_response, "200 OK", {"ok": True}, cookie=cookie)
        if outcome == "wrong":
            return reply(
                start_response,
                "403 FORBIDDEN",
                {
                    "ok": False,
                    "error": f"Wrong PIN. {value} attempt{'' if value == 1 else 's'}"
                    " left; the PIN is printed in the terminal that runs the server.",
                },
            )
        return reply(
            start_response,
            "429 TOO MANY REQUESTS",
            {"ok": False, "locked_out": True, "error": _lockout_message(value)},
        )

    def _eval(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        form: dict[str, str],
    ) -> list[bytes]:
        reason = self._console_reason(environ)
        if reason is not None:
            return reply(start_response, "403 FORBIDDEN", {"error": reason})
        if not self._authenticated(environ):
            return reply(
                start_response,
                "403 FORBIDDEN",
                {
                    "error": "The console is locked: enter the PIN first.",
                    "locked": True,
                },
            )
        console = self._find_console(form.get("tb", ""), form.get("frame", ""))
        if isinstance(console, str):
            return reply(start_response, "404 NOT FOUND", {"error": console})
        output = console.push(form.get("cmd", ""))
        return reply(
            start_response, "200 OK", {"output": output, "prompt": console.prompt}
        )

    def _find_console(self, tb_id: str, frame_id: str) -> Console | str:
        if tb_id == "console":
            if not self.console_page:
                return "The standalone console is off."
            with self._lock:
                if self._standalone is None:
                    namespace = {"__name__": "__console__", "app": self.app}
                    self._standalone = Console(namespace)
                return self._standalone
        with self._lock:
            tb = self.tracebacks.get(tb_id)
            if tb is None:
                return (
                    f"This traceback is no longer kept (only the last"
                    f" {self.max_tracebacks} are, and none survive a reload);"
                    " reload the page that failed."
                )
            index = int(frame_id) if frame_id.isdigit() else len(tb.frames)
            if index >= len(tb.frames):
                return f"No frame {frame_id!r} in this traceback."
            frame = tb.frames[index]
            if frame.frame is None:
                return "This frame has no console (it is a syntax error's location)."
            console = tb.consoles.get(frame.id)
            if console is None:
                console = Console(
                    frame.frame.f_globals,
                    frame.frame.f_locals,
                    context=_request_context(tb, index),
                )
                tb.consoles[frame.id] = console
            return console


def _request_context(tb: Traceback, index: int) -> contextvars.Context | None:
    """The context the failed request ran in: a :class:`contextvars.Context`
    held by a local of frame ``index`` or of a frame that called it (citus's
    ``API`` keeps one while it dispatches), the nearest first."""
    for frame in reversed(tb.frames[: index + 1]):
        if frame.frame is None:
            continue
        for value in list(frame.frame.f_locals.values()):
            if isinstance(value, contextvars.Context):
                return value
    return None


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


def _utf8(text: str) -> bytes:
    # Lone surrogates (a file name decoded with os.fsdecode) are shown as
    # \udcff rather than failing the whole page.
    return text.encode("utf-8", "backslashreplace")


def _is_local_name(name: str) -> bool:
    return name in LOCAL_HOSTS or name.endswith(".localhost")


def _clock(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def _lockout_message(until: float) -> str:
    return (
        f"The console is locked: after {MAX_PIN_ATTEMPTS} wrong PINs, unlocking is"
        f" refused until {_clock(until)}. Restart the server to reset it sooner."
    )
