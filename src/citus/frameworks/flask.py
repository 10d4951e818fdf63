"""Flask apps under citus, as under ``flask run``.

``citus run --debug`` turns Flask's own debug mode on (``app.debug``: template
auto-reload, errors propagated to citus's debugger), ``citus routes`` lists the
URL map as ``flask routes`` does, ``citus shell`` pushes the application
context and adds the app's shell context, and the app's own commands
(``app.cli``, with its blueprints' commands) run as ``citus --app X COMMAND``.
"""

from __future__ import annotations

import contextlib
import typing as t

from . import Framework, Route, existing_folders, is_instance_of, strip_prefix

if t.TYPE_CHECKING:
    import click
    import flask

#: The end of a static route's rule, after its URL prefix.
_STATIC_TAIL = "/<path:filename>"


class Flask(Framework):
    """A :class:`flask.Flask` application (or a subclass)."""

    name = "Flask"

    @property
    def flask_app(self) -> flask.Flask:
        """The app, typed."""
        return t.cast("flask.Flask", self.app)

    @classmethod
    def claims(cls, app: object) -> bool:
        """A :class:`flask.Flask` instance."""
        return is_instance_of(app, "flask.app.Flask")

    def banner_kind(self) -> str:
        """``Flask``, as ``flask run`` says."""
        return "Flask"

    def set_debug(self, debug: bool) -> None:
        """Set ``app.debug``, as ``flask run`` does: templates are re-read when
        they change, and unhandled errors reach the debugger."""
        self.flask_app.debug = debug

    def routes(self) -> list[Route]:
        """Every rule of the URL map: endpoint, methods, rule, host and
        subdomain (the facts ``flask routes`` shows)."""
        rows = []
        for rule in self.flask_app.url_map.iter_rules():
            rows.append(
                Route(
                    endpoint=rule.endpoint,
                    methods=tuple(sorted(rule.methods or ())),
                    rule=rule.rule,
                    host=rule.host or "",
                    subdomain=rule.subdomain or "",
                )
            )
        return rows

    def shell_context(self) -> dict[str, t.Any]:
        """``app``, ``g`` and the app's shell context processors' names."""
        return dict(self.flask_app.make_shell_context())

    def app_context(self) -> contextlib.AbstractContextManager[object]:
        """The application context (``current_app``, ``g``), as ``flask shell``
        and Flask's commands run in."""
        return self.flask_app.app_context()

    def commands(self) -> click.Group:
        """``app.cli`` (the app's commands and its blueprints' ones) and the
        commands installed packages add to ``flask`` (the ``flask.commands``
        entry points), as ``flask`` finds them: on a name both use, the
        package's command wins, as under ``flask``."""
        import click

        cli = self.flask_app.cli
        plugins = _plugin_commands()
        if not plugins:
            return cli
        return click.Group(cli.name, commands={**cli.commands, **plugins})

    def static_folders(self) -> list[tuple[str, str]]:
        """The app's static folder and each blueprint's, at their URL prefixes
        (read from the URL map, so blueprint prefixes are right)."""
        app = self.flask_app
        pairs: list[tuple[str, str]] = []
        for rule in app.url_map.iter_rules():
            if not rule.rule.endswith(_STATIC_TAIL):
                continue
            if rule.endpoint == "static":
                folder = app.static_folder
            elif rule.endpoint.endswith(".static"):
                blueprint = app.blueprints.get(rule.endpoint[: -len(".static")])
                folder = blueprint.static_folder if blueprint else None
            else:
                continue
            if folder is None:
                continue
            for found in existing_folders([folder]):
                prefix = strip_prefix(rule.rule[: -len(_STATIC_TAIL)])
                if (prefix, found) not in pairs:
                    pairs.append((prefix, found))
        return pairs

    def template_folders(self) -> list[str]:
        """The app's ``templates`` folder and its blueprints' ones."""
        app = self.flask_app
        paths: list[str] = []
        for scaffold in [app, *app.blueprints.values()]:
            loader = scaffold.jinja_loader
            searchpath = getattr(loader, "searchpath", None) or []
            paths.extend(searchpath)
        return existing_folders(paths)

    def templates_changed(self, paths: t.Sequence[str]) -> None:
        """Empty Jinja's template cache (in debug mode Jinja would notice on
        its own; outside it, this is what makes the edit seen)."""
        env = vars(self.flask_app).get("jinja_env")
        cache = getattr(env, "cache", None)
        if cache is not None:
            cache.clear()


def _plugin_commands() -> dict[str, click.Command]:
    """The ``flask.commands`` entry points' commands, by name; one that fails
    to load is left out, as a broken plugin should not stop the app's own."""
    from importlib import metadata

    import click

    found: dict[str, click.Command] = {}
    for entry in metadata.entry_points(group="flask.commands"):
        try:
            command = entry.load()
        except Exception:
            continue
        if isinstance(command, click.Command):
            found[entry.name] = command
    return found
