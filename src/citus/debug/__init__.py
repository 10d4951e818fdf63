"""The interactive debugger (placeholder until the debugger issue lands)."""

from __future__ import annotations

import socket
import typing as t

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class DebuggedApplication:
    """WSGI middleware that shows unhandled exceptions (placeholder)."""

    def __init__(self, app: WSGIApplication, evalex: bool = True) -> None:
        raise NotImplementedError("the debugger is not available yet")

    def banner_lines(self, sockets: list[socket.socket]) -> list[str]:
        """Lines for the start-up banner (`` * Debugger PIN: ...``)."""
        return []

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        raise NotImplementedError
