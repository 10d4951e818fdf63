"""The reloader end to end: real scripts under ``run_simple(use_reloader=True)``
and a real ``citus run --debug``, real files edited, real HTTP requests.

No test sleeps to synchronise: each waits for a log line or an answer with a
deadline. To prove that something did *not* restart, a test makes one more
change that must restart (an extra file) and then checks that the log names
only that file: the reloader handles changes in order, so a spurious restart
would have been logged first.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest

from .conftest import CITUS_HELLO as CITUS_APP
from .conftest import (
    app_source,
    count,
    get,
    pid_gone,
    pid_of,
    run_debug,
    spare_children,
    wait_for_body,
    wait_until,
    write,
)

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

pytestmark = pytest.mark.live_server


def detected(name: str) -> str:
    """A pattern for the log line that announces a change in ``name``."""
    return re.escape(f" * Detected change in '{name}', reloading")


def start_app(run_python: Runner, path: Path, **options: t.Any) -> tuple[t.Any, str]:
    proc = run_python(str(path.name), cwd=path.parent)
    url = proc.wait_for_url()
    wait_for_body(url, lambda status, body: status == 200)
    return proc, url


def test_change_is_served(run_python: Runner, tmp_path: Path, backend: str) -> None:
    app = tmp_path / "app.py"
    write(app, app_source("one", backend))
    proc, url = start_app(run_python, app)
    label = "stat" if backend == "stat" else "watchdog (inotify)"
    proc.wait_for_log(re.escape(f" * Restarting with {label}"))
    first = pid_of(get(url)[1])

    write(app, app_source("two", backend))  # same size: mtime and digest decide
    proc.wait_for_log(detected("app.py"))
    proc.wait_for_log(r" \* Reloaded in \d+\.\d\d s")
    status, body = wait_for_body(url, lambda s, b: b.startswith("two"))
    assert pid_of(body) != first


def test_touch_excluded_and_same_content_never_restart(
    run_python: Runner, tmp_path: Path, backend: str
) -> None:
    (tmp_path / "skipped.py").write_text("VALUE = 1\n")
    (tmp_path / "config.txt").write_text("a")
    app = tmp_path / "app.py"
    source = app_source(
        "one",
        backend,
        imports="import skipped",
        extra_files=[str(tmp_path / "config.txt")],
        exclude=["skip*.py"],
    )
    write(app, source)
    proc, url = start_app(run_python, app)
    first = pid_of(get(url)[1])

    later = time.time() + 5
    os.utime(app, (later, later))  # touched: new mtime, same bytes
    temp = tmp_path / ".app.py.tmp"  # rewritten with the same bytes, atomically
    temp.write_text(source)
    os.replace(temp, app)
    with open(app, "rb"):  # opened and closed without writing
        pass
    write(tmp_path / "skipped.py", "VALUE = 2\n")  # excluded by a pattern
    write(tmp_path / "config.txt", "b")  # an extra file: restarts

    proc.wait_for_log(r" \* Detected change in 'config\.txt', reloading")
    wait_for_body(url, lambda s, b: pid_of(b) != first)
    assert count(proc.log.lines, "Detected change") == 1, proc.log.text


def test_new_module_then_its_change(
    run_python: Runner, tmp_path: Path, backend: str
) -> None:
    app = tmp_path / "app.py"
    write(app, app_source("one", backend))
    proc, url = start_app(run_python, app)

    write(tmp_path / "views.py", "TEXT = 'from views'\n")  # a new module: reload
    proc.wait_for_log(detected("views.py"))
    write(
        app, app_source("one", backend, imports="import views", expression="views.TEXT")
    )
    wait_for_body(url, lambda s, b: b.startswith("from views"))

    mark = len(proc.log.lines)
    write(tmp_path / "views.py", "TEXT = 'views, edited'\n")
    proc.wait_for_log(detected("views.py"), start=mark)
    wait_for_body(url, lambda s, b: b.startswith("views, edited"))


def test_syntax_error_then_fix(
    run_python: Runner, tmp_path: Path, backend: str
) -> None:
    app = tmp_path / "app.py"
    write(app, app_source("one", backend, debugger=True))
    proc, url = start_app(run_python, app)

    broken = app_source("one", backend, debugger=True).replace(
        "MESSAGE = 'one'", "MESSAGE = 'one"
    )
    write(app, broken)
    # The child cannot even compile the script: the supervisor answers with
    # its error (debug mode, a local Host), at once, for every request.
    status, body = wait_for_body(url, lambda s, b: s == 500)
    assert "SyntaxError" in body and "app.py" in body
    assert get(url)[0] == 500
    assert "text/html" not in body

    write(app, app_source("fixed", backend, debugger=True))
    wait_for_body(url, lambda s, b: s == 200 and b.startswith("fixed"))
    proc.wait_for_log(r" \* Reloaded in")


def test_editor_saves_restart_once_each(
    run_python: Runner, tmp_path: Path, backend: str
) -> None:
    (tmp_path / "marker.txt").write_text("0")
    app = tmp_path / "app.py"
    extra = [str(tmp_path / "marker.txt")]
    write(app, app_source("v0", backend, extra_files=extra))
    proc, url = start_app(run_python, app)

    def atomic(text: str) -> None:  # write a temp file, rename it over (VS Code, vim)
        temp = tmp_path / "app.py.tmp"
        temp.write_text(text)
        os.replace(temp, app)

    def truncate_then_write(text: str) -> None:  # two steps, flushed in between
        with open(app, "w") as file:
            file.flush()
            os.fsync(file.fileno())
            file.write(text)

    def backup_then_write(text: str) -> None:  # vim without backupcopy
        os.replace(app, tmp_path / "app.py~")
        app.write_text(text)
        os.unlink(tmp_path / "app.py~")

    for number, save in enumerate([atomic, truncate_then_write, backup_then_write]):
        message = f"v{number + 1}"
        save(app_source(message, backend, extra_files=extra))
        wait_for_body(url, lambda s, b, m=message: b.startswith(m + " "))

    write(tmp_path / "marker.txt", "1")
    mark = proc.log.lines.index(
        proc.wait_for_log(r"Detected change in 'marker\.txt'").string
    )
    proc.wait_for_log(r"Reloaded in", start=mark)
    assert count(proc.log.lines, "Detected change in 'app.py'") == 3, proc.log.text
    assert count(proc.log.lines, "Reloaded in") == 4, proc.log.text


def test_no_request_fails_while_reloading(
    run_python: Runner, tmp_path: Path, backend: str
) -> None:
    app = tmp_path / "app.py"
    write(app, app_source("r0", backend, threaded=True))
    proc, url = start_app(run_python, app)
    failures: list[BaseException] = []
    answers = [0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                status, _ = get(url)
                if status != 200:
                    failures.append(AssertionError(f"status {status}"))
                answers[0] += 1
            except OSError as error:
                failures.append(error)
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for number in range(1, 5):
            write(app, app_source(f"r{number}", backend, threaded=True))
            wait_for_body(url, lambda s, b, n=number: b.startswith(f"r{n} "))
    finally:
        stop.set()
        poller.join(10)
    assert failures == []
    assert answers[0] > 20


@pytest.mark.parametrize("how", ["script", "citus run"])
def test_every_request_is_answered_while_the_code_is_broken(
    run_python: Runner, run_citus: Runner, tmp_path: Path, how: str
) -> None:
    # Working -> broken -> fixed, twice, while a client polls every 5 ms:
    # each request gets the app (200) or the error (500), never a refused or
    # reset connection. A script's child crashes (the supervisor answers in
    # its place); under citus run the child stays up and shows the error.
    app = tmp_path / "app.py"

    def source(message: str) -> str:
        if how == "script":
            return app_source(message, "watchdog", threaded=True)
        return CITUS_APP.format(message=message)

    write(app, source("ok0"))
    if how == "script":
        proc, url = start_app(run_python, app)
    else:
        proc, url = run_debug(run_citus, None, "--host", "127.0.0.1", app="app")
        wait_for_body(url, lambda s, b: s == 200)
    failures: list[object] = []
    statuses: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                status, _ = get(url)
                statuses.append(status)
                if status not in (200, 500):
                    failures.append(status)
            except OSError as error:
                failures.append(error)
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for number in (1, 2):
            write(app, source("broken").replace("'broken'", "'broken"))
            wait_for_body(url, lambda s, b: s == 500)
            write(app, source(f"ok{number}"))
            wait_for_body(url, lambda s, b, n=number: b.startswith(f"ok{n}"))
    finally:
        stop.set()
        poller.join(10)
    assert failures == [], proc.log.text
    assert statuses.count(500) > 0 and statuses.count(200) > 0


def test_an_idle_connection_handed_over_at_a_crash_is_closed_cleanly(
    run_python: Runner, tmp_path: Path
) -> None:
    # The stopping child hands its idle kept-alive connection over; the
    # supervisor holds it for the next child, which crashes at import. A
    # request already on its way would get the error page (the test above);
    # an idle connection is closed, without a reset, and soon: kept open, its
    # next request could get the error page after the fix is saved.
    app = tmp_path / "app.py"
    write(app, app_source("ok", "stat", threaded=True))
    proc, url = start_app(run_python, app)
    port = int(url.rsplit(":", 1)[1])
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    kept = socket.create_connection(("127.0.0.1", port), timeout=10)
    with kept, kept.makefile("rb") as answer:
        kept.sendall(request)
        assert answer.readline().startswith(b"HTTP/1.1 200")
        length = 0
        while (line := answer.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        assert answer.read(length).startswith(b"ok ")

        write(app, app_source("ok", "stat", threaded=True).replace("'ok'", "'ok"))
        proc.wait_for_log("The server process stopped")
        kept.settimeout(3)  # the error page would hold it for 5 s
        assert kept.recv(1) == b""  # closed (a reset would raise)
    wait_for_body(url, lambda s, b: s == 500)
    write(app, app_source("fixed", "stat", threaded=True))
    wait_for_body(url, lambda s, b: b.startswith("fixed"))


def test_ctrl_c_stops_supervisor_and_child(run_python: Runner, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    write(app, app_source("one", "stat"))
    proc, url = start_app(run_python, app)
    child = pid_of(get(url)[1])
    assert child != proc.pid

    proc.interrupt()
    assert proc.wait() == 0
    assert "Traceback" not in proc.log.text
    wait_until(lambda: pid_gone(child))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_supervisor_takes_the_child_along(
    run_python: Runner, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    write(app, app_source("one", "watchdog"))
    proc, url = start_app(run_python, app)
    child = pid_of(get(url)[1])

    os.kill(proc.pid, signal.SIGKILL)  # the supervisor only, not its group
    wait_until(lambda: pid_gone(child), timeout=5)


def test_unknown_reloader_type_is_a_value_error() -> None:
    from citus.reloader import resolve_backend

    with pytest.raises(ValueError, match="'auto', 'stat', 'watchdog'"):
        resolve_backend("inotify")


def test_missing_watchdog_says_which_extra(run_python: Runner, tmp_path: Path) -> None:
    script = tmp_path / "nowatchdog.py"
    script.write_text(
        "import sys\n"
        "sys.modules['watchdog'] = None\n"
        "from citus.serving import run_simple\n"
        "run_simple('127.0.0.1', 0, lambda e, s: [], use_reloader=True,"
        " reloader_type='watchdog')\n"
    )
    proc = run_python(script.name, cwd=tmp_path)
    assert proc.wait() == 1
    assert "citus[watchdog]" in proc.log.text
    assert "Traceback" not in proc.log.text


def test_citus_run_debug_reloads_and_recovers(
    run_citus: Runner, tmp_path: Path, backend: str
) -> None:
    app = tmp_path / "hello.py"
    write(app, CITUS_APP.format(message="hello one"))
    proc, url = run_debug(run_citus, backend)
    wait_for_body(url, lambda s, b: b == "hello one")

    write(app, CITUS_APP.format(message="hello one").replace("'hello one'", "'oops"))
    proc.wait_for_log(r"Detected change in 'hello\.py'")
    status, body = wait_for_body(url, lambda s, b: s == 500)
    assert "SyntaxError" in body

    write(app, CITUS_APP.format(message="hello two"))
    wait_for_body(url, lambda s, b: b == "hello two")
    assert count(proc.log.lines, "Detected change in 'hello.py'") == 2


def cpu_ns(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as file:
            total += int(file.read().split()[0])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_citus_run_calls_in_a_warm_spare_that_ran_no_user_code(
    run_citus: Runner, tmp_path: Path
) -> None:
    imports = tmp_path / "imports.txt"
    source = (
        "import os\n"
        f"with open({str(imports)!r}, 'a') as f:\n"
        "    f.write('%d\\n' % os.getpid())\n"
        "MESSAGE = {message!r}\n"
        "def app(environ, start_response):\n"
        "    body = ('%s pid=%d' % (MESSAGE, os.getpid())).encode()\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [body]\n"
    )
    app = tmp_path / "hello.py"
    write(app, source.format(message="one"))
    proc, url = run_debug(run_citus)
    first = pid_of(wait_for_body(url, lambda s, b: b.startswith("one"))[1])

    spares: list[int] = []

    def parked() -> bool:  # a spare exists and has stopped working
        spares[:] = spare_children(proc.pid)
        if not spares:
            return False
        before = cpu_ns(spares[0])
        time.sleep(0.2)
        return cpu_ns(spares[0]) == before

    wait_until(parked)
    assert imports.read_text().split() == [str(first)]  # the spare ran no app code

    write(app, source.format(message="two"))
    status, body = wait_for_body(url, lambda s, b: b.startswith("two"))
    assert pid_of(body) == spares[0]
    assert imports.read_text().split() == [str(first), str(spares[0])]
    proc.wait_for_log(r" \* Reloaded in")
    wait_until(lambda: bool(spare_children(proc.pid)))  # the next spare
    children = [spares[0], *spare_children(proc.pid)]
    proc.interrupt()
    assert proc.wait() == 0
    wait_until(lambda: all(pid_gone(pid) for pid in children))
    assert "Traceback" not in proc.log.text


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
def test_child_on_a_terminal_still_sees_a_terminal(tmp_path: Path) -> None:
    import pty
    import subprocess

    app = tmp_path / "app.py"
    write(app, app_source("one", "stat"))
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in ("NO_COLOR", "FORCE_COLOR", "CITUS_RUN_MAIN", "CITUS_SERVER_FDS"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, str(app)],
        cwd=tmp_path,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    output = bytearray()
    try:

        def read_until(pattern: bytes) -> None:
            deadline = time.monotonic() + 20
            while pattern not in output and time.monotonic() < deadline:
                import select

                if select.select([master], [], [], 0.1)[0]:
                    try:
                        output.extend(os.read(master, 65536))
                    except OSError:
                        break
            assert pattern in output, bytes(output)

        # The whole line: a read can end in the middle of the port.
        read_until(b"Press CTRL+C to quit")
        port = int(re.search(rb"127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
        wait_for_body(f"http://127.0.0.1:{port}", lambda s, b: s == 200)
        # The child's request log is coloured: it writes to a terminal too.
        read_until(b"\x1b[32m127.0.0.1 - - [")
        assert b"\r\r\n" not in output  # no second newline translation
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        finally:
            os.close(master)


def test_python_dash_m_package_restarts_the_same_way(
    run_python: Runner, tmp_path: Path
) -> None:
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package / "views.py", "TEXT = 'first'\n")
    main = app_source(
        "unused", "watchdog", imports="from mypkg import views", expression="views.TEXT"
    )
    (package / "__main__.py").write_text(main)
    proc = run_python("-m", "mypkg", cwd=tmp_path)
    url = proc.wait_for_url()
    first = pid_of(wait_for_body(url, lambda s, b: b.startswith("first"))[1])

    write(package / "views.py", "TEXT = 'second'\n")
    proc.wait_for_log(
        re.escape(f" * Detected change in '{os.path.join('mypkg', 'views.py')}'")
    )
    status, body = wait_for_body(url, lambda s, b: b.startswith("second"))
    assert pid_of(body) != first


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_stops_supervisor_and_child(run_python: Runner, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    write(app, app_source("one", "watchdog"))
    proc, url = start_app(run_python, app)
    child = pid_of(get(url)[1])

    os.kill(proc.pid, signal.SIGTERM)  # the supervisor only
    assert proc.wait() == 0
    wait_until(lambda: pid_gone(child))
    assert "Traceback" not in proc.log.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_supervisor_stops_a_child_still_importing_the_app(
    run_citus: Runner, tmp_path: Path
) -> None:
    marker = tmp_path / "importing.txt"
    (tmp_path / "slow.py").write_text(
        "import os, time\n"
        f"open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)  # an app that takes its time to import\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'late']\n"
    )
    proc, _ = run_debug(run_citus, app="slow")
    wait_until(lambda: marker.exists() and marker.read_text().isdigit())
    child = int(marker.read_text())

    os.kill(proc.pid, signal.SIGKILL)
    wait_until(lambda: pid_gone(child), timeout=5)


@pytest.mark.parametrize("how", ["script", "citus run"])
def test_ctrl_c_while_the_child_imports_prints_no_traceback(
    run_python: Runner, run_citus: Runner, tmp_path: Path, how: str
) -> None:
    # The child is interrupted in the middle of the user's module (a reload
    # in progress, a slow import): Ctrl+C must still stop quietly.
    app = tmp_path / "app.py"
    slow = (
        "import os, sys, time\n"
        "if os.environ.get('CITUS_RUN_MAIN') == 'true':\n"
        "    print('child importing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    if how == "script":
        write(app, slow + app_source("one", "stat"))
        proc = run_python("app.py", cwd=tmp_path)
    else:
        write(app, slow + CITUS_APP.format(message="one"))
        proc = run_citus(
            "--app", "app", "run", "--debug", "--port", "0", "--reloader-type", "stat"
        )
    proc.wait_for_log("child importing")
    proc.interrupt()
    assert proc.wait() == 0
    assert "Traceback" not in proc.log.text, proc.log.text
    assert "KeyboardInterrupt" not in proc.log.text, proc.log.text


@pytest.mark.parametrize("step", [1, 7, 10_000])
def test_interrupt_filter_drops_only_keyboard_interrupt_tracebacks(step: int) -> None:
    from citus.reloader.supervisor import InterruptFilter

    interrupted = (
        b"Traceback (most recent call last):\n"
        b'  File "app.py", line 4, in <module>\n    time.sleep(60)\n'
        b"KeyboardInterrupt\n"
    )
    coloured = interrupted.replace(
        b"KeyboardInterrupt", b"\x1b[35mKeyboardInterrupt\x1b[0m"
    )
    real = (
        b"Traceback (most recent call last):\n"
        b'  File "app.py", line 1, in <module>\nValueError: real\nmore text\n'
    )
    data = b"served\n" + interrupted + b"between\n" + coloured + real + b"Enter: "
    output = InterruptFilter()
    out = b"".join(output.feed(data[i : i + step]) for i in range(0, len(data), step))
    out += output.flush()
    assert out == b"served\nbetween\n" + real + b"Enter: "
    # An unfinished traceback is shown at the end all the same.
    output = InterruptFilter()
    assert output.feed(real[:60]) == b""
    assert output.flush() == real[:60]


def test_an_open_event_stream_does_not_hold_the_reload_back(
    run_citus: Runner, tmp_path: Path
) -> None:
    app = tmp_path / "hello.py"
    source = (
        "import time\n"
        "from citus import API, Response\n\n"
        "app = API(__name__)\n\n\n"
        "@app.route('/')\n"
        "def hello():\n"
        "    return {message!r}\n\n\n"
        "@app.route('/events')\n"
        "def events():\n"
        "    def ticks():\n"
        "        while True:\n"
        "            yield b'data: tick\\n\\n'\n"
        "            time.sleep(0.1)\n\n"
        "    return Response(ticks(), mimetype='text/event-stream')\n"
    )
    write(app, source.format(message="one"))
    proc, url = run_debug(run_citus, None, "--host", "127.0.0.1")
    wait_for_body(url, lambda s, b: b == "one")
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as stream:
        stream.sendall(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert b"data: tick" in stream.recv(65536)
        write(app, source.format(message="two"))
        started = time.monotonic()
        wait_for_body(url, lambda s, b: b == "two")
        # The old process ends the stream after its grace period (1 s).
        stream.settimeout(10)
        while stream.recv(65536):
            pass
        assert time.monotonic() - started < 8
