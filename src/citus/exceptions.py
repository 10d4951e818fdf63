"""HTTP errors as exceptions, and :func:`abort`.

A view (or citus itself) stops handling a request by raising one of the
:class:`HTTPException` subclasses below, usually through ``abort(404)``. The
application turns the exception into a small HTML error page, unless an
``@app.errorhandler`` for its code or class answers instead. Each class knows its
status code, its reason phrase and a sentence for the user.

This module sits below :mod:`citus.wrappers`, whose request and data structures
raise these errors, and so never imports it: an error describes its page
(:meth:`HTTPException.get_body`, :meth:`HTTPException.get_headers`), and
:func:`citus.wrappers.response.error_response` makes the response.
"""

from __future__ import annotations

import html
import typing as t

from ._status import reason_phrase

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "BadGateway",
    "BadRequest",
    "BadRequestKeyError",
    "Conflict",
    "Forbidden",
    "Gone",
    "HTTPException",
    "InternalServerError",
    "LengthRequired",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "NotImplementedHTTP",
    "PreconditionFailed",
    "RequestEntityTooLarge",
    "RequestRedirect",
    "RequestTimeout",
    "RequestedRangeNotSatisfiable",
    "ServiceUnavailable",
    "TooManyRequests",
    "URITooLong",
    "Unauthorized",
    "UnprocessableEntity",
    "UnsupportedMediaType",
    "ResponseLike",
    "abort",
]


class ResponseLike(t.Protocol):
    """What :func:`abort` and ``HTTPException(response=...)`` take as a ready
    answer: a :class:`~citus.Response`.

    Described by its shape (a WSGI application with a status code) so that
    this module need not import :mod:`citus.wrappers`, which imports it.
    """

    @property
    def status_code(self) -> int:
        """The response's status code."""

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Send the response as a WSGI application."""


class HTTPException(Exception):
    """An HTTP error that becomes the response to the current request.

    :param description: the sentence shown on the error page; the class's
        default when ``None``.
    :param response: a ready :class:`~citus.Response` to send instead of the
        error page.
    """

    #: The HTTP status code.
    code: int = 500
    #: The default sentence shown on the error page.
    description: str = "An error occurred."

    def __init__(
        self, description: str | None = None, response: ResponseLike | None = None
    ) -> None:
        if description is not None:
            self.description = description
        self.response = response
        super().__init__(f"{self.code} {self.name}: {self.description}")

    @property
    def name(self) -> str:
        """The reason phrase, e.g. ``Not Found``."""
        return reason_phrase(self.code, "Unknown Error")

    def get_headers(self) -> list[tuple[str, str]]:
        """The headers of the error page."""
        return [("Content-Type", "text/html; charset=utf-8")]

    def get_body(self) -> str:
        """The HTML error page: the code, the reason and the description."""
        name = html.escape(self.name)
        return (
            "<!doctype html>\n<html lang=en>\n"
            f"<title>{self.code} {name}</title>\n"
            f"<h1>{name}</h1>\n"
            f"<p>{html.escape(self.description)}</p>\n"
        )


class BadRequest(HTTPException):
    """400: the request could not be understood (bad form, bad JSON ...)."""

    code = 400
    description = "The request is malformed, so it cannot be answered."


class BadRequestKeyError(BadRequest, KeyError):
    """400: a view read a key that the request's args, form or files lack.

    It is also a :class:`KeyError`, so ``except KeyError`` still works.

    :param key: the missing key.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"The request has no value for {key!r}: the form or query string"
            " lacks this field."
        )

    def __str__(self) -> str:
        return f"400 Bad Request: the request has no value for {self.key!r}."


class Unauthorized(HTTPException):
    """401: authentication is needed."""

    code = 401
    description = "This resource needs credentials, and none valid were sent."


class Forbidden(HTTPException):
    """403: the client may not access this resource."""

    code = 403
    description = "Access to this resource is refused."


class NotFound(HTTPException):
    """404: no resource at this URL."""

    code = 404
    description = "There is nothing at this URL. Check it for typos."


class MethodNotAllowed(HTTPException):
    """405: the URL exists but not for this method; sends an ``Allow`` header.

    :param valid_methods: the methods the URL accepts.
    """

    code = 405
    description = (
        "This URL does not answer that method; the Allow header lists those it does."
    )

    def __init__(
        self,
        valid_methods: t.Iterable[str] | None = None,
        description: str | None = None,
        response: ResponseLike | None = None,
    ) -> None:
        self.valid_methods = sorted(valid_methods or ())
        super().__init__(description, response)

    def get_headers(self) -> list[tuple[str, str]]:
        """The error page's headers, with ``Allow``."""
        headers = super().get_headers()
        if self.valid_methods:
            headers.append(("Allow", ", ".join(self.valid_methods)))
        return headers


class NotAcceptable(HTTPException):
    """406: no representation the client accepts."""

    code = 406
    description = "The resource cannot be served in a form the client accepts."


class RequestTimeout(HTTPException):
    """408: the client took too long to send its request."""

    code = 408
    description = "The server closed the connection because the request took too long."


class Conflict(HTTPException):
    """409: the request conflicts with the resource's current state."""

    code = 409
    description = "The request conflicts with the current state of the resource."


class Gone(HTTPException):
    """410: the resource is gone for good."""

    code = 410
    description = "What was here has been removed for good."


class LengthRequired(HTTPException):
    """411: the request needs a ``Content-Length``."""

    code = 411
    description = "This request must state its body's size in a Content-Length header."


class PreconditionFailed(HTTPException):
    """412: a conditional header did not hold."""

    code = 412
    description = "A condition in the request's headers does not hold."


class RequestEntityTooLarge(HTTPException):
    """413: the body is larger than the application accepts."""

    code = 413
    description = "The request body is larger than this application accepts."


class URITooLong(HTTPException):
    """414: the URL is too long."""

    code = 414
    description = "The URL is longer than this server accepts."


class UnsupportedMediaType(HTTPException):
    """415: the body's content type is not one this URL accepts."""

    code = 415
    description = "The server does not support the media type of the request body."


class RequestedRangeNotSatisfiable(HTTPException):
    """416: the ``Range`` asked for lies outside the resource.

    :param length: the resource's length, sent as ``Content-Range: bytes */N``.
    """

    code = 416
    description = "The requested range cannot be served."

    def __init__(
        self,
        length: int | None = None,
        description: str | None = None,
        response: ResponseLike | None = None,
    ) -> None:
        self.length = length
        super().__init__(description, response)

    def get_headers(self) -> list[tuple[str, str]]:
        """The error page's headers, with ``Content-Range``."""
        headers = super().get_headers()
        if self.length is not None:
            headers.append(("Content-Range", f"bytes */{self.length}"))
        return headers


class UnprocessableEntity(HTTPException):
    """422: the body is well-formed but its content is wrong."""

    code = 422
    description = "The request was well-formed but could not be processed."


class TooManyRequests(HTTPException):
    """429: the client sent too many requests."""

    code = 429
    description = "Too many requests in too little time. Wait a little, then retry."


class InternalServerError(HTTPException):
    """500: the application failed.

    :param original_exception: the unhandled exception behind this error, given
        to ``@app.errorhandler(500)`` handlers.
    """

    code = 500
    description = "The application failed while answering this request."

    def __init__(
        self,
        description: str | None = None,
        response: ResponseLike | None = None,
        original_exception: BaseException | None = None,
    ) -> None:
        self.original_exception = original_exception
        super().__init__(description, response)


class NotImplementedHTTP(HTTPException):
    """501: the server does not support this method at all."""

    code = 501
    description = "The server does not implement this method."


class BadGateway(HTTPException):
    """502: an upstream server answered badly."""

    code = 502
    description = "The server behind this one sent an answer that cannot be used."


class ServiceUnavailable(HTTPException):
    """503: the service is down for now."""

    code = 503
    description = "The service is down for the moment. Try again later."


class RequestRedirect(HTTPException):
    """308: routing asks the client to go to ``new_url`` (the URL with a slash).

    Raised by the URL map; the application answers it with a redirect.

    :param new_url: the URL to go to instead.
    """

    code = 308
    description = "The URL has moved; follow the Location header."

    def __init__(self, new_url: str) -> None:
        self.new_url = new_url
        super().__init__(f"Redirecting to {new_url}.")


#: Status code -> exception class, for :func:`abort` and ``errorhandler(code)``.
default_exceptions: dict[int, type[HTTPException]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        RequestTimeout,
        Conflict,
        Gone,
        LengthRequired,
        PreconditionFailed,
        RequestEntityTooLarge,
        URITooLong,
        UnsupportedMediaType,
        RequestedRangeNotSatisfiable,
        UnprocessableEntity,
        TooManyRequests,
        InternalServerError,
        NotImplementedHTTP,
        BadGateway,
        ServiceUnavailable,
    )
}


def exception_for_code(code: int) -> type[HTTPException]:
    """The exception class for the error status ``code`` (400-599).

    Codes without a named class get a class made on the fly, so that
    ``abort(418)`` works too.

    :raises ValueError: ``code`` is not an HTTP error status.
    """
    if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
        raise ValueError(
            f"{code!r} is not an HTTP error status code: use a number from 400"
            " to 599, e.g. abort(404)."
        )
    cls = default_exceptions.get(code)
    if cls is None:
        phrase = reason_phrase(code, "Error")
        cls = type(f"HTTPError{code}", (HTTPException,), {"code": code})
        cls.description = f"{phrase}."
    return cls


def abort(code: int | ResponseLike, description: str | None = None) -> t.NoReturn:
    """Stop handling the request with the HTTP error ``code``.

    ``abort(404)`` raises :class:`NotFound`, which answers with a 404 page (or
    with the application's ``errorhandler(404)``). Given a
    :class:`~citus.Response` instead of a code, that response is sent as is.

    :param code: an HTTP error status (400-599), or a response to send.
    :param description: the sentence for the error page.
    :raises HTTPException: always.
    :raises ValueError: ``code`` is not an HTTP error status.
    """
    if isinstance(code, int) or not hasattr(code, "status_code"):
        # Anything but a response goes here, so that abort("404") gets the
        # ValueError that explains what abort() takes.
        raise exception_for_code(t.cast(int, code))(description)
    error = HTTPException(description, response=code)
    error.code = code.status_code
    raise error
