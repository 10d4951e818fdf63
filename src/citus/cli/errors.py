"""``citus errors``: the recent errors of the running ``citus run``, in another
terminal or for a tool (an editor plugin, a coding assistant).

It reads the files that the server's debugger keeps in its private state
folder (:mod:`citus.debug.errorlog`): nothing is opened to the network, and
only this user's servers are found. The server is the one started in the
current folder (or a folder above it), or the one on ``--port``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import typing as t

import click

if t.TYPE_CHECKING:
    from ..debug.editor import Editor

#: Errors shown when ``--last`` is not given.
DEFAULT_LAST = 5
#: How often ``--follow`` looks for new errors (seconds).
FOLLOW_INTERVAL = 0.2


def _no_server(port: int | None) -> click.ClickException:
    if port is not None:
        return click.ClickException(
            f"No citus run of yours with the debugger on serves port {port}."
            " Start one with 'citus run --debug --port "
            f"{port}', or leave out --port to find the one started here."
        )
    return click.ClickException(
        f"No citus run of yours with the debugger on serves {os.getcwd()}."
        " Start one there with 'citus run --debug', or name its port:"
        " citus errors --port 8000."
    )


def _text(document: dict[str, t.Any], links: bool = False) -> str:
    """An error as Python prints it, after a line naming when and which request.

    :param links: turn each ``File "...", line N`` into an OSC 8 hyperlink to
        the place the server's debugger links to (its editor, its path map).
    """
    from .._log import escape_terminal
    from ..debug.editor import osc8_traceback

    when = time.strftime(
        "%d/%b/%Y %H:%M:%S", time.localtime(float(document.get("time", 0)))
    )
    request = document.get("request") or {}
    head = f"[{when}] {request.get('method', '')} {request.get('url', '')}".rstrip()
    body = escape_terminal(str(document.get("traceback", "")).rstrip("\n"))
    if links:
        body = osc8_traceback(body, _recorded_links(document))
    return f"{escape_terminal(head)}\n{body}\n"


def _frames(blocks: object) -> t.Iterator[dict[str, t.Any]]:
    """Every frame of a JSON document's ``chain``, exception groups included."""
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        for frame in block.get("frames") or ():
            if isinstance(frame, dict):
                yield frame
        for member in block.get("exceptions") or ():
            yield from _frames(member)


def _recorded_links(document: dict[str, t.Any]) -> Editor:
    """An :class:`~citus.debug.editor.Editor` that gives each frame the link
    the server recorded (``"editor_url"``), else a ``file://`` URL."""
    from ..debug.editor import Editor

    urls: dict[tuple[str, int], str] = {}
    for frame in _frames(document.get("chain")):
        url, path, line = frame.get("editor_url"), frame.get("file"), frame.get("line")
        if isinstance(url, str) and isinstance(path, str) and isinstance(line, int):
            urls[(path, line)] = url

    class Recorded(Editor):
        def url(self, path: str, line: int) -> str | None:
            return urls.get((path, line))

    return Recorded(None)


def _links_wanted() -> bool:
    """Whether standard output is a terminal known to show OSC 8 hyperlinks
    (and ``NO_COLOR`` is unset), as for the server's own tracebacks."""
    from ..debug.editor import terminal_links

    if os.environ.get("NO_COLOR"):
        return False
    try:
        return sys.stdout.isatty() and terminal_links()
    except (AttributeError, ValueError):
        return False


def _show(document: dict[str, t.Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(document))
    else:
        click.echo(_text(document, links=_links_wanted()))


@click.command(
    "errors",
    epilog="Examples: citus errors; citus errors --last 1 --json;"
    " citus errors --follow --port 8001",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON document per line: the debugger's JSON document of each error.",
)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep running and show new errors as they come.",
)
@click.option(
    "--last",
    "-n",
    type=click.IntRange(min=0),
    default=DEFAULT_LAST,
    show_default=True,
    metavar="N",
    help="Show the last N errors (0 with --follow: only new ones).",
)
@click.option(
    "--port",
    "-p",
    type=click.IntRange(1, 65535),
    default=None,
    metavar="P",
    help="The server on this port, instead of the one started in this folder.",
)
def errors_command(as_json: bool, follow: bool, last: int, port: int | None) -> None:
    """Show the recent errors of the running 'citus run' (newest last).

    Run it in the project's folder, in another terminal: it prints the
    tracebacks the server's debugger caught, as Python prints them. It reads
    only the private files of your own servers and opens no connection.
    """
    from ..debug.errorlog import find_server, read_errors

    server = find_server(None if port is None else str(port))
    if server is None:
        raise _no_server(port)
    documents = read_errors(server)
    shown = documents[-last:] if last else []
    for document in shown:
        _show(document, as_json)
    if not follow:
        if not documents:
            where = ", ".join(server.addresses) or server.cwd
            click.echo(f"No errors yet from the server on {where}.", err=True)
        return
    seen = {str(d.get("id")) for d in documents}
    where = ", ".join(server.addresses) or server.cwd
    click.echo(
        f"Following the errors of the server on {where} (Ctrl+C to stop).",
        err=True,
    )
    try:
        _follow(server, seen, as_json)
    except KeyboardInterrupt:
        pass


def _follow(server: t.Any, seen: set[str], as_json: bool) -> None:
    from .._compat import process_alive
    from ..debug.errorlog import read_errors

    last_stat: tuple[float, int] | None = None
    checked = time.monotonic()
    while True:
        try:
            info = os.stat(server.errors_path)
            current: tuple[float, int] | None = (info.st_mtime, info.st_size)
        except OSError:
            current = None
        if current is not None and current != last_stat:
            last_stat = current
            for document in read_errors(server):
                key = str(document.get("id"))
                if key not in seen:
                    seen.add(key)
                    _show(document, as_json)
        now = time.monotonic()
        if now - checked > 1.0:
            checked = now
            if not process_alive(server.owner):
                click.echo("The server stopped.", err=True)
                return
        time.sleep(FOLLOW_INTERVAL)
