"""The WSGI application every server in ``throughput.py`` serves.

``GET`` answers ``Hello, World!``; ``POST`` reads the whole body first and
answers with its size, so that the 256 KiB scenario measures body handling.
"""

from __future__ import annotations

import typing as t


def app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    """Hello world, reading any request body to its end."""
    if environ["REQUEST_METHOD"] == "POST":
        # PEP 3333: read no more than CONTENT_LENGTH (Werkzeug's stream would
        # otherwise wait for the client to close).
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        size = len(stream.read(int(length)) if length else stream.read())
        body = f"read {size} bytes".encode()
    else:
        body = b"Hello, World!"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
