"""On by default where the reloader and the debugger are; off everywhere else,
and with each switch. Real ``citus run`` processes, real sockets."""

from __future__ import annotations

import http.client
import typing as t
from pathlib import Path

import pytest

from .conftest import CITUS_SRC, write

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

pytestmark = pytest.mark.live_server

BODY = "<!doctype html><html><body><h1>hi</h1></body></html>"

CITUS_APP = f"""\
from citus import API, Response

app = API(__name__)


@app.route("/")
def index():
    return Response({BODY!r}, mimetype="text/html")
"""

SCRIPT_APP = f"""\
import sys

from citus.serving import run_simple


def app(environ, start_response):
    body = {BODY!r}.encode()
    start_response("200 OK", [("Content-Type", "text/html"),
                              ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    run_simple("127.0.0.1", 0, app, use_reloader=True, use_debugger=True,
               live_reload=sys.argv[1] == "on",
               exclude_patterns=[{CITUS_SRC!r} + "/*"])
"""

APP_RUN = f"""\
import sys

from citus import API, Response

app = API(__name__)


@app.route("/")
def index():
    return Response({BODY!r}, mimetype="text/html")


if __name__ == "__main__":
    app.run(port=0, debug=True, live_reload=sys.argv[1] == "on")
"""


def fetch(url: str) -> tuple[dict[str, str], bytes]:
    host, _, port = url.split("://", 1)[1].rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        conn.request("GET", "/", headers={"Accept": "text/html"})
        response = conn.getresponse()
        return {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def served(proc: CitusProcess) -> tuple[dict[str, str], bytes]:
    url = proc.wait_for_url()
    proc.wait_for_log("Press CTRL\\+C to quit")
    # With the reloader, the child serves once it says so; poll briefly.
    import time

    deadline = time.monotonic() + 20
    while True:
        try:
            return fetch(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("args", "env", "on"),
    [
        (["--debug"], {}, True),
        (["--debug", "--no-live-reload"], {}, False),
        (["--debug"], {"CITUS_RUN_LIVE_RELOAD": "false"}, False),
        (["--debug", "--no-reload"], {}, False),
        (["--debug", "--no-debugger"], {}, False),
        ([], {}, False),
        (["--reload", "--debugger"], {}, True),
    ],
)
def test_citus_run(
    run_citus: Runner, tmp_path: Path, args: list[str], env: dict[str, str], on: bool
) -> None:
    write(tmp_path / "app.py", CITUS_APP)
    proc = run_citus(
        "run", "--port", "0", *args, env={"CITUS_DEBUGGER_PIN": "off", **env}
    )
    headers, body = served(proc)
    if on:
        assert b'<script data-url="/__citus_live__/events"' in body
        assert body.endswith(b"</script></body></html>")
        assert int(headers["content-length"]) == len(body)
    else:
        assert body == BODY.encode()  # byte for byte
        assert headers["content-length"] == str(len(BODY))


@pytest.mark.parametrize("on", [True, False])
def test_run_simple_and_app_run(run_python: Runner, tmp_path: Path, on: bool) -> None:
    write(tmp_path / "script.py", SCRIPT_APP)
    write(tmp_path / "runner.py", APP_RUN)
    for name in ("script.py", "runner.py"):
        proc = run_python(name, "on" if on else "off")
        _, body = served(proc)
        assert (b"/__citus_live__/events" in body) is on, name
        proc.stop()


def test_the_option_is_in_the_help(run_citus: Runner) -> None:
    proc = run_citus("run", "--help")
    assert proc.wait() == 0
    text = " ".join(proc.log.text.split())
    assert "--live-reload / --no-live-reload" in text
    # Each on/off default says when it is on, not the flag's own name.
    assert "[default: on in debug mode]" in text.split("--live-reload / ", 1)[1]
    for flag in ("live-reload", "static", "preload", "with-threads"):
        assert f"[default: {flag}]" not in text, flag
    assert "[default: on with the reloader]" in text


BOTTLE_APP = f"""\
import bottle

app = bottle.Bottle()


@app.route("/")
def index():
    return {BODY!r}
"""


def test_a_bottle_page_gets_the_script_too(run_citus: Runner, tmp_path: Path) -> None:
    write(tmp_path / "app.py", BOTTLE_APP)
    proc = run_citus("run", "--debug", "--port", "0", env={"CITUS_DEBUGGER_PIN": "off"})
    headers, body = served(proc)
    assert body.startswith(BODY.encode()[: -len("</body></html>")] + b"<script ")
    assert int(headers["content-length"]) == len(body)
