"""citus: a small web framework built around a fast, safe development server.

The public names live here; everything else in the package is private unless a
module documents otherwise.
"""

from __future__ import annotations

from .app import API as API
from .app import url_for as url_for
from .exceptions import HTTPException as HTTPException
from .exceptions import abort as abort
from .globals import current_app as current_app
from .globals import request as request
from .wrappers import Request as Request
from .wrappers import Response as Response
from .wrappers import jsonify as jsonify
from .wrappers import redirect as redirect

__version__ = "0.1.0.dev0"

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
    "request",
    "url_for",
]
