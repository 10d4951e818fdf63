"""Who may use the debugger: its PIN, the hosts and origins it answers, and
the lockout after wrong PINs.

:class:`Guard` holds the rules that :class:`~citus.debug.DebuggedApplication`
applies to its error pages and its endpoints (:mod:`.endpoints`):

- every debugger request must carry a trusted ``Host`` (local names, plus those
  the user configures) and, when sent, a same-origin ``Origin`` and
  ``Sec-Fetch-Site``; the console also needs a loopback peer (from the socket's
  address, ``REMOTE_ADDR``) unless the user trusted the host explicitly;
- the console needs the page's secret and a cookie obtained with the PIN; the
  cookie holds a random token that the server checks and that expires;
- wrong PINs are counted in a small state file shared by the reloader's
  processes and locked with :func:`citus._compat.lock_file`; after
  :data:`MAX_PIN_ATTEMPTS` unlocking is refused for :data:`LOCKOUT_SECONDS`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import typing as t

from .._log import echo
from ._http import LOCAL_HOSTS, get_cookie, host_name, is_loopback_address
from ._state import SharedState, hash_token, normalize_pin

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: Environment variable: the PIN, or ``off`` to disable the lock.
PIN_ENV = "CITUS_DEBUGGER_PIN"
#: Environment variable: more trusted host names, separated by commas.
TRUSTED_HOSTS_ENV = "CITUS_DEBUGGER_TRUSTED_HOSTS"
#: Wrong PINs accepted before unlocking is refused.
MAX_PIN_ATTEMPTS = 10
#: How long unlocking is refused after too many wrong PINs (seconds).
LOCKOUT_SECONDS = 300
#: How long an unlocked browser stays unlocked (seconds).
TOKEN_LIFETIME = 8 * 3600

#: The outcome of a PIN: ``("ok", token)``, ``("wrong", attempts left)``,
#: ``("lockout", until)`` or ``("locked", until)``.
PinResult = tuple[str, t.Any]


class Guard:
    """The debugger's PIN, trusted hosts and lockout.

    :param pin: the PIN; ``None`` for ``CITUS_DEBUGGER_PIN``, else a random
        one kept in ``state`` across reloads. ``"off"`` disables the lock.
    :param trusted_hosts: more host names the debugger answers (``.example.com``
        or ``*.example.com`` for a domain and its subdomains).
    :param state: the state file shared with the reloader's other processes.

    Reads ``CITUS_DEBUGGER_PIN`` and ``CITUS_DEBUGGER_TRUSTED_HOSTS`` (comma
    separated).
    """

    def __init__(
        self, pin: str | None, trusted_hosts: t.Iterable[str], state: SharedState
    ) -> None:
        self._state = state
        configured = list(trusted_hosts)
        configured += [
            h for h in os.environ.get(TRUSTED_HOSTS_ENV, "").split(",") if h.strip()
        ]
        names = {host_name(h.replace("*.", ".", 1)) for h in configured}
        # Local names are trusted anyway; listing them must not let other
        # machines (which can send "Host: localhost") use the console.
        self._trusted = {n for n in names if n and not is_local_name(n)}
        if pin is None:
            pin = os.environ.get(PIN_ENV) or None
        if pin is not None and not normalize_pin(pin):
            pin = None  # blank (or only dashes): nobody could type it; use a random one
        if pin is None:
            pin = t.cast(str, state.update(lambda data: data["pin"]))
        #: The PIN, or ``None`` when the lock is off.
        self.pin: str | None = None if pin.strip().lower() == "off" else pin.strip()
        digest = hashlib.sha256(state.path.encode()).hexdigest()[:10]
        #: The name of the cookie an unlocked browser holds.
        self.cookie_name = f"__citus_debugger_{digest}"

    def trusts_request(self, environ: WSGIEnvironment) -> bool:
        """Whether a request may see tracebacks: its ``Host`` is trusted and its
        ``Origin`` / ``Sec-Fetch-Site``, when sent, are same-origin.

        :param environ: a WSGI environ.
        """
        return self.host_trusted(environ) and self.same_origin(environ)

    def host_trusted(self, environ: WSGIEnvironment) -> bool:
        """Whether the request's ``Host`` is a local name or a configured one."""
        name = host_name(environ.get("HTTP_HOST", ""))
        return is_local_name(name) or self.configured_host(name)

    def configured_host(self, name: str) -> bool:
        """Whether ``name`` is one of the hosts the user trusted."""
        if not name:
            return False
        for entry in self._trusted:
            if entry.startswith("."):
                if name == entry[1:] or name.endswith(entry):
                    return True
            elif name == entry:
                return True
        return False

    def same_origin(self, environ: WSGIEnvironment) -> bool:
        """Whether ``Origin`` and ``Sec-Fetch-Site``, when sent, say that the
        request came from the same origin (or from a URL typed in)."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            scheme = environ.get("wsgi.url_scheme", "http")
            expected = f"{scheme}://{environ.get('HTTP_HOST', '')}".lower()
            if origin.strip().lower() != expected:
                return False
        site = environ.get("HTTP_SEC_FETCH_SITE")
        if site is not None:
            method = environ.get("REQUEST_METHOD", "GET")
            if site == "same-origin":
                return True
            return site == "none" and method in ("GET", "HEAD")
        return True

    def lockout_until(self) -> float:
        """When the lockout after wrong PINs ends, or ``0.0`` without one."""
        now = time.time()
        until = float(self._state.update(lambda data: data.get("locked_until", 0)))
        return until if until > now else 0.0

    def console_reason(self, environ: WSGIEnvironment, evalex: bool) -> str | None:
        """Why the console cannot be used for this request, or ``None``.

        A lockout after wrong PINs is not a reason here: it stops unlocking,
        not a browser that unlocked before.

        :param environ: the request; ``REMOTE_ADDR`` and ``HTTP_HOST`` are read.
        :param evalex: whether the debugger allows evaluation at all.
        """
        if not evalex:
            return (
                "The console is off: the debugger was started without evaluation"
                " (use_evalex=False)."
            )
        peer = environ.get("REMOTE_ADDR")
        name = host_name(environ.get("HTTP_HOST", ""))
        if not is_loopback_address(peer) and not self.configured_host(name):
            where = peer if peer else "an unknown address"
            return (
                f"The console is off: this request came from {where}, not from"
                f" this machine. To allow it, set {TRUSTED_HOSTS_ENV} to the host"
                " name you use to reach this server."
            )
        return None

    def authenticated(self, environ: WSGIEnvironment) -> bool:
        """Whether the request carries the cookie of an unlocked browser."""
        if self.pin is None:
            return True
        token = get_cookie(environ, self.cookie_name)
        if not token:
            return False
        digest = hash_token(token)
        now = time.time()

        def check(data: dict[str, t.Any]) -> bool:
            expiry = data.get("tokens", {}).get(digest)
            return isinstance(expiry, (int, float)) and expiry > now

        return bool(self._state.update(check))

    def try_pin(self, given: str, peer: str) -> PinResult:
        """Check a PIN typed by ``peer``, counting wrong ones across processes."""
        expected = normalize_pin(self.pin or "")
        attempt = normalize_pin(given)
        now = time.time()

        def change(data: dict[str, t.Any]) -> PinResult:
            until = float(data.get("locked_until", 0))
            if until > now:
                return ("locked", until)
            if until:
                data["locked_until"] = 0
                data["failures"] = 0
            if attempt and hmac.compare_digest(attempt, expected):
                token = secrets.token_urlsafe(32)
                tokens = {k: v for k, v in data.get("tokens", {}).items() if v > now}
                tokens[hash_token(token)] = now + TOKEN_LIFETIME
                data["tokens"] = tokens
                data["failures"] = 0
                return ("ok", token)
            data["failures"] = int(data.get("failures", 0)) + 1
            if data["failures"] >= MAX_PIN_ATTEMPTS:
                data["locked_until"] = now + LOCKOUT_SECONDS
                return ("lockout", data["locked_until"])
            return ("wrong", MAX_PIN_ATTEMPTS - data["failures"])

        result: PinResult = self._state.update(change)
        if result[0] == "wrong":
            echo(
                f" * Debugger: wrong PIN from {peer}"
                f" ({MAX_PIN_ATTEMPTS - result[1]} of {MAX_PIN_ATTEMPTS})",
                err=True,
            )
        elif result[0] == "lockout":
            echo(
                f" * Debugger: {MAX_PIN_ATTEMPTS} wrong PINs; unlocking the console"
                f" is refused until {_clock(result[1])} ({LOCKOUT_SECONDS // 60}"
                " minutes), even with the right PIN. Restart the server to reset.",
                err=True,
            )
        return result


def is_local_name(name: str) -> bool:
    """Whether ``name`` is ``localhost``, a loopback address or ``*.localhost``."""
    return name in LOCAL_HOSTS or name.endswith(".localhost")


def _clock(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def lockout_message(until: float) -> str:
    """What the page says while unlocking is refused, until ``until``."""
    return (
        f"The console is locked: after {MAX_PIN_ATTEMPTS} wrong PINs, unlocking is"
        f" refused until {_clock(until)}. Restart the server to reset it sooner."
    )


__all__ = [
    "LOCKOUT_SECONDS",
    "MAX_PIN_ATTEMPTS",
    "PIN_ENV",
    "TOKEN_LIFETIME",
    "TRUSTED_HOSTS_ENV",
    "Guard",
    "PinResult",
    "is_local_name",
    "lockout_message",
]
