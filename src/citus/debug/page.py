"""The error page: the HTML rendering of a :class:`.tbtools.Traceback`, and the
request's sections.

Every piece of text that reaches HTML goes through :func:`html.escape` here;
nothing in the page is trusted markup except the fixed template.
"""

from __future__ import annotations

import html
import itertools
import typing as t
from urllib.parse import parse_qsl

from .repr import REDACTED, is_secret_name, redact, redact_text
from .tbtools import ExceptionBlock, Frame, Link, Traceback

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: Frames of one place in a row (a recursion) shown before the rest is folded.
REPEATS_SHOWN = 3

_e = html.escape


def _render_frame(frame: Frame, console: bool, link: Link | None = None) -> str:
    source = "".join(
        f'<span class="line{" current" if n == frame.lineno else ""}">'
        f'<span class="ln">{n}</span>{_e(text)}\n</span>'
        for n, text in frame.context
    )
    if not source:
        source = '<span class="line">(source not available)\n</span>'
    rows = "".join(
        f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>"
        for name, value in frame.locals
    )
    locals_html = (
        f'<details class="locals"><summary>Locals ({len(frame.locals)})</summary>'
        f"<table>{rows}</table></details>"
        if frame.locals
        else ""
    )
    button = ""
    if console and frame.frame is not None:
        button = (
            f'<button type="button" class="open-console" data-frame="{frame.id}" '
            'title="Open a Python console in this frame">&gt;_ console</button>'
        )
    css = "frame library" if frame.library else "frame"
    place = (
        f'<span class="file">{_e(frame.filename)}</span>, '
        f'line <span class="lineno">{frame.lineno}</span>'
    )
    url = None if link is None else link(frame.filename, frame.lineno)
    if url is not None:
        place = (
            f'<a class="editor-link" href="{_e(url)}" '
            f'title="Open in your editor">{place}</a>'
        )
    return (
        f'<li class="{css}" id="frame-{frame.id}" data-frame="{frame.id}">'
        f'<div class="frame-head">{place}, in '
        f'<span class="function">{_e(frame.function)}</span>{button}</div>'
        f'<pre class="source">{source}</pre>{locals_html}'
        f'<div class="console" hidden></div></li>'
    )


def _fold_repeats(frames: list[Frame]) -> list[Frame | list[Frame]]:
    """``frames`` with each run of the same place (a recursion) cut after
    :data:`REPEATS_SHOWN` frames: the rest of the run becomes one list."""
    out: list[Frame | list[Frame]] = []
    index = 0
    while index < len(frames):
        place = frames[index].place
        end = index
        while end < len(frames) and frames[end].place == place:
            end += 1
        out.extend(frames[index : min(end, index + REPEATS_SHOWN)])
        if end - index > REPEATS_SHOWN:
            out.append(frames[index + REPEATS_SHOWN : end])
        index = end
    return out


def _frame_items(frames: list[Frame], console: bool, link: Link | None) -> str:
    items = []
    for item in _fold_repeats(frames):
        if isinstance(item, Frame):
            items.append(_render_frame(item, console, link))
            continue
        inner = "".join(_render_frame(f, console, link) for f in item)
        items.append(
            '<li class="repeat-group"><details><summary>'
            f"The frame above repeated {len(item)} more times"
            f'</summary><ol class="frames">{inner}</ol></details></li>'
        )
    return "".join(items)


def _render_frames(frames: list[Frame], console: bool, link: Link | None) -> str:
    out: list[str] = []
    for library, group in itertools.groupby(frames, key=lambda f: f.library):
        run = list(group)
        items = _frame_items(run, console, link)
        if not library:
            out.append(items)
            continue
        label = "frame" if len(run) == 1 else "frames"
        out.append(
            '<li class="library-group"><details><summary>'
            f"{len(run)} {label} from the standard library or installed packages"
            f'</summary><ol class="frames">{items}</ol></details></li>'
        )
    return f'<ol class="frames">{"".join(out)}</ol>'


_RELATION = {
    "cause": "The above exception was the direct cause of the following exception:",
    "context": "During handling of the above exception, another exception occurred:",
}


def _all_frames(blocks: list[ExceptionBlock]) -> list[Frame]:
    """The frames of every exception in ``blocks``, group members' too."""
    frames: list[Frame] = []
    for block in blocks:
        frames.extend(block.frames)
        for member in block.members:
            frames.extend(_all_frames(member))
    return frames


def _render_chain(
    blocks: list[ExceptionBlock], console: bool, link: Link | None = None
) -> str:
    out = []
    for block in blocks:
        notes = "".join(f'<p class="note">{_e(n)}</p>' for n in block.notes)
        members = ""
        if block.members or block.hidden_members:
            items = "".join(
                f'<li class="member"><p class="member-title">Sub-exception {i} of '
                f"{len(block.members) + block.hidden_members}</p>"
                f"{_render_chain(member, console, link)}</li>"
                for i, member in enumerate(block.members, 1)
            )
            more = (
                f'<li class="member">... and {block.hidden_members} more</li>'
                if block.hidden_members
                else ""
            )
            members = f'<ol class="members">{items}{more}</ol>'
        frames = (
            '<p class="tb-title">Traceback (most recent call last):</p>'
            f"{_render_frames(block.frames, console, link)}"
            if block.frames
            else ""
        )
        out.append(
            f'<div class="exception">{frames}'
            f'<p class="exc-line"><strong>{_e(block.type_name)}</strong>: '
            f"{_e(block.message)}</p>{notes}{members}</div>"
        )
        if block.relation:
            out.append(f'<p class="relation">{_e(_RELATION[block.relation])}</p>')
    return "".join(out)


def _table(rows: t.Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>" if body else '<p class="empty">(none)</p>'


def request_url(environ: WSGIEnvironment) -> str:
    """The URL of the request, rebuilt from the WSGI environment, with the
    values of secret-looking query parameters redacted (``?token=********``)."""
    from urllib.parse import quote

    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING", "")
    return redact_text(f"{scheme}://{host}{path}" + (f"?{query}" if query else ""))


def _shown(name: str, value: str) -> str:
    """``value`` as the request sections show it: hidden under a secret name."""
    return REDACTED if is_secret_name(name) else value


def request_sections(
    environ: WSGIEnvironment,
    form_body: bytes | None,
    form_fields: list[tuple[str, str, bool]] | None = None,
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The request as ``(section title, rows)``: headers, query, form, cookies.

    Values under secret-looking names are redacted.

    :param environ: the WSGI environment of the failed request.
    :param form_body: the URL-encoded form body, when the debugger kept a copy.
    :param form_fields: the fields of a multipart body, as ``(name, shown
        value, is a file)``; files are described, not shown.
    """
    headers = []
    for key, value in sorted(environ.items()):
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-").title()
        else:
            continue
        headers.append((name, _shown(name, redact_text(str(value)))))
    query = [
        (k, _shown(k, v))
        for k, v in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    ]
    form: list[tuple[str, str]] = []
    if form_fields is not None:
        form = [
            (name, value if is_file else _shown(name, value))
            for name, value, is_file in form_fields
        ]
    elif form_body is not None:
        text = form_body.decode("utf-8", "replace")
        form = [(k, _shown(k, v)) for k, v in parse_qsl(text, keep_blank_values=True)]
    elif environ.get("CONTENT_LENGTH") not in (None, "", "0"):
        form = [("(body)", f"{environ.get('CONTENT_TYPE', '')}, not shown")]
    cookies = []
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            cookies.append((name, _shown(name, value)))
    return [
        ("Headers", headers),
        ("Query string", query),
        ("Form", form),
        ("Cookies", cookies),
    ]


def find_config(app: object) -> t.Mapping[str, t.Any] | None:
    """The ``config`` mapping of ``app`` or of an app it wraps (a few levels).

    :param app: the WSGI application given to the debugger.
    """
    seen = 0
    current: object = app
    while current is not None and seen < 5:
        config = getattr(current, "config", None)
        if isinstance(config, t.Mapping):
            return config
        current = getattr(current, "app", None) or getattr(current, "wsgi_app", None)
        seen += 1
    return None


def render_page(
    tb: Traceback,
    *,
    environ: WSGIEnvironment,
    prefix: str,
    secret: str,
    console_reason: str | None,
    form_body: bytes | None = None,
    form_fields: list[tuple[str, str, bool]] | None = None,
    config: t.Mapping[str, t.Any] | None = None,
    notice: str | None = None,
    link: Link | None = None,
    markdown: str | None = None,
) -> str:
    """The error page for ``tb``.

    :param tb: the traceback to show.
    :param environ: the request that failed (shown in its own section).
    :param prefix: the URL prefix of the debugger's own endpoints.
    :param secret: the page's secret, sent back with every console request.
    :param console_reason: ``None`` when the console may be opened, else the
        sentence that says why it is off.
    :param form_body: a copy of a URL-encoded request body, if kept.
    :param form_fields: the fields of a multipart body, if noted.
    :param config: the application's configuration, if any.
    :param notice: a warning about the console, shown under its status line
        (unlocking refused after too many wrong PINs).
    :param link: gives the URL that opens a file and line in the editor; each
        frame's place links to it.
    :param markdown: the text the **Copy as Markdown** button copies.
    """
    last = tb.last
    console = console_reason is None
    where = ""
    user_frames = [f for f in last.frames if not f.library] or last.frames
    if user_frames:
        f = user_frames[-1]
        place = f"<code>{_e(f.filename)}:{f.lineno}</code>"
        url = None if link is None else link(f.filename, f.lineno)
        if url is not None:
            place = (
                f'<a class="editor-link" href="{_e(url)}" '
                f'title="Open in your editor">{place}</a>'
            )
        where = f'<p class="where">in <code>{_e(f.function)}</code> at {place}</p>'
    method = _e(environ.get("REQUEST_METHOD", "GET"))
    frames = _all_frames(tb.chain)
    status = (
        '<p class="console-status on">Each frame has a Python console '
        "(<code>&gt;_ console</code>); it asks for the PIN printed in the terminal."
        "</p>"
        if console
        else f'<p class="console-status off">{_e(console_reason or "")}</p>'
    )
    if notice:
        status += f'<p class="console-status off">{_e(notice)}</p>'
    if not frames:
        # An error with no frame to show (a failed Django system check): no
        # console to speak of.
        status = ""
    library_button = (
        '<button type="button" id="toggle-library">Show library frames</button>'
        if any(f.library for f in frames)
        else ""
    )
    sections = "".join(
        f"<details><summary>{_e(title)}</summary>{_table(rows)}</details>"
        for title, rows in request_sections(environ, form_body, form_fields)
    )
    markdown_button = markdown_html = ""
    if markdown is not None:
        markdown_button = (
            '<button type="button" id="copy-markdown">Copy as Markdown</button>'
        )
        markdown_html = (
            '<section class="plain"><details><summary>Markdown</summary>'
            f'<textarea id="markdown-text" readonly rows="12">{_e(markdown)}'
            "</textarea></details></section>"
        )
    config_html = ""
    if config is not None:
        rows = [(str(k), redact(k, v)) for k, v in sorted(config.items(), key=str)]
        config_html = (
            '<section class="config"><details><summary>App config</summary>'
            f"{_table(rows)}</details></section>"
        )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(last.type_name)}: {_e(last.message[:120])}"
        " (citus debugger)</title>"
        f'<link rel="stylesheet" href="{_e(prefix)}/shared/debugger.css">'
        f'<script src="{_e(prefix)}/shared/debugger.js" defer></script>'
        "</head>"
        f'<body data-prefix="{_e(prefix)}" data-secret="{_e(secret)}" '
        f'data-traceback="{_e(tb.id)}" data-console="{"on" if console else "off"}">'
        '<header class="error">'
        f'<h1 class="exc-type">{_e(last.type_name)}</h1>'
        f'<p class="exc-message">{_e(last.message)}</p>{where}'
        f'<p class="request-line">{method} <code>{_e(request_url(environ))}</code></p>'
        "</header>"
        f'<div id="pin-box" hidden></div>{status}'
        '<section class="traceback"><div class="toolbar">'
        '<button type="button" id="copy-traceback">Copy plain traceback</button>'
        f"{markdown_button}{library_button}"
        '<span id="copy-status" role="status"></span></div>'
        f"{_render_chain(tb.chain, console, link)}</section>"
        f'<section class="request"><h2>Request</h2>{sections}</section>{config_html}'
        '<section class="plain"><details><summary>Plain traceback</summary>'
        f'<textarea id="plain-traceback" readonly rows="12">{_e(tb.text)}</textarea>'
        "</details></section>"
        f"{markdown_html}"
        "<footer>citus debugger: shown because debug mode is on. "
        "Never run debug mode where others can reach the server.</footer>"
        "</body></html>\n"
    )


def render_console_page(*, prefix: str, secret: str, console_reason: str | None) -> str:
    """The standalone console page (only served when the user turns it on).

    :param prefix: the URL prefix of the debugger's own endpoints.
    :param secret: the page's secret.
    :param console_reason: why the console is off, or ``None``.
    """
    console = console_reason is None
    body = (
        '<div class="frame standalone" data-frame="console">'
        '<div class="console"></div></div>'
        if console
        else f'<p class="console-status off">{_e(console_reason or "")}</p>'
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        "<title>Console (citus debugger)</title>"
        f'<link rel="stylesheet" href="{_e(prefix)}/shared/debugger.css">'
        f'<script src="{_e(prefix)}/shared/debugger.js" defer></script></head>'
        f'<body data-prefix="{_e(prefix)}" data-secret="{_e(secret)}" '
        f'data-traceback="console" data-console="{"on" if console else "off"}" '
        'data-standalone="1">'
        '<header class="error console-header"><h1>Python console</h1>'
        '<p class="exc-message">Runs in the server process. <code>app</code> is the '
        "application; <code>dump(obj)</code> inspects an object.</p></header>"
        f'<div id="pin-box" hidden></div>{body}</body></html>\n'
    )


def render_minimal_page(reason: str) -> str:
    """A 500 page that reveals nothing of the code, with ``reason`` for the user.

    :param reason: one sentence on why the full page is not shown.
    """
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>500 Internal Server Error</title></head><body>"
        "<h1>Internal Server Error</h1>"
        "<p>The server hit an error; its traceback is in the terminal.</p>"
        f"<p>{_e(reason)}</p></body></html>\n"
    )


__all__ = [
    "find_config",
    "render_console_page",
    "render_minimal_page",
    "render_page",
    "request_sections",
    "request_url",
]
