"""What citus knows about the frameworks whose apps it serves.

Each foreign framework has a module of its own here (``flask.py``,
``django.py``, ``bottle.py`` ...), and each answers the same few questions
through one small interface, :class:`Framework`: is this app mine, what is it
called, its routes, its shell context, its debug switch, its static and
template folders, its checks. The CLI, the reloader and the live reload ask
:func:`detect` and the interface; they never import Flask or Django
themselves. A module here imports its framework only once it knows the app is
one of its own (from the app's type, without importing anything).
"""

from __future__ import annotations

import typing as t


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


class Framework:
    """The answers for a plain WSGI app; each framework's module overrides
    what it knows better.

    :param app: the WSGI application as the user named it.
    """

    #: The framework's name as users write it: ``"Flask"``, ``"Django"``.
    name = "WSGI"

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

    def static_folders(self) -> list[tuple[str, str]]:
        """``(url_prefix, folder)`` pairs the app serves static files from."""
        return []

    def template_folders(self) -> list[str]:
        """Folders the app's templates live in."""
        return []

    def templates_changed(self, paths: t.Sequence[str]) -> None:
        """Forget cached templates after ``paths`` changed (no restart)."""


def detect(app: object) -> Framework:
    """The :class:`Framework` for ``app``: the first module that claims it, else
    the plain WSGI answers."""
    for kind in _frameworks():
        if kind.claims(app):
            return kind(app)
    return Framework(app)


def _frameworks() -> list[type[Framework]]:
    """The framework modules, asked in this order."""
    return []
