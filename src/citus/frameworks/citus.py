"""citus's own :class:`~citus.API` apps, answered through the same interface as
the foreign frameworks."""

from __future__ import annotations

import typing as t

from . import Framework, Route, existing_folders, is_instance_of, strip_prefix

if t.TYPE_CHECKING:
    from ..app import API


class Citus(Framework):
    """A :class:`citus.API` application."""

    name = "citus"

    @property
    def api(self) -> API:
        """The app, typed."""
        return t.cast("API", self.app)

    @classmethod
    def claims(cls, app: object) -> bool:
        """A :class:`citus.API` instance."""
        return is_instance_of(app, "citus.app.API")

    def set_debug(self, debug: bool) -> None:
        """Set ``app.debug``: unhandled errors propagate to the debugger."""
        self.api.debug = debug

    def routes(self) -> list[Route]:
        """Every rule of the app's URL map."""
        rows = []
        rules: t.Iterable[t.Any] = getattr(self.api, "url_map", None) or ()
        for rule in rules:
            rows.append(
                Route(
                    endpoint=str(rule.endpoint),
                    methods=tuple(sorted(getattr(rule, "methods", None) or ())),
                    rule=str(rule.rule),
                    host=str(getattr(rule, "host", None) or ""),
                    subdomain=str(getattr(rule, "subdomain", None) or ""),
                )
            )
        return rows

    def static_folders(self) -> list[tuple[str, str]]:
        """The app's ``static/`` folder at ``static_url_path``, if it exists."""
        folder = self.api.static_folder
        if folder is None:
            return []
        prefix = strip_prefix(self.api.static_url_path)
        return [(prefix, found) for found in existing_folders([folder])]

    def template_folders(self) -> list[str]:
        """The app's ``templates/`` folder, if it has one."""
        return existing_folders([self.api.template_folder])

    def templates_changed(self, paths: t.Sequence[str]) -> None:
        """Empty the app's Jinja template cache, if it has made one."""
        # jinja_env is a cached property: only an environment already made.
        env = vars(self.api).get("jinja_env")
        cache = getattr(env, "cache", None)
        if cache is not None:
            cache.clear()
