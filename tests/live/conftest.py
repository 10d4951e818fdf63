"""Fixtures for live reload's browser tests: headless Chromium, app scripts.

The apps are scripts written into ``tmp_path`` and run with
``run_simple(..., use_reloader=True, use_debugger=True)`` (or ``citus run``).
Each page shows the PID of the process that served it, so a test can tell a
reload without a restart from one with a restart. citus's own source folder
is excluded from watching, so that other people editing citus do not reload
the servers under test.
"""

from __future__ import annotations

import os
import socket
import time
import typing as t
from pathlib import Path

import pytest

import citus

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The page's script follows the stream: it heard a hello. A function, not an
#: expression: playwright evaluates an expression with eval(), which a strict
#: Content-Security-Policy (the debugger's page) refuses.
HEARD_HELLO = "() => Boolean(window.__citusLive && window.__citusLive.hello)"
CITUS_SRC = os.path.dirname(os.path.abspath(citus.__file__))

#: A page with a stylesheet, a form, a tall body (to scroll) and its PID.
APP = """\
import os
import sys

from citus.serving import run_simple

HERE = os.path.dirname(os.path.abspath(__file__))
MESSAGE = {message!r}
{extra}

def page(body, status="200 OK", headers=(), tall=True, head=None):
    if head is None:
        head = '<link rel="stylesheet" href="/static/site.css">'
    html = (
        '<!doctype html><html><head><title>live</title>' + head +
        '</head><body>'
        + body
        + '<p id="pid">%d</p>'
        + ('<div style="height:4000px"></div>' if tall else '')
        + '<p id="bottom">end</p></body></html>'
    ) % os.getpid()
    data = html.encode()
    return status, [("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", str(len(data))), *headers], data


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/favicon.ico":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b""]
    if path == "/submit":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        note = environ["wsgi.input"].read(size).decode()
        if MESSAGE == "broken":
            raise ValueError("cannot take " + note)
        status, headers, data = page('<h1 id="msg">got ' + note + '</h1>')
    elif path == "/item" and MESSAGE == "broken":
        raise ValueError("the item is broken")
    elif path == "/csp":
        status, headers, data = page(
            '<h1 id="msg">' + MESSAGE + '</h1>',
            headers=[("Content-Security-Policy",
                      "default-src 'none'; style-src 'self'; img-src 'self'")],
            tall=False,
        )
    elif path == "/meta-csp":
        status, headers, data = page(
            '<h1 id="msg">' + MESSAGE + '</h1>',
            head='<meta http-equiv="Content-Security-Policy" '
            'content="default-src &#39;none&#39;; style-src &#39;self&#39;">'
            '<link rel="stylesheet" href="/static/site.css">',
            tall=False,
        )
    elif path == "/sri":
        import base64
        import hashlib

        with open(os.path.join(HERE, "static", "site.css"), "rb") as css:
            digest = hashlib.sha384(css.read()).digest()
        status, headers, data = page(
            '<h1 id="msg">' + MESSAGE + '</h1>',
            head='<link rel="stylesheet" href="/static/site.css" integrity="sha384-'
            + base64.b64encode(digest).decode() + '">',
            tall=False,
        )
    else:
        status, headers, data = page(
            '<h1 id="msg">' + MESSAGE + '</h1>'
            '<form method="post" action="/submit">'
            '<input id="field" name="note"><button id="send">send</button></form>'
        )
    start_response(status, headers)
    return [data]


if __name__ == "__main__":
    run_simple(
        "127.0.0.1",
        int(sys.argv[1]) if len(sys.argv) > 1 else 0,
        app,
        use_reloader=True,
        use_debugger=True,
        threaded=True,
        reloader_type={backend!r},
        reloader_interval=0.2,
        static_files={{"/static": os.path.join(HERE, "static")}},
        exclude_patterns=[{citus_src!r} + os.sep + "*"],
    )
"""


def app_script(message: str, backend: str = "auto", extra: str = "") -> str:
    """The source of the test app, showing ``message``."""
    return APP.format(
        message=message,
        backend=backend,
        extra=extra,
        citus_src=CITUS_SRC,
    )


def write(path: Path, text: str) -> None:
    """Write ``text`` so that the file's (size, mtime) stamp surely moves."""
    before = os.stat(path) if path.exists() else None
    path.write_text(text)
    after = os.stat(path)
    if before is not None and (before.st_size, before.st_mtime_ns) == (
        after.st_size,
        after.st_mtime_ns,
    ):
        ns = after.st_mtime_ns + 1_000_000
        os.utime(path, ns=(ns, ns))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: t.Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def project(tmp_path: Path, message: str = "one", backend: str = "auto") -> Path:
    """Write the app script and its stylesheet; return the script."""
    (tmp_path / "static").mkdir(exist_ok=True)
    write(tmp_path / "static" / "site.css", "h1 { color: rgb(200, 0, 0); }\n")
    script = tmp_path / "app.py"
    write(script, app_script(message, backend))
    return script


@pytest.fixture
def chromium(tmp_path: Path) -> t.Iterator[t.Any]:
    """A headless Chromium (playwright's ``Browser``)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="install the playwright Python package"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """A page with its console errors and navigations recorded."""

    def __init__(self, page: t.Any) -> None:
        self.page = page
        page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.navigations = 0
        page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "framenavigated",
            lambda f: self._navigated() if f == page.main_frame else None,
        )

    def _navigated(self) -> None:
        self.navigations += 1

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).inner_text())

    def wait_text(self, selector: str, text: str) -> None:
        self.page.locator(selector, has_text=text).wait_for()

    def live_errors(self) -> list[str]:
        """Console errors other than the pages' own failed responses."""
        return [e for e in self.errors if not e.startswith("Failed to load resource")]


@pytest.fixture
def open_page(chromium: t.Any) -> t.Iterator[t.Callable[[], Watched]]:
    """Open new pages, each in a fresh context."""
    contexts: list[t.Any] = []

    def new() -> Watched:
        context = chromium.new_context(viewport={"width": 1000, "height": 700})
        contexts.append(context)
        return Watched(context.new_page())

    yield new
    for context in contexts:
        context.close()
