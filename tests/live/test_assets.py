"""Asset folders under ``app.run()``: the events the open pages get, read off
a raw event stream, with each reloader backend."""

from __future__ import annotations

import json
import socket
import typing as t
from pathlib import Path

import pytest

from citus.live import EVENTS

from .conftest import CITUS_SRC, write

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

pytestmark = pytest.mark.live_server

APP = """\
import os

from citus import API, render_template

app = API(__name__)


@app.route("/")
def index():
    return render_template("index.html")


if __name__ == "__main__":
    app.run(
        port=0,
        debug=True,
        reloader_type={backend!r},
        reloader_interval=0.1,
        exclude_patterns=[{src!r} + os.sep + "*"],
    )
"""


class Stream:
    """A raw connection to the event stream."""

    def __init__(self, url: str) -> None:
        host, _, port = url.split("://", 1)[1].rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), 10)
        self.sock.sendall(f"GET {EVENTS} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        self.buffer = b""

    def next(self) -> tuple[str, dict[str, t.Any]]:
        while b"\n\n" not in self.buffer.partition(b"\r\n\r\n")[2]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"the stream ended: {self.buffer!r}")
            self.buffer += chunk
        head, _, body = self.buffer.partition(b"\r\n\r\n")
        block, _, rest = body.partition(b"\n\n")
        self.buffer = head + b"\r\n\r\n" + rest
        lines = dict(line.split(": ", 1) for line in block.decode().splitlines())
        return lines["event"], json.loads(lines["data"])


@pytest.mark.parametrize("backend", ["stat", "watchdog"])
def test_stylesheets_templates_and_other_files_under_app_run(
    run_python: Runner, tmp_path: Path, backend: str
) -> None:
    (tmp_path / "static" / "css").mkdir(parents=True)
    (tmp_path / "templates").mkdir()
    write(tmp_path / "static" / "css" / "site.css", "h1 { color: red; }\n")
    write(tmp_path / "static" / "app.js", "var a = 1;\n")
    write(tmp_path / "templates" / "index.html", "<html><body>one</body></html>")
    write(tmp_path / "app.py", APP.format(backend=backend, src=CITUS_SRC))
    proc = run_python("app.py", env={"CITUS_DEBUGGER_PIN": "off"})
    url = proc.wait_for_url()
    proc.wait_for_log("Debugger is active")
    stream = Stream(url)
    try:
        kind, hello = stream.next()
        assert kind == "hello"
        write(tmp_path / "static" / "css" / "site.css", "h1 { color: blue; }\n")
        assert stream.next() == ("css", {"paths": ["/static/css/site.css"]})
        write(tmp_path / "templates" / "index.html", "<html><body>two</body></html>")
        kind, data = stream.next()
        assert kind == "reload" and data["id"] != hello["id"]
        write(tmp_path / "static" / "app.js", "var a = 2;\n")
        kind, again = stream.next()
        assert kind == "reload" and again["id"] not in (hello["id"], data["id"])
        # A new stylesheet in a new folder is seen too.
        (tmp_path / "static" / "more").mkdir()
        write(tmp_path / "static" / "more" / "extra.css", "p { margin: 0; }\n")
        assert stream.next() == ("css", {"paths": ["/static/more/extra.css"]})
    finally:
        stream.sock.close()
    assert "Detected change" not in proc.log.text  # no restart at all


def test_open_streams_end_at_a_reload_and_never_hold_it_back(
    run_citus: Runner, tmp_path: Path
) -> None:
    import time

    app = tmp_path / "app.py"
    source = (
        "from citus import API\n"
        "app = API(__name__)\n"
        '@app.route("/")\n'
        "def index():\n"
        '    return "{v}"\n'
    )
    write(app, source.format(v="one"))
    proc = run_citus(
        "run",
        "--debug",
        "--port",
        "0",
        "--without-threads",
        env={"CITUS_DEBUGGER_PIN": "off"},
    )
    url = proc.wait_for_url()
    proc.wait_for_log("Debugger is active")
    streams = [Stream(url) for _ in range(20)]
    try:
        first = {stream.next()[1]["id"] for stream in streams}
        assert len(first) == 1
        write(app, source.format(v="two"))
        started = time.monotonic()
        for stream in streams:
            stream.sock.settimeout(10)
            while stream.sock.recv(65536):
                pass  # until the old process ends the stream
        # Ended once the next child took over: well within the grace period
        # after which an old child is killed (1 s).
        assert time.monotonic() - started < 5
        again = Stream(url)
        try:
            kind, hello = again.next()
            assert kind == "hello" and hello["id"] not in first
        finally:
            again.sock.close()
        proc.wait_for_log("Reloaded in")
    finally:
        for stream in streams:
            stream.sock.close()
