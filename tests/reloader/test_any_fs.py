"""A watcher to trust on any file system (issue 12, part 4), end to end.

Real ``citus run`` processes and real files: a modification time in the
future, the line that says what is watched, the inotify watch limit (made to
fail in the child through a ``sitecustomize`` module, never by changing the
machine's settings), mounts whose change events never arrive (an injected
mount table) and the start-up self-test.
"""

from __future__ import annotations

import os
import time
import typing as t
from pathlib import Path

import pytest

from .conftest import CITUS_SRC, count, wait_for_body, write

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

pytestmark = pytest.mark.live_server

APP = """\
from citus import API

app = API(__name__)


@app.route("/")
def hello():
    return {message!r}
"""


def run_app(
    run_citus: Runner, backend: str, *more: str, env: dict[str, str] | None = None
) -> tuple[CitusProcess, str]:
    """``citus run --debug`` on ``hello.py``; the process and its URL."""
    proc = run_citus(
        "--app",
        "hello",
        "run",
        "--debug",
        "--port",
        "0",
        "--reloader-type",
        backend,
        "--exclude-patterns",
        CITUS_SRC + os.sep + "*",
        *more,
        env=env,
    )
    return proc, proc.wait_for_url()


@pytest.mark.parametrize("skew", [1.0, 3600.0])
def test_a_future_mtime_alone_never_reloads(
    run_citus: Runner, tmp_path: Path, backend: str, skew: float
) -> None:
    app = tmp_path / "hello.py"
    write(app, APP.format(message="one"))
    ahead = time.time() + skew  # clock skew, or unpacked from an archive
    os.utime(app, (ahead, ahead))
    proc, url = run_app(run_citus, backend)
    wait_for_body(url, lambda s, b: b == "one")
    if skew < 5:
        # Wait for the file's time to come (the subject of this test, not a
        # synchronisation): its passing must not count as a change either.
        while time.time() < ahead + 0.3:
            time.sleep(0.05)
    write(app, APP.format(message="two"))  # a real change: one reload
    wait_for_body(url, lambda s, b: b == "two")
    assert count(proc.log.lines, "Detected change") == 1, proc.log.text
