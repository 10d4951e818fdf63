"""Templates for citus apps, in process: ``render_template``,
``render_template_string``, the ``templates/`` folder, autoescaping, what
templates see, reloading in debug mode, and template errors in the debugger."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import tempfile
import textwrap
import typing as t
import uuid
from pathlib import Path

import jinja2
import pytest

import citus
from citus import API, render_template, render_template_string, request
from citus.debug import PREFIX, DebuggedApplication
from citus.testing import Client

FRAME_KEYS = ("file", "line", "function", "code", "library")

VIEWS = """
    from citus import API, render_template, render_template_string

    app = API(__name__{options})

    @app.route("/page/<name>")
    def page(name):
        return render_template(name, who="<b>Ann</b>")
"""


@pytest.fixture(autouse=True)
def isolated_debugger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The debugger's state file goes to this test's folder, and its path (which
    DebuggedApplication puts in the environment) leaves with the test."""
    state = tmp_path / "debugger-state"
    state.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(state))
    for name in ("CITUS_DEBUGGER_STATE", "CITUS_DEBUGGER_TRUSTED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CITUS_DEBUGGER_PIN", "off")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_app(folder: Path, options: str = "") -> API:
    """Import ``folder/views.py`` (the :data:`VIEWS` app) as a fresh module."""
    path = write(folder / "views.py", VIEWS.format(options=options))
    name = f"citus_templates_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    app: API = module.app
    return app


def touch_later(path: Path, text: str) -> None:
    """Rewrite ``path`` with a modification time clearly after the old one."""
    before = path.stat().st_mtime
    path.write_text(text, encoding="utf-8")
    os.utime(path, (before + 5, before + 5))


# -- finding templates --------------------------------------------------------


def test_templates_folder_next_to_the_module(tmp_path: Path) -> None:
    write(tmp_path / "templates" / "hello.html", "<p>Hello {{ who }}</p>")
    write(tmp_path / "templates" / "users" / "show.html", "user {{ who }}")
    app = load_app(tmp_path)
    assert app.template_folder == str(tmp_path / "templates")
    assert os.path.isabs(app.template_folder)
    client = app.test_client()
    response = client.get("/page/hello.html")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.text == "<p>Hello &lt;b&gt;Ann&lt;/b&gt;</p>"
    assert client.get("/page/users%2Fshow.html").status_code == 404  # one segment
    app.add_url_rule("/show", "show", lambda: render_template("users/show.html"))
    assert client.get("/show").text == "user "


def test_template_folder_relative_or_absolute(tmp_path: Path) -> None:
    write(tmp_path / "views" / "hello.html", "relative")
    app = load_app(tmp_path, options=', template_folder="views"')
    assert app.template_folder == str(tmp_path / "views")
    assert app.test_client().get("/page/hello.html").text == "relative"

    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "hello.html", "absolute")
    app = load_app(tmp_path / "app", options=f", template_folder={str(elsewhere)!r}")
    assert app.template_folder == str(elsewhere)
    assert app.test_client().get("/page/hello.html").text == "absolute"

    app = API("x", root_path=str(tmp_path), template_folder=Path("views"))
    assert app.template_folder == str(tmp_path / "views")


def test_a_missing_template_names_the_folder(tmp_path: Path) -> None:
    app = load_app(tmp_path)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(jinja2.TemplateNotFound) as info:
        app.test_client().get("/page/nope.html")
    folder = str(tmp_path / "templates")
    assert str(info.value) == (
        f"The template 'nope.html' is not in {folder!r}, which does not exist:"
        " create it there, or give API(__name__, template_folder=...) the folder"
        " that holds it."
    )
    write(tmp_path / "templates" / "outer.html", '{% include "inner.html" %}')
    with pytest.raises(jinja2.TemplateNotFound) as info:
        app.test_client().get("/page/outer.html")
    assert f"'inner.html' is not in the folder {folder!r}:" in str(info.value)


def test_outside_a_request_says_what_to_use(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"app\.jinja_env\.get_template"):
        render_template("hello.html")
    with pytest.raises(RuntimeError, match="works only while a request is handled"):
        render_template_string("hi")
    # The environment itself works anywhere, url_for included.
    app = API("x", root_path=str(tmp_path))
    app.config["SERVER_NAME"] = "localhost:8000"
    app.add_url_rule("/a", "a", lambda: "")
    template = app.jinja_env.from_string("{{ url_for('a', _external=True) }}")
    assert template.render() == "http://localhost:8000/a"


# -- autoescaping ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("page.html", True),
        ("page.htm", True),
        ("feed.xml", True),
        ("page.xhtml", True),
        ("icon.svg", True),
        ("PAGE.HTML", True),
        ("mail.txt", False),
        ("script.js", False),
        ("page.html.j2", False),
    ],
)
def test_html_templates_are_autoescaped(
    tmp_path: Path, name: str, escaped: bool
) -> None:
    write(tmp_path / "templates" / name, "{{ who }} {{ who|safe }}")
    app = load_app(tmp_path)
    text = app.test_client().get(f"/page/{name}").text
    if escaped:
        assert text == "&lt;b&gt;Ann&lt;/b&gt; <b>Ann</b>"
    else:
        assert text == "<b>Ann</b> <b>Ann</b>"


def test_string_templates_are_autoescaped() -> None:
    app = API("x")

    @app.route("/")
    def index() -> str:
        return render_template_string(
            "<p>{{ who }}</p>{% autoescape false %}{{ who }}{% endautoescape %}",
            who="<i>",
        )

    assert app.test_client().get("/").text == "<p>&lt;i&gt;</p><i>"


# -- what templates see ---------------------------------------------------------


def test_url_for_request_and_config_in_templates(tmp_path: Path) -> None:
    write(
        tmp_path / "templates" / "nav.html",
        """
        {{ url_for("page", name="a.html") }}|{{
        url_for("page", name="b", _external=True) }}
        {{ request.method }} {{ request.path }} {{ request.args.get("q") }}
        {{ config.GREETING }} {{ config["MAX_FORM_PARTS"] }}
        """,
    )
    app = load_app(tmp_path)
    app.config["GREETING"] = "hi"
    response = app.test_client().get("/page/nav.html?q=x")
    assert response.text.splitlines() == [
        "/page/a.html|http://localhost/page/b",
        "GET /page/nav.html x",
        "hi 1000",
    ]


def test_context_wins_over_the_names_templates_see() -> None:
    app = API("x")

    @app.route("/")
    def index() -> str:
        return render_template_string("{{ config }} {{ request.path }}", config="mine")

    assert app.test_client().get("/").text == "mine /"


def test_imported_macros_see_url_for_and_request(tmp_path: Path) -> None:
    write(
        tmp_path / "templates" / "macros.html",
        '{% macro link(name) %}<a href="{{ url_for("page", name=name) }}">'
        "{{ request.path }}</a>{% endmacro %}",
    )
    write(
        tmp_path / "templates" / "uses.html",
        '{% import "macros.html" as m %}{{ m.link("x.html") }}',
    )
    app = load_app(tmp_path)
    text = app.test_client().get("/page/uses.html").text
    assert text == '<a href="/page/x.html">/page/uses.html</a>'


def test_jinja_env_is_the_apps_own(tmp_path: Path) -> None:
    write(tmp_path / "templates" / "price.html", "{{ 3|money }} {{ site }}")
    app = load_app(tmp_path)
    app.jinja_env.filters["money"] = lambda value: f"${value:.2f}"
    app.jinja_env.globals["site"] = "Shop"
    assert app.test_client().get("/page/price.html").text == "$3.00 Shop"
    assert app.jinja_env is app.jinja_env
    assert API("y").jinja_env is not app.jinja_env


def test_public_names() -> None:
    assert {"render_template", "render_template_string"} <= set(citus.__all__)
    assert citus.render_template is render_template
    assert "render_template_string" in dir(citus)


# -- reloading ----------------------------------------------------------------


def test_debug_mode_uses_an_edited_template_at_once(tmp_path: Path) -> None:
    page = write(tmp_path / "templates" / "page.html", "one")
    app = load_app(tmp_path)
    app.debug = True
    client = app.test_client()
    assert client.get("/page/page.html").text == "one"
    touch_later(page, "two")
    assert client.get("/page/page.html").text == "two"
    assert app.jinja_env.auto_reload is True


def test_outside_debug_mode_templates_are_cached(tmp_path: Path) -> None:
    page = write(tmp_path / "templates" / "page.html", "one")
    app = load_app(tmp_path)
    app.debug = False
    client = app.test_client()
    assert client.get("/page/page.html").text == "one"
    touch_later(page, "two")
    assert client.get("/page/page.html").text == "one"

    # TEMPLATES_AUTO_RELOAD decides when set, both ways.
    app.config["TEMPLATES_AUTO_RELOAD"] = True
    assert client.get("/page/page.html").text == "two"
    app.debug = True
    app.config["TEMPLATES_AUTO_RELOAD"] = False
    touch_later(page, "three")
    assert client.get("/page/page.html").text == "two"


def test_under_the_reloader_templates_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = write(tmp_path / "templates" / "page.html", "one")
    app = load_app(tmp_path)
    app.debug = False
    monkeypatch.setenv("CITUS_RUN_MAIN", "true")
    client = app.test_client()
    assert client.get("/page/page.html").text == "one"
    touch_later(page, "two")
    assert client.get("/page/page.html").text == "two"


# -- errors in the debugger ---------------------------------------------------------

ERRORS = {
    "runtime.html": "<ul>\n{% for i in items %}\n  <li>{{ 10 // i }}</li>\n"
    "{% endfor %}\n</ul>\n",
    "syntax.html": "<p>\n{% if who %}\n  {{ who }\n{% endif %}\n",
    "filter.html": "one\ntwo\n{{ who | shout }}\n",
    "outer.html": '<main>\n{% include "inner.html" %}\n</main>\n',
    "inner.html": "a\nb\nc\n{{ who.missing.attribute }}\n",
}


def debugged_client(tmp_path: Path) -> tuple[Client, API]:
    for name, source in ERRORS.items():
        write(tmp_path / "templates" / name, source)
    app = load_app(tmp_path)
    app.add_url_rule(
        "/runtime", "runtime", lambda: render_template("runtime.html", items=[2, 0])
    )
    app.add_url_rule(
        "/string",
        "string",
        lambda: render_template_string(
            "first\n{{ who.upper() }}\n{{ 1 // 0 }}\n", who="ann"
        ),
    )
    app.debug = True
    debugged = DebuggedApplication(app, evalex=True)
    return Client(debugged, base_url="http://localhost"), app


def own_frames(client: Client, path: str) -> tuple[dict[str, t.Any], list[t.Any]]:
    response = client.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 500
    doc = json.loads(response.text)
    frames = [f for block in doc["chain"] for f in block["frames"] if not f["library"]]
    return doc, frames


@pytest.mark.parametrize(
    ("path", "template", "line", "code", "function", "error"),
    [
        (
            "/runtime",
            "runtime.html",
            3,
            "<li>{{ 10 // i }}</li>",
            "top-level template code",
            "ZeroDivisionError",
        ),
        (
            "/page/syntax.html",
            "syntax.html",
            3,
            "{{ who }",
            "template",
            "jinja2.exceptions.TemplateSyntaxError",
        ),
        (
            "/page/filter.html",
            "filter.html",
            3,
            "{{ who | shout }}",
            "template",
            "jinja2.exceptions.TemplateAssertionError",
        ),
        (
            "/page/outer.html",
            "inner.html",
            4,
            "{{ who.missing.attribute }}",
            "top-level template code",
            "jinja2.exceptions.UndefinedError",
        ),
    ],
)
def test_a_template_error_is_a_frame_of_the_template(
    tmp_path: Path,
    path: str,
    template: str,
    line: int,
    code: str,
    function: str,
    error: str,
) -> None:
    client, app = debugged_client(tmp_path)
    doc, frames = own_frames(client, path)
    assert doc["error"]["type"] == error
    last = frames[-1]
    assert {key: last[key] for key in FRAME_KEYS} == {
        "file": os.path.join(app.template_folder, template),
        "line": line,
        "function": function,
        "code": code,
        "library": False,
    }
    # The view's frame comes before it, as the project's own code too.
    assert frames[0]["file"].endswith(".py")
    # The terminal's text names the template's place, as Python's would.
    file_line = f'File "{last["file"]}", line {line}, in {function}'
    assert file_line in doc["traceback"]


def test_an_included_template_shows_both_templates(tmp_path: Path) -> None:
    client, app = debugged_client(tmp_path)
    _, frames = own_frames(client, "/page/outer.html")
    places = [(os.path.basename(f["file"]), f["line"]) for f in frames[1:]]
    assert places == [("outer.html", 2), ("inner.html", 4)]


def test_the_page_shows_the_template_source_around_the_line(tmp_path: Path) -> None:
    client, app = debugged_client(tmp_path)
    response = client.get("/runtime", headers={"Accept": "text/html"})
    assert response.status_code == 500
    page = response.text
    filename = os.path.join(app.template_folder, "runtime.html")
    head = page.index(f'<span class="file">{filename}</span>')
    frame = page[page.rindex("<li", 0, head) : page.index("</li>", head)]
    assert frame.startswith('<li class="frame" ')  # not folded as a library's
    assert "top-level template code" in frame
    assert '<span class="line current"><span class="ln">3</span>' in frame
    for number, text in enumerate(ERRORS["runtime.html"].splitlines(), 1):
        escaped = text.replace("<", "&lt;").replace(">", "&gt;")
        assert f'<span class="ln">{number}</span>{escaped}\n' in frame
    # The template's variables are the frame's locals.
    assert "<tr><th>items</th><td>[2, 0]</td></tr>" in frame


def test_a_console_in_the_template_frame_sees_its_variables(tmp_path: Path) -> None:
    client, app = debugged_client(tmp_path)
    page = client.get("/runtime", headers={"Accept": "text/html"}).text
    filename = os.path.join(app.template_folder, "runtime.html")
    head = page.index(f'<span class="file">{filename}</span>')
    frame = re.findall(r'data-frame="(\d+)" title', page[head:])[0]
    fields = {
        "s": re.findall(r'data-secret="([^"]+)"', page)[0],
        "tb": re.findall(r'data-traceback="([^"]+)"', page)[0],
        "frame": frame,
    }

    def run(command: str) -> str:
        response = client.post(PREFIX + "/eval", data={**fields, "cmd": command})
        assert response.status_code == 200, response.text
        return str(json.loads(response.text)["output"])

    assert run("i, items") == "(0, [2, 0])\n"
    assert run("request.path") == "'/runtime'\n"


def test_a_block_of_an_extended_template_is_named(tmp_path: Path) -> None:
    write(
        tmp_path / "templates" / "base.html",
        "<main>\n{% block content %}{% endblock %}\n</main>\n",
    )
    write(
        tmp_path / "templates" / "child.html",
        '{% extends "base.html" %}\n'
        "{% block content %}\n{{ 1 // 0 }}\n{% endblock %}\n",
    )
    client, app = debugged_client(tmp_path)
    _, frames = own_frames(client, "/page/child.html")
    places = [(os.path.basename(f["file"]), f["line"], f["function"]) for f in frames]
    assert places[1:] == [
        ("child.html", 1, "top-level template code"),
        ("base.html", 2, "top-level template code"),
        ("child.html", 3, "block 'content'"),
    ]


def test_a_string_template_error_shows_its_lines(tmp_path: Path) -> None:
    client, _ = debugged_client(tmp_path)
    doc, frames = own_frames(client, "/string")
    last = frames[-1]
    assert last["file"].startswith("<template ")
    assert (last["line"], last["code"]) == (3, "{{ 1 // 0 }}")
    page = client.get("/string", headers={"Accept": "text/html"}).text
    assert '<span class="ln">2</span>{{ who.upper() }}' in page


def test_string_template_lines_are_counted_as_jinja_counts_them(
    tmp_path: Path,
) -> None:
    client, app = debugged_client(tmp_path)
    app.add_url_rule(
        "/crlf",
        "crlf",
        lambda: render_template_string("one\r\ntwo\u2028still two\rthree {{ 1 // 0 }}"),
    )
    _, frames = own_frames(client, "/crlf")
    assert (frames[-1]["line"], frames[-1]["code"]) == (3, "three {{ 1 // 0 }}")


def test_errors_reach_the_apps_handlers_outside_debug_mode(tmp_path: Path) -> None:
    client, app = debugged_client(tmp_path)
    app.debug = False
    app.logger.disabled = True
    try:
        response = app.test_client().get("/runtime")
    finally:
        app.logger.disabled = False
    assert response.status_code == 500
    assert "runtime.html" not in response.text


def test_request_proxy_in_templates_is_the_current_request() -> None:
    app = API("x")

    @app.route("/<word>")
    def echo(word: str) -> str:
        assert request.view_args == {"word": word}  # type: ignore[attr-defined]
        return render_template_string("{{ request.view_args.word }}")

    client = app.test_client()
    assert [client.get(f"/{w}").text for w in ("a", "b")] == ["a", "b"]
