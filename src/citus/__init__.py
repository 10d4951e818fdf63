"""citus: a small web framework built around a fast, safe development server.

The public names live here; everything else in the package is private unless a
module documents otherwise.

They are imported on first use: the ``citus`` command's supervising process,
which never serves the app, then starts without loading the framework.
"""

from __future__ import annotations

import importlib
import typing as t

if t.TYPE_CHECKING:
    from .app import API as API
    from .app import current_app as current_app
    from .app import render_template as render_template
    from .app import render_template_string as render_template_string
    from .app import url_for as url_for
    from .exceptions import HTTPException as HTTPException
    from .exceptions import abort as abort
    from .globals import request as request
    from .wrappers import Request as Request
    from .wrappers import Response as Response
    from .wrappers import jsonify as jsonify
    from .wrappers import redirect as redirect

__version__ = "0.1.0.dev0"

# Captured now: once ``citus.globals`` is imported, the name ``globals`` in
# this namespace is that module, not the builtin.
_NAMESPACE = globals()

#: Where each public name lives.
_HOMES = {
    "API": "app",
    "current_app": "app",
    "render_template": "app",
    "render_template_string": "app",
    "url_for": "app",
    "HTTPException": "exceptions",
    "abort": "exceptions",
    "request": "globals",
    "Request": "wrappers",
    "Response": "wrappers",
    "jsonify": "wrappers",
    "redirect": "wrappers",
}

__all__ = [
    "API",
    "HTTPException",
    "Request",
    "Response",
    "__version__",
    "abort",
    "current_app",
    "jsonify",
    "redirect",
    "render_template",
    "render_template_string",
    "request",
    "url_for",
]


def __getattr__(name: str) -> t.Any:
    """Import a public name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'citus' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    _NAMESPACE[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*_NAMESPACE, *_HOMES})
