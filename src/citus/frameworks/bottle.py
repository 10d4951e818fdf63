"""Bottle apps under citus: ``citus routes`` lists the app's route table,
``citus run --debug`` turns Bottle's debug mode on, and an edit in a template
folder (``views/``) reloads the open pages."""

from __future__ import annotations

import os
import typing as t

from . import Framework, Route, existing_folders, is_instance_of

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

    def template_folders(self) -> list[str]:
        """The folders of ``bottle.TEMPLATE_PATH`` (``./views/`` by default),
        without the current folder (Bottle's ``./``), which holds the code:
        live reload must not take a code edit for a template edit."""
        import bottle

        here = os.path.join(os.path.abspath(os.getcwd()), "")
        return [
            folder
            for folder in existing_folders(bottle.TEMPLATE_PATH)
            if not here.startswith(os.path.join(folder, ""))
        ]

    def templates_changed(self, paths: t.Sequence[str]) -> None:
        """Empty Bottle's template cache (in debug mode Bottle reads templates
        again on its own; outside it, this makes the edit seen)."""
        import bottle

        bottle.TEMPLATES.clear()
