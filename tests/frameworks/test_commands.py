"""``citus routes``, ``citus shell`` and the app's own commands on real
projects: Flask's tutorial app, a ``startproject`` Django project, and one
small app of each other framework. All through the real ``citus`` program."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import clean_env, edit

#: A deadline for one short ``citus`` command (no server).
COMMAND_TIMEOUT = 60


def citus(
    *args: str, cwd: Path, input: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name(
        "citus.exe" if sys.platform == "win32" else "citus"
    )
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        env=clean_env(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


def rows(result: subprocess.CompletedProcess[str]) -> list[list[str]]:
    """The table ``citus routes`` printed, as cells cut at the columns that
    its line of dashes marks (so that an empty cell stays a cell)."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip("\n").splitlines()
    assert set(lines[1].replace(" ", "")) == {"-"}, result.stdout
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    starts = [start for start, _ in spans] + [None]
    return [
        [line[a:b].strip() for a, b in zip(starts, starts[1:], strict=False)]
        for line in [lines[0], *lines[2:]]
    ]


def test_flaskr_routes(flaskr: Path) -> None:
    table = rows(citus("--app", "flaskr", "routes", cwd=flaskr))
    assert table[0] == ["Endpoint", "Methods", "Rule"]
    assert ["auth.login", "GET, POST", "/auth/login"] in table
    assert ["blog.delete", "POST", "/<int:id>/delete"] in table
    assert ["static", "GET", "/static/<path:filename>"] in table
    endpoints = [row[0] for row in table[1:]]
    assert endpoints == sorted(endpoints)
    table = rows(citus("--app", "flaskr", "routes", "--all-methods", cwd=flaskr))
    assert ["hello", "GET, HEAD, OPTIONS", "/hello"] in table


def test_flaskr_init_db_command(flaskr: Path) -> None:
    """flaskr's own ``init-db`` (a plain click command that needs the app
    context) runs through citus and makes the SQLite database."""
    result = citus("--app", "flaskr", "init-db", cwd=flaskr)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Initialized the database.\n"
    assert (flaskr / "instance" / "flaskr.sqlite").is_file()
    result = citus("--app", "flaskr", "init-db", "--help", cwd=flaskr)
    assert "Clear the existing data and create new tables." in result.stdout


def test_help_lists_the_app_commands(flaskr: Path) -> None:
    """As ``flask --app flaskr --help`` does, wherever ``--app`` stands and
    wherever ``CITUS_APP`` comes from."""
    (flaskr / "app.env").write_text("CITUS_APP=flaskr\n", encoding="utf-8")
    for args, env in (
        (["--app", "flaskr"], None),
        (["--app", "flaskr", "--help"], None),
        (["-Aflaskr", "--help"], None),
        (["--help", "--app", "flaskr"], None),
        (["--help"], {"CITUS_APP": "flaskr"}),
        (["--help", "--env-file", "app.env"], None),
        (["--help"], {"CITUS_ENV_FILE": "app.env"}),
    ):
        result = citus(*args, cwd=flaskr, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert "Commands of the app 'flaskr':\n  init-db  Clear the existing" in (
            result.stdout
        ), args
    (flaskr / "app.env").rename(flaskr / ".env")
    result = citus("--help", cwd=flaskr)
    assert "Commands of the app 'flaskr':\n  init-db" in result.stdout
    (flaskr / ".env").unlink()
    result = citus("--help", cwd=flaskr)
    assert "Commands of the app" not in result.stdout
    # A wrong --env-file after --help: the help all the same, and no traceback.
    result = citus("--help", "--env-file", "nope.env", cwd=flaskr)
    assert result.returncode == 0, result.stderr
    assert "Commands of the app" not in result.stdout
    assert "Traceback" not in result.stderr


def test_help_says_why_the_app_commands_are_missing(flaskr: Path) -> None:
    """The help is printed all the same, and stderr says what went wrong, as
    ``flask --app nope --help`` does."""
    result = citus("--app", "flaskrr", "--help", cwd=flaskr)
    assert result.returncode == 0
    assert "Commands:\n" in result.stdout and "Commands of the app" not in (
        result.stdout
    )
    assert result.stderr.startswith("Error: Could not import 'flaskrr'")
    (flaskr / "broken.py").write_text("raise ValueError('bad')\n", encoding="utf-8")
    result = citus("--app", "broken", "--help", cwd=flaskr)
    assert result.returncode == 0 and "Commands:\n" in result.stdout
    assert 'broken.py", line 1' in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: bad")


def test_unknown_command_with_a_flask_app(flaskr: Path) -> None:
    result = citus("--app", "flaskr", "nosuch", cwd=flaskr)
    assert result.returncode == 2
    assert "Error: No such command 'nosuch'." in result.stderr


def test_app_command_of_an_app_that_cannot_be_found(tmp_path: Path) -> None:
    result = citus("--app", "missing", "init-db", cwd=tmp_path)
    assert result.returncode == 2
    assert "Error: Could not import 'missing'" in result.stderr
    assert "Error: No such command 'init-db'." in result.stderr


def test_blueprint_commands_and_app_cli_commands(tmp_path: Path) -> None:
    pytest.importorskip("flask")
    (tmp_path / "bp.py").write_text(
        textwrap.dedent(
            """
            import click
            from flask import Blueprint, Flask, current_app

            app = Flask(__name__)
            bp = Blueprint("users", __name__)

            @bp.cli.command("create")
            @click.argument("name")
            def create(name):
                click.echo(f"created {name} in {current_app.name}")

            @app.cli.command()
            def hello():
                click.echo(f"hello, debug={current_app.debug}")

            app.register_blueprint(bp)
            """
        ),
        encoding="utf-8",
    )
    result = citus("--app", "bp", "users", "create", "ana", cwd=tmp_path)
    assert result.stdout == "created ana in bp\n", result.stderr
    result = citus("--app", "bp", "--debug", "hello", cwd=tmp_path)
    assert result.stdout == "hello, debug=True\n", result.stderr


def test_commands_that_installed_packages_add_to_flask(tmp_path: Path) -> None:
    """A package's ``flask.commands`` entry point (how Flask plugins add
    commands to ``flask``) runs as ``citus --app X NAME`` too, in the app
    context, and is in the help."""
    pytest.importorskip("flask")
    site = tmp_path / "site"
    info = site / "flaskplug-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flaskplug\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[flask.commands]\nplug = flaskplug:plug\nbroken = flaskplug:missing\n",
        encoding="utf-8",
    )
    (site / "flaskplug.py").write_text(
        textwrap.dedent(
            """
            import click
            from flask import current_app

            @click.command(help="A plugin's command.")
            def plug():
                click.echo(f"plugged into {current_app.name}")
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "app.py").write_text(
        "from flask import Flask\n\napp = Flask(__name__)\n", encoding="utf-8"
    )
    env = {"PYTHONPATH": str(site)}
    result = citus("plug", cwd=tmp_path, env=env)
    assert result.stdout == "plugged into app\n", result.stderr
    result = citus("--app", "app", "--help", cwd=tmp_path, env=env)
    assert "Commands of the app 'app':\n  plug  A plugin's command." in (
        result.stdout
    ), result.stderr


def test_flaskr_shell_has_the_app_context(flaskr: Path) -> None:
    code = (
        "from flask import current_app\n"
        "print('SAME', current_app._get_current_object() is app, g)\n"
    )
    result = citus("--app", "flaskr", "shell", cwd=flaskr, input=code)
    assert result.returncode == 0, result.stderr
    assert "SAME True <flask.g of 'flaskr'>" in result.stdout
    assert "Flask names: g." in result.stderr


def test_django_routes_found_from_manage_py(django_site: Path) -> None:
    """In the folder of manage.py, no --app is needed."""
    table = rows(citus("routes", cwd=django_site))
    assert table[0] == ["Pattern", "Name", "View"]
    assert ["/admin/login/", "admin:login"] == table[2][:2]
    assert table[2][2].endswith("AdminSite.login")
    assert ["/", "home", "mysite.urls.home"] == table[-1]
    # The order is Django's (patterns match in order), unless asked otherwise.
    assert table[1][0] == "/admin/"
    by_name = rows(citus("routes", "--sort", "endpoint", cwd=django_site))
    assert [r[1] for r in by_name[1:]] == sorted(r[1] for r in by_name[1:])
    assert rows(citus("--app", "mysite.wsgi", "routes", cwd=django_site)) == table


def test_django_routes_with_broken_urls(django_site: Path) -> None:
    """The project's own error, with its traceback, status 1."""
    urls = django_site / "mysite" / "urls.py"
    urls.write_text(
        urls.read_text(encoding="utf-8") + "raise ValueError('bad urls')\n",
        encoding="utf-8",
    )
    result = citus("routes", cwd=django_site)
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith("ValueError: bad urls")
    assert 'urls.py", line' in result.stderr
    assert "commands.py" not in result.stderr


def test_django_shell_has_the_models(django_site: Path) -> None:
    code = "print('MODELS', User.objects.model._meta.label, Group.__name__)\n"
    result = citus("shell", cwd=django_site, input=code)
    assert result.returncode == 0, result.stderr
    assert "MODELS auth.User Group" in result.stdout
    assert "App: 'mysite.wsgi' (django.core.handlers.wsgi.WSGIHandler)" in result.stderr


def test_django_settings_module_from_the_environment(django_site: Path) -> None:
    """DJANGO_SETTINGS_MODULE wins over manage.py's, as in manage.py."""
    settings = django_site / "mysite" / "settings.py"
    other = django_site / "mysite" / "other_settings.py"
    other.write_text(
        settings.read_text(encoding="utf-8")
        + "\nWSGI_APPLICATION = 'mysite.other_wsgi.application'\n",
        encoding="utf-8",
    )
    (django_site / "mysite" / "other_wsgi.py").write_text(
        "from django.core.wsgi import get_wsgi_application\n"
        "application = get_wsgi_application()\n",
        encoding="utf-8",
    )
    code = "import os; print('SETTINGS', os.environ['DJANGO_SETTINGS_MODULE'])\n"
    env = {"DJANGO_SETTINGS_MODULE": "mysite.other_settings"}
    result = citus("shell", cwd=django_site, input=code, env=env)
    assert "SETTINGS mysite.other_settings" in result.stdout, result.stderr
    assert "App: 'mysite.other_wsgi'" in result.stderr


def test_django_split_settings(django_site: Path) -> None:
    """Settings split into a package (``settings/local.py`` star-importing
    ``settings/base.py``, as cookiecutter-django lays them out) are followed to
    ``WSGI_APPLICATION``; without it, the ``wsgi`` module above them is used."""
    package = django_site / "mysite" / "settings"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    base = package / "base.py"
    (django_site / "mysite" / "settings.py").rename(base)
    edit(base, "Path(__file__).resolve().parent.parent", "Path(__file__).parents[2]")
    (package / "local.py").write_text(
        "from .base import *  # noqa: F403\n\nDEBUG = True\n", encoding="utf-8"
    )
    for name in ("manage.py", "mysite/wsgi.py"):
        edit(django_site / name, "'mysite.settings'", "'mysite.settings.local'")
    code = "print('APP', type(app).__name__)\n"
    result = citus("shell", cwd=django_site, input=code)
    assert "APP WSGIHandler" in result.stdout, result.stderr
    assert "App: 'mysite.wsgi'" in result.stderr
    edit(base, "WSGI_APPLICATION = 'mysite.wsgi.application'", "")
    result = citus("shell", cwd=django_site, input=code)
    assert "App: 'mysite.wsgi'" in result.stderr, result.stderr


def test_manage_py_without_settings(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("print('hi')\n", encoding="utf-8")
    result = citus("routes", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Error: {str(tmp_path / 'manage.py')!r} does not set"
        " DJANGO_SETTINGS_MODULE, so citus cannot tell which Django project it"
        " runs. Name the project's WSGI module: --app mysite.wsgi."
    )


BOTTLE = """
    import bottle

    app = bottle.Bottle()

    @app.route("/hello/<name>", name="hello")
    def hello(name):
        return name

    @app.post("/items")
    def add():
        return "added"
"""

FALCON = """
    import falcon

    class Items:
        def on_get(self, req, resp):
            resp.media = []

    app = falcon.App()
    app.add_route("/items", Items())
"""

PYRAMID = """
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyramid.config import Configurator
    from pyramid.response import Response

    def hello(request):
        return Response("hi")

    with Configurator() as config:
        config.add_route("hello", "/hello/{name}")
        config.add_view(hello, route_name="hello")
        # Routes match in the order they were added: the table keeps it.
        config.add_route("about", "/hello/about")
        config.add_view(hello, route_name="about", request_method="GET")
        app = config.make_wsgi_app()
"""


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "bottle",
            BOTTLE,
            [
                ["Rule", "Methods", "View", "Name"],
                ["/hello/<name>", "GET", "app.hello", "hello"],
                ["/items", "POST", "app.add", ""],
            ],
        ),
        (
            "falcon",
            FALCON,
            [["Route", "Methods", "Resource"], ["/items", "GET", "Items"]],
        ),
        (
            "pyramid",
            PYRAMID,
            [
                ["Name", "Methods", "Pattern", "View"],
                ["hello", "ANY", "/hello/{name}", "app.hello"],
                ["about", "GET", "/hello/about", "app.hello"],
            ],
        ),
    ],
)
def test_other_frameworks_routes(
    tmp_path: Path, module: str, source: str, expected: list[list[str]]
) -> None:
    pytest.importorskip(module)
    (tmp_path / "app.py").write_text(textwrap.dedent(source), encoding="utf-8")
    assert rows(citus("routes", cwd=tmp_path)) == expected
