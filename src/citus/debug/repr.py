"""Safe, short, redacting representations of objects for the debugger.

The error page shows the locals of every frame and the console prints results;
both go through :func:`safe_repr`, which never raises (a broken ``__repr__`` is
reported, not propagated), cuts long output, and hides values whose names look
secret (:func:`is_secret_name`). :func:`dump` is the console's inspection helper.
Nothing here produces HTML: callers escape (the page) or insert text nodes (the
console's script), so a value can never become markup.
"""

from __future__ import annotations

import re
import sys
import typing as t

#: What a redacted value is shown as.
REDACTED = "********"
#: Longest representation shown before it is cut.
MAX_REPR = 600

#: Parts of names (lower case, without ``_`` and ``-``) that mark a value as
#: secret, in the spirit of Django's ``SafeExceptionReporterFilter``.
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


def safe_repr(value: object, limit: int = MAX_REPR) -> str:
    """``repr(value)`` that never raises and is at most about ``limit`` characters.

    Mappings have the values of secret-looking keys redacted.

    :param value: any object.
    :param limit: the length after which the text is cut (``...`` is appended).
    """
    try:
        if isinstance(value, dict) and any(is_secret_name(k) for k in value):
            text = _redacted_dict_repr(value)
        else:
            text = repr(value)
    except Exception as error:  # a broken __repr__ must not break the page
        text = f"<{type(value).__name__} object; repr() failed: {error!r}>"
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return text


def _redacted_dict_repr(value: dict[t.Any, t.Any]) -> str:
    parts = []
    for key, item in value.items():
        shown = REDACTED if is_secret_name(key) else repr(item)
        parts.append(f"{key!r}: {shown}")
    return "{" + ", ".join(parts) + "}"


# The password of a URL (postgres://user:PASSWORD@host/db), wherever it appears.
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^\s/:@'\"]*:)[^\s/@'\"]+@", re.I)


def redact(name: object, value: object, limit: int = MAX_REPR) -> str:
    """The text to show for ``value`` stored under ``name``: redacted or a repr.

    Passwords inside URLs (``DATABASE_URL = "postgres://me:pw@db/app"``) are
    redacted whatever the name.

    :param name: the variable, key or header name.
    :param value: its value.
    :param limit: passed to :func:`safe_repr`.
    """
    if is_secret_name(name):
        return REDACTED
    return _URL_PASSWORD.sub(rf"\1{REDACTED}@", safe_repr(value, limit))


def dump_text(obj: object = None, namespace: dict[str, t.Any] | None = None) -> str:
    """The text that :func:`dump` prints: an object's type, value and attributes.

    :param obj: the object to inspect.
    :param namespace: with no object, list these variables instead.
    """
    lines: list[str] = []
    if namespace is not None:
        lines.append("Local variables:")
        for name in sorted(namespace):
            if name.startswith("__") and name.endswith("__"):
                continue
            lines.append(f"  {name} = {redact(name, namespace[name], 200)}")
        return "\n".join(lines)
    kind = type(obj)
    lines.append(f"{kind.__module__}.{kind.__qualname__}: {safe_repr(obj)}")
    doc = getattr(obj, "__doc__", None)
    if isinstance(doc, str) and doc.strip() and kind.__module__ != "builtins":
        lines.append("  " + doc.strip().splitlines()[0][:200])
    if isinstance(obj, dict):
        lines.append(f"Items ({len(obj)}):")
        for key in list(obj)[:200]:
            lines.append(f"  {safe_repr(key, 80)}: {redact(key, obj[key], 200)}")
    names: list[str]
    try:
        names = sorted(dir(obj))
    except Exception:
        names = []
    attributes = []
    methods = []
    for name in names:
        if name.startswith("__") and name.endswith("__"):
            continue
        try:
            value = getattr(obj, name)
        except Exception as error:
            attributes.append(f"  {name} = <error: {error!r}>")
            continue
        if callable(value) and not isinstance(value, type):
            methods.append(name)
        else:
            attributes.append(f"  {name} = {redact(name, value, 200)}")
    if attributes:
        lines.append("Attributes:")
        lines.extend(attributes)
    if methods:
        lines.append("Methods: " + ", ".join(methods))
    return "\n".join(lines)


class _Dumper:
    """``dump(obj)``: print an object's type, value and attributes.

    With no argument, print the variables of the current console.
    """

    def __init__(self, namespace: dict[str, t.Any] | None = None) -> None:
        self._namespace = namespace

    def __call__(self, *objects: object) -> None:
        if not objects:
            sys.stdout.write(dump_text(namespace=self._namespace or {}) + "\n")
        for obj in objects:
            sys.stdout.write(dump_text(obj) + "\n")

    def __repr__(self) -> str:
        return "<dump(obj): print an object's type, value and attributes>"


#: ``dump(obj)`` as used in the console; each console gets its own bound copy.
dump = _Dumper()


def make_dump(namespace: dict[str, t.Any]) -> t.Callable[..., None]:
    """A :func:`dump` whose no-argument form lists ``namespace``.

    :param namespace: the console's variables.
    """
    return _Dumper(namespace)
