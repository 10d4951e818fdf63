"""The application object, :class:`API`: routes, error handlers, WSGI entry point.

An :class:`API` collects view functions with ``@app.route``, matches each request
against its :class:`~citus.routing.Map`, calls the view with the rule's variables
and turns what the view returns into a :class:`~citus.Response`. While a view
runs, ``citus.request`` is the current request (a context variable, so each
thread sees its own). HTTP errors become error pages (or the application's
``@app.errorhandler``); any other exception is re-raised in debug mode, for the
debugger to show, and otherwise logged and answered with a bare 500 page.
:func:`render_template` renders with the app's Jinja2 environment, which
:mod:`citus.templating` makes.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import typing as t
from functools import cached_property

from . import _env
from ._log import echo, show_server_banner
from .exceptions import (
    HTTPException,
    InternalServerError,
    RequestedRangeNotSatisfiable,
    RequestEntityTooLarge,
    RequestRedirect,
    default_exceptions,
)
from .globals import _Proxy, _request_var, request
from .routing import Map, MapAdapter, Rule
from .routing.map import _split_port
from .wrappers.datastructures import Headers
from .wrappers.request import Request
from .wrappers.response import Response, error_response, to_response

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from jinja2 import Environment

    from .testing import Client

__all__ = [
    "API",
    "current_app",
    "render_template",
    "render_template_string",
    "url_for",
]

F = t.TypeVar("F", bound=t.Callable[..., t.Any])

#: Settings every application starts with (``app.config``).
DEFAULT_CONFIG: dict[str, t.Any] = {
    # "localhost:8000": turns on subdomain matching and external URLs.
    "SERVER_NAME": None,
    # Largest request body in bytes; larger bodies get 413. None: no limit.
    "MAX_CONTENT_LENGTH": None,
    # Largest form field (or urlencoded body) kept in memory, in bytes.
    "MAX_FORM_MEMORY_SIZE": 500_000,
    # Most fields and files in one form.
    "MAX_FORM_PARTS": 1000,
    # Uploaded files larger than this go to a temporary file.
    "FORM_MEMORY_THRESHOLD": 500_000,
    # Re-raise unhandled exceptions (None: only in debug mode).
    "PROPAGATE_EXCEPTIONS": None,
    # Scheme of external URLs built outside of a request.
    "PREFERRED_URL_SCHEME": "http",
    # Path the app is mounted at, for URLs built outside of a request.
    "APPLICATION_ROOT": "/",
    # Check templates for changes on each use (None: in debug mode, and under
    # the reloader).
    "TEMPLATES_AUTO_RELOAD": None,
}

_ran_from_cli_warned = False

#: The application handling the current request; set next to
#: ``citus.globals._request_var`` while a request is handled.
_app_var: contextvars.ContextVar[API | None] = contextvars.ContextVar(
    "citus.app", default=None
)

ResponseValue = t.Any
ErrorHandler = t.Callable[[t.Any], ResponseValue]


def _cli_command() -> str:
    """The ``citus`` command that is loading the app (``run``, ``shell`` ...)."""
    import click

    ctx = click.get_current_context(silent=True)
    return ctx.info_name if ctx is not None and ctx.info_name else "run"


def _root_path(import_name: str) -> str:
    module = sys.modules.get(import_name)
    filename = getattr(module, "__file__", None)
    if filename is None and import_name != "__main__":
        import importlib.util

        try:
            spec = importlib.util.find_spec(import_name)
        except (ImportError, ValueError):
            spec = None
        filename = spec.origin if spec is not None else None
    if filename is None or filename in ("built-in", "namespace"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(str(filename)))


class API:
    """A WSGI application built from view functions.

    ::

        from citus import API

        app = API(__name__)

        @app.route("/")
        def hello():
            return "Hello, World!"

    :param import_name: the application module's name, usually ``__name__``;
        it locates the ``static/`` and ``templates/`` folders.
    :param static_folder: the folder served at ``static_url_path``, relative
        to the module's folder; ``None`` serves none.
    :param static_url_path: the URL prefix of static files.
    :param root_path: the folder ``static_folder`` and ``template_folder``
        are relative to (the module's folder by default).
    :param template_folder: the folder of the app's templates (see
        :func:`render_template`), relative to ``root_path`` or absolute.

    Reads ``CITUS_DEBUG`` and ``CITUS_ENV`` to set :attr:`debug`.
    """

    #: The class of ``citus.request``.
    request_class: type[Request] = Request
    #: The class of responses made from view results.
    response_class: type[Response] = Response

    def __init__(
        self,
        import_name: str,
        static_folder: str | None = "static",
        static_url_path: str = "/static",
        root_path: str | None = None,
        template_folder: str | os.PathLike[str] = "templates",
    ) -> None:
        self.import_name = import_name
        #: The folder the app's relative paths start from.
        self.root_path = root_path or _root_path(import_name)
        #: Settings, a dict: ``SERVER_NAME``, ``MAX_CONTENT_LENGTH`` ... (see
        #: :data:`DEFAULT_CONFIG`).
        self.config: dict[str, t.Any] = dict(DEFAULT_CONFIG)
        #: Debug mode: unhandled exceptions propagate (to the debugger).
        #: Starts from ``CITUS_DEBUG``/``CITUS_ENV``; assign to change it.
        self.debug: bool = _env.get_debug_flag()
        #: The rules; ``app.url_map.iter_rules()`` lists them, each with
        #: ``endpoint``, ``methods``, ``rule``, ``host`` and ``subdomain``.
        self.url_map = Map()
        #: Endpoint name -> view function.
        self.view_functions: dict[str, t.Callable[..., ResponseValue]] = {}
        #: Status code or exception class -> handler.
        self.error_handlers: dict[int | type[BaseException], ErrorHandler] = {}
        self.before_request_funcs: list[t.Callable[[], ResponseValue]] = []
        self.after_request_funcs: list[t.Callable[[Response], Response | None]] = []
        #: The folder of the app's templates, an absolute path: ``templates/``
        #: next to the app's module unless ``API(template_folder=...)`` says
        #: otherwise. It need not exist. Tools that watch templates (live
        #: reload) read it; assign to it before the first template is rendered.
        self.template_folder: str = os.path.abspath(
            os.path.join(self.root_path, os.fspath(template_folder))
        )
        self.static_url_path = "/" + static_url_path.strip("/")
        self.static_folder: str | None = None
        if static_folder is not None:
            self.static_folder = os.path.join(self.root_path, static_folder)
            if os.path.isdir(self.static_folder):
                self.add_url_rule(
                    self.static_url_path + "/<path:filename>",
                    endpoint="static",
                    view_func=self.send_static_file,
                )

    def __repr__(self) -> str:
        return f"<API {self.name!r}>"

    @property
    def name(self) -> str:
        """The application's name: the module name, or the script's file name
        when it runs as ``__main__``."""
        if self.import_name == "__main__":
            filename = getattr(sys.modules.get("__main__"), "__file__", None)
            if filename:
                return os.path.splitext(os.path.basename(str(filename)))[0]
        return self.import_name

    @property
    def logger(self) -> logging.Logger:
        """The ``citus`` logger, where unhandled exceptions are logged."""
        return logging.getLogger("citus")

    # -- registering views ------------------------------------------------------

    def route(
        self,
        rule: str,
        methods: t.Iterable[str] | None = None,
        host: str | None = None,
        subdomain: str | None = None,
        endpoint: str | None = None,
        strict_slashes: bool = True,
        defaults: t.Mapping[str, t.Any] | None = None,
    ) -> t.Callable[[F], F]:
        """Register the decorated function as the view of ``rule``.

        ::

            @app.route("/users/<int:user_id>", methods=["GET", "DELETE"])
            def user(user_id): ...

        :param rule: the URL pattern; variables are ``<name>`` or
            ``<converter:name>`` with the converters ``string`` (default),
            ``int``, ``float``, ``path`` and ``uuid``.
        :param methods: the methods it answers (``["GET"]`` when ``None``);
            HEAD comes with GET, OPTIONS is answered automatically.
        :param host: only for requests whose ``Host`` header matches this
            (``"admin.example.com:8000"``; may hold variables).
        :param subdomain: only for this subdomain of ``config["SERVER_NAME"]``
            (``"api"``; may be a variable such as ``"<user>"``).
        :param endpoint: the name for ``url_for``; the function's name by default.
        :param strict_slashes: a rule ending in ``/`` redirects the URL without
            it (308), and a rule without one does not match the URL with one;
            ``False`` lets both forms of the URL reach the view, without a
            redirect.
        :param defaults: extra keyword arguments for the view.
        """

        def decorator(view: F) -> F:
            self.add_url_rule(
                rule,
                endpoint,
                view,
                methods=methods,
                host=host,
                subdomain=subdomain,
                strict_slashes=strict_slashes,
                defaults=defaults,
            )
            return view

        return decorator

    def get(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["GET"])``."""
        return self.route(rule, methods=["GET"], **options)

    def post(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["POST"])``."""
        return self.route(rule, methods=["POST"], **options)

    def put(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["PUT"])``."""
        return self.route(rule, methods=["PUT"], **options)

    def patch(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["PATCH"])``."""
        return self.route(rule, methods=["PATCH"], **options)

    def delete(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["DELETE"])``."""
        return self.route(rule, methods=["DELETE"], **options)

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: t.Callable[..., ResponseValue] | None = None,
        **options: t.Any,
    ) -> None:
        """Register ``view_func`` for ``rule`` (what ``@app.route`` does).

        :raises ValueError: ``endpoint`` already names another function.
        """
        if endpoint is None:
            if view_func is None:
                raise ValueError(
                    f"add_url_rule({rule!r}) needs an endpoint or a view function."
                )
            endpoint = view_func.__name__
        if view_func is not None:
            existing = self.view_functions.get(endpoint)
            if existing is not None and existing != view_func:
                raise ValueError(
                    f"The endpoint {endpoint!r} already belongs to the view"
                    f" {existing.__qualname__!r}: give the new view another"
                    " function name or pass endpoint='...' to @app.route."
                )
        self.url_map.add(Rule(rule, endpoint, **options))  # a bad rule fails here
        if view_func is not None:
            self.view_functions[endpoint] = view_func

    def errorhandler(
        self, code_or_exception: int | type[BaseException]
    ) -> t.Callable[[F], F]:
        """Register the decorated function to answer an error.

        ::

            @app.errorhandler(404)
            def not_found(error):
                return {"error": "not found"}, 404

        The handler receives the exception and returns a response value like a
        view. ``errorhandler(500)`` also receives unhandled exceptions outside
        debug mode (as :class:`~citus.exceptions.InternalServerError` with
        ``original_exception``).

        :param code_or_exception: an HTTP error code (400-599) or an exception
            class (``HTTPException`` catches every HTTP error).
        """

        key = self._handler_key(code_or_exception)

        def decorator(handler: F) -> F:
            self.error_handlers[key] = handler
            return handler

        return decorator

    def register_error_handler(
        self, code_or_exception: int | type[BaseException], handler: ErrorHandler
    ) -> None:
        """Register ``handler`` for an error code or exception class."""
        self.error_handlers[self._handler_key(code_or_exception)] = handler

    @staticmethod
    def _handler_key(
        code_or_exception: int | type[BaseException],
    ) -> int | type[BaseException]:
        key: int | type[BaseException]
        if isinstance(code_or_exception, int) and not isinstance(
            code_or_exception, bool
        ):
            if not 400 <= code_or_exception <= 599:
                raise ValueError(
                    f"errorhandler({code_or_exception!r}): {code_or_exception} is"
                    " not an HTTP error code; use a number from 400 to 599 or an"
                    " exception class."
                )
            key = code_or_exception
        elif isinstance(code_or_exception, type) and issubclass(
            code_or_exception, BaseException
        ):
            if issubclass(code_or_exception, HTTPException) and (
                code_or_exception in default_exceptions.values()
            ):
                key = code_or_exception.code
            else:
                key = code_or_exception
        else:
            raise TypeError(
                f"errorhandler({code_or_exception!r}): give an HTTP error code such"
                " as 404 or an exception class such as ValueError."
            )
        return key

    def before_request(self, func: F) -> F:
        """Call ``func()`` before each view; a non-``None`` result answers
        the request instead of the view."""
        self.before_request_funcs.append(func)
        return func

    def after_request(self, func: F) -> F:
        """Call ``func(response)`` after each view; it returns the response
        to send (or ``None`` to keep it)."""
        self.after_request_funcs.append(func)
        return func

    # -- templates --------------------------------------------------------------

    @cached_property
    def jinja_env(self) -> Environment:
        """The Jinja2 environment of the app's templates, made on first use.

        It loads templates from :attr:`template_folder`, autoescapes HTML-like
        ones (``.html``, ``.htm``, ``.xml``, ``.xhtml``, ``.svg``) and gives
        every template ``url_for`` (this app's :meth:`url_for`), ``request``
        and ``config``. Add filters or globals to it as Jinja's documentation
        shows (``app.jinja_env.filters["money"] = ...``).

        Its ``auto_reload`` is set before each :func:`render_template` from
        ``config["TEMPLATES_AUTO_RELOAD"]``, or when that is ``None`` (the
        default) from debug mode and the reloader: an edited template is then
        used by the next request, without a restart.
        """
        from .templating import create_environment

        environment = create_environment(
            self.template_folder,
            {"url_for": self.url_for, "request": request, "config": self.config},
            auto_reload=self._auto_reload_templates(),
        )
        return environment

    def _auto_reload_templates(self) -> bool:
        """Whether templates are checked for changes on each use.

        Reads ``CITUS_RUN_MAIN`` (through
        :func:`citus.serving.is_running_from_reloader`).
        """
        value = self.config.get("TEMPLATES_AUTO_RELOAD")
        if value is not None:
            return bool(value)
        from .reloader import is_running_from_reloader

        return self.debug or is_running_from_reloader()

    def _templates(self) -> Environment:
        """:attr:`jinja_env`, checking for edits as debug mode says now."""
        environment = self.jinja_env
        environment.auto_reload = self._auto_reload_templates()
        return environment

    # -- URLs -------------------------------------------------------------------

    def create_url_adapter(self, request: Request | None = None) -> MapAdapter:
        """The URL map bound to ``request``'s host, or to ``SERVER_NAME``."""
        server_name = self.config.get("SERVER_NAME")
        if request is not None:
            return self.url_map.bind(
                request.host, server_name, request.script_root, request.scheme
            )
        return self.url_map.bind(
            server_name or "",
            server_name,
            str(self.config.get("APPLICATION_ROOT") or "/"),
            str(self.config.get("PREFERRED_URL_SCHEME") or "http"),
        )

    def url_for(
        self,
        endpoint: str,
        *,
        _external: bool = False,
        _scheme: str | None = None,
        _anchor: str | None = None,
        _method: str | None = None,
        **values: t.Any,
    ) -> str:
        """The URL of ``endpoint``, with ``values`` filling the rule's
        variables and the rest as the query string.

        ``url_for("user", user_id=42, tab="posts")`` gives
        ``/users/42?tab=posts``. The URL is relative unless ``_external=True``
        or the rule is on another subdomain or host. Outside of a request it
        uses ``SERVER_NAME`` for external URLs.

        :raises citus.routing.BuildError: no rule of ``endpoint`` fits.
        """
        request = _request_var.get() if _app_var.get() is self else None
        adapter = self.create_url_adapter(request)
        return adapter.build(
            endpoint,
            values,
            method=_method,
            force_external=_external or _scheme is not None,
            scheme=_scheme,
            anchor=_anchor,
        )

    # -- handling a request -------------------------------------------------------

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """The WSGI entry point: ``app(environ, start_response)``."""
        return self.wsgi_app(environ, start_response)

    def _make_request(self, environ: WSGIEnvironment) -> Request:
        request = self.request_class(environ)
        config = self.config
        request.max_content_length = config.get("MAX_CONTENT_LENGTH")
        request.max_form_memory_size = config.get("MAX_FORM_MEMORY_SIZE")
        request.max_form_parts = config.get("MAX_FORM_PARTS")
        threshold = config.get("FORM_MEMORY_THRESHOLD")
        if threshold is not None:  # 0 is valid: every upload on disk
            request.form_memory_threshold = int(threshold)
        return request

    def _propagate(self) -> bool:
        value = self.config.get("PROPAGATE_EXCEPTIONS")
        return bool(self.debug if value is None else value)

    def wsgi_app(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Handle one request (``__call__`` calls this; wrap it with middleware
        by assigning ``app.wsgi_app = Middleware(app.wsgi_app)``)."""
        request = self._make_request(environ)
        context = contextvars.copy_context()
        try:
            response = context.run(self._respond, request)
            body = response(environ, start_response)
        except BaseException:
            request.close()
            raise
        if request.method == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            request.close()
            return []
        if not response.is_streamed or response.direct_passthrough:
            request.close()
            return body
        return _ContextIterable(body, context, request)

    def _respond(self, request: Request) -> Response:
        _request_var.set(request)
        _app_var.set(self)
        try:
            return self.full_dispatch_request(request)
        except Exception as error:
            if self._propagate():
                raise
            return self.handle_exception(request, error)

    def full_dispatch_request(self, request: Request) -> Response:
        """Run the before-request hooks, the view and the after-request hooks,
        turning HTTP errors (and handled exceptions) into responses."""
        try:
            response = None
            length = request.content_length
            limit = request.max_content_length
            if length is not None and limit is not None and length > limit:
                raise RequestEntityTooLarge(
                    f"The request body ({length} bytes) is larger than the {limit}"
                    " bytes this application accepts."
                )
            for hook in self.before_request_funcs:
                value = hook()
                if value is not None:
                    response = self.make_response(value, hook)
                    break
            if response is None:
                response = self.dispatch_request(request)
        except Exception as error:
            handled = self._answer_user_exception(error)
            if handled is None:
                raise  # keeps the traceback short: the view's frame is last
            response = handled
        for after in self.after_request_funcs:
            response = after(response) or response
        # A header that cannot be sent fails here, where the 500 page (or the
        # debugger) can still say why, rather than inside the server.
        response.check_headers()
        return response

    def dispatch_request(self, request: Request) -> Response:
        """Match the URL, call the view and make its result a response."""
        adapter = self.create_url_adapter(request)
        if request.method == "OPTIONS" and request.environ.get("PATH_INFO") == "*":
            # "OPTIONS * HTTP/1.1" asks about the server as a whole.
            response = self.response_class()
            response.headers["Allow"] = ", ".join(sorted(adapter.all_methods()))
            return response
        rule, values = adapter.match(
            request.path,
            request.method,
            request.query_string.decode("latin-1"),
        )
        request.url_rule = rule  # type: ignore[attr-defined]
        request.view_args = values  # type: ignore[attr-defined]
        request.endpoint = rule.endpoint  # type: ignore[attr-defined]
        if request.method == "OPTIONS" and rule.provide_automatic_options:
            response = self.response_class()
            response.headers["Allow"] = ", ".join(
                sorted(adapter.allowed_methods(request.path))
            )
            return response
        view = self.view_functions[rule.endpoint]
        return self.make_response(view(**values), view)

    def make_response(
        self, value: ResponseValue, view: t.Callable[..., t.Any] | None = None
    ) -> Response:
        """Turn what a view returned into a :class:`~citus.Response`.

        :param value: ``str``/``bytes`` (HTML), ``dict``/``list`` (JSON), a
            ``Response``, an ``HTTPException`` (its error page), an iterator
            of chunks (streamed), or a tuple
            ``(body, status)``, ``(body, headers)`` or ``(body, status, headers)``.
        :param view: the function that returned it, named in errors.
        :raises TypeError: ``value`` is none of those.
        """
        return to_response(value, view, self.response_class)

    def _find_handler(self, error: BaseException) -> ErrorHandler | None:
        if isinstance(error, HTTPException):
            handler = self.error_handlers.get(error.code)
            if handler is not None:
                return handler
        for cls in type(error).__mro__:
            handler = self.error_handlers.get(cls)
            if handler is not None:
                return handler
        return None

    def handle_http_exception(self, error: HTTPException) -> Response:
        """The application's handler for ``error``, else its error page."""
        if isinstance(error, RequestRedirect) or error.response is not None:
            return error_response(error)  # a redirect, or abort(Response(...))
        handler = self._find_handler(error)
        if handler is None:
            return error_response(error)
        response = self.make_response(handler(error), handler)
        if response.status_code == error.code:
            # Keep the headers the status needs (a 405's Allow, a 416's
            # Content-Range) unless the handler set its own.
            for name, value in error.get_headers():
                if name.lower() != "content-type" and name not in response.headers:
                    response.headers.add(name, value)
        return response

    def handle_user_exception(self, error: Exception) -> Response:
        """Answer an exception raised by a view or hook, or re-raise it when
        no handler takes it."""
        response = self._answer_user_exception(error)
        if response is None:
            raise error
        return response

    def _answer_user_exception(self, error: Exception) -> Response | None:
        if isinstance(error, HTTPException):
            return self.handle_http_exception(error)
        handler = self._find_handler(error)
        if handler is None:
            return None
        return self.make_response(handler(error), handler)

    def handle_exception(self, request: Request, error: Exception) -> Response:
        """Answer an unhandled exception outside debug mode: log the traceback
        to the ``citus`` logger and send a 500 page that reveals nothing."""
        self.logger.error(
            "Exception on %s [%s]",
            request.path,
            request.method,
            exc_info=(type(error), error, error.__traceback__),
        )
        server_error = InternalServerError(original_exception=error)
        handler = self._find_handler(server_error)
        if handler is not None:
            try:
                return self.make_response(handler(server_error), handler)
            except Exception:
                self.logger.exception("The error handler for 500 failed too")
        return error_response(server_error)

    def send_static_file(self, filename: str) -> Response:
        """Answer with the file ``filename`` of :attr:`static_folder` (the view
        of ``/static/<path:filename>``), or 404 outside the folder."""
        from .exceptions import abort
        from .globals import request
        from .serving.static import BadPathError, resolve, serve_file

        if self.static_folder is None:
            abort(404)
        try:
            path = resolve(self.static_folder, filename)
        except BadPathError as error:
            abort(error.status)  # 404 (or 400 for NUL), through errorhandlers
        if path is None:
            abort(404)
        status, headers, body = serve_file(request.environ, path)
        if status >= 400:  # 404 (gone meanwhile) or 416: the app's error pages
            close = getattr(body, "close", None)
            if close is not None:
                close()
            if status == 416:
                size = dict(headers).get("Content-Range", "").rpartition("/")[2]
                raise RequestedRangeNotSatisfiable(
                    int(size) if size.isdigit() else None
                )
            abort(status)
        response = self.response_class(body, status=status)
        response.headers = Headers(headers)  # exactly as computed (Content-Length)
        response.direct_passthrough = True
        return response

    # -- tools ----------------------------------------------------------------------

    def test_client(
        self, use_cookies: bool = True, base_url: str | None = None
    ) -> Client:
        """A client that sends requests to this app in-process, without a
        socket: ``app.test_client().get("/")`` (see :mod:`citus.testing`).

        :param use_cookies: keep the cookies the app sets, as a browser does.
        :param base_url: scheme and host of requests given as a path; by
            default ``SERVER_NAME`` when set (``http://localhost:8000``), else
            ``http://localhost``.
        """
        from .testing import Client

        if base_url is None:
            server_name = self.config.get("SERVER_NAME")
            scheme = self.config.get("PREFERRED_URL_SCHEME") or "http"
            base_url = f"{scheme}://{server_name or 'localhost'}"
        return Client(self, base_url=base_url, use_cookies=use_cookies)

    def run(
        self,
        host: str | None = None,
        port: int | None = None,
        debug: bool | None = None,
        load_dotenv: bool = True,
        **options: t.Any,
    ) -> None:
        """Serve the app with the development server until Ctrl+C.

        Call it under ``if __name__ == "__main__":``. Under ``citus run`` (which
        already serves the app), ``citus routes`` or ``citus shell`` it does
        nothing and says so once.

        :param host: the address to listen on; ``SERVER_NAME``'s host or
            ``localhost`` by default.
        :param port: the port; ``SERVER_NAME``'s port or ``8000`` by default.
        :param debug: turn debug mode on or off (the reloader and the
            debugger follow it); ``None`` keeps :attr:`debug`.
        :param load_dotenv: load ``.env`` and ``.citusenv`` first (needs
            python-dotenv).
        :param options: passed to :func:`citus.serving.run_simple`
            (``use_reloader``, ``use_debugger``, ``threaded`` (on by default),
            ``ssl_context``, ``live_reload`` (on in debug mode; ``False``
            turns it off) ...).

        Reads ``CITUS_RUN_FROM_CLI`` (set by ``citus run``, ``routes`` and
        ``shell`` to their own process id), and
        ``CITUS_DEBUG``/``CITUS_ENV`` from ``.env`` files.
        """
        global _ran_from_cli_warned
        if _env.is_run_from_cli():
            from .reloader import is_first_start

            # Once per run: not again in each child the reloader starts.
            if not _ran_from_cli_warned and is_first_start():
                _ran_from_cli_warned = True
                command = _cli_command()
                if command == "run":
                    why = "'citus run' is already serving this app."
                else:
                    why = (
                        f"'citus {command}' loaded this app, and does not serve"
                        " it (that is 'citus run')."
                    )
                echo(
                    f" * Ignoring a call to 'app.run()': {why} Guard it with"
                    " 'if __name__ == \"__main__\":'."
                )
            return
        from . import serving

        if load_dotenv:
            loader = getattr(_env, "load_dotenv", None)
            if loader is not None:
                loader()
                if "CITUS_DEBUG" in os.environ or "CITUS_ENV" in os.environ:
                    self.debug = _env.get_debug_flag()
        if debug is not None:
            self.debug = bool(debug)
        server_name = self.config.get("SERVER_NAME")
        name_host, name_port = (
            _split_port(str(server_name)) if server_name else ("", None)
        )
        if host is None:
            host = name_host or "localhost"
        if port is None:
            port = int(name_port) if name_port else 8000
        options.setdefault("use_reloader", self.debug)
        options.setdefault("use_debugger", self.debug)
        if options["use_debugger"] and self.config.get("PROPAGATE_EXCEPTIONS") is None:
            # The debugger on without debug mode still gets to see errors.
            self.config["PROPAGATE_EXCEPTIONS"] = True
        options.setdefault("threaded", True)
        if options.get("processes", 1) > 1:
            options["threaded"] = False
        if not serving.is_running_from_reloader():
            show_server_banner(self.name, self.debug)
        serving.run_simple(host, int(port), self, **options)


class _ContextIterable:
    """A streamed body whose chunks are produced inside the request's context,
    so that a generator can still read ``citus.request``."""

    def __init__(
        self,
        body: t.Iterable[bytes],
        context: contextvars.Context,
        request: Request,
    ) -> None:
        self._body = body
        self._iterator = iter(body)
        self._context = context
        self._request = request

    def __iter__(self) -> t.Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._context.run(close)
        finally:
            self._request.close()


def url_for(endpoint: str, **values: t.Any) -> str:
    """The URL of ``endpoint`` for the application handling the current request
    (see :meth:`API.url_for`)."""
    app = _app_var.get()
    if app is None:
        raise RuntimeError(
            "citus.url_for() works only while a request is handled: call"
            " app.url_for(...) on the application outside of a request."
        )
    return app.url_for(endpoint, **values)


def _get_app() -> API:
    value = _app_var.get()
    if value is None:
        raise RuntimeError(
            "Working outside of a request: 'citus.current_app' exists only while"
            " a view handles a request. Use the application object itself here."
        )
    return value


#: The application handling the current request, a context-local proxy like
#: ``citus.request``.
current_app: API = t.cast("API", _Proxy(_get_app, "citus.current_app"))


def _app_for(function: str) -> API:
    app = _app_var.get()
    if app is None:
        raise RuntimeError(
            f"citus.{function}() works only while a request is handled: outside"
            " of one, use the application's environment, as in"
            " app.jinja_env.get_template('page.html').render(...)."
        )
    return app


def render_template(template_name: str, /, **context: t.Any) -> str:
    """Render the template ``template_name`` from the current app's
    ``templates/`` folder with ``context``, as a string (HTML for a view to
    return).

    ::

        @app.route("/hello/<name>")
        def hello(name):
            return render_template("hello.html", name=name)

    Besides ``context``, the template sees ``url_for``, ``request`` and
    ``config``. Templates named ``*.html``, ``*.htm``, ``*.xml``, ``*.xhtml``
    or ``*.svg`` are autoescaped: values are HTML-escaped unless marked safe
    (``|safe``, :class:`markupsafe.Markup`). See :attr:`API.jinja_env`.

    :param template_name: the template's path inside the folder, with ``/``
        (``"users/show.html"``).
    :param context: the names the template sees.
    :raises jinja2.TemplateNotFound: no such template (the message names the
        folder).
    :raises jinja2.TemplateError: the template is wrong; its file and line
        are in the traceback.
    :raises RuntimeError: called outside of a request.
    """
    environment = _app_for("render_template")._templates()
    return environment.get_template(template_name).render(context)


def render_template_string(source: str, /, **context: t.Any) -> str:
    """Render the template ``source`` (Jinja2 syntax) with ``context``, as a
    string, like :func:`render_template`; it is autoescaped.

    ::

        return render_template_string("<p>Hello {{ name }}!</p>", name=name)

    :param source: the template's text.
    :param context: the names the template sees.
    :raises jinja2.TemplateError: the template is wrong; the debugger shows
        its lines.
    :raises RuntimeError: called outside of a request.
    """
    from .templating import render_string

    return render_string(
        _app_for("render_template_string")._templates(), source, context
    )
