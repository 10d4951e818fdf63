"""Live reload end to end: real servers, real files, headless Chromium."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from .conftest import (
    HEARD_HELLO,
    Watched,
    app_script,
    free_port,
    project,
    wait_until,
    write,
)

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]
    Opener = t.Callable[[], Watched]

pytestmark = [pytest.mark.browser, pytest.mark.live_server]

PIN_OFF = {"CITUS_DEBUGGER_PIN": "off"}


def start(run_python: Runner, script: Path, *args: str) -> tuple[CitusProcess, str]:
    proc = run_python(str(script), *args, env=PIN_OFF)
    url = proc.wait_for_url()
    proc.wait_for_log("Debugger is active")
    return proc, url


def connected(page: Watched) -> None:
    """Wait until the page's script follows the stream (it heard a hello)."""
    page.page.wait_for_function(HEARD_HELLO)


#: The colour of the project page's heading, as the browser computes it.
COLOUR = "getComputedStyle(document.querySelector('h1')).color"


def open_project(
    run_python: Runner, open_page: Opener, tmp_path: Path, path: str
) -> tuple[CitusProcess, Watched]:
    """Serve the :func:`project` in ``tmp_path`` and open ``path`` in a page
    that follows the stream."""
    proc, url = start(run_python, tmp_path / "app.py")
    page = open_page()
    page.page.goto(url + path)
    connected(page)
    return proc, page


def test_many_tabs_share_one_stream_per_browser(
    run_python: Runner, chromium: t.Any, tmp_path: Path
) -> None:
    """Browsers open at most 6 connections to a server: a stream per tab
    would leave the seventh tab loading for ever."""
    script = project(tmp_path, "one")
    proc, url = start(run_python, script)
    contexts = [chromium.new_context(), chromium.new_context()]
    try:
        tabs = []
        for context, count in zip(contexts, (9, 3), strict=True):
            for _ in range(count):
                tab = Watched(context.new_page())
                tab.page.goto(url + "/")
                tabs.append(tab)
        write(script, app_script("two"))
        for tab in tabs:
            tab.wait_text("#msg", "two")
        # One tab closes (perhaps the one holding the stream): the others
        # still follow.
        tabs[0].page.close()
        for tab in tabs[1:]:
            tab.page.wait_for_function(HEARD_HELLO)
        write(script, app_script("three"))
        for tab in tabs[1:]:
            tab.wait_text("#msg", "three")
        assert all(not t.live_errors() for t in tabs), [t.errors for t in tabs]
    finally:
        for context in contexts:
            context.close()


@pytest.mark.parametrize("backend", ["stat", "watchdog"])
def test_view_edit_reloads_every_page_and_keeps_the_scroll(
    run_python: Runner, open_page: Opener, tmp_path: Path, backend: str
) -> None:
    script = project(tmp_path, "one", backend)
    proc, url = start(run_python, script)
    pages = [open_page() for _ in range(4)]  # several tabs, several browsers
    for page in pages:
        page.page.goto(url + "/")
        assert page.text("#msg") == "one"
    first = pages[0]
    first.page.evaluate("window.scrollTo(0, 1500)")
    old_pid = first.text("#pid")
    write(script, app_script("two", backend))
    for page in pages:
        page.wait_text("#msg", "two")
    assert first.text("#pid") != old_pid  # new code, new process
    wait_until(lambda: first.page.evaluate("window.scrollY") == 1500, 5)
    assert all(not p.live_errors() for p in pages), [p.errors for p in pages]


def test_css_edit_swaps_styles_in_place_keeping_form_and_script_state(
    run_python: Runner, open_page: Opener, tmp_path: Path
) -> None:
    project(tmp_path)
    proc, page = open_project(run_python, open_page, tmp_path, "/")
    assert page.page.evaluate(COLOUR) == "rgb(200, 0, 0)"
    page.page.fill("#field", "typed, not sent")
    page.page.evaluate("window.marker = 42")
    navigations = page.navigations
    pid = page.text("#pid")
    write(tmp_path / "static" / "site.css", "h1 { color: rgb(0, 0, 200); }\n")
    page.page.wait_for_function(f"() => {COLOUR} === 'rgb(0, 0, 200)'")
    assert page.page.input_value("#field") == "typed, not sent"
    assert page.page.evaluate("window.marker") == 42
    assert page.navigations == navigations  # no reload
    assert page.text("#pid") == pid
    # One stylesheet, the new one (the old link is gone once it loaded).
    wait_until(lambda: page.page.locator("link[rel=stylesheet]").count() == 1, 5)
    assert not page.live_errors(), page.errors

    # Saves that come faster than a stylesheet loads (an editor's autosave)
    # still leave one link. The events come as another tab passes them on.
    page.page.evaluate(
        """() => {
            const url = document.querySelector("script[data-url]").dataset.url;
            const channel = new BroadcastChannel("citus-live " + url);
            const css = 'event: css\\ndata: {"paths": ["/static/site.css"]}';
            for (let i = 0; i < 4; i++) channel.postMessage(css);
        }"""
    )
    wait_until(lambda: page.page.locator("link[rel=stylesheet]").count() == 1, 5)
    page.page.wait_for_timeout(300)  # no late duplicate either
    assert page.page.locator("link[rel=stylesheet]").count() == 1
    assert page.page.evaluate(COLOUR) == "rgb(0, 0, 200)"


def test_a_stylesheet_with_an_integrity_hash_is_swapped_too(
    run_python: Runner, open_page: Opener, tmp_path: Path
) -> None:
    """The changed file no longer matches the page's integrity hash: the new
    link goes without it (the old one would fail to load)."""
    project(tmp_path)
    proc, page = open_project(run_python, open_page, tmp_path, "/sri")
    assert page.page.evaluate(COLOUR) == "rgb(200, 0, 0)"
    write(tmp_path / "static" / "site.css", "h1 { color: rgb(0, 0, 200); }\n")
    page.page.wait_for_function(f"() => {COLOUR} === 'rgb(0, 0, 200)'")
    wait_until(lambda: page.page.locator("link[rel=stylesheet]").count() == 1, 5)


def test_other_static_files_reload_the_page_without_a_restart(
    run_python: Runner, open_page: Opener, tmp_path: Path
) -> None:
    project(tmp_path)
    write(tmp_path / "static" / "app.js", "var version = 1;\n")
    proc, page = open_project(run_python, open_page, tmp_path, "/")
    page.page.evaluate("window.marker = 1")
    pid = page.text("#pid")
    write(tmp_path / "static" / "app.js", "var version = 2;\n")
    page.page.wait_for_function("() => window.marker === undefined")  # reloaded
    page.wait_text("#msg", "one")
    assert page.text("#pid") == pid  # the same process served it
    assert "Detected change" not in proc.log.text


def test_the_debugger_page_clears_itself_after_the_fix(
    run_python: Runner, open_page: Opener, tmp_path: Path
) -> None:
    script = project(tmp_path, "broken")
    proc, url = start(run_python, script)
    page = open_page()
    response = page.page.goto(url + "/item")
    assert response.status == 500
    page.wait_text("h1.exc-type", "ValueError")
    connected(page)
    write(script, app_script("fixed"))
    page.wait_text("#msg", "fixed")
    assert page.page.url == url + "/item"
    assert not page.live_errors(), page.errors


def test_a_failed_post_offers_to_repeat_it_only_when_clicked(
    run_python: Runner, open_page: Opener, tmp_path: Path
) -> None:
    script = project(tmp_path, "broken")
    proc, url = start(run_python, script)
    page = open_page()
    page.page.goto(url + "/")
    page.page.fill("#field", "hello")
    page.page.click("#send")
    page.wait_text("h1.exc-type", "ValueError")
    connected(page)
    submits = proc.log.text.count('"POST /submit')
    write(script, app_script("fixed"))
    button = page.page.locator("#citus-live-repeat button")
    button.wait_for()
    assert button.inner_text() == "Repeat POST request"
    # Nothing was sent by itself: the error is still shown.
    assert page.text("h1.exc-type") == "ValueError"
    assert proc.log.text.count('"POST /submit') == submits
    button.click()
    page.wait_text("#msg", "got note=hello")
    assert not page.live_errors(), page.errors


def test_a_post_too_big_to_keep_says_why_it_cannot_be_repeated(
    run_python: Runner, open_page: Opener, tmp_path: Path
) -> None:
    script = project(tmp_path, "broken")
    proc, url = start(run_python, script)
    page = open_page()
    page.page.goto(url + "/")
    page.page.evaluate(
        """() => {
            document.querySelector("#field").value = "x".repeat(1100 * 1024);
            document.querySelector("#send").click();
        }"""
    )
    page.wait_text("h1.exc-type", "ValueError")
    connected(page)
    write(script, app_script("fixed"))
    bar = page.page.locator("#citus-live-repeat")
    bar.wait_for()
    assert page.page.locator("#citus-live-repeat button").is_disabled()
    assert "over 1 MiB" in bar.inner_text(), bar.inner_text()
    assert not page.live_errors(), page.errors


def test_the_crash_page_carries_the_script_and_clears_itself(
    run_python: Runner, open_page: Opener, tmp_path: Path
) -> None:
    script = project(tmp_path, "one")
    proc, url = start(run_python, script)
    page = open_page()
    page.page.goto(url + "/")
    connected(page)
    crash = app_script("one", extra="raise SystemExit('the child stops: 7f3a')")
    write(script, crash)
    # The child is gone: the page reloads into the supervisor's page ...
    page.wait_text("h1", "The development server stopped")
    connected(page)
    write(script, app_script("back"))
    # ... and out of it once a child serves again.
    page.wait_text("#msg", "back")
    assert not page.live_errors(), page.errors


@pytest.mark.parametrize("where", ["csp", "meta-csp"])
def test_a_page_with_a_strict_policy_still_follows(
    run_python: Runner, open_page: Opener, tmp_path: Path, where: str
) -> None:
    """The policy in a header, or in a <meta http-equiv> tag."""
    script = project(tmp_path, "one")
    proc, url = start(run_python, script)
    page = open_page()
    violations: list[str] = []
    page.page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security" in m.text else None,
    )
    page.page.goto(url + "/" + where)
    connected(page)
    write(script, app_script("two"))
    page.wait_text("#msg", "two")
    assert not violations, violations
    assert not page.live_errors(), page.errors


def test_pages_come_back_after_the_server_does_without_a_flood_of_errors(
    run_python: Runner, open_page: Opener, tmp_path: Path
) -> None:
    script = project(tmp_path, "one")
    port = free_port()
    proc, url = start(run_python, script, str(port))
    page = open_page()
    page.page.goto(url + "/")
    connected(page)
    pid = page.text("#pid")
    proc.interrupt()  # Ctrl+C
    assert proc.wait() == 0
    page.page.wait_for_timeout(3000)  # the server stays away for 3 s
    failed = [e for e in page.errors if "ERR_CONNECTION_REFUSED" in e]
    assert len(failed) <= 8, failed  # backed off, not one per frame
    again, _ = start(run_python, script, str(port))
    wait_until(
        lambda: page.page.locator("#pid").count() == 1 and page.text("#pid") != pid
    )
    assert page.text("#msg") == "one"


CITUS_APP = """\
import os

from citus import API, Response

app = API(__name__)


@app.route("/")
def index():
    return Response(
        '<!doctype html><html><body><h1 id="msg">{message}</h1>'
        '<p id="pid">%d</p></body></html>' % os.getpid(),
        mimetype="text/html",
    )
"""


def test_the_load_error_page_clears_itself(
    run_citus: Runner, open_page: Opener, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    write(app, CITUS_APP.replace("{message}", "one"))
    proc = run_citus("run", "--debug", "--port", "0", env=PIN_OFF)
    url = proc.wait_for_url()
    proc.wait_for_log("Debugger is active")
    page = open_page()
    page.page.goto(url + "/")
    connected(page)
    # A syntax error: the page reloads into the debugger's load-error page ...
    write(app, CITUS_APP.replace("{message}", "one").replace("def index", "def index("))
    page.wait_text("h1.exc-type", "SyntaxError")
    connected(page)
    # ... and out of it after the fix.
    write(app, CITUS_APP.replace("{message}", "fixed"))
    page.wait_text("#msg", "fixed")
    assert not page.live_errors(), page.errors
