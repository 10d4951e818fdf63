"""The notes example under production WSGI servers, as docs/deploying.md shows:
waitress (every platform) and gunicorn (POSIX), each a real process on a free
port, answering real requests."""

from __future__ import annotations

import http.client
import json
import sys
import typing as t
from pathlib import Path

import pytest

pytestmark = pytest.mark.live_server

NOTES = Path(__file__).resolve().parents[2] / "examples" / "notes"

# Serve with waitress on port 0 and report the port in the fixtures' format.
WAITRESS_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from waitress import create_server
from app import app

server = create_server(app, host="127.0.0.1", port=0, threads=2)
print(f" * Running on http://127.0.0.1:{server.effective_port}", flush=True)
server.run()
"""


def get(port: int, path: str, **kwargs: t.Any) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(kwargs.pop("method", "GET"), path, **kwargs)
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


def check_notes(port: int) -> None:
    status, headers, body = get(port, "/")
    assert status == 200 and b"<h1>Notes</h1>" in body
    status, headers, body = get(
        port,
        "/api/notes",
        method="POST",
        body=json.dumps({"text": "deployed"}),
        headers={"Content-Type": "application/json"},
    )
    assert status == 201, body
    status, _, body = get(port, "/notes", headers={"Host": "api.localhost:8000"})
    assert [note["text"] for note in json.loads(body)] == ["deployed"]
    status, headers, body = get(port, "/static/style.css")
    assert status == 200 and headers["Content-Type"] == "text/css; charset=utf-8"
    status, _, _ = get(port, "/static/%2e%2e/app.py")
    assert status == 404


def test_notes_under_waitress(run_python: t.Any, tmp_path: Path) -> None:
    script = tmp_path / "serve_waitress.py"
    script.write_text(WAITRESS_SCRIPT)
    with run_python(str(script), str(NOTES)) as proc:
        url = proc.wait_for_url()
        check_notes(int(url.rsplit(":", 1)[1]))


@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn is POSIX only")
def test_notes_under_gunicorn(run_python: t.Any) -> None:
    with run_python(
        "-m",
        "gunicorn",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--no-control-socket",
        "--chdir",
        str(NOTES),
        "app:app",
    ) as proc:
        match = proc.wait_for_log(r"Listening at: http://127\.0\.0\.1:(\d+)")
        check_notes(int(match.group(1)))
