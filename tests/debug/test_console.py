"""The console: Python in a frame's namespace, and dump()."""

from __future__ import annotations

import re
import sys
import threading
import time
import typing as t

import pytest

from citus.debug import PREFIX, DebuggedApplication
from citus.debug import console as console_module
from citus.debug.console import Console
from citus.debug.repr import dump_text, is_secret_name, redact_text, safe_repr

from .conftest import BROWSER_ACCEPT, Caller, page_secret, page_traceback, unlock
from .test_security import evaluate, open_page


def frame_console() -> Console:
    def view() -> None:
        answer = 42
        password = "pw-in-frame"
        raise RuntimeError(answer, password)

    try:
        view()
    except RuntimeError as error:
        tb = error.__traceback__
        assert tb is not None and tb.tb_next is not None
        frame = tb.tb_next.tb_frame
        return Console(frame.f_globals, frame.f_locals)
    raise AssertionError("view() did not raise")


def test_reads_frame_locals_and_keeps_state() -> None:
    console = frame_console()
    assert console.push("answer") == "42\n"
    assert console.push("doubled = answer * 2") == ""
    assert console.push("doubled") == "84\n"
    assert console.push("_ + 1") == "85\n"


def test_multi_line_statements_and_prompts() -> None:
    console = frame_console()
    assert console.prompt == ">>> "
    assert console.push("def triple(x):") == ""
    assert console.prompt == "... "
    assert console.push("    return x * 3 + answer") == ""
    assert console.push("") == ""
    assert console.prompt == ">>> "
    assert console.push("triple(2)") == "48\n"


def test_pasted_block_runs_whole() -> None:
    console = frame_console()
    block = (
        "total = 0\nfor i in range(4):\n    total += i\nprint('sum', total)\ntotal * 10"
    )
    assert console.push(block) == "sum 6\n60\n"


def test_output_and_exceptions_are_shown() -> None:
    console = frame_console()
    assert (
        console.push("import sys; print('to stderr', file=sys.stderr)") == "to stderr\n"
    )
    out = console.push("1 / 0")
    assert "Traceback (most recent call last)" in out
    assert "ZeroDivisionError: division by zero" in out
    assert "citus/debug" not in out
    out = console.push("def broken(:")
    assert "SyntaxError" in out
    assert console.prompt == ">>> "
    assert "cannot stop the server" in console.push("raise SystemExit(3)")


def test_console_does_not_swallow_the_process_stdout() -> None:
    stdout, hook = sys.stdout, sys.displayhook
    frame_console().push("print('x'); 1 / 0")
    assert sys.stdout is stdout and sys.displayhook is hook


def test_other_threads_keep_writing_to_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # While a console input runs, the app goes on serving other requests on
    # other threads: their prints must reach the terminal, not the browser.
    started, done = threading.Event(), threading.Event()

    def other_request() -> None:
        if started.wait(10):
            print("printed by another request")
            sys.stderr.write("logged by another request\n")
        done.set()

    thread = threading.Thread(target=other_request)
    thread.start()
    console = Console({"started": started, "done": done})
    try:
        output = console.push("started.set(); ok = done.wait(10); print('mine')")
    finally:
        started.set()
        thread.join(10)
    assert output == "mine\n"
    captured = capsys.readouterr()
    assert "printed by another request" in captured.out
    assert "logged by another request" in captured.err


def test_a_stuck_input_does_not_hang_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console_module, "BUSY_TIMEOUT", 0.2)
    started, release = threading.Event(), threading.Event()
    stuck = Console({"started": started, "release": release})
    thread = threading.Thread(
        target=stuck.push, args=("started.set(); ok = release.wait(10)",)
    )
    thread.start()
    try:
        assert started.wait(10)
        output = frame_console().push("answer")
    finally:
        release.set()
        thread.join(10)
    assert output.startswith("The console is busy: another input is still running")
    assert frame_console().push("answer") == "42\n"


def test_input_does_not_wait_on_the_servers_terminal() -> None:
    stdin = sys.stdin
    output = frame_console().push("input('name? ')")
    assert output.startswith("name? Traceback")
    assert output.endswith("EOFError: EOF when reading a line\n")
    assert sys.stdin is stdin


def test_dump() -> None:
    class Thing:
        """A thing with parts."""

        def __init__(self) -> None:
            self.size = 3
            self.secret_token = "tok-hidden"

        def grow(self) -> None:
            pass

    text = dump_text(Thing())
    assert "Thing" in text and "A thing with parts." in text
    assert "size = 3" in text
    assert "secret_token = ********" in text and "tok-hidden" not in text
    assert "Methods: grow" in text
    console = frame_console()
    out = console.push("dump()")
    assert "answer = 42" in out
    assert "password = ********" in out and "pw-in-frame" not in out
    assert "builtins.int: 42" in console.push("dump(answer)")


def test_safe_repr_survives_broken_objects_and_cuts() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise ValueError("nope")

    assert "repr() failed" in safe_repr(Broken())
    assert len(safe_repr("x" * 10_000)) < 700
    assert "********" in safe_repr({"password": "p", "user": "u"})
    assert "'u'" in safe_repr({"password": "p", "user": "u"})


def test_secret_names() -> None:
    for name in (
        "password",
        "PASSWD",
        "db_secret",
        "auth_token",
        "API_KEY",
        "apiKey",
        "Authorization",
        "csrf",
        "SESSION_COOKIE",
        "private_key",
    ):
        assert is_secret_name(name), name
    for name in ("answer", "key", "path", "name", "username", "keys"):
        assert not is_secret_name(name), name


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://h/?password=a1&q=b2#top", "http://h/?password=********&q=b2#top"),
        ("token=a1&page=2", "token=********&page=2"),
        ("'/x?API_KEY=a1'", "'/x?API_KEY=********'"),
        ("/x?user%5Bpassword%5D=a1", "/x?user%5Bpassword%5D=********"),
        ("/x?token=&next=/", "/x?token=&next=/"),
        ("/x?key=a1&page=2", "/x?key=a1&page=2"),
        ("User(name='ann', password='a1')", "User(name='ann', password=********)"),
        ("{'db': {'api_key': \"a'1\"}}", "{'db': {'api_key': ********}}"),
        ("f(key='a1', apikey=5)", "f(key='a1', apikey=5)"),
        ("postgres://me:a1@db/app", "postgres://me:********@db/app"),
    ],
)
def test_redact_text_hides_query_secrets(text: str, shown: str) -> None:
    assert redact_text(text) == shown


@pytest.mark.parametrize(
    "text", ["x" * 200_000, "http://" + "x" * 200_000, "a:" * 100_000]
)
def test_redact_text_takes_linear_time(text: str) -> None:
    """A long exception message or repr (quadratic, this took minutes)."""
    started = time.monotonic()
    assert redact_text(text) == text
    assert time.monotonic() - started < 2.0


def test_console_over_wsgi(client: Caller, debugged: DebuggedApplication) -> None:
    secret, tb = open_page(client)
    unlock(client, debugged, secret)
    assert evaluate(client, secret, tb, "x = answer").json()["output"] == ""
    result = evaluate(client, secret, tb, "for i in range(2):").json()
    assert result == {"output": "", "prompt": "... "}
    evaluate(client, secret, tb, "    x += i")
    assert evaluate(client, secret, tb, "").json()["prompt"] == ">>> "
    assert evaluate(client, secret, tb, "x").json()["output"] == "43\n"
    missing = client.post_form(
        "/__citus_debugger__/eval",
        {"s": secret, "tb": "gone", "frame": "0", "cmd": "1"},
    )
    assert missing.status == 404 and "no longer kept" in missing.json()["error"]
    bad = client.post_form(
        "/__citus_debugger__/eval", {"s": secret, "tb": tb, "frame": "99", "cmd": "1"}
    )
    assert bad.status == 404


def test_citus_request_in_a_views_console(isolated_state: None) -> None:
    from citus import API, request

    api = API(__name__)
    api.config["PROPAGATE_EXCEPTIONS"] = True  # what debug mode sets

    @api.route("/search")
    def search() -> str:
        page = int(request.args["page"])
        return str(100 // (page - 2))

    debugged = DebuggedApplication(api)
    client = Caller(debugged)
    html = client.get("/search?q=shoes&page=2", headers={"Accept": BROWSER_ACCEPT})
    secret = page_secret(html.text)
    tb = page_traceback(html.text)
    frame = re.findall(r'data-frame="(\d+)" title', html.text)[-1]
    unlock(client, debugged, secret)

    def run(cmd: str) -> str:
        fields = {"s": secret, "tb": tb, "frame": frame, "cmd": cmd}
        data = client.post_form(PREFIX + "/eval", fields).json()
        return str(data["output"])

    # The view's console sees the request that failed, as the view did.
    assert run("page") == "2\n"
    assert run("request.args['q'], request.path") == "('shoes', '/search')\n"
    assert run("from citus import current_app") == ""
    assert run("current_app.name") == repr(api.name) + "\n"
    assert run("request.method") == "'GET'\n"
    shown = run("dump(request)")
    assert shown.startswith("citus.wrappers.request.Request: <Request GET ")
    assert "args = MultiDict([('q', 'shoes'), ('page', '2')])" in shown


# --- top-level await, as in python -m asyncio --------------------------------


def test_top_level_await() -> None:
    console = Console({})
    assert console.push("import asyncio") == ""
    assert console.push("await asyncio.sleep(0)") == ""
    assert console.push("await asyncio.sleep(0, result=5)") == "5\n"
    assert console.push("x = await asyncio.sleep(0, result=7)") == ""
    assert console.push("x * 6") == "42\n"
    # In a pasted block, and across statements that need more lines.
    assert console.push("y = await asyncio.sleep(0, result=1)\ny + x") == "8\n"
    assert console.push("async def twice(n):") == ""
    assert console.push("    return 2 * await asyncio.sleep(0, result=n)") == ""
    assert console.push("") == ""
    assert console.push("await twice(21)") == "42\n"
    # The loop is the console's own, kept between inputs.
    here = "await asyncio.sleep(0, asyncio.get_running_loop())"
    assert console.push(f"loop = {here}") == ""
    assert console.push(f"({here}) is loop") == "True\n"


def test_tasks_live_on_the_loop_and_plain_inputs_stay_off_it() -> None:
    console = Console({})
    console.push("import asyncio")
    console.push("async def job():\n    await asyncio.sleep(0)\n    return 'ready'\n")
    # A task started in an input that awaits is awaited in a later one.
    started = "task = asyncio.create_task(job()); await asyncio.sleep(0)"
    assert console.push(started) == ""
    assert console.push("await task") == "'ready'\n"
    # An input without await runs outside the loop, as plain Python: a helper
    # that runs its own loop works.
    assert console.push("asyncio.run(job())") == "'ready'\n"


def test_errors_in_awaited_code_show_only_the_inputs_frames() -> None:
    console = Console({})
    console.push("import asyncio")
    output = console.push("async def f():\n    raise ValueError('inner')\n\nawait f()")
    assert output.startswith("Traceback (most recent call last):\n")
    assert 'File "<console>", line 2, in f' in output
    assert "ValueError: inner" in output
    assert "asyncio" not in output.split("ValueError")[0]
    assert "console.py" not in output


def test_await_in_a_frame_console_of_the_page(client: Caller) -> None:
    secret, tb = open_page(client)
    unlock(client, t.cast(t.Any, client.app), secret)
    result = evaluate(
        client, secret, tb, "await __import__('asyncio').sleep(0, answer)"
    )
    assert result.status == 200
    assert result.json()["output"] == "42\n"
