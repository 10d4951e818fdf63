"""The ``citus`` / ``cts`` command line: the click group :func:`main`.

The group reads ``--app`` (``CITUS_APP``), ``--debug/--no-debug`` and
``--env-file`` (``CITUS_ENV_FILE``), loads ``.env`` and ``.citusenv`` before any
other option is read (so that they can set ``CITUS_APP`` or
``CITUS_RUN_PORT``), puts the current folder on :data:`sys.path`, and hands an
:class:`~citus.cli.commands.AppInfo` to the subcommands in
:mod:`citus.cli.commands`. App discovery lives in :mod:`citus.cli.discovery`,
lazy and eager loading in :mod:`citus.cli.loader`.
"""

from __future__ import annotations

import os
import sys
import typing as t

import click
from click.core import ParameterSource

from .. import __version__
from .._env import (
    EnvFileError,
    dotenv_origin,
    get_debug_flag,
    load_dotenv,
    mark_run_from_cli,
)
from .._log import echo
from .commands import AppInfo, routes_command, run_command, shell_command
from .discovery import ensure_cwd_importable
from .errors import errors_command

__all__ = ["main"]


def _load_env_files(ctx: click.Context, param: click.Parameter, value: t.Any) -> t.Any:
    """Load ``--env-file``, ``.env`` and ``.citusenv`` before other options."""
    if ctx.resilient_parsing:
        return value
    try:
        os.getcwd()
    except FileNotFoundError:
        raise click.ClickException(
            "The current folder no longer exists (it was deleted or moved"
            " away). Go to your project's folder and run citus again."
        ) from None
    if value is not None:
        try:
            import dotenv  # noqa: F401
        except ImportError:
            raise click.BadParameter(
                f"{value!r} cannot be read without python-dotenv. Install it:"
                " pip install 'citus[dotenv]'.",
                ctx=ctx,
                param=param,
            ) from None
    try:
        load_dotenv(value)
    except EnvFileError as error:
        raise _EnvFileUnreadable(str(error)) from None
    ctx.meta[_ENV_LOADED] = True
    return value


class _EnvFileUnreadable(click.ClickException):
    """A ``.env``-style file that cannot be read: one line, exit status 2."""

    exit_code = 2


def _set_debug(ctx: click.Context, param: click.Parameter, value: t.Any) -> t.Any:
    if value is not None and not ctx.resilient_parsing:
        os.environ["CITUS_DEBUG"] = "1" if value else "0"
    return value


#: ``ctx.meta`` keys: the env files were loaded; the group's options as given.
_ENV_LOADED = "citus.env_loaded"
_GIVEN = "citus.given_options"


class CitusGroup(click.Group):
    """The ``citus`` group: its own commands, then the app's (``app.cli`` of a
    Flask app, with its blueprints' commands), as ``flask`` finds them.

    A name that is not one of citus's commands loads the app (``--app``,
    ``CITUS_APP``, or the defaults) and asks its framework for a command of
    that name, run inside the app's context (Flask's application context).
    The help lists the app's commands too, wherever ``--app`` stands.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Note the group's options as given, then parse them as click does.

        click runs ``--help`` as soon as it is processed, which may be before
        ``--app`` and ``--env-file`` are; the help reads them from this note.
        """
        if not ctx.resilient_parsing:
            try:
                given, _, _ = self.make_parser(ctx).parse_args(args=list(args))
            except click.ClickException:
                given = {}  # the real parse below says what is wrong
            ctx.meta[_GIVEN] = given
        return super().parse_args(ctx, args)

    def _app_reference(self, ctx: click.Context) -> str | None:
        """The app the help is about: ``--app`` wherever it stands, else
        ``CITUS_APP`` (from the environment or the env files, loaded now if
        the help came before them)."""
        given: dict[str, t.Any] = ctx.meta.get(_GIVEN, {})
        if not ctx.meta.get(_ENV_LOADED):
            for param in self.get_params(ctx):
                if param.name == "env_file":
                    try:
                        param.handle_parse_result(ctx, given, [])
                    except click.ClickException:
                        pass  # running a command says what is wrong
        reference = (
            ctx.params.get("app") or given.get("app") or os.environ.get("CITUS_APP")
        )
        return reference.strip() if reference and reference.strip() else None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """citus's command ``cmd_name``, else the app's, else ``None``."""
        command = super().get_command(ctx, cmd_name)
        if command is not None or ctx.resilient_parsing:
            return command
        return _app_command(ctx, cmd_name)

    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        """citus's commands, then those of the app named by ``--app`` or
        ``CITUS_APP``, if it loads and has any."""
        super().format_commands(ctx, formatter)
        reference = self._app_reference(ctx)
        if reference is None:
            return
        group = _app_group(reference)
        if group is None:
            return
        rows = []
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 20)))
        if rows:
            with formatter.section(f"Commands of the app {reference!r}"):
                formatter.write_dl(rows)


def _app_group(reference: str) -> click.Group | None:
    """The app's own commands, for the help; ``None`` if the app does not
    load, after saying why on stderr (as ``flask --help`` does): the help
    itself is still printed."""
    from ..frameworks import detect
    from .discovery import NoAppError, locate_app
    from .loader import format_load_error

    ensure_cwd_importable()
    mark_run_from_cli()
    try:
        app, _ = locate_app(reference)
    except KeyboardInterrupt:
        raise
    except NoAppError as error:
        echo(f"Error: {error.format_message()}", err=True)
        return None
    except BaseException as error:
        echo(format_load_error(error), err=True)
        return None
    return detect(app).commands()


def _app_command(ctx: click.Context, cmd_name: str) -> click.Command | None:
    """The app's own command ``cmd_name``, with the app's context pushed for
    as long as ``ctx`` lasts; ``None`` if the app has none (or cannot load)."""
    from ..frameworks import detect
    from .discovery import NoAppError, locate_app
    from .loader import format_load_error

    reference = ctx.params.get("app")
    reference = reference.strip() or None if reference else None
    ensure_cwd_importable()
    mark_run_from_cli()
    try:
        app, _ = locate_app(reference)
    except NoAppError as error:
        if reference is not None:
            echo(f"Error: {error.format_message()}", err=True)
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        echo(format_load_error(error), err=True)
        return None
    framework = detect(app)
    group = framework.commands()
    if group is None:
        return None
    command = group.get_command(ctx, cmd_name)
    if command is not None:
        framework.set_debug(get_debug_flag())
        ctx.with_resource(framework.app_context())
    return command


@click.group(
    cls=CitusGroup,
    invoke_without_command=True,
    # -h is help too, except in citus run, where it is --host (as in flask).
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Run 'citus COMMAND --help' for a command's options."
    " Docs: the 'Command line' page of the citus documentation.",
)
@click.option(
    "--app",
    "-A",
    metavar="IMPORT",
    envvar="CITUS_APP",
    help="The app to use: 'hello', 'hello.py', 'hello:app',"
    " 'hello:create_app(\"dev\")'.  [default: wsgi.py, then app.py]",
)
@click.option(
    "--debug/--no-debug",
    default=None,
    callback=_set_debug,
    help="Debug mode: reloader and debugger on."
    "  [default: off, or CITUS_DEBUG/CITUS_ENV]",
)
@click.option(
    "--env-file",
    "-e",
    type=click.Path(exists=True, dir_okay=False),
    envvar="CITUS_ENV_FILE",
    # Eager: the files are loaded before --app reads CITUS_APP.
    is_eager=True,
    expose_value=False,
    callback=_load_env_files,
    help="Load environment variables from this file, above .env and .citusenv.",
)
@click.version_option(
    __version__,
    "--version",
    prog_name="citus",
    message=f"%(prog)s %(version)s\nPython {sys.version.split()[0]}",
    help="Show the citus and Python versions and exit.",
)
@click.pass_context
def main(ctx: click.Context, app: str | None, debug: bool | None) -> None:
    """citus: run and manage citus and other WSGI applications.

    \b
    Examples:
      citus --app hello run --debug
      CITUS_APP='hello:create_app()' citus run --port 8001
      citus routes
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)
    ensure_cwd_importable()
    origin = None
    if ctx.get_parameter_source("app") is ParameterSource.ENVIRONMENT:
        origin = dotenv_origin("CITUS_APP")
    # "set CITUS_APP=hello " in CMD keeps the trailing space: drop it.
    reference = app.strip() if app else None
    ctx.obj = AppInfo(app_ref=reference or None, debug=debug, app_origin=origin)


main.add_command(run_command)
main.add_command(routes_command)
main.add_command(shell_command)
main.add_command(errors_command)
