"""The Request object through the test client: URL parts, args, headers,
cookies, forms, multipart uploads, JSON, size limits, the request proxy."""

from __future__ import annotations

import io
import threading
import typing as t
from pathlib import Path

import pytest

from citus import API, Request, Response, request


@pytest.fixture
def app() -> API:
    app = API("request_app")

    @app.route("/info", methods=["GET", "POST"])
    def info() -> dict[str, t.Any]:
        return {
            "method": request.method,
            "path": request.path,
            "full_path": request.full_path,
            "url": request.url,
            "host": request.host,
            "scheme": request.scheme,
            "remote_addr": request.remote_addr,
            "args": request.args.to_dict(flat=False),
            "tag": request.args.getlist("tag"),
            "page": request.args.get("page", 1, type=int),
        }

    @app.route("/headers")
    def headers() -> dict[str, t.Any]:
        return {
            "x_token": request.headers.get("x-token"),
            "X_TOKEN": request.headers["X-TOKEN"],
            "accept": request.headers.getlist("Accept"),
            "has": "X-Token" in request.headers,
        }

    @app.route("/cookies")
    def cookies() -> dict[str, str]:
        return request.cookies.to_dict()

    @app.route("/form", methods=["POST"])
    def form() -> dict[str, t.Any]:
        return {
            "form": request.form.to_dict(flat=False),
            "files": {
                name: {
                    "filename": f.filename,
                    "content_type": f.content_type,
                    "data": f.read().decode(),
                }
                for name, f in request.files.items(multi=True)
            },
        }

    @app.route("/required", methods=["POST"])
    def required() -> str:
        return request.form["name"]

    @app.route("/json", methods=["POST"])
    def json_view() -> dict[str, t.Any]:
        return {"got": request.json}

    @app.route("/json-silent", methods=["POST"])
    def json_silent() -> dict[str, t.Any]:
        return {"got": request.get_json(silent=True)}

    @app.route("/raw", methods=["POST"])
    def raw() -> bytes:
        return request.get_data()

    return app


def test_url_parts_and_args(app: API) -> None:
    client = app.test_client()
    data = client.get(
        "http://example.test:8080/info?tag=a&tag=b&page=3&empty=",
    ).get_json()
    assert data["method"] == "GET"
    assert data["path"] == "/info"
    assert data["full_path"] == "/info?tag=a&tag=b&page=3&empty="
    assert data["url"] == "http://example.test:8080/info?tag=a&tag=b&page=3&empty="
    assert data["host"] == "example.test:8080"
    assert data["scheme"] == "http"
    assert data["remote_addr"] == "127.0.0.1"
    assert data["tag"] == ["a", "b"]
    assert data["page"] == 3
    assert data["args"]["empty"] == [""]


def test_url_is_ascii_and_full_path_is_readable(app: API) -> None:
    # A client that sent UTF-8 bytes without percent-encoding them.
    data = (
        app.test_client()
        .get(
            "/info",
            environ_overrides={"QUERY_STRING": "q=caf\xc3\xa9&tag=%C3%A9"},
        )
        .get_json()
    )
    assert data["url"] == "http://localhost/info?q=caf%C3%A9&tag=%C3%A9"
    assert data["full_path"] == "/info?q=café&tag=%C3%A9"
    assert data["args"] == {"q": ["café"], "tag": ["é"]}


def test_args_type_conversion_falls_back_to_default(app: API) -> None:
    data = app.test_client().get("/info", query_string={"page": "x"}).get_json()
    assert data["page"] == 1


def test_query_string_dict_and_unicode(app: API) -> None:
    data = (
        app.test_client()
        .get("/info", query_string={"tag": ["é", "ü"], "q": "a b"})
        .get_json()
    )
    assert data["tag"] == ["é", "ü"]
    assert data["args"]["q"] == ["a b"]
    raw = app.test_client().get("/info?tag=café").get_json()
    assert raw["tag"] == ["café"]


def test_headers_are_case_insensitive_and_multi_valued(app: API) -> None:
    response = app.test_client().get(
        "/headers",
        headers=[("X-Token", "abc"), ("Accept", "text/html"), ("Accept", "*/*")],
    )
    data = response.get_json()
    assert data["x_token"] == "abc"
    assert data["X_TOKEN"] == "abc"
    assert data["has"] is True
    # A header sent twice reaches WSGI joined by a comma (RFC 9110, 5.3), as
    # every server does; the test client does the same (test_app_live checks
    # the server's side).
    assert data["accept"] == ["text/html, */*"]


def test_repeated_cookie_headers_are_joined_with_semicolons(app: API) -> None:
    response = app.test_client().get(
        "/cookies", headers=[("Cookie", "a=1"), ("Cookie", "b=2")]
    )
    assert response.get_json() == {"a": "1", "b": "2"}


def test_cookies(app: API) -> None:
    response = app.test_client().get(
        "/cookies", headers={"Cookie": 'a=1; b="two"; c=caf%C3%A9; broken'}
    )
    assert response.get_json() == {"a": "1", "b": "two", "c": "café"}


def test_urlencoded_form(app: API) -> None:
    response = app.test_client().post(
        "/form", data={"name": "Ann", "tags": ["x", "y"], "note": "é & ü"}
    )
    assert response.get_json()["form"] == {
        "name": ["Ann"],
        "tags": ["x", "y"],
        "note": ["é & ü"],
    }


def test_multipart_form_with_files(app: API) -> None:
    response = app.test_client().post(
        "/form",
        data={
            "title": "Report",
            "upload": (io.BytesIO(b"hello file"), "r\u00e9sum\u00e9.txt", "text/plain"),
        },
    )
    data = response.get_json()
    assert data["form"] == {"title": ["Report"]}
    assert data["files"] == {
        "upload": {
            "filename": "résumé.txt",
            "content_type": "text/plain",
            "data": "hello file",
        }
    }


def test_client_guesses_an_uploads_content_type_from_its_name(
    tmp_path: Path,
) -> None:
    app = API("guessed_types")

    @app.route("/up", methods=["POST"])
    def up() -> dict[str, str]:
        return {k: f.content_type or "" for k, f in request.files.items()}

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG")
    with photo.open("rb") as opened:
        response = app.test_client().post(
            "/up",
            data={
                "text": (io.BytesIO(b"hi"), "notes.txt"),
                "data": (io.BytesIO(b"{}"), "data.json"),
                "blob": (io.BytesIO(b"x"), "no-extension"),
                "given": (io.BytesIO(b"x"), "a.txt", "text/markdown"),
                "opened": opened,
            },
        )
    assert response.get_json() == {
        "text": "text/plain",
        "data": "application/json",
        "blob": "application/octet-stream",
        "given": "text/markdown",
        "opened": "image/png",
    }


def test_client_sends_a_list_of_files_under_one_name() -> None:
    app = API("many_files")

    @app.route("/up", methods=["POST"])
    def up() -> dict[str, list[str]]:
        return {
            "files": [f.filename or "" for f in request.files.getlist("f")],
            "tags": request.form.getlist("tag"),
        }

    files = [(io.BytesIO(b"1"), "a.txt"), (io.BytesIO(b"2"), "b.txt")]
    response = app.test_client().post("/up", data={"f": files, "tag": ["x", "y"]})
    assert response.get_json() == {"files": ["a.txt", "b.txt"], "tags": ["x", "y"]}


def test_large_upload_goes_to_a_temporary_file() -> None:
    app = API("upload_app")
    app.config["FORM_MEMORY_THRESHOLD"] = 1024
    seen: dict[str, t.Any] = {}

    @app.route("/up", methods=["POST"])
    def up() -> str:
        storage = request.files["file"]
        seen["rolled"] = getattr(storage.stream, "_rolled", None)
        seen["size"] = len(storage.read())
        return "ok"

    payload = b"x" * 50_000
    client = app.test_client()
    response = client.post("/up", data={"file": (io.BytesIO(payload), "big.bin")})
    assert response.text == "ok"
    assert seen == {"rolled": True, "size": 50_000}


@pytest.mark.parametrize(("threshold", "on_disk"), [(0, True), (None, False)])
def test_upload_threshold_zero_puts_every_file_on_disk(
    threshold: int | None, on_disk: bool
) -> None:
    import tempfile

    app = API("threshold_app")
    if threshold is not None:
        app.config["FORM_MEMORY_THRESHOLD"] = threshold
    kept: list[t.Any] = []

    @app.route("/up", methods=["POST"])
    def up() -> str:
        stream = request.files["file"].stream
        kept.append(stream)
        spooled = isinstance(stream, tempfile.SpooledTemporaryFile)
        return "disk" if not spooled or stream._rolled else "memory"

    response = app.test_client().post(
        "/up", data={"file": (io.BytesIO(b"tiny"), "t.txt")}
    )
    assert response.text == ("disk" if on_disk else "memory")
    assert kept[0].closed  # released when the request ended


def test_missing_form_key_is_400(app: API) -> None:
    response = app.test_client().post("/required", data={"other": "1"})
    assert response.status_code == 400
    assert "&#x27;name&#x27;" in response.text or "'name'" in response.text


def test_bad_multipart_is_400(app: API) -> None:
    client = app.test_client()
    response = client.post(
        "/form", data=b"garbage", content_type="multipart/form-data; boundary=zz"
    )
    assert response.status_code == 400
    response = client.post("/form", data=b"x", content_type="multipart/form-data")
    assert response.status_code == 400
    assert "boundary" in response.text


def test_json_body(app: API) -> None:
    client = app.test_client()
    assert client.post("/json", json={"a": [1, 2]}).get_json() == {"got": {"a": [1, 2]}}
    response = client.post(
        "/json", data=b'{"a": ', content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 400
    assert "The body is not valid JSON: " in response.text
    response = client.post("/json", data=b'{"a": 1}', content_type="text/plain")
    assert response.status_code == 415
    silent = client.post("/json-silent", data=b"{", content_type="application/json")
    assert silent.get_json() == {"got": None}


def test_max_content_length_is_413(app: API) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 100
    client = app.test_client()
    assert client.post("/raw", data=b"a" * 100).status_code == 200
    response = client.post("/raw", data=b"a" * 101)
    assert response.status_code == 413
    response = client.post("/form", data={"f": (io.BytesIO(b"a" * 500), "a.txt")})
    assert response.status_code == 413


def test_max_content_length_without_declared_length(app: API) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 10
    response = app.test_client().post(
        "/raw",
        data=b"",
        environ_overrides={
            "CONTENT_LENGTH": "",
            "wsgi.input": io.BytesIO(b"b" * 50),
            "wsgi.input_terminated": True,
        },
    )
    assert response.status_code == 413


def test_form_field_memory_limit_is_413(app: API) -> None:
    app.config["MAX_FORM_MEMORY_SIZE"] = 50
    client = app.test_client()
    assert client.post("/form", data={"a": "x" * 100}).status_code == 413
    response = client.post("/form", data={"a": "x" * 100, "f": (io.BytesIO(b""), "e")})
    assert response.status_code == 413


def test_too_many_form_parts_is_413(app: API) -> None:
    app.config["MAX_FORM_PARTS"] = 3
    fields = {f"k{i}": "v" for i in range(5)}
    assert app.test_client().post("/form", data=fields).status_code == 413


def test_request_proxy_outside_a_request() -> None:
    with pytest.raises(RuntimeError, match="outside of a request"):
        request.path  # noqa: B018
    assert not request


def test_request_proxy_is_per_thread() -> None:
    app = API("threads_app")
    inside = threading.Barrier(2, timeout=10)

    @app.route("/<name>")
    def echo(name: str) -> str:
        inside.wait()  # both requests are in flight at once
        return request.path

    results: dict[str, str] = {}

    def fetch(name: str) -> None:
        results[name] = app.test_client().get(f"/{name}").text

    threads = [threading.Thread(target=fetch, args=(n,)) for n in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {"one": "/one", "two": "/two"}


def test_request_application_decorator() -> None:
    @Request.application
    def wsgi(req: Request) -> Response:
        if req.args.get("fail"):
            from citus import abort

            abort(418)
        return Response(
            f"Hello {req.args.get('name', 'World')}!", mimetype="text/plain"
        )

    from citus.testing import Client

    client = Client(wsgi)
    response = client.get("/?name=citus")
    assert response.text == "Hello citus!"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert client.get("/?fail=1").status_code == 418


def test_request_application_streams_uploads_before_closing_them() -> None:
    from citus.testing import Client

    @Request.application
    def wsgi(req: Request) -> Response:
        upload = req.files["f"]

        def chunks() -> t.Iterator[bytes]:
            yield b"got "
            yield upload.read()

        return Response(chunks())

    response = Client(wsgi).post("/", data={"f": (io.BytesIO(b"data"), "f.txt")})
    assert response.data == b"got data"


def test_request_application_takes_view_return_values() -> None:
    from citus.testing import Client

    @Request.application
    def wsgi(req: Request) -> t.Any:
        if req.path == "/text":
            return "plain"
        if req.path == "/json":
            return {"ok": True}, 201
        return 42

    client = Client(wsgi)
    assert client.get("/text").text == "plain"
    created = client.get("/json")
    assert created.status_code == 201 and created.get_json() == {"ok": True}
    with pytest.raises(TypeError, match="'wsgi' returned an object of type 'int'"):
        client.get("/other")


def test_request_proxy_looks_like_a_request() -> None:
    app = API("proxy_app")

    @app.route("/")
    def index() -> dict[str, bool]:
        return {"isinstance": isinstance(request, Request), "truthy": bool(request)}

    assert app.test_client().get("/").get_json() == {"isinstance": True, "truthy": True}
    assert not isinstance(request, Request)
