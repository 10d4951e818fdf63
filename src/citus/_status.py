"""Reason phrases for HTTP status codes, the same on every Python version.

Python's :class:`http.HTTPStatus` took RFC 9110's names for a few codes only in
3.13 (``413 Content Too Large`` was ``Request Entity Too Large``); citus uses
RFC 9110's names everywhere, so pages, logs and tests don't depend on the
interpreter.
"""

from __future__ import annotations

from http import HTTPStatus

_RFC9110 = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def reason_phrase(status: int, default: str = "") -> str:
    """The standard reason phrase of ``status``, e.g. ``"Not Found"``.

    :param status: the status code.
    :param default: what to return for a code that has no standard phrase.
    """
    phrase = _RFC9110.get(status)
    if phrase is not None:
        return phrase
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return default
