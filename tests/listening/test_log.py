"""The request log: its form, escaping, silencing, and colour only on terminals.

Colour is checked in real processes: one whose standard error is a
pseudo-terminal (``pty``), one whose standard error is a pipe, and each with
``NO_COLOR`` and ``FORCE_COLOR``.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import typing as t

import pytest

from citus import _log

LINE = re.compile(
    r"^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\] "
    r'"GET / HTTP/1\.1" 200 -$'
)


class Captured:
    """What citus's own handler wrote to standard error."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def getvalue(self) -> str:
        return self._capsys.readouterr().err


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> t.Iterator[Captured]:
    """The ``citus`` logger's output, through citus's own handler.

    pytest gives every logger a capturing handler, which citus would use
    instead of adding its own; the handler is installed explicitly here.
    """
    _log.reset()
    _log.install_handler()
    logger = logging.getLogger("citus")
    logger.propagate = False
    try:
        yield Captured(capsys)
    finally:
        logger.propagate = True
        _log.reset()


def test_line_form(captured: Captured) -> None:
    _log.log_request("127.0.0.1", "GET / HTTP/1.1", 200, None)
    _log.log_request("::1", "POST /form HTTP/1.1", 404, 1234)
    first, second = captured.getvalue().splitlines()
    assert LINE.match(first), first
    assert second.startswith("::1 - - [")
    assert second.endswith('] "POST /form HTTP/1.1" 404 1234')


def test_not_a_terminal_means_no_colour(captured: Captured) -> None:
    _log.log_request("127.0.0.1", "GET / HTTP/1.1", 500, 3)
    assert "\x1b" not in captured.getvalue()


def test_control_characters_are_escaped(captured: Captured) -> None:
    _log.log_request("127.0.0.1", "GET /\x1b[2J\x07evil\r\n HTTP/1.1", 400, None)
    text = captured.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert '"GET /\\x1b[2J\\x07evil\\r\\n HTTP/1.1" 400 -' in text
    assert text.count("\n") == 1
    # Printable non-ASCII text stays as it is.
    assert _log.escape_control("/caf\xe9") == "/caf\xe9"


def test_errors_are_one_escaped_line(captured: Captured) -> None:
    _log.log_error("TLS handshake failed from 127.0.0.1: \x1b[31mbad")
    assert captured.getvalue() == (
        "TLS handshake failed from 127.0.0.1: \\x1b[31mbad\n"
    )


def test_tracebacks_and_messages_cannot_drive_the_terminal(captured: Captured) -> None:
    # An exception message built from a query string (?x=%1b]0;...%07) reaches
    # the terminal inside a traceback: retitling or clearing it must not work.
    hostile = "bad value \x1b]0;PWNED\x07\x1b[2J\x9b"
    try:
        raise ValueError(hostile)
    except ValueError:
        logging.getLogger("citus").exception("Error on request GET /:")
    _log.echo(f"Error on request GET '/':\n\tValueError: {hostile}", err=True)
    text = captured.getvalue()
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text)
    assert "ValueError: bad value \\x1b]0;PWNED\\x07\\x1b[2J\\x9b\n" in text
    # Lines and tabs stay; so does text in any language.
    assert "\n\tValueError: bad value" in text
    kept = "caf\xe9 \u65e5\u672c\n\t"
    assert _log.escape_terminal(kept) == kept


def test_silenced_through_logging(captured: Captured) -> None:
    logging.getLogger("citus.serving").setLevel(logging.WARNING)
    try:
        _log.log_request("127.0.0.1", "GET / HTTP/1.1", 200, None)
        _log.echo("still shown")
    finally:
        logging.getLogger("citus.serving").setLevel(logging.NOTSET)
    assert captured.getvalue() == "still shown\n"


def test_user_handler_is_used_instead_of_ours() -> None:
    _log.reset()
    logger = logging.getLogger("citus")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    logger.addHandler(handler)
    try:
        _log.log_request("127.0.0.1", "GET / HTTP/1.1", 200, None)
        _log.echo("hello")
    finally:
        logger.removeHandler(handler)
        _log.reset()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[citus.serving] 127.0.0.1 - - [")
    assert lines[1] == "[citus] hello"
    assert "\x1b" not in stream.getvalue()


# A process that writes one request-log line per status class.
LOGGER_SCRIPT = """
from citus._log import log_request, echo
for status in (200, 304, 404, 500):
    log_request("127.0.0.1", "GET /x HTTP/1.1", status, None)
echo("done")
"""

COLOURS = {
    200: "\x1b[32m",
    304: "\x1b[36m",
    404: "\x1b[33m",
    500: "\x1b[1;31m",
}


def _in_pty(env: dict[str, str]) -> str:
    from listening_util import PtyProcess

    with PtyProcess([sys.executable, "-c", LOGGER_SCRIPT], env) as proc:
        assert proc.wait() == 0
        return proc.output.decode()


def _in_pipe(env: dict[str, str]) -> str:
    import os

    full_env = {
        k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")
    }
    full_env.update(env)
    done = subprocess.run(
        [sys.executable, "-c", LOGGER_SCRIPT],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stderr


pty_only = pytest.mark.skipif(
    sys.platform == "win32", reason="pseudo-terminals are POSIX only"
)


@pty_only
@pytest.mark.live_server
def test_terminal_gets_colour_by_status_class() -> None:
    output = _in_pty({})
    for status, colour in COLOURS.items():
        assert f"{colour}127.0.0.1 - - [" in output
        assert re.search(
            re.escape(colour)
            + r'[^\x1b]*"GET /x HTTP/1\.1" '
            + str(status)
            + r" -\x1b\[0m",
            output,
        ), output
    assert "done" in output


@pty_only
@pytest.mark.live_server
def test_no_color_turns_it_off_on_a_terminal() -> None:
    output = _in_pty({"NO_COLOR": "1"})
    assert "\x1b" not in output
    assert '"GET /x HTTP/1.1" 500 -' in output


@pytest.mark.live_server
def test_pipe_gets_no_colour() -> None:
    output = _in_pipe({})
    assert "\x1b" not in output
    assert len(output.splitlines()) == 5


@pytest.mark.live_server
def test_force_color_turns_it_on_without_a_terminal() -> None:
    output = _in_pipe({"FORCE_COLOR": "1"})
    assert COLOURS[404] + "127.0.0.1" in output
    # NO_COLOR wins over FORCE_COLOR.
    assert "\x1b" not in _in_pipe({"FORCE_COLOR": "1", "NO_COLOR": "1"})


def test_handler_added_later_still_gets_lines(captured: Captured) -> None:
    _log.log_request("127.0.0.1", "GET /first HTTP/1.1", 200, None)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    serving = logging.getLogger("citus.serving")
    serving.addHandler(handler)
    try:
        _log.log_request("127.0.0.1", "GET /second HTTP/1.1", 200, None)
    finally:
        serving.removeHandler(handler)
    assert "/first" not in stream.getvalue()
    assert '"GET /second HTTP/1.1" 200 -' in stream.getvalue()
    # citus's own handler keeps writing too.
    assert "/second" in captured.getvalue()


def test_filters_are_honoured(captured: Captured) -> None:
    serving = logging.getLogger("citus.serving")

    def no_health(record: logging.LogRecord) -> bool:
        return "/health" not in record.getMessage()

    serving.addFilter(no_health)
    try:
        _log.log_request("127.0.0.1", "GET /health HTTP/1.1", 200, None)
        _log.log_request("127.0.0.1", "GET /page HTTP/1.1", 200, None)
    finally:
        serving.removeFilter(no_health)
    text = captured.getvalue()
    assert "/health" not in text
    assert "/page" in text


HELLO_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi"]
"""
DEV_WARNING = (
    "WARNING: This is a development server. Do not use it in a production deployment."
)


@pty_only
@pytest.mark.live_server
@pytest.mark.parametrize(
    ("env", "coloured"),
    [({}, True), ({"NO_COLOR": "1"}, False)],
    ids=["terminal", "terminal-NO_COLOR"],
)
def test_citus_run_development_server_warning_is_red_on_a_terminal(
    tmp_path: t.Any, env: dict[str, str], coloured: bool
) -> None:
    from listening_util import PtyProcess

    (tmp_path / "hello.py").write_text(HELLO_APP)
    args = [sys.executable, "-m", "citus", "--app", str(tmp_path / "hello.py")]
    with PtyProcess([*args, "run", "--port", "0"], env) as proc:
        output = proc.wait_for(b"Press CTRL+C to quit").decode()
    assert " * Serving citus app 'hello'" in output
    if coloured:
        assert f"\x1b[31m{DEV_WARNING}\x1b[0m" in output
        # Only the warning: the lines around it stay plain.
        assert "\x1b[31m * " not in output
    else:
        assert DEV_WARNING in output
        assert "\x1b" not in output


def test_warning_lines_are_warnings_and_red_only_for_the_terminal(
    captured: Captured,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("citus")
    logger.addHandler(handler)
    records: list[logging.LogRecord] = []
    handler.addFilter(lambda record: bool(records.append(record)) or True)
    try:
        _log.echo(DEV_WARNING)
        _log.echo(" * Debug mode: off")
    finally:
        logger.removeHandler(handler)
    assert [record.levelname for record in records] == ["WARNING", "INFO"]
    assert getattr(records[0], "color_message", "") == f"\x1b[31m{DEV_WARNING}\x1b[0m"
    # Other handlers see the plain message.
    assert stream.getvalue().splitlines() == [DEV_WARNING, " * Debug mode: off"]
    assert "\x1b" not in captured.getvalue()


# --- the duration and the redacted query ------------------------------------


def test_line_ends_with_the_duration(captured: Captured) -> None:
    _log.log_request("127.0.0.1", "GET / HTTP/1.1", 200, None, 0.0123)
    _log.log_request("127.0.0.1", "GET /a HTTP/1.1", 200, 5, 0.00042)
    _log.log_request("127.0.0.1", "GET /b HTTP/1.1", 200, None, 12.5)
    first, second, third = captured.getvalue().splitlines()
    assert re.match(LINE.pattern[:-1] + r" 12 ms$", first), first
    assert second.endswith('"GET /a HTTP/1.1" 200 5 0.4 ms')
    assert third.endswith('"GET /b HTTP/1.1" 200 - 12.50 s')


def test_secret_query_values_are_redacted(captured: Captured) -> None:
    _log.log_request(
        "127.0.0.1", "GET /login?token=abc123&next=/home HTTP/1.1", 302, None, 0.001
    )
    _log.log_request("127.0.0.1", "GET /x?api_key=k&password=p HTTP/1.1", 200, None)
    text = captured.getvalue()
    assert "abc123" not in text and "=k&" not in text and "=p " not in text
    assert '"GET /login?token=********&next=/home HTTP/1.1" 302 - 1.0 ms' in text
    assert '"GET /x?api_key=********&password=******** HTTP/1.1" 200 -' in text


SLOW_SCRIPT = """
from citus._log import log_request
log_request("127.0.0.1", "GET /fast HTTP/1.1", 200, None, 0.012)
log_request("127.0.0.1", "GET /slow HTTP/1.1", 200, None, 0.75)
"""


@pty_only
@pytest.mark.live_server
def test_slow_requests_stand_out_on_a_terminal() -> None:
    from listening_util import PtyProcess

    with PtyProcess([sys.executable, "-c", SLOW_SCRIPT], {}) as proc:
        assert proc.wait() == 0
        output = proc.output.decode()
    fast = next(line for line in output.splitlines() if "/fast" in line)
    slow = next(line for line in output.splitlines() if "/slow" in line)
    assert fast.endswith('"GET /fast HTTP/1.1" 200 - 12 ms\x1b[0m'), repr(fast)
    assert "\x1b[1;7m" not in fast
    assert slow.endswith("\x1b[1;7m750 ms\x1b[0m"), repr(slow)
    with PtyProcess([sys.executable, "-c", SLOW_SCRIPT], {"NO_COLOR": "1"}) as proc:
        assert proc.wait() == 0
        assert "\x1b" not in proc.output.decode()


SERVE_ONE = """
import sys
from citus.serving import run_simple

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi"]

run_simple("127.0.0.1", 0, app)
"""


@pytest.mark.live_server
def test_a_real_server_logs_the_duration_and_hides_secrets(
    run_python: t.Callable[..., t.Any],
) -> None:
    from listening_util import http_get

    proc = run_python("-c", SERVE_ONE)
    url = proc.wait_for_url()
    port = int(url.rsplit(":", 1)[1])
    assert http_get(("127.0.0.1", port), "/in?token=s3cr3t&page=2").startswith(
        b"HTTP/1.1 200"
    )
    proc.wait_for_log(
        r'^127\.0\.0\.1 - - \[.*\] "GET /in\?token=\*{8}&page=2 HTTP/1\.1" 200 -'
        r" \d+(\.\d)? ms$"
    )
    assert "s3cr3t" not in proc.log.text


def test_two_threads_logging_their_first_lines_at_once_both_get_colour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A serving child writes its first request-log line while its watcher
    # says what it watches: the thread that asks second must not take the
    # "no colour" of a question still being answered.
    import threading

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    handler = _log._ConsoleHandler()
    answers: list[bool] = []

    class Terminal(io.StringIO):
        asked = 0

        def isatty(self) -> bool:
            Terminal.asked += 1
            if Terminal.asked == 1:  # the other thread asks meanwhile
                other = threading.Thread(
                    target=lambda: answers.append(handler._wants_colour(stream))
                )
                other.start()
                other.join(10)
            return True

    stream = Terminal()
    answers.append(handler._wants_colour(stream))
    assert answers == [True, True]
