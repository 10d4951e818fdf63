"""Responses: view return values, Response objects, streaming, cookies, JSON."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from citus import API, Response, jsonify, redirect, request
from citus.testing import Client


def make_app() -> API:
    app = API("response_app")

    @app.route("/str")
    def text() -> str:
        return "héllo"

    @app.route("/bytes")
    def raw() -> bytes:
        return b"\x00\x01"

    @app.route("/dict")
    def mapping() -> dict[str, t.Any]:
        return {"when": dt.date(2026, 11, 22), "n": 1}

    @app.route("/list")
    def sequence() -> list[int]:
        return [1, 2, 3]

    @app.route("/tuple2")
    def pair() -> tuple[str, int]:
        return "created", 201

    @app.route("/tuple3")
    def triple() -> tuple[dict[str, bool], str, dict[str, str]]:
        return {"ok": True}, "202 Accepted", {"X-Extra": "1"}

    @app.route("/headers-only")
    def headers_only() -> tuple[str, list[tuple[str, str]]]:
        return "x", [("X-A", "1"), ("X-A", "2")]

    @app.route("/response")
    def response() -> Response:
        return Response("plain", status=203, mimetype="text/plain")

    @app.route("/stream")
    def stream() -> t.Iterator[str]:
        def chunks() -> t.Iterator[str]:
            yield "a"
            yield request.path  # the request is still there while streaming
            yield "c"

        return chunks()

    @app.route("/none")
    def nothing() -> None:
        return None

    @app.route("/int")
    def number() -> int:
        return 42

    @app.route("/bad-tuple")
    def bad_tuple() -> tuple[str, int, dict[str, str], int]:
        return "a", 200, {}, 1

    @app.route("/cookie")
    def cookie() -> Response:
        response = Response("set")
        response.set_cookie(
            "session",
            "a b;c",
            max_age=3600,
            path="/",
            domain=".localhost",
            secure=True,
            httponly=True,
            samesite="Lax",
        )
        response.set_cookie("plain", "1")
        return response

    @app.route("/forget")
    def forget() -> Response:
        response = Response("gone")
        response.delete_cookie("plain")
        return response

    @app.route("/read-cookie")
    def read_cookie() -> dict[str, str]:
        return request.cookies.to_dict()

    @app.route("/go")
    def go() -> Response:
        return redirect("/str")

    return app


@pytest.fixture
def client() -> Client:
    app = make_app()
    app.debug = True  # let the TypeErrors reach the test
    return app.test_client()


def test_str_is_html_utf8(client: Client) -> None:
    response = client.get("/str")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.data == "héllo".encode()
    assert response.headers["Content-Length"] == str(len("héllo".encode()))


def test_bytes(client: Client) -> None:
    assert client.get("/bytes").data == b"\x00\x01"


def test_dict_and_list_are_json(client: Client) -> None:
    response = client.get("/dict")
    assert response.mimetype == "application/json"
    assert response.get_json() == {"when": "2026-11-22", "n": 1}
    assert client.get("/list").json == [1, 2, 3]


def test_tuples(client: Client) -> None:
    response = client.get("/tuple2")
    assert (response.status_code, response.text) == (201, "created")
    response = client.get("/tuple3")
    assert response.status == "202 Accepted"
    assert response.headers["X-Extra"] == "1"
    assert response.get_json() == {"ok": True}
    assert client.get("/headers-only").headers.getlist("X-A") == ["1", "2"]


def test_custom_response_class_is_used_for_every_return_type() -> None:
    class MyResponse(Response):
        pass

    class MyAPI(API):
        response_class = MyResponse

    app = MyAPI("custom_response")

    @app.route("/dict")
    def as_dict() -> dict[str, int]:
        return {"a": 1}

    @app.route("/text")
    def as_text() -> str:
        return "x"

    for view in (as_dict, as_text):
        assert type(app.make_response(view(), view)) is MyResponse, view


def test_response_object(client: Client) -> None:
    response = client.get("/response")
    assert response.status_code == 203
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_streaming_body_has_no_length_and_sees_the_request(client: Client) -> None:
    response = client.get("/stream")
    assert response.text == "a/streamc"
    assert "Content-Length" not in response.headers


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/int", "The view function 'number' returned an object of type 'int'"),
        ("/none", "The view function 'nothing' did not return a valid response"),
        ("/bad-tuple", "The view function 'bad_tuple' returned a tuple of 4 items"),
    ],
)
def test_bad_return_values_name_the_view(
    client: Client, path: str, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        client.get(path)


def test_set_cookie_attributes(client: Client) -> None:
    response = client.get("/cookie")
    session, plain = response.headers.getlist("Set-Cookie")
    assert session.startswith("session=a%20b%3Bc; Max-Age=3600; Expires=")
    assert session.endswith(
        "; Domain=.localhost; Path=/; Secure; HttpOnly; SameSite=Lax"
    )
    assert plain == "plain=1; Path=/"


def test_samesite_none_and_partitioned_cookies_are_secure() -> None:
    response = Response()
    response.set_cookie("cross", "1", samesite="none")
    response.set_cookie("chip", "2", samesite="None", partitioned=True)
    response.delete_cookie("gone", samesite="None", partitioned=True)
    cross, chip, gone = response.headers.getlist("Set-Cookie")
    assert cross == "cross=1; Path=/; Secure; SameSite=None"
    assert chip == "chip=2; Path=/; Secure; SameSite=None; Partitioned"
    assert gone.startswith("gone=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    assert gone.endswith("; Path=/; Secure; SameSite=None; Partitioned")


def test_client_keeps_and_forgets_cookies(client: Client) -> None:
    client.get("/cookie")
    assert client.get("/read-cookie").get_json() == {"session": "a b;c", "plain": "1"}
    client.get("/forget")
    assert client.get("/read-cookie").get_json() == {"session": "a b;c"}
    assert client.get_cookie("session") == "a%20b%3Bc"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("Content-Disposition", 'attachment; filename="€.txt"', "filename\\*=UTF-8"),
        ("X Bad", "1", "Invalid header name 'X Bad'"),
        ("X-Colon:", "1", "Invalid header name"),
    ],
)
def test_unsendable_headers_fail_in_the_app_not_in_the_server(
    name: str, value: str, message: str
) -> None:
    app = API("bad_headers")

    @app.route("/")
    def index() -> tuple[str, dict[str, str]]:
        return "x", {name: value}

    app.debug = True  # the error reaches the test (and the debugger) as is
    with pytest.raises(ValueError, match=message):
        app.test_client().get("/")
    app.debug = False  # otherwise it is the app's own 500 page
    assert app.test_client().get("/").status_code == 500
    with pytest.raises(ValueError, match=message):
        Response("x", headers={name: value})({}, lambda status, headers: None)


def test_latin1_header_values_are_fine() -> None:
    response = Response("x", headers={"X-Name": "café"})
    response.check_headers()


@pytest.mark.parametrize("name", ["é", "a b", "a;b", "a=b", ""])
def test_cookie_names_must_be_tokens(name: str) -> None:
    with pytest.raises(ValueError, match="Invalid cookie name"):
        Response().set_cookie(name, "1")


def test_client_without_cookies() -> None:
    app = make_app()
    client = app.test_client(use_cookies=False)
    client.get("/cookie")
    assert client.get("/read-cookie").get_json() == {}


def test_client_as_a_context_manager(client: Client) -> None:
    with client as inside:
        assert inside is client
        inside.get("/cookie")
        assert inside.get_cookie("plain") == "1"
    assert client.get_cookie("plain") is None  # the block's cookies are gone


def test_domain_cookie_reaches_subdomains(client: Client) -> None:
    client.get("/cookie")
    cookies = client.get("http://api.localhost/read-cookie").get_json()
    assert cookies == {"session": "a b;c"}  # "plain" was host-only


def test_redirect(client: Client) -> None:
    response = client.get("/go")
    assert response.status_code == 302
    assert response.headers["Location"] == "/str"
    assert client.get("/go", follow_redirects=True).text == "héllo"


def test_response_as_wsgi_app_and_streaming_close() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> t.Iterator[bytes]:
            yield b"x"
            yield b"y"

        def close(self) -> None:
            closed.append(True)

    response = Response(Body(), mimetype="application/octet-stream")
    assert response.is_streamed
    result = Client(response).get("/")
    assert result.data == b"xy"
    assert closed == [True]


def test_response_constructor_and_setters() -> None:
    response = Response(status=404)
    assert response.status == "404 Not Found"
    response.status_code = 201
    assert response.status == "201 Created"
    response.data = "new"
    assert response.headers["Content-Length"] == "3"
    response = Response("{}", content_type="application/json")
    assert response.content_type == "application/json"
    with pytest.raises(ValueError, match="three digits"):
        Response(status=42)
    with pytest.raises(ValueError, match="newline"):
        Response(headers={"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(TypeError, match="jsonify"):
        Response({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="samesite"):
        Response().set_cookie("a", samesite="sometimes")


def test_json_helpers() -> None:
    response = Response.json({"id": 1, "name": "é"}, status=201)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.data == '{"id": 1, "name": "é"}\n'.encode()
    assert response.json == {"id": 1, "name": "é"}
    response = jsonify(a=1)
    assert response.get_json() == {"a": 1}
    response = jsonify([1], status=201, headers={"X-A": "b"})
    assert response.status_code == 201 and response.headers["X-A"] == "b"


def test_204_has_no_body_nor_length() -> None:
    app = API("empty_app")

    @app.route("/gone", methods=["DELETE"])
    def gone() -> tuple[str, int]:
        return "", 204

    response = app.test_client().delete("/gone")
    assert response.status_code == 204
    assert "Content-Length" not in response.headers
    assert response.data == b""


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (416, "Range Not Satisfiable"),
        (422, "Unprocessable Content"),
        (404, "Not Found"),
    ],
)
def test_reason_phrases_are_rfc_9110_on_every_python(code: int, phrase: str) -> None:
    """Python renamed some phrases only in 3.13; citus's are the same on all."""
    from http import HTTPStatus

    from citus.exceptions import abort

    assert Response(status=code).status == f"{code} {phrase}"
    assert Response(status=HTTPStatus(code)).status == f"{code} {phrase}"
    app = API("phrases")

    @app.route("/")
    def index() -> str:
        abort(code)

    response = app.test_client().get("/")
    assert response.status == f"{code} {phrase}"
    assert phrase in response.text
