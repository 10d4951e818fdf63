"""Two real projects under real ``citus run`` processes, over real HTTP.

Flask's tutorial app (flaskr: a factory, two blueprints, templates, a
stylesheet, SQLite and its ``init-db`` command) and a Django project made by
``django-admin startproject`` at test time (the admin's login page and its
CSS, a template edit seen by the next request, a system check error shown on
the page and then fixed, Django's own debug page for a view's error).
"""

from __future__ import annotations

import http.cookiejar
import typing as t
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import clean_env, edit
from .test_commands import citus

pytestmark = pytest.mark.live_server

READY = r"^Press CTRL\+C to quit$"
RELOADED = r"Reloaded in"

Start = t.Callable[..., t.Any]


class Browser:
    """Requests with cookies, following redirects, as a browser would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        return self._open(
            urllib.request.Request(self.base + path, headers=headers or {})
        )

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        data = urllib.parse.urlencode(form).encode()
        return self._open(urllib.request.Request(self.base + path, data=data))

    def _open(self, request: urllib.request.Request) -> tuple[int, str, dict[str, str]]:
        try:
            with self.opener.open(request, timeout=20) as response:
                body = response.read().decode("utf-8", "replace")
                return response.status, body, dict(response.headers)
        except urllib.error.HTTPError as error:
            with error:
                body = error.read().decode("utf-8", "replace")
                return error.code, body, dict(error.headers)


def start(run_citus: Start, *args: str, cwd: Path) -> tuple[t.Any, Browser]:
    proc = run_citus(*args, cwd=cwd, env=clean_env())
    url = proc.wait_for_url()
    proc.wait_for_log(READY)
    return proc, Browser(url)


def test_flaskr(run_citus: Start, flaskr: Path) -> None:
    result = citus("--app", "flaskr", "init-db", cwd=flaskr)
    assert result.stdout == "Initialized the database.\n", result.stderr
    proc, browser = start(
        run_citus, "--app", "flaskr", "run", "--debug", "--port", "0", cwd=flaskr
    )
    assert proc.log.lines[:2] == [" * Serving Flask app 'flaskr'", " * Debug mode: on"]

    status, page, _ = browser.get("/")
    assert status == 200 and "<title>Posts - Flaskr</title>" in page
    assert '<link rel="stylesheet" href="/static/style.css">' in page
    # Its pages have a doctype but no <html> or <body>: they live-reload too.
    assert 'data-url="/__citus_live__/events"' in page
    status, css, headers = browser.get("/static/style.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert "#377ba8" in css

    # Register, log in, write a post: sessions, forms, SQLite.
    status, page, _ = browser.post(
        "/auth/register", {"username": "ana", "password": "pw"}
    )
    assert status == 200 and "<title>Log In - Flaskr</title>" in page
    status, page, _ = browser.post("/auth/login", {"username": "ana", "password": "pw"})
    assert status == 200 and "<span>ana</span>" in page
    status, page, _ = browser.post("/create", {"title": "First post", "body": "Hi."})
    assert status == 200 and "<h1>First post</h1>" in page and "by ana on" in page

    # Flask's debug mode is on: a template edit shows at the next request,
    # without a restart.
    index = flaskr / "flaskr" / "templates" / "blog" / "index.html"
    edit(
        index,
        "{% block title %}Posts{% endblock %}",
        "{% block title %}All posts{% endblock %}",
    )
    status, page, _ = browser.get("/")
    assert "<title>All posts - Flaskr</title>" in page
    assert "<h1>First post</h1>" in page
    assert "Detected change" not in proc.log.text

    # An error in a view reaches citus's debugger (Flask propagates it).
    status, page, _ = browser.get("/999/update")
    assert status == 404  # flaskr's own abort(404)
    blog = flaskr / "flaskr" / "blog.py"
    mark = len(proc.log.lines)
    edit(
        blog,
        "    db = get_db()\n    posts = db.execute(",
        "    db = get_db()\n    1 / 0\n    posts = db.execute(",
    )
    proc.wait_for_log(RELOADED, start=mark)
    status, page, _ = browser.get("/", {"Accept": "text/plain"})
    assert status == 500
    assert "ZeroDivisionError: division by zero" in page
    assert 'blog.py", line' in page


def test_flaskr_without_debug(run_citus: Start, flaskr: Path) -> None:
    citus("--app", "flaskr", "init-db", cwd=flaskr)
    proc, browser = start(
        run_citus, "--app", "flaskr", "run", "--port", "0", cwd=flaskr
    )
    assert proc.log.lines[:2] == [" * Serving Flask app 'flaskr'", " * Debug mode: off"]
    status, page, _ = browser.get("/")
    assert status == 200 and "<title>Posts - Flaskr</title>" in page


def test_django_startproject(run_citus: Start, django_site: Path) -> None:
    """No --app: the project is found from manage.py."""
    proc, browser = start(run_citus, "run", "--debug", "--port", "0", cwd=django_site)
    lines = proc.log.lines
    assert lines[:2] == [" * Serving Django app 'mysite.wsgi'", " * Debug mode: on"]
    proc.wait_for_log(r"^System check identified no issues \(0 silenced\)\.$")
    proc.wait_for_log(
        r"^You have \d+ unapplied migration\(s\)\. Your project may not work properly"
        r" until you apply the migrations for app\(s\): admin, auth, contenttypes,"
        r" sessions\.$"
    )
    proc.wait_for_log(r"^Run 'python manage.py migrate' to apply them\.$")
    proc.wait_for_log(
        r"^ \* Django version [\d.]+\w*, using settings 'mysite.settings'$"
    )

    # The admin's login page, with its stylesheet served as runserver does.
    status, page, _ = browser.get("/admin/login/")
    assert status == 200 and "Log in | Django site admin" in page
    assert 'href="/static/admin/css/base.css"' in page
    status, css, headers = browser.get("/static/admin/css/base.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert "body" in css

    # A template edit shows at the next request, without a restart.
    status, page, _ = browser.get("/")
    assert status == 200 and "Hello from citus, version 1" in page
    edit(django_site / "templates" / "home.html", "version 1", "version two")
    status, page, _ = browser.get("/")
    assert "Hello from citus, version two" in page
    assert "Detected change" not in proc.log.text

    # A check error: the server stays up and shows it; the fix clears it.
    settings = django_site / "mysite" / "settings.py"
    middleware = "    'django.contrib.auth.middleware.AuthenticationMiddleware',\n"
    mark = len(proc.log.lines)
    edit(settings, middleware, "")
    proc.wait_for_log(
        r"^SystemCheckError: System check identified some issues:$", start=mark
    )
    proc.wait_for_log(RELOADED, start=mark)
    # As runserver prints it (runserver's thread traceback left out).
    failed = proc.log.lines[mark:]
    at = failed.index("SystemCheckError: System check identified some issues:")
    assert failed[at - 2 : at] == ["Performing system checks...", ""]
    status, page, _ = browser.get("/", {"Accept": "text/plain"})
    assert status == 500
    assert (
        "(admin.E408) 'django.contrib.auth.middleware.AuthenticationMiddleware'" in page
    )
    status, page, _ = browser.get("/", {"Accept": "text/html"})
    assert status == 500 and "admin.E408" in page and "<html" in page.lower()
    mark = len(proc.log.lines)
    csrf = "    'django.middleware.csrf.CsrfViewMiddleware',\n"
    edit(settings, csrf, csrf + middleware)
    proc.wait_for_log(RELOADED, start=mark)
    assert "System check identified no issues (0 silenced)." in "\n".join(
        proc.log.lines[mark:]
    )
    status, page, _ = browser.get("/")
    assert status == 200 and "Hello from citus, version two" in page

    # A view's error: Django's own debug page, as under runserver.
    urls = django_site / "mysite" / "urls.py"
    mark = len(proc.log.lines)
    edit(urls, '{"who": "citus"}', '{"who": 1 / 0}')
    proc.wait_for_log(RELOADED, start=mark)
    status, page, _ = browser.get("/")
    assert status == 500
    assert "ZeroDivisionError" in page
    assert "You’re seeing this error because you have <code>DEBUG = True</code>" in page


def test_django_no_static(run_citus: Start, django_site: Path) -> None:
    proc, browser = start(
        run_citus, "run", "--no-static", "--no-reload", "--port", "0", cwd=django_site
    )
    assert browser.get("/admin/login/")[0] == 200
    assert browser.get("/static/admin/css/base.css")[0] == 404
    proc.stop()
    proc, browser = start(run_citus, "run", "--port", "0", cwd=django_site)
    assert browser.get("/static/admin/css/base.css")[0] == 200
    proc.stop()
    environment = {**clean_env(), "CITUS_RUN_STATIC": "0"}
    proc = run_citus("run", "--port", "0", cwd=django_site, env=environment)
    browser = Browser(proc.wait_for_url())
    assert browser.get("/static/admin/css/base.css")[0] == 404


BOTTLE = """
import bottle

app = bottle.Bottle()


@app.route("/")
def index():
    return "bottle home"


@app.route("/boom")
def boom():
    return 1 / 0
"""


def test_bottle_errors_reach_the_debugger(run_citus: Start, tmp_path: Path) -> None:
    """In debug mode a Bottle app's unhandled error reaches citus's debugger,
    as a Flask app's does, instead of Bottle's bare 500 page."""
    pytest.importorskip("bottle")
    (tmp_path / "app.py").write_text(BOTTLE, encoding="utf-8")
    proc, browser = start(run_citus, "run", "--debug", "--port", "0", cwd=tmp_path)
    assert proc.log.lines[0] == " * Serving Bottle app 'app'"
    assert browser.get("/")[:2] == (200, "bottle home")
    status, page, _ = browser.get("/boom", {"Accept": "text/plain"})
    assert status == 500
    assert "ZeroDivisionError: division by zero" in page
    assert 'app.py", line 14, in boom' in page


FALCON = """
import falcon


class Boom:
    def on_get(self, req, resp):
        1 / 0


app = falcon.App()
app.add_route("/boom", Boom())
"""


def test_falcon_errors_reach_the_debugger(run_citus: Start, tmp_path: Path) -> None:
    """In debug mode a Falcon responder's unhandled error reaches citus's
    debugger instead of Falcon's bare 500 answer."""
    pytest.importorskip("falcon")
    (tmp_path / "app.py").write_text(FALCON, encoding="utf-8")
    proc, browser = start(run_citus, "run", "--debug", "--port", "0", cwd=tmp_path)
    assert proc.log.lines[0] == " * Serving Falcon app 'app'"
    status, page, _ = browser.get("/boom", {"Accept": "text/plain"})
    assert status == 500
    assert "ZeroDivisionError: division by zero" in page
    assert 'app.py", line 7, in on_get' in page
    assert browser.get("/nothere")[0] == 404


def test_django_check_error_without_the_reloader(
    run_citus: Start, django_site: Path
) -> None:
    """Nothing would reload the project: a failed check ends citus run with
    status 1, as under ``runserver --noreload``; ``--lazy-loading`` serves."""
    settings = django_site / "mysite" / "settings.py"
    edit(settings, "DEBUG = True", "DEBUG = False")
    proc = run_citus("run", "--port", "0", cwd=django_site, env=clean_env())
    assert proc.wait() == 1
    message = "CheckFailedError: You must set settings.ALLOWED_HOSTS if DEBUG is False."
    assert message in proc.log.lines
    assert "Running on" not in proc.log.text
    proc, browser = start(
        run_citus, "run", "--port", "0", "--lazy-loading", cwd=django_site
    )
    assert message in proc.log.lines
    assert browser.get("/")[0] == 500
