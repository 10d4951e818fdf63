"""Errors: abort, HTTP exception pages, error handlers, unhandled exceptions."""

from __future__ import annotations

import logging
import typing as t

import pytest

from citus import API, abort, request
from citus.exceptions import (
    HTTPException,
    InternalServerError,
    NotFound,
)


def make_app() -> API:
    app = API("errors_app")

    @app.route("/abort/<int:code>")
    def do_abort(code: int) -> str:
        abort(code)

    @app.route("/described")
    def described() -> str:
        abort(403, "Members <only>.")

    @app.route("/boom")
    def boom() -> str:
        secret = "s3cret-value"  # noqa: F841 - must not leak into the page
        raise ValueError("kaboom in the view")

    @app.route("/custom")
    def custom() -> str:
        raise KeyError("custom")

    return app


def test_abort_gives_an_error_page() -> None:
    client = make_app().test_client()
    for code, phrase in [
        (400, "Bad Request"),
        (404, "Not Found"),
        (418, "I'm a Teapot"),
    ]:
        response = client.get(f"/abort/{code}")
        assert response.status_code == code
        assert response.mimetype == "text/html"
        assert phrase.replace("'", "&#x27;") in response.text


def test_abort_description_is_escaped() -> None:
    response = make_app().test_client().get("/described")
    assert response.status_code == 403
    assert "Members &lt;only&gt;." in response.text


def test_abort_rejects_non_error_codes() -> None:
    with pytest.raises(ValueError, match="not an HTTP error status code"):
        abort(200)


def test_errorhandler_for_a_code() -> None:
    app = make_app()

    @app.errorhandler(404)
    def not_found(error: HTTPException) -> tuple[dict[str, str], int]:
        return {"error": error.name}, 404

    response = app.test_client().get("/missing")
    assert response.status_code == 404
    assert response.get_json() == {"error": "Not Found"}
    # abort(404) goes through the same handler.
    assert app.test_client().get("/abort/404").get_json() == {"error": "Not Found"}


def test_errorhandler_for_a_class_and_its_subclasses() -> None:
    app = make_app()

    @app.errorhandler(LookupError)
    def lookup(error: LookupError) -> tuple[str, int]:
        return f"lookup: {type(error).__name__}", 409

    @app.errorhandler(NotFound)
    def nf(error: NotFound) -> tuple[str, int]:
        return "nf", 404

    client = app.test_client()
    response = client.get("/custom")
    assert (response.status_code, response.text) == (409, "lookup: KeyError")
    assert client.get("/nope").text == "nf"


def test_errorhandler_for_every_http_error() -> None:
    app = make_app()

    @app.errorhandler(HTTPException)
    def any_http(error: HTTPException) -> tuple[str, int]:
        return f"http {error.code}", error.code

    client = app.test_client()
    assert client.get("/abort/410").text == "http 410"
    response = client.post("/boom")
    assert (response.status_code, response.text) == (405, "http 405")
    # A 405 must say what works: the handler's answer keeps the Allow header.
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def test_handler_headers_win_and_other_statuses_get_none() -> None:
    app = make_app()

    @app.errorhandler(405)
    def not_allowed(error: HTTPException) -> t.Any:
        if request.args.get("own"):
            return "own", 405, {"Allow": "GET"}
        return "moved on", 400

    client = app.test_client()
    assert client.post("/boom?own=1").headers.getlist("Allow") == ["GET"]
    assert "Allow" not in client.post("/boom").headers


def test_unhandled_exception_is_a_bare_500_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    app.debug = False
    with caplog.at_level(logging.ERROR, logger="citus"):
        response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert "Internal Server Error" in response.text
    for leak in ("kaboom", "ValueError", "s3cret", "Traceback", "test_app_errors"):
        assert leak not in response.text
    assert "Exception on /boom [GET]" in caplog.text
    assert "kaboom in the view" in caplog.text


def test_500_handler_gets_the_original_exception() -> None:
    app = make_app()
    app.debug = False

    @app.errorhandler(500)
    def server_error(error: InternalServerError) -> tuple[str, int]:
        original = error.original_exception
        return f"sorry ({type(original).__name__})", 500

    response = app.test_client().get("/boom")
    assert (response.status_code, response.text) == (500, "sorry (ValueError)")


def test_debug_mode_reraises_for_the_debugger() -> None:
    app = make_app()
    app.debug = True
    with pytest.raises(ValueError, match="kaboom"):
        app.test_client().get("/boom")
    # HTTP errors are still pages in debug mode.
    assert app.test_client().get("/abort/404").status_code == 404


def test_propagate_exceptions_setting() -> None:
    app = make_app()
    app.debug = False
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(ValueError):
        app.test_client().get("/boom")


def test_debug_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITUS_DEBUG", "1")
    assert API("dbg").debug is True
    monkeypatch.setenv("CITUS_DEBUG", "0")
    monkeypatch.setenv("CITUS_ENV", "development")
    assert API("dbg").debug is False
    monkeypatch.delenv("CITUS_DEBUG")
    assert API("dbg").debug is True


def test_errorhandler_rejects_bad_keys() -> None:
    app = make_app()
    with pytest.raises(ValueError, match="not an HTTP error code"):
        app.errorhandler(200)
    with pytest.raises(TypeError, match="exception class"):
        app.errorhandler("404")  # type: ignore[arg-type]


def test_before_and_after_request_hooks() -> None:
    app = make_app()

    @app.before_request
    def gate() -> str | None:
        from citus import request

        return "blocked" if request.args.get("block") else None

    @app.after_request
    def stamp(response):  # type: ignore[no-untyped-def]
        response.headers["X-Stamp"] = "1"
        return response

    client = app.test_client()
    assert client.get("/abort/404?block=1").text == "blocked"
    assert client.get("/abort/404").headers["X-Stamp"] == "1"


def test_abort_with_a_response_sends_it_as_is() -> None:
    from citus import Response

    app = make_app()

    @app.errorhandler(404)
    def not_found(error: HTTPException) -> str:
        return "handler"

    @app.route("/teapot")
    def teapot() -> str:
        abort(Response("exactly this", status=404, mimetype="text/plain"))

    response = app.test_client().get("/teapot")
    assert (response.status_code, response.text) == (404, "exactly this")


def test_debug_mode_errors_reach_the_debugger() -> None:
    from citus.debug import DebuggedApplication
    from citus.testing import Client

    app = make_app()
    app.debug = True
    client = Client(DebuggedApplication(app, evalex=False))
    response = client.get("/boom", headers={"Accept": "text/plain"})
    assert response.status_code == 500
    assert "ValueError: kaboom in the view" in response.text
    # HTTP errors stay ordinary pages under the debugger.
    assert client.get("/abort/404").status_code == 404
