"""A Flask page and a Django page follow their edits under ``citus run``."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from .conftest import HEARD_HELLO, Watched, write

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]
    Opener = t.Callable[[], Watched]

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

FLASK = """\
import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return (
        "<!doctype html><html><head><title>flask</title></head><body>"
        '<h1 id="msg">{message}</h1><p id="pid">%d</p></body></html>' % os.getpid()
    )
"""

DJANGO = """\
import os

from django.conf import settings
from django.http import HttpResponse
from django.urls import path

settings.configure(
    DEBUG=True,
    SECRET_KEY="not-a-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)


def index(request):
    return HttpResponse(
        "<!doctype html><html><head><title>django</title></head><body>"
        '<h1 id="msg">{message}</h1><p id="pid">%d</p></body></html>' % os.getpid()
    )


urlpatterns = [path("", index)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
"""


@pytest.mark.parametrize("source", [FLASK, DJANGO], ids=["flask", "django"])
def test_a_framework_page_reloads_after_an_edit(
    run_citus: Runner, open_page: Opener, tmp_path: Path, source: str
) -> None:
    app = tmp_path / "app.py"
    write(app, source.replace("{message}", "one"))
    proc = run_citus("run", "--debug", "--port", "0", env={"CITUS_DEBUGGER_PIN": "off"})
    url = proc.wait_for_url()
    proc.wait_for_log("Debugger is active")
    page = open_page()
    page.page.goto(url + "/")
    page.wait_text("#msg", "one")
    page.page.wait_for_function(HEARD_HELLO)
    pid = page.text("#pid")
    write(app, source.replace("{message}", "two"))
    page.wait_text("#msg", "two")
    assert page.text("#pid") != pid
    assert not page.live_errors(), page.errors


PAGE_TEMPLATE = (
    "<!doctype html><html><head><title>t</title>"
    '<link rel="stylesheet" href="/static/site.css"></head><body>'
    '<h1 id="msg">{word}</h1><p id="pid">{pid}</p>'
    '<input id="field"></body></html>'
)

CITUS_TEMPLATES = """\
import os

from citus import API, render_template

app = API(__name__)


@app.route("/")
def index():
    return render_template("index.html", pid=os.getpid())
"""

FLASK_TEMPLATES = """\
import os

from flask import Flask, render_template

app = Flask(__name__)


@app.route("/")
def index():
    return render_template("index.html", pid=os.getpid())
"""

DJANGO_TEMPLATES = """\
import os

from django.conf import settings
from django.shortcuts import render
from django.urls import path

HERE = os.path.dirname(os.path.abspath(__file__))
settings.configure(
    DEBUG=True,
    SECRET_KEY="not-a-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
    INSTALLED_APPS=["django.contrib.staticfiles"],
    STATIC_URL="/static/",
    STATICFILES_DIRS=[os.path.join(HERE, "static")],
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(HERE, "templates")],
    }],
)


def index(request):
    return render(request, "index.html", {"pid": os.getpid()})


urlpatterns = [path("", index)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
"""


def template(word: str) -> str:
    """The page template (the same syntax in Jinja and Django templates)."""
    return PAGE_TEMPLATE.replace("{word}", word).replace("{pid}", "{{ pid }}")


@pytest.mark.parametrize(
    "source",
    [CITUS_TEMPLATES, FLASK_TEMPLATES, DJANGO_TEMPLATES],
    ids=["citus", "flask", "django"],
)
def test_css_swaps_and_templates_reload_without_a_restart(
    run_citus: Runner, open_page: Opener, tmp_path: Path, source: str
) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "templates").mkdir()
    write(tmp_path / "static" / "site.css", "h1 { color: rgb(200, 0, 0); }\n")
    write(tmp_path / "templates" / "index.html", template("one"))
    write(tmp_path / "app.py", source)
    proc = run_citus("run", "--debug", "--port", "0", env={"CITUS_DEBUGGER_PIN": "off"})
    url = proc.wait_for_url()
    proc.wait_for_log("Debugger is active")
    page = open_page()
    page.page.goto(url + "/")
    page.wait_text("#msg", "one")
    page.page.wait_for_function(HEARD_HELLO)
    pid = page.text("#pid")
    colour = "getComputedStyle(document.querySelector('h1')).color"
    assert page.page.evaluate(colour) == "rgb(200, 0, 0)"
    # A stylesheet: swapped in place, the form keeps what was typed.
    page.page.fill("#field", "kept")
    navigations = page.navigations
    write(tmp_path / "static" / "site.css", "h1 { color: rgb(0, 0, 200); }\n")
    page.page.wait_for_function(f"() => {colour} === 'rgb(0, 0, 200)'")
    assert page.page.input_value("#field") == "kept"
    assert page.navigations == navigations
    # A template: the page reloads, served by the same process.
    write(tmp_path / "templates" / "index.html", template("two"))
    page.wait_text("#msg", "two")
    assert page.text("#pid") == pid
    assert "Detected change" not in proc.log.text
    assert not page.live_errors(), page.errors
