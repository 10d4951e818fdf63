"""What citus knows about the frameworks whose apps it serves.

Each foreign framework has a module of its own here (``flask.py``,
``django.py``, ``bottle.py`` ...), and each answers the same few questions
through one small interface, :class:`Framework`: is this app mine, what is it
called, its routes, its shell context, its debug switch, its static and
template folders, its checks. The CLI, the reloader and the live reload ask
:func:`detect` and the interface; they never import Flask or Django
themselves. A module here imports its framework only once it knows the app is
one of its own (from the names of the app's classes, without importing
anything): detecting a plain WSGI function imports no framework at all.
"""

from __future__ import annotations

import contextlib
import os
import typing as t

from ..live import set_framework_lookup as _set_lookup

if t.TYPE_CHECKING:
    import click
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "CheckFailedError",
    "Framework",
    "Route",
    "detect",
    "is_instance_of",
]


class Route(t.NamedTuple):
    """One row of ``citus routes``."""

    #: The endpoint or name (``"auth.login"``); ``""`` when the framework has none.
    endpoint: str
    #: The methods, e.g. ``("GET", "POST")``; empty when any method matches.
    methods: tuple[str, ...]
    #: The rule or URL pattern (``"/auth/login"``).
    rule: str
    #: The host the route is bound to, or ``""``.
    host: str = ""
    #: The subdomain the route is bound to, or ``""``.
    subdomain: str = ""
    #: The view, as a dotted name (``"polls.views.index"``), or ``""``.
    view: str = ""


class CheckFailedError(Exception):
    """The framework's own checks found errors: the app must not serve yet.

    ``citus run`` keeps the server up and shows the message on every page, as
    for an app that fails to load, until a saved fix reloads it.

    :param message: the framework's report, as its own server prints it.
    :param lines: what its server prints before the report (Django's
        ``Performing system checks...``): printed, never shown on the page.
    """

    def __init__(self, message: str, lines: t.Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.lines = list(lines)


class Framework:
    """The answers for a plain WSGI app; each framework's module overrides
    what it knows better.

    :param app: the WSGI application as the user named it.
    """

    #: The framework's name as users write it: ``"Flask"``, ``"Django"``.
    name = "WSGI"

    #: The columns of ``citus routes``: ``(Route field, header)`` pairs.
    route_columns: tuple[tuple[str, str], ...] = (
        ("endpoint", "Endpoint"),
        ("methods", "Methods"),
        ("rule", "Rule"),
    )

    #: The :class:`Route` field ``citus routes`` sorts by when not told;
    #: ``None`` keeps the framework's own order (where the order matters).
    default_sort: str | None = "endpoint"

    def __init__(self, app: object) -> None:
        self.app = app

    @classmethod
    def claims(cls, app: object) -> bool:
        """Whether ``app`` belongs to this framework."""
        return False

    def banner_kind(self) -> str:
        """The word before ``app`` in ``* Serving ... app 'name'``."""
        return "citus"

    def set_debug(self, debug: bool) -> None:
        """Turn the framework's own debug mode on or off (before serving)."""

    def routes(self) -> list[Route] | None:
        """The app's routes, or ``None`` when the framework has no route table."""
        return None

    def shell_context(self) -> dict[str, t.Any]:
        """More names for ``citus shell`` (``app`` is always there)."""
        return {}

    def app_context(self) -> contextlib.AbstractContextManager[object]:
        """What ``citus shell`` and the app's own commands run inside (Flask's
        application context); nothing by default."""
        return contextlib.nullcontext()

    def commands(self) -> click.Group | None:
        """The app's own command-line commands (``citus --app X COMMAND``)."""
        return None

    def static_folders(self) -> list[tuple[str, str]]:
        """``(url_prefix, folder)`` pairs the app serves static files from.

        The prefix starts with ``/`` and has no trailing ``/`` (``""`` for the
        root); folders are absolute paths. Several folders may share a prefix
        (Django's app static folders): the first that has the file serves it.
        """
        return []

    def template_folders(self) -> list[str]:
        """Absolute paths of the folders the app's templates live in (those of
        the framework's own, in its installation, left out)."""
        return []

    def templates_changed(self, paths: t.Sequence[str]) -> None:
        """Forget cached templates after ``paths`` changed (no restart): the
        next render reads them again."""

    def serving_app(self, *, static: bool = True) -> WSGIApplication:
        """The app to serve under ``citus run``: the app itself, or wrapped as
        the framework's own development server wraps it (Django's static
        files in debug mode).

        :param static: serve static files as the framework's own server does
            (``citus run --no-static`` turns it off).

        A wrapper it returns carries this framework (see :func:`detect`).
        """
        return t.cast("WSGIApplication", self.app)

    def check(self) -> list[str]:
        """Run the framework's own start-up checks (Django's system checks),
        as its development server runs them before serving.

        :returns: the lines to print (warnings, notices).
        :raises CheckFailedError: when the checks found errors.
        """
        return []

    def banner_lines(self) -> list[str]:
        """More lines for the start of ``citus run``'s output (Django's
        version and settings module)."""
        return []


def is_instance_of(app: object, *qualified: str) -> bool:
    """Whether one of ``app``'s classes is named ``module.QualName`` in
    ``qualified``, without importing any module."""
    for kind in type(app).__mro__:
        if f"{kind.__module__}.{kind.__qualname__}" in qualified:
            return True
    return False


#: The attribute by which an app that :meth:`Framework.serving_app` wrapped
#: carries its framework.
WRAPPED_ATTRIBUTE = "_citus_framework"


def detect(app: object) -> Framework:
    """The :class:`Framework` for ``app``: the first module that claims it, else
    the plain WSGI answers.

    An app that :meth:`Framework.serving_app` returned (Django's project in its
    static files handler) answers as the app it wraps: the live reload, given
    the app that is served, finds the same folders.
    """
    wrapped = getattr(app, WRAPPED_ATTRIBUTE, None)
    if isinstance(wrapped, Framework):
        return wrapped
    for kind in _frameworks():
        if kind.claims(app):
            return kind(app)
    return Framework(app)


def _known(app: object) -> Framework | None:
    """The framework that claims ``app``, or ``None`` for a plain WSGI app."""
    found = detect(app)
    return None if type(found) is Framework else found


def _frameworks() -> list[type[Framework]]:
    """The framework modules, asked in this order."""
    from .bottle import Bottle
    from .citus import Citus
    from .django import Django
    from .falcon import Falcon
    from .flask import Flask
    from .pyramid import Pyramid

    return [Citus, Flask, Django, Bottle, Falcon, Pyramid]


def existing_folders(paths: t.Iterable[str | os.PathLike[str]]) -> list[str]:
    """The absolute, normalised paths among ``paths`` that are folders, in
    order and without repeats."""
    seen: list[str] = []
    for path in paths:
        full = os.path.abspath(os.fspath(path))
        if os.path.isdir(full) and full not in seen:
            seen.append(full)
    return seen


def strip_prefix(prefix: str) -> str:
    """A URL prefix with one leading ``/`` and no trailing ``/``."""
    return "/" + prefix.strip("/") if prefix.strip("/") else ""


# Live reload (on the serving floor, below this one) asks through this.
_set_lookup(_known)
