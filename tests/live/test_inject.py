"""Which responses get the script, byte for byte, over real sockets.

Every "never touched" case is served twice on port 0, by the app alone and by
the app behind :class:`citus.live.LiveReload`, and the raw bytes of the two
responses must be equal (the ``Date`` header aside).
"""

from __future__ import annotations

import gzip
import re
import socket
import threading
import typing as t
from pathlib import Path

import pytest

from citus.debug import DebuggedApplication
from citus.live import EVENTS, LiveReload, inject
from citus.serving.server import Server

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

pytestmark = pytest.mark.live_server

DEADLINE = 10.0
PAGE = (
    b"<!doctype html><html><head><title>t</title></head><body><p>hi</p></body></html>"
)
HTML = "text/html; charset=utf-8"


def _respond(
    start_response: StartResponse,
    status: str,
    headers: list[tuple[str, str]],
    body: bytes,
    length: bool = True,
) -> list[bytes]:
    if length:
        headers = [*headers, ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def demo(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    """One route per case."""
    path = environ["PATH_INFO"]
    if path == "/json":
        return _respond(
            start_response,
            "200 OK",
            [("Content-Type", "application/json")],
            b'{"html": "<html><body>"}',
        )
    if path == "/fragment":
        return _respond(
            start_response,
            "200 OK",
            [("Content-Type", HTML)],
            b'<div id="row">htmx</div>',
        )
    if path == "/nocontent":
        start_response("204 No Content", [("Content-Type", HTML)])
        return []
    if path == "/notmodified":
        start_response("304 Not Modified", [("Content-Type", HTML), ("ETag", '"x"')])
        return []
    if path == "/gzip":
        return _respond(
            start_response,
            "200 OK",
            [("Content-Type", HTML), ("Content-Encoding", "gzip")],
            gzip.compress(PAGE, mtime=0),
        )
    if path == "/download":
        return _respond(
            start_response,
            "200 OK",
            [
                ("Content-Type", HTML),
                ("Content-Disposition", 'attachment; filename="page.html"'),
            ],
            PAGE,
        )
    if path == "/utf16":
        return _respond(
            start_response,
            "200 OK",
            [("Content-Type", "text/html; charset=utf-16")],
            PAGE.decode().encode("utf-16"),
        )
    if path == "/css":
        return _respond(
            start_response, "200 OK", [("Content-Type", "text/css")], b"body{}"
        )
    if path == "/file":
        wrapper = environ["wsgi.file_wrapper"]
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(PAGE)))],
        )
        return t.cast("t.Iterable[bytes]", wrapper(open(environ["demo.file"], "rb")))
    if path == "/partial":
        part = PAGE[:20]
        return _respond(
            start_response,
            "206 Partial Content",
            [("Content-Type", HTML), ("Content-Range", f"bytes 0-19/{len(PAGE)}")],
            part,
        )
    if path == "/cached":
        headers = [
            ("Content-Type", HTML),
            ("ETag", '"v1"'),
            ("Last-Modified", "Wed, 02 Dec 2026 10:00:00 GMT"),
        ]
        if environ.get("HTTP_IF_NONE_MATCH") == '"v1"':
            start_response("304 Not Modified", headers)
            return []
        return _respond(start_response, "200 OK", headers, PAGE)
    if path == "/no-end-tag":
        return _respond(
            start_response, "200 OK", [("Content-Type", HTML)], b"<html><p>no end"
        )
    if path == "/doctype-only":
        # As Flask's tutorial writes its pages: the optional tags left out.
        return _respond(
            start_response,
            "200 OK",
            [("Content-Type", HTML)],
            b"<!DOCTYPE html>\n<title>Posts</title>\n<section>hi</section>\n",
        )
    if path == "/stream":

        def chunks() -> t.Iterator[bytes]:
            start_response("200 OK", [("Content-Type", HTML)])
            yield b"<!doctype html><html><body><p>one</p>"
            yield b"<p>two</p></body></html>"

        return chunks()
    if path == "/stream-fragment":

        def parts() -> t.Iterator[bytes]:
            start_response("200 OK", [("Content-Type", HTML)])
            yield b"<li>one</li>"
            yield b"<li>two <body></li>"

        return parts()
    if path == "/csp":
        return _respond(
            start_response,
            "200 OK",
            [
                ("Content-Type", HTML),
                ("Content-Security-Policy", "default-src 'none'; style-src 'self'"),
            ],
            PAGE,
        )
    if path == "/meta-csp":
        return _respond(
            start_response,
            "200 OK",
            [("Content-Type", HTML)],
            b'<!doctype html><html><head><meta http-equiv="Content-Security-Policy"'
            b" content=\"default-src 'none'\"></head><body></body></html>",
        )
    if path == "/form":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        return _respond(
            start_response,
            "200 OK",
            [("Content-Type", HTML)],
            b"<html><body>" + body + b"</body></html>",
        )
    if path == "/boom":
        raise ZeroDivisionError("boom")
    return _respond(start_response, "200 OK", [("Content-Type", HTML)], PAGE)


class Served:
    """A server in a thread (port 0) that the test talks to with raw sockets."""

    def __init__(self, app: WSGIApplication, threaded: bool = True) -> None:
        self.server = Server([_listener()], app, threaded=threaded)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port = self.server.port
        assert port is not None
        return port

    def raw(self, request: bytes) -> bytes:
        """Send ``request`` (with ``Connection: close``) and read until close."""
        with socket.create_connection(("127.0.0.1", self.port), DEADLINE) as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(DEADLINE)
        self.server.server_close()


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@pytest.fixture
def pair(tmp_path: Path) -> t.Iterator[tuple[Served, Served]]:
    """The demo app alone, and behind LiveReload."""
    file = tmp_path / "page.html"
    file.write_bytes(PAGE)

    def with_file(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        environ["demo.file"] = str(file)
        return demo(environ, start_response)

    plain = Served(with_file)
    live = Served(LiveReload(with_file))
    try:
        yield plain, live
    finally:
        plain.stop()
        live.stop()


def request(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}"
    )
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def without_date(response: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", response)


def split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return out


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/json"),
        ("GET", "/fragment"),
        ("HEAD", "/"),
        ("GET", "/nocontent"),
        ("GET", "/notmodified"),
        ("GET", "/gzip"),
        ("GET", "/download"),
        ("GET", "/utf16"),
        ("GET", "/css"),
        ("GET", "/file"),
        ("GET", "/stream-fragment"),
        ("GET", "/partial"),
    ],
)
def test_never_touched_byte_for_byte(
    pair: tuple[Served, Served], method: str, path: str
) -> None:
    plain, live = pair
    expected = without_date(plain.raw(request(method, path)))
    got = without_date(live.raw(request(method, path)))
    assert got == expected
    assert b"data-url" not in got


def test_a_document_gets_the_script_before_body_end_and_a_corrected_length(
    pair: tuple[Served, Served],
) -> None:
    _, live = pair
    status, headers, body = split(live.raw(request("GET", "/")))
    assert status == "HTTP/1.1 200 OK"
    assert int(headers["content-length"]) == len(body)
    before, _, script = body.partition(b"<script ")
    assert before == PAGE[: PAGE.index(b"</body>")]
    assert f'data-url="{EVENTS}"'.encode() in script
    assert body.endswith(b"</script></body></html>")
    assert inject.SCRIPT.encode() in body


def test_a_document_without_body_end_gets_it_at_the_end(
    pair: tuple[Served, Served],
) -> None:
    _, live = pair
    _, headers, body = split(live.raw(request("GET", "/no-end-tag")))
    assert body.startswith(b"<html><p>no end<script ")
    assert body.endswith(b"</script>")
    assert int(headers["content-length"]) == len(body)


def test_a_document_with_only_a_doctype_is_a_document(
    pair: tuple[Served, Served],
) -> None:
    """HTML leaves ``<html>`` and ``<body>`` out as it likes (Flask's tutorial
    app does): ``<!doctype html>`` makes a full document too."""
    _, live = pair
    _, headers, body = split(live.raw(request("GET", "/doctype-only")))
    assert body.startswith(b"<!DOCTYPE html>\n<title>Posts</title>\n<section>hi")
    assert body.endswith(b"</script>")
    assert int(headers["content-length"]) == len(body)


def test_a_streamed_document_gets_the_script_after_its_last_chunk(
    pair: tuple[Served, Served],
) -> None:
    plain, live = pair
    _, plain_headers, plain_body = split(plain.raw(request("GET", "/stream")))
    _, headers, body = split(live.raw(request("GET", "/stream")))
    assert (
        headers["transfer-encoding"] == plain_headers["transfer-encoding"] == "chunked"
    )
    original = dechunk(plain_body)
    streamed = dechunk(body)
    assert streamed.startswith(original + b"<script ")
    assert streamed.endswith(b"</script>")


def test_a_strict_policy_gains_only_the_hash_and_self_for_the_stream(
    pair: tuple[Served, Served],
) -> None:
    _, live = pair
    _, headers, body = split(live.raw(request("GET", "/csp")))
    policy = headers["content-security-policy"]
    assert policy == (
        f"default-src 'none'; style-src 'self'; script-src {inject.SCRIPT_HASH};"
        " connect-src 'self'"
    )
    assert b"<script " in body


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # Nothing governs scripts or connections: nothing to add.
        ("img-src 'self'", "img-src 'self'"),
        (
            "script-src 'self' 'nonce-abc'; connect-src https://api.test",
            "script-src 'self' 'nonce-abc' {h}; connect-src https://api.test 'self'",
        ),
        ("script-src 'none'; connect-src 'none'", "script-src {h}; connect-src 'self'"),
        # Inline scripts run already: a hash would turn 'unsafe-inline' off.
        (
            "script-src 'unsafe-inline'; connect-src *",
            "script-src 'unsafe-inline'; connect-src *",
        ),
        (
            "script-src 'unsafe-inline' 'nonce-x'",
            "script-src 'unsafe-inline' 'nonce-x' {h}",
        ),
        (
            "script-src-elem 'self'; script-src 'self'",
            "script-src-elem 'self' {h}; script-src 'self'",
        ),
        (
            "default-src 'self'",
            "default-src 'self'; script-src 'self' {h}; connect-src 'self'",
        ),
        (
            "script-src 'strict-dynamic' 'nonce-q'; connect-src 'self'",
            "script-src 'strict-dynamic' 'nonce-q' {h}; connect-src 'self'",
        ),
        # Two policies in one header (commas): each is enforced, each changed.
        (
            "default-src 'self', script-src 'none'",
            "default-src 'self'; script-src 'self' {h}; connect-src 'self',"
            " script-src {h}",
        ),
        (
            "img-src 'self',script-src 'self'",
            "img-src 'self',script-src 'self' {h}",
        ),
    ],
)
def test_policies(policy: str, expected: str) -> None:
    assert inject.allow_script(policy) == expected.format(h=inject.SCRIPT_HASH)


@pytest.mark.parametrize(
    ("method", "status", "headers", "ok"),
    [
        ("GET", "200 OK", [("Content-Type", "text/html")], True),
        (
            "POST",
            "500 Internal Server Error",
            [("content-type", "TEXT/HTML; charset=utf-8")],
            True,
        ),
        ("HEAD", "200 OK", [("Content-Type", "text/html")], False),
        ("GET", "101 Switching Protocols", [("Content-Type", "text/html")], False),
        ("GET", "103 Early Hints", [("Content-Type", "text/html")], False),
        ("GET", "204 No Content", [("Content-Type", "text/html")], False),
        ("GET", "304 Not Modified", [("Content-Type", "text/html")], False),
        ("GET", "200 OK", [("Content-Type", "application/xhtml+xml")], False),
        ("GET", "200 OK", [], False),
        (
            "GET",
            "200 OK",
            [("Content-Type", "text/html"), ("Content-Encoding", "br")],
            False,
        ),
        (
            "GET",
            "200 OK",
            [("Content-Type", "text/html"), ("Content-Disposition", "inline")],
            True,
        ),
        (
            "GET",
            "200 OK",
            [("Content-Type", "text/html"), ("Content-Disposition", "Attachment")],
            False,
        ),
    ],
)
def test_eligible(
    method: str, status: str, headers: list[tuple[str, str]], ok: bool
) -> None:
    assert inject.eligible(method, status, headers) is ok


def test_a_post_page_keeps_the_method_and_body_to_repeat(
    pair: tuple[Served, Served],
) -> None:
    _, live = pair
    body = b"name=Ada&note=%3Cb%3E"
    headers = "Content-Type: application/x-www-form-urlencoded\r\n"
    _, _, page = split(live.raw(request("POST", "/form", body, headers)))
    assert page.startswith(b"<html><body>" + body)  # the app still read its body
    assert b'data-method="POST"' in page
    assert b'data-body="bmFtZT1BZGEmbm90ZT0lM0NiJTNF"' in page
    assert b'data-type="application/x-www-form-urlencoded"' in page


def test_the_debugger_page_carries_the_script_and_its_policy_allows_it(
    tmp_path: Path,
) -> None:
    served = Served(LiveReload(DebuggedApplication(demo)))
    try:
        response = served.raw(request("GET", "/boom", headers="Accept: text/html\r\n"))
    finally:
        served.stop()
    status, headers, body = split(response)
    assert status.startswith("HTTP/1.1 500")
    assert b"ZeroDivisionError" in body
    page = dechunk(body)  # the debugger streams its page: script at the end
    assert page.count(b"data-url=") == 1
    assert page.endswith(b"</script>")
    policy = headers["content-security-policy"]
    assert inject.SCRIPT_HASH in policy
    assert "connect-src 'self'" in policy
    assert "default-src 'none'" in policy  # nothing else loosened


def test_a_changed_document_drops_its_validators(pair: tuple[Served, Served]) -> None:
    """Else a reload would revalidate, get a 304 and show the cached copy,
    whose script names the old process: a reload loop."""
    plain, live = pair
    _, headers, _ = split(plain.raw(request("GET", "/cached")))
    assert headers["etag"] == '"v1"'
    _, headers, body = split(live.raw(request("GET", "/cached")))
    assert "etag" not in headers and "last-modified" not in headers
    assert b"<script " in body


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (
            '<meta http-equiv="Content-Security-Policy"'
            ' content="default-src &#39;self&#39;">',
            '<meta http-equiv="Content-Security-Policy" content="default-src'
            " 'self'; script-src 'self' {h}; connect-src 'self'\">",
        ),
        (
            "<META HTTP-EQUIV='content-security-policy' CONTENT='script-src"
            " &#39;none&#39;'>",
            "<META HTTP-EQUIV='content-security-policy' CONTENT='script-src {hq}'>",
        ),
        (
            "<meta content=\"script-src 'self'\" http-equiv=Content-Security-Policy />",
            "<meta content=\"script-src 'self' {h}\""
            " http-equiv=Content-Security-Policy />",
        ),
        (
            "<meta http-equiv=Content-Security-Policy content=script-src>",
            '<meta http-equiv=Content-Security-Policy content="script-src {h}">',
        ),
        # Not a policy, or nothing to add: the same bytes.
        ("<meta name=description content=\"script-src 'self'\">", None),
        ("<meta http-equiv=refresh content=5>", None),
        ("<meta http-equiv=Content-Security-Policy content=\"img-src 'self'\">", None),
    ],
)
def test_a_policy_in_a_meta_tag(tag: str, expected: str | None) -> None:
    body = f"<!doctype html><html><head>{tag}</head><body></body></html>"
    changed = inject.allow_in_meta(body.encode()).decode()
    if expected is None:
        assert changed == body
        return
    h = inject.SCRIPT_HASH
    assert changed == body.replace(
        tag, expected.format(h=h, hq=h.replace("'", "&#39;"))
    )


def test_a_page_with_a_meta_policy_gets_it_allowed(
    pair: tuple[Served, Served],
) -> None:
    _, live = pair
    _, headers, body = split(live.raw(request("GET", "/meta-csp")))
    assert f"script-src {inject.SCRIPT_HASH}; connect-src 'self'".encode() in body
    assert int(headers["content-length"]) == len(body)
