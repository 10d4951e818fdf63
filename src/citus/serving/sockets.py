"""Binding the listening sockets: TCP (dual-stack ``localhost``), Unix, inherited.

Placeholder: the listening issue replaces this module.
"""

from __future__ import annotations

import os
import socket

#: The environment variable through which the reloader's supervisor hands its
#: bound sockets to the serving child: a comma-separated list of file numbers.
FDS_ENV = "CITUS_SERVER_FDS"


class BindError(OSError):
    """The server could not listen where it was asked to."""

    def explain(self) -> list[str]:
        """The lines to show the user: the OS message, then the way out."""
        return [f"OSError: {self}"]


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind and listen on every address ``host`` stands for."""
    try:
        sock = socket.create_server((host, port), backlog=1024)
    except OSError as error:
        raise BindError(error.errno, error.strerror) from error
    return [sock]


def sockets_from_env() -> list[socket.socket] | None:
    """The sockets handed over by the supervisor, or ``None`` outside a child."""
    value = os.environ.get(FDS_ENV)
    if not value:
        return None
    return [socket.socket(fileno=int(fd)) for fd in value.split(",")]


def describe_urls(sockets: list[socket.socket], scheme: str) -> list[str]:
    """The banner lines (`` * Running on ...``) for ``sockets``."""
    lines = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        if ":" in host:
            host = f"[{host}]"
        lines.append(f" * Running on {scheme}://{host}:{port}")
    return lines
