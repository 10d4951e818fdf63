"""The page the supervisor serves while no child can: after a crash.

:class:`ErrorServer` accepts on the listening sockets the children share and
answers every request with a 500 that shows the end of the crashed child's
error output (HTML for browsers, plain text for the rest), until the next
change starts a new child. It is deliberately tiny: one thread accepting, one
short-lived thread per connection, ``Connection: close``.
"""

from __future__ import annotations

import html
import os
import select
import socket
import sys
import threading
import typing as t

from .._log import log_request

if t.TYPE_CHECKING:
    import ssl


def error_page(tail: str, status: str) -> t.Callable[[bool], bytes]:
    """The body to answer with, as HTML (``page(True)``) or plain text.

    :param tail: the end of the crashed child's error output.
    :param status: how it ended, e.g. ``exit status 1``.
    """
    tail = tail or "(the server wrote nothing to standard error)"
    title = f"The development server stopped: {status}"
    advice = (
        "citus starts it again as soon as you save a change to one of the"
        " files it watches (those of the traceback included)."
    )

    def page(wants_html: bool) -> bytes:
        if not wants_html:
            return f"{title}.\n{advice}\n\n{tail}\n".encode()
        return (
            "<!doctype html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em}"
            "pre{background:#f6f6f6;padding:1em;overflow:auto}</style>"
            f"</head><body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(advice)}</p><pre>{html.escape(tail)}</pre>"
            "</body></html>\n"
        ).encode()

    return page


class ErrorServer:
    """Answers every request with a 500 page while no child is serving.

    It accepts on the same listening sockets as the children. Their file status
    flags are shared with the children, so it puts them in non-blocking mode
    only while it runs and restores them before the next child starts.
    """

    def __init__(
        self,
        sockets: list[socket.socket],
        page: t.Callable[[bool], bytes],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.sockets = sockets
        self.page = page
        self.ssl_context = ssl_context
        self._wake_r, self._wake_w = socket.socketpair()
        self._flags: list[int] = []
        self._thread = threading.Thread(
            target=self._run, name="citus-error-page", daemon=True
        )

    def start(self) -> None:
        """Start answering, in a daemon thread."""
        self._flags = [_set_nonblocking(sock) for sock in self.sockets]
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and restore the sockets' flags (the sockets stay open)."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(5)
        for sock, flags in zip(self.sockets, self._flags, strict=False):
            _restore_flags(sock, flags)
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
                    continue
                except OSError:
                    continue
                threading.Thread(
                    target=self._answer, args=(conn, addr), daemon=True
                ).start()

    def _answer(self, conn: socket.socket, addr: t.Any) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(5)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                head += chunk
            lines = head.split(b"\r\n")
            request_line = lines[0].decode("latin-1", "replace")
            wants_html = any(
                line.lower().startswith(b"accept:") and b"html" in line.lower()
                for line in lines[1:]
            )
            body = self.page(wants_html)
            ctype = "text/html" if wants_html else "text/plain"
            header = (
                "HTTP/1.1 500 Internal Server Error\r\n"
                f"Content-Type: {ctype}; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            ).encode("ascii")
            is_head = request_line.startswith("HEAD ")
            conn.sendall(header if is_head else header + body)
            client = addr[0] if isinstance(addr, tuple) else str(addr or "-")
            log_request(client, request_line, 500, len(body))
        except (OSError, ValueError):
            pass
        finally:
            conn.close()


if sys.platform == "win32":

    def _set_nonblocking(sock: socket.socket) -> int:
        sock.setblocking(False)
        return 0

    def _restore_flags(sock: socket.socket, flags: int) -> None:
        sock.setblocking(True)

else:
    import fcntl

    def _set_nonblocking(sock: socket.socket) -> int:
        flags = fcntl.fcntl(sock.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(sock.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
        return flags

    def _restore_flags(sock: socket.socket, flags: int) -> None:
        try:
            fcntl.fcntl(sock.fileno(), fcntl.F_SETFL, flags)
        except OSError:
            pass
