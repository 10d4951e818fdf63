"""The application object, :class:`API` (placeholder until the framework lands)."""

from __future__ import annotations


class API:
    """A WSGI application (placeholder)."""

    def __init__(self, import_name: str) -> None:
        self.import_name = import_name
