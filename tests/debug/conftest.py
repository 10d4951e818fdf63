"""Fixtures for the debugger's tests: a tiny in-process WSGI caller and apps.

The caller speaks WSGI directly, the way a server would, so tests can forge
any header (Host, Origin, Cookie) or peer address an attacker could send.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import typing as t
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest

from citus.debug import PREFIX, DebuggedApplication

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@dataclass
class Result:
    """One response: status code, headers and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    exc_info: t.Any = None

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> t.Any:
        return json.loads(self.body)


@dataclass
class Caller:
    """Calls a WSGI app in process; keeps cookies the app sets, like a browser."""

    app: WSGIApplication
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        remote_addr: str = "127.0.0.1",
        host: str = "localhost:8000",
        scheme: str = "http",
    ) -> Result:
        path, _, query = path.partition("?")
        environ: dict[str, t.Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": remote_addr,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "HTTP_HOST": host,
        }
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            else:
                environ["HTTP_" + key] = value
        if self.cookies and "HTTP_COOKIE" not in environ:
            environ["HTTP_COOKIE"] = "; ".join(
                f"{k}={v}" for k, v in self.cookies.items()
            )
        return call(self.app, environ, self.cookies)

    def get(self, path: str, **kwargs: t.Any) -> Result:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, fields: dict[str, str], **kwargs: t.Any) -> Result:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        headers.update(kwargs.pop("headers", {}))
        body = urlencode(fields).encode()
        return self.request("POST", path, headers=headers, body=body, **kwargs)


def call(
    app: WSGIApplication, environ: WSGIEnvironment, jar: dict[str, str] | None = None
) -> Result:
    """Run ``app`` on ``environ`` and collect the response."""
    state: dict[str, t.Any] = {}

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
    ) -> t.Callable[[bytes], object]:
        if exc_info is not None and state.get("sent"):
            raise exc_info[1].with_traceback(exc_info[2])
        state["status"] = status
        state["headers"] = headers
        state["exc_info"] = exc_info
        return lambda data: None

    chunks = []
    iterable = app(environ, start_response)
    try:
        for chunk in iterable:
            if chunk:
                state["sent"] = True
            chunks.append(chunk)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    result = Result(
        int(state["status"].split()[0]),
        state["headers"],
        b"".join(chunks),
        state.get("exc_info"),
    )
    if jar is not None:
        for key, value in result.headers:
            if key.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                jar[name] = rest.split(";", 1)[0]
    return result


def page_secret(html: str) -> str:
    """The secret that the error page embeds for its console requests."""
    match = re.search(r'data-secret="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def page_traceback(html: str) -> str:
    match = re.search(r'data-traceback="([^"]+)"', html)
    assert match
    return match.group(1)


class Boom(Exception):
    """Raised by the failing test view."""


def failing_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """A WSGI app whose every request fails, with locals worth looking at."""
    answer = 42
    password = "hunter2-very-secret"
    api_key = "ak-0123456789"
    label = "<script>alert('x')</script>"
    path = environ.get("PATH_INFO", "")
    if path == "/ok":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fine"]
    raise Boom(f"failed at {label} answer={answer} {len(password) + len(api_key)}")


@pytest.fixture
def isolated_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts without inherited debugger state or PIN, and keeps its
    state files in its own temporary folder (not the user's shared one)."""
    state_tmp = tmp_path / "tmp"
    state_tmp.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(state_tmp))
    monkeypatch.delenv("CITUS_DEBUGGER_STATE", raising=False)
    monkeypatch.delenv("CITUS_DEBUGGER_PIN", raising=False)
    monkeypatch.delenv("CITUS_DEBUGGER_TRUSTED_HOSTS", raising=False)


@pytest.fixture
def debugged(isolated_state: None) -> DebuggedApplication:
    return DebuggedApplication(failing_app, evalex=True)


@pytest.fixture
def client(debugged: DebuggedApplication) -> Caller:
    return Caller(debugged)


def unlock(client: Caller, app: DebuggedApplication, secret: str) -> Result:
    """Enter the right PIN the way the page does."""
    assert app.pin is not None
    return client.post_form(PREFIX + "/pin", {"s": secret, "pin": app.pin})
