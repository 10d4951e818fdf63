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

from .._redact import QUERY_PAIR, redact_pair
from .._redact import REDACTED as REDACTED
from .._redact import is_secret_name as is_secret_name

#: Longest representation shown before it is cut.
MAX_REPR = 600


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
# A scheme starts where a run of scheme characters starts (the look-behind):
# tried at every letter of a long word, the search took quadratic time (a 40 KB
# exception message held the error page for 15 s).
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s/:@'\"]*:)[^\s/@'\"]+@", re.I
)


# A quoted string, as repr() writes it.
_QUOTED = r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
# ``password='x'`` (a dataclass or keyword repr) and ``'password': 'x'`` (a
# dictionary nested in another object's repr).
_NAMED_STRING = re.compile(
    r"(?<![\w.])([A-Za-z_]\w*)=" + _QUOTED + r"|(['\"])([^'\"]+)\3: " + _QUOTED
)


def _redact_named(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        if is_secret_name(match.group(1)):
            return f"{match.group(1)}={REDACTED}"
    elif is_secret_name(match.group(4)):
        quote = match.group(3)
        return f"{quote}{match.group(4)}{quote}: {REDACTED}"
    return match.group(0)


def redact_text(text: str) -> str:
    """``text`` with the secrets that can be spotted inside it redacted.

    The password of a URL (``postgres://me:pw@db/app``), the values of
    secret-looking query parameters (``?token=abc&page=2``, also inside a repr
    or a bare query string) and strings under secret-looking names in reprs
    (``User(password='x')``, ``{'db': {'password': 'x'}}``) become ``********``.

    :param text: a URL, a query string, a header value or a repr.
    """
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    text = _NAMED_STRING.sub(_redact_named, text)
    return QUERY_PAIR.sub(redact_pair, text)


def redact(name: object, value: object, limit: int = MAX_REPR) -> str:
    """The text to show for ``value`` stored under ``name``: redacted or a repr.

    Passwords inside URLs (``DATABASE_URL = "postgres://me:pw@db/app"``) and
    secret-looking query parameters (``'/login?token=abc'``) are redacted
    whatever the name (:func:`redact_text`).

    :param name: the variable, key or header name.
    :param value: its value.
    :param limit: passed to :func:`safe_repr`.
    """
    if is_secret_name(name):
        return REDACTED
    return redact_text(safe_repr(value, limit))


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
    # __class__, not type(): a proxy (citus.request) names what it stands for.
    try:
        kind = obj.__class__
    except Exception:
        kind = type(obj)
    if not isinstance(kind, type):
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
