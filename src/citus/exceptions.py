"""HTTP exceptions and :func:`abort` (placeholder until the framework lands)."""

from __future__ import annotations

from typing import NoReturn


def abort(code: int) -> NoReturn:
    """Stop handling the request with the HTTP error ``code``."""
    raise RuntimeError(code)
