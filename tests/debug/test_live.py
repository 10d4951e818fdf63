"""The debugger behind the real server, over real sockets."""

from __future__ import annotations

import http.client
import logging
import os
import socket
import threading
import time
import typing as t
from pathlib import Path
from urllib.parse import urlencode

import pytest

from citus.debug import PREFIX, DebuggedApplication
from citus.serving import make_server

from .conftest import BROWSER_ACCEPT, failing_app, page_secret

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from conftest import CitusProcess

pytestmark = pytest.mark.live_server


class Served:
    """A real server in a thread; ``request()`` opens a fresh connection."""

    def __init__(self, app: WSGIApplication) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes, http.client.HTTPConnection]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        all_headers = {"Host": f"localhost:{self.port}", **(headers or {})}
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        try:
            data = response.read()
        finally:
            conn.close()
        return response, data, conn

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


@pytest.fixture
def served(isolated_state: None) -> t.Iterator[tuple[Served, DebuggedApplication]]:
    debugged = DebuggedApplication(streaming_or_failing)
    server = Served(debugged)
    try:
        yield server, debugged
    finally:
        server.close()


def streaming_or_failing(
    environ: WSGIEnvironment, start_response: StartResponse
) -> t.Iterable[bytes]:
    if environ["PATH_INFO"] == "/stream":
        return _stream(start_response)
    if environ["PATH_INFO"] == "/late":
        return _late(start_response)
    return failing_app(environ, start_response)


def _stream(start_response: StartResponse) -> t.Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"part one\n"
    raise RuntimeError("failed in the middle of the body")


def _late(start_response: StartResponse) -> t.Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Partial", "1")])
    yield b""
    raise RuntimeError("failed before the first byte of the body")


def test_error_after_start_response_but_before_the_body(
    served: tuple[Served, DebuggedApplication],
) -> None:
    server, _ = served
    response, body, _ = server.request("GET", "/late", headers={"Accept": "*/*"})
    assert response.status == 500
    assert response.getheader("X-Partial") is None
    assert b"failed before the first byte of the body" in body


def test_page_pin_and_console_over_http(
    served: tuple[Served, DebuggedApplication],
) -> None:
    server, debugged = served
    response, body, _ = server.request(
        "GET", "/boom", headers={"Accept": BROWSER_ACCEPT}
    )
    assert response.status == 500
    assert "script-src 'self'" in (response.getheader("Content-Security-Policy") or "")
    html = body.decode()
    secret = page_secret(html)
    tb = html.split('data-traceback="', 1)[1].split('"', 1)[0]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response, body, _ = server.request(
        "POST",
        PREFIX + "/pin",
        urlencode({"s": secret, "pin": debugged.pin or ""}).encode(),
        form,
    )
    assert response.status == 200, body
    cookie = (response.getheader("Set-Cookie") or "").split(";", 1)[0]
    response, body, _ = server.request(
        "POST",
        PREFIX + "/eval",
        urlencode({"s": secret, "tb": tb, "frame": "1", "cmd": "answer"}).encode(),
        {**form, "Cookie": cookie},
    )
    assert response.status == 200
    assert b'"output": "42\\n"' in body


def test_curl_gets_text_and_foreign_host_gets_400(
    served: tuple[Served, DebuggedApplication],
) -> None:
    server, _ = served
    response, body, _ = server.request("GET", "/boom", headers={"Accept": "*/*"})
    assert response.status == 500
    assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert body.startswith(b"Traceback (most recent call last)")
    response, _, _ = server.request(
        "GET", PREFIX + "/shared/debugger.js", headers={"Host": "rebound.example"}
    )
    assert response.status == 400


def raw_exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as is over a fresh socket; the status and the raw reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    reply = b"".join(chunks)
    return int(reply.split(b" ", 2)[1]), reply


def test_attacks_over_a_raw_socket(
    served: tuple[Served, DebuggedApplication],
) -> None:
    server, debugged = served
    _, page, _ = server.request("GET", "/boom", headers={"Accept": BROWSER_ACCEPT})
    secret = page_secret(page.decode())
    tb = page.decode().split('data-traceback="', 1)[1].split('"', 1)[0]

    def post(path: str, fields: dict[str, str], *headers: str) -> tuple[int, bytes]:
        body = urlencode(fields).encode()
        head = [
            f"POST {PREFIX}{path} HTTP/1.1",
            "Content-Type: application/x-www-form-urlencoded",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *headers,
        ]
        if not any(h.lower().startswith("host:") for h in headers):
            head.append(f"Host: localhost:{server.port}")
        return raw_exchange(
            server.port, "\r\n".join(head).encode() + b"\r\n\r\n" + body
        )

    pin = {"s": secret, "pin": debugged.pin or ""}
    code = {"s": secret, "tb": tb, "frame": "1", "cmd": "answer"}
    # DNS rebinding: the right PIN, but for a name that is not this machine's.
    for host in ("rebound.example", f"localhost:{server.port}@rebound.example"):
        status, reply = post("/pin", pin, f"Host: {host}")
        assert status == 400 and b"Set-Cookie" not in reply, host
    # A cross-site page posting the right PIN with the browser's headers.
    status, reply = post("/pin", pin, "Origin: http://evil.example")
    assert status == 403 and b"Set-Cookie" not in reply
    status, reply = post("/pin", pin, "Sec-Fetch-Site: cross-site")
    assert status == 403 and b"Set-Cookie" not in reply
    # No secret, then a forged cookie.
    status, _ = post("/pin", {"pin": debugged.pin or ""})
    assert status == 403
    forged = "Cookie: " + "; ".join(
        f"__citus_debugger_{n}=" + "A" * 43 for n in ("x", debugged._cookie_name[17:])
    )
    status, reply = post("/eval", code, forged)
    assert status == 403 and b'"locked": true' in reply
    # The PIN in the URL is refused before anything is read.
    status, _ = raw_exchange(
        server.port,
        f"GET {PREFIX}/pin?s={secret}&pin={debugged.pin} HTTP/1.1\r\n"
        f"Host: localhost:{server.port}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status == 405
    # And the real thing still works.
    status, reply = post("/pin", pin)
    assert status == 200
    cookie = reply.split(b"Set-Cookie: ", 1)[1].split(b";", 1)[0].decode()
    status, reply = post("/eval", code, f"Cookie: {cookie}")
    assert status == 200 and b'"output": "42\\n"' in reply


def test_error_while_streaming_aborts_the_connection(
    served: tuple[Served, DebuggedApplication], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = served
    with caplog.at_level(logging.ERROR, logger="citus"):
        with pytest.raises(http.client.IncompleteRead) as info:
            server.request("GET", "/stream")
    assert info.value.partial == b"part one\n"
    # Logged with its traceback, once (not by both the debugger and the server).
    deadline = time.monotonic() + 5
    while "failed in the middle" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    errors = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert len(errors) == 1, caplog.text
    assert "failed in the middle of the body" in caplog.text


def test_without_debug_mode_nothing_of_the_debugger_exists(
    isolated_state: None,
) -> None:
    server = Served(failing_app)
    try:
        response, body, _ = server.request(
            "GET", "/boom", headers={"Accept": BROWSER_ACCEPT}
        )
        assert response.status == 500
        for leak in (b"failing_app", b"conftest", b"Boom", b"Traceback", b"__citus"):
            assert leak not in body
        response, body, _ = server.request("GET", PREFIX + "/shared/debugger.js")
        assert b"citus debugger" not in body
    finally:
        server.close()


LOUD = """
from citus.serving import run_simple

def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]

run_simple("0.0.0.0", 0, app, use_debugger=True)
"""


def test_start_warnings_are_loud(
    run_python: t.Callable[..., CitusProcess], tmp_path: Path
) -> None:
    # PIN off and reachable from the network: both warnings stand out in red.
    env = {**os.environ, "CITUS_DEBUGGER_PIN": "off", "FORCE_COLOR": "1"}
    env["NO_COLOR"] = ""  # the fixture sets it otherwise; empty means unset
    env["CITUS_DEBUGGER_STATE"] = ""  # its own state, not one this run left
    proc = run_python("-c", LOUD, env=env)
    proc.wait_for_log(r"Debugger is active!")
    proc.wait_for_log(r"WARNING: The debugger is on and the server listens on")
    text = proc.log.text
    assert "\x1b[31mWARNING: The debugger PIN is off (CITUS_DEBUGGER_PIN=off)" in text
    assert (
        "\x1b[31mWARNING: The debugger is on and the server listens on 0.0.0.0" in text
    )
    assert "\x1b[31m * Debugger is active!" not in text
