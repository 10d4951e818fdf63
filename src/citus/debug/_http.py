"""The debugger's HTTP plumbing: who is trusted, content negotiation, and the
small JSON replies of its endpoints.

Trust comes from two places only: the ``Host`` header (checked against local
names and the user's list, which defeats DNS rebinding) and the socket's peer
address ``REMOTE_ADDR`` (never ``X-Forwarded-For`` and the like).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import typing as t
from urllib.parse import parse_qsl

from .._compat import is_unix_socket

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: URL prefix of the debugger's own endpoints; no application route uses it.
PREFIX = "/__citus_debugger__"
#: Host names trusted without configuration (``*.localhost`` too).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
#: Largest request body the debugger's endpoints read.
MAX_BODY = 1024 * 1024

#: The Content-Security-Policy of every page and endpoint of the debugger.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]


# What a Host header may hold: a name or IPv4 address, or an IPv6 address in
# brackets, then an optional port. Anything else ("localhost:80@evil.test",
# "evil.test, localhost") names no host at all.
_HOST = re.compile(r"([a-z0-9_.-]*|\[[0-9a-f:.]+(?:%[a-z0-9_.-]+)?\])(?::[0-9]*)?")


def host_name(host: str) -> str:
    """The host of a ``Host`` header, lower case, without port or final dot.

    A malformed value gives ``""``, which is never trusted.

    :param host: the header's value.
    """
    match = _HOST.fullmatch(host.strip().lower())
    if match is None:
        return ""
    return match.group(1).rstrip(".")


def is_loopback_address(addr: str | None) -> bool:
    """Whether a peer address (``REMOTE_ADDR``) is this machine.

    Only a loopback IP address counts. citus's server gives connections on a
    Unix domain socket ``127.0.0.1``; other servers may give them ``""``, but
    such a socket is often a reverse proxy's, which forwards anyone's
    requests, so an empty or non-IP value is not trusted.

    :param addr: the peer address, or ``None`` when the server gave none.
    """
    if not addr:
        return False
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def socket_exposed(sock: socket.socket) -> str | None:
    """The address of ``sock`` when other machines can reach it, else ``None``."""
    if is_unix_socket(sock):
        return None
    try:
        host = str(sock.getsockname()[0])
    except OSError:
        return None
    if is_loopback_address(host):
        return None
    return f"[{host}]" if ":" in host else host


def negotiate(accept: str) -> str:
    """``"html"``, ``"json"`` or ``"text"`` for an ``Accept`` header.

    Browsers name ``text/html`` and get the page; ``application/json`` (or a
    ``+json`` type) preferred over HTML gets JSON; anything else, including
    curl's ``*/*``, gets plain text.

    :param accept: the header's value.
    """
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if media in ("text/html", "application/xhtml+xml"):
            kind = "html"
        elif media == "application/json" or media.endswith("+json"):
            kind = "json"
        elif media == "text/plain":
            kind = "text"
        else:
            continue
        best[kind] = max(best.get(kind, 0.0), q)
    if not best:
        return "text"
    return max(best, key=lambda k: (best[k], k == "json", k == "html"))


def to_json(data: object) -> bytes:
    """``data`` as indented JSON bytes."""
    return json.dumps(data, indent=2).encode()


def reply(
    start_response: StartResponse,
    status: str,
    data: dict[str, t.Any],
    allow: str | None = None,
    cookie: str | None = None,
) -> list[bytes]:
    """Start a JSON response with the security headers and return its body."""
    body = to_json(data)
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        *SECURITY_HEADERS,
    ]
    if allow:
        headers.append(("Allow", allow))
    if cookie:
        headers.append(("Set-Cookie", cookie))
    start_response(status, headers)
    return [body]


def read_form(environ: WSGIEnvironment) -> dict[str, str] | tuple[str, str]:
    """The URL-encoded body as a dict, or ``(status, message)`` when it is bad."""
    content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return (
            "415 UNSUPPORTED MEDIA TYPE",
            "Send the fields as application/x-www-form-urlencoded.",
        )
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return "400 BAD REQUEST", "Content-Length is not a number."
    if length > MAX_BODY:
        return "413 CONTENT TOO LARGE", f"The body is over {MAX_BODY} bytes."
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return "400 BAD REQUEST", "The body is not a valid UTF-8 form."
    return dict(pairs)


def get_cookie(environ: WSGIEnvironment, name: str) -> str | None:
    """The value of the cookie ``name``, or ``None``."""
    for part in str(environ.get("HTTP_COOKIE", "")).split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def utf8(text: str) -> bytes:
    """``text`` encoded for a response body.

    Lone surrogates (a file name decoded with :func:`os.fsdecode`) are shown
    as ``\\udcff`` rather than failing the whole page.
    """
    return text.encode("utf-8", "backslashreplace")
