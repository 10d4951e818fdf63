"""HTTP/1.1 for the server side, without I/O: bytes in, events out.

This module wraps the httptools (llhttp) request parser the way h11 wraps its
own: :class:`Connection` is fed the bytes read from a client with
:meth:`Connection.receive_data` and hands back, through
:meth:`Connection.next_event`, a :class:`Request`, then the body as ``bytes``
chunks, then :data:`END_OF_MESSAGE`. For the answer it frames bytes to send
(:meth:`Connection.send_response`, :meth:`Connection.send_body`,
:meth:`Connection.send_end`) and decides whether the connection can be kept
alive. It never touches a socket; :mod:`citus.serving.server` does that.

A client that breaks the protocol makes :meth:`Connection.next_event` raise
:class:`RemoteProtocolError`, whose ``status_hint`` is the status to answer
with before closing the connection. Requests that arrived before the bad bytes
are still handed out first, so pipelined requests are answered in order.

The rules, in order of the states a connection goes through:

========================  =================  ==============================
client state              event              next state
========================  =================  ==============================
``IDLE``                  first byte         ``HEAD``
``HEAD``                  headers complete   ``BODY``
``BODY``                  message complete   ``DONE``
``DONE``                  next cycle         ``IDLE``
any                       bad bytes          ``ERROR`` (answer, then close)
any                       end of input       ``CLOSED``
========================  =================  ==============================

========================  =================  ==============================
server state              event              next state
========================  =================  ==============================
``IDLE``                  request handed out ``SEND_RESPONSE``
``SEND_RESPONSE``         head framed        ``SEND_BODY``
``SEND_BODY``             end framed         ``DONE``
``DONE``                  next cycle         ``IDLE`` (or ``MUST_CLOSE``)
========================  =================  ==============================
"""

from __future__ import annotations

import collections
import ipaddress
import re
import time
import typing as t
from email.utils import formatdate

import httptools

from .. import __version__
from .._status import reason_phrase

# -- states -----------------------------------------------------------------

IDLE = "IDLE"
HEAD = "HEAD"
BODY = "BODY"
DONE = "DONE"
ERROR = "ERROR"
CLOSED = "CLOSED"
SEND_RESPONSE = "SEND_RESPONSE"
SEND_BODY = "SEND_BODY"
MUST_CLOSE = "MUST_CLOSE"

#: Allowed client-side transitions: ``(state, event) -> next state``.
CLIENT_TRANSITIONS: dict[tuple[str, str], str] = {
    (IDLE, "message_begin"): HEAD,
    (HEAD, "headers_complete"): BODY,
    (BODY, "message_complete"): DONE,
    (DONE, "next_cycle"): IDLE,
}

#: Allowed server-side transitions: ``(state, event) -> next state``.
SERVER_TRANSITIONS: dict[tuple[str, str], str] = {
    (IDLE, "request"): SEND_RESPONSE,
    (SEND_RESPONSE, "response"): SEND_BODY,
    (SEND_BODY, "end"): DONE,
    (DONE, "next_cycle"): IDLE,
    (DONE, "close"): MUST_CLOSE,
}

# -- limits -----------------------------------------------------------------

#: Longest request target accepted (414 beyond).
MAX_REQUEST_LINE = 8 * 1024
#: Largest total size of the header fields (431 beyond).
MAX_HEADER_BYTES = 64 * 1024
#: Most header fields in one request (431 beyond).
MAX_HEADER_COUNT = 100

#: What :meth:`Connection.next_event` returns when it needs more bytes.
NEED_DATA: t.Final = "NEED_DATA"
#: The end of a request's body.
END_OF_MESSAGE: t.Final = "END_OF_MESSAGE"
#: The client closed its side of the connection between requests.
CONNECTION_CLOSED: t.Final = "CONNECTION_CLOSED"
#: The client asked to switch protocols; no further requests follow.
PAUSED: t.Final = "PAUSED"

Event = t.Union["Request", bytes, str]

SERVER_HEADER = f"citus/{__version__}"


class RemoteProtocolError(Exception):
    """The client broke HTTP/1.1; answer ``status_hint`` and close.

    :param message: what was wrong, for the log and the response body.
    :param status_hint: the status code to answer with.
    """

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(Exception):
    """The application asked for something HTTP/1.1 cannot send."""


class Request:
    """The head of one request: method, target, version and header fields.

    Header names are as received (bytes); values are stripped of surrounding
    whitespace by the parser.
    """

    __slots__ = (
        "authority",
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        expect_continue: bool,
        content_length: int | None,
        chunked: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.content_length = content_length
        self.chunked = chunked
        self.upgrade = False
        #: An absolute-form target's ``(scheme, host, port)``, lowercase scheme,
        #: IPv6 hosts in brackets, ``port`` empty when the target has none;
        #: ``None`` for every other form.
        self.authority: tuple[str, str, str] | None = None

    @property
    def has_body(self) -> bool:
        """Whether a body follows the head."""
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<Request {self.method!r} {self.target!r} HTTP/{self.http_version}>"


_date_cache: list[t.Any] = [0, ""]


def http_date() -> str:
    """Now, as an HTTP ``Date`` header value (cached for the current second)."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[1] = formatdate(now, usegmt=True)
        _date_cache[0] = now
    return t.cast(str, _date_cache[1])


def _has_token(value: bytes, token: bytes) -> bool:
    return any(part.strip().lower() == token for part in value.split(b","))


#: ``uri-host [":" port]`` (RFC 9110, 7.2; RFC 3986, 3.2.2): an IP literal in
#: brackets, or a reg-name (which covers IPv4 addresses), possibly empty.
_HOST_PORT = re.compile(
    rb"(\[[0-9A-Za-z:.%_~!$&'()*+,;=-]*\]"
    rb"|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)"
    rb"(?::([0-9]*))?"
)
#: ``scheme "://" authority`` at the start of an absolute-form target.
_ABSOLUTE = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")
#: IPvFuture (RFC 3986, 3.2.2), inside the brackets.
_IPV_FUTURE = re.compile(rb"[vV][0-9A-Fa-f]+\.[A-Za-z0-9._~!$&'()*+,;=:-]+")


#: Values :func:`split_host` has answered for -> its answer: every request of
#: a client repeats its ``Host``, and the check costs more than the lookup.
_host_answers: dict[bytes, tuple[bytes, bytes] | None] = {}


def split_host(value: bytes) -> tuple[bytes, bytes] | None:
    """``(host, port)`` of a ``Host`` value or target authority; ``None`` if
    it is not ``uri-host [":" port]`` (a broken IP literal, a port past 65535,
    a character a host cannot hold)."""
    try:
        return _host_answers[value]
    except KeyError:
        pass
    answer = _split_host(value)
    if len(_host_answers) < 256 and len(value) <= 256:  # clients choose them
        _host_answers[value] = answer
    return answer


def _split_host(value: bytes) -> tuple[bytes, bytes] | None:
    match = _HOST_PORT.fullmatch(value)
    if match is None:
        return None
    host, port = match.group(1), match.group(2) or b""
    if port and int(port) > 65535:
        return None
    if host[:1] == b"[":
        inside = host[1:-1]
        if not _IPV_FUTURE.fullmatch(inside):
            try:
                ipaddress.IPv6Address(inside.decode("ascii"))
            except ValueError:
                return None
    return host, port


def check_absolute_target(target: bytes) -> tuple[str, str, str]:
    """``(scheme, host, port)`` of an absolute-form request target.

    Raises :class:`RemoteProtocolError` (400) when its authority is empty or
    broken, or carries user information (RFC 9110, 4.2.1 and 4.2.4).
    """
    match = _ABSOLUTE.match(target)
    if match is None:
        raise RemoteProtocolError("Malformed absolute-form request target.", 400)
    authority = match.group(2)
    if b"@" in authority:
        raise RemoteProtocolError(
            "User information in the request target (RFC 9110, 4.2.4).", 400
        )
    parts = split_host(authority)
    if parts is None or not parts[0]:
        raise RemoteProtocolError(
            "The request target's authority is empty or malformed.", 400
        )
    host, port = parts
    return (
        match.group(1).decode("ascii").lower(),
        host.decode("ascii"),
        port.decode("ascii"),
    )


#: The header fields the parser itself looks at.
_FRAMING_HEADERS = frozenset(
    (b"transfer-encoding", b"connection", b"expect", b"content-length", b"host")
)
_BAD_VALUE_CHARS = frozenset(b"\r\n\x00")
_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


#: Response header names :func:`check_header` found to be tokens: an
#: application sends the same few names in every response.
_token_names: set[str] = set()


def check_header(name: str, value: str) -> None:
    """Raise :class:`LocalProtocolError` if a response header cannot be sent.

    Names must be tokens; values must not contain CR, LF or NUL (which would
    split the response).
    """
    if name not in _token_names:
        if not name or not _TOKEN_CHARS.issuperset(name.encode("latin-1", "replace")):
            raise LocalProtocolError(f"Invalid response header name {name!r}.")
        if type(name) is str and len(_token_names) < 512:  # bounded
            _token_names.add(name)
    if "\r" in value or "\n" in value or "\x00" in value:
        raise LocalProtocolError(
            f"Invalid response header value {value!r} for {name!r}: it contains"
            " CR, LF or NUL. Remove the control characters."
        )


class Connection:
    """The server side of one HTTP/1.1 connection, without I/O.

    :param max_request_line: longest request target (answer 414 beyond).
    :param max_header_bytes: largest total header size (answer 431 beyond).
    :param max_header_count: most header fields (answer 431 beyond).
    """

    def __init__(
        self,
        max_request_line: int = MAX_REQUEST_LINE,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_header_count: int = MAX_HEADER_COUNT,
    ) -> None:
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_header_count = max_header_count
        self._parser = httptools.HttpRequestParser(self)
        self._events: collections.deque[Event] = collections.deque()
        self._error: RemoteProtocolError | None = None
        self.client_state = IDLE
        self.server_state = IDLE
        self._eof = False
        # Current head being parsed.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._head_pending = 0
        self._te: list[bytes] = []
        self._conn_value = b""
        self._expect = False
        self._content_length: int | None = None
        self._host_seen = False
        self._upgrade_requested = False
        self._has_body = False
        self._body_left: int | None = None
        #: Whether the rest of the current body bypasses the parser.
        self._around = False
        self._parsing = False
        # The request being answered.
        self.request: Request | None = None
        self._keep_alive = False
        self._chunked_response = False
        self._head_only = False
        self._remaining: int | None = None
        self.body_done = False
        self.continue_sent = False

    # -- state --------------------------------------------------------------

    def _client(self, event: str) -> None:
        self.client_state = CLIENT_TRANSITIONS[(self.client_state, event)]

    def _server(self, event: str) -> None:
        try:
            self.server_state = SERVER_TRANSITIONS[(self.server_state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"Cannot {event!r} while the response is in state {self.server_state}."
            ) from None

    @property
    def keep_alive(self) -> bool:
        """Whether the connection can carry another request after this one."""
        return self._keep_alive

    def must_close(self) -> None:
        """Close after the current response (sets ``Connection: close``)."""
        self._keep_alive = False

    @property
    def head_started(self) -> bool:
        """Whether bytes of a request head that is not complete were received."""
        return self.client_state == HEAD

    # -- parsing ------------------------------------------------------------

    def receive_data(self, data: bytes | memoryview) -> None:
        """Feed bytes read from the client; ``b""`` means it closed its side."""
        if self._error is not None or self.client_state in (ERROR, CLOSED):
            return
        if not data:
            self._eof = True
            return
        if self._upgrade_requested:
            return  # bytes of another protocol: ignored, the connection closes
        if self._around:
            # The rest of a body that a reader took part of around the
            # parser (body_taken): counted off here, then the next request.
            size = min(len(data), self._body_left or 0)
            piece = data if size == len(data) else data[:size]
            # (a view of a reused buffer: the event keeps a copy, as the
            # parser's would)
            self._events.append(piece if type(piece) is bytes else bytes(piece))
            self.body_taken(size)
            data = data[size:]
            if not data:
                return
        self._parsing = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgrade_requested = True
        except httptools.HttpParserError as error:
            if self._error is None:
                message = str(error)
                lower = message.lower()
                status = 400
                if "invalid http version" in lower:
                    # A well-formed version llhttp does not speak (HTTP/1.2).
                    # "Invalid major/minor version" is a non-digit (HTTP/x.1):
                    # not a version at all, so a plain 400.
                    status = 505
                if "Transfer-Encoding" in message and "invalid" in message:
                    status = 501
                self._error = RemoteProtocolError(
                    f"Malformed request: {message}.", status
                )
        finally:
            self._parsing = False
        if self._error is None and self.client_state == HEAD:
            # A line that never ends is buffered by httptools, out of the
            # callbacks' sight: bound the whole head here.
            self._head_pending += len(data)
            if self._head_pending > (
                self.max_request_line + self.max_header_bytes + 4096
            ):
                # (on_url already refused a target over its limit: 414)
                self._error = RemoteProtocolError(
                    "Request header fields too large.", 431
                )
        if self._error is not None:
            self.client_state = ERROR

    def _fail(self, message: str, status: int) -> t.NoReturn:
        error = RemoteProtocolError(message, status)
        if self._error is None:
            self._error = error
        self.client_state = ERROR
        raise error

    def next_event(self) -> Event:
        """The next event: a :class:`Request`, body ``bytes``, a marker string.

        Markers: :data:`NEED_DATA`, :data:`END_OF_MESSAGE`,
        :data:`CONNECTION_CLOSED`, :data:`PAUSED` (no more requests on this
        connection: an upgrade was asked for). Raises
        :class:`RemoteProtocolError` once the events before the bad bytes
        are out.
        """
        events = self._events
        if events:
            event = events[0]
            if type(event) is Request:
                if self.server_state != IDLE:
                    raise LocalProtocolError(
                        "Answer the current request before reading the next one."
                    )
                events.popleft()
                self._start_request(event)
                return event
            if event is END_OF_MESSAGE:
                self.body_done = True
            return events.popleft()
        if self._error is not None:
            raise self._error
        if self._upgrade_requested:
            return PAUSED
        if self._eof:
            if self.client_state in (IDLE, DONE):
                return CONNECTION_CLOSED
            raise RemoteProtocolError("The client closed the connection mid-request.")
        return NEED_DATA

    @property
    def body_left(self) -> int | None:
        """Bytes of a ``Content-Length`` body the parser has yet to receive
        (``None`` for a chunked one): how much a reader may gather at once."""
        return self._body_left

    def body_ends_here(self) -> bool:
        """Whether the body's end is the next event: if so, it is consumed
        (:attr:`body_done`), so that a reader that took the last byte leaves
        the connection ready for the next request."""
        events = self._events
        if events and events[0] is END_OF_MESSAGE:
            events.popleft()
            self.body_done = True
            return True
        return False

    def can_take_body(self) -> bool:
        """Whether the next bytes are all body of a known length, with nothing
        parsed waiting: a reader may then take them itself (see
        :meth:`body_taken`), sparing the parser a copy of each piece."""
        return (
            self.client_state == BODY
            and not self._events
            and bool(self._body_left)
            and self._error is None
            and not self._eof
        )

    def body_taken(self, size: int) -> None:
        """``size`` body bytes were read around the parser (only when
        :meth:`can_take_body`, at most :attr:`body_left`).

        The parser never sees the rest of this body: :meth:`receive_data`
        counts it off itself. At its end the request ends as if parsed, and
        a fresh parser takes the next request.
        """
        left = self._body_left
        assert left is not None and 0 < size <= left
        left -= size
        self._body_left = left
        self._around = left > 0
        if not left:
            self._parser = httptools.HttpRequestParser(self)
            self.on_message_complete()

    def pending_request(self) -> bool:
        """Whether a complete request head is already buffered."""
        return bool(self._events) and type(self._events[0]) is Request

    # httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        """httptools: a request starts."""
        self._client("message_begin")
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._head_pending = 0
        self._te = []
        self._conn_value = b""
        self._expect = False
        self._content_length = None
        self._host_seen = False

    def on_url(self, url: bytes) -> None:
        """httptools: a piece of the request target (414 past the limit)."""
        self._url += url
        if len(self._url) > self.max_request_line:
            self._fail(
                f"Request target longer than {self.max_request_line} bytes.", 414
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools: one header field (431 past the limits)."""
        headers = self._headers
        value = value.strip(b" \t")
        headers.append((name, value))
        self._header_bytes += len(name) + len(value) + 4
        if len(headers) > self.max_header_count:
            self._fail(f"More than {self.max_header_count} header fields.", 431)
        if self._header_bytes > self.max_header_bytes:
            self._fail(f"Header fields larger than {self.max_header_bytes} bytes.", 431)
        lname = name.lower()
        if lname not in _FRAMING_HEADERS:
            return
        if lname == b"transfer-encoding":
            self._te.extend(
                part.strip().lower() for part in value.split(b",") if part.strip()
            )
        elif lname == b"connection":
            self._conn_value += b"," + value
        elif lname == b"expect":
            if value.lower() == b"100-continue":
                self._expect = True
        elif lname == b"content-length":
            if self._content_length is not None or not value.isdigit():
                self._fail("Invalid or repeated Content-Length.", 400)
            self._content_length = int(value)
        elif lname == b"host":
            # RFC 9112 3.2: two Host fields get a 400 (which one would the
            # application and a proxy in front of it each believe?).
            if self._host_seen:
                self._fail("More than one Host header field.", 400)
            if split_host(value) is None:
                self._fail("Invalid Host header field.", 400)
            self._host_seen = True

    def on_headers_complete(self) -> None:
        """httptools: the head is complete; check framing and queue a Request."""
        self._client("headers_complete")
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._fail(f"HTTP/{version} is not supported.", 505)
        if version == "1.1" and not self._host_seen:
            # RFC 9112, 3.2: which host would the application answer for?
            self._fail("HTTP/1.1 request without a Host header field.", 400)
        url = self._url
        authority = None
        method = parser.get_method()
        if url[:1] != b"/" and url != b"*" and method != b"CONNECT":
            try:
                authority = check_absolute_target(url)
            except RemoteProtocolError as error:
                self._fail(str(error), error.status_hint)
        chunked = False
        if self._te:
            if version == "1.0":
                self._fail("Transfer-Encoding in an HTTP/1.0 request.", 400)
            if any(coding != b"chunked" for coding in self._te):
                self._fail(
                    "Unsupported Transfer-Encoding "
                    f"{b', '.join(self._te).decode('latin-1')!r}.",
                    501,
                )
            if len(self._te) != 1:
                self._fail("Transfer-Encoding chunked given more than once.", 400)
            if self._content_length is not None:
                self._fail("Both Content-Length and Transfer-Encoding given.", 400)
            chunked = True
        conn = self._conn_value
        if version == "1.1":
            keep_alive = not (conn and _has_token(conn, b"close"))
        else:
            keep_alive = bool(conn) and _has_token(conn, b"keep-alive")
        request = Request(
            method,
            url,
            version,
            self._headers,
            keep_alive,
            self._expect and version == "1.1",
            self._content_length,
            chunked,
        )
        request.authority = authority
        if parser.should_upgrade():
            request.upgrade = True
        self._has_body = request.has_body
        self._body_left = None if chunked else (self._content_length or 0)
        self._events.append(request)

    def on_body(self, body: bytes) -> None:
        """httptools: a piece of the body."""
        self._events.append(body)
        if self._body_left is not None:
            self._body_left -= len(body)

    def on_message_complete(self) -> None:
        """httptools: the request (body included) is complete."""
        self._client("message_complete")
        if self._has_body:
            self._events.append(END_OF_MESSAGE)
        self._client("next_cycle")

    # -- the request being answered ------------------------------------------

    def _start_request(self, request: Request) -> None:
        self._server("request")
        self.request = request
        self._keep_alive = request.keep_alive and not request.upgrade
        self.body_done = not request.has_body
        self.continue_sent = False

    def continue_response(self) -> bytes:
        """The ``100 Continue`` interim response, once, if the client waits."""
        request = self.request
        if request is None or not request.expect_continue or self.continue_sent:
            return b""
        self.continue_sent = True
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def send_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        content_length: int | None = None,
    ) -> bytes:
        """Frame the response head.

        :param status: the status line's code and reason, e.g. ``"200 OK"``.
        :param headers: the application's header fields (already checked).
        :param content_length: the body size when the server knows it and the
            application did not say.
        """
        request = self.request
        assert request is not None
        self._server("response")
        code = int(status[:3])
        self._head_only = (
            request.method == b"HEAD" or code in (204, 304) or 100 <= code < 200
        )
        app_length: int | None = None
        lines = [f"HTTP/1.1 {status}\r\n"]
        append = lines.append
        has_date = has_server = False
        for name, value in headers:
            lname = name.lower()
            if lname == "content-length":
                try:
                    app_length = int(value)
                except ValueError:
                    raise LocalProtocolError(
                        f"Invalid Content-Length {value!r} from the application."
                    ) from None
                continue
            elif lname == "connection":
                if "close" in value.lower():
                    self._keep_alive = False
                continue
            elif lname in ("transfer-encoding", "keep-alive"):
                continue  # framing is the server's business
            elif lname == "date":
                has_date = True
            elif lname == "server":
                has_server = True
            append(f"{name}: {value}\r\n")
        if not has_date:
            append(f"Date: {http_date()}\r\n")
        if not has_server:
            append(f"Server: {SERVER_HEADER}\r\n")
        self._chunked_response = False
        self._remaining = None
        if app_length is not None:
            append(f"Content-Length: {app_length}\r\n")
            self._remaining = 0 if self._head_only else app_length
        elif code in (204, 304) or 100 <= code < 200:
            pass
        elif content_length is not None and (content_length or not self._head_only):
            # An empty body for HEAD tells nothing of GET's length: no header
            # rather than a Content-Length: 0 that GET would contradict.
            append(f"Content-Length: {content_length}\r\n")
            self._remaining = 0 if self._head_only else content_length
        elif self._head_only:
            pass
        elif request.http_version == "1.1":
            append("Transfer-Encoding: chunked\r\n")
            self._chunked_response = True
        else:
            self._keep_alive = False  # the end of the body is the close
        if not self.body_done and not self._can_drain():
            self._keep_alive = False
        if not self._keep_alive:
            append("Connection: close\r\n")
        elif request.http_version == "1.0":
            append("Connection: keep-alive\r\n")
        append("\r\n")
        return "".join(lines).encode("latin-1")

    def _can_drain(self) -> bool:
        request = self.request
        assert request is not None
        if request.expect_continue and not self.continue_sent:
            return False  # the client may not send the body at all
        return request.chunked or (request.content_length or 0) <= DRAIN_LIMIT

    def send_body(self, data: bytes) -> bytes:
        """Frame ``data`` as part of the body (chunked when needed).

        Raises :class:`LocalProtocolError` when the application sends more
        than its ``Content-Length``.
        """
        if self._head_only or not data:
            return b""
        if self._chunked_response:
            return b"%x\r\n%b\r\n" % (len(data), data)
        if self._remaining is not None:
            if len(data) > self._remaining:
                raise LocalProtocolError(
                    "The application sent more bytes than its Content-Length."
                )
            self._remaining -= len(data)
        return data

    def note_sent(self, size: int) -> None:
        """Count ``size`` body bytes sent without :meth:`send_body` (sendfile)."""
        if self._remaining is not None:
            self._remaining -= size

    @property
    def raw_body_ok(self) -> bool:
        """Whether body bytes can go out unframed (for ``sendfile``)."""
        return not self._chunked_response and not self._head_only

    def send_end(self) -> bytes:
        """Frame the end of the body.

        Raises :class:`LocalProtocolError` when fewer bytes than the
        ``Content-Length`` were sent: the connection must then be aborted.
        """
        self._server("end")
        if self._remaining:
            self._keep_alive = False
            raise LocalProtocolError(
                f"The application sent {self._remaining} bytes fewer than its"
                " Content-Length."
            )
        if self._chunked_response:
            return b"0\r\n\r\n"
        return b""

    def start_next_cycle(self) -> None:
        """Forget the answered request; ready for the next one."""
        self._server("close" if not self._keep_alive else "next_cycle")
        if self.server_state == MUST_CLOSE:
            return
        self.request = None


#: How many unread body bytes are read and thrown away to keep a connection.
DRAIN_LIMIT = 1024 * 1024


def error_response(status: int, message: str) -> bytes:
    """A complete plain-text response for ``status`` that closes the connection."""
    body = f"{reason_phrase(status) or 'Error'}: {message}\n".encode(
        "latin-1", "replace"
    )
    head = (
        f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"
        f"Date: {http_date()}\r\n"
        f"Server: {SERVER_HEADER}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
