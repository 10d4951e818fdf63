"""Django projects under citus, as under ``manage.py runserver``.

What runserver does, citus does the same way, with Django's own code: the
system checks and the unapplied-migrations notice before serving (after each
reload too), static files through ``django.contrib.staticfiles``'s handler when
that app is installed and ``DEBUG`` is on, and template edits seen by the next
request (the template loaders' caches are reset, as Django's autoreloader
does). Where runserver stops serving (a failed system check), citus keeps the
server up and shows the errors on every page until the fix is saved.
``citus routes`` walks the URL configuration; ``citus shell`` has the models.

Django's ``DEBUG`` setting stays the project's: ``citus run --debug`` turns on
citus's reloader and debugger, never Django's settings.
"""

from __future__ import annotations

import io
import os
import threading
import typing as t

from . import (
    WRAPPED_ATTRIBUTE,
    CheckFailedError,
    Framework,
    Route,
    existing_folders,
    is_instance_of,
    strip_prefix,
)

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: A template folder's state: each file's path, size and mtime.
_Snapshot = frozenset[tuple[str, int, int]]


class SystemCheckError(CheckFailedError):
    """Django's system checks found errors (the name Django gives them)."""


class Django(Framework):
    """A Django project's WSGI handler (``get_wsgi_application()``)."""

    name = "Django"
    route_columns = (("rule", "Pattern"), ("endpoint", "Name"), ("view", "View"))
    # URL patterns match in order: keep Django's.
    default_sort = None

    def __init__(self, app: object) -> None:
        super().__init__(app)
        self._static = True

    @classmethod
    def claims(cls, app: object) -> bool:
        """A :class:`django.core.handlers.wsgi.WSGIHandler` (what
        ``get_wsgi_application()`` returns)."""
        return is_instance_of(app, "django.core.handlers.wsgi.WSGIHandler")

    def banner_kind(self) -> str:
        """``Django``."""
        return "Django"

    def banner_lines(self) -> list[str]:
        """Django's version and the settings module, as runserver says them."""
        import django
        from django.conf import settings

        module = os.environ.get("DJANGO_SETTINGS_MODULE") or getattr(
            settings, "SETTINGS_MODULE", None
        )
        return [f" * Django version {django.get_version()}, using settings {module!r}"]

    def routes(self) -> list[Route]:
        """Every URL pattern, includes flattened: pattern, name (with its
        namespaces) and view."""
        from django.urls import get_resolver

        rows: list[Route] = []
        _walk(get_resolver().url_patterns, "", "", rows)
        return rows

    def shell_context(self) -> dict[str, t.Any]:
        """``settings`` and every installed model by its class name, as
        ``manage.py shell`` imports them."""
        from django.apps import apps
        from django.conf import settings

        names: dict[str, t.Any] = {"settings": settings}
        for model in apps.get_models():
            names.setdefault(model.__name__, model)
        return names

    def _serves_static(self) -> bool:
        """Whether runserver would serve static files: staticfiles installed,
        ``DEBUG`` on, and not turned off."""
        from django.apps import apps
        from django.conf import settings

        return (
            self._static
            and bool(settings.DEBUG)
            and apps.is_installed("django.contrib.staticfiles")
        )

    def static_folders(self) -> list[tuple[str, str]]:
        """The folders the staticfiles finders search (``STATICFILES_DIRS``,
        each app's ``static/``), at ``STATIC_URL``, when they are served."""
        if not self._serves_static():
            return []
        from urllib.parse import urlsplit

        from django.conf import settings
        from django.contrib.staticfiles import finders

        url = urlsplit(str(settings.STATIC_URL or ""))
        if url.netloc or not url.path:
            return []  # served by another host
        base = strip_prefix(url.path)
        pairs: list[tuple[str, str]] = []
        for finder in finders.get_finders():
            locations: list[tuple[str, str]] = []
            if isinstance(finder, finders.FileSystemFinder):
                locations = [(prefix or "", root) for prefix, root in finder.locations]
            elif isinstance(finder, finders.AppDirectoriesFinder):
                locations = [("", s.location) for s in finder.storages.values()]
            for prefix, root in locations:
                for folder in existing_folders([root]):
                    pair = (strip_prefix(f"{base}/{prefix}"), folder)
                    if pair not in pairs:
                        pairs.append(pair)
        return pairs

    def template_folders(self) -> list[str]:
        """The Django template engines' folders (``TEMPLATES`` ``DIRS`` and the
        apps' ``templates/``), without Django's own: the folders Django's
        autoreloader watches."""
        from django.template.autoreload import get_template_directories

        return existing_folders(sorted(get_template_directories()))

    def templates_changed(self, paths: t.Sequence[str]) -> None:
        """Reset the template loaders' caches, as Django's autoreloader does
        when a template changes."""
        from django.template.autoreload import reset_loaders

        reset_loaders()

    def serving_app(self, *, static: bool = True) -> WSGIApplication:
        """The project's handler, seeing template edits at the next request,
        inside staticfiles' handler when runserver would use it.

        :param static: ``False`` for ``citus run --no-static``.
        """
        self._static = static
        app: WSGIApplication = _FreshTemplates(
            t.cast("WSGIApplication", self.app), self
        )
        if self._serves_static():
            from django.contrib.staticfiles.handlers import StaticFilesHandler
            from django.core.exceptions import ImproperlyConfigured

            try:
                app = StaticFilesHandler(app)
            except ImproperlyConfigured as error:
                from .._log import echo

                echo(f" * Static files are not served: {error}")
        setattr(app, WRAPPED_ATTRIBUTE, self)
        return app

    def check(self) -> list[str]:
        """Django's system checks and the unapplied-migrations notice, as
        runserver runs and words them; like runserver, it refuses an empty
        ``ALLOWED_HOSTS`` when ``DEBUG`` is off.

        :raises SystemCheckError: for errors, with Django's report as its
            message.
        """
        from django.conf import settings
        from django.core.management import base
        from django.db import connections

        if not settings.DEBUG and not settings.ALLOWED_HOSTS:
            # runserver refuses to start, in these words.
            raise CheckFailedError(
                "You must set settings.ALLOWED_HOSTS if DEBUG is False."
            )

        out, err = io.StringIO(), io.StringIO()
        command = base.BaseCommand(stdout=out, stderr=err, no_color=True)
        preamble = ["Performing system checks...", ""]
        try:
            command.check(display_num_errors=True)
        except base.SystemCheckError as error:
            message = str(error).removeprefix("SystemCheckError: ")
            raise SystemCheckError(message, preamble) from None
        try:
            command.check_migrations()
        finally:
            # Close what the migration check opened, as runserver does.
            for connection in connections.all():
                connection.close()
        report = err.getvalue() + out.getvalue()
        return [*preamble, *report.strip("\n").split("\n")]


def _dotted(view: object) -> str:
    """``module.QualName`` of a view (its class for a class-based view)."""
    target = getattr(view, "view_class", None) or view
    func = getattr(target, "func", None)  # functools.partial
    if func is not None and not hasattr(target, "__qualname__"):
        target = func
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{name}" if module else str(name)


def _pattern_text(pattern: object) -> str:
    """A pattern's text without a regex's anchors."""
    text = str(pattern)
    text = text.removeprefix("^")
    if text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1]
    return text


def _walk(
    patterns: t.Iterable[t.Any], prefix: str, namespace: str, rows: list[Route]
) -> None:
    """Add a row per pattern in ``patterns``, going into includes."""
    for entry in patterns:
        text = prefix + _pattern_text(entry.pattern)
        if hasattr(entry, "url_patterns"):  # an include(): a URLResolver
            space = namespace
            if getattr(entry, "namespace", None):
                space = f"{namespace}{entry.namespace}:"
            _walk(entry.url_patterns, text, space, rows)
            continue
        name = f"{namespace}{entry.name}" if entry.name else ""
        rows.append(
            Route(
                endpoint=name, methods=(), rule="/" + text, view=_dotted(entry.callback)
            )
        )


class _FreshTemplates:
    """The project's handler, resetting Django's template loaders before a
    request when a file in a template folder changed since the last one.

    Django's cached template loader (on in debug mode since Django 4.1) keeps
    templates until runserver's autoreloader resets it; under citus this
    wrapper does, so that a template edit shows at the next request without
    a restart.
    """

    def __init__(self, app: WSGIApplication, framework: Django) -> None:
        self.app = app
        self.framework = framework
        self._lock = threading.Lock()
        self._folders: list[str] | None = None
        self._snapshot: _Snapshot | None = None

    def _take(self) -> _Snapshot:
        if self._folders is None:
            self._folders = self.framework.template_folders()
        found = []
        for folder in self._folders:
            for root, dirs, files in os.walk(folder):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    path = os.path.join(root, name)
                    try:
                        info = os.stat(path)
                    except OSError:
                        continue
                    found.append((path, info.st_size, info.st_mtime_ns))
        return frozenset(found)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Reset the loaders if a template changed, then call the project."""
        with self._lock:
            snapshot = self._take()
            if self._snapshot is not None and snapshot != self._snapshot:
                self.framework.templates_changed([])
            self._snapshot = snapshot
        return self.app(environ, start_response)
