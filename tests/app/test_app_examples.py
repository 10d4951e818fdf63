"""The examples through the test client, as a user's own tests would drive them."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

from appkit import load_example  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]


def test_hello_example() -> None:
    hello = load_example("hello.py")
    response = hello.app.test_client().get("/")
    assert response.status_code == 200
    assert response.text == "Hello, World!"


def _code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_hello_example_is_the_documented_app_line_for_line() -> None:
    """examples/hello.py is the hello app of the docs, nothing more (only the
    blank lines differ, as ruff format wants two around functions)."""
    docs = (ROOT / "docs" / "framework.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", docs, re.DOTALL)
    assert block is not None
    example = (ROOT / "examples" / "hello.py").read_text(encoding="utf-8")
    assert _code_lines(example) == _code_lines(block.group(1))


def test_notes_form_flow_keeps_the_author_cookie(notes: t.Any) -> None:
    client = notes.app.test_client()
    response = client.post(
        "/notes", data={"author": "Zoé", "text": "<b>bold</b>"}, follow_redirects=True
    )
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [303]
    assert "&lt;b&gt;bold&lt;/b&gt;" in response.text  # escaped
    assert 'value="Zoé"' in response.text  # from the cookie
    assert client.post("/notes", data={"text": "  "}).status_code == 400


def test_notes_json_api_on_both_hosts(notes: t.Any) -> None:
    client = notes.app.test_client()
    created = client.post("/api/notes", json={"text": "one", "author": "A"})
    assert created.status_code == 201
    assert created.headers["Location"] == "/api/notes/1"
    via_api = client.get("http://api.localhost:8000/notes/1")
    assert via_api.get_json()["text"] == "one"
    assert client.get("http://api.localhost:8000/").get_json() == {
        "notes": "http://api.localhost:8000/notes"
    }
    assert client.delete("/api/notes/1").status_code == 204
    missing = client.get("/api/notes/1")
    assert missing.status_code == 404
    assert missing.get_json()["message"] == "There is no note 1."
    assert client.post("/api/notes", json=["not", "an", "object"]).status_code == 400


def test_notes_api_errors_are_json(notes: t.Any) -> None:
    client = notes.app.test_client()
    wrong_type = client.post("/api/notes", data="text=hi")
    assert wrong_type.status_code == 415
    assert wrong_type.get_json()["error"] == "Unsupported Media Type"
    wrong_method = client.put("http://api.localhost:8000/notes")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    assert wrong_method.get_json()["error"] == "Method Not Allowed"
    # Outside the API, errors stay HTML pages.
    page = client.get("/nothing-here")
    assert page.status_code == 404
    assert page.headers["Content-Type"].startswith("text/html")


def test_notes_subdomain_works_on_any_port(notes: t.Any) -> None:
    client = notes.app.test_client()
    assert client.get("http://api.localhost:8001/").get_json() == {
        "notes": "http://api.localhost:8001/notes"
    }
    assert (
        client.post("http://api.localhost:8001/notes", json={"text": "x"}).status_code
        == 201
    )
