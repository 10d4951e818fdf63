"""The supervisor's state machine, with scripted children and a polling backend.

Each child is a tiny script that acts by its generation number (announce a
reload and hang, exit 3, crash with a traceback, exit 4), so every branch of
the supervisor runs for real: processes, sockets, the control channel and the
error page, without an app or a server.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import typing as t
from pathlib import Path

import pytest

from citus._compat import windows_console_script
from citus.reloader import supervisor as supervisor_module
from citus.reloader.stat_backend import StatBackend
from citus.reloader.supervisor import Supervisor, child_args

from .conftest import get, pid_gone, wait_for_body, wait_until

pytestmark = pytest.mark.live_server

CHILD = """\
import json, os, socket, sys, time

generation = int(os.environ["CITUS_RUN_GENERATION"])
with open({journal!r}, "a") as journal:
    journal.write("%d %d %s %s\\n" % (
        generation, os.getpid(), os.environ.get("CITUS_RELOADER_CHANGED_AT", "-"),
        os.environ["CITUS_RUN_MAIN"]))
control = socket.socket(fileno=int(os.environ["CITUS_RELOADER_FD"]))
script = {script!r}
action = script[generation]
if action == "announce":
    control.sendall(json.dumps({{"op": "watch", "files": [{watched!r}]}}).encode()
                    + b"\\n")
    control.sendall(json.dumps({{"op": "reload", "at": time.time()}}).encode()
                    + b"\\n")
    time.sleep(60)  # an SSE stream that never ends: must not hold the reload
elif action == "crash":
    sys.stderr.write('Traceback (most recent call last):\\n  File "{broken}", '
                     'line 1, in <module>\\nSyntaxError: boom in the child\\n')
    sys.exit(1)
elif action == "speak":
    sys.stderr.write("the child speaks\\n")
    sys.exit(5)
else:
    sys.exit(int(action))
"""


def run_supervisor(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: list[str],
    edit: t.Callable[[str], None] | None = None,
) -> tuple[int, list[list[str]]]:
    """Run a supervisor over ``script``; ``edit(url)`` runs while it supervises."""
    journal = tmp_path / "journal.txt"
    broken = tmp_path / "broken.py"
    broken.write_text("x = (\n")
    watched = tmp_path / "watched.py"
    watched.write_text("")
    child = tmp_path / "child.py"
    child.write_text(
        CHILD.format(
            journal=str(journal), script=script, watched=str(watched), broken=broken
        )
    )
    monkeypatch.setattr(
        supervisor_module, "child_args", lambda: [sys.executable, str(child)]
    )
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    supervisor = Supervisor(
        [listener],
        lambda: StatBackend(0.05),
        "stat",
        extra_files=[str(watched)],
        exclude_patterns=["*/citus/*"],
        trust=lambda environ: True,  # the debugger's check, which trusts all here
    )
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run()))
    thread.start()
    try:
        if edit is not None:
            edit(url)
        thread.join(20)
        assert result, "the supervisor did not finish"
    finally:
        if not result:
            supervisor._stop_children()
        listener.close()
    lines = [line.split() for line in journal.read_text().splitlines()]
    return result[0], lines


def test_reload_crash_error_page_and_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, t.Any] = {}

    def edit(url: str) -> None:
        # Generation 2 crashed: the supervisor answers with its error.
        status, body = wait_for_body(url, lambda s, b: s == 500)
        seen["page"] = body
        (tmp_path / "broken.py").write_text("x = ()\n")  # the traceback's file

    code, lines = run_supervisor(
        tmp_path, monkeypatch, ["announce", "3", "crash", "4"], edit
    )
    assert code == 1  # EXIT_FATAL from generation 3
    assert [line[0] for line in lines] == ["0", "1", "2", "3"]
    assert all(line[3] == "true" for line in lines)
    assert lines[1][2] != "-"  # started by a change: it knows when
    assert lines[2][2] == "-"  # started by exit 3
    assert lines[3][2] != "-"  # started by the fix
    assert "SyntaxError: boom in the child" in seen["page"]
    assert "exit status 1" in seen["page"]
    # The first child hung after announcing: it was killed after the grace period.
    wait_until(lambda: pid_gone(int(lines[0][1])), timeout=5)


def test_error_page_is_html_for_browsers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.client

    def edit(url: str) -> None:
        wait_for_body(url, lambda s, b: s == 500)
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Accept": "text/html"})
            response = conn.getresponse()
            body = response.read().decode()
        finally:
            conn.close()
        assert response.getheader("Content-Type", "").startswith("text/html")
        assert "&lt;module&gt;" in body  # escaped
        (tmp_path / "broken.py").write_text("x = ()\n")

    code, _ = run_supervisor(tmp_path, monkeypatch, ["crash", "4"], edit)
    assert code == 1  # the next child exited with EXIT_FATAL


def test_child_exit_zero_waits_for_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A child that ends by itself with status 0 (a script whose app.run() was
    # edited away) is not a reason to stop: only Ctrl+C is.
    def edit(url: str) -> None:
        status, body = wait_for_body(url, lambda s, b: s == 500)
        assert "exit status 0" in body
        (tmp_path / "watched.py").write_text("x = 1\n")  # an extra file

    code, lines = run_supervisor(tmp_path, monkeypatch, ["0", "4"], edit)
    assert code == 1
    assert [line[0] for line in lines] == ["0", "1"]
    assert "ended by itself (exit status 0)" in caplog.text


def test_the_restarting_line_comes_before_the_first_childs_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A forked first child speaks at once; its lines still come after the
    # supervisor's " * Restarting with ..." (naming the backend can take a
    # while: it may import watchdog). Here naming waits for the child's words
    # to reach the supervisor, and for them to be written, up to a second.
    written: list[str] = []
    monkeypatch.setattr(
        supervisor_module, "_write_stderr", lambda data: written.append(data.decode())
    )
    monkeypatch.setattr(
        supervisor_module, "echo", lambda message, err=False: written.append(message)
    )
    supervisors: list[Supervisor] = []

    def label() -> str:
        child = supervisors[0]._current
        assert child is not None
        wait_until(lambda: b"the child speaks" in bytes(child.tail), timeout=10)
        try:
            wait_until(lambda: any("speaks" in w for w in written), timeout=1)
        except AssertionError:
            pass  # held back: the right answer
        return "stat"

    child = tmp_path / "child.py"
    child.write_text(
        CHILD.format(
            journal=str(tmp_path / "journal.txt"),
            script=["speak"],
            watched=str(tmp_path),
            broken=str(tmp_path),
        )
    )
    monkeypatch.setattr(
        supervisor_module, "child_args", lambda: [sys.executable, str(child)]
    )
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        supervisor = Supervisor([listener], lambda: StatBackend(0.05), label)
        supervisors.append(supervisor)
        assert supervisor.run() == 2  # the child's EXIT_USAGE
    finally:
        listener.close()
    text = "".join(w if w.endswith("\n") else w + "\n" for w in written)
    assert text.index(" * Restarting with stat") < text.index("the child speaks")


def test_child_args_repeat_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "dev", "-m", "pkg", "a"])
    assert child_args() == [sys.executable, "-X", "dev", "-m", "pkg", "a"]


def test_windows_console_script_without_suffix(tmp_path: Path) -> None:
    exe = tmp_path / "citus.exe"
    exe.write_text("")
    args = windows_console_script(["python.exe", str(tmp_path / "citus"), "run"])
    assert args == [str(exe), "run"]
    assert windows_console_script(["python.exe", "-m", "x"]) == [
        "python.exe",
        "-m",
        "x",
    ]


def test_get_helper_fails_on_refused_port() -> None:
    # A guard for the helpers above: a closed port must fail, not hang.
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}")
    assert os.environ.get("CITUS_RUN_MAIN") != "true"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("reloader_type='nope'", "Unknown reloader_type 'nope'"),
        ("reloader_interval=0", "reloader_interval must be more than 0 seconds"),
    ],
)
def test_wrong_reloader_options_are_refused_before_serving(
    run_python: t.Callable[..., t.Any], tmp_path: Path, options: str, message: str
) -> None:
    """run_simple's caller learns of the mistake before a port is bound or a
    URL printed (citus run refuses such values as usage errors already)."""
    script = tmp_path / "serve.py"
    script.write_text(
        "from citus.serving import run_simple\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n"
        f"run_simple('127.0.0.1', 0, app, use_reloader=True, {options})\n"
    )
    proc = run_python(str(script))
    assert proc.wait() == 1
    assert f"ValueError: {message}" in proc.log.text
    assert "Running on" not in proc.log.text
