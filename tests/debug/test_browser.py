"""End to end in headless Chromium: open a failing page, unlock, evaluate."""

from __future__ import annotations

import os
import threading
import typing as t
from pathlib import Path

import pytest

from citus.debug import DebuggedApplication
from citus.serving import make_server

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

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

pytestmark = [pytest.mark.browser, pytest.mark.live_server]


def order_view(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """A view with a bug: the total of an empty order divides by zero."""
    if environ["PATH_INFO"] == "/favicon.ico":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no icon"]
    order_items: list[int] = []
    customer = {"name": "Ada", "password": "-".join(["not", "for", "your", "eyes"])}
    average = sum(order_items) / len(order_items)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{customer['name']}: {average}".encode()]


@pytest.fixture
def browser_page(tmp_path: Path) -> t.Iterator[t.Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="install the playwright Python package"
    )
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1200, "height": 900},
            permissions=["clipboard-read", "clipboard-write"],
        )
        try:
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            context.close()


def test_unlock_and_evaluate_a_local_in_chromium(
    isolated_state: None, browser_page: t.Any, tmp_path: Path
) -> None:
    debugged = DebuggedApplication(order_view)
    server = make_server("127.0.0.1", 0, debugged, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser_page
        errors: list[str] = []
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                # the page's own 500 and the wrong PIN's 403 are expected
                if m.type == "error"
                and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        response = page.goto(f"http://localhost:{server.port}/orders/7")
        assert response.status == 500
        assert page.locator("h1.exc-type").inner_text() == "ZeroDivisionError"
        # The stylesheet loaded under the CSP (the header has a dark background).
        colour = page.locator("header.error").evaluate(
            "el => getComputedStyle(el).backgroundColor"
        )
        assert colour == "rgb(179, 38, 30)"
        # The copy button puts the plain traceback on the clipboard.
        page.locator("#copy-traceback").click()
        page.locator("#copy-status", has_text="Copied.").wait_for()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("Traceback (most recent call last)")
        assert "ZeroDivisionError: division by zero" in copied
        # Expand the frame's console: the PIN is asked first.
        frame = page.locator(
            "li.frame", has=page.locator(".function", has_text="order_view")
        )
        frame.locator("button.open-console").click()
        page.locator("#pin-input").fill("000-000-000")
        page.locator("#pin-box button").click()
        page.locator(".pin-message", has_text="Wrong PIN").wait_for()
        page.locator("#pin-input").fill(debugged.pin or "")
        page.locator("#pin-box button").click()
        console_input = frame.locator(".console textarea")
        console_input.wait_for()
        console_input.fill("len(order_items), customer['name']")
        console_input.press("Enter")
        frame.locator(".console .result", has_text="(0, 'Ada')").wait_for()
        console_input.fill("customer")
        console_input.press("Enter")
        frame.locator(".console .result", has_text="'password': ********").wait_for()
        assert "not-for-your-eyes" not in page.content()
        shot = tmp_path / "debugger.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("CITUS_DEBUGGER_SCREENSHOT"):
            page.screenshot(path=os.environ["CITUS_DEBUGGER_SCREENSHOT"])
        assert not errors, errors
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
