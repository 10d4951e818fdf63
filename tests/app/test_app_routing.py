"""Routing through the test client: converters, methods, 404/405, slashes,
url_for, hosts and subdomains."""

from __future__ import annotations

import uuid

import pytest

from citus import API, request, url_for
from citus.routing import BuildError


@pytest.fixture
def app() -> API:
    app = API("routing_app")

    @app.route("/")
    def index() -> str:
        return "index"

    @app.route("/users/<name>")
    def by_name(name: str) -> str:
        return f"name:{name}"

    @app.route("/users/<int:user_id>")
    def by_id(user_id: int) -> str:
        return f"id:{user_id!r}"

    @app.route("/users/new")
    def new_user() -> str:
        return "new"

    @app.route("/price/<float:amount>")
    def price(amount: float) -> str:
        return f"price:{amount!r}"

    @app.route("/files/<path:subpath>")
    def files(subpath: str) -> str:
        return f"path:{subpath}"

    @app.route("/things/<uuid:thing>")
    def thing(thing: uuid.UUID) -> str:
        return f"uuid:{thing.hex}"

    @app.route("/items", methods=["GET", "POST"])
    def items() -> str:
        return f"items:{request.method}"

    @app.route("/only-post", methods=["POST"])
    def only_post() -> str:
        return "posted"

    @app.route("/folder/")
    def folder() -> str:
        return "folder"

    return app


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/", "index"),
        ("/users/alice", "name:alice"),
        ("/users/42", "id:42"),
        ("/users/new", "new"),
        ("/price/1.5", "price:1.5"),
        ("/files/a/b/c.txt", "path:a/b/c.txt"),
        ("/users/caf%C3%A9", "name:café"),
        (
            "/things/12345678-1234-5678-1234-567812345678",
            "uuid:12345678123456781234567812345678",
        ),
    ],
)
def test_converters(app: API, path: str, body: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 200
    assert response.text == body


@pytest.mark.parametrize(
    ("endpoint", "values"),
    [
        ("price", {"amount": 1e20}),
        ("price", {"amount": 1e-7}),
        ("price", {"amount": 2}),
        ("price", {"amount": 0.1 + 0.2}),
        ("by_id", {"user_id": 7}),
        ("by_name", {"name": "a b?é#%"}),
        ("files", {"subpath": "a b/c%d.txt"}),
        ("thing", {"thing": uuid.UUID(int=5)}),
    ],
)
def test_url_for_round_trips_through_the_converters(
    app: API, endpoint: str, values: dict[str, object]
) -> None:
    """Whatever url_for builds routes back to the same view and value."""
    url = app.url_for(endpoint, **values)
    response = app.test_client().get(url)
    assert response.status_code == 200, url
    (value,) = values.values()
    if endpoint == "price":
        expected = f"price:{float(value)!r}"  # type: ignore[arg-type]
    elif endpoint == "by_id":
        expected = f"id:{value!r}"
    elif endpoint == "thing":
        expected = f"uuid:{getattr(value, 'hex', '')}"
    else:
        expected = f"{'name' if endpoint == 'by_name' else 'path'}:{value}"
    assert response.text == expected, url


def test_url_for_refuses_a_slash_in_a_string_variable(app: API) -> None:
    """Servers decode %2F before routing, so such a URL could never match."""
    with pytest.raises(BuildError, match="<path:name>"):
        app.url_for("by_name", name="a/b")


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -1.5])
def test_url_for_refuses_floats_no_url_can_hold(app: API, bad: float) -> None:
    with pytest.raises(BuildError, match="does not accept amount="):
        app.url_for("price", amount=bad)


def test_specific_rules_win_whatever_the_order(app: API) -> None:
    # /users/new was added after /users/<name>, and still wins.
    assert app.test_client().get("/users/new").text == "new"


@pytest.mark.parametrize(
    "path",
    ["/nope", "/price/1", "/users/a/b", "/files/", "/price/" + "9" * 400 + ".5"],
)
def test_no_match_is_404(app: API, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 404
    assert "Not Found" in response.text


def test_wrong_method_is_405_with_allow(app: API) -> None:
    response = app.test_client().delete("/items")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    response = app.test_client().get("/only-post")
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"


def test_post_route(app: API) -> None:
    assert app.test_client().post("/items").text == "items:POST"


def test_head_is_served_for_get_without_body(app: API) -> None:
    response = app.test_client().head("/users/alice")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(len("name:alice"))


def test_options_is_answered_with_allow(app: API) -> None:
    response = app.test_client().options("/items")
    assert response.status_code == 200
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert response.data == b""


def test_options_star_lists_every_method(app: API) -> None:
    response = app.test_client().options("/", environ_overrides={"PATH_INFO": "*"})
    assert response.status_code == 200
    allowed = response.headers["Allow"].split(", ")
    assert {"GET", "HEAD", "OPTIONS", "POST"} <= set(allowed)
    assert allowed == sorted(allowed)


def test_explicit_options_view_is_called() -> None:
    app = API("options_app")

    @app.route("/cors", methods=["GET", "OPTIONS"])
    def cors() -> tuple[str, int, dict[str, str]]:
        return "", 204, {"Access-Control-Allow-Origin": "*"}

    response = app.test_client().options("/cors")
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_missing_trailing_slash_redirects_308(app: API) -> None:
    client = app.test_client()
    response = client.get("/folder?x=1")
    assert response.status_code == 308
    assert response.headers["Location"] == "/folder/?x=1"
    followed = client.get("/folder", follow_redirects=True)
    assert followed.text == "folder"
    assert [r.status_code for r in followed.history] == [308]


def test_slash_redirect_never_leaves_the_site() -> None:
    from citus.routing import BaseConverter

    class Anything(BaseConverter):
        regex = ".*"
        part_isolating = False

    app = API("open_redirect")
    app.url_map.converters["anything"] = Anything

    @app.route("/<anything:rest>/")
    def catch_all(rest: str) -> str:
        return rest

    response = app.test_client().get(
        "/", environ_overrides={"PATH_INFO": "//evil.example"}
    )
    assert response.status_code == 308
    assert response.headers["Location"] == "/evil.example/"


def test_rule_without_slash_does_not_match_with_one(app: API) -> None:
    assert app.test_client().get("/items/").status_code == 404


def test_url_for_builds_paths_and_query(app: API) -> None:
    assert app.url_for("index") == "/"
    assert app.url_for("by_id", user_id=7) == "/users/7"
    assert app.url_for("by_name", name="a b?c") == "/users/a%20b%3Fc"
    assert app.url_for("files", subpath="a/b c") == "/files/a/b%20c"
    assert app.url_for("by_id", user_id=7, tab="posts", tag=["a", "b"]) == (
        "/users/7?tab=posts&tag=a&tag=b"
    )
    assert app.url_for("index", _anchor="top") == "/#top"


def test_url_for_errors_name_the_problem(app: API) -> None:
    with pytest.raises(BuildError, match="no such endpoint"):
        app.url_for("missing")
    with pytest.raises(BuildError, match="user_id"):
        app.url_for("by_id")
    with pytest.raises(BuildError, match="SERVER_NAME"):
        app.url_for("index", _external=True)
    # A value its converter refuses is named, with the converter's reason.
    with pytest.raises(
        BuildError, match=r"does not accept user_id='seven' \(invalid literal"
    ):
        app.url_for("by_id", user_id="seven")
    with pytest.raises(BuildError, match=r"user_id=-1 \(<int> does not accept"):
        app.url_for("by_id", user_id=-1)
    with pytest.raises(BuildError, match=r"with the method 'DELETE': its rules"):
        app.url_for("index", _method="DELETE")


def test_url_for_external_inside_a_request() -> None:
    app = API("external_app")

    @app.route("/here")
    def here() -> dict[str, str]:
        return {
            "relative": url_for("here", q="1"),
            "external": url_for("here", _external=True),
            "https": app.url_for("here", _scheme="https"),
        }

    data = app.test_client().get("http://example.test:8080/here").get_json()
    assert data == {
        "relative": "/here?q=1",
        "external": "http://example.test:8080/here",
        "https": "https://example.test:8080/here",
    }


def test_bad_rules_fail_at_definition() -> None:
    app = API("bad_rules")
    with pytest.raises(ValueError, match="must start with a slash"):
        app.route("users")(lambda: "")
    with pytest.raises(LookupError, match="unknown converter 'nope'"):
        app.route("/<nope:x>")(lambda x: "")
    with pytest.raises(TypeError, match=r"methods=\['POST'\]"):
        app.route("/p", methods="POST")(lambda: "")  # type: ignore[arg-type]

    @app.route("/a")
    def view() -> str:
        return ""

    def other() -> str:
        return ""

    other.__name__ = "view"
    with pytest.raises(ValueError, match="already belongs"):
        app.route("/b")(other)


def test_iter_rules_lists_what_citus_routes_prints(app: API) -> None:
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    rule = rules["/items"]
    assert rule.endpoint == "items"
    assert rule.methods == {"GET", "HEAD", "OPTIONS", "POST"}
    assert rule.host is None and rule.subdomain is None
    assert len(app.url_map) == len(rules)


# -- virtual hosts -------------------------------------------------------------


@pytest.fixture
def hosted() -> API:
    app = API("hosted_app")
    app.config["SERVER_NAME"] = "localhost:8000"

    @app.route("/")
    def main() -> str:
        return "main"

    @app.route("/", subdomain="api")
    def api_root() -> str:
        return "api"

    @app.route("/who", subdomain="<user>")
    def user_site(user: str) -> str:
        return f"user:{user}"

    @app.route("/", host="admin.example.test")
    def admin() -> str:
        return "admin"

    @app.route("/links", subdomain="api")
    def links() -> dict[str, str]:
        return {"main": url_for("main"), "api": url_for("api_root")}

    return app


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("http://localhost:8000/", "main"),
        ("http://api.localhost:8000/", "api"),
        ("http://API.LOCALHOST:8000/", "api"),
        ("http://bob.localhost:8000/who", "user:bob"),
        ("http://admin.example.test/", "admin"),
        # Hosts outside SERVER_NAME (the bare IP) still reach the plain rules.
        ("http://127.0.0.1:8000/", "main"),
    ],
)
def test_subdomain_and_host_matching(hosted: API, url: str, body: str) -> None:
    response = hosted.test_client().get(url)
    assert response.status_code == 200, response.text
    assert response.text == body


def test_host_header_selects_the_subdomain(hosted: API) -> None:
    client = hosted.test_client()
    assert client.get("/", headers={"Host": "api.localhost:8000"}).text == "api"
    # A plain rule does not answer on a subdomain.
    assert client.get("http://other.localhost:8000/").status_code == 404
    # The port is part of SERVER_NAME.
    assert client.get("http://api.localhost:9999/").text == "main"


def test_empty_subdomain_means_the_bare_server_name_only() -> None:
    app = API("bare_only")
    app.config["SERVER_NAME"] = "localhost:8000"

    @app.route("/", subdomain="")
    def bare() -> str:
        return "bare"

    @app.route("/other")
    def other() -> str:
        return "other"

    client = app.test_client()
    assert client.get("http://localhost:8000/").text == "bare"
    assert client.get("http://localhost:8000/other").text == "other"
    assert client.get("http://api.localhost:8000/").status_code == 404
    assert client.get("http://127.0.0.1:8000/").status_code == 404
    assert app.url_for("bare") == "/"


def test_test_client_sends_requests_to_server_name() -> None:
    app = API("client_host")
    app.config["SERVER_NAME"] = "localhost:8000"

    @app.route("/", subdomain="")
    def bare() -> str:
        return request.host

    assert app.test_client().get("/").text == "localhost:8000"
    other = app.test_client(base_url="http://127.0.0.1:8000")
    assert other.get("/").status_code == 404  # not the bare SERVER_NAME
    app.config["SERVER_NAME"] = None
    assert app.test_client().get("/").status_code == 404  # subdomain rules off


def test_subdomain_rules_need_server_name() -> None:
    app = API("no_server_name")

    @app.route("/", subdomain="api")
    def api_root() -> str:
        return "api"

    assert app.test_client().get("http://api.localhost:8000/").status_code == 404


def test_url_for_across_subdomains(hosted: API) -> None:
    data = hosted.test_client().get("http://api.localhost:8000/links").get_json()
    assert data == {"main": "http://localhost:8000/", "api": "/"}
    assert hosted.url_for("api_root") == "http://api.localhost:8000/"
    assert hosted.url_for("user_site", user="ann") == "http://ann.localhost:8000/who"
    assert hosted.url_for("main", _external=True) == "http://localhost:8000/"


def test_server_name_without_a_port_keeps_the_requests_port() -> None:
    app = API("portless")
    app.config["SERVER_NAME"] = "localhost"

    @app.route("/")
    def main() -> str:
        return url_for("api_root")

    @app.route("/", subdomain="api")
    def api_root() -> str:
        return url_for("main")

    client = app.test_client()
    # Any port matches, and the URLs built during the request keep it.
    assert client.get("http://localhost:8001/").text == "http://api.localhost:8001/"
    assert client.get("http://api.localhost:8001/").text == "http://localhost:8001/"
    assert client.get("http://localhost/").text == "http://api.localhost/"
    assert app.url_for("api_root") == "http://api.localhost/"


def test_mounted_under_a_prefix(app: API) -> None:
    @app.route("/where")
    def where() -> dict[str, str]:
        return {"url": url_for("by_id", user_id=1), "path": request.path}

    response = app.test_client().get(
        "/where", environ_overrides={"SCRIPT_NAME": "/mount"}
    )
    assert response.get_json() == {"url": "/mount/users/1", "path": "/where"}


def test_strict_slashes_false_matches_both_forms_without_redirect() -> None:
    app = API("loose_slashes")

    @app.route("/docs/", strict_slashes=False)
    def docs() -> str:
        return "docs"

    @app.route("/items", methods=["GET", "POST"], strict_slashes=False)
    def items() -> str:
        return "items"

    @app.route("/strict/")
    def strict() -> str:
        return "strict"

    client = app.test_client()
    for path, body in [
        ("/docs/", "docs"),
        ("/docs", "docs"),
        ("/items", "items"),
        ("/items/", "items"),
    ]:
        response = client.get(path)
        assert (response.status_code, response.text) == (200, body), path
    assert client.post("/items/").text == "items"
    assert client.put("/items/").headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert app.url_for("docs") == "/docs/"
    # The default is unchanged: a redirect to the rule's own form.
    assert client.get("/strict").status_code == 308
