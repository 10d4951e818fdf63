"""End to end through a real citus server socket: the notes example, uploads,
size limits, streaming and static-file attacks as raw request targets."""

from __future__ import annotations

import json
import typing as t

import pytest

from citus import API, request

pytestmark = pytest.mark.live_server


def test_notes_example_over_http(notes: t.Any, live_server: t.Any) -> None:
    server = live_server(notes.app)

    status, headers, body = server.request("GET", "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"No notes yet." in body

    status, headers, body = server.request(
        "POST",
        "/notes",
        body=b"author=Ann&text=Buy+milk",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303
    assert headers["Location"] == "/"
    assert headers["Set-Cookie"].startswith("author=Ann;")

    status, _, body = server.request("GET", "/", headers={"Cookie": "author=Ann"})
    assert b"Buy milk" in body and b'value="Ann"' in body

    status, headers, body = server.request("GET", "/api/notes")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert [n["text"] for n in json.loads(body)] == ["Buy milk"]

    status, _, body = server.request("GET", "/static/style.css")
    assert status == 200 and b"font:" in body


def test_notes_api_subdomain_over_http(notes: t.Any, live_server: t.Any) -> None:
    server = live_server(notes.app)
    api = {"Host": "api.localhost:8000"}

    status, _, body = server.request("GET", "/", headers=api)
    assert json.loads(body) == {"notes": "http://api.localhost:8000/notes"}

    status, headers, body = server.request(
        "POST",
        "/notes",
        body=json.dumps({"text": "from the API"}).encode(),
        headers={**api, "Content-Type": "application/json"},
    )
    assert status == 201
    assert headers["Location"] == "/notes/1"
    assert json.loads(body)["text"] == "from the API"

    status, _, body = server.request("GET", "/notes/1", headers=api)
    assert json.loads(body)["id"] == 1
    status, _, body = server.request("GET", "/notes/99", headers=api)
    assert status == 404
    assert json.loads(body) == {"error": "Not Found", "message": "There is no note 99."}
    status, _, body = server.request(
        "POST",
        "/notes",
        body=b"{oops",
        headers={**api, "Content-Type": "application/json"},
    )
    assert status == 400 and json.loads(body)["error"] == "Bad Request"
    status, _, _ = server.request("DELETE", "/notes/1", headers=api)
    assert status == 204
    # The main host's HTML page is not on the subdomain.
    status, _, _ = server.request("GET", "/static/style.css", headers=api)
    assert status == 404


def test_body_over_the_limit_is_413(notes: t.Any, live_server: t.Any) -> None:
    server = live_server(notes.app)
    status, _, body = server.request(
        "POST",
        "/api/notes",
        body=b"x" * (70 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert status == 413
    assert json.loads(body)["error"] == "Content Too Large"


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/static/%2e%2e/app.py", 404),
        ("/static/..%2fapp.py", 404),
        ("/static/%2E%2E%2F%2E%2E%2Fconftest.py", 404),
        ("/static/..%5capp.py", 404),
        ("/static/%00", 400),
        ("/static/style.css%00.png", 400),
        ("/static/../app.py", 404),
        ("/static/..\\app.py", 404),
        ("/static//etc/passwd", 404),
        ("/static/%2Fetc%2Fpasswd", 404),
    ],
)
def test_static_traversal_over_http(
    notes: t.Any, live_server: t.Any, target: str, status: int
) -> None:
    server = live_server(notes.app)
    got, _, body = server.request("GET", target)
    assert got == status
    assert b"import" not in body and b"root:" not in body


def test_multipart_upload_and_streaming_over_http(live_server: t.Any) -> None:
    app = API("live_upload")

    @app.route("/upload", methods=["POST"])
    def upload() -> dict[str, t.Any]:
        storage = request.files["file"]
        return {
            "name": storage.filename,
            "size": len(storage.read()),
            "field": request.form["field"],
        }

    @app.route("/stream")
    def stream() -> t.Iterator[str]:
        def chunks() -> t.Iterator[str]:
            for index in range(3):
                yield f"chunk {index} of {request.path}\n"

        return chunks()

    server = live_server(app)
    boundary = "XyZ"
    payload = b"\x00\xff" * 300_000  # 600 kB: past the in-memory threshold
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="field"\r\n\r\nv\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
            f' filename="blob.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _, answer = server.request(
        "POST",
        "/upload",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 200, answer
    assert json.loads(answer) == {"name": "blob.bin", "size": 600_000, "field": "v"}

    status, headers, answer = server.request("GET", "/stream")
    assert status == 200
    assert "Content-Length" not in headers
    assert answer == b"".join(f"chunk {i} of /stream\n".encode() for i in range(3))


def test_head_and_options_over_http(notes: t.Any, live_server: t.Any) -> None:
    server = live_server(notes.app)
    status, headers, body = server.request("HEAD", "/api/notes")
    assert status == 200 and body == b""
    status, headers, _ = server.request("OPTIONS", "/api/notes")
    assert status == 200
    assert headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    status, headers, _ = server.request("PUT", "/api/notes")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    status, headers, _ = server.request("OPTIONS", "*")
    assert status == 200
    assert headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, POST"


def test_static_files_over_http(tmp_path: t.Any, live_server: t.Any) -> None:
    from citus.serving.static import StaticFilesMiddleware

    static = tmp_path / "static"
    static.mkdir()
    blob = bytes(range(256)) * 4096  # 1 MiB, sent with the server's file wrapper
    (static / "blob.bin").write_bytes(blob)
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    app = API("live_static", root_path=str(tmp_path))
    media = StaticFilesMiddleware(app, {"/media": str(static)})
    server = live_server(media)
    for prefix in ("/static", "/media"):
        status, headers, body = server.request("GET", f"{prefix}/blob.bin")
        assert status == 200 and body == blob
        assert headers["Content-Type"] == "application/octet-stream"
        status, _, body = server.request(
            "GET", f"{prefix}/blob.bin", headers={"Range": "bytes=1000-1999"}
        )
        assert status == 206 and body == blob[1000:2000]
        status, _, body = server.request(
            "GET", f"{prefix}/blob.bin", headers={"If-None-Match": headers["ETag"]}
        )
        assert status == 304 and body == b""
        status, _, body = server.request("GET", f"{prefix}/%2e%2e/secret.txt")
        assert status == 404 and b"SECRET" not in body


def test_chunked_request_bodies_over_http(live_server: t.Any) -> None:
    import http.client

    app = API("live_chunked")
    app.config["MAX_CONTENT_LENGTH"] = 1000

    @app.route("/echo", methods=["POST"])
    def echo() -> dict[str, t.Any]:
        return {"got": request.get_json()}

    server = live_server(app)

    def post_chunked(chunks: list[bytes]) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request(
                "POST",
                "/echo",
                body=iter(chunks),
                headers={"Content-Type": "application/json"},
                encode_chunked=True,
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    status, body = post_chunked([b'{"a": ', b"[1, 2]", b"}"])
    assert status == 200 and json.loads(body) == {"got": {"a": [1, 2]}}
    status, body = post_chunked([b'{"a": "', b"x" * 600, b"x" * 600, b'"}'])
    assert status == 413


def test_repeated_request_headers_over_http(live_server: t.Any) -> None:
    """The test client joins a repeated header exactly as the real server does."""
    app = API("live_headers")

    @app.route("/")
    def show() -> dict[str, t.Any]:
        return {
            "accept": request.headers.getlist("accept"),
            "cookies": request.cookies.to_dict(),
        }

    server = live_server(app)
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", "/")
        for name, value in [
            ("Accept", "text/html"),
            ("Accept", "*/*"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ]:
            connection.putheader(name, value)
        connection.endheaders()
        over_http = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    in_process = (
        app.test_client()
        .get(
            "/",
            headers=[
                ("Accept", "text/html"),
                ("Accept", "*/*"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
            ],
        )
        .get_json()
    )
    assert over_http == in_process
    assert over_http == {"accept": ["text/html, */*"], "cookies": {"a": "1", "b": "2"}}


def test_notes_tour_under_citus_run(run_citus: t.Any) -> None:
    """The README's tour of the notes example, under a real ``citus run``
    (debug mode, reloader and all), with the api subdomain as the Host."""
    import http.client
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    with run_citus(
        "--app", "examples/notes/app.py", "run", "--debug", "--port", "0", cwd=root
    ) as proc:
        url = proc.wait_for_url()
        port = int(url.rsplit(":", 1)[1])
        proc.wait_for_log(r"Debugger PIN|Debugger is active")

        def call(
            method: str, path: str, host: str, body: bytes | None = None
        ) -> tuple[int, bytes]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                headers = {"Host": f"{host}:{port}"}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        assert call("GET", "/api/notes", "localhost") == (200, b"[]\n")
        status, body = call("POST", "/notes", "api.localhost", b'{"text": "hi"}')
        assert status == 201 and json.loads(body)["text"] == "hi"
        status, body = call("GET", "/", "api.localhost")
        assert json.loads(body) == {"notes": f"http://api.localhost:{port}/notes"}
        status, body = call("GET", "/", "localhost")
        assert status == 200 and b"<li>hi <small>by anonymous</small></li>" in body
