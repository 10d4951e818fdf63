"""The error as Markdown, to paste into an issue or a chat with an assistant.

:func:`markdown_report` writes the exception, the request line (secrets
redacted as on the page), the plain traceback in a fenced block and, for each
place in the project's own code (not the standard library, installed packages
or citus), the source around the failing line. The page's **Copy as
Markdown** button copies it; the JSON document carries it as ``"markdown"``.
"""

from __future__ import annotations

import os
import re
import typing as t

from .._redact import REDACTED, is_secret_name
from .page import request_url
from .repr import redact_text
from .tbtools import Frame, Traceback

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: Most places of the project's code whose source is included.
MAX_SOURCE_FRAMES = 10


# ``password = "x"``: an assignment of a string to a secret-looking name, in
# source code.
_ASSIGNED_STRING = re.compile(
    r"(?<!\w)([A-Za-z_]\w*)(\s*=\s*)"
    r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")(?=\s*(?:#|$))""",
    re.M,
)


def _hide_assigned(match: re.Match[str]) -> str:
    name, equals, _ = match.groups()
    return f"{name}{equals}{REDACTED}" if is_secret_name(name) else match.group(0)


def share_safe(text: str) -> str:
    """``text`` with the secrets that can be spotted in it hidden, for text
    that leaves the machine: what :func:`~.repr.redact_text` hides (a URL's
    password, secret query values, secret-named strings in reprs) and strings
    assigned to secret-looking names in source (``SECRET_KEY = "x"``).

    :param text: an exception message, a traceback or source lines.
    """
    return _ASSIGNED_STRING.sub(_hide_assigned, redact_text(text))


def _fence(text: str, info: str = "") -> str:
    """``text`` in a fenced block whose fence is longer than any run of
    backticks inside it, so that the text cannot close it."""
    runs = [len(run) for run in re.findall(r"`{3,}", text)]
    fence = "`" * max([3, *(n + 1 for n in runs)])
    return f"{fence}{info}\n{text.rstrip(chr(10))}\n{fence}"


def _inline(text: str) -> str:
    """``text`` as inline code, whatever backticks it holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _shown_path(path: str) -> str:
    """``path`` relative to the current folder when it is inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def _own_frames(tb: Traceback) -> list[Frame]:
    """The frames of the project's own code, each place once, newest last."""
    seen: set[tuple[str, int, str]] = set()
    frames = []
    for frame in tb.frames:
        if frame.library or not frame.context or frame.place in seen:
            continue
        seen.add(frame.place)
        frames.append(frame)
    return frames[-MAX_SOURCE_FRAMES:]


def _source(frame: Frame) -> str:
    width = len(str(frame.context[-1][0]))
    lines = []
    for number, text in frame.context:
        mark = ">" if number == frame.lineno else " "
        lines.append(f"{mark} {number:>{width}} | {text}".rstrip())
    return "\n".join(lines)


def markdown_report(tb: Traceback, environ: WSGIEnvironment | None = None) -> str:
    """The Markdown text of the **Copy as Markdown** button.

    :param tb: the traceback.
    :param environ: the request that failed, for its request line; ``None``
        when the error did not come from a request.
    """
    last = tb.last
    title = f"{last.type_name}: {last.message}" if last.message else last.type_name
    parts = [f"## {_inline(share_safe(title.splitlines()[0]))}"]
    if environ is not None:
        method = environ.get("REQUEST_METHOD", "GET")
        parts.append(f"Request: {_inline(f'{method} {request_url(environ)}')}")
    parts.append(_fence(share_safe(tb.text), "pytb"))
    own = _own_frames(tb)
    if own:
        parts.append("### Source")
        for frame in own:
            where = f"{_shown_path(frame.filename)}, line {frame.lineno}"
            parts.append(
                f"{_inline(where)} in {_inline(frame.function)}:\n\n"
                + _fence(share_safe(_source(frame)), "python")
            )
    return "\n\n".join(parts) + "\n"


__all__ = ["MAX_SOURCE_FRAMES", "markdown_report", "share_safe"]
