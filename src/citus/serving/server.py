"""The accept loop: connections, worker threads or processes, and shutdown.

Placeholder: the server-core issue replaces this module.
"""

from __future__ import annotations

import socket
import ssl
import typing as t

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class Server:
    """Serves a WSGI application on already-bound listening sockets."""

    def __init__(
        self,
        sockets: list[socket.socket],
        app: WSGIApplication,
        *,
        threaded: bool = False,
        processes: int = 1,
        ssl_context: ssl.SSLContext | None = None,
        passthrough_errors: bool = False,
    ) -> None:
        self.sockets = sockets
        self.app = app

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` is called."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever`, from any thread."""
        raise NotImplementedError

    def server_close(self) -> None:
        """Close the listening sockets."""
        for sock in self.sockets:
            sock.close()


def make_server(
    host: str,
    port: int,
    app: WSGIApplication,
    threaded: bool = False,
    processes: int = 1,
    ssl_context: ssl.SSLContext | tuple[str, str] | str | None = None,
) -> Server:
    """Bind ``host:port`` and return a :class:`Server` for ``app``."""
    raise NotImplementedError
