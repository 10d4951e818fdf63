"""``citus run`` as a user runs it: real processes, real sockets, real apps.

Each test writes an app to a temporary folder, starts the real ``citus``
executable with ``--port 0``, reads the URL from the banner and talks HTTP to
it. Flask, Django and Bottle apps are served as well as citus's own.
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import textwrap
import time
import typing as t
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.live_server

NO_RELOAD = ("run", "--port", "0", "--no-reload")
READY = r"^Press CTRL\+C to quit$"

WSGI_APP = """
    def app(environ, start_response):
        body = ("hello from wsgi " + environ["PATH_INFO"]).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
"""


def write(folder: Path, name: str, source: str) -> None:
    (folder / name).write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")


def request(
    url: str,
    path: str = "/",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request over a fresh connection: status, headers, body."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(
            host, parts.port, timeout=10, context=context
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), data
    finally:
        conn.close()


def banner(lines: list[str]) -> list[str]:
    """The banner lines, up to and including ``Press CTRL+C to quit``."""
    end = lines.index("Press CTRL+C to quit")
    return lines[: end + 1]


def test_serves_and_prints_the_banner(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(tmp_path, "hello.py", WSGI_APP)
    with run_citus("--app", "hello", *NO_RELOAD) as proc:
        url = proc.wait_for_url()
        proc.wait_for_log(READY)
        status, _, body = request(url, "/there")
        assert (status, body) == (200, b"hello from wsgi /there")
        proc.wait_for_log(r'"GET /there HTTP/1.1" 200')
        lines = banner(proc.log.lines)
        assert lines[:3] == [
            " * Serving citus app 'hello'",
            " * Debug mode: off",
            "WARNING: This is a development server. Do not use it in a"
            " production deployment.",
        ]
        assert re.fullmatch(r" \* Running on http://127\.0\.0\.1:\d+", lines[3])
        port = urlsplit(url).port
        assert port and port != 0
        proc.interrupt()
        assert proc.wait() == 0
    assert "Traceback" not in proc.log.text
    assert "Aborted" not in proc.log.text
    assert proc.log.text.count("Serving citus app") == 1


def test_cts_serves_too(run_cts: t.Callable[..., t.Any], project: Path) -> None:
    write(project, "wsgi.py", WSGI_APP)
    with run_cts(*NO_RELOAD) as proc:
        url = proc.wait_for_url()
        assert request(url)[2] == b"hello from wsgi /"
        assert " * Serving citus app 'wsgi'" in proc.log.text


@pytest.mark.parametrize("reference", ["src/hello.py", "src/hello"])
def test_banner_names_the_module_of_a_path(
    run_citus: t.Callable[..., t.Any], tmp_path: Path, reference: str
) -> None:
    """``--app src/hello.py`` is the app 'hello', as ``app.run()`` would say."""
    (tmp_path / "src").mkdir()
    write(tmp_path / "src", "hello.py", WSGI_APP)
    with run_citus("--app", reference, *NO_RELOAD) as proc:
        proc.wait_for_log(READY)
        assert banner(proc.log.lines)[0] == " * Serving citus app 'hello'"


def test_debug_banner_has_no_warning(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(tmp_path, "app.py", WSGI_APP)
    with run_citus(*NO_RELOAD, "--debug") as proc:
        proc.wait_for_log(READY)
        lines = banner(proc.log.lines)
        assert lines[:2] == [" * Serving citus app 'app'", " * Debug mode: on"]
        assert not any("WARNING" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {"CITUS_ENV": "development"}, b"debug=True"),
        (("--no-debug",), {"CITUS_ENV": "development"}, b"debug=False"),
        (("--debug",), {"CITUS_DEBUG": "0"}, b"debug=True"),
    ],
)
def test_the_app_sees_the_debug_flag(
    run_citus: t.Callable[..., t.Any],
    tmp_path: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    expected: bytes,
) -> None:
    write(
        tmp_path,
        "hello.py",
        """
        from citus import API

        app = API(__name__)

        @app.route("/")
        def index():
            return f"debug={app.debug}"
        """,
    )
    with run_citus("--app", "hello", *NO_RELOAD, *args, env=env) as proc:
        url = proc.wait_for_url()
        assert request(url)[2] == expected


def test_options_from_the_environment(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(tmp_path, "hello.py", WSGI_APP)
    env = {"CITUS_APP": "hello", "CITUS_RUN_HOST": "127.0.0.1", "CITUS_RUN_PORT": "0",
           "CITUS_RUN_RELOAD": "false"}  # fmt: skip
    with run_citus("run", env=env) as proc:
        url = proc.wait_for_url()
        proc.wait_for_log(READY)
        assert request(url)[0] == 200
        running = [line for line in proc.log.lines if "Running on" in line]
        assert running == [f" * Running on {url}"]
        assert url.startswith("http://127.0.0.1:")


def test_https_adhoc(run_citus: t.Callable[..., t.Any], tmp_path: Path) -> None:
    write(tmp_path, "hello.py", WSGI_APP)
    with run_citus("--app", "hello", *NO_RELOAD, "--cert", "adhoc") as proc:
        url = proc.wait_for_url()
        assert url.startswith("https://")
        assert request(url, "/tls")[2] == b"hello from wsgi /tls"


def test_app_run_in_the_module_does_not_start_a_second_server(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(
        tmp_path,
        "hello.py",
        """
        from citus import API

        app = API(__name__)

        @app.route("/")
        def index():
            return "one server"

        app.run(port=0)
        app.run(port=0)
        """,
    )
    with run_citus("--app", "hello", *NO_RELOAD) as proc:
        url = proc.wait_for_url()
        proc.wait_for_log(READY)
        assert request(url)[2] == b"one server"
        assert proc.log.text.count("Serving citus app") == 1
        assert len([x for x in proc.log.lines if "Running on" in x]) <= 2
        # It says so once, however often it is called.
        assert proc.log.text.count("Ignoring a call to 'app.run()'") == 1


def test_app_run_in_the_module_is_ignored_in_the_reloaders_child(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    """The child that the reloader starts runs ``citus run`` again, and knows
    that it is the ``citus`` process too."""
    write(
        tmp_path,
        "hello.py",
        """
        from citus import API

        app = API(__name__)

        @app.route("/")
        def index():
            return "served by the child"

        app.run(port=0)
        """,
    )
    args = (
        "--app",
        "hello",
        "run",
        "--port",
        "0",
        "--debug",
        "--reloader-type",
        "stat",
    )
    with run_citus(*args) as proc:
        url = proc.wait_for_url()
        proc.wait_for_log("Ignoring a call to 'app.run\\(\\)'")
        assert request(url)[2] == b"served by the child"
        # A reload starts a new child: it ignores the call too, silently.
        source = (tmp_path / "hello.py").read_text()
        (tmp_path / "hello.py").write_text(source.replace("the child", "child 2"))
        deadline = time.monotonic() + 30
        while request(url)[2] != b"served by child 2":
            assert time.monotonic() < deadline, "the change was never served"
            time.sleep(0.05)
        proc.interrupt()
        assert proc.wait() == 0
    assert proc.log.text.count("Serving citus app") == 1
    assert proc.log.text.count("Ignoring a call to 'app.run()'") == 1
    assert "Traceback" not in proc.log.text


@pytest.mark.parametrize("reload", ["--no-reload", "--reload"])
def test_a_program_the_app_starts_may_call_app_run(
    run_citus: t.Callable[..., t.Any], tmp_path: Path, reload: str
) -> None:
    """A program started by the served app inherits the environment, but its
    own ``app.run()`` still serves: only the ``citus`` process ignores it."""
    write(
        tmp_path,
        "child.py",
        """
        import citus.serving
        from citus import API

        def serve(host, port, app, **options):
            print("CHILD SERVES", app.name, flush=True)

        citus.serving.run_simple = serve  # record the call instead of serving
        API("child").run(host="127.0.0.1", port=0)
        """,
    )
    write(
        tmp_path,
        "hello.py",
        """
        import subprocess, sys
        from citus import API

        app = API(__name__)

        @app.route("/")
        def index():
            done = subprocess.run([sys.executable, "child.py"], capture_output=True,
                                  text=True, timeout=30)
            return done.stdout + done.stderr
        """,
    )
    args = ("--app", "hello", "run", "--port", "0", reload, "--reloader-type", "stat")
    with run_citus(*args) as proc:
        url = proc.wait_for_url()
        proc.wait_for_log(READY)
        body = request(url)[2]
    assert b"CHILD SERVES child" in body, body
    assert b"Ignoring" not in body


def test_flask_app(run_citus: t.Callable[..., t.Any], tmp_path: Path) -> None:
    write(
        tmp_path,
        "flaskapp.py",
        """
        from flask import Flask, request

        app = Flask(__name__)

        @app.route("/")
        def index():
            return "hello from flask"

        @app.post("/echo/<name>")
        def echo(name):
            return {"name": name, "got": request.get_json()}
        """,
    )
    with run_citus("--app", "flaskapp", *NO_RELOAD) as proc:
        url = proc.wait_for_url()
        assert request(url)[:1] == (200,)
        assert request(url)[2] == b"hello from flask"
        status, headers, body = request(
            url, "/echo/ana", "POST", b'{"a": [1, 2]}',
            {"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert body.replace(b" ", b"").strip() == b'{"got":{"a":[1,2]},"name":"ana"}'
        assert request(url, "/missing")[0] == 404


def test_one_file_django_project(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(
        tmp_path,
        "mysite.py",
        """
        from django.conf import settings

        settings.configure(
            DEBUG=False,
            SECRET_KEY="not-secret-just-a-test-of-citus-run-" * 2,
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"],
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
        )

        from django.core.wsgi import get_wsgi_application
        from django.http import HttpResponse, JsonResponse
        from django.urls import path

        def index(request):
            return HttpResponse("hello from django " + request.GET.get("who", ""))

        def item(request, number):
            return JsonResponse({"number": number, "method": request.method})

        urlpatterns = [path("", index), path("items/<int:number>", item)]

        application = get_wsgi_application()
        """,
    )
    with run_citus("--app", "mysite", *NO_RELOAD) as proc:
        url = proc.wait_for_url()
        assert request(url, "/?who=me")[2] == b"hello from django me"
        status, headers, body = request(url, "/items/42")
        assert status == 200
        assert body == b'{"number": 42, "method": "GET"}'
        assert request(url, "/nope")[0] == 404


def test_django_project_wsgi_module(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    """A project laid out as django-admin startproject does: mysite.wsgi."""
    package = tmp_path / "mysite"
    package.mkdir()
    write(package, "__init__.py", "")
    write(
        package,
        "settings.py",
        """
        SECRET_KEY = "not-secret-just-a-test-of-citus-run-" * 2
        DEBUG = False
        ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
        ROOT_URLCONF = "mysite.urls"
        INSTALLED_APPS = []
        MIDDLEWARE = []
        """,
    )
    write(
        package,
        "urls.py",
        """
        from django.http import HttpResponse
        from django.urls import path

        urlpatterns = [path("", lambda request: HttpResponse("project home"))]
        """,
    )
    write(
        package,
        "wsgi.py",
        """
        import os

        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
        application = get_wsgi_application()
        """,
    )
    with run_citus("--app", "mysite.wsgi", *NO_RELOAD) as proc:
        url = proc.wait_for_url()
        assert request(url)[2] == b"project home"
        assert " * Serving Django app 'mysite.wsgi'" in proc.log.text


def test_bottle_app(run_citus: t.Callable[..., t.Any], tmp_path: Path) -> None:
    write(
        tmp_path,
        "bottleapp.py",
        """
        import bottle

        app = bottle.Bottle()

        @app.route("/hello/<name>")
        def hello(name):
            return f"hello {name} from bottle"
        """,
    )
    with run_citus("--app", "bottleapp:app", *NO_RELOAD) as proc:
        url = proc.wait_for_url()
        assert request(url, "/hello/ana")[2] == b"hello ana from bottle"


def test_error_at_start_fails_with_the_traceback(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(tmp_path, "broken.py", "x = 1\nraise RuntimeError('boom at import')\n")
    with run_citus("--app", "broken", *NO_RELOAD) as proc:
        assert proc.wait() == 1
    assert 'broken.py", line 2, in <module>' in proc.log.text
    assert "RuntimeError: boom at import" in proc.log.text
    assert "Running on" not in proc.log.text


def test_lazy_loading_serves_the_error(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(tmp_path, "broken.py", "x = 1\nraise RuntimeError('boom at import')\n")
    with run_citus("--app", "broken", *NO_RELOAD, "--lazy-loading") as proc:
        url = proc.wait_for_url()
        assert "RuntimeError: boom at import" in proc.log.text
        for _ in range(2):
            status, _, body = request(url)
            assert status == 500
            assert b"boom" not in body  # no debugger: nothing of the code shows


def test_lazy_loading_with_the_debugger_shows_the_users_file(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(tmp_path, "broken.py", "x = 1\nraise RuntimeError('boom at import')\n")
    args = ("--app", "broken", *NO_RELOAD, "--lazy-loading", "--debugger")
    with run_citus(*args) as proc:
        url = proc.wait_for_url()
        status, _, body = request(url, headers={"Accept": "text/plain"})
        assert status == 500
        assert b"boom at import" in body
        assert b"broken.py" in body


def test_debugger_without_debug_mode_sees_a_citus_apps_errors(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    """``--debugger`` alone: the API app lets its exception through to it."""
    write(
        tmp_path,
        "boom.py",
        """
        from citus import API

        app = API(__name__)

        @app.route("/")
        def index():
            raise ValueError("kaboom in the view")
        """,
    )
    with run_citus("--app", "boom", *NO_RELOAD, "--debugger") as proc:
        url = proc.wait_for_url()
        assert " * Debug mode: off" in proc.log.lines
        status, _, body = request(url, headers={"Accept": "text/plain"})
        assert status == 500
        assert b"ValueError: kaboom in the view" in body
        assert b"boom.py" in body


def test_discovery_error_is_a_usage_error(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    with run_citus("--app", "nope", *NO_RELOAD) as proc:
        assert proc.wait() == 2
    assert proc.log.lines[-1].startswith("Error: Could not import 'nope'")
    assert "Traceback" not in proc.log.text


@pytest.mark.parametrize(
    "mode", [NO_RELOAD, ("run", "--port", "0", "--debug", "--reloader-type", "stat")]
)
def test_ctrl_c_while_the_app_imports_exits_quietly(
    run_citus: t.Callable[..., t.Any], tmp_path: Path, mode: tuple[str, ...]
) -> None:
    write(
        tmp_path,
        "slow.py",
        """
        import time
        print("importing", flush=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.05)
        app = None
        """,
    )
    with run_citus("--app", "slow", *mode) as proc:
        proc.wait_for_log("importing")
        proc.interrupt()
        assert proc.wait() == 0
    assert "Traceback" not in proc.log.text
    assert "Aborted" not in proc.log.text


def test_https_with_cert_and_key_files(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    from citus.serving import make_ssl_devcert

    cert, key = make_ssl_devcert(str(tmp_path / "dev"), host="localhost")
    write(tmp_path, "hello.py", WSGI_APP)
    with run_citus("--app", "hello", *NO_RELOAD, "--cert", cert, "--key", key) as p:
        url = p.wait_for_url()
        assert url.startswith("https://")
        assert request(url, "/files")[2] == b"hello from wsgi /files"


def test_adhoc_without_cryptography_is_a_usage_error(
    run_python: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(tmp_path, "hello.py", WSGI_APP)
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from citus.cli import main\n"
        "main(['--app', 'hello', 'run', '--cert', 'adhoc'])\n"
    )
    with run_python("-c", code) as proc:
        assert proc.wait() == 2
    assert proc.log.lines[-1] == (
        "Error: --cert adhoc needs the cryptography package to make a"
        " certificate. Install it: pip install 'citus[ssl]'."
    )


def test_extra_files_reach_the_reloader(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    write(tmp_path, "hello.py", WSGI_APP)
    config = tmp_path / "settings.toml"
    config.write_text("a = 1\n")
    args = ("--app", "hello", "run", "--port", "0", "--debug",
            "--reloader-type", "stat", "--extra-files", str(config))  # fmt: skip
    with run_citus(*args) as proc:
        url = proc.wait_for_url()
        proc.wait_for_log("Restarting with stat")
        assert request(url)[0] == 200  # the child serves, so it watches too
        config.write_text("a = 2\n")
        stamp = time.time() + 5
        os.utime(config, (stamp, stamp))
        proc.wait_for_log(r"Detected change in .*settings\.toml")
