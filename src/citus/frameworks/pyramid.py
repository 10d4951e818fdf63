"""Pyramid apps under citus: ``citus routes`` lists the app's routes (its
routes mapper and the views its introspector relates to them)."""

from __future__ import annotations

import typing as t

from . import Framework, Route, is_instance_of


class Pyramid(Framework):
    """A Pyramid :class:`~pyramid.router.Router` (``config.make_wsgi_app()``)."""

    name = "Pyramid"
    # Routes match in the order they were added (as proutes lists them).
    default_sort = None
    route_columns = (
        ("endpoint", "Name"),
        ("methods", "Methods"),
        ("rule", "Pattern"),
        ("view", "View"),
    )

    @classmethod
    def claims(cls, app: object) -> bool:
        """A :class:`pyramid.router.Router`."""
        return is_instance_of(app, "pyramid.router.Router")

    def banner_kind(self) -> str:
        """``Pyramid``."""
        return "Pyramid"

    def routes(self) -> list[Route] | None:
        """Each route's name and pattern, with the methods and the view of
        the views attached to it; ``None`` for an app without a routes mapper
        (traversal only)."""
        from pyramid.interfaces import IRoutesMapper

        registry = t.cast("t.Any", self.app).registry
        mapper = registry.queryUtility(IRoutesMapper)
        if mapper is None:
            return None
        introspector = registry.introspector
        rows = []
        for route in mapper.get_routes():
            pattern = str(route.pattern)
            if not pattern.startswith("/"):
                pattern = "/" + pattern
            views: list[tuple[tuple[str, ...], str]] = []
            found = introspector.get("routes", route.name)
            for related in introspector.related(found) if found else []:
                if related.category_name != "views":
                    continue
                methods = related.get("request_methods") or ()
                if isinstance(methods, str):
                    methods = (methods,)
                views.append((tuple(sorted(methods)), _dotted(related.get("callable"))))
            for methods, view in views or [((), "")]:
                rows.append(
                    Route(
                        endpoint=str(route.name),
                        methods=methods,
                        rule=pattern,
                        view=view,
                    )
                )
        return rows


def _dotted(view: object) -> str:
    """``module.QualName`` of a view callable, or ``""``."""
    if view is None:
        return ""
    module = getattr(view, "__module__", None) or ""
    name = getattr(view, "__qualname__", None) or type(view).__qualname__
    return f"{module}.{name}" if module else str(name)
