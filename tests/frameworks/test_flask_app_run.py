"""A Flask module that calls ``app.run()`` at import, with no ``__main__``
guard, is served by ``citus run`` as by ``flask run``: Flask's own flag makes
that call return (with Flask's note) instead of starting Werkzeug's server."""

from __future__ import annotations

import socket
import textwrap
import typing as t
import urllib.request
from pathlib import Path

import pytest

from .conftest import clean_env

pytestmark = pytest.mark.live_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_an_unguarded_app_run_does_not_take_over(
    run_citus: t.Any, tmp_path: Path, debug: bool
) -> None:
    pytest.importorskip("flask")
    werkzeug_port = free_port()
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            f"""
            import os
            from flask import Flask

            app = Flask(__name__)

            @app.route("/")
            def index():
                return "flag: " + str(os.environ.get("FLASK_RUN_FROM_CLI"))

            app.run(host="127.0.0.1", port={werkzeug_port})
            """
        )
    )
    args = ["--app", "app", "run", "--port", "0", "--host", "127.0.0.1"]
    proc = run_citus(*args, *(["--debug"] if debug else []), env=clean_env())
    url = proc.wait_for_url()
    with urllib.request.urlopen(url + "/", timeout=10) as response:
        # citus serves the app; the flag lasted only while it was loaded.
        assert response.read() == b"flag: None"
    assert "Ignoring a call to 'app.run()'" in proc.log.text
    with pytest.raises(OSError):  # Werkzeug's server never started
        socket.create_connection(("127.0.0.1", werkzeug_port), timeout=1).close()
