"""Context-local access to the request being handled: ``citus.request``.

Each request runs with its :class:`~citus.Request` stored in a
:mod:`contextvars` variable, so that threads, and tasks of a server that copies
contexts, each see their own. ``request`` is a proxy: attribute access is
forwarded to the current request, and outside of one it raises a
:class:`RuntimeError` that says so.

This module sits below :mod:`citus.app` and knows nothing of it: the proxy to
the application, ``current_app``, lives in :mod:`citus.app`, built from the
same :class:`_Proxy`.
"""

from __future__ import annotations

import contextvars
import typing as t

if t.TYPE_CHECKING:
    from .wrappers.request import Request

__all__ = ["request"]

_request_var: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "citus.request", default=None
)


def _get_request() -> Request:
    value = _request_var.get()
    if value is None:
        raise RuntimeError(
            "Working outside of a request: 'citus.request' exists only while a"
            " view handles a request. In tests, make requests with"
            " app.test_client() instead of reading 'request' directly."
        )
    return value


class _Proxy:
    """Forwards everything to the object returned by ``lookup``."""

    __slots__ = ("_lookup", "_name")

    def __init__(self, lookup: t.Callable[[], object], name: str) -> None:
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_name", name)

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._lookup(), name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(request, Request) holds
        try:
            return type(self._lookup())
        except RuntimeError:
            return _Proxy

    def __dir__(self) -> list[str]:
        try:
            return dir(self._lookup())
        except RuntimeError:
            return []

    def __setattr__(self, name: str, value: t.Any) -> None:
        setattr(self._lookup(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._lookup(), name)

    def __repr__(self) -> str:
        try:
            return repr(self._lookup())
        except RuntimeError:
            return f"<unbound proxy {self._name!r}>"

    def __bool__(self) -> bool:
        try:
            self._lookup()
        except RuntimeError:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return bool(self._lookup() == other)

    def __ne__(self, other: object) -> bool:
        return bool(self._lookup() != other)

    __hash__ = None  # type: ignore[assignment]


#: The request being handled (a :class:`~citus.Request`), local to the context.
request: Request = t.cast("Request", _Proxy(_get_request, "citus.request"))
