"""Request and response objects (placeholder until the framework lands)."""

from __future__ import annotations


class Request:
    """An HTTP request (placeholder)."""


class Response:
    """An HTTP response (placeholder)."""
