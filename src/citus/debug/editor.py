"""Links from a traceback to the developer's editor.

``CITUS_EDITOR`` names the editor (:data:`EDITORS`) or gives a URL template
with ``{path}`` and ``{line}``; unset, VS Code's integrated terminal
(``TERM_PROGRAM=vscode``) means VS Code, and anything else means no links.
``CITUS_EDITOR_PATH_MAP`` (``/app=/home/me/shop``, pairs separated by commas)
turns the server's paths into the editor's, for servers in containers and VMs.

The same links go to the error page, the JSON document, and, as OSC 8
hyperlinks (:func:`osc8_traceback`), to tracebacks printed on a terminal that
is known to show them.
"""

from __future__ import annotations

import os
import re
import typing as t
from urllib.parse import quote

#: Environment variable: the editor's name or a URL template.
EDITOR_ENV = "CITUS_EDITOR"
#: Environment variable: ``server=editor`` path prefixes, separated by commas.
PATH_MAP_ENV = "CITUS_EDITOR_PATH_MAP"

#: The editors known by name and their URL templates. ``{path}`` is the
#: absolute path, starting with ``/`` (``/C:/work/app.py`` on Windows) and
#: percent-encoded; ``{line}`` the line number.
EDITORS = {
    "vscode": "vscode://file{path}:{line}",
    "vscode-insiders": "vscode-insiders://file{path}:{line}",
    "cursor": "cursor://file{path}:{line}",
    "pycharm": "pycharm://open?file={path}&line={line}",
    "idea": "idea://open?file={path}&line={line}",
    "sublime": "subl://open?url=file://{path}&line={line}",
    "textmate": "txmt://open?url=file://{path}&line={line}",
    "zed": "zed://file{path}:{line}",
}


class Editor:
    """Turns a file and line into a URL that opens them in an editor.

    :param template: a URL template with ``{path}`` (and usually ``{line}``),
        or ``None`` for no links.
    :param path_map: ``(server prefix, editor prefix)`` pairs.
    :param warnings: lines to print at start about the configuration.
    """

    def __init__(
        self,
        template: str | None,
        path_map: t.Sequence[tuple[str, str]] = (),
        warnings: t.Sequence[str] = (),
    ) -> None:
        self.template = template
        # The longest prefix wins: /app/lib before /app.
        self.path_map = sorted(path_map, key=lambda pair: -len(pair[0]))
        self.warnings = list(warnings)

    @classmethod
    def from_env(cls, environ: t.Mapping[str, str] | None = None) -> Editor:
        """The editor that ``CITUS_EDITOR``, ``CITUS_EDITOR_PATH_MAP`` and
        ``TERM_PROGRAM`` describe.

        :param environ: the environment to read; ``os.environ`` by default.
        """
        env = os.environ if environ is None else environ
        warnings = []
        name = env.get(EDITOR_ENV, "").strip()
        template: str | None
        if not name:
            vscode = env.get("TERM_PROGRAM", "") == "vscode"
            template = EDITORS["vscode"] if vscode else None
        elif name.lower() in EDITORS:
            template = EDITORS[name.lower()]
        elif "{path}" in name:
            template = name
        else:
            template = None
            known = ", ".join(EDITORS)
            warnings.append(
                f"WARNING: {EDITOR_ENV}={name!r} names no editor citus knows, so"
                f" tracebacks have no editor links. Use one of {known}, or a URL"
                " template with {path} and {line}"
                " ('myeditor://open?file={path}&line={line}')."
            )
        pairs = []
        for item in env.get(PATH_MAP_ENV, "").split(","):
            if not item.strip():
                continue
            server, sep, local = item.partition("=")
            if not sep or not server.strip() or not local.strip():
                warnings.append(
                    f"WARNING: {PATH_MAP_ENV} has {item.strip()!r}, which is not"
                    " 'server path=editor path' (pairs separated by commas, as in"
                    " /app=/home/me/shop); it is ignored."
                )
                continue
            pairs.append((server.strip(), local.strip()))
        return cls(template, pairs, warnings)

    def editor_path(self, path: str) -> str:
        """``path`` as the editor sees it, after ``CITUS_EDITOR_PATH_MAP``.

        :param path: a file path on the server.
        """
        for server, local in self.path_map:
            head = server.rstrip("/\\")
            if path == head or path.startswith((head + "/", head + "\\")):
                rest = path[len(head) :]
                if local.endswith(("/", "\\")) and rest:
                    rest = rest[1:]
                return local + rest
        return path

    def url(self, path: str, line: int) -> str | None:
        """The URL that opens ``path`` at ``line`` in the editor, or ``None``
        (no editor configured, or not a real file such as ``<string>``).

        :param path: a frame's file name, as on the server.
        :param line: the line number.
        """
        if self.template is None or not _is_file_path(path):
            return None
        return fill(self.template, self.editor_path(path), line)

    def file_url(self, path: str) -> str | None:
        """A ``file://`` URL for ``path`` (mapped), for terminals without an
        editor configured; ``None`` for names that are no files.

        :param path: a frame's file name.
        """
        if not _is_file_path(path):
            return None
        return "file://" + _url_path(self.editor_path(path))


def _is_file_path(path: str) -> bool:
    return os.path.isabs(path) or bool(re.match(r"[A-Za-z]:[\\/]", path))


def _url_path(path: str) -> str:
    path = path.replace("\\", "/")
    if not path.startswith("/"):
        path = "/" + path  # C:/work/app.py
    # "+" is encoded: in the query parameters of the JetBrains, TextMate and
    # Sublime links it would read as a space.
    return quote(path, safe="/:@,;=~!$'()*")


def fill(template: str, path: str, line: int) -> str:
    """``template`` with ``{path}`` and ``{line}`` replaced.

    The path is written with forward slashes, starts with ``/`` and is
    percent-encoded (spaces as ``%20``, ``+`` as ``%2B``), so that the URL
    stays one URL and reads the same in a path or a query parameter.

    :param template: the URL template.
    :param path: the file's path, as the editor sees it.
    :param line: the line number.
    """
    return template.replace("{path}", _url_path(path)).replace("{line}", str(line))


# --- OSC 8 hyperlinks in terminals -------------------------------------------

#: ``TERM_PROGRAM`` values of terminals that show OSC 8 hyperlinks.
_LINKING_PROGRAMS = frozenset(
    {
        "vscode",
        "iTerm.app",
        "WezTerm",
        "ghostty",
        "Hyper",
        "Tabby",
        "rio",
        "WarpTerminal",
    }
)
#: ``TERM`` values of terminals that show OSC 8 hyperlinks.
_LINKING_TERMS = frozenset(
    {"xterm-kitty", "wezterm", "xterm-ghostty", "foot", "foot-extra", "alacritty"}
)


def terminal_links(environ: t.Mapping[str, str] | None = None) -> bool:
    """Whether the terminal is known to show OSC 8 hyperlinks.

    Known: VS Code, iTerm2, WezTerm, Ghostty, kitty, foot, Alacritty, Windows
    Terminal, Konsole and VTE terminals (GNOME Terminal, Tilix) from 0.50.
    ``FORCE_HYPERLINK=1`` says yes and ``FORCE_HYPERLINK=0`` no, whatever the
    terminal.

    :param environ: the environment to read; ``os.environ`` by default.
    """
    env = os.environ if environ is None else environ
    force = env.get("FORCE_HYPERLINK")
    if force is not None and force != "":
        return force != "0"
    if env.get("TERM_PROGRAM", "") in _LINKING_PROGRAMS:
        return True
    if env.get("TERM", "") in _LINKING_TERMS:
        return True
    if env.get("WT_SESSION") or env.get("KONSOLE_VERSION") or env.get("DOMTERM"):
        return True
    try:
        return int(env.get("VTE_VERSION", "0")) >= 5000
    except ValueError:
        return False


_FILE_LINE = re.compile(r'^(\s*File ")(.+)(", line )(\d+)', re.M)


def osc8_traceback(text: str, editor: Editor) -> str:
    """``text`` (a traceback, already made safe for the terminal) with each
    ``File "path", line N`` turned into an OSC 8 hyperlink.

    The link opens the editor when one is configured, else the file
    (``file://``).

    :param text: the traceback as printed.
    :param editor: where links point.
    """

    def link(match: re.Match[str]) -> str:
        lead, path, middle, line = match.groups()
        url = editor.url(path, int(line)) or editor.file_url(path)
        if url is None:
            return match.group(0)
        # The URL must hold no control character (it ends at ESC \).
        url = re.sub(r"[\x00-\x1f\x7f]", "", url)
        return f"{lead}\x1b]8;;{url}\x1b\\{path}{middle}{line}\x1b]8;;\x1b\\"

    return _FILE_LINE.sub(link, text)


__all__ = [
    "EDITORS",
    "EDITOR_ENV",
    "PATH_MAP_ENV",
    "Editor",
    "fill",
    "osc8_traceback",
    "terminal_links",
]
