"""Binding the listening sockets: TCP (dual-stack ``localhost``), Unix, inherited.

:func:`bind_sockets` turns the host and port a user asked for into listening
sockets, one per address (``localhost`` is both 127.0.0.1 and ::1 on the same
port); :func:`release_sockets` closes them and removes the Unix socket files this
process created; :func:`sockets_from_env` rebuilds the sockets a reloader
supervisor handed to its child; :func:`describe_urls` writes the banner's
`` * Running on`` lines. When binding fails, :class:`BindError` (or its
:class:`AddressInUseError`) carries the operating system's message and the way
out, ready to show without a traceback.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import stat
import traceback
import typing as t
import weakref

from .._compat import (
    AF_UNIX,
    HAS_UNIX_SOCKETS,
    allow_address_reuse,
    find_port_holder,
)
from .._env import is_run_from_cli
from .._log import escape_control

#: The environment variable through which the reloader's supervisor hands its
#: bound sockets to the serving child: a comma-separated list of file numbers.
FDS_ENV = "CITUS_SERVER_FDS"

#: The prefix of a host that names a Unix domain socket: ``unix://PATH``.
UNIX_PREFIX = "unix://"

#: The host used when none is given.
DEFAULT_HOST = "localhost"

#: The listen backlog: large, so bursts of connections are not refused.
BACKLOG = max(socket.SOMAXCONN, 1024)

#: How many times a port picked by the system for the first address is tried
#: again when it turns out to be taken for the second one (``localhost:0``).
PORT_ZERO_ATTEMPTS = 8

#: How far :class:`BindError` looks, past the port asked for, for a free port.
FREE_PORT_SEARCH = 100

_Address = tuple[socket.AddressFamily, tuple[t.Any, ...]]

# Unix socket files this process created: socket -> (pid, path, device, inode).
# A process that inherits the socket (a reloader child, a forked worker) finds
# no entry for its own socket objects, or another pid, and never unlinks.
_owned_unix: weakref.WeakKeyDictionary[socket.socket, tuple[int, str, int, int]] = (
    weakref.WeakKeyDictionary()
)


class BindError(OSError):
    """The server could not listen where it was asked to.

    Raised by :func:`bind_sockets`. ``str()`` gives the operating system's
    message; :meth:`explain` gives every line to show the user, ending with the
    way out. The original exception is kept as ``__cause__`` and ``original``.
    """

    def __init__(
        self,
        original: BaseException,
        host: str,
        port: int,
        *,
        hint: list[str] | None = None,
    ) -> None:
        code = getattr(original, "errno", None)
        reason = getattr(original, "strerror", None)
        if code is not None and reason is not None:
            super().__init__(code, reason)
        else:
            super().__init__(str(original))
        #: The exception raised by the operating system (or by the checks here).
        self.original = original
        #: The host that was asked for (``unix://PATH`` for a Unix socket).
        self.host = host
        #: The port that was asked for.
        self.port = port
        self._hint = hint
        self._lines: list[str] | None = None

    @property
    def address_in_use(self) -> bool:
        """Whether another program already listens on the address."""
        return self.errno in _IN_USE_ERRNOS

    def explain(self) -> list[str]:
        """The lines to show the user: the OS message, then the way out.

        For an address in use, this names the process that holds the port where
        the platform lets us find it, and suggests the next port that is free.
        """
        if self._lines is None:
            first = traceback.format_exception_only(type(self.original), self.original)[
                -1
            ].rstrip("\n")
            self._lines = [first, *(self._hint or self._default_hint())]
        return self._lines

    def _default_hint(self) -> list[str]:
        code = self.errno
        if self.host.startswith(UNIX_PREFIX):
            path = self.host[len(UNIX_PREFIX) :]
            if self.address_in_use:
                return [
                    f"Another server is listening on the Unix socket {path!r}.",
                    "Either stop that server, or pick another path: "
                    + _run_with(host=f"unix://{_other_path(path)}"),
                ]
            return [
                f"citus could not listen on the Unix socket {path!r}.",
                "Check that its folder exists and is writable, and that the path"
                " is short (about 100 characters at most).",
            ]
        if self.address_in_use:
            return self._in_use_hint()
        if code in (errno.EACCES, getattr(errno, "WSAEACCES", -1)):
            where = f"Port {self.port}"
            if 0 < self.port < 1024:
                why = (
                    f"{where} is a privileged port (below 1024): only an"
                    " administrator may listen on it."
                )
            else:
                why = (
                    f"{where} is reserved or blocked on this machine (by the"
                    " system, a firewall or a security policy)."
                )
            free = _next_free_port(self.host, max(self.port, 8000) if self.port else 0)
            suggestion = f" {_run_with(port=free)}" if free else ""
            return [why, f"Use a port above 1024 instead:{suggestion}"]
        no_ipv6 = (errno.EAFNOSUPPORT, getattr(errno, "WSAEAFNOSUPPORT", -1))
        if ":" in self.host and (code in no_ipv6 or not has_ipv6()):
            return [
                f"citus cannot listen on {self.host!r}: this machine has no IPv6"
                " (or it is turned off).",
                f"Use IPv4 instead: {_run_with(host='127.0.0.1')} (or localhost,"
                " which uses IPv6 only where it is available)",
            ]
        if code == errno.EADDRNOTAVAIL or code == getattr(
            errno, "WSAEADDRNOTAVAIL", -1
        ):
            return [
                f"{self.host!r} is not an address of this machine, so citus cannot"
                " listen on it.",
                "Use localhost (this machine only) or 0.0.0.0 (every network): "
                + _run_with(host="localhost"),
            ]
        if isinstance(self.original, socket.gaierror):
            return [
                f"citus could not find the address of the host name {self.host!r}.",
                "Check its spelling, or use an address:"
                f" {_run_with(host='localhost')} (or 127.0.0.1, ::1, 0.0.0.0).",
            ]
        return [
            f"citus could not listen on {self.host!r}, port {self.port}.",
            "Check the host and the port: " + _run_with(host="localhost", port=8000),
        ]

    def _in_use_hint(self) -> list[str]:
        holder = find_port_holder(self.port) if self.port else None
        if holder is not None:
            lines = [
                f"Port {self.port} is in use by another program:"
                f" PID {holder.pid} ({_shorten(holder.command)})."
            ]
        else:
            lines = [f"Port {self.port} is in use by another program."]
        free = _next_free_port(self.host, self.port + 1)
        if free:
            lines.append(
                f"Either stop that program, or use another port: {_run_with(port=free)}"
            )
        else:
            lines.append("Either stop that program, or use another port (--port).")
        return lines


class AddressInUseError(BindError):
    """Another program already listens on the address (``EADDRINUSE``)."""


_IN_USE_ERRNOS = (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1))


def _bind_error(
    original: BaseException, host: str, port: int, *, hint: list[str] | None = None
) -> BindError:
    """A :class:`BindError`, or :class:`AddressInUseError` when that is the cause."""
    if getattr(original, "errno", None) in _IN_USE_ERRNOS:
        return AddressInUseError(original, host, port, hint=hint)
    return BindError(original, host, port, hint=hint)


def _run_with(**options: str | int) -> str:
    """How the user asks for ``options`` (``host``, ``port``): on the command
    line under ``citus run``, else as the arguments of ``app.run()`` (a
    script's server, or ``run_simple``'s, whose ``hostname`` is ``host``)."""
    if is_run_from_cli():
        return "citus run " + " ".join(f"--{k} {v}" for k, v in options.items())
    return "app.run(" + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")"


def _other_path(path: str) -> str:
    """A path next to ``path`` to suggest instead: ``app.sock`` -> ``app-2.sock``."""
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}-2.{suffix}" if dot and "/" not in suffix else f"{path}-2"


def _shorten(command: str, limit: int = 160) -> str:
    """One line, printable, at most ``limit`` characters."""
    text = escape_control(" ".join(command.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _next_free_port(host: str, start: int) -> int | None:
    """The first port from ``start`` on which ``host`` can be bound now."""
    if start <= 0:
        return None
    for port in range(start, min(start + FREE_PORT_SEARCH, 65536)):
        try:
            socks = bind_sockets(host, port)
        except (BindError, OSError):
            continue
        release_sockets(socks)
        return port
    return None


def is_unix_host(host: str) -> bool:
    """Whether ``host`` names a Unix domain socket (``unix://PATH``)."""
    return host.startswith(UNIX_PREFIX)


def has_ipv6() -> bool:
    """Whether this machine can listen on the IPv6 loopback address ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind and listen on every address ``host`` stands for, on one port.

    - ``localhost`` (and an empty host): 127.0.0.1 and, where the machine has
      IPv6, ::1, both on the same port;
    - an IPv4 or IPv6 address (``127.0.0.1``, ``::1``, ``[::1]``); ``0.0.0.0``
      is every IPv4 address, ``::`` every IPv6 address and, where the system
      allows it, every IPv4 address too (dual-stack);
    - a host name: every address it resolves to;
    - ``unix://PATH``: a Unix domain socket at ``PATH``. A socket file left by
      a server that is gone is replaced; any other existing file is refused.

    With ``port`` 0 the system picks a free port, the same one for every address.
    ``SO_REUSEADDR`` is set on POSIX only (on Windows it would let two servers
    share a port). The sockets are not inheritable; the reloader makes them so.

    :param host: where to listen, as above.
    :param port: the TCP port, ignored for a Unix socket.
    :returns: the listening sockets, one per address.
    :raises BindError: when any address cannot be bound; nothing stays bound.
    """
    if is_unix_host(host):
        return [_bind_unix(host)]
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise _bind_error(
            ValueError(f"port must be a number from 0 to 65535, not {port!r}"),
            host,
            0,
            hint=[f"Use a port such as 8000: {_run_with(port=8000)}"],
        )
    addresses = _resolve(host, port)
    attempts = PORT_ZERO_ATTEMPTS if port == 0 and len(addresses) > 1 else 1
    for _attempt in range(attempts):
        try:
            return _bind_all(host, port, addresses)
        except _RetryPortZero:
            continue
    # Every port the system offered was taken on another address: give up.
    raise _bind_error(
        OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)),
        host,
        port,
        hint=[
            f"citus could not find a port free on every address of {host!r}"
            f" in {attempts} tries.",
            f"Pick a port yourself: {_run_with(port=8000)}",
        ],
    )


class _RetryPortZero(Exception):
    """The port picked for the first address is taken on a later one."""


def _bind_all(host: str, port: int, addresses: list[_Address]) -> list[socket.socket]:
    bound: list[socket.socket] = []
    try:
        for index, (family, sockaddr) in enumerate(addresses):
            if bound and port == 0:
                sockaddr = (sockaddr[0], bound[0].getsockname()[1], *sockaddr[2:])
            try:
                bound.append(_bind_tcp(family, sockaddr))
            except OSError as error:
                if index > 0 and _no_such_family(error, family):
                    continue  # e.g. ::1 on a machine without IPv6 after all
                if index > 0 and port == 0 and error.errno == errno.EADDRINUSE:
                    raise _RetryPortZero() from error
                raise _bind_error(error, host, sockaddr[1] or port) from error
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound


def _no_such_family(error: OSError, family: socket.AddressFamily) -> bool:
    return family == socket.AF_INET6 and error.errno in (
        errno.EADDRNOTAVAIL,
        errno.EAFNOSUPPORT,
        getattr(errno, "WSAEADDRNOTAVAIL", -1),
        getattr(errno, "WSAEAFNOSUPPORT", -1),
    )


def _resolve(host: str, port: int) -> list[_Address]:
    """The (family, sockaddr) pairs to bind for ``host``."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "" or name.lower() == DEFAULT_HOST:
        addresses: list[_Address] = [(socket.AF_INET, ("127.0.0.1", port))]
        if has_ipv6():
            addresses.append((socket.AF_INET6, ("::1", port, 0, 0)))
        return addresses
    try:
        literal = ipaddress.ip_address(name)
    except ValueError:
        literal = None
    if literal is not None and literal.version == 4:
        return [(socket.AF_INET, (name, port))]
    if literal is not None:
        return [(socket.AF_INET6, (name, port, 0, 0))]
    _check_not_url(host, name)
    try:
        infos = socket.getaddrinfo(
            name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as error:
        raise _bind_error(error, host, port) from error
    result: list[_Address] = []
    seen: set[tuple[int, str]] = set()
    # IPv4 first, as for localhost: the banner's first URL is the one people copy.
    for family, _, _, _, sockaddr in sorted(infos, key=lambda info: info[0]):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        key = (int(family), str(sockaddr[0]))
        if key not in seen:
            seen.add(key)
            result.append((family, tuple(sockaddr)))
    if not result:
        raise _bind_error(
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            host,
            port,
        )
    return result


def _check_not_url(host: str, name: str) -> None:
    """Refuse ``http://...`` and ``name:port`` given as a host, saying what to do."""
    if "://" in name:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(name)
            bare, url_port = parts.hostname or "localhost", parts.port or 8000
        except ValueError:
            bare, url_port = "localhost", 8000
        raise _bind_error(
            ValueError(f"the host {host!r} is a URL, not a host name"),
            host,
            0,
            hint=[
                "Give the host alone, and the port on its own:"
                f" {_run_with(host=bare, port=url_port)}",
                "For a Unix socket, write unix:///path/to/app.sock.",
            ],
        )
    bare, sep, maybe_port = name.rpartition(":")
    bracketed = bare.startswith("[") and bare.endswith("]")  # [::1]:8000
    if bracketed:
        bare = bare[1:-1]
    if sep and maybe_port.isdigit() and (bracketed or ":" not in bare):
        raise _bind_error(
            ValueError(f"the host {host!r} includes a port"),
            host,
            0,
            hint=[
                "Give the port on its own:"
                f" {_run_with(host=bare or 'localhost', port=int(maybe_port))}",
            ],
        )


def _bind_tcp(
    family: socket.AddressFamily, sockaddr: tuple[t.Any, ...]
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        allow_address_reuse(sock)
        if family == socket.AF_INET6:
            wildcard = sockaddr[0] == "::"
            dual = wildcard and socket.has_dualstack_ipv6()
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(host: str) -> socket.socket:
    path = os.path.expanduser(host[len(UNIX_PREFIX) :])
    if not path:
        raise _bind_error(
            ValueError(f"no path after 'unix://' in {host!r}"),
            host,
            0,
            hint=["Give the socket's path: " + _run_with(host="unix:///tmp/app.sock")],
        )
    if not HAS_UNIX_SOCKETS:
        raise _bind_error(
            OSError(errno.EAFNOSUPPORT, "Unix domain sockets are not supported"),
            host,
            0,
            hint=["This Python has no AF_UNIX: listen on TCP instead (--host)."],
        )
    _clear_stale_socket(host, path)
    sock = socket.socket(AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(BACKLOG)
        info = os.stat(path)
    except OSError as error:
        sock.close()
        raise _bind_error(error, host, 0) from error
    _owned_unix[sock] = (os.getpid(), os.path.abspath(path), info.st_dev, info.st_ino)
    return sock


def _clear_stale_socket(host: str, path: str) -> None:
    """Remove a socket file at ``path`` that no server answers on."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise _bind_error(error, host, 0) from error
    if not stat.S_ISSOCK(info.st_mode):
        raise _bind_error(
            FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path),
            host,
            0,
            hint=[
                f"{path!r} exists and is not a socket; citus left it untouched.",
                "Pick a path where no file is (or move that file away): "
                + _run_with(host=f"unix://{_other_path(path)}"),
            ],
        )
    probe = socket.socket(AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # nobody listens: a stale file left by a server that is gone
    except OSError as error:
        raise _bind_error(error, host, 0) from error
    else:
        raise _bind_error(
            OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)), host, 0
        )
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise _bind_error(error, host, 0) from error


def release_sockets(sockets: t.Iterable[socket.socket]) -> None:
    """Close ``sockets`` and remove the Unix socket files this process created.

    A socket inherited from another process (the reloader's child, a forked
    worker) is closed but its file stays: only the process that bound it, and
    only while the file is still the one it created, removes it. Safe to call
    more than once.

    :param sockets: sockets from :func:`bind_sockets` or :func:`sockets_from_env`.
    """
    for sock in list(sockets):
        owned = _owned_unix.pop(sock, None)
        sock.close()
        if owned is None:
            continue
        pid, path, device, inode = owned
        if pid != os.getpid():
            continue
        try:
            info = os.lstat(path)
            if (info.st_dev, info.st_ino) == (device, inode):
                os.unlink(path)
        except OSError:
            pass


def sockets_from_env() -> list[socket.socket] | None:
    """The sockets handed over by the supervisor, or ``None`` outside a child.

    Reads ``CITUS_SERVER_FDS``: comma-separated file numbers of listening
    sockets (TCP over IPv4 or IPv6, or Unix); the family of each is read from
    the socket itself.

    :raises RuntimeError: when the variable does not name open sockets.
    """
    value = os.environ.get(FDS_ENV)
    if not value:
        return None
    sockets: list[socket.socket] = []
    try:
        for item in value.split(","):
            sockets.append(socket.socket(fileno=int(item)))
    except (ValueError, OSError) as error:
        for sock in sockets:
            sock.detach()
        raise RuntimeError(
            f"{FDS_ENV}={value!r} does not name open sockets ({error}). It is set"
            " by citus's reloader for its child; unset it to bind normally."
        ) from error
    return sockets


def describe_urls(sockets: t.Sequence[socket.socket], scheme: str) -> list[str]:
    """The banner lines (`` * Running on ...``) for ``sockets``.

    One URL per socket; a socket bound to every address (``0.0.0.0``, ``::``)
    says so and shows the loopback URL and this machine's own address instead.

    :param sockets: listening sockets.
    :param scheme: ``"http"`` or ``"https"``.
    """
    addresses: list[tuple[int, t.Any]] = []
    for sock in sockets:
        addresses.append((int(sock.family), sock.getsockname()))
    return describe_addresses(addresses, scheme)


def describe_addresses(
    addresses: t.Sequence[tuple[int, t.Any]],
    scheme: str,
    own_address: t.Callable[[int], str | None] | None = None,
) -> list[str]:
    """The banner lines for ``(family, sockname)`` pairs; see :func:`describe_urls`.

    :param addresses: each socket's family and ``getsockname()``.
    :param scheme: ``"http"`` or ``"https"``.
    :param own_address: finds this machine's address for a family (by default
        :func:`machine_address`).
    """
    find = own_address or machine_address
    lines: list[str] = []
    for family, name in addresses:
        if HAS_UNIX_SOCKETS and family == AF_UNIX:
            path = name.decode(errors="replace") if isinstance(name, bytes) else name
            secure = " (HTTPS)" if scheme == "https" else ""
            lines.append(f" * Running on unix://{path}{secure}")
            continue
        host, port = name[0], name[1]
        if host in ("0.0.0.0", "::"):
            lines.append(
                f" * Running on all addresses ({host}): reachable from your network"
            )
            loopbacks = ["127.0.0.1"] if host == "0.0.0.0" else ["::1"]
            own_families = [int(family)]
            if host == "::" and socket.has_dualstack_ipv6():
                loopbacks.insert(0, "127.0.0.1")
                own_families.insert(0, int(socket.AF_INET))
            urls = [_url(scheme, address, port) for address in loopbacks]
            for own_family in own_families:
                own = find(own_family)
                if own and own not in loopbacks:
                    urls.append(_url(scheme, own, port))
            lines.extend(f" * Running on {url}" for url in urls)
            continue
        lines.append(f" * Running on {_url(scheme, host, port)}")
    return lines


def _url(scheme: str, host: str, port: int) -> str:
    if ":" in host:
        host = "[" + host.replace("%", "%25") + "]"
    return f"{scheme}://{host}:{port}"


def machine_address(family: int) -> str | None:
    """This machine's address on its main network, for ``family``, or ``None``.

    Asks the system which address it would send from by connecting a UDP socket
    (which sends nothing); falls back to resolving the host name.
    """
    target = "10.254.254.254" if family == socket.AF_INET else "fd00:c17:5::1"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((target, 9))
            address = str(probe.getsockname()[0])
    except OSError:
        address = ""
    if address and not _is_loopback_or_unspecified(address):
        return address
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        candidate = str(info[4][0])
        if not _is_loopback_or_unspecified(candidate):
            return candidate
    return None


def _is_loopback_or_unspecified(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    return parsed.is_loopback or parsed.is_unspecified or parsed.is_link_local
