"""Request and response objects: :class:`Request`, :class:`Response` and the
containers they share (:class:`MultiDict`, :class:`Headers`, :class:`FileStorage`).
"""

from __future__ import annotations

from .datastructures import FileStorage as FileStorage
from .datastructures import Headers as Headers
from .datastructures import MultiDict as MultiDict
from .request import Request as Request
from .response import Response as Response
from .response import jsonify as jsonify
from .response import redirect as redirect

__all__ = [
    "FileStorage",
    "Headers",
    "MultiDict",
    "Request",
    "Response",
    "jsonify",
    "redirect",
]
