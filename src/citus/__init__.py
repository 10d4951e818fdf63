"""citus: a small web framework built around a fast, safe development server.

The public names live here; everything else in the package is private unless a
module documents otherwise.
"""

from __future__ import annotations

from .app import API as API
from .exceptions import abort as abort
from .globals import request as request
from .wrappers import Request as Request
from .wrappers import Response as Response

__version__ = "0.1.0.dev0"

__all__ = ["API", "Request", "Response", "__version__", "abort", "request"]
