"""Falcon apps under citus: ``citus routes`` lists the app's routes, from
Falcon's own :mod:`falcon.inspect`."""

from __future__ import annotations

import typing as t

from . import Framework, Route, is_instance_of


class Falcon(Framework):
    """A :class:`falcon.App` (``falcon.API`` in Falcon 2) WSGI application."""

    name = "Falcon"
    route_columns = (("rule", "Route"), ("methods", "Methods"), ("view", "Resource"))
    default_sort = "rule"

    @classmethod
    def claims(cls, app: object) -> bool:
        """A WSGI :class:`falcon.App` (or Falcon 2's ``falcon.API``)."""
        return is_instance_of(app, "falcon.app.App", "falcon.api.API")

    def banner_kind(self) -> str:
        """``Falcon``."""
        return "Falcon"

    def routes(self) -> list[Route] | None:
        """Each route's URI template, its responders' methods and its
        resource class; ``None`` with a Falcon too old to be inspected."""
        try:
            from falcon import inspect
        except ImportError:  # Falcon before 2.0
            return None
        rows = []
        for info in inspect.inspect_routes(t.cast("t.Any", self.app)):
            methods = tuple(sorted(m.method for m in info.methods if not m.internal))
            rows.append(
                Route(
                    endpoint="", methods=methods, rule=info.path, view=info.class_name
                )
            )
        return rows
