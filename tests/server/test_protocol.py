"""HTTP/1.1 over raw sockets: keep-alive, pipelining, bodies, framing, environ."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import typing as t

import pytest
from serverkit import is_closed, read_all, read_response, statuses

pytestmark = pytest.mark.live_server


def path_app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode("latin-1")]


def echo_body(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode() + b":" + body]


def ignore_body(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    start_response("200 OK", [])
    return [environ["PATH_INFO"].encode()]


def streaming(environ: dict[str, t.Any], start_response: t.Any) -> t.Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one,"
    yield b""
    yield b"two"


def test_keep_alive_serves_several_requests_on_one_connection(serve: t.Any) -> None:
    run = serve(path_app)
    with run.connect() as sock:
        for path in ("/a", "/b", "/c"):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, body = read_response(sock)
            assert (status, body) == (200, path.encode())
            assert "connection" not in headers
        sock.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = read_response(sock)
        assert headers["connection"] == "close"
        assert is_closed(sock)


def test_http10_closes_unless_asked_to_keep_alive(serve: t.Any) -> None:
    run = serve(path_app)
    with run.connect() as sock:
        sock.sendall(b"GET /ten HTTP/1.0\r\n\r\n")
        status, headers, body = read_response(sock)
        assert body == b"/ten"
        assert is_closed(sock)
    with run.connect() as sock:
        sock.sendall(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body = read_response(sock)
        assert headers["connection"] == "keep-alive"
        sock.sendall(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert read_response(sock)[2] == b"/again"


@pytest.mark.parametrize("threaded", [False, True])
def test_pipelined_requests_are_answered_in_order(serve: t.Any, threaded: bool) -> None:
    run = serve(echo_body, threaded=threaded)
    requests = b"".join(
        f"POST /{i} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(str(i))}\r\n\r\n{i}".encode()
        for i in range(20)
    )
    with run.connect() as sock:
        sock.sendall(
            requests + b"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = read_all(sock)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
    expected = [f"/{i}:{i}".encode() for i in range(20)] + [b"/end:"]
    assert bodies == expected


def test_unread_body_is_drained_before_the_next_request(serve: t.Any) -> None:
    run = serve(ignore_body)
    body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" * 100
    with run.connect() as sock:
        sock.sendall(
            b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b"
            % (len(body), body)
        )
        sock.sendall(b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_all(sock)
    assert statuses(data) == [200, 200]
    assert data.endswith(b"/second")
    assert b"/smuggled" not in data


def test_unread_chunked_body_is_drained(serve: t.Any) -> None:
    run = serve(ignore_body)
    with run.connect() as sock:
        sock.sendall(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
            b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = read_all(sock)
    assert statuses(data) == [200, 200]
    assert data.endswith(b"/next")


def test_huge_unread_body_closes_the_connection(serve: t.Any) -> None:
    run = serve(ignore_body)
    with run.connect() as sock:
        sock.sendall(
            b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nxxxx"
        )
        status, headers, body = read_response(sock)
        assert status == 200
        assert headers["connection"] == "close"
        assert is_closed(sock)


def test_input_never_reads_past_the_body(serve: t.Any) -> None:
    seen = []

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        seen.append((stream.read(1000), stream.read(10), stream.readline()))
        start_response("200 OK", [])
        return [b"ok"]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert statuses(read_all(sock)) == [200, 200]
    assert seen[0] == (b"hello", b"", b"")
    assert seen[1] == (b"", b"", b"")


def test_chunked_request_body_and_input_terminated(serve: t.Any) -> None:
    seen = {}

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        seen["lines"] = list(environ["wsgi.input"])
        seen["terminated"] = environ["wsgi.input_terminated"]
        seen["length"] = environ.get("CONTENT_LENGTH")
        start_response("200 OK", [])
        return [b"ok"]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
            b"4\r\nab\nc\r\n3;x=y\r\nde\n\r\n1\r\nf\r\n0\r\n\r\n"
        )
        assert statuses(read_all(sock)) == [200]
    assert seen == {
        "lines": [b"ab\n", b"cde\n", b"f"],
        "terminated": True,
        "length": None,
    }


def test_expect_100_continue_is_sent_when_the_app_reads(serve: t.Any) -> None:
    run = serve(echo_body)
    with run.connect() as sock:
        sock.sendall(
            b"PUT /e HTTP/1.1\r\nHost: x\r\n"
            b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        )
        status, _, rest = read_response(sock, head_only=True)
        assert status == 100
        sock.sendall(b"data")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"/e:data")


def test_expect_100_continue_not_sent_when_the_app_does_not_read(
    serve: t.Any,
) -> None:
    run = serve(ignore_body)
    with run.connect() as sock:
        sock.sendall(
            b"PUT /e HTTP/1.1\r\nHost: x\r\n"
            b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        )
        data = read_all(sock)
    assert statuses(data) == [200]
    assert b"100 Continue" not in data
    assert b"Connection: close" in data


def test_response_framing(serve: t.Any) -> None:
    run = serve(streaming)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
        assert headers["transfer-encoding"] == "chunked"
        assert body == b"one,two"
        assert headers["server"].startswith("citus/")
        assert headers["date"].endswith(" GMT")
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, rest = read_response(sock, head_only=True)
        assert status == 200 and rest == b""
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = read_all(sock)
    assert b"Transfer-Encoding" not in data
    assert data.endswith(b"\r\n\r\none,two")


def test_head_sends_no_body_but_the_length(serve: t.Any) -> None:
    run = serve(path_app)
    with run.connect() as sock:
        sock.sendall(
            b"HEAD /abc HTTP/1.1\r\nHost: x\r\n"
            b"\r\nGET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = read_all(sock)
    head, second = data.split(b"HTTP/1.1 200 OK", 2)[1:]
    assert b"Content-Length: 4" in head and head.endswith(b"\r\n\r\n")
    assert second.endswith(b"\r\n\r\n/x")


def test_head_with_an_empty_body_claims_no_length(serve: t.Any) -> None:
    """An app (a framework) that drops the body of a HEAD response gives no
    length: a Content-Length: 0 would contradict the GET response's."""

    def app(environ: dict[str, t.Any], start_response: t.Any) -> t.Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["REQUEST_METHOD"] == "HEAD":
            return []
        return iter([b"streamed ", b"body"])

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, rest = read_response(sock, head_only=True)
        assert status == 200 and rest == b""
        assert "content-length" not in headers
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
    assert headers["transfer-encoding"] == "chunked" and body == b"streamed body"


def test_file_wrapper_sends_the_file(serve: t.Any, tmp_path: t.Any) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(bytes(range(256)) * 1000)
    closed = []

    def app(environ: dict[str, t.Any], start_response: t.Any) -> t.Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        handle = open(target, "rb")
        handle.seek(10)
        wrapper = environ["wsgi.file_wrapper"](handle)
        original = wrapper.close

        def close() -> None:
            closed.append(True)
            original()

        wrapper.close = close
        return wrapper

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
    assert body == target.read_bytes()[10:]
    assert headers["content-length"] == str(256000 - 10)
    # close() comes right after the last byte is sent: maybe after we read it.
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed == [True]


def test_environ(serve: t.Any) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        keep = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int))}
        keep["wsgi.version"] = list(environ["wsgi.version"])
        start_response("200 OK", [])
        return [json.dumps(keep).encode()]

    run = serve(app, threaded=True)
    with run.connect() as sock:
        sock.sendall(
            b"POST /caf%C3%A9/a%2Fb?x=%20y&z HTTP/1.1\r\nHost: example.com:8080\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 2\r\nX-Custom: 1\r\n"
            b"X-Custom: 2\r\nX_Custom: spoof\r\nCookie: a=1\r\nCookie: b=2\r\n"
            b"Connection: close\r\n\r\nhi"
        )
        client_port = sock.getsockname()[1]
        env = json.loads(read_response(sock)[2])
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/cafÃ©/a/b"
    assert env["QUERY_STRING"] == "x=%20y&z"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/caf%C3%A9/a%2Fb?x=%20y&z"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "2"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(run.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["HTTP_X_CUSTOM"] == "1, 2"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True


def test_underscore_headers_cannot_spoof(serve: t.Any) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [])
        return [environ.get("HTTP_X_AUTH_USER", "none").encode()]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            b"X_Auth_User: admin\r\nConnection: close\r\n\r\n"
        )
        assert read_response(sock)[2] == b"none"


def test_cross_check_with_http_client(serve: t.Any) -> None:
    run = serve(echo_body, threaded=True)
    conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=10)
    try:
        conn.request("GET", "/plain")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"/plain:")
        conn.request("POST", "/chunked", body=iter([b"ab", b"cd"]), encode_chunked=True)
        response = conn.getresponse()
        assert response.read() == b"/chunked:abcd"
        conn.request("HEAD", "/head")
        response = conn.getresponse()
        assert response.getheader("Content-Length") == "6"
        assert response.read() == b""
        conn.request("PUT", "/put", body=b"x" * 100000)
        response = conn.getresponse()
        assert response.read() == b"/put:" + b"x" * 100000
    finally:
        conn.close()
    stream = serve(streaming)
    conn = http.client.HTTPConnection("127.0.0.1", stream.port, timeout=10)
    try:
        for _ in range(2):
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.getheader("Transfer-Encoding") == "chunked"
            assert response.read() == b"one,two"
    finally:
        conn.close()


def test_app_content_length_is_sent_once(serve: t.Any) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "5"), ("X-A", "b")])
        return [b"hello"]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_all(sock)
    assert data.count(b"Content-Length") == 1
    assert data.endswith(b"\r\n\r\nhello")


def test_app_connection_close_header_closes(serve: t.Any) -> None:
    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [("Connection", "close")])
        return [b"bye"]

    run = serve(app)
    with run.connect() as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = read_all(sock)
    assert statuses(data) == [200]
    assert data.count(b"Connection: close") == 1


# -- the request target and Host, by the book (RFC 9112, 3.2 and 3.2.2) -------


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize(
    "head",
    [
        b"GET http:///x HTTP/1.1\r\nHost: h\r\n",
        b"GET http://[::1/x HTTP/1.1\r\nHost: h\r\n",
        b"GET http://[::1]:99999/x HTTP/1.1\r\nHost: h\r\n",
        b"GET http://user@h/x HTTP/1.1\r\nHost: h\r\n",
        b"GET / HTTP/1.1\r\nUser-Agent: no-host\r\n",
        b"GET / HTTP/1.1\r\nHost: h/x\r\n",
    ],
    ids=[
        "empty-host",
        "broken-ipv6",
        "port-too-big",
        "userinfo",
        "no-host",
        "bad-host-value",
    ],
)
def test_bad_target_or_host_is_refused_before_the_app(
    serve: t.Any, threaded: bool, head: bytes
) -> None:
    called: list[str] = []

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        called.append(environ["RAW_URI"])
        start_response("200 OK", [])
        return [b"reached"]

    run = serve(app, threaded=threaded)
    with run.connect() as sock:
        sock.sendall(head + b"\r\n")
        data = read_all(sock)
    assert statuses(data) == [400], data
    assert b"reached" not in data and called == []
    # The server still serves the next client.
    with run.connect() as sock:
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert statuses(read_all(sock)) == [200]
    assert called == ["/next"]


def test_http_1_0_needs_no_host(serve: t.Any) -> None:
    run = serve(path_app)
    with run.connect() as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        assert read_response(sock)[:3:2] == (200, b"/old")


def host_app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    keys = ("HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "PATH_INFO", "QUERY_STRING")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({key: environ.get(key) for key in keys}).encode()]


@pytest.mark.parametrize(
    ("target", "seen"),
    [
        (
            "http://example.com:8080/abs?q=1",
            ["example.com:8080", "example.com", "8080", "/abs", "q=1"],
        ),
        ("HTTP://Example.com/", ["Example.com", "Example.com", "80", "/", ""]),
        ("https://[::1]/x", ["[::1]", "::1", "443", "/x", ""]),
        ("http://[2001:db8::1]:81", ["[2001:db8::1]:81", "2001:db8::1", "81", "/", ""]),
    ],
)
def test_absolute_form_authority_is_the_host(
    serve: t.Any, target: str, seen: list[str]
) -> None:
    run = serve(host_app)
    with run.connect() as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: other.example\r\n\r\n".encode())
        status, _, body = read_response(sock)
        assert status == 200
        assert list(json.loads(body).values()) == seen
        # The next request on the connection, in origin-form, sees its Host.
        sock.sendall(b"GET /o HTTP/1.1\r\nHost: other.example:5\r\n\r\n")
        status, _, body = read_response(sock)
    local = str(run.port)
    assert list(json.loads(body).values()) == [
        "other.example:5",
        "127.0.0.1",
        local,
        "/o",
        "",
    ]


@pytest.mark.parametrize("threaded", [False, True])
def test_large_bodies_read_in_any_sizes_arrive_intact(
    serve: t.Any, threaded: bool
) -> None:
    # Bodies larger than the server's read buffer, read in pieces of every
    # size, pipelined behind each other: each app sees exactly its own bytes.
    import hashlib
    import random

    def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        parts = [stream.read(300_000), stream.read(1), stream.readline(), stream.read()]
        digest = hashlib.sha256(b"".join(parts)).hexdigest()
        start_response("200 OK", [])
        return [f"{[len(p) for p in parts]} {digest}".encode()]

    rng = random.Random(7)
    bodies = [rng.randbytes(size) for size in (700_000, 262_144, 300_001, 5)]
    run = serve(app, threaded=threaded)
    with run.connect() as sock:
        stream = b"".join(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b"
            % (len(body), body)
            for body in bodies
        )
        stream += b"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        sender = threading.Thread(target=sock.sendall, args=(stream,))
        sender.start()
        data = read_all(sock)
        sender.join(10)
    answers = [
        match.decode()
        for match in re.findall(rb"\r\n\r\n(\[[^]]*\] [0-9a-f]{64})", data)
    ]
    assert statuses(data) == [200] * 5
    for body, answer in zip(bodies, answers[:-1], strict=True):
        sizes, digest = answer.rsplit(" ", 1)
        assert digest == hashlib.sha256(body).hexdigest()
        assert json.loads(sizes)[0] == min(300_000, len(body))
