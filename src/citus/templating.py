"""Jinja2 templates for citus apps: the environment, and templates from strings.

An :class:`~citus.API` makes its environment with :func:`create_environment` on
first use (``app.jinja_env``); ``citus.render_template`` and
``citus.render_template_string`` render with it. The rules live here: templates
load from one folder, those with an HTML-like name (and those made from
strings) are autoescaped, and a template that fails keeps its own file and line
in the traceback (Jinja rewrites the frames), so that the debugger shows it
like Python code.

This module knows nothing of :mod:`citus.app`: the application hands it the
folder and the names that templates see.
"""

from __future__ import annotations

import hashlib
import linecache
import os
import re
import typing as t

import jinja2

__all__ = [
    "AUTOESCAPE_EXTENSIONS",
    "create_environment",
    "remember_source",
    "render_string",
    "select_autoescape",
]

_NEWLINE = re.compile(r"\r\n|\r|\n")

#: Templates whose name ends with one of these are autoescaped.
AUTOESCAPE_EXTENSIONS = (".html", ".htm", ".xml", ".xhtml", ".svg")


def select_autoescape(name: str | None) -> bool:
    """Whether the template ``name`` is autoescaped: HTML-like names
    (:data:`AUTOESCAPE_EXTENSIONS`, any case) and templates made from a string
    (no name), which are most often HTML too.

    :param name: the template's name, ``None`` for one made from a string.
    """
    if name is None:
        return True
    return name.lower().endswith(AUTOESCAPE_EXTENSIONS)


class _FolderLoader(jinja2.FileSystemLoader):
    """Loads templates from one folder, and says which when one is missing."""

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.folder = folder

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, t.Callable[[], bool]]:
        try:
            return super().get_source(environment, template)
        except jinja2.TemplateNotFound:
            if os.path.isdir(self.folder):
                where = f"the folder {self.folder!r}"
            else:
                where = f"{self.folder!r}, which does not exist"
            raise jinja2.TemplateNotFound(
                template,
                f"The template {template!r} is not in {where}: create it there,"
                " or give API(__name__, template_folder=...) the folder that"
                " holds it.",
            ) from None


def create_environment(
    folder: str, names: t.Mapping[str, t.Any], *, auto_reload: bool = False
) -> jinja2.Environment:
    """A Jinja2 environment that loads templates from ``folder``.

    :param folder: the templates' folder, an absolute path; it need not exist
        yet.
    :param names: what every template sees besides its context (the app gives
        ``url_for``, ``request`` and ``config``).
    :param auto_reload: check on each use whether a template's file changed
        (the app turns it on in debug mode).
    """
    environment = jinja2.Environment(
        loader=_FolderLoader(folder),
        autoescape=select_autoescape,
        auto_reload=auto_reload,
    )
    environment.globals.update(names)
    return environment


def render_string(
    environment: jinja2.Environment, source: str, context: t.Mapping[str, t.Any]
) -> str:
    """Render the template ``source`` with ``context``.

    The template is named after its content, ``<template 0123abcd4567>``: that
    is what a traceback shows as its file. When it fails to compile or to
    render, its source goes to :mod:`linecache` under that name (see
    :func:`remember_source`), so that the debugger shows the lines around the
    error as it does for a file.

    :param environment: the environment to compile in.
    :param source: the template's text.
    :param context: the names the template sees, besides the environment's.
    """
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    filename = f"<template {digest[:12]}>"
    try:
        code = environment.compile(source, filename=filename)
        template = environment.template_class.from_code(
            environment, code, environment.make_globals(None)
        )
        return template.render(context)
    except Exception:
        remember_source(filename, source)
        raise


def remember_source(filename: str, source: str) -> None:
    """Put ``source`` in :mod:`linecache` as the lines of ``filename`` (a name
    with no file behind it), where tracebacks look for source.

    :param filename: the name frames carry, such as ``<template 0123abcd4567>``.
    :param source: the text.
    """
    # Lines end where Jinja's lexer ends them, so that line numbers agree.
    lines = [line + "\n" for line in _NEWLINE.split(source)]
    if lines[-1] == "\n":
        lines.pop()  # the source ended with a newline
    # No modification time: linecache.checkcache() then leaves the entry alone.
    linecache.cache[filename] = (len(source), None, lines, filename)
