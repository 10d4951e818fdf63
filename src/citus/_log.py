"""Logging for citus: the ``citus`` logger for messages, ``citus.serving`` for
the request log.

Messages for the user (the banner, reload notices) go through :func:`echo`, which
writes to standard error through the ``citus`` logger so that users can redirect
or silence them with the :mod:`logging` module. The request log goes through
:func:`log_request` (logger ``citus.serving``, a child of ``citus``). A handler is
added to ``citus`` only when no handler is configured for it or the root logger.

That handler colours the request log by status class when its stream is a
terminal: ``NO_COLOR`` (any non-empty value) turns colour off, ``FORCE_COLOR``
turns it on even without a terminal. The logged message itself stays plain; the
coloured copy travels in the record's ``color_message`` attribute and only this
handler uses it, so files and other handlers never see escape codes.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
import threading
import time
import typing as t

from ._compat import enable_vt_mode
from ._redact import redact_query

logger = logging.getLogger("citus")
access_logger = logging.getLogger("citus.serving")
_root = logging.getLogger()

_RESET = "\x1b[0m"
#: Colour by status class (werkzeug's choices, green for success).
_STATUS_COLOURS = {
    1: "\x1b[1m",  # bold
    2: "\x1b[32m",  # green
    3: "\x1b[36m",  # cyan
    4: "\x1b[33m",  # yellow
    5: "\x1b[1;31m",  # bold red
}
_ERROR_COLOUR = "\x1b[31m"
#: A slow request's duration: bold, reversed, so that it stands out.
_SLOW_COLOUR = "\x1b[1;7m"
#: Requests that took longer than this (seconds) stand out on a terminal.
SLOW_REQUEST = 0.5
#: Lines given to :func:`echo` that start so are warnings: red on a terminal.
_WARNING_PREFIX = "WARNING:"


def colour_wanted(stream: t.TextIO) -> bool:
    """Whether to write colour codes to ``stream``.

    ``NO_COLOR`` (non-empty) says no; ``FORCE_COLOR`` (non-empty, not ``0``)
    says yes; otherwise yes when ``stream`` is a terminal (on Windows, one that
    accepts the codes once asked to).

    :param stream: where the log is written.
    """
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force and force != "0":
        return True
    try:
        is_tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return is_tty and enable_vt_mode(stream)


def _coloured(message: str, colour: str | None, slow: str) -> str:
    """``message`` coloured by status, its last part ``slow`` highlighted."""
    if slow:
        head = message[: -len(slow)]
        head = head if colour is None else colour + head + _RESET
        return f"{head}{_SLOW_COLOUR}{slow}{_RESET}"
    return message if colour is None else colour + message + _RESET


if t.TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[t.TextIO]
else:  # not subscriptable at run time before Python 3.11
    _StreamHandler = logging.StreamHandler


class _ConsoleHandler(_StreamHandler):
    """Writes to the current ``sys.stderr``, coloured where it is wanted.

    The stream is looked up on every record (tests and tools replace
    ``sys.stderr``); the colour decision is cached per stream object.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        # (stream, answer) in one attribute: threads that log their first
        # lines at once must never read one's stream with another's answer.
        self._colour_for: tuple[object, bool] = (None, False)
        self._links_for: tuple[object, bool] = (None, False)
        # Lines wait here, in order, for the one thread that writes: while it
        # is in write(), others queue their lines and go on serving rather
        # than queue on a lock (and the GIL), and it writes them all at once.
        self._pending: collections.deque[str] = collections.deque()
        self._writer = threading.Lock()

    @property
    def stream(self) -> t.TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: t.TextIO) -> None:
        pass  # always the current sys.stderr

    def _wants_colour(self, stream: t.TextIO) -> bool:
        known, answer = self._colour_for
        if stream is not known:
            answer = colour_wanted(stream)
            self._colour_for = (stream, answer)
        return answer

    def _wants_links(self, stream: t.TextIO) -> bool:
        known, answer = self._links_for
        if stream is not known:
            try:
                tty = stream.isatty()
            except (AttributeError, ValueError):
                tty = False
            answer = tty and not os.environ.get("NO_COLOR")
            self._links_for = (stream, answer)
        return answer

    def format(self, record: logging.LogRecord) -> str:
        if self._wants_colour(sys.stderr):
            linked = getattr(record, "link_message", None)
            if linked is not None and self._wants_links(sys.stderr):
                return t.cast(str, linked)
            coloured = getattr(record, "color_message", None)
            if coloured is not None:
                return t.cast(str, coloured)
        # A traceback can carry text from a request (an exception message
        # built from a query string): it must not drive the terminal either.
        text = escape_terminal(super().format(record))
        linker = _traceback_links
        if linker is not None and record.exc_info and self._wants_links(sys.stderr):
            text = linker(text)
        return text

    def write_line(self, message: str, colour: str | None, slow: str = "") -> None:
        """Write one request-log line as :meth:`emit` would, without a record.

        Only for when this handler is the only one that would see the record.
        ``slow`` is the duration at the end of ``message`` when it must stand
        out.
        """
        if (colour is not None or slow) and self._wants_colour(sys.stderr):
            message = _coloured(message, colour, slow)
        self._pending.append(message + "\n")
        busy = _busy
        if busy is not None and busy():
            return  # the serving loop writes it, with others, in a moment
        self._write_pending()

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` after the lines already waiting (see write_line)."""
        try:
            text = self.format(record) + self.terminator
        except Exception:  # as logging does
            self.handleError(record)
            return
        self._pending.append(text)
        self._write_pending()

    def _write_pending(self) -> None:
        """Write the waiting lines, unless another thread is writing: that
        one writes them once its write() returns."""
        pending = self._pending
        while pending and self._writer.acquire(False):
            try:
                lines = []
                while pending:
                    lines.append(pending.popleft())
                self.acquire()
                try:
                    stream = sys.stderr
                    stream.write(lines[0] if len(lines) == 1 else "".join(lines))
                    stream.flush()
                except Exception:  # a broken stream must not kill serving
                    pass
                finally:
                    self.release()
            finally:
                self._writer.release()


_handler: _ConsoleHandler | None = None
_ready = False
_traceback_links: t.Callable[[str], str] | None = None


def set_traceback_links(linker: t.Callable[[str], str] | None) -> None:
    """Add hyperlinks to the tracebacks that citus's handler writes to a
    terminal (a logged exception, such as an error after a response started).

    The debugger sets it when the terminal is known to show OSC 8 links;
    ``None`` turns it off. Only a terminal without ``NO_COLOR`` gets them.

    :param linker: turns an escaped traceback into one with links.
    """
    global _traceback_links
    _traceback_links = linker


def _setup() -> None:
    """Give ``citus`` a level and, when nothing else would show it, a handler."""
    global _ready
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        install_handler()
    _ready = True


def install_handler() -> None:
    """Add citus's console handler to ``citus`` (once), configured or not."""
    global _handler
    if _handler is None:
        _handler = _ConsoleHandler()
        _handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(_handler)


def reset() -> None:
    """Forget the set-up done on first use (for tests): remove citus's handler."""
    global _handler, _ready
    if _handler is not None:
        logger.removeHandler(_handler)
        _handler = None
    _ready = False


def echo(
    message: str,
    err: bool = False,
    *,
    hyperlinks: t.Callable[[str], str] | None = None,
) -> None:
    """Tell the user ``message`` through the ``citus`` logger (on standard error).

    A line that starts with ``WARNING:`` (the banner's "This is a development
    server" line) is logged at ``WARNING`` level and, like an error, is red
    where the log is coloured (a terminal without ``NO_COLOR``, or
    ``FORCE_COLOR``).

    :param message: one line, without the trailing newline.
    :param err: an error rather than information (logged at ``ERROR`` level,
        red on a terminal).
    :param hyperlinks: for an error, a function that adds OSC 8 hyperlinks to
        the escaped message; citus's handler writes that copy only to a
        terminal (not a pipe, not with ``NO_COLOR``).
    """
    if not _ready:
        _setup()
    message = escape_terminal(message)
    if err:
        extra = {"color_message": _ERROR_COLOUR + message + _RESET}
        if hyperlinks is not None:
            linked = hyperlinks(message)
            if linked != message:
                extra["link_message"] = _ERROR_COLOUR + linked + _RESET
        logger.error(message, extra=extra)
    elif message.startswith(_WARNING_PREFIX):
        logger.warning(
            message, extra={"color_message": _ERROR_COLOUR + message + _RESET}
        )
    else:
        logger.info(message)


def escape_control(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x1b``).

    Anything logged that came from outside (a request line, a path, a command
    line) goes through this, so that it cannot move the cursor, recolour or
    retitle the terminal.

    :param text: the text to make safe.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_terminal(text: str) -> str:
    """``text`` with terminal control characters escaped, lines and tabs kept.

    Like :func:`escape_control` for text of several lines (a traceback): only
    the C0 and C1 control characters other than newline and tab are written
    as escapes (``\\x1b``); other characters, any language, stay as they are.

    :param text: the text to make safe.
    """
    return _TERMINAL_CONTROLS.sub(lambda match: ascii(match.group())[1:-1], text)


_last_second = -1
_last_stamp = ""


def _timestamp() -> str:
    """The local time as ``22/Nov/2026 10:00:00``, computed once a second."""
    global _last_second, _last_stamp
    now = int(time.time())
    if now != _last_second:
        _last_stamp = time.strftime("%d/%b/%Y %H:%M:%S", time.localtime(now))
        _last_second = now
    return _last_stamp


def _duration(seconds: float) -> str:
    """``12 ms``, ``0.4 ms`` (one decimal below 10 ms), ``2.31 s`` past 10 s."""
    ms = seconds * 1000.0
    if ms < 10.0:
        return f"{max(ms, 0.0):.1f} ms"
    if ms < 10_000.0:
        return f"{ms:.0f} ms"
    return f"{seconds:.2f} s"


def log_request(
    client: str,
    request_line: str,
    status: int,
    size: int | None,
    duration: float | None = None,
) -> None:
    """Write one line of the request log through ``citus.serving``.

    The line reads
    ``127.0.0.1 - - [22/Nov/2026 10:00:00] "GET / HTTP/1.1" 200 - 12 ms``: the
    client, the time, the request line, the status, the body size (``-`` when
    unknown) and the time the request took. On a terminal the line is coloured
    by status class, and a duration over :data:`SLOW_REQUEST` seconds stands
    out. The values of secret-looking query parameters are hidden
    (``/login?token=********``), as on the debugger's page. Control characters
    in ``client`` and ``request_line`` are escaped. Silence the log with
    ``logging.getLogger("citus.serving").setLevel(logging.WARNING)``.

    :param client: the client's address (``127.0.0.1``, ``::1``, or a Unix path).
    :param request_line: the request line as received, e.g. ``GET / HTTP/1.1``.
    :param status: the response status code.
    :param size: the body size in bytes, or ``None`` when unknown.
    :param duration: seconds from the complete request head to the end of the
        response, or ``None`` to leave it out.
    """
    if not _ready:
        _setup()
    if not access_logger.isEnabledFor(logging.INFO):
        return
    if "?" in request_line:
        request_line = redact_query(request_line)
    if not request_line.isprintable():
        request_line = escape_control(request_line)
    if not client.isprintable():
        client = escape_control(client)
    message = (
        f'{client} - - [{_timestamp()}] "{request_line}" {status} '
        f"{'-' if size is None else size}"
    )
    slow = ""
    if duration is not None:
        took = _duration(duration)
        message = f"{message} {took}"
        if duration > SLOW_REQUEST:
            slow = took
    handler = _handler
    if handler is not None:
        colour = _STATUS_COLOURS.get(status // 100)
        # The common case: nobody configured logging, only citus's handler
        # would see the record. Writing the line directly skips building a
        # LogRecord, most of the cost of a log line, on every request.
        handlers = logger.handlers
        if (
            not access_logger.handlers
            and len(handlers) == 1
            and handlers[0] is handler
            and not (logger.propagate and _root.handlers)
            and not access_logger.filters
            and not logger.filters
            and not handler.filters
            and handler.level <= logging.INFO
        ):
            handler.write_line(message, colour, slow)
            return
        extra = {"color_message": _coloured(message, colour, slow)}
    else:
        extra = None
    # makeRecord + handle skips logging's caller lookup, the costly part of
    # logger.info().
    record = access_logger.makeRecord(
        access_logger.name, logging.INFO, "", 0, message, (), None, extra=extra
    )
    access_logger.handle(record)


_busy: t.Callable[[], bool] | None = None


def defer_request_log(busy: t.Callable[[], bool] | None) -> None:
    """Let request-log lines wait while ``busy()`` is true, for
    :func:`flush_request_log` to write them together (``None``: never wait).

    A serving loop sets it while its worker threads have work queued: one
    write per loop round instead of one per request.
    """
    global _busy
    _busy = busy


def flush_request_log() -> None:
    """Write the request-log lines that wait (see :func:`defer_request_log`)."""
    handler = _handler
    if handler is not None and handler._pending:
        handler._write_pending()


def log_error(message: str) -> None:
    """Log one line about a failed connection (bad request, TLS, disconnect).

    Goes through ``citus.serving`` at ``WARNING`` level, escaped, red on a
    terminal; never a traceback.

    :param message: the line, without a trailing newline.
    """
    if not _ready:
        _setup()
    if not message.isprintable():
        message = escape_control(message)
    access_logger.warning(
        message, extra={"color_message": _ERROR_COLOUR + message + _RESET}
    )


#: The line that says this server is not for production (debug mode off).
DEVELOPMENT_SERVER_WARNING = (
    "WARNING: This is a development server. Do not use it in a production deployment."
)
_banner_shown = False


def show_server_banner(app_name: str, debug: bool, kind: str = "citus") -> None:
    """Print the lines that open a server's output (shared with ``citus run``).

    ::

         * Serving citus app 'hello'
         * Debug mode: off
        WARNING: This is a development server. Do not use it in a production deployment.

    :param app_name: the application's name, e.g. the module ``hello``.
    :param debug: whether debug mode is on (the warning shows only when off).
    :param kind: the app's framework, as :mod:`citus.frameworks` names it:
        ``Serving Flask app 'flaskr'``.
    """
    global _banner_shown
    _banner_shown = True  # run_simple() leaves the warning to these lines
    echo(f" * Serving {kind} app '{app_name}'")
    echo(f" * Debug mode: {'on' if debug else 'off'}")
    if not debug:
        echo(DEVELOPMENT_SERVER_WARNING)


def warn_development_server() -> None:
    """Print :data:`DEVELOPMENT_SERVER_WARNING` for a bare ``run_simple()``.

    Nothing when :func:`show_server_banner` ran in this process (``citus
    run``, ``app.run()``): the banner already printed it, or debug mode is on.
    """
    if not _banner_shown:
        echo(DEVELOPMENT_SERVER_WARNING)
