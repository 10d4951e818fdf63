"""app.run(): the banner, options, SERVER_NAME defaults, .env files, and doing
nothing under ``citus run``."""

from __future__ import annotations

import http.client
import logging
import os
import textwrap
import typing as t
from pathlib import Path

import pytest

import citus.app
from citus import API

SCRIPT = """
from citus import API

app = API(__name__)

@app.route("/")
def hello():
    return "Hello from run!"

if __name__ == "__main__":
    {call}
"""


def write_app(folder: Path, call: str, name: str = "hello_run.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(SCRIPT).replace("{call}", call))
    return path


def fetch(url: str) -> tuple[int, bytes]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_run_ignored_under_citus_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CITUS_RUN_FROM_CLI", str(os.getpid()))
    monkeypatch.setattr(citus.app, "_ran_from_cli_warned", False)
    app = API("ignored")
    with caplog.at_level(logging.INFO, logger="citus"):
        app.run()
        app.run(port=1)  # returns at once too, without binding anything
    messages = [r.getMessage() for r in caplog.records if "Ignoring" in r.getMessage()]
    assert messages == [
        " * Ignoring a call to 'app.run()': 'citus run' is already serving this"
        " app. Guard it with 'if __name__ == \"__main__\":'."
    ]


@pytest.mark.live_server
def test_run_serves_with_banner(run_python: t.Any, tmp_path: Path) -> None:
    script = write_app(tmp_path, 'app.run(host="127.0.0.1", port=0)')
    with run_python(str(script)) as proc:
        url = proc.wait_for_url()
        assert fetch(url) == (200, b"Hello from run!")
        text = proc.log.text
    assert " * Serving citus app 'hello_run'" in text
    assert " * Debug mode: off" in text
    assert (
        "WARNING: This is a development server. Do not use it in a production"
        " deployment." in text
    )
    assert text.index("Serving citus app") < text.index("Running on")


@pytest.mark.live_server
def test_run_takes_the_port_from_server_name(run_python: t.Any, tmp_path: Path) -> None:
    script = write_app(
        tmp_path,
        'app.config["SERVER_NAME"] = "127.0.0.1:0"\n    app.run()',
    )
    with run_python(str(script)) as proc:
        url = proc.wait_for_url()
        assert url.startswith("http://127.0.0.1:")
        assert fetch(url)[0] == 200


@pytest.mark.live_server
def test_run_reads_debug_from_dotenv(run_python: t.Any, tmp_path: Path) -> None:
    pytest.importorskip("dotenv")
    (tmp_path / ".env").write_text("CITUS_DEBUG=1\n")
    script = write_app(
        tmp_path,
        "import os\n"
        '    os.environ.pop("CITUS_DEBUG", None)\n'
        '    os.environ.pop("CITUS_ENV", None)\n'
        '    app.run(host="127.0.0.1", port=0, use_reloader=False, use_debugger=False)',
    )
    with run_python(str(script)) as proc:
        url = proc.wait_for_url()
        assert fetch(url)[0] == 200
        assert " * Debug mode: on" in proc.log.text
        assert "WARNING: This is a development server" not in proc.log.text


@pytest.mark.live_server
def test_run_debug_prints_the_banner_once(run_python: t.Any, tmp_path: Path) -> None:
    script = write_app(tmp_path, 'app.run(host="127.0.0.1", port=0, debug=True)')
    with run_python(str(script)) as proc:
        url = proc.wait_for_url()
        proc.wait_for_log(r"Debugger PIN|Debugger is active")
        assert fetch(url) == (200, b"Hello from run!")
        text = proc.log.text
    assert text.count("Serving citus app 'hello_run'") == 1
    assert " * Debug mode: on" in text


@pytest.mark.live_server
def test_run_with_only_the_debugger_shows_errors(
    run_python: t.Any, tmp_path: Path
) -> None:
    """``use_debugger=True`` without debug mode: errors reach the debugger."""
    script = write_app(
        tmp_path,
        '@app.route("/boom")\n'
        '    def boom(): raise ValueError("kaboom in run")\n'
        '    app.run(host="127.0.0.1", port=0, use_debugger=True)',
    )
    with run_python(str(script)) as proc:
        url = proc.wait_for_url()
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", "/boom", headers={"Accept": "text/plain"})
            response = connection.getresponse()
            status, body = response.status, response.read()
        finally:
            connection.close()
        assert " * Debug mode: off" in proc.log.text
    assert status == 500
    assert b"ValueError: kaboom in run" in body


@pytest.mark.live_server
def test_run_load_dotenv_false_skips_the_files(
    run_python: t.Any, tmp_path: Path
) -> None:
    pytest.importorskip("dotenv")
    (tmp_path / ".env").write_text("CITUS_DEBUG=1\n")
    script = write_app(
        tmp_path,
        "import os\n"
        '    os.environ.pop("CITUS_DEBUG", None)\n'
        '    os.environ.pop("CITUS_ENV", None)\n'
        '    app.run(host="127.0.0.1", port=0, load_dotenv=False)',
    )
    with run_python(str(script)) as proc:
        url = proc.wait_for_url()
        assert fetch(url)[0] == 200
        assert " * Debug mode: off" in proc.log.text
