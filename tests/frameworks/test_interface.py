"""The frameworks interface, asked in process about real apps of each
framework: what it detects, the routes, the static and template folders, and
forgetting cached templates. (Django's answers need a configured project:
test_django.py asks them in a child process.)"""

from __future__ import annotations

import os
import sys
import typing as t
from pathlib import Path

import pytest

from citus import API
from citus.frameworks import Framework, Route, detect


def make_dirs(root: Path, *names: str) -> None:
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)


def test_plain_wsgi_function_imports_no_framework() -> None:
    before = set(sys.modules)

    def app(environ: t.Any, start_response: t.Any) -> list[bytes]:
        return []

    found = detect(app)
    assert type(found) is Framework
    assert found.banner_kind() == "citus"
    assert found.routes() is None
    assert found.static_folders() == [] and found.template_folders() == []
    new = {name.split(".")[0] for name in set(sys.modules) - before}
    assert not new & {"flask", "django", "bottle", "falcon", "pyramid"}


def test_citus_api(tmp_path: Path) -> None:
    make_dirs(tmp_path, "static", "templates")
    app = API("demo", root_path=str(tmp_path))

    @app.route("/users/<int:id>", methods=["GET", "POST"])
    def user(id: int) -> str:
        return "user"

    found = detect(app)
    assert found.name == "citus" and found.banner_kind() == "citus"
    routes = t.cast("list[Route]", found.routes())
    assert Route("user", ("GET", "HEAD", "OPTIONS", "POST"), "/users/<int:id>") in [
        r._replace(methods=tuple(sorted(r.methods))) for r in routes
    ]
    assert found.static_folders() == [("/static", str(tmp_path / "static"))]
    assert found.template_folders() == [str(tmp_path / "templates")]
    found.set_debug(True)
    assert app.debug is True


def test_citus_api_without_folders(tmp_path: Path) -> None:
    app = API("bare", root_path=str(tmp_path))
    found = detect(app)
    assert found.static_folders() == [] and found.template_folders() == []
    found.templates_changed([])  # nothing to forget: no error


def test_citus_templates_changed(tmp_path: Path) -> None:
    """Outside debug mode the template is cached; templates_changed forgets it."""
    from citus import render_template

    make_dirs(tmp_path, "templates")
    page = tmp_path / "templates" / "page.html"
    page.write_text("one", encoding="utf-8")
    app = API("tpl", root_path=str(tmp_path))
    app.config["TEMPLATES_AUTO_RELOAD"] = False

    @app.route("/")
    def index() -> str:
        return render_template("page.html")

    client = app.test_client()
    assert client.get("/").data == b"one"
    page.write_text("two", encoding="utf-8")
    assert client.get("/").data == b"one"
    detect(app).templates_changed([str(page)])
    assert client.get("/").data == b"two"


def flask_app(root: Path) -> t.Any:
    flask = pytest.importorskip("flask")
    make_dirs(root, "static", "templates", "admin/static", "admin/templates")
    app = flask.Flask("flaskdemo", root_path=str(root))
    admin = flask.Blueprint(
        "admin",
        "flaskdemo.admin",
        root_path=str(root / "admin"),
        static_folder="static",
        template_folder="templates",
        url_prefix="/admin",
    )
    plain = flask.Blueprint("plain", "flaskdemo.plain", root_path=str(root))

    @admin.route("/users", methods=["GET", "POST"])
    def users() -> str:
        return "users"

    @plain.route("/page")
    def page() -> str:
        return flask.render_template("page.html")

    app.register_blueprint(admin)
    app.register_blueprint(plain)
    return app


def test_flask(tmp_path: Path) -> None:
    app = flask_app(tmp_path)
    found = detect(app)
    assert found.name == "Flask" and found.banner_kind() == "Flask"
    routes = {r.endpoint: r for r in t.cast("list[Route]", found.routes())}
    assert routes["admin.users"] == Route(
        "admin.users", ("GET", "HEAD", "OPTIONS", "POST"), "/admin/users"
    )
    assert routes["static"].rule == "/static/<path:filename>"
    assert found.static_folders() == [
        ("/static", str(tmp_path / "static")),
        ("/admin/static", str(tmp_path / "admin" / "static")),
    ]
    assert found.template_folders() == [
        str(tmp_path / "templates"),
        str(tmp_path / "admin" / "templates"),
    ]
    assert found.commands() is app.cli
    found.set_debug(True)
    assert app.debug is True and app.jinja_env.auto_reload is True
    found.set_debug(False)
    assert app.debug is False
    with found.app_context():
        import flask

        assert flask.current_app._get_current_object() is app
        assert set(found.shell_context()) >= {"app", "g"}


def test_flask_templates_changed_outside_debug(tmp_path: Path) -> None:
    """Outside debug mode Jinja never looks at the file again: the cache is
    what templates_changed empties."""
    app = flask_app(tmp_path)
    page = tmp_path / "templates" / "page.html"
    page.write_text("one", encoding="utf-8")
    found = detect(app)
    found.set_debug(False)
    client = app.test_client()
    assert client.get("/page").data == b"one"
    page.write_text("two", encoding="utf-8")
    os.utime(page, ns=(1, 1))  # an mtime Jinja's own check could not miss
    assert client.get("/page").data == b"one"
    found.templates_changed([str(page)])
    assert client.get("/page").data == b"two"


def test_flask_subclass_is_flask(tmp_path: Path) -> None:
    flask = pytest.importorskip("flask")

    class MyFlask(flask.Flask):
        pass

    assert detect(MyFlask("sub", root_path=str(tmp_path))).name == "Flask"


def test_bottle() -> None:
    bottle = pytest.importorskip("bottle")
    app = bottle.Bottle()

    @app.route("/hello/<name>", name="greet")
    def hello(name: str) -> str:
        return name

    @app.route("/any", method="ANY")
    def anything() -> str:
        return "any"

    found = detect(app)
    assert found.name == "Bottle"
    rows = t.cast("list[Route]", found.routes())
    assert rows[0] == Route(
        "greet",
        ("GET",),
        "/hello/<name>",
        view=f"{__name__}.test_bottle.<locals>.hello",
    )
    assert rows[1].methods == () and rows[1].rule == "/any"


def test_bottle_template_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``./views/`` (and the app's other template paths) for live reload, but
    never the project's own folder (Bottle's ``./``), where the code is."""
    bottle = pytest.importorskip("bottle")
    monkeypatch.chdir(tmp_path)
    found = detect(bottle.Bottle())
    assert found.template_folders() == []
    (tmp_path / "views").mkdir()
    assert found.template_folders() == [str(tmp_path / "views")]
    monkeypatch.setattr(bottle, "TEMPLATE_PATH", ["./", "..", "./views/"])
    assert found.template_folders() == [str(tmp_path / "views")]
    bottle.TEMPLATES["page"] = "cached"
    found.templates_changed([str(tmp_path / "views" / "page.tpl")])
    assert "page" not in bottle.TEMPLATES


def test_falcon() -> None:
    falcon = pytest.importorskip("falcon")

    class Things:
        def on_get(self, req: t.Any, resp: t.Any) -> None:
            resp.media = []

        def on_post(self, req: t.Any, resp: t.Any) -> None:
            resp.media = {}

    app = falcon.App()
    app.add_route("/things/{id}", Things())
    found = detect(app)
    assert found.name == "Falcon"
    assert found.routes() == [Route("", ("GET", "POST"), "/things/{id}", view="Things")]


def _falcon_get(app: t.Any, path: str) -> str:
    """Call a Falcon app in process; its status line."""
    from wsgiref.util import setup_testing_defaults

    environ: dict[str, t.Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    answer: list[str] = []
    b"".join(app(environ, lambda status, headers, exc_info=None: answer.append(status)))
    return answer[0]


def test_falcon_debug_lets_errors_reach_the_debugger() -> None:
    falcon = pytest.importorskip("falcon")

    class Boom:
        def on_get(self, req: t.Any, resp: t.Any) -> None:
            raise ZeroDivisionError("boom")

    app = falcon.App()
    app.add_route("/boom", Boom())
    detect(app).set_debug(False)  # left as it is: Falcon answers 500
    assert _falcon_get(app, "/boom").startswith("500")
    assert _falcon_get(app, "/nothere").startswith("404")
    detect(app).set_debug(True)
    with pytest.raises(ZeroDivisionError, match="boom"):
        _falcon_get(app, "/boom")
    assert _falcon_get(app, "/nothere").startswith("404")  # HTTP errors stay

    # An app that handles Exception itself keeps its handler.
    def mine(req: t.Any, resp: t.Any, error: Exception, params: t.Any) -> None:
        resp.status = falcon.HTTP_503

    app = falcon.App()
    app.add_route("/boom", Boom())
    app.add_error_handler(Exception, mine)
    detect(app).set_debug(True)
    assert _falcon_get(app, "/boom").startswith("503")

    # An ASGI app (which citus does not serve) is left alone, without an error.
    asgi = pytest.importorskip("falcon.asgi").App()
    detect(asgi).set_debug(True)


# WebOb, which Pyramid uses, imports the deprecated cgi module.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pyramid() -> None:
    pytest.importorskip("pyramid")
    from pyramid.config import Configurator
    from pyramid.response import Response

    def hello(request: t.Any) -> Response:
        return Response("hi")

    with Configurator() as config:
        config.add_route("hello", "/hello/{name}")
        config.add_view(hello, route_name="hello", request_method="GET")
        config.add_route("bare", "bare")
        app = config.make_wsgi_app()
    found = detect(app)
    assert found.name == "Pyramid"
    assert found.routes() == [
        Route(
            "hello",
            ("GET",),
            "/hello/{name}",
            view=f"{__name__}.test_pyramid.<locals>.hello",
        ),
        Route("bare", (), "/bare"),
    ]
