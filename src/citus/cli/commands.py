"""The ``citus`` subcommands: ``run``, ``routes`` and ``shell``.

Each command reads the app reference and the group's debug flag from
:class:`AppInfo` (the click context's ``obj``), which :func:`citus.cli.main`
fills in. ``run`` resolves its options, prints the banner once (in the first
process, never again in a reloader child), and hands over to
:func:`citus.serving.run_simple`.
"""

from __future__ import annotations

import os
import sys
import typing as t
from pathlib import Path

import click
from click.core import ParameterSource

from .. import reloader
from .._compat import enable_tab_completion
from .._env import get_debug_flag, mark_run_from_cli, parse_bool
from .._log import echo, show_server_banner
from .discovery import (
    AppModuleNotFoundError,
    check_reference,
    locate_app,
    split_reference,
)
from .loader import (
    FailedApp,
    format_load_error,
    load_app_for_serving,
    prepare_for_serving,
    supervisor_app,
)
from .params import CertParamType, SeparatedPathList, check_ssl_options, run_option

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from ..frameworks import Framework, Route

#: ``citus run``'s default host: both 127.0.0.1 and ::1 where there is IPv6.
DEFAULT_HOST = "localhost"
#: ``citus run``'s default port.
DEFAULT_PORT = 8000


class AppInfo:
    """What the group knows before a command runs: the app and the debug flag.

    :param app_ref: ``--app`` / ``CITUS_APP``, or ``None`` for the defaults.
    :param debug: the group's ``--debug/--no-debug``, or ``None`` if not given.
    :param app_origin: the ``.env``-style file that set ``CITUS_APP``, if one
        did (see :func:`citus._env.dotenv_origin`).
    """

    def __init__(
        self,
        app_ref: str | None = None,
        debug: bool | None = None,
        app_origin: Path | None = None,
    ):
        self.app_ref = app_ref
        self.debug = debug
        self.app_origin = app_origin

    def explain_not_found(
        self, error: AppModuleNotFoundError
    ) -> AppModuleNotFoundError:
        """``error``, saying where ``CITUS_APP`` came from if that file is in
        another folder.

        The nearest ``.env`` or ``.citusenv`` may be found above the current
        folder, while the module it names is importable only from the
        file's own folder: the fix is to run citus there.

        :returns: ``error`` itself, or a new error with the longer message.
        """
        origin = self.app_origin
        if origin is None or origin.parent == Path(os.getcwd()).resolve():
            return error
        return AppModuleNotFoundError(
            f"{error.message} CITUS_APP={self.app_ref!r} was set by"
            f" {str(origin)!r}: run citus in that file's folder"
            f" ({str(origin.parent)!r}), or give --app a path from here."
        )

    def load_app(self) -> tuple[WSGIApplication, str]:
        """Import the app now; a user-code error prints its traceback, exit 1."""
        try:
            return locate_app(self.app_ref)
        except (click.ClickException, KeyboardInterrupt):
            raise
        except BaseException as error:  # sys.exit() at import time too
            echo(format_load_error(error), err=True)
            raise SystemExit(1) from None


def resolve_debug(ctx: click.Context, run_debug: bool | None) -> bool:
    """The debug flag: command line, then ``CITUS_RUN_DEBUG``, ``CITUS_DEBUG``,
    ``CITUS_ENV``.

    ``--debug`` counts the same before or after ``run``; given in both places,
    the one after ``run`` wins.
    """
    info: AppInfo = ctx.ensure_object(AppInfo)
    from_cli = ctx.get_parameter_source("debug") is ParameterSource.COMMANDLINE
    if from_cli and run_debug is not None:
        return run_debug
    if info.debug is not None:
        return info.debug
    if run_debug is not None:
        return run_debug
    value = os.environ.get("CITUS_DEBUG")
    if value is not None and parse_bool(value) is None:
        raise click.UsageError(
            f"CITUS_DEBUG={value!r} is neither on nor off: set it to 1 or 0 (or"
            " true/false, yes/no), or unset it and use --debug."
        )
    return get_debug_flag()


#: The group's options, which users sometimes put after the command.
_GROUP_OPTIONS = {"--app", "-A", "--env-file", "-e"}


class CitusCommand(click.Command):
    """A subcommand that says where a misplaced group option (``--app``) goes,
    and that Ctrl+C ends quietly, with exit status 0, as a normal stop (click
    would print ``Aborted!`` and exit with status 1): ``citus run`` relies on
    it, also for a Ctrl+C while the app is still importing.

    A module that is not found because ``CITUS_APP`` came from a ``.env`` file
    in another folder gets that file named (:meth:`AppInfo.explain_not_found`).
    """

    def invoke(self, ctx: click.Context) -> t.Any:
        """Run the command; Ctrl+C (while the app loads, say) exits 0."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            ctx.exit(0)
        except AppModuleNotFoundError as error:
            if not isinstance(ctx.obj, AppInfo):
                raise
            raise ctx.obj.explain_not_found(error) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse ``args``; ``run --app hello`` gets a usage error with the fix."""
        try:
            return super().parse_args(ctx, args)
        except click.BadOptionUsage as error:
            if error.option_name != "-h" or self.name != "run":
                raise
            raise click.UsageError(
                f"{error.message} In citus run, -h is --host: for help, use"
                " citus run --help.",
                ctx=ctx,
            ) from None
        except click.NoSuchOption as error:
            option = error.option_name
            if option not in _GROUP_OPTIONS:
                raise
            raise click.UsageError(
                f"{option} is an option of citus itself, so it goes before the"
                f" command: citus {option} VALUE {self.name} ...",
                ctx=ctx,
            ) from None


RUN_EPILOG = (
    "Every option can also be set with an environment variable"
    " CITUS_RUN_<OPTION>, e.g. CITUS_RUN_PORT=8001 or CITUS_RUN_RELOAD=0;"
    " the command line wins."
)


@click.command("run", cls=CitusCommand, epilog=RUN_EPILOG)
@run_option(
    "-h",
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    metavar="HOST",
    help="Address to listen on; unix://PATH for a Unix socket.",
)
@run_option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    metavar="PORT",
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@run_option(
    "--cert",
    type=CertParamType(),
    metavar="PATH|adhoc",
    help="Serve HTTPS with this certificate file, or 'adhoc' for a throwaway one.",
)
@run_option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, resolve_path=True),
    metavar="PATH",
    help="The private key file of --cert PATH.",
)
@run_option(
    "--debug/--no-debug",
    default=None,
    help="Debug mode: reloader and debugger on."
    "  [default: off, or CITUS_DEBUG/CITUS_ENV]",
)
@run_option(
    "--reload/--no-reload",
    default=None,
    help="Restart when code changes.  [default: on in debug mode]",
)
@run_option(
    "--debugger/--no-debugger",
    default=None,
    help="Interactive debugger on errors.  [default: on in debug mode]",
)
@run_option(
    "--live-reload/--no-live-reload",
    default=True,
    help="Open pages follow every change (needs the reloader and debugger)."
    "  [default: on in debug mode]",
)
@run_option(
    "--eager-loading/--lazy-loading",
    default=None,
    help="Fail at once if the app cannot load, or serve the error."
    "  [default: eager at start, lazy after a reload]",
)
@run_option(
    "--with-threads/--without-threads",
    default=True,
    help="Serve requests concurrently, on threads.  [default: on]",
)
@run_option(
    "--reloader-type",
    type=click.Choice(["auto", "stat", "watchdog"]),
    default="auto",
    show_default=True,
    help="How to watch files: events (watchdog), polling (stat), or the best.",
)
@run_option(
    "--extra-files",
    type=SeparatedPathList(),
    default=None,
    metavar=f"PATH[{os.pathsep}PATH...]",
    help="More files for the reloader to watch.",
)
@run_option(
    "--exclude-patterns",
    type=SeparatedPathList(),
    default=None,
    metavar=f"PATTERN[{os.pathsep}PATTERN...]",
    help="fnmatch patterns of files the reloader ignores.",
)
@run_option(
    "--static/--no-static",
    default=True,
    help="Serve static files as the framework's own server does (Django's"
    " staticfiles when DEBUG is on).  [default: on]",
)
@run_option(
    "--preload/--no-preload",
    default=True,
    help="Let the reloader's spare process import the libraries the app"
    " used before the next change, so that a reload imports only your code."
    "  [default: on with the reloader]",
)
@click.pass_context
def run_command(
    ctx: click.Context,
    host: str,
    port: int,
    cert: str | None,
    key: str | None,
    debug: bool | None,
    reload: bool | None,
    debugger: bool | None,
    live_reload: bool,
    eager_loading: bool | None,
    with_threads: bool,
    reloader_type: str,
    extra_files: list[str] | None,
    exclude_patterns: list[str] | None,
    static: bool,
    preload: bool,
) -> None:
    """Run the development server.

    Serves the app on http://localhost:8000 (both 127.0.0.1 and ::1). In debug
    mode it restarts when the code changes and shows an interactive debugger
    when a request fails.
    """
    info: AppInfo = ctx.ensure_object(AppInfo)
    debug_flag = resolve_debug(ctx, debug)
    ssl_context = check_ssl_options(cert, key)
    mark_run_from_cli()
    os.environ["CITUS_DEBUG"] = "1" if debug_flag else "0"
    use_reloader = debug_flag if reload is None else reload
    use_debugger = debug_flag if debugger is None else debugger
    in_child = use_reloader and reloader.is_running_from_reloader()
    if not preload:
        from ..reloader.preload import PRELOAD_ENV

        os.environ[PRELOAD_ENV] = "0"  # read by the reloader's supervisor

    app: WSGIApplication
    if in_child:
        # The banner was printed by the supervisor; only load the app
        # (a spare child first waits, warm, until a change needs it).
        reloader.wait_if_spare()
        app = load_app_for_serving(
            info.app_ref,
            eager=eager_loading,
            use_reloader=True,
            debugger=use_debugger,
        )
        app = prepare_for_serving(
            app,
            debug=debug_flag,
            static=static,
            use_reloader=True,
            eager=eager_loading,
            debugger=use_debugger,
        )
    else:
        # A wrong --app is a usage error at once, before anything starts.
        name = check_reference(info.app_ref)
        if use_reloader:
            # The supervisor never imports the app; its children do. The
            # first may be forked from here and run this command line again.
            app = supervisor_app
            from ..reloader import forkstart

            forkstart.allow(_run_again)
        else:
            app = load_app_for_serving(
                info.app_ref,
                eager=eager_loading,
                use_reloader=False,
                debugger=use_debugger,
            )
        show_server_banner(name, debug_flag, _banner_kind(app, name))
        if not use_reloader:
            app = prepare_for_serving(
                app,
                debug=debug_flag,
                static=static,
                use_reloader=False,
                eager=eager_loading,
                debugger=use_debugger,
            )
    if use_debugger and app is not supervisor_app:
        _let_errors_reach_the_debugger(app)

    from ..serving import run_simple

    run_simple(
        host,
        port,
        app,
        use_reloader=use_reloader,
        use_debugger=use_debugger,
        extra_files=extra_files,
        exclude_patterns=exclude_patterns,
        reloader_type=reloader_type,
        threaded=with_threads,
        ssl_context=ssl_context,
        live_reload=live_reload,
    )


def _banner_kind(app: object, name: str) -> str:
    """The app's framework for the banner: asked of the loaded app, or read
    from its module's imports where the app is not loaded in this process
    (the reloader's supervisor, or an app that failed to load)."""
    from ..frameworks import detect
    from ..frameworks.guess import guess_banner_kind

    if app is supervisor_app or isinstance(app, FailedApp):
        return guess_banner_kind(split_reference(name)[0])
    return detect(app).banner_kind()


def _run_again() -> object:
    """Run ``citus`` with this process's arguments (in a forked reloader
    child, as a started child would)."""
    from . import main

    return main.main(args=sys.argv[1:])


def _let_errors_reach_the_debugger(app: object) -> None:
    """``--debugger`` without debug mode: a citus app still lets its unhandled
    exceptions through to the debugger, unless its config decided otherwise."""
    from ..app import API

    if isinstance(app, API) and app.config.get("PROPAGATE_EXCEPTIONS") is None:
        app.config["PROPAGATE_EXCEPTIONS"] = True


@click.command("routes", cls=CitusCommand)
@click.option(
    "--sort",
    "-s",
    type=click.Choice(["endpoint", "methods", "rule"]),
    default=None,
    help="The column to sort the routes by.  [default: endpoint; for Django and"
    " Pyramid, the order they match in]",
)
@click.option(
    "--all-methods",
    is_flag=True,
    help="Also show HEAD and OPTIONS.",
)
@click.pass_obj
def routes_command(info: AppInfo, sort: str | None, all_methods: bool) -> None:
    """Show the app's routes: endpoint, methods and rule.

    For Flask, Bottle, Falcon and Pyramid apps too; for a Django project, its
    URL patterns (pattern, name, view). Host and subdomain columns are added
    when a route uses them.
    """
    mark_run_from_cli()
    app, name = info.load_app()
    from ..frameworks import detect

    framework = detect(app)
    try:
        routes = framework.routes()
    except Exception as error:  # the project's URL configuration is broken
        echo(format_load_error(error), err=True)
        raise SystemExit(1) from None
    if routes is None:
        click.echo(_no_route_table(framework, app, name))
        return
    if not routes:
        hint = " Add one with @app.route." if framework.name == "citus" else ""
        click.echo(f"The app {name!r} has no routes yet.{hint}")
        return
    hidden = set() if all_methods else {"HEAD", "OPTIONS"}
    columns = list(framework.route_columns)
    for field, header in (("host", "Host"), ("subdomain", "Subdomain")):
        if any(getattr(route, field) for route in routes):
            columns.append((field, header))

    def cell(route: Route, field: str) -> str:
        if field != "methods":
            return str(getattr(route, field))
        if not route.methods:
            return "ANY"
        return ", ".join(sorted(set(route.methods) - hidden))

    key = sort or framework.default_sort
    if key is not None:
        routes = sorted(routes, key=lambda r: (cell(r, key), r))
    table = [[cell(route, field) for field, _ in columns] for route in routes]
    headers = [header for _, header in columns]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]

    def format_row(cells: t.Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) for c, w in zip(cells, widths, strict=True)
        ).rstrip()

    click.echo(format_row(headers))
    click.echo(format_row(["-" * w for w in widths]))
    for row in table:
        click.echo(format_row(row))


def _type_name(obj: object) -> str:
    kind = type(obj)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _no_route_table(framework: Framework, app: object, name: str) -> str:
    """Why ``citus routes`` has nothing to show, naming the framework."""
    if framework.name == "WSGI":
        return (
            f"The app {name!r} ({_type_name(app)}) is a WSGI application of no"
            " framework citus knows (citus, Flask, Django, Bottle, Falcon,"
            " Pyramid), so citus has no route table to show for it."
        )
    return (
        f"The app {name!r} is a {framework.name} app ({_type_name(app)}) with"
        f" no route table that citus can show."
    )


def _run_startup_file(path: str, namespace: dict[str, t.Any]) -> None:
    """Run the ``PYTHONSTARTUP`` file in ``namespace``, as ``python`` does: an
    error in it prints its traceback, and the shell opens all the same."""
    try:
        with open(path, "rb") as file:
            source = file.read()
        exec(compile(source, path, "exec"), namespace)
    except Exception as error:
        echo(format_load_error(error), err=True)


@click.command("shell", cls=CitusCommand)
@click.pass_obj
def shell_command(info: AppInfo) -> None:
    """Open a Python shell with the app in the variable 'app'.

    Uses IPython when it is installed, the standard console otherwise. Runs
    the file PYTHONSTARTUP names first, as the plain python shell does.
    """
    mark_run_from_cli()
    app, name = info.load_app()
    from ..frameworks import detect

    framework = detect(app)
    with framework.app_context():
        _interact(app, name, framework)


def _interact(app: object, name: str, framework: Framework) -> None:
    """The shell itself, with ``app`` and the framework's names."""
    banner = (
        f"Python {sys.version.split()[0]} on {sys.platform}\n"
        f"App: {name!r} ({_type_name(app)}), in the variable 'app'."
    )
    # As code.interact() sets it up by default, plus the app.
    namespace: dict[str, t.Any] = {"__name__": "__console__", "__doc__": None}
    extra = {k: v for k, v in framework.shell_context().items() if k != "app"}
    if extra:
        names = sorted(extra)
        shown = ", ".join(names[:12]) + (
            f" and {len(names) - 12} more" if len(names) > 12 else ""
        )
        banner += f"\n{framework.name} names: {shown}."
    namespace.update(extra)
    namespace["app"] = app
    startup = os.environ.get("PYTHONSTARTUP")
    if startup and os.path.isfile(startup):
        _run_startup_file(startup, namespace)
        namespace["app"] = app
    try:
        from IPython import start_ipython  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:  # pragma: no cover - IPython is not a test dependency
        from traitlets.config import Config  # type: ignore[import-not-found]

        config = Config()
        config.TerminalInteractiveShell.banner2 = banner
        start_ipython(argv=[], user_ns=namespace, config=config)
        return

    import code

    if sys.stdin.isatty():
        enable_tab_completion(namespace)
    code.interact(banner=banner, local=namespace, exitmsg="")
