"""The error as Markdown: the page's **Copy as Markdown** button and the JSON
document's ``"markdown"`` field."""

from __future__ import annotations

import html
import re
import threading
import typing as t
from pathlib import Path

from citus.debug import DebuggedApplication
from citus.debug.share import markdown_report
from citus.debug.tbtools import Traceback
from citus.serving import make_server

from .conftest import BROWSER_ACCEPT, Caller
from .test_browser import browser_page as browser_page

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def helper(values: list[int]) -> float:
    return sum(values) / len(values)


def checkout_view(environ: WSGIEnvironment, start_response: StartResponse) -> t.Any:
    """Fails in a helper of the project's own code, through a library call."""
    import json

    cart = json.loads("[]")
    return helper(cart)


def _markdown_of(result_text: str) -> str:
    match = re.search(
        r'<textarea id="markdown-text"[^>]*>(.*?)</textarea>', result_text, re.S
    )
    assert match, "no Markdown on the page"
    return html.unescape(match.group(1))


def _check_markdown(markdown: str) -> None:
    assert markdown.startswith("## `ZeroDivisionError: division by zero`\n")
    # The request line, secrets redacted as on the page.
    assert "Request: `GET http://localhost:8000/checkout?token=********&step=2`" in (
        markdown
    )
    assert "hunter" not in markdown
    # The plain traceback, fenced.
    assert "```pytb\nTraceback (most recent call last):\n" in markdown
    assert "ZeroDivisionError: division by zero\n```" in markdown
    # The source of each of the project's own frames, the failing line marked.
    this_file = Path(__file__)
    fail_line = next(
        n
        for n, line in enumerate(this_file.read_text().splitlines(), 1)
        if "return sum(values) / len(values)" in line
    )
    assert f", line {fail_line}` in `helper`:" in markdown
    assert f">{fail_line:>4} | " in markdown or f"> {fail_line} | " in markdown
    assert "in `checkout_view`:" in markdown
    # Library code (json) is in the traceback at most, never in the sources.
    assert "json/__init__.py, line" not in markdown


def test_page_has_the_button_and_the_markdown(isolated_state: None) -> None:
    client = Caller(DebuggedApplication(checkout_view))
    result = client.get(
        "/checkout?token=hunter2&step=2", headers={"Accept": BROWSER_ACCEPT}
    )
    assert result.status == 500
    assert '<button type="button" id="copy-markdown">Copy as Markdown</button>' in (
        result.text
    )
    _check_markdown(_markdown_of(result.text))


def test_json_document_has_the_same_markdown(isolated_state: None) -> None:
    client = Caller(DebuggedApplication(checkout_view))
    data = client.get(
        "/checkout?token=hunter2&step=2", headers={"Accept": "application/json"}
    ).json()
    _check_markdown(data["markdown"])
    page = client.get(
        "/checkout?token=hunter2&step=2", headers={"Accept": BROWSER_ACCEPT}
    )
    assert _markdown_of(page.text) == data["markdown"]


def connect_view(environ: WSGIEnvironment, start_response: StartResponse) -> t.Any:
    """Fails with a database password in its message and in its source."""
    db_password = "pw-swordfish"
    dsn = f"postgres://shop:{db_password}@db/shop?sslkey=/k&token=tok-t0p"
    raise ConnectionError(f"cannot reach {dsn}")


def test_markdown_hides_the_secrets_it_can_spot(isolated_state: None) -> None:
    client = Caller(DebuggedApplication(connect_view))
    data = client.get("/db", headers={"Accept": "application/json"}).json()
    markdown = data["markdown"]
    # Meant to leave the machine: the URL's password, secret query values and
    # secret-named strings in the source are hidden, in the heading, the
    # traceback and the source alike.
    password, token = "sword" + "fish", "t0" + "p"
    assert password not in markdown and token not in markdown, markdown
    assert markdown.startswith(
        "## `ConnectionError: cannot reach postgres://shop:********@db/shop"
        "?sslkey=********&token=********`"
    )
    assert "db_password = ********" in markdown
    assert (
        "ConnectionError: cannot reach postgres://shop:********@"
        in (markdown.split("```pytb")[1])
    )
    # The page's own plain traceback stays what Python prints.
    assert password in data["traceback"]


def test_fences_cannot_be_closed_by_the_message() -> None:
    try:
        raise ValueError("look:\n```\n# not a heading\n````")
    except ValueError as error:
        text = markdown_report(Traceback(error))
    assert "`````pytb\n" in text
    assert text.rstrip().endswith("`````") or "`````\n" in text
    assert text.startswith("## `ValueError: look:`")


def test_copy_as_markdown_in_chromium(
    isolated_state: None, browser_page: t.Any
) -> None:
    server = make_server("127.0.0.1", 0, DebuggedApplication(checkout_view))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser_page
        response = page.goto(f"http://localhost:{server.port}/checkout?token=x&step=2")
        assert response.status == 500
        page.locator("#copy-markdown").click()
        page.locator("#copy-status", has_text="Copied.").wait_for()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("## `ZeroDivisionError: division by zero`")
        assert "```pytb\n" in copied
        assert "token=********" in copied
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
