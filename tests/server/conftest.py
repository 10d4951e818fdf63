"""Fixtures for the server-core tests: a real server in a thread."""

from __future__ import annotations

import socket
import typing as t

import pytest
from serverkit import Running

from citus.serving.server import Server

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


@pytest.fixture
def serve() -> t.Iterator[t.Callable[..., Running]]:
    """Start ``Server(app, **options)`` on 127.0.0.1, port 0, in a thread."""
    running: list[Running] = []

    def start(app: WSGIApplication, **options: t.Any) -> Running:
        sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
        server = Server([sock], app, **options)
        run = Running(server)
        running.append(run)
        return run

    yield start
    for run in running:
        run.stop()
