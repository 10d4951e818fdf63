"""Static files: the app's static/ folder and StaticFilesMiddleware, with
caching headers, 304s, ranges and path traversal attempts."""

from __future__ import annotations

import os
import sys
from email.utils import formatdate
from pathlib import Path

import pytest

from citus import API
from citus.serving.static import StaticFilesMiddleware
from citus.testing import Client

CONTENT = b"0123456789" * 10  # 100 bytes


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp/project/{app, static/...} and a secret file next to the project."""
    project = tmp_path / "project"
    static = project / "static"
    (static / "css").mkdir(parents=True)
    (static / "data.txt").write_bytes(CONTENT)
    (static / "css" / "site.css").write_text("body{}")
    (static / "app.js").write_text("1;")
    (static / "image.png").write_bytes(b"\x89PNG....")
    (static / "caf\u00e9.txt").write_text("accent")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (project / "secret-in-project.txt").write_text("TOP SECRET")
    os.utime(static / "data.txt", (1_700_000_000, 1_700_000_000))
    return project


@pytest.fixture
def client(site: Path) -> Client:
    app = API("static_app", root_path=str(site))
    return app.test_client()


@pytest.fixture
def middleware_client(site: Path) -> Client:
    def fallback(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fallback"]

    return Client(StaticFilesMiddleware(fallback, {"/assets": str(site / "static")}))


@pytest.fixture(params=["app", "middleware"])
def any_client(
    request: pytest.FixtureRequest, client: Client, middleware_client: Client
):  # type: ignore[no-untyped-def]
    if request.param == "app":
        return client, "/static"
    return middleware_client, "/assets"


def test_serves_files_with_type_and_caching_headers(any_client) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    response = client.get(f"{prefix}/data.txt")
    assert response.status_code == 200
    assert response.data == CONTENT
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == "100"
    assert response.headers["Last-Modified"] == formatdate(1_700_000_000, usegmt=True)
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Accept-Ranges"] == "bytes"
    assert client.get(f"{prefix}/css/site.css").mimetype == "text/css"
    assert client.get(f"{prefix}/app.js").mimetype == "text/javascript"
    assert client.get(f"{prefix}/image.png").mimetype == "image/png"
    assert client.get(f"{prefix}/caf%C3%A9.txt").text == "accent"


def test_head(any_client) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    response = client.head(f"{prefix}/data.txt")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "100"
    assert response.data == b""


def test_conditional_requests_get_304(any_client) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    first = client.get(f"{prefix}/data.txt")
    etag = first.headers["ETag"]
    response = client.get(f"{prefix}/data.txt", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    response = client.get(
        f"{prefix}/data.txt", headers={"If-None-Match": f'"other", W/{etag}'}
    )
    assert response.status_code == 304
    response = client.get(
        f"{prefix}/data.txt",
        headers={"If-Modified-Since": first.headers["Last-Modified"]},
    )
    assert response.status_code == 304
    older = formatdate(1_600_000_000, usegmt=True)
    response = client.get(f"{prefix}/data.txt", headers={"If-Modified-Since": older})
    assert response.status_code == 200
    response = client.get(f"{prefix}/data.txt", headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("bytes=0-9", 206, CONTENT[:10], "bytes 0-9/100"),
        ("bytes=95-", 206, CONTENT[95:], "bytes 95-99/100"),
        ("bytes=-5", 206, CONTENT[-5:], "bytes 95-99/100"),
        ("bytes=90-500", 206, CONTENT[90:], "bytes 90-99/100"),
        ("bytes=100-", 416, None, "bytes */100"),
        ("bytes=-0", 416, None, "bytes */100"),
        ("bytes=5-2", 200, CONTENT, None),  # invalid: ignored
        ("bytes=0-1,5-6", 200, CONTENT, None),  # several ranges: whole file
        ("items=0-1", 200, CONTENT, None),
    ],
)
def test_ranges(
    any_client, header: str, status: int, body: bytes | None, content_range: str | None
) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    response = client.get(f"{prefix}/data.txt", headers={"Range": header})
    assert response.status_code == status
    if body is not None:
        assert response.data == body
        assert response.headers["Content-Length"] == str(len(body))
    assert response.headers.get("Content-Range") == content_range


def test_if_range_with_a_stale_etag_sends_everything(any_client) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    etag = client.get(f"{prefix}/data.txt").headers["ETag"]
    fresh = client.get(
        f"{prefix}/data.txt", headers={"Range": "bytes=0-1", "If-Range": etag}
    )
    assert fresh.status_code == 206
    stale = client.get(
        f"{prefix}/data.txt", headers={"Range": "bytes=0-1", "If-Range": '"old"'}
    )
    assert stale.status_code == 200 and stale.data == CONTENT


def test_if_range_with_a_date_or_a_weak_etag(any_client) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    first = client.get(f"{prefix}/data.txt")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    same_date = client.get(
        f"{prefix}/data.txt", headers={"Range": "bytes=0-1", "If-Range": modified}
    )
    assert same_date.status_code == 206 and same_date.data == CONTENT[:2]
    other_date = formatdate(1_600_000_000, usegmt=True)
    old = client.get(
        f"{prefix}/data.txt", headers={"Range": "bytes=0-1", "If-Range": other_date}
    )
    assert old.status_code == 200 and old.data == CONTENT
    # If-Range compares strongly: a weak validator never matches.
    weak = client.get(
        f"{prefix}/data.txt", headers={"Range": "bytes=0-1", "If-Range": "W/" + etag}
    )
    assert weak.status_code == 200 and weak.data == CONTENT


TRAVERSALS = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/%2e%2e/secret.txt",
    "/css/../../secret-in-project.txt",
    "/..%2fsecret-in-project.txt",
    "/..%5csecret-in-project.txt",
    "/..\\secret-in-project.txt",
    "/C:/Windows/win.ini",
    "/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/css/%2e%2e%2f%2e%2e%2fsecret-in-project.txt",
    "/%5c..%5csecret-in-project.txt",
    "/.%2e/secret.txt",
]


@pytest.mark.parametrize("attack", TRAVERSALS)
def test_traversal_is_404(any_client, attack: str) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    response = client.get(prefix + attack)
    assert response.status_code == 404
    assert b"SECRET" not in response.data


def test_absolute_paths_stay_inside_the_folder(any_client, site: Path) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    secret = site.parent / "secret.txt"
    response = client.get(prefix + "/" + str(secret))  # /static//tmp/.../secret.txt
    assert response.status_code == 404 or b"SECRET" not in response.data
    assert b"SECRET" not in response.data
    response = client.get(prefix + "//etc/passwd")
    assert b"root:" not in response.data


def test_nul_byte_is_400(any_client) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    response = client.get(prefix + "/data.txt%00.png")
    assert response.status_code == 400


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")
def test_symlink_out_of_the_folder_is_404(any_client, site: Path) -> None:  # type: ignore[no-untyped-def]
    client, prefix = any_client
    (site / "static" / "escape.txt").symlink_to(site.parent / "secret.txt")
    (site / "static" / "inside.txt").symlink_to(site / "static" / "data.txt")
    response = client.get(prefix + "/escape.txt")
    assert response.status_code == 404
    assert b"SECRET" not in response.data
    assert client.get(prefix + "/inside.txt").data == CONTENT


def test_missing_file_and_folder(client: Client, middleware_client: Client) -> None:
    assert client.get("/static/nope.txt").status_code == 404
    assert client.get("/static/css").status_code == 404
    # The middleware leaves unknown files to the application it wraps.
    assert middleware_client.get("/assets/nope.txt").text == "fallback"
    assert middleware_client.get("/other").text == "fallback"


def test_other_methods(client: Client, middleware_client: Client) -> None:
    assert client.post("/static/data.txt").status_code == 405
    response = middleware_client.post("/assets/data.txt")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_url_for_static(site: Path) -> None:
    app = API("static_app", root_path=str(site))
    assert app.url_for("static", filename="css/site.css") == "/static/css/site.css"
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == "static")
    assert rule.rule == "/static/<path:filename>"


def test_no_static_folder_no_static_route(tmp_path: Path) -> None:
    app = API("bare_app", root_path=str(tmp_path))
    assert [r.endpoint for r in app.url_map.iter_rules()] == []


def test_file_wrapper_is_used_when_offered(site: Path) -> None:
    used: list[object] = []

    class Wrapper:
        def __init__(self, file, size):  # type: ignore[no-untyped-def]
            used.append(size)
            self.file = file

        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(lambda: self.file.read(8192), b"")

        def close(self) -> None:
            self.file.close()

    app = API("static_app", root_path=str(site))
    for client in (
        app.test_client(),
        Client(StaticFilesMiddleware(app, {"/assets": str(site / "static")})),
    ):
        prefix = "/static" if client.app is app else "/assets"
        response = client.get(
            prefix + "/data.txt", environ_overrides={"wsgi.file_wrapper": Wrapper}
        )
        assert response.data == CONTENT
    assert len(used) == 2


def test_middleware_maps_a_single_file(site: Path) -> None:
    def fallback(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("404 Not Found", [])
        return [b""]

    client = Client(
        StaticFilesMiddleware(
            fallback, {"/favicon.ico": str(site / "static" / "image.png")}
        )
    )
    assert client.get("/favicon.ico").data == b"\x89PNG...."
    assert client.get("/favicon.ico/x").status_code == 404


def test_app_errorhandlers_answer_static_errors(site: Path) -> None:
    app = API("static_app", root_path=str(site))

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return "custom 404", 404

    client = app.test_client()
    assert client.get("/static/missing.css").text == "custom 404"
    assert client.get("/static/%2e%2e/secret-in-project.txt").text == "custom 404"


def test_unsatisfiable_range_is_the_apps_416(site: Path) -> None:
    app = API("static_app", root_path=str(site))
    client = app.test_client()
    page = client.get("/static/data.txt", headers={"Range": "bytes=500-"})
    assert page.status_code == 416
    assert page.headers["Content-Range"] == f"bytes */{len(CONTENT)}"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"

    @app.errorhandler(416)
    def bad_range(error: Exception) -> tuple[dict[str, str], int]:
        return {"error": "range"}, 416

    handled = client.get("/static/data.txt", headers={"Range": "bytes=500-"})
    assert handled.get_json() == {"error": "range"}
    assert handled.headers["Content-Range"] == f"bytes */{len(CONTENT)}"
