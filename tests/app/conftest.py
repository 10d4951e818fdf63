"""Fixtures for the framework tests: the example apps, and real servers
(citus's own ``make_server``) in a thread."""

from __future__ import annotations

import http.client
import importlib.util
import sys
import threading
import typing as t
import uuid
from pathlib import Path

import pytest

from citus.serving import make_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEADLINE = 10.0


def load_example(relative: str) -> t.Any:
    """Import ``examples/<relative>`` afresh, as its own module (new state)."""
    path = EXAMPLES / relative
    name = f"citus_example_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


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
