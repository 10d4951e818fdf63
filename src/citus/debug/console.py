"""The interactive console: Python evaluated in a frame's namespace.

A :class:`Console` belongs to one frame of one traceback (or to the standalone
console page). It keeps its namespace between inputs, so names assigned in one
input are there in the next; it buffers incomplete statements the way the
interactive interpreter does (``...`` prompt until a blank line), runs pasted
blocks whole, and returns everything the code printed, the value of an
expression and any exception as plain text. Nothing here is HTML: the page's
script inserts the text as text.

As in ``python -m asyncio``, ``await`` works at the top level
(``await asyncio.sleep(0)``): such an input runs on the console's own event
loop, kept from one input to the next.
"""

from __future__ import annotations

import ast
import builtins
import codeop
import contextlib
import contextvars
import inspect
import io
import sys
import threading
import traceback
import types
import typing as t
import weakref

from .repr import make_dump, safe_repr

if t.TYPE_CHECKING:
    import asyncio

#: Most characters of output returned for one input.
MAX_OUTPUT = 100_000
#: The prompts the page shows.
PROMPT = ">>> "
PROMPT_MORE = "... "
#: Seconds an input waits for another one still running before giving up.
BUSY_TIMEOUT = 10.0
#: What an input that gave up waiting answers, instead of hanging.
BUSY_MESSAGE = (
    "The console is busy: another input is still running (an endless loop?)."
    " Wait for it to finish, or restart the server to stop it.\n"
)

# sys.stdout and sys.displayhook are process-wide: one evaluation at a time.
_io_lock = threading.Lock()
# The output buffer of the evaluation running on this thread, if any.
_local = threading.local()


class _Routed:
    """Stands in for ``sys.stdout``, ``sys.stderr`` or ``sys.stdin`` while a
    console runs.

    The console's own thread writes to its buffer (and reads an empty input, so
    ``input()`` or ``breakpoint()`` ends with EOFError instead of waiting on the
    server's terminal); every other thread (the app serving other requests, the
    request log) still uses the real stream, so their output neither lands in
    the browser nor goes missing from the terminal.
    """

    def __init__(self, real: t.TextIO | None, name: str = "out") -> None:
        self._real = real  # None under pythonw: writes go nowhere, as before
        self._name = name

    def _target(self) -> t.TextIO | None:
        mine: t.TextIO | None = getattr(_local, self._name, None)
        return self._real if mine is None else mine

    def write(self, text: str) -> int:
        target = self._target()
        return len(text) if target is None else target.write(text)

    def flush(self) -> None:
        target = self._target()
        if target is not None:
            target.flush()

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._target(), name)


class Console:
    """A Python console over a namespace.

    :param globals: the frame's globals (copied, so the module is not changed).
    :param locals: the frame's locals (copied, then kept between inputs).
    :param context: the :mod:`contextvars` context the request ran in, if
        known: inputs run in a copy of it, so that context-local proxies such
        as ``citus.request`` still name the request that failed.
    """

    def __init__(
        self,
        globals: dict[str, t.Any],
        locals: t.Mapping[str, t.Any] | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        self._context = context.copy() if context is not None else None
        namespace = dict(globals)
        if locals:
            namespace.update(locals)
        namespace.setdefault("__builtins__", builtins)
        namespace["dump"] = make_dump(namespace)
        self.namespace = namespace
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        # Remembers __future__ imports, as the interpreter does, and accepts
        # a top-level await.
        self._compile = codeop.CommandCompiler()
        self._compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def prompt(self) -> str:
        """``>>> `` or, inside an unfinished statement, ``... ``."""
        return PROMPT_MORE if self._buffer else PROMPT

    def push(self, source: str) -> str:
        """Run one input and return what it printed.

        :param source: one line, or a pasted block of several lines (run whole).
        """
        source = source.replace("\r\n", "\n").replace("\r", "\n")
        out = io.StringIO()
        if not _io_lock.acquire(timeout=BUSY_TIMEOUT):
            return BUSY_MESSAGE
        try:
            with self._lock:
                if "\n" in source.strip("\n") and not self._buffer:
                    self._run_block(source, out)
                else:
                    for line in source.split("\n") if source else [""]:
                        self._push_line(line, out)
        finally:
            _io_lock.release()
        text = out.getvalue()
        if len(text) > MAX_OUTPUT:
            text = (
                text[:MAX_OUTPUT]
                + f"\n... ({len(text) - MAX_OUTPUT} more characters)\n"
            )
        return text

    def _push_line(self, line: str, out: io.StringIO) -> None:
        self._buffer.append(line)
        source = "\n".join(self._buffer)
        try:
            code = self._compile(source, "<console>", "single")
        except (SyntaxError, OverflowError, ValueError) as error:
            self._buffer.clear()
            out.write(_format_syntax_error(error))
            return
        if code is None:
            return
        self._buffer.clear()
        self._execute(code, out)

    def _run_block(self, source: str, out: io.StringIO) -> None:
        try:
            tree = ast.parse(source, "<console>", "exec")
        except (SyntaxError, ValueError) as error:
            out.write(_format_syntax_error(error))
            return
        last: ast.Interactive | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Interactive(body=[tree.body.pop()])
        if tree.body:
            code = compile(tree, "<console>", "exec", flags=_AWAIT, dont_inherit=True)
            if not self._execute(code, out):
                return
        if last is not None:
            code = compile(last, "<console>", "single", flags=_AWAIT, dont_inherit=True)
            self._execute(code, out)

    def _execute(self, code: t.Any, out: io.StringIO) -> bool:
        namespace = self.namespace

        def displayhook(value: object) -> None:
            if value is None:
                return
            namespace["_"] = value
            out.write(safe_repr(value, MAX_OUTPUT) + "\n")

        saved_hook = sys.displayhook
        sys.displayhook = displayhook
        try:
            with _routed_to(out):
                if self._context is None:
                    self._run(code, namespace)
                else:
                    self._context.run(self._run, code, namespace)
        except SystemExit:
            out.write("SystemExit is ignored: the console cannot stop the server.\n")
            return False
        except BaseException as error:  # shown to the user, like the REPL does
            if isinstance(error, (KeyboardInterrupt, GeneratorExit)):
                raise
            tb = error.__traceback__
            # Drop the console's own frames (and the event loop's) from what
            # the user sees: start at the input's first frame.
            first = tb
            while first is not None and first.tb_frame.f_code.co_filename != (
                "<console>"
            ):
                first = first.tb_next
            tb = first if first is not None else (tb.tb_next if tb else None)
            out.write("".join(traceback.format_exception(type(error), error, tb)))
            return False
        finally:
            sys.displayhook = saved_hook
        return True

    def _run(self, code: types.CodeType, namespace: dict[str, t.Any]) -> None:
        """Run ``code``; with a top-level ``await``, on the console's loop."""
        if not code.co_flags & inspect.CO_COROUTINE:
            exec(code, namespace)
            return
        coroutine = types.FunctionType(code, namespace)()
        if self._loop is None:
            import asyncio  # only here: it costs debug mode's start 10 ms

            self._loop = asyncio.new_event_loop()
            weakref.finalize(self, self._loop.close)
        self._loop.run_until_complete(coroutine)


#: Compiler flag: ``await`` outside a function, as in ``python -m asyncio``.
_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


@contextlib.contextmanager
def _routed_to(out: io.StringIO) -> t.Iterator[None]:
    """Send this thread's standard output and error to ``out``, and only its;
    give it an empty standard input."""
    saved_out, saved_err, saved_in = sys.stdout, sys.stderr, sys.stdin
    sys.stdout = t.cast(t.TextIO, _Routed(saved_out))
    sys.stderr = t.cast(t.TextIO, _Routed(saved_err))
    sys.stdin = t.cast(t.TextIO, _Routed(saved_in, "stdin"))
    _local.out = out
    _local.stdin = io.StringIO()
    try:
        yield
    finally:
        _local.out = _local.stdin = None
        sys.stdout, sys.stderr, sys.stdin = saved_out, saved_err, saved_in


def _format_syntax_error(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error))
