"""Which names hold secrets, and how a query string hides their values.

Shared by the request log (:mod:`citus._log`) and the debugger
(:mod:`citus.debug.repr`), so that a URL reads the same in both places:
``/login?token=********&next=/``. A name is secret when it contains one of
a few telling parts (``pass``, ``token``, ``secret``, ...) or ends in ``key``,
in the spirit of Django's ``SafeExceptionReporterFilter``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

#: What a redacted value is shown as.
REDACTED = "********"

#: Parts of names (lower case, without ``_`` and ``-``) that mark a value as
#: secret.
_SECRET_PARTS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "signingkey",
    "auth",
    "credential",
    "signature",
    "cookie",
    "session",
    "csrf",
    "xsrf",
    "salt",
)
_SECRET_RE = re.compile("|".join(_SECRET_PARTS))


def is_secret_name(name: object) -> bool:
    """Whether a variable, key or header called ``name`` probably holds a secret.

    :param name: the name; anything that is not a string is never secret.
    """
    if not isinstance(name, str):
        return False
    normal = name.lower().replace("_", "").replace("-", "")
    if _SECRET_RE.search(normal):
        return True
    # "api_key", "SECRET_KEY", "fernet_key"; but a plain "key" is usually a
    # loop variable or a dictionary key, not a secret.
    return normal.endswith("key") and normal != "key"


# A ``name=value`` pair of a query string: after ``?`` or ``&``, or at the
# start of the text or of a quoted string ('password=x&page=2' in a repr).
QUERY_PAIR = re.compile(r"(^|[?&'\"])([\w.%+\[\]-]+)=([^&#'\"\s<>]*)")


def redact_pair(match: re.Match[str]) -> str:
    """The replacement for one :data:`QUERY_PAIR` match: the value hidden when
    the name looks secret."""
    lead, name, value = match.groups()
    if value and is_secret_name(unquote_plus(name)):
        return f"{lead}{name}={REDACTED}"
    return match.group(0)


def redact_query(target: str) -> str:
    """``target`` (a request target or URL) with secret query values hidden.

    ``/login?token=abc&next=/`` becomes ``/login?token=********&next=/``; a
    target without a query string is returned as it is, at once.

    :param target: the request target, as received.
    """
    if "?" not in target or "=" not in target:
        return target
    path, _, query = target.partition("?")
    return path + "?" + QUERY_PAIR.sub(redact_pair, query)
