"""Finding the application that ``--app`` (or ``CITUS_APP``) names.

An app reference is ``MODULE[:ATTRIBUTE]``. ``MODULE`` is a dotted module name
(``hello``, ``pkg.module``) or a path (``hello.py``, ``src/hello``); the folder a
path points into becomes importable, and so is the current folder. ``ATTRIBUTE``
is a name (``app``) or a call of a factory with literal arguments
(``create_app("dev", debug=True)``), read with :mod:`ast`, never evaluated.
Without ``ATTRIBUTE`` the module is searched: ``app`` or ``application``, else
its one :class:`citus.API` instance, else a ``create_app`` or ``make_app``
factory. Without any reference, ``wsgi.py`` then ``app.py`` in the current
folder are tried, then the Django project that a ``manage.py`` there names.

Two kinds of failure are kept apart. A :class:`NoAppError` means the reference
does not lead to an application (wrong name, nothing found, not callable): a
usage error with a one-line message. Any other exception raised while the
user's code runs (a syntax error, an :exc:`ImportError` inside their module, an
exception in their factory) propagates unchanged, since it is a bug in their
code and its traceback is what they need.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import sys
import types
import typing as t
from pathlib import Path

import click

from .._env import flask_app_run_ignored

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: The files tried, in order, when no app is named.
DEFAULT_FILES = ("wsgi.py", "app.py")
#: The attributes tried first inside a module.
APP_NAMES = ("app", "application")
#: The factory names tried last inside a module.
FACTORY_NAMES = ("create_app", "make_app")
#: Django's project script, read (never run) when no app is named.
DJANGO_MANAGE = "manage.py"
#: The environment variable that names a Django project's settings module.
DJANGO_SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"
#: The exit status of a usage error (click's).
USAGE_EXIT = 2


class NoAppError(click.ClickException):
    """The app reference does not lead to a WSGI application.

    Shown as one line (``Error: ...``) with exit status 2, like a usage error.
    """

    exit_code = USAGE_EXIT


class AppModuleNotFoundError(NoAppError):
    """The module or file that the app reference names does not exist."""


def split_reference(reference: str) -> tuple[str, str | None]:
    """Split ``MODULE[:ATTRIBUTE]``, keeping Windows drive letters whole.

    A colon followed by a slash or backslash (``C:\\apps``) is part of a path.
    """
    parts = re.split(r":(?![\\/])", reference, maxsplit=1)
    module = parts[0]
    attribute = parts[1] if len(parts) == 2 else None
    return module, attribute


def is_path(module: str) -> bool:
    """Whether ``module`` is a file or folder path rather than a dotted name."""
    return (
        module.endswith(".py")
        or "/" in module
        or os.sep in module
        or (os.altsep is not None and os.altsep in module)
    )


def prepare_path(module: str) -> str:
    """Make the package that holds the path ``module`` importable; its name.

    ``src/hello`` and ``src/hello.py`` give ``hello`` with ``src`` put first on
    :data:`sys.path`; a path inside a package (folders with ``__init__.py``)
    gives the dotted name from the topmost package.
    """
    path = Path(module)
    if path.suffix == ".py":
        path = path.with_suffix("")
    path = Path(os.path.realpath(path))
    if path.name == "__init__":
        path = path.parent
    if not path.name:
        raise NoAppError(
            f"Could not import {module!r}: {str(path)!r} is the root folder, not"
            " a module. Give the app's file or package: --app path/to/hello.py."
        )
    file = path.parent / f"{path.name}.py"
    if not (file.is_file() or path.is_dir()):
        raise AppModuleNotFoundError(
            f"Could not import {module!r}: there is no file"
            f" {str(file)!r} and no folder {str(path)!r}."
            " Check the path, relative to the current folder"
            f" ({os.getcwd()!r})."
        )
    if "." in path.name:
        better = re.sub(r"\W", "_", path.name)
        raise NoAppError(
            f"Could not import {module!r}: {path.name!r} has a dot in its name,"
            " which Python reads as a package and its module. Rename it"
            f" ({better}.py)."
        )
    names = [path.name]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        names.append(folder.name)
        folder = folder.parent
    top = str(folder)
    if sys.path[:1] != [top]:
        sys.path.insert(0, top)
    return ".".join(reversed(names))


def module_exists(name: str) -> bool:
    """Whether the module ``name`` can be found, without running any of its code.

    Parents are looked up with :class:`importlib.machinery.PathFinder`, so no
    package ``__init__`` runs (the reloader's supervisor never imports the app).
    """
    search: list[str] | None = None
    parts = name.split(".")
    for index in range(len(parts)):
        dotted = ".".join(parts[: index + 1])
        if dotted in sys.modules:
            module = sys.modules[dotted]
            search = list(getattr(module, "__path__", []) or [])
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec(dotted, search)
            if spec is None and index == 0:
                # Other finders (an editable install's, a zip's) run no code
                # for a top-level name either.
                spec = importlib.util.find_spec(dotted)
        except (ImportError, ValueError):
            return True  # let the import itself tell what is wrong
        if spec is None:
            return False
        search = list(spec.submodule_search_locations or [])
    return True


def _not_found(module: str, missing: str) -> str:
    """The message for a module ``module`` that cannot be found.

    ``hello.app``, where ``hello`` is a plain module (not a package), is most
    likely ``hello:app`` misspelt: the message says so (found without running
    ``hello``).
    """
    where = f"Could not import {module!r}: no module named {missing!r}"
    parent, dot, last = module.rpartition(".")
    if dot and "." not in parent and parent.isidentifier():
        try:
            spec = importlib.machinery.PathFinder.find_spec(parent)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations is None:
            return (
                f"Could not import {module!r}: {parent!r} is a module, not a"
                f" package, so it has no submodule {last!r}. To name its app, put"
                f" a colon before the name: --app '{parent}:{last}'."
            )
    return (
        f"{where} in the current folder ({os.getcwd()!r}) or on sys.path."
        " Check the name, or give the file's path: --app path/to/hello.py."
    )


def _is_module_missing(error: ModuleNotFoundError, name: str) -> bool:
    """Whether ``error`` is about ``name`` (or a parent) itself, not its imports."""
    missing = error.name or ""
    return missing == name or name.startswith(missing + ".")


def check_module_name(module: str, name: str) -> None:
    """Refuse a ``name`` that Python cannot import (``my-app``, ``:app``).

    :param module: the module part of the reference, as the user wrote it.
    :param name: the dotted name it gives (see :func:`prepare_path`).
    """
    if not module:
        raise NoAppError(
            "The app reference names no module before the colon. Write the"
            " module first: --app 'hello:app'."
        )
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise NoAppError(
            f"Could not import {module!r}: {name!r} is not a module name, which"
            " is made of letters, digits and underscores. Rename the file, or"
            " use a module name (hello, pkg.module) or a path (hello.py)."
        )


def import_module(module: str, reference: str) -> types.ModuleType:
    """Import the module part of ``reference``.

    :raises NoAppError: when the module itself cannot be found.
    :raises Exception: whatever the module's own code raises, unchanged.
    """
    name = prepare_path(module) if is_path(module) else module
    check_module_name(module, name)
    try:
        imported = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if not _is_module_missing(error, name):
            raise
        raise AppModuleNotFoundError(_not_found(module, error.name or name)) from None
    _check_not_shadowed(imported, module)
    return imported


def _check_not_shadowed(imported: types.ModuleType, module: str) -> None:
    """Refuse a module that Python already had, when the user meant their file.

    A ``json.py`` or ``http.py`` in the current folder loses to the standard
    library module of that name that citus itself has imported already.
    """
    if is_path(module):
        base = Path(os.path.abspath(module))
        if base.suffix == ".py":
            base = base.with_suffix("")
    else:
        base = Path(os.getcwd(), *module.split("."))
    if not base.name:
        return
    # The user's file or package, symbolic links resolved on both sides.
    wanted: set[Path] = set()
    if base.with_suffix(".py").is_file():
        wanted.add(Path(os.path.realpath(base.with_suffix(".py"))))
    if base.is_dir():
        wanted.add(Path(os.path.realpath(base)))
    found = getattr(imported, "__file__", None)
    if not wanted or found is None:
        return
    found_path = Path(os.path.realpath(found))
    if found_path in wanted or found_path.parent in wanted:
        return
    raise NoAppError(
        f"Could not import your {module!r}: the name {imported.__name__!r} is"
        f" already taken by {str(found_path)!r}, which Python loaded first."
        f" Rename your file (e.g. {imported.__name__.rsplit('.', 1)[-1]}_app.py)."
    )


def is_wsgi_callable(obj: object) -> bool:
    """Whether ``obj`` can be called as ``obj(environ, start_response)``."""
    if not callable(obj) or isinstance(obj, type):
        return False
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature
        return True
    try:
        signature.bind(object(), object())
    except TypeError:
        return False
    return True


def _describe(obj: object) -> str:
    kind = type(obj)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def check_wsgi(obj: object, where: str, returned: bool = False) -> WSGIApplication:
    """``obj`` if it is a WSGI callable; else a :class:`NoAppError`.

    :param where: the reference that gave ``obj``, quoted, for the message.
    :param returned: ``obj`` is what the factory ``where`` returned.
    """
    if is_wsgi_callable(obj):
        return t.cast("WSGIApplication", obj)
    verb = "returned" if returned else "is"
    what = f"{where} {verb} {_describe(obj)}"
    raise NoAppError(
        f"{what}, not a WSGI application (a callable taking environ and"
        " start_response). Point --app at the application object, or at a"
        " factory that returns one."
    )


def parse_attribute(
    attribute: str, reference: str
) -> tuple[str, list[t.Any], dict[str, t.Any] | None]:
    """Read ``name`` or ``name(literal, key=literal)`` without evaluating it.

    :returns: the name, the positional arguments and the keyword arguments
        (``None`` when there is no call at all).
    :raises NoAppError: for anything else.
    """
    try:
        node = ast.parse(attribute.strip(), mode="eval").body
    except SyntaxError:
        raise NoAppError(
            f"Could not read {attribute!r} in {reference!r} as an attribute name"
            " or a function call. Use 'module:name' or"
            " 'module:create_app(\"arg\")'."
        ) from None
    if isinstance(node, ast.Name):
        return node.id, [], None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        try:
            args = [ast.literal_eval(arg) for arg in node.args]
            kwargs = {
                kw.arg: ast.literal_eval(kw.value)
                for kw in node.keywords
                if kw.arg is not None
            }
        except ValueError:
            raise NoAppError(
                f"The arguments in {attribute!r} are not all literal values."
                " Only strings, numbers, True/False/None, lists, tuples and dicts"
                " are allowed (nothing is evaluated): e.g."
                " 'hello:create_app(\"dev\", debug=True)'."
            ) from None
        if len(kwargs) != len(node.keywords):
            raise NoAppError(
                f"The arguments in {attribute!r} use '**', which is not"
                " supported. Write each keyword argument out: name=value."
            )
        return node.func.id, args, kwargs
    raise NoAppError(
        f"Could not read {attribute!r} in {reference!r}: only a name or a call"
        " of a name is allowed. Use 'module:name' or 'module:create_app()'."
    )


def call_factory(
    factory: t.Callable[..., t.Any],
    args: list[t.Any],
    kwargs: dict[str, t.Any],
    modname: str,
    name: str,
) -> object:
    """Call the factory ``modname:name``; wrong arguments are a :class:`NoAppError`.

    Only a mismatch with the factory's signature is turned into a message; an
    exception raised inside the factory propagates with its traceback.
    """
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as error:
        raise NoAppError(
            f"The factory '{modname}:{name}' cannot be called with"
            f" ({_args_text(args, kwargs)}): {error}. Pass the arguments it"
            f" needs: --app '{modname}:{name}(\"dev\")', for example."
        ) from None
    except ValueError:  # no signature to check: just call it
        pass
    return factory(*args, **kwargs)


def find_app_by_attribute(
    module: types.ModuleType, attribute: str, reference: str
) -> WSGIApplication:
    """The app named by ``attribute`` (``name`` or ``name(args)``) in ``module``."""
    name, args, kwargs = parse_attribute(attribute, reference)
    modname = module.__name__
    try:
        obj = getattr(module, name)
    except AttributeError:
        known = _candidates(module)
        hint = f" It defines: {', '.join(known)}." if known else ""
        raise NoAppError(
            f"Module {modname!r} has no attribute {name!r}.{hint}"
            f" Use '{modname}:NAME' with the name of the application."
        ) from None
    where = f"'{modname}:{name}'"
    if kwargs is not None:
        if not callable(obj):
            raise NoAppError(
                f"{where} is {_describe(obj)}, which cannot be called."
                f" Drop the parentheses: --app '{modname}:{name}'."
            )
        if not inspect.isroutine(obj) and not isinstance(obj, type):
            if is_wsgi_callable(obj):
                raise NoAppError(
                    f"{where} is already an application ({_describe(obj)}), not a"
                    " factory to call. Drop the parentheses: --app"
                    f" '{modname}:{name}'."
                )
        obj = call_factory(obj, args, kwargs, modname, name)
        call = f"'{modname}:{name}({_args_text(args, kwargs)})'"
        return check_wsgi(obj, call, returned=True)
    if inspect.isfunction(obj) and (
        name in FACTORY_NAMES or _takes_no_arguments(obj) or not is_wsgi_callable(obj)
    ):
        # A factory named without parentheses: call it with no arguments.
        obj = call_factory(obj, [], {}, modname, name)
        return check_wsgi(obj, f"'{modname}:{name}()'", returned=True)
    return check_wsgi(obj, where)


def _takes_no_arguments(func: t.Callable[..., t.Any]) -> bool:
    try:
        inspect.signature(func).bind()
    except (TypeError, ValueError):
        return False
    return True


def _args_text(args: list[t.Any], kwargs: dict[str, t.Any]) -> str:
    return ", ".join(
        [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    )


def _candidates(module: types.ModuleType) -> list[str]:
    """Names in ``module`` that look like apps or factories, for hints."""
    names = []
    for key, value in vars(module).items():
        if key.startswith("_") or isinstance(value, (types.ModuleType, type)):
            continue
        if inspect.isfunction(value):
            # Only the module's own functions: factories and WSGI functions.
            if value.__module__ == module.__name__ and (
                key in FACTORY_NAMES or is_wsgi_callable(value)
            ):
                names.append(key)
        elif key in APP_NAMES or is_wsgi_callable(value):
            names.append(key)
    return sorted(names)


def find_best_app(module: types.ModuleType) -> WSGIApplication:
    """The application in ``module``, searched as the module docstring says."""
    from ..app import API

    modname = module.__name__
    submodules = []
    for name in APP_NAMES:
        if hasattr(module, name):
            value = getattr(module, name)
            if isinstance(value, types.ModuleType):
                # A package's submodule app.py, imported by its __init__.
                submodules.append(value.__name__)
                continue
            return check_wsgi(value, f"'{modname}:{name}'")
    apps = [
        key
        for key, value in vars(module).items()
        if isinstance(value, API) and not key.startswith("__")
    ]
    if len(apps) == 1:
        return t.cast("WSGIApplication", getattr(module, apps[0]))
    if len(apps) > 1:
        listed = ", ".join(repr(f"{modname}:{key}") for key in sorted(apps))
        raise NoAppError(
            f"Found several applications in module {modname!r}: {listed}."
            f" Use '{modname}:NAME' to pick one."
        )
    for name in FACTORY_NAMES:
        factory = getattr(module, name, None)
        if inspect.isfunction(factory):
            return check_wsgi(
                call_factory(factory, [], {}, modname, name),
                f"'{modname}:{name}()'",
                returned=True,
            )
    hint = f" Use '{modname}:NAME' to name it."
    if submodules:
        hint = f" Its submodule may hold it: --app {submodules[0]}." + hint
    elif hasattr(module, "__path__") and module_exists(f"{modname}.wsgi"):
        # A Django project's package: its application is in wsgi.py.
        hint = f" Its wsgi module may hold it: --app {modname}.wsgi." + hint
    raise NoAppError(
        f"Could not find an application in module {modname!r}: no 'app' or"
        " 'application', no citus API instance, no 'create_app' or 'make_app'"
        f" factory.{hint}"
    )


def default_reference(folder: str | None = None) -> str:
    """``wsgi.py`` or ``app.py`` from ``folder`` (the current one), for no
    ``--app``; else the Django project that ``manage.py`` names (see
    :func:`django_reference`).

    :raises NoAppError: when there is none of them.
    """
    here = Path(folder or os.getcwd())
    for name in DEFAULT_FILES:
        if (here / name).is_file():
            return Path(name).stem
    if (here / DJANGO_MANAGE).is_file():
        return django_reference(here / DJANGO_MANAGE)
    raise NoAppError(
        f"No app to run: no --app given, CITUS_APP is not set, and neither"
        f" 'wsgi.py' nor 'app.py' nor a Django project's 'manage.py' is in the"
        f" current folder ({str(here)!r}). Name one with --app hello (or"
        " CITUS_APP=hello)."
    )


def _literal_setting(path: Path | str, name: str) -> str | None:
    """The string a Python file assigns to ``name``, read without running it:
    ``NAME = "..."``, ``os.environ["NAME"] = "..."`` or
    ``os.environ.setdefault("NAME", "...")``."""
    try:
        tree = ast.parse(Path(path).read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None

    def text(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    found = None  # the last assignment wins, as when the file runs
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    found = text(node.value)
                elif isinstance(target, ast.Subscript) and text(target.slice) == name:
                    found = text(node.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setdefault"
            and len(node.args) == 2
            and text(node.args[0]) == name
        ):
            found = text(node.args[1])
    return found


#: How deep ``from .base import *`` is followed in Django settings.
_SETTINGS_DEPTH = 3


def _django_wsgi_setting(module: str, depth: int = 0) -> str | None:
    """``WSGI_APPLICATION`` as the settings module ``module`` sets it, read
    without running it: in the module itself, else in the modules it
    star-imports (``from .base import *``, the last one first), as split
    settings (``settings/local.py`` over ``settings/base.py``) set it."""
    from ..frameworks.guess import find_source

    source = find_source(module)
    if source is None:
        return None
    value = _literal_setting(source, "WSGI_APPLICATION")
    if value is not None or depth >= _SETTINGS_DEPTH:
        return value
    package = module if source.endswith("__init__.py") else module.rpartition(".")[0]
    for imported in reversed(_star_imports(source, package)):
        value = _django_wsgi_setting(imported, depth + 1)
        if value is not None:
            return value
    return None


def _star_imports(path: str, package: str) -> list[str]:
    """The absolute names of the modules the file ``path`` star-imports, in
    order (``package`` resolves relative ones)."""
    try:
        tree = ast.parse(Path(path).read_bytes(), path)
    except (OSError, SyntaxError, ValueError):
        return []
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if [alias.name for alias in node.names] != ["*"]:
            continue
        base = node.module or ""
        if node.level:
            parent = package.split(".") if package else []
            parent = parent[: len(parent) - (node.level - 1)]
            base = ".".join([*parent, base] if base else parent)
        if base:
            names.append(base)
    return names


def django_reference(manage: Path) -> str:
    """The app reference of the Django project that ``manage.py`` runs.

    As ``manage.py runserver`` finds it, without running any of the project's
    code: the settings module is ``DJANGO_SETTINGS_MODULE``, else the one
    ``manage.py`` sets; the application is the settings' ``WSGI_APPLICATION``
    (``mysite.wsgi.application``; split settings' star imports followed),
    else the ``wsgi`` module beside the settings or beside a package above
    them. ``DJANGO_SETTINGS_MODULE`` is set for the app's process, as
    ``manage.py`` sets it.

    Reads and may set ``DJANGO_SETTINGS_MODULE``.

    :raises NoAppError: when ``manage.py`` does not lead to an application.
    """
    settings = os.environ.get(DJANGO_SETTINGS_ENV) or _literal_setting(
        manage, DJANGO_SETTINGS_ENV
    )
    if not settings:
        raise NoAppError(
            f"{str(manage)!r} does not set {DJANGO_SETTINGS_ENV}, so citus"
            " cannot tell which Django project it runs. Name the project's"
            " WSGI module: --app mysite.wsgi."
        )
    candidates = []
    wsgi = _django_wsgi_setting(settings)
    if wsgi and "." in wsgi:
        module, _, attribute = wsgi.rpartition(".")
        candidates.append((module, attribute))
    # A "wsgi" module beside the settings, or beside the package that holds
    # them (config/settings/local.py and config/wsgi.py).
    parts = settings.split(".")[:-1]
    while parts:
        candidates.append((".".join([*parts, "wsgi"]), "application"))
        parts.pop()
    for module, attribute in candidates:
        if module.strip(".") and module_exists(module):
            os.environ.setdefault(DJANGO_SETTINGS_ENV, settings)
            return module if attribute in APP_NAMES else f"{module}:{attribute}"
    raise NoAppError(
        f"{str(manage)!r} runs the Django settings {settings!r}, but citus"
        f" found no WSGI application for them (WSGI_APPLICATION, or"
        f" {candidates[-1][0]!r}). Name it: --app mysite.wsgi."
    )


def check_reference(reference: str | None) -> str:
    """Check, without running any user code, that the module can be found.

    Used by the reloader's supervisor, which never imports the app, so that a
    misspelt module is still a usage error at once.

    :returns: the app's name for the banner (see :func:`app_name`).
    """
    ensure_cwd_importable()
    if reference is None:
        return default_reference()
    module, attribute = split_reference(reference)
    if attribute is not None:
        parse_attribute(attribute, reference)  # its syntax, without running it
    name = prepare_path(module) if is_path(module) else module
    check_module_name(module, name)
    if not is_path(module) and not module_exists(module):
        raise AppModuleNotFoundError(_not_found(module, module))
    return app_name(name, attribute)


def app_name(module: str, attribute: str | None) -> str:
    """The name the banner shows: the module's import name, then ``:attribute``.

    ``hello``, ``hello.py``, ``src/hello`` and ``examples/hello.py`` are all
    ``hello``, the name ``app.run()`` shows for the same module;
    ``hello:create_app("dev")`` keeps its attribute.
    """
    return module if attribute is None else f"{module}:{attribute}"


def ensure_cwd_importable() -> None:
    """Put the current folder first on :data:`sys.path`, as users expect."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def locate_app(reference: str | None) -> tuple[WSGIApplication, str]:
    """Import and return the application ``reference`` names, and its name.

    :param reference: ``--app`` / ``CITUS_APP``, or ``None`` for the defaults.
    :returns: the WSGI application and its name (see :func:`app_name`).
    :raises NoAppError: when the reference leads to no application.
    """
    ensure_cwd_importable()
    if reference is None:
        reference = default_reference()
    module_part, attribute = split_reference(reference)
    with flask_app_run_ignored():  # (a factory may call app.run() too)
        module = import_module(module_part, reference)
        name = app_name(module.__name__, attribute)
        if attribute is None:
            return find_best_app(module), name
        return find_app_by_attribute(module, attribute, reference), name
