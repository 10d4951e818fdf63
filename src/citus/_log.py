"""Logging for citus: the ``citus`` logger for messages, ``citus.serving`` for
the request log.

Messages for the user (the banner, reload notices) go through :func:`echo`, which
writes to standard error through the ``citus`` logger so that users can redirect
or silence them with the :mod:`logging` module. A handler is added only when
none is configured.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("citus")
access_logger = logging.getLogger("citus.serving")


def _ensure_handler(log: logging.Logger) -> None:
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not log.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)


def echo(message: str, err: bool = False) -> None:
    """Tell the user ``message`` through the ``citus`` logger (on standard error).

    :param message: one line, without the trailing newline.
    :param err: an error rather than information (logged at ``ERROR`` level).
    """
    _ensure_handler(logger)
    logger.log(logging.ERROR if err else logging.INFO, message)


def log_request(client: str, request_line: str, status: int, size: int | None) -> None:
    """Write one line of the request log through ``citus.serving``.

    :param client: the client's address (``127.0.0.1``, ``::1``, or a Unix path).
    :param request_line: the request line as received, e.g. ``GET / HTTP/1.1``.
    :param status: the response status code.
    :param size: the body size in bytes, or ``None`` when unknown.
    """
    _ensure_handler(access_logger)
    access_logger.info(
        '%s - - [%s] "%s" %d %s',
        client,
        _timestamp(),
        request_line,
        status,
        "-" if size is None else size,
    )


def _timestamp() -> str:
    import time

    return time.strftime("%d/%b/%Y %H:%M:%S")
