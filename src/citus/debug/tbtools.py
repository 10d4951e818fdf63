"""The traceback model, and its plain-text and JSON renderings.

:class:`Traceback` walks an exception once: its chain (``__cause__`` and
``__context__``, oldest first as Python prints it), the members of exception
groups, and every frame with its file, line, function, source context and
(redacted) locals. The error page (:func:`.page.render_page`), the plain text for
terminals and curl (:attr:`Traceback.text`) and the JSON document for API
clients (:meth:`Traceback.to_json`) are all built from that model.
"""

from __future__ import annotations

import builtins
import linecache
import os
import secrets
import site
import sysconfig
import time
import traceback
import types
import typing as t
from dataclasses import dataclass, field

from .repr import redact, safe_repr

if t.TYPE_CHECKING:
    from .console import Console

#: Lines of source shown before and after a frame's current line.
CONTEXT_LINES = 5
#: Most members of one exception group that are shown.
MAX_GROUP_MEMBERS = 20
#: How deep nested exception groups are followed.
MAX_GROUP_DEPTH = 5
#: Most locals shown per frame.
MAX_LOCALS = 100

#: Gives the URL that opens a file at a line in the editor, or ``None``.
Link = t.Callable[[str, int], "str | None"]

_BaseExceptionGroup: type[BaseException] | None = getattr(
    builtins, "BaseExceptionGroup", None
)


def _library_prefixes() -> tuple[str, ...]:
    paths = set()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            paths.add(sysconfig.get_paths()[name])
        except KeyError:
            pass
    try:
        paths.update(site.getsitepackages())
    except AttributeError:  # some virtualenv versions lack it
        pass
    paths.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return tuple(os.path.normcase(os.path.abspath(p)) + os.sep for p in paths if p)


_LIBRARY_PREFIXES = _library_prefixes()


def is_library_file(filename: str) -> bool:
    """Whether ``filename`` belongs to the standard library, an installed package
    or citus itself: such frames are folded on the error page.

    :param filename: a frame's ``co_filename``.
    """
    if filename.startswith("<"):
        return filename.startswith("<frozen")
    path = os.path.normcase(os.path.abspath(filename))
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return path.startswith(_LIBRARY_PREFIXES)


@dataclass
class Frame:
    """One frame of a traceback, ready to render."""

    #: Index of the frame in its :class:`Traceback`; the console addresses it.
    id: int
    filename: str
    lineno: int
    function: str
    module: str
    #: From the standard library, an installed package or citus: folded.
    library: bool
    #: ``(line number, text)`` around :attr:`lineno`.
    context: list[tuple[int, str]]
    #: ``(name, shown value)``, secrets redacted.
    locals: list[tuple[str, str]]
    #: The live frame, for the console; ``None`` for a syntax error's location.
    frame: types.FrameType | None = None

    @property
    def place(self) -> tuple[str, int, str]:
        """File, line and function: equal for the frames of a recursion."""
        return (self.filename, self.lineno, self.function)

    @property
    def line(self) -> str:
        """The source of the current line, stripped."""
        for number, text in self.context:
            if number == self.lineno:
                return text.strip()
        return ""

    def to_json(self, link: Link | None = None) -> dict[str, t.Any]:
        """The frame as a JSON-ready dict: file, line, function, code, library,
        and ``editor_url``, the link that opens it in the editor (or ``None``).

        :param link: gives the editor URL of a file and line, if any.
        """
        return {
            "file": self.filename,
            "line": self.lineno,
            "function": self.function,
            "code": self.line,
            "library": self.library,
            "editor_url": None if link is None else link(self.filename, self.lineno),
        }


@dataclass
class ExceptionBlock:
    """One exception of the chain, with its frames and group members."""

    type_name: str
    message: str
    frames: list[Frame]
    #: How this exception leads to the one shown after it: ``"cause"``,
    #: ``"context"`` or ``None`` (the last one).
    relation: str | None
    notes: list[str] = field(default_factory=list)
    #: For an exception group: each member's own chain.
    members: list[list[ExceptionBlock]] = field(default_factory=list)
    hidden_members: int = 0

    def to_json(self, link: Link | None = None) -> dict[str, t.Any]:
        """The exception as a JSON-ready dict.

        :param link: gives the editor URL of a file and line, if any.
        """
        data: dict[str, t.Any] = {
            "type": self.type_name,
            "message": self.message,
            "relation": self.relation,
            "frames": [f.to_json(link) for f in self.frames],
        }
        if self.notes:
            data["notes"] = self.notes
        if self.members:
            data["exceptions"] = [[b.to_json(link) for b in m] for m in self.members]
        return data


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    if module in ("builtins", "__main__", None):
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as error:
        return f"<str() of the exception failed: {error!r}>"


def _is_hidden(frame: types.FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    if isinstance(name, str) and (
        name == "citus.debug" or name.startswith("citus.debug.")
    ):
        return True
    return bool(frame.f_locals.get("__traceback_hide__", False))


def _visible(tb: types.TracebackType | None) -> types.TracebackType | None:
    while tb is not None and _is_hidden(tb.tb_frame):
        tb = tb.tb_next
    return tb


def plain_text(exc: BaseException) -> str:
    """The traceback of ``exc`` as Python prints it, without the debugger's frames.

    :param exc: the exception.
    """
    lines = traceback.format_exception(type(exc), exc, _visible(exc.__traceback__))
    return "".join(lines)


def _function_name(code: types.CodeType) -> str:
    qualname: str = getattr(code, "co_qualname", code.co_name)
    # A code object renamed with replace(co_name=...) keeps its qualified name:
    # Jinja's template frames are named "top-level template code" or "block
    # 'body'" that way, and their qualified name is still "<module>".
    if qualname.rpartition(".")[2] != code.co_name:
        return code.co_name
    return qualname


class _Builder:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.seen: set[int] = set()

    def chain(self, exc: BaseException, depth: int = 0) -> list[ExceptionBlock]:
        blocks: list[ExceptionBlock] = []
        current: BaseException | None = exc
        relation: str | None = None
        while current is not None and id(current) not in self.seen:
            self.seen.add(id(current))
            blocks.append(self.block(current, relation, depth))
            if current.__cause__ is not None:
                relation, current = "cause", current.__cause__
            elif current.__context__ is not None and not current.__suppress_context__:
                relation, current = "context", current.__context__
            else:
                current = None
        blocks.reverse()
        return blocks

    def block(
        self, exc: BaseException, relation: str | None, depth: int
    ) -> ExceptionBlock:
        frames = []
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if _is_hidden(frame):
                continue
            frames.append(self.frame(frame, lineno))
        if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
            frames.append(self.syntax_frame(exc))
        notes = getattr(exc, "__notes__", None)
        block = ExceptionBlock(
            type_name=_type_name(exc),
            message=_message(exc),
            frames=frames,
            relation=relation,
            notes=[str(n) for n in notes] if isinstance(notes, list) else [],
        )
        if _BaseExceptionGroup is not None and isinstance(exc, _BaseExceptionGroup):
            members = list(getattr(exc, "exceptions", ()))
            if depth < MAX_GROUP_DEPTH:
                for member in members[:MAX_GROUP_MEMBERS]:
                    block.members.append(self.chain(member, depth + 1))
                block.hidden_members = max(0, len(members) - MAX_GROUP_MEMBERS)
            else:
                block.hidden_members = len(members)
        return block

    def _context(
        self, filename: str, lineno: int, module_globals: dict[str, t.Any] | None
    ) -> list[tuple[int, str]]:
        lines = linecache.getlines(filename, module_globals)
        start = max(1, lineno - CONTEXT_LINES)
        end = min(len(lines), lineno + CONTEXT_LINES)
        return [(n, lines[n - 1].rstrip("\r\n")) for n in range(start, end + 1)]

    def frame(self, frame: types.FrameType, lineno: int) -> Frame:
        code = frame.f_code
        filename = code.co_filename
        shown: list[tuple[str, str]] = []
        for name, value in list(frame.f_locals.items())[:MAX_LOCALS]:
            shown.append((name, redact(name, value)))
        entry = Frame(
            id=len(self.frames),
            filename=filename,
            lineno=lineno,
            function=_function_name(code),
            module=str(frame.f_globals.get("__name__", "")),
            library=is_library_file(filename),
            context=self._context(filename, lineno, frame.f_globals),
            locals=shown,
            frame=frame,
        )
        self.frames.append(entry)
        return entry

    def syntax_frame(self, exc: SyntaxError) -> Frame:
        filename = str(exc.filename)
        lineno = int(exc.lineno or 0)
        context = self._context(filename, lineno, None)
        if not context and exc.text:
            context = [(lineno, exc.text.rstrip("\r\n"))]
        entry = Frame(
            id=len(self.frames),
            filename=filename,
            lineno=lineno,
            function="<syntax error>",
            module="",
            library=is_library_file(filename),
            context=context,
            locals=[],
        )
        self.frames.append(entry)
        return entry


class Traceback:
    """An exception with everything the debugger shows about it.

    :param exc: the exception, with its ``__traceback__``.
    """

    def __init__(self, exc: BaseException) -> None:
        #: Random id used in console requests; unguessable across reloads.
        self.id = secrets.token_hex(8)
        self.exception = exc
        self.created = time.time()
        builder = _Builder()
        #: The chain, oldest first (as Python prints it).
        self.chain = builder.chain(exc)
        #: Every frame of every block, indexed by :attr:`Frame.id`.
        self.frames = builder.frames
        #: Consoles opened on frames, by frame id.
        self.consoles: dict[int, Console] = {}
        #: The plain text, as :mod:`traceback` prints it.
        self.text = plain_text(exc)

    @property
    def last(self) -> ExceptionBlock:
        """The exception that reached the debugger (the newest of the chain)."""
        return self.chain[-1]

    def to_json(
        self, link: Link | None = None, markdown: str | None = None
    ) -> dict[str, t.Any]:
        """The JSON document: the error, the chain with frames, the text and,
        when given, the Markdown report.

        :param link: gives the editor URL of a file and line, if any.
        :param markdown: the text of the page's **Copy as Markdown** button.
        """
        last = self.last
        data = {
            "error": {"type": last.type_name, "message": last.message},
            "chain": [block.to_json(link) for block in self.chain],
            "traceback": self.text,
        }
        if markdown is not None:
            data["markdown"] = markdown
        return data


__all__ = [
    "ExceptionBlock",
    "Frame",
    "Link",
    "Traceback",
    "is_library_file",
    "plain_text",
    "safe_repr",
]
