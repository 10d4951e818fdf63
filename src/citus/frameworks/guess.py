"""Which framework an app module uses, read from its source without running it.

``citus run``'s supervisor prints the banner (``* Serving Flask app
'flaskr'``) but never imports the app, so it cannot ask :func:`detect`. It
reads the imports of the app's module instead, and of the project's own
modules that one imports (a few levels deep, never a library's): the first
framework imported names the app's kind. An app whose framework is imported
only from a library, or a plain WSGI function, is called a ``citus`` app.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import sys

#: The banner's word for each framework's top-level package.
KINDS = {
    "flask": "Flask",
    "django": "Django",
    "bottle": "Bottle",
    "falcon": "Falcon",
    "pyramid": "Pyramid",
    "citus": "citus",
}
#: How deep the project's own imports are followed, and how many files read.
MAX_DEPTH = 3
MAX_FILES = 30


def find_source(name: str) -> str | None:
    """The source file of the module ``name``, found without running any code
    (no package ``__init__`` runs), or ``None``."""
    search: list[str] | None = None
    origin: str | None = None
    parts = name.split(".")
    for index in range(len(parts)):
        dotted = ".".join(parts[: index + 1])
        module = sys.modules.get(dotted)
        if module is not None:
            search = list(getattr(module, "__path__", []) or [])
            origin = getattr(module, "__file__", None)
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec(dotted, search)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
        origin = spec.origin
    if origin is None or not origin.endswith(".py") or not os.path.isfile(origin):
        return None
    return origin


def _imports(path: str, package: str) -> list[str]:
    """The absolute names of the modules the file ``path`` imports, in order.

    :param package: the package the file belongs to, for relative imports.
    """
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read(), path)
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".") if package else []
                if node.level > 1:
                    parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            if not base:
                continue
            names.append(base)
            # "from pkg import module" may name a submodule.
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def _is_project_file(path: str, roots: list[str]) -> bool:
    """Whether ``path`` lies in one of the project's folders, not in a library."""
    real = os.path.realpath(path)
    if os.sep + "site-packages" + os.sep in real:
        return False
    return any(real.startswith(root) for root in roots)


def guess_banner_kind(module: str) -> str:
    """The banner's word for the app in ``module``: ``"Flask"``, ``"Django"``
    ... or ``"citus"`` when its source imports no framework citus knows."""
    first = find_source(module)
    if first is None:
        return "citus"
    roots = [os.path.join(os.path.realpath(os.path.dirname(first)), "")]
    top = os.path.realpath(os.getcwd())
    roots.append(os.path.join(top, ""))
    queue = [(module, first, 0)]
    seen = {first}
    while queue and len(seen) <= MAX_FILES:
        name, path, depth = queue.pop(0)
        is_package = os.path.basename(path) == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for imported in _imports(path, package):
            kind = KINDS.get(imported.split(".")[0])
            if kind is not None:
                return kind
            if depth + 1 > MAX_DEPTH:
                continue
            source = find_source(imported)
            if source and source not in seen and _is_project_file(source, roots):
                seen.add(source)
                queue.append((imported, source, depth + 1))
    return "citus"
