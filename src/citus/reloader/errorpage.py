"""The page the supervisor serves while no child can: after a crash.

:class:`ErrorServer` accepts on the listening sockets the children share and
answers every request with a 500 until the next change starts a new child. It
is deliberately tiny: one thread accepting, one short-lived thread per
connection, ``Connection: close``.

What the page shows follows the debugger's rules (:mod:`citus.debug`): the end
of the crashed child's error output only in debug mode and only to a request
the debugger trusts (a local ``Host``, same-origin ``Origin`` and
``Sec-Fetch-Site``); anyone else learns only that the app failed to load and
that the terminal has the details. Pages carry a strict Content-Security-Policy
whose only allowance is a per-response nonce for the page's own style.

With live reload on, HTML pages also carry its script (and the policy its
hash), and the event stream's URL gets a stream that stays open until the
next child starts: the page then connects again, and reloads once it is
served by that child.
"""

from __future__ import annotations

import html
import secrets
import select
import socket
import threading
import time
import typing as t

from .._compat import is_unix_socket, make_nonblocking, restore_blocking
from .._log import log_request
from .base import background_thread

if t.TYPE_CHECKING:
    import ssl

#: Decides whether a request (a small WSGI environ) may see the error output;
#: ``None`` when the debugger is off, and then nobody may.
TrustCheck = t.Callable[[dict[str, t.Any]], bool]

#: Largest request head read before answering.
MAX_HEAD = 64 * 1024
#: Seconds a client has to send its whole request head.
HEAD_TIMEOUT = 5.0
#: Seconds a connection handed over at a crash may take to show the bytes of
#: a request already on its way (see :meth:`ErrorServer.adopt`).
ADOPT_WAIT = 0.2

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em}"
    "pre{background:#f6f6f6;padding:1em;overflow:auto}"
)


def _csp(nonce: str | None) -> str:
    style = f"style-src 'nonce-{nonce}'; " if nonce is not None else ""
    return (
        f"default-src 'none'; {style}base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    )


class ErrorPage:
    """What to answer while the server process is down.

    :param tail: the end of the crashed child's error output.
    :param status: how it ended, e.g. ``exit status 1``.
    :param trust: the debugger's check of a request
        (:meth:`citus.debug.DebuggedApplication.trusts_request`), or ``None``
        outside debug mode: then the output is never shown.
    :param live: add live reload's script to HTML pages.
    """

    #: The id live reload's script sees while no child serves.
    LIVE_ID = "down"

    def __init__(
        self, tail: str, status: str, trust: TrustCheck | None, live: bool = False
    ) -> None:
        self.tail = tail or "(the server wrote nothing to standard error)"
        self.status = status
        self.trust = trust
        self.live = live

    def reveals(self, environ: dict[str, t.Any]) -> bool:
        """Whether the request described by ``environ`` may see the output."""
        if self.trust is None:
            return False
        try:
            return bool(self.trust(environ))
        except Exception:  # a bug in the check must not open the page
            return False

    def render(self, environ: dict[str, t.Any]) -> tuple[str, bytes, list[str]]:
        """``(content_type, body, extra_headers)`` for one request."""
        wants_html = "html" in str(environ.get("HTTP_ACCEPT", "")).lower()
        if self.reveals(environ):
            title = f"The development server stopped: {self.status}"
            paragraphs = [
                "citus starts it again as soon as you save a change to one of"
                " the files it watches (those of the traceback included).",
            ]
            detail: str | None = self.tail
        else:
            title = "The application failed to load"
            paragraphs = [
                "The development server is waiting for a fix; the error is in"
                " the terminal where it runs."
            ]
            if self.trust is not None:
                host = str(environ.get("HTTP_HOST", ""))
                paragraphs.append(
                    "Details are shown only to requests for a trusted host from"
                    f" the same origin, and this one was for {host!r}. Set"
                    " CITUS_DEBUGGER_TRUSTED_HOSTS=name if that is how you reach"
                    " this server."
                )
            detail = None
        if not wants_html:
            text = "\n".join([f"{title}.", *paragraphs])
            if detail is not None:
                text += f"\n\n{detail}"
            return "text/plain; charset=utf-8", (text + "\n").encode(), [_csp(None)]
        nonce = secrets.token_urlsafe(16)
        body = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title>"
            f'<style nonce="{nonce}">{_STYLE}</style>'
            f"</head><body><h1>{html.escape(title)}</h1>"
            + "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
            + (f"<pre>{html.escape(detail)}</pre>" if detail is not None else "")
            + self._live_script(environ)
            + "</body></html>\n"
        )
        csp = _csp(nonce)
        if self.live:
            from ..live.inject import allow_script

            csp = allow_script(csp)
        return "text/html; charset=utf-8", body.encode(), [csp]

    def _live_script(self, environ: dict[str, t.Any]) -> str:
        if not self.live:
            return ""
        from ..live import EVENTS
        from ..live.inject import script_tag

        settings = {"url": EVENTS, "id": self.LIVE_ID}
        method = str(environ.get("REQUEST_METHOD", "GET"))
        if method not in ("GET", "HEAD"):
            settings["method"] = method
        return script_tag(settings).decode()


def parse_head(head: bytes) -> tuple[str, dict[str, str]] | None:
    """The request line and a header dict (lower-case names) of a request head,
    or ``None`` when there is no request line.

    A header sent twice keeps no value at all, so that two ``Host`` headers
    are never trusted.
    """
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    request_line = lines[0].decode("latin-1").strip()
    if not request_line:
        return None
    headers: dict[str, str] = {}
    repeated: set[str] = set()
    for raw in lines[1:]:
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        if key in headers:
            repeated.add(key)
        headers[key] = value.strip()
    for key in repeated:
        headers[key] = ""
    return request_line, headers


def request_environ(
    request_line: str, headers: dict[str, str], scheme: str, client: str
) -> dict[str, t.Any]:
    """The part of a WSGI environ the trust check and the page read."""
    environ: dict[str, t.Any] = {
        "REQUEST_METHOD": request_line.split(" ", 1)[0],
        "wsgi.url_scheme": scheme,
        "REMOTE_ADDR": client,
        "HTTP_HOST": headers.get("host", ""),
        "HTTP_ACCEPT": headers.get("accept", ""),
    }
    for name in ("origin", "sec-fetch-site"):
        if name in headers:
            environ["HTTP_" + name.upper().replace("-", "_")] = headers[name]
    return environ


class ErrorServer:
    """Answers every request with a 500 page while no child is serving.

    It accepts on the same listening sockets as the children. Their file status
    flags are shared with the children, so it puts them in non-blocking mode
    only while it runs and restores them before the next child starts.
    Another process may take a connection first (an old child in its grace
    period): the accept that loses the race is simply skipped.
    """

    def __init__(
        self,
        sockets: list[socket.socket],
        page: ErrorPage,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.sockets = sockets
        self.page = page
        self.ssl_context = ssl_context
        self._wake_r, self._wake_w = socket.socketpair()
        self._flags: list[int] = []
        self._thread: threading.Thread | None = None
        self._streams: set[socket.socket] = set()
        self._streams_lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Start answering, in a daemon thread."""
        self._flags = [make_nonblocking(sock) for sock in self.sockets]
        self._thread = background_thread(self._run, name="citus-error-page")

    def stop(self) -> None:
        """Stop accepting and restore the sockets' flags (the sockets stay open)."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        with self._streams_lock:
            self._stopped = True
            streams = list(self._streams)
        for stream in streams:  # open pages connect again, to the next child
            try:
                stream.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for sock, flags in zip(self.sockets, self._flags, strict=False):
            restore_blocking(sock, flags)
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        while True:
            try:
                readable, _, _ = select.select([self._wake_r, *self.sockets], [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in readable:
                return
            for sock in readable:
                try:
                    conn, addr = sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue  # another process took it
                except OSError:
                    # Out of file descriptors, say: the socket stays readable,
                    # so wait a little rather than spin on it.
                    self._wake_r.settimeout(0.1)
                    try:
                        if self._wake_r.recv(1):
                            return
                    except OSError:
                        pass
                    continue
                threading.Thread(
                    target=self._answer, args=(conn, addr), daemon=True
                ).start()

    def adopt(self, socks: list[socket.socket]) -> None:
        """Take connections that a stopping child handed over: answer those
        whose request is on its way, close the idle ones.

        A connection accepted just before the stop is handed over with its
        request unread: closing it would reset that request, so each one
        whose bytes arrive within :data:`ADOPT_WAIT` gets the error page, as
        an accepted connection would. The idle ones (kept alive between two
        requests) are closed, as the child would have closed them: answering
        their next request here could show this page after the fix is saved.
        They are plain connections (TLS ones are never handed over). Returns
        at once; the waiting is done in a thread.
        """
        if socks:
            background_thread(self._adopt, socks, name="citus-error-adopt")

    def _adopt(self, socks: list[socket.socket]) -> None:
        from ..serving._connection import readable_within

        waiting = readable_within(socks, ADOPT_WAIT)
        for conn in socks:
            addr = None
            if conn in waiting:
                try:
                    addr = conn.getpeername()
                except OSError:  # the client is gone already
                    pass
            if addr is None:
                conn.close()
                continue
            threading.Thread(
                target=self._answer, args=(conn, addr, False), daemon=True
            ).start()

    def _answer(self, conn: socket.socket, addr: t.Any, accepted: bool = True) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(HEAD_TIMEOUT)
            if accepted and self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            head = b""
            deadline = time.monotonic() + HEAD_TIMEOUT
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                left = deadline - time.monotonic()
                if left <= 0:
                    return  # a client that trickles its head gets nothing
                conn.settimeout(left)
                chunk = conn.recv(65536)
                if not chunk:
                    break
                head += chunk
            conn.settimeout(HEAD_TIMEOUT)
            parsed = parse_head(head)
            if parsed is None:
                return
            request_line, headers = parsed
            started = time.monotonic()  # the head is complete: the log's duration
            # The client as the server names it (127.0.0.1 for a Unix socket).
            client = _client_address(conn, addr)
            scheme = "https" if self.ssl_context is not None else "http"
            environ = request_environ(request_line, headers, scheme, client)
            if self.page.live and _is_stream(request_line):
                self._stream(conn)
                return
            ctype, body, csp = self.page.render(environ)
            lines = [
                "HTTP/1.1 500 Internal Server Error",
                f"Content-Type: {ctype}",
                f"Content-Length: {len(body)}",
                *(f"Content-Security-Policy: {value}" for value in csp),
                "X-Content-Type-Options: nosniff",
                "X-Frame-Options: DENY",
                "Referrer-Policy: no-referrer",
                "Cache-Control: no-store",
                "Connection: close",
            ]
            header = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
            is_head = environ["REQUEST_METHOD"] == "HEAD"
            conn.sendall(header if is_head else header + body)
            # The server logs '-' for the size; so does this page.
            log_request(client, request_line, 500, None, time.monotonic() - started)
            _close_gently(conn)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def _stream(self, conn: socket.socket) -> None:
        """Hold live reload's event stream open until :meth:`stop`."""
        from ..live.hub import HEAD, event

        with self._streams_lock:
            if self._stopped:
                return
            self._streams.add(conn)
        try:
            conn.sendall(HEAD + event("hello", {"id": ErrorPage.LIVE_ID}))
            conn.settimeout(None)
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            with self._streams_lock:
                self._streams.discard(conn)


def _is_stream(request_line: str) -> bool:
    """Whether the request is for live reload's event stream."""
    from ..live import EVENTS

    parts = request_line.split()
    if len(parts) < 2 or parts[0] != "GET":
        return False
    return parts[1].split("?", 1)[0] == EVENTS


def _client_address(conn: socket.socket, addr: t.Any) -> str:
    from ..serving.wsgi import address_environ

    if is_unix_socket(conn):
        return address_environ(None, None, True)["REMOTE_ADDR"]
    return str(addr[0]) if isinstance(addr, tuple) and addr else "-"


def _close_gently(conn: socket.socket) -> None:
    """End our side so that unread request bytes cannot reset the answer away."""
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1.0)
        while conn.recv(65536):
            pass
    except OSError:
        pass
