"""Bottle apps under citus: ``citus routes`` lists the app's route table."""

from __future__ import annotations

import typing as t

from . import Framework, Route, is_instance_of

#: Bottle's word for a route that answers every method.
_ANY = "ANY"


class Bottle(Framework):
    """A :class:`bottle.Bottle` application."""

    name = "Bottle"
    route_columns = (
        ("rule", "Rule"),
        ("methods", "Methods"),
        ("view", "View"),
        ("endpoint", "Name"),
    )
    default_sort = "rule"

    @classmethod
    def claims(cls, app: object) -> bool:
        """A :class:`bottle.Bottle` instance."""
        return is_instance_of(app, "bottle.Bottle")

    def banner_kind(self) -> str:
        """``Bottle``."""
        return "Bottle"

    def set_debug(self, debug: bool) -> None:
        """In debug mode, do what ``bottle.run(debug=True)`` does (Bottle's
        debug mode: tracebacks on its pages, templates re-read) and let
        unhandled errors reach citus's debugger (``catchall`` off), as
        Flask's debug mode does. Outside it, the app is left as it is."""
        if not debug:
            return
        import bottle

        bottle.debug(True)
        self.app.config["catchall"] = False  # type: ignore[attr-defined]

    def routes(self) -> list[Route]:
        """``app.routes``: rule, method, callback and name of each."""
        rows = []
        for route in t.cast("list[t.Any]", getattr(self.app, "routes", [])):
            method = str(route.method).upper()
            callback = route.callback
            view = f"{callback.__module__}.{callback.__qualname__}"
            rows.append(
                Route(
                    endpoint=str(route.name or ""),
                    methods=() if method == _ANY else (method,),
                    rule=str(route.rule),
                    view=view,
                )
            )
        return rows
