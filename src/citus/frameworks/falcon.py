"""Falcon apps under citus: ``citus routes`` lists the app's routes, from
Falcon's own :mod:`falcon.inspect`, and in debug mode an unhandled error in a
responder reaches citus's debugger instead of Falcon's bare 500 answer."""

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

    def set_debug(self, debug: bool) -> None:
        """In debug mode, let an unhandled error out to citus's debugger, as a
        Flask app in debug mode does: Falcon's own handler for
        :exc:`Exception` (which logs it and answers 500) gives way to one that
        raises it again. A handler the app registered itself is kept, and
        outside debug mode the app is left as it is."""
        if not debug or is_instance_of(self.app, "falcon.asgi.app.App"):
            return  # an ASGI app takes only coroutine handlers
        app = t.cast("t.Any", self.app)
        handlers = getattr(app, "_error_handlers", None)
        default = getattr(app, "_python_error_handler", None)
        if not isinstance(handlers, dict) or default is None:
            return  # Falcon before 3.0 lets such errors out by itself
        if handlers.get(Exception) == default:
            app.add_error_handler(Exception, _raise_again)

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


def _raise_again(req: object, resp: object, error: Exception, params: object) -> None:
    """A Falcon error handler that lets ``error`` out of the app."""
    __traceback_hide__ = True  # the debugger leaves this frame out
    raise error
