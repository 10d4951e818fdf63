"""Fixtures for the framework tests: the example apps, and real servers
(citus's own ``make_server``) in a thread."""

from __future__ import annotations

import http.client
import threading
import typing as t

import pytest
from appkit import load_example  # type: ignore[import-not-found]

from citus.serving import make_server

DEADLINE = 10.0


@pytest.fixture
def notes() -> t.Any:
    """A fresh ``examples/notes/app.py`` module (its ``app`` and empty notes)."""
    return load_example("notes/app.py")


class LiveServer:
    """A citus server for ``app`` on 127.0.0.1, port 0, in a thread."""

    def __init__(self, app: t.Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a fresh connection: ``(status, headers, body)``."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=DEADLINE
        )
        try:
            connection.request(method, target, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "serve_forever did not return"
        self.server.server_close()


@pytest.fixture
def live_server() -> t.Iterator[t.Callable[[t.Any], LiveServer]]:
    """Start real servers for apps; all are stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(app: t.Any) -> LiveServer:
        server = LiveServer(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
