"""The development server: :func:`run_simple`, :func:`make_server` and friends.

:func:`run_simple` is the one place that puts the pieces together: it binds the
listening sockets (:mod:`.sockets`), wraps TLS (:mod:`.tls`), static files
(:mod:`.static`) and the debugger (:mod:`citus.debug`) around the application,
hands control to the reloader's supervisor (:mod:`citus.reloader`) when asked
to, and otherwise serves with :class:`.server.Server` until Ctrl+C.
"""

from __future__ import annotations

import typing as t

from .._compat import stop_on_sigterm
from .._log import echo, warn_development_server
from ..reloader import is_running_from_reloader as is_running_from_reloader
from ._options import check_concurrency
from .sockets import (
    BindError,
    bind_sockets,
    describe_urls,
    release_sockets,
    sockets_from_env,
)
from .tls import TLSConfigError, load_ssl_context
from .tls import make_ssl_devcert as make_ssl_devcert

if t.TYPE_CHECKING:
    import socket
    import ssl

    from _typeshed.wsgi import WSGIApplication

    from ..debug import DebuggedApplication
    from ..live import LiveReload
    from .server import Server as Server
    from .server import make_server as make_server

__all__ = [
    "Server",
    "is_running_from_reloader",
    "make_server",
    "make_ssl_devcert",
    "run_simple",
]


def __getattr__(name: str) -> t.Any:
    """``Server`` and ``make_server``, imported on first use (the reloader's
    supervisor never serves, so it never loads the server)."""
    if name in ("Server", "make_server"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_simple(
    hostname: str,
    port: int,
    application: WSGIApplication,
    use_reloader: bool = False,
    use_debugger: bool = False,
    use_evalex: bool = True,
    extra_files: t.Iterable[str] | None = None,
    exclude_patterns: t.Iterable[str] | None = None,
    reloader_interval: float = 1,
    reloader_type: str = "auto",
    threaded: bool = False,
    processes: int = 1,
    static_files: dict[str, str] | None = None,
    passthrough_errors: bool = False,
    ssl_context: ssl.SSLContext | tuple[str, str] | str | None = None,
    live_reload: bool = True,
) -> None:
    """Serve ``application`` until Ctrl+C, as the development server.

    :param hostname: the host to listen on: an IP address, a host name,
        ``localhost`` (both 127.0.0.1 and ::1 where the machine has IPv6), or
        ``unix://PATH`` for a Unix domain socket.
    :param port: the TCP port; ``0`` picks a free one.
    :param application: the WSGI application to serve.
    :param use_reloader: restart the server when a watched file changes.
    :param use_debugger: show the interactive debugger on unhandled errors.
    :param use_evalex: allow the debugger's console (behind its PIN).
    :param extra_files: more files for the reloader to watch.
    :param exclude_patterns: :mod:`fnmatch` patterns the reloader ignores.
    :param reloader_interval: seconds between polls of the ``stat`` reloader.
    :param reloader_type: ``"auto"``, ``"stat"`` or ``"watchdog"``.
    :param threaded: serve requests concurrently, on threads.
    :param processes: handle requests in this many forked processes (POSIX).
    :param static_files: ``{"/url-prefix": "/folder"}`` served as static files.
    :param passthrough_errors: let the application's exceptions propagate
        out of the server instead of answering 500.
    :param ssl_context: ``"adhoc"``, a ``(cert_file, key_file)`` tuple or an
        :class:`ssl.SSLContext` to serve HTTPS.
    :param live_reload: with the reloader and the debugger both on, open HTML
        pages follow every change (see docs/live-reload.md); ignored
        otherwise.

    .. versionchanged:: 0.2
        Added ``live_reload``.

    Reads ``CITUS_RUN_MAIN`` (set by the reloader in the serving child),
    ``CITUS_SERVER_FDS`` (the sockets the supervisor bound) and, through the
    debugger, ``CITUS_DEBUGGER_PIN``.

    Prints ``WARNING: This is a development server...`` before the
    addresses, unless the debugger is on or ``citus run``/``app.run()``
    printed their banner (which says it, in debug mode off) in this process.

    Exits with status 1 and a one-line explanation, not a traceback, when the
    address cannot be bound. Ctrl+C at any point, even before serving has
    started, makes it return quietly.
    """
    # The caller's mistakes: refused before anything is bound or printed.
    check_concurrency(threaded, processes)
    if use_reloader and not is_running_from_reloader():
        from ..reloader import check_options

        check_options(reloader_type, reloader_interval)
    try:
        user_app = application
        if static_files:
            from .static import StaticFilesMiddleware

            application = StaticFilesMiddleware(application, static_files)
        debugger = None
        if use_debugger:
            from ..debug import DebuggedApplication

            debugger = DebuggedApplication(application, evalex=use_evalex)
            application = debugger
        live = None
        if live_reload and use_reloader and use_debugger:
            if is_running_from_reloader():
                from ..live import LiveReload

                live = LiveReload(application)
                application = live

        try:
            context = load_ssl_context(ssl_context)
        except TLSConfigError as error:
            echo(str(error), err=True)
            raise SystemExit(1) from None
        scheme = "https" if context is not None else "http"

        inherited = sockets_from_env()
        if inherited is not None:
            sockets = inherited
        else:
            try:
                sockets = bind_sockets(hostname, port)
            except BindError as error:
                for line in error.explain():
                    echo(line, err=True)
                raise SystemExit(1) from None
        try:
            if inherited is None:
                if not use_debugger:
                    # Debug mode (the debugger) is for development only anyway.
                    warn_development_server()
                for line in describe_urls(sockets, scheme):
                    echo(line, err=False)
                echo("Press CTRL+C to quit", err=False)
            _serve_sockets(
                sockets,
                inherited is not None,
                application,
                debugger,
                _Live(user_app, live, static_files)
                if live_reload and use_debugger
                else None,
                context,
                use_reloader,
                extra_files,
                exclude_patterns,
                reloader_interval,
                reloader_type,
                threaded,
                processes,
                passthrough_errors,
            )
        finally:
            release_sockets(sockets)  # also after a Ctrl+C before serving started
    except KeyboardInterrupt:
        pass  # Ctrl+C: stopped (the sockets were released on the way out)


def _serve_sockets(
    sockets: list[socket.socket],
    inherited: bool,
    application: WSGIApplication,
    debugger: DebuggedApplication | None,
    live: _Live | None,
    context: ssl.SSLContext | None,
    use_reloader: bool,
    extra_files: t.Iterable[str] | None,
    exclude_patterns: t.Iterable[str] | None,
    reloader_interval: float,
    reloader_type: str,
    threaded: bool,
    processes: int,
    passthrough_errors: bool,
) -> None:
    """Serve on bound ``sockets``: with the reloader's supervisor, or here."""
    if use_reloader and not is_running_from_reloader():
        from ..reloader import ReloaderError, run_with_reloader

        try:
            status = run_with_reloader(
                sockets,
                extra_files=extra_files,
                exclude_patterns=exclude_patterns,
                interval=reloader_interval,
                reloader_type=reloader_type,
                ssl_context=context,
                debugger=debugger,
                live_reload=live is not None,
            )
        except ReloaderError as error:
            echo(f"Error: {error}", err=True)
            status = 1
        finally:
            release_sockets(sockets)  # and the Unix socket file, bound here
        if status:
            raise SystemExit(status)
        return

    if debugger is not None:
        for line in debugger.banner_lines(sockets):
            # The warnings (PIN off, reachable from the network) are red.
            echo(line)

    from .server import Server

    server = Server(
        sockets,
        application,
        threaded=threaded,
        processes=processes,
        ssl_context=context,
        passthrough_errors=passthrough_errors,
    )
    if use_reloader:
        from ..reloader import share_connections, start_child_watcher

        if context is None and processes == 1:
            # Kept-alive connections move on to the next child at a reload.
            server.hand_off = share_connections(server.adopt)
        if live is not None and live.middleware is not None:
            exclude_patterns = _start_live(
                live, exclude_patterns, reloader_type, reloader_interval
            )
        start_child_watcher(
            extra_files=extra_files,
            exclude_patterns=exclude_patterns,
            interval=reloader_interval,
            reloader_type=reloader_type,
            stop_serving=server.shutdown,
        )
    # SIGTERM (kill, an IDE's stop button, docker stop) stops serving as Ctrl+C
    # does, so the Unix socket file this process bound is removed. A reloader
    # child (inherited sockets) keeps the supervisor's arrangement.
    restore_sigterm = None if inherited else stop_on_sigterm(server.shutdown)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if restore_sigterm is not None:
            restore_sigterm()
        server.server_close()
    if use_reloader:
        from ..reloader import EXIT_RELOAD, reload_requested

        if reload_requested():
            raise SystemExit(EXIT_RELOAD)


class _Live(t.NamedTuple):
    """Live reload's part of serving."""

    #: The application as the user gave it (its framework names its folders).
    app: object
    #: The middleware, in the serving process; ``None`` in the supervisor.
    middleware: LiveReload | None
    #: ``run_simple``'s ``static_files``.
    static_files: dict[str, str] | None


def _start_live(
    live: _Live,
    exclude_patterns: t.Iterable[str] | None,
    reloader_type: str,
    interval: float,
) -> list[str]:
    """Start live reload's watch on the app's asset folders; return the
    reloader's exclude patterns, with those folders left out."""
    import os

    from ..live import start
    from ..live.changes import exclude_patterns as asset_patterns
    from ..reloader import (
        BACKEND_ENV,
        BACKENDS,
        make_backend,
        on_reload,
        resolve_backend,
    )

    assert live.middleware is not None
    # Once this child stops accepting for a reload, its streams end: the
    # pages connect again at once and reach the next child.
    on_reload(live.middleware.hub.close_all)
    name = os.environ.get(BACKEND_ENV) or reloader_type
    if name not in BACKENDS:
        name = resolve_backend(reloader_type)
    watcher = start(
        live.app,
        live.middleware,
        lambda: make_backend(name, interval),
        static_files=live.static_files,
    )
    patterns = list(exclude_patterns or ())
    if watcher is not None:
        patterns += asset_patterns(watcher.folders)
    return patterns
