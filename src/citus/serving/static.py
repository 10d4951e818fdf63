"""Static files for the development server (placeholder until the framework lands)."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class StaticFilesMiddleware:
    """Serve folders at URL prefixes, pass everything else to ``app``."""

    def __init__(self, app: WSGIApplication, mapping: dict[str, str]) -> None:
        self.app = app
        self.mapping = mapping

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        return self.app(environ, start_response)
