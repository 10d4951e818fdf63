"""Templates under a real ``citus run --debug``: a template error is the
debugger's page, with the template's file, line and source, and the fix is
served by the next request from the same process (no restart)."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import textwrap
import time
import typing as t
from pathlib import Path

import pytest

if t.TYPE_CHECKING:
    from conftest import CitusProcess

pytestmark = pytest.mark.live_server

FRAME_KEYS = ("file", "line", "function", "code", "library")

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

APP = """
    import os

    from citus import API, render_template

    app = API(__name__)

    @app.route("/")
    def index():
        return render_template("index.html", pid=os.getpid(), items=[3, 0])
"""
GOOD = "<!doctype html>\n<title>t</title>\n<p>pid={{ pid }} {{ version }}</p>\n"
BROKEN = (
    "<!doctype html>\n<title>t</title>\n<ul>\n{% for i in items %}\n"
    "  <li>{{ 30 // i }}</li>\n{% endfor %}\n</ul>\n"
)


def fetch(port: int, accept: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "GET", "/", headers={"Host": f"localhost:{port}", "Accept": accept}
        )
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        conn.close()


def save(path: Path, text: str) -> None:
    """Write ``path`` with a modification time clearly after its last one."""
    before = path.stat().st_mtime if path.exists() else time.time()
    path.write_text(text, encoding="utf-8")
    os.utime(path, (before + 5, before + 5))


def test_template_error_page_and_fix_without_restart(
    run_citus: t.Callable[..., CitusProcess], tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    template = tmp_path / "templates" / "index.html"
    template.parent.mkdir()
    save(template, GOOD.replace("{{ version }}", "first"))
    proc = run_citus(
        "run",
        "--port",
        "0",
        "--debug",
        env={
            "CITUS_DEBUGGER_TRUSTED_HOSTS": "",
            "CITUS_DEBUGGER_STATE": "",
            "CITUS_DEBUGGER_PIN": "",
        },
    )
    port = int(proc.wait_for_url().rsplit(":", 1)[1])
    deadline = time.monotonic() + 20
    while True:
        try:
            status, body = fetch(port, BROWSER_ACCEPT)
            break
        except OSError:
            assert time.monotonic() < deadline, proc.log.text
            time.sleep(0.05)
    assert status == 200 and "first" in body, body
    pid = body.split("pid=", 1)[1].split(" ", 1)[0]

    save(template, BROKEN)
    status, page = fetch(port, BROWSER_ACCEPT)
    assert status == 500, page
    filename = str(template)
    head = page.index(f'<span class="file">{html.escape(filename)}</span>')
    frame = page[page.rindex("<li", 0, head) : page.index("</li>", head)]
    assert frame.startswith('<li class="frame" ')  # the project's own code
    assert 'line <span class="lineno">5</span>' in frame
    assert '<span class="line current"><span class="ln">5</span>' in frame
    for number, text in enumerate(BROKEN.splitlines(), 1):
        assert f'<span class="ln">{number}</span>{html.escape(text, False)}\n' in frame
    assert "ZeroDivisionError" in page

    status, body = fetch(port, "application/json")
    assert status == 500
    frames = json.loads(body)["chain"][-1]["frames"]
    assert {key: frames[-1][key] for key in FRAME_KEYS} == {
        "file": filename,
        "line": 5,
        "function": "top-level template code",
        "code": "<li>{{ 30 // i }}</li>",
        "library": False,
    }
    # The terminal shows the template's place too.
    proc.wait_for_log(
        re.escape(f'File "{filename}", line 5, in top-level template code')
    )

    save(template, GOOD.replace("{{ version }}", "fixed"))
    status, body = fetch(port, BROWSER_ACCEPT)
    assert status == 200 and "fixed" in body, body
    assert f"pid={pid} " in body  # the same process: no restart
