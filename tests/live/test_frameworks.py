"""A Flask page and a Django page follow their edits under ``citus run``."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from .conftest import Watched, write

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
    page.page.wait_for_function("window.__citusLive && window.__citusLive !== null")
    pid = page.text("#pid")
    write(app, source.replace("{message}", "two"))
    page.wait_text("#msg", "two")
    assert page.text("#pid") != pid
    assert not page.live_errors(), page.errors
