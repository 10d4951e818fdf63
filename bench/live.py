"""Benchmark live reload: from the end of a save to the browser showing it.

Headless Chromium (Debian's ``/usr/bin/chromium``, driven by playwright)
opens a page; the script saves a file and measures the time from the end of
the write to the moment the page shows the change. The page records that
moment itself (a 2 ms check, started by an init script in every document, on
the same clock as the script), so the browser-to-script round trip is not
counted. Three kinds of edits, ``--edits`` times each:

- **view**: the Python module's message (the server reloads the code);
- **css**: the static stylesheet (the page must not reload: a mark set on
  ``window`` before the save must still be there);
- **template**: the page's template (the server's process must not restart:
  the PID shown in the page must stay the same).

Meanwhile a second client requests the page every 20 ms and counts every
refused, reset or 5xx request as **failed**; the browser's own requests that
fail or get a 5xx are counted apart (the live-reload streams that a reload
ends on purpose are not counted).

Servers, each on the same kind of app (``--only`` picks some):

- ``citus``: a citus app (``render_template``, ``static/``) under
  ``citus run --debug`` (events backend);
- ``citus-django``: a Django project under ``citus run --debug``;
- ``django-browser-reload``: the same Django project under ``manage.py
  runserver`` with django-browser-reload, what a Django user would add
  (skipped when it is not installed).

Only processes this script starts are stopped (by their process group), and
only loopback addresses are used.

    python bench/live.py                  # everything, about 2 minutes
    python bench/live.py --only citus --edits 5
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
SRC = Path(__file__).resolve().parent.parent / "src" / "citus"

PAGE = (
    "<!doctype html><html><head><title>bench</title>"
    '<link rel="stylesheet" href="/static/site.css"></head><body>'
    '<h1 id="msg">{{ word }} {suffix}</h1><p id="pid">{{ pid }}</p>'
    '<input id="field"></body></html>'
)

CITUS_APP = """\
import os

from citus import API, render_template

MESSAGE = {message!r}
app = API(__name__)


@app.route("/")
def index():
    return render_template("index.html", word=MESSAGE, pid=os.getpid())
"""

DJANGO_APP = """\
import os
import sys

from django.conf import settings
from django.shortcuts import render
from django.urls import include, path

HERE = os.path.dirname(os.path.abspath(__file__))
MESSAGE = {message!r}
ADDON = os.environ.get("BENCH_ADDON") == "1"
settings.configure(
    DEBUG=True,
    SECRET_KEY="bench-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["django.contrib.staticfiles"]
    + (["django_browser_reload"] if ADDON else []),
    MIDDLEWARE=(
        ["django_browser_reload.middleware.BrowserReloadMiddleware"] if ADDON else []
    ),
    STATIC_URL="/static/",
    STATICFILES_DIRS=[os.path.join(HERE, "static")],
    TEMPLATES=[{{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(HERE, "templates")],
    }}],
)


def index(request):
    return render(request, "index.html", {{"word": MESSAGE, "pid": os.getpid()}})


urlpatterns = [path("", index)]
if ADDON:
    urlpatterns.append(path("__reload__/", include("django_browser_reload.urls")))

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

#: Records, in every document, when the heading's text and colour were first
#: seen (``Date.now()``, the same clock as ``time.time()``).
WATCH = """
(() => {
  const seen = (window.__seen = {});
  const tick = () => {
    const h = document.getElementById("msg");
    if (!h) return;
    const text = "text:" + h.textContent;
    if (!(text in seen)) seen[text] = Date.now();
    const colour = "colour:" + getComputedStyle(h).color;
    if (!(colour in seen)) seen[colour] = Date.now();
  };
  setInterval(tick, 2);
  document.addEventListener("DOMContentLoaded", tick);
})();
"""

#: Requests a reload ends on purpose: the live-reload streams.
STREAMS = ("/__citus_live__/", "/__reload__/")


class Server:
    """One server process on a free port, with its project folder."""

    def __init__(self, name: str, folder: Path, args: list[str], env: dict[str, str]):
        self.name = name
        self.folder = folder
        self.port = free_port()
        full = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", **env)
        full.pop("CITUS_RUN_MAIN", None)
        args = [a.replace("{port}", str(self.port)) for a in args]
        self.log = open(folder / "server.log", "w")
        self.proc = subprocess.Popen(
            args,
            cwd=folder,
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if get(self.port) == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer; see {self.folder}/server.log")

    def log_text(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(5)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # what the process group still holds (reloader children)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def write(path: Path, text: str) -> float:
    """Save ``text``; return ``time.time()`` at the end of the write."""
    with open(path, "w") as file:
        file.write(text)
    return time.time()


class Poller(threading.Thread):
    """Requests the page every 20 ms; counts the requests that fail."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.requests = 0
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.02):
            self.requests += 1
            try:
                if get(self.port) >= 500:
                    self.failed += 1
            except OSError:
                self.failed += 1


def project(kind: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"citus-live-{kind}-"))
    (folder / "static").mkdir()
    (folder / "templates").mkdir()
    (folder / "static" / "site.css").write_text("h1 { color: rgb(0, 0, 0); }\n")
    (folder / "templates" / "index.html").write_text(PAGE.replace("{suffix}", "t0"))
    source = CITUS_APP if kind == "citus" else DJANGO_APP
    (folder / "app.py").write_text(source.format(message="m0"))
    return folder


def start(name: str) -> Server:
    citus = [sys.executable, "-m", "citus", "run", "--debug", "--port", "{port}"]
    citus += ["--exclude-patterns", str(SRC) + os.sep + "*"]
    if name == "citus":
        server = Server(name, project("citus"), citus, {})
    elif name == "citus-django":
        server = Server(name, project("django"), citus, {})
    else:
        args = [sys.executable, "app.py", "runserver", "127.0.0.1:{port}"]
        server = Server(name, project("django"), args, {"BENCH_ADDON": "1"})
    server.wait_ready()
    return server


def measure(name: str, edits: int, browser: t.Any) -> dict[str, t.Any]:
    server = start(name)
    folder = server.folder
    source = CITUS_APP if name == "citus" else DJANGO_APP
    page = browser.new_page()
    failed_in_browser: list[str] = []

    def failed(request: t.Any) -> None:
        if not any(s in request.url for s in STREAMS):
            failed_in_browser.append(f"{request.url} {request.failure}")

    def answered(response: t.Any) -> None:
        if response.status >= 500:
            failed_in_browser.append(f"{response.url} {response.status}")

    page.on("requestfailed", failed)
    page.on("response", answered)
    page.add_init_script(WATCH)
    page.goto(server.url)
    poller = Poller(server.port)
    poller.start()
    results: dict[str, list[float]] = {"view": [], "css": [], "template": []}
    problems: list[str] = []
    message, suffix = "m0", "t0"

    def settle() -> None:
        # Let the page (re)connect its stream, then a quiet moment.
        page.wait_for_load_state("load")
        page.wait_for_timeout(400)

    def shown(key: str, since: float) -> float:
        page.wait_for_function(
            f"window.__seen && {key!r} in window.__seen", timeout=20_000
        )
        return float(page.evaluate(f"window.__seen[{key!r}]")) - since * 1000

    try:
        settle()
        for i in range(1, edits + 1):
            message = f"m{i}"
            since = write(folder / "app.py", source.format(message=message))
            results["view"].append(shown(f"text:{message} {suffix}", since))
            settle()

            pid = page.inner_text("#pid")
            page.evaluate("window.__mark = 1")
            since = write(
                folder / "static" / "site.css", f"h1 {{ color: rgb({i}, 0, 0); }}\n"
            )
            results["css"].append(shown(f"colour:rgb({i}, 0, 0)", since))
            if page.evaluate("window.__mark") != 1:
                problems.append(f"css edit {i}: the page reloaded")
            settle()

            suffix = f"t{i}"
            template = PAGE.replace("{suffix}", suffix)
            since = write(folder / "templates" / "index.html", template)
            results["template"].append(shown(f"text:{message} {suffix}", since))
            if page.inner_text("#pid") != pid:
                problems.append(f"template edit {i}: the process restarted")
            settle()
    finally:
        poller.stopping.set()
        poller.join(5)
        page.close()
        server.stop()
    return {
        "name": name,
        "results": results,
        "problems": problems,
        "failed": poller.failed,
        "requests": poller.requests,
        "browser_failed": len(failed_in_browser),
        "failures": failed_in_browser[:5],
    }


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=10, help="edits of each kind")
    parser.add_argument(
        "--only",
        default="citus,citus-django,django-browser-reload",
        help="comma-separated servers",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    names = [n for n in args.only.split(",") if n]
    if "django-browser-reload" in names:
        try:
            import django_browser_reload  # noqa: F401
        except ImportError:
            print("django-browser-reload is not installed: skipped")
            names.remove("django-browser-reload")
    print(f"before: {load()}")
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
        )
        try:
            for name in names:
                row = measure(name, args.edits, browser)
                rows.append(row)
                print(f"{name}: done ({load()})")
        finally:
            browser.close()
    print()
    print(
        "| server | view edit | CSS edit | template edit"
        " | failed / requests | failed in the browser |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        cells = []
        for kind in ("view", "css", "template"):
            values = row["results"][kind]
            if values:
                cells.append(
                    f"{statistics.median(values):.0f} ms"
                    f" ({min(values):.0f}–{max(values):.0f})"
                )
            else:
                cells.append("-")
        failed = f"{row['failed']} / {row['requests']} | {row['browser_failed']}"
        print(f"| {row['name']} | {' | '.join(cells)} | {failed} |")
    for row in rows:
        for problem in row["problems"] + row["failures"]:
            print(f"{row['name']}: {problem}")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
