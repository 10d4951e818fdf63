"""The first child of ``citus run --debug`` is forked from the supervisor:
real processes, real files, real requests.

A forked child must behave as a started one: the app's exit handlers run when
it ends, the supervisor's do not (the debugger's PIN survives the first
reload), Ctrl+C ends everything quietly, and a crash still shows its error.
"""

from __future__ import annotations

import os
import re
import sys
import typing as t
from pathlib import Path

import pytest

from .conftest import (
    get,
    pid_of,
    run_debug,
    wait_for_body,
    wait_until,
    write,
)

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

pytestmark = [
    pytest.mark.live_server,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

APP = """\
import atexit
import os

MESSAGE = {message!r}


def goodbye():
    with open({ended!r}, "a") as file:
        file.write("%d\\n" % os.getpid())


atexit.register(goodbye)


def app(environ, start_response):
    body = ("%s pid=%d" % (MESSAGE, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def started_with(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (a forked process shows its
    parent's)."""
    with open(f"/proc/{pid}/environ", "rb") as file:
        entries = file.read().split(b"\0")
    found = {}
    for entry in entries:
        key, _, value = entry.partition(b"=")
        found[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return found


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        return int(file.read().rsplit(")", 1)[1].split()[1])


def run(run_citus: Runner, tmp_path: Path, *args: str) -> tuple[CitusProcess, str]:
    ended = tmp_path / "ended.txt"
    write(tmp_path / "hello.py", APP.format(message="one", ended=str(ended)))
    proc, url = run_debug(run_citus, None, *args)
    wait_for_body(url, lambda s, b: b.startswith("one"))
    return proc, url


def test_first_child_is_forked_and_ends_as_a_started_one(
    run_citus: Runner, tmp_path: Path
) -> None:
    proc, url = run(run_citus, tmp_path)
    first = pid_of(get(url)[1])
    assert parent_of(first) == proc.pid
    # Forked: it shows the supervisor's first environment, without the
    # variables a started child gets.
    assert "CITUS_RUN_MAIN" not in started_with(first)
    pin = proc.wait_for_log(r"Debugger PIN: (\S+)").group(1)

    ended = tmp_path / "ended.txt"
    write(tmp_path / "hello.py", APP.format(message="two", ended=str(ended)))
    second = pid_of(wait_for_body(url, lambda s, b: b.startswith("two"))[1])
    assert second != first
    # The app's exit handler ran in the forked child, once.
    wait_until(lambda: ended.exists() and ended.read_text().split() == [str(first)])
    # The supervisor's did not: the PIN's state file is still there.
    proc.wait_for_log(r" \* Reloaded in")
    assert re.findall(r"Debugger PIN: (\S+)", proc.log.text) == [pin, pin]
    proc.interrupt()
    assert proc.wait() == 0
    assert "Traceback" not in proc.log.text


def test_ctrl_c_stops_a_forked_child_quietly(run_citus: Runner, tmp_path: Path) -> None:
    proc, url = run(run_citus, tmp_path)
    first = pid_of(get(url)[1])
    assert "CITUS_RUN_MAIN" not in started_with(first)
    proc.interrupt()
    assert proc.wait() == 0
    assert "Traceback" not in proc.log.text
    ended = tmp_path / "ended.txt"
    wait_until(lambda: ended.exists() and ended.read_text().split() == [str(first)])


def test_a_forked_child_that_crashes_shows_its_error(
    run_citus: Runner, tmp_path: Path
) -> None:
    proc, url = run(run_citus, tmp_path)
    first = pid_of(get(url)[1])
    assert "CITUS_RUN_MAIN" not in started_with(first)
    os.kill(first, 9)
    proc.wait_for_log(r"The server process stopped")
    status, body = wait_for_body(url, lambda s, b: s == 500)
    write(
        tmp_path / "hello.py",
        APP.format(message="back", ended=str(tmp_path / "ended.txt")),
    )
    wait_for_body(url, lambda s, b: b.startswith("back"))
