"""Loading the app for ``citus run``: eager or lazy, with or without the reloader.

This module carries out the protocol that ``docs/internals.md`` ("Loading the
app under the reloader") names. The reloader's supervisor never imports the
app: it gets :func:`supervisor_app`, which is never called, and only checks
that the module can be found. The process that serves loads the app with
:func:`load_app_for_serving`:

- an error at the first start, or at any start with ``--eager-loading``, is
  fatal: the traceback (or the one-line message for a wrong ``--app``) is
  printed, and the process exits (with :data:`citus.reloader.EXIT_FATAL` in a
  reloader child, so that the supervisor stops too);
- with ``--lazy-loading``, or after a reload, the server starts anyway and
  every request raises the load error again (:class:`FailedApp`), so that the
  debugger shows it; the files of its traceback are watched, so that saving
  the fix reloads.
"""

from __future__ import annotations

import importlib
import os
import traceback
import types
import typing as t

from .. import reloader
from .._log import echo
from .discovery import NoAppError, locate_app

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# With a trailing separator: a user's ``citus_app/`` is not citus's own.
_OWN_DIRS = (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ""),
    os.path.join(os.path.dirname(os.path.abspath(importlib.__file__ or "")), ""),
)


def supervisor_app(
    environ: WSGIEnvironment, start_response: StartResponse
) -> t.Iterable[bytes]:
    """The stand-in the reloader's supervisor is given: it never serves."""
    raise RuntimeError(
        "citus run: the reloader's supervisor does not serve the app; its children do."
    )


class AppLoadError(Exception):
    """Raised by :class:`FailedApp` for a load error that is not an
    :exc:`Exception` (``sys.exit()`` at import time, a ``BaseException``
    subclass of the user's): servers and middleware catch only
    :exc:`Exception`, so the original is shown as its cause.
    """


class FailedApp:
    """A WSGI app that raises the error the real app failed to load with.

    Each request raises ``error`` again, with its traceback from the first
    frame of the user's code, so that the debugger (or the server's 500 page)
    shows what went wrong there. An error that is not an :exc:`Exception`
    (``SystemExit``) is raised as the cause of an :exc:`AppLoadError`.

    Each request's environ gets :data:`citus.debug.LOAD_ERROR_KEY`: the
    debugger then shows the error only to requests it trusts in full
    (:meth:`citus.debug.DebuggedApplication.trusts_request`), as the
    reloader's page does while the server is down.
    """

    def __init__(self, error: BaseException) -> None:
        from ..debug import LOAD_ERROR_KEY

        self.error = error
        self.traceback = _user_traceback(error)
        self._key = LOAD_ERROR_KEY
        self._wrapper: AppLoadError | None = None
        if not isinstance(error, Exception):
            message = str(error)
            self._wrapper = AppLoadError(
                f"The app raised {type(error).__name__} while it was imported"
                + (f": {message}" if message else ".")
            )

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Raise the load error again."""
        __traceback_hide__ = True  # the debugger leaves this frame out
        environ[self._key] = True
        error = self.error.with_traceback(self.traceback)
        if self._wrapper is not None:
            raise self._wrapper.with_traceback(None) from error
        raise error


def _is_own_file(filename: str) -> bool:
    if filename.startswith("<frozen importlib"):
        return True
    return os.path.abspath(filename).startswith(_OWN_DIRS)


def _is_own_frame(frame: traceback.FrameSummary) -> bool:
    return _is_own_file(frame.filename)


def _user_traceback(error: BaseException) -> types.TracebackType | None:
    """The traceback of ``error`` from its first frame in the user's code.

    As in :func:`format_load_error`: a :exc:`SyntaxError` of the import (or a
    wrong ``--app``) has no frame of the user's code and keeps none; any other
    error that has none keeps all its frames.
    """
    tb = error.__traceback__
    start = tb
    while start is not None and _is_own_file(start.tb_frame.f_code.co_filename):
        start = start.tb_next
    if start is None and not isinstance(error, (SyntaxError, NoAppError)):
        return tb
    return start


def format_load_error(error: BaseException) -> str:
    """The traceback of ``error`` without the frames of citus and importlib.

    What is left starts in the user's code, which is where the bug is. A
    :exc:`SyntaxError` raised by the import itself has no frame of the user's
    code: only its file, line and caret are shown.
    """
    tbe = traceback.TracebackException.from_exception(error)
    frames = list(tbe.stack)
    start = 0
    while start < len(frames) and _is_own_frame(frames[start]):
        start += 1
    if start < len(frames) or isinstance(error, SyntaxError):
        tbe.stack = traceback.StackSummary.from_list(frames[start:])
    return "".join(tbe.format()).rstrip("\n")


def _fail(message: str, code: int) -> t.NoReturn:
    echo(message, err=True)
    raise SystemExit(code)


def _still_serving(what: str, shows: str, *, use_reloader: bool, debugger: bool) -> str:
    """The line that says the server is up although the app cannot serve.

    :param what: what went wrong (``The app failed to load``).
    :param shows: what each request shows with the debugger on.
    """
    if not debugger:
        shows = (
            "every request fails with a 500 (the debugger is off; the error is above)"
        )
    if use_reloader:
        return f" * {what}; the server is up and {shows} until the fix is saved."
    return (
        f" * {what}; the server is up and {shows}. Restart citus run once it is fixed."
    )


def load_app_for_serving(
    reference: str | None,
    *,
    eager: bool | None,
    use_reloader: bool,
    debugger: bool = True,
) -> WSGIApplication:
    """Load the app named by ``reference`` in the process that serves it.

    :param reference: ``--app`` / ``CITUS_APP``, or ``None`` for the defaults.
    :param eager: ``True`` for ``--eager-loading`` (every load error is fatal),
        ``False`` for ``--lazy-loading`` (none is), ``None`` for the default
        (fatal at the first start only).
    :param use_reloader: whether this process is a reloader child.
    :param debugger: whether the debugger shows the error to each request
        (what the message says).
    :raises NoAppError: for a wrong ``--app`` at a fatal start outside the
        reloader (a usage error, exit status 2).
    :raises SystemExit: for any other fatal load error: status 1, or
        :data:`citus.reloader.EXIT_FATAL` in a reloader child
        (:data:`citus.reloader.EXIT_USAGE` for a wrong ``--app`` there).

    Reads ``CITUS_RUN_MAIN`` and ``CITUS_RUN_GENERATION`` (through
    :mod:`citus.reloader`).
    """
    in_child = use_reloader and reloader.is_running_from_reloader()
    fatal = eager is True or (eager is None and reloader.is_first_start())
    try:
        app, _ = locate_app(reference)
        return app
    except NoAppError as error:
        if fatal:
            if in_child:
                _fail(f"Error: {error.format_message()}", reloader.EXIT_USAGE)
            raise
        failure: BaseException = error
        echo(f"Error: {error.format_message()}", err=True)
    except KeyboardInterrupt:
        raise  # Ctrl+C while importing: a normal stop, not an error
    except BaseException as error:
        # SystemExit too (sys.exit() at import time): a load error like any
        # other, with its traceback, never a silent exit of the process.
        if fatal:
            _fail(
                format_load_error(error),
                reloader.EXIT_FATAL if in_child else 1,
            )
        failure = error
        echo(format_load_error(error), err=True)
    echo(
        _still_serving(
            "The app failed to load",
            "every request shows the error",
            use_reloader=use_reloader,
            debugger=debugger,
        )
    )
    if in_child:
        reloader.watch_files_of(failure)
    return FailedApp(failure)


def prepare_for_serving(
    app: WSGIApplication,
    *,
    debug: bool,
    static: bool,
    use_reloader: bool,
    eager: bool | None = None,
    debugger: bool = True,
) -> WSGIApplication:
    """Make a loaded app ready to serve, as its framework's own server does.

    Through :mod:`citus.frameworks`: the framework's debug mode follows
    ``debug`` (Flask's ``app.debug``), its start-up checks run and print
    (Django's system checks and unapplied migrations, at every start), and
    the app is wrapped as the framework's server wraps it (Django's static
    files, unless ``static`` is false). Under the reloader, checks that find
    errors keep the server up: every request shows them, as for a load
    error, until a saved fix reloads the app. Without the reloader nothing
    would ever reload it: the errors are fatal, as under ``runserver
    --noreload``.

    :param use_reloader: whether this process is a reloader child (the
        message then says that saving the fix is enough).
    :param eager: as for :func:`load_app_for_serving`: ``True``
        (``--eager-loading``) makes failed checks fatal even under the
        reloader, ``False`` (``--lazy-loading``) never, ``None`` only
        without the reloader.
    :param debugger: whether the debugger shows the errors to each request.
    :raises SystemExit: for fatal failed checks: status 1, or
        :data:`citus.reloader.EXIT_FATAL` in a reloader child.
    """
    if isinstance(app, FailedApp):
        return app
    from ..frameworks import CheckFailedError, detect

    framework = detect(app)
    framework.set_debug(debug)
    if not use_reloader or reloader.is_first_start():
        for line in framework.banner_lines():
            echo(line)
    try:
        lines = framework.check()
    except KeyboardInterrupt:
        raise
    except CheckFailedError as error:
        # The report says it all; citus's frames that raised it would not.
        failure: BaseException = error.with_traceback(None)
        for line in error.lines:
            echo(line)
        echo(f"{type(error).__name__}: {error.message}", err=True)
    except BaseException as error:
        failure = error
        echo(format_load_error(error), err=True)
    else:
        for line in lines:
            echo(line)
        return framework.serving_app(static=static)
    in_child = use_reloader and reloader.is_running_from_reloader()
    if eager is True or (eager is None and not use_reloader):
        raise SystemExit(reloader.EXIT_FATAL if in_child else 1)
    echo(
        _still_serving(
            f"The {framework.name} app's checks failed",
            "every request shows why",
            use_reloader=use_reloader,
            debugger=debugger,
        )
    )
    if in_child:
        reloader.watch_files_of(failure)
    return FailedApp(failure)
