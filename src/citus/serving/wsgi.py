"""One WSGI exchange: a parsed request in, an application called, bytes out.

This is the PEP 3333 half of the server. :func:`build_environ` turns a
:class:`.http11.Request` into the environ, :class:`Input` is ``wsgi.input``
(reading the body through the :class:`.http11.Connection` and never past its
end), and :class:`Exchange` calls the application with ``start_response`` and
the ``write()`` callable, then frames what it returns through the
connection. The bytes go out through a :class:`Transport` that
:mod:`citus.serving.server` implements over a socket.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import typing as t
from time import monotonic
from urllib.parse import unquote_to_bytes

from .._log import log_error, log_request
from . import http11
from .http11 import END_OF_MESSAGE, NEED_DATA, LocalProtocolError, RemoteProtocolError

if t.TYPE_CHECKING:
    from types import TracebackType

    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger("citus")

ExcInfo = tuple[type[BaseException], BaseException, "TracebackType | None"]


#: WSGI environ key of a callable that hands the connection's socket to the
#: application: the server forgets the connection (it neither answers nor
#: closes it) once the application returns. Call it before ``start_response``;
#: citus's live reload keeps its event streams this way, without a thread each.
TAKE_SOCKET_KEY = "citus.take_socket"


class ClientDisconnectedError(OSError):
    """The client went away (or stopped sending) in the middle of a request."""


class BodyTimeoutError(ClientDisconnectedError):
    """The request body did not arrive in time (answered with 408 if it can)."""


class ResponseTimeoutError(ClientDisconnectedError):
    """The client did not take the response in time (the connection is
    dropped)."""


class Transport(t.Protocol):
    """What an :class:`Exchange` needs from the connection's socket."""

    def recv(self, size: int = 0) -> bytes | memoryview:
        """Bytes from the client (empty at its end); may raise ``OSError``.

        With ``size``, the transport may wait for up to ``size`` bytes. A view
        it returns is valid until its next ``recv``.
        """

    def recv_body(self, size: int) -> bytes | None:
        """Up to ``size`` bytes, waited for, read straight into one new
        ``bytes`` (empty at the client's end); ``None`` when this transport
        cannot (then :meth:`recv` is used). Raises like :meth:`recv`."""

    def send(self, data: bytes) -> None:
        """Send all of ``data``; raises ``OSError`` when the client is gone."""

    def sendfile(self, file: t.IO[bytes], offset: int, count: int) -> int | None:
        """Send ``count`` bytes of ``file`` from ``offset`` with the kernel.

        Returns the bytes sent, or ``None`` when this transport cannot (TLS).
        """


def address_environ(
    server_address: t.Any, peer_address: t.Any, family_is_unix: bool
) -> dict[str, str]:
    """The ``SERVER_NAME/PORT`` and ``REMOTE_ADDR/PORT`` keys for a connection.

    :param server_address: ``sock.getsockname()`` of the accepted socket.
    :param peer_address: ``sock.getpeername()`` (or ``accept()``'s address).
    :param family_is_unix: whether the socket is ``AF_UNIX``.
    """
    if family_is_unix:
        # A socket path is no host name: URLs built from SERVER_NAME (requests
        # without a Host header) must stay valid, and PEP 3333 wants a port.
        return {
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "0",
        }
    return {
        "SERVER_NAME": _unmapped(str(server_address[0])),
        "SERVER_PORT": str(server_address[1]),
        "REMOTE_ADDR": _unmapped(str(peer_address[0])),
        "REMOTE_PORT": str(peer_address[1]),
    }


def _unmapped(host: str) -> str:
    """``127.0.0.1`` for ``::ffff:127.0.0.1``: an IPv4 client of a dual-stack socket.

    A server on ``::`` takes IPv4 clients too, and the system reports them as
    IPv4-mapped IPv6 addresses. Apps (and the request log) expect the plain
    IPv4 address, as they get it from a server on ``0.0.0.0``.
    """
    if host[:7].lower() == "::ffff:" and "." in host:
        return host[7:]
    return host


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request target into its path and query string (raw bytes)."""
    path, _, query = target.partition(b"?")
    if b"#" in query:
        query = query.partition(b"#")[0]
    elif b"#" in path:
        path = path.partition(b"#")[0]
    if not path.startswith(b"/"):
        if b"://" in path:  # absolute-form: drop scheme and authority
            rest = path.partition(b"://")[2]
            slash = rest.find(b"/")
            path = rest[slash:] if slash >= 0 else b"/"
    return path, query


#: Header names as received -> environ keys ("-" to drop the header), so
#: that the names every request repeats are converted once.
_environ_keys: dict[bytes, str] = {}


def _environ_key(name: bytes) -> str:
    """The environ key for header ``name``: ``HTTP_X_FOO``, ``CONTENT_TYPE``,
    ``CONTENT_LENGTH``, or ``"-"`` for a name with ``_`` (which would pass for
    the same name with ``-``)."""
    key = name.upper().decode("latin-1")
    if "_" in key:
        key = "-"
    else:
        key = key.replace("-", "_")
        if key != "CONTENT_TYPE" and key != "CONTENT_LENGTH":
            key = "HTTP_" + key
    if len(_environ_keys) < 512:  # bounded: clients choose the names
        _environ_keys[name] = key
    return key


def build_environ(
    request: http11.Request,
    base: dict[str, t.Any],
    body: Input,
) -> dict[str, t.Any]:
    """The WSGI environ for ``request``.

    :param request: the parsed request head.
    :param base: the per-connection keys (addresses, ``wsgi.*`` flags).
    :param body: the ``wsgi.input`` stream.
    """
    environ = base.copy()
    target = request.target
    path, query = split_target(target)
    raw_uri = target.decode("latin-1")
    environ["REQUEST_METHOD"] = request.method.decode("latin-1")
    environ["PATH_INFO"] = (
        unquote_to_bytes(path).decode("latin-1")
        if b"%" in path
        else path.decode("latin-1")
    )
    environ["QUERY_STRING"] = query.decode("latin-1")
    environ["RAW_URI"] = raw_uri
    environ["REQUEST_URI"] = raw_uri
    environ["SERVER_PROTOCOL"] = "HTTP/" + request.http_version
    environ["wsgi.input"] = body
    keys = _environ_keys
    for name, value in request.headers:
        key = keys.get(name, "")
        if not key:
            key = _environ_key(name)
        if key == "-":
            continue  # could spoof another header once dashes become underscores
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            if key == "CONTENT_LENGTH" and request.chunked:
                continue
            environ[key] = value.decode("latin-1")
            continue
        text = value.decode("latin-1")
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = environ[key] + separator + text
        else:
            environ[key] = text
    authority = request.authority
    if authority is not None:
        # RFC 9112, 3.2.2: an absolute-form target's authority is the host,
        # whatever the Host header says.
        scheme, host, port = authority
        environ["HTTP_HOST"] = f"{host}:{port}" if port else host
        environ["SERVER_NAME"] = host[1:-1] if host[:1] == "[" else host
        environ["SERVER_PORT"] = port or _DEFAULT_PORTS.get(scheme, "80")
    return environ


_DEFAULT_PORTS = {"http": "80", "https": "443"}


#: ``want`` for "the whole body".
_ALL = 1 << 62
#: Most bytes of a body read straight into one ``bytes`` at once (allocated
#: before they arrive, so a large announced length costs nothing up front).
_TAKE_AT_ONCE = 1 << 20


class Input(io.RawIOBase):
    """``wsgi.input``: the request body, read through the connection.

    Reading stops at the end of the body; the first read answers
    ``Expect: 100-continue``.
    """

    def __init__(self, conn: http11.Connection, transport: Transport) -> None:
        self._conn = conn
        self._transport = transport
        self._buffer = b""
        self._done = conn.body_done

    def readable(self) -> bool:
        """Always true."""
        return True

    def _pull(self, want: int = 0) -> bytes:
        """The next chunk of the body, or ``b""`` at its end.

        ``want``: how many bytes the caller needs at least; they are gathered
        before parsing (one piece, no joining) when the body has a length.
        """
        if self._done:
            return b""
        conn = self._conn
        cont = conn.continue_response()
        if cont:
            self._transport.send(cont)
        while True:
            event = conn.next_event()
            if type(event) is bytes:
                self._done = conn.body_ends_here()
                return event
            if event is END_OF_MESSAGE:
                self._done = True
                return b""
            if event is NEED_DATA:
                left = conn.body_left
                # The rest of a sized body goes straight into the bytes
                # handed to the application, around the parser.
                taking = bool(want) and conn.can_take_body()
                data: bytes | memoryview | None = None
                try:
                    if taking:
                        assert left is not None
                        data = self._transport.recv_body(min(want, left, _TAKE_AT_ONCE))
                        if data is None:  # not on this transport
                            taking = False
                    if not taking:
                        data = self._transport.recv(min(want, left) if left else 0)
                except TimeoutError:
                    raise BodyTimeoutError(
                        "The client stopped sending the request body (timed out)."
                    ) from None
                except OSError as error:
                    raise ClientDisconnectedError(
                        f"Reading the request body failed: {error}"
                    ) from None
                if not data:
                    raise ClientDisconnectedError(
                        "The client closed the connection before the end of the body."
                    )
                if taking:
                    assert type(data) is bytes
                    conn.body_taken(len(data))
                    self._done = conn.body_ends_here()
                    return data
                conn.receive_data(data)
                continue
            raise ClientDisconnectedError(f"Unexpected {event!r} in the body.")

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all of the body when negative)."""
        if size is None or size < 0:
            parts = [self._buffer] if self._buffer else []
            self._buffer = b""
            while True:
                chunk = self._pull(_ALL)
                if not chunk:
                    return parts[0] if len(parts) == 1 else b"".join(parts)
                parts.append(chunk)
        buffer = self._buffer
        have = len(buffer)
        if have < size:
            # Large bodies arrive as one piece: no join, no copy.
            parts = [buffer] if have else []
            while have < size:
                chunk = self._pull(size - have)
                if not chunk:
                    break
                parts.append(chunk)
                have += len(chunk)
            buffer = parts[0] if len(parts) == 1 else b"".join(parts)
        self._buffer = buffer[size:]
        return buffer[:size]

    def readinto(self, b: t.Any) -> int:
        """Read into the buffer ``b``; return the number of bytes."""
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to ``size`` bytes when given)."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                end += 1
                break
            if size is not None and 0 <= size <= len(buffer):
                end = size
                break
            chunk = self._pull()
            if not chunk:
                end = len(buffer)
                break
            buffer += chunk
        if size is not None and 0 <= size < end:
            end = size
        self._buffer = buffer[end:]
        return buffer[:end]

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read lines until the end (or about ``hint`` bytes)."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> t.Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class FileWrapper:
    """``wsgi.file_wrapper``: lets the server send a file with ``sendfile``.

    Iterating reads blocks of ``block_size`` bytes (used over TLS and for
    objects that are not real files).
    """

    def __init__(self, filelike: t.IO[bytes], block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> t.Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.block_size)
            if not block:
                return
            yield block

    def close(self) -> None:
        """Close the file."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def file_size(self) -> tuple[int, int] | None:
        """``(offset, bytes left)`` for a regular file, else ``None``."""
        try:
            fileno = self.filelike.fileno()
            offset = self.filelike.tell()
            st = os.fstat(fileno)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        import stat

        if not stat.S_ISREG(st.st_mode):
            return None
        return offset, max(st.st_size - offset, 0)


class _AbortError(Exception):
    """Headers were sent and the body can't be finished: drop the connection."""


def _status_code(status: str) -> int:
    if (
        type(status) is not str
        or len(status) < 4
        or status[3] != " "
        or not status[:3].isdigit()
    ):
        raise LocalProtocolError(
            f"Invalid status {status!r} from the application: use e.g. '200 OK'."
        )
    if "\r" in status or "\n" in status or "\x00" in status:
        raise LocalProtocolError(f"Invalid status {status!r}: it contains CR/LF/NUL.")
    return int(status[:3])


class Exchange:
    """One request and its response: calls the application, frames the answer.

    :param app: the WSGI application.
    :param conn: the HTTP/1.1 state of the connection.
    :param transport: where the bytes go.
    :param passthrough_errors: re-raise the application's exceptions.
    """

    def __init__(
        self,
        app: WSGIApplication,
        conn: http11.Connection,
        transport: Transport,
        client: str,
        passthrough_errors: bool = False,
        can_sendfile: bool = True,
    ) -> None:
        self.app = app
        self.conn = conn
        self.transport = transport
        self.client = client
        self.passthrough_errors = passthrough_errors
        self.can_sendfile = can_sendfile
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.code = 0
        #: True when the connection must be dropped without a proper end.
        self.aborted = False
        #: True once the application took the connection's socket
        #: (:data:`TAKE_SOCKET_KEY`): nothing more is sent or logged for it.
        self.taken = False

    # -- start_response and write -------------------------------------------------

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> t.Callable[[bytes], object]:
        """PEP 3333's ``start_response``."""
        if exc_info:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() was already called.")
        self.status = status
        self.headers = headers
        return self.write

    def _send_head(self, content_length: int | None) -> bytes:
        if self.status is None:
            raise AssertionError(
                "The application returned or wrote before calling start_response()."
            )
        status = self.status
        self.code = _status_code(status)
        check = http11.check_header
        for name, value in self.headers:
            if type(name) is not str or type(value) is not str:
                raise LocalProtocolError(
                    f"Response header {(name, value)!r} is not a pair of strings."
                )
            check(name, value)
        head = self.conn.send_response(status, self.headers, content_length)
        self.headers_sent = True
        return head

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()`` callable (and the path for each body chunk)."""
        if type(data) is not bytes:
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError(
                    f"The application must produce bytes, not {type(data).__name__}."
                )
        if not self.headers_sent:
            head = self._send_head(None)
            self.transport.send(head + self.conn.send_body(data))
        elif data:
            self.transport.send(self.conn.send_body(data))

    # -- the exchange -------------------------------------------------------

    def run(self, environ: dict[str, t.Any]) -> None:
        """Call the application and send its response (or an error).

        Called as soon as the request's head is complete: the request log's
        duration counts from here.
        """
        started = monotonic()
        try:
            self._call(environ)
        except ClientDisconnectedError as error:
            self.conn.must_close()
            log_error(f"{self.client}: {error}")
            if type(error) is BodyTimeoutError and not self.headers_sent:
                self._send_error(408, "the request body did not arrive in time.")
            else:
                self.aborted = True
            if not self.code:
                self.code = 400
        except RemoteProtocolError as error:
            self.conn.must_close()
            log_error(f"{self.client}: bad request body: {error}")
            if not self.headers_sent:
                self._send_error(error.status_hint, str(error))
            else:
                self.aborted = True
        except OSError as error:
            # Writing failed: the client is gone.
            self.aborted = True
            self.conn.must_close()
            log_error(f"{self.client} disconnected: {error}")
            if not self.code:
                self.code = 499
        except LocalProtocolError as error:
            self.conn.must_close()
            logger.error("Error in the response of %s: %s", _line(environ), error)
            if not self.headers_sent:
                self._send_error(500, "the application sent an invalid response.")
            else:
                self.aborted = True
        except _AbortError:
            self.aborted = True
            self.conn.must_close()
        except (Exception, SystemExit):
            # sys.exit() in a view is the view's error, not a way to stop the
            # server (Ctrl+C and shutdown() are).
            self.conn.must_close()
            if self.passthrough_errors:
                self.aborted = True
                if not self.headers_sent:
                    self.code = -1  # nothing was answered: no request log line
                    log_error(
                        f"{self.client}: no response to {_line(environ)}: the"
                        " application's error passes through (passthrough_errors);"
                        " connection closed."
                    )
                raise
            logger.exception("Error on request %s:", _line(environ))
            if not self.headers_sent:
                self._send_error(500, "the server hit an error it could not handle.")
            else:
                self.aborted = True
        finally:
            # taken: the app owns the socket now; code -1: nothing was
            # answered (passthrough_errors).
            if not self.taken and self.code >= 0:
                log_request(
                    self.client,
                    _line(environ),
                    self.code or 500,
                    None,
                    monotonic() - started,
                )

    def _send_error(self, status: int, message: str) -> None:
        self.code = status
        self.headers_sent = True
        self.conn.must_close()
        try:
            self.transport.send(http11.error_response(status, message))
        except OSError:
            self.aborted = True

    def _call(self, environ: dict[str, t.Any]) -> None:
        result = self.app(environ, self.start_response)  # type: ignore[arg-type]
        try:
            if self.taken:
                return  # the socket is the application's now
            conn = self.conn
            if (
                type(result) is list or type(result) is tuple
            ) and not self.headers_sent:
                if len(result) == 1:
                    body = result[0]
                    if type(body) is not bytes:
                        body = self._as_bytes(body)
                else:
                    body = b"".join([self._as_bytes(part) for part in result])
                head = self._send_head(len(body))
                self.transport.send(self._whole(head, body))
                return
            if (
                type(result) is FileWrapper
                and self.can_sendfile
                and self._send_file(result)
            ):
                return
            write = self.write
            for chunk in result:
                if chunk:
                    write(chunk)
                elif type(chunk) is not bytes:
                    write(chunk)
            if not self.headers_sent:
                head = self._send_head(0)
                self.transport.send(self._whole(head, b""))
                return
            try:
                end = conn.send_end()
            except LocalProtocolError as error:
                logger.error("Error in the response of %s: %s", _line(environ), error)
                raise _AbortError from None
            if end:
                self.transport.send(end)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _whole(self, head: bytes, body: bytes) -> bytes:
        """A whole response framed at once; if the application's own
        Content-Length does not match ``body``, nothing was sent yet, so the
        :class:`LocalProtocolError` leads to a 500 rather than a dropped
        connection."""
        conn = self.conn
        try:
            return head + conn.send_body(body) + conn.send_end()
        except LocalProtocolError:
            self.headers_sent = False
            raise

    @staticmethod
    def _as_bytes(data: t.Any) -> bytes:
        if type(data) is bytes:
            return data
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data)
        raise TypeError(
            f"The application must produce bytes, not {type(data).__name__}."
        )

    def _send_file(self, wrapper: FileWrapper) -> bool:
        if self.headers_sent:
            return False
        where = wrapper.file_size()
        if where is None:
            return False
        offset, size = where
        declared = None
        for name, value in self.headers:
            if name.lower() == "content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None:
            size = min(size, declared)
        head = self._send_head(None if declared is not None else size)
        conn = self.conn
        self.transport.send(head)
        if conn.raw_body_ok and size:
            sent = self.transport.sendfile(wrapper.filelike, offset, size)
            if sent is None:
                for block in wrapper:
                    self.write(block)
            else:
                conn.note_sent(sent)
        try:
            end = conn.send_end()
        except LocalProtocolError:
            raise _AbortError from None
        if end:
            self.transport.send(end)
        return True


def _line(environ: dict[str, t.Any]) -> str:
    return (
        f"{environ.get('REQUEST_METHOD', '-')} {environ.get('RAW_URI', '')}"
        f" {environ.get('SERVER_PROTOCOL', '')}"
    )


def base_environ(
    addresses: dict[str, str],
    url_scheme: str,
    multithread: bool,
    multiprocess: bool,
) -> dict[str, t.Any]:
    """The environ keys shared by every request on one connection."""
    environ: dict[str, t.Any] = {
        "SERVER_SOFTWARE": http11.SERVER_HEADER,
        "SCRIPT_NAME": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }
    environ.update(addresses)
    return environ
