"""The debugger's own endpoints under :data:`~citus.debug.PREFIX`: its
script and stylesheet, the PIN check, the console's status and the per-frame
console (:mod:`.console`).

:class:`Endpoints` answers them for a :class:`~citus.debug.DebuggedApplication`,
after the checks of its :class:`~.guard.Guard`: a trusted ``Host``, a
same-origin request, a POST body with the page's secret, and, for the console,
the cookie an unlocked browser holds. docs/debugger.md documents the wire
protocol.
"""

from __future__ import annotations

import contextvars
import hmac
import typing as t
from importlib import resources

from ._http import PREFIX, SECURITY_HEADERS, read_form, reply, utf8
from .console import Console
from .guard import TOKEN_LIFETIME, lockout_message
from .page import render_console_page
from .tbtools import Traceback

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from . import DebuggedApplication

#: The package whose ``shared/`` folder holds the page's assets.
_PACKAGE = __name__.rpartition(".")[0]
#: The assets served, by name, with their types.
_ASSETS = {
    "debugger.css": "text/css; charset=utf-8",
    "debugger.js": "text/javascript; charset=utf-8",
}
_HTML = "text/html; charset=utf-8"


class Endpoints:
    """Answers the requests under ``PREFIX`` for ``debugged``.

    :param debugged: the middleware whose PIN, secret and tracebacks are used.
    """

    def __init__(self, debugged: DebuggedApplication) -> None:
        self.debugged = debugged
        self._standalone: Console | None = None

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse, sub: str
    ) -> list[bytes]:
        """Answer a request for ``PREFIX + sub``."""
        debugged = self.debugged
        guard = debugged.guard
        method = environ.get("REQUEST_METHOD", "GET")
        if not guard.host_trusted(environ):
            return reply(
                start_response,
                "400 BAD REQUEST",
                {"error": "The debugger does not answer requests for this Host."},
            )
        if not guard.same_origin(environ):
            return reply(
                start_response,
                "403 FORBIDDEN",
                {"error": "The debugger answers only requests from its own pages."},
            )
        if sub.startswith("/shared/"):
            if method not in ("GET", "HEAD"):
                return reply(start_response, "405 METHOD NOT ALLOWED", {}, "GET")
            return self._asset(start_response, sub[len("/shared/") :])
        if sub == "/console" and method in ("GET", "HEAD") and debugged.console_page:
            page = render_console_page(
                prefix=environ.get("SCRIPT_NAME", "").rstrip("/") + PREFIX,
                secret=debugged.secret,
                console_reason=guard.console_reason(environ, debugged.evalex),
            )
            start_response("200 OK", [("Content-Type", _HTML), *SECURITY_HEADERS])
            return [utf8(page)]
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
        if not hmac.compare_digest(form.get("s", ""), debugged.secret):
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
        data = resources.files(_PACKAGE).joinpath("shared").joinpath(name).read_bytes()
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
        guard = self.debugged.guard
        until = guard.lockout_until() if guard.pin is not None else 0.0
        return reply(
            start_response,
            "200 OK",
            {
                "unlocked": reason is None and guard.authenticated(environ),
                "pin_required": guard.pin is not None,
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
        guard = self.debugged.guard
        if guard.pin is None:
            return reply(start_response, "200 OK", {"ok": True})
        outcome, value = guard.try_pin(
            form.get("pin", ""), environ.get("REMOTE_ADDR", "?")
        )
        if outcome == "ok":
            cookie = (
                f"{guard.cookie_name}={value}; Path="
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
            {"ok": False, "locked_out": True, "error": lockout_message(value)},
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
        if not self.debugged.guard.authenticated(environ):
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
            if not self.debugged.console_page:
                return "The standalone console is off."
            with self.debugged.lock:
                if self._standalone is None:
                    namespace = {"__name__": "__console__", "app": self.debugged.app}
                    self._standalone = Console(namespace)
                return self._standalone
        with self.debugged.lock:
            tb = self.debugged.tracebacks.get(tb_id)
            if tb is None:
                return (
                    f"This traceback is no longer kept (only the last"
                    f" {self.debugged.max_tracebacks} are, and none survive a reload);"
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

    def _console_reason(self, environ: WSGIEnvironment) -> str | None:
        return self.debugged.guard.console_reason(environ, self.debugged.evalex)


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


__all__ = ["Endpoints"]
