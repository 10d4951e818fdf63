"""Which responses get the live-reload script, and how it goes in: no I/O.

The rules, in the order they are asked (the first that says no wins, and the
response then passes through byte for byte):

============================  ==================================================
request method ``HEAD``       never touched (there is no body to add to)
status 1xx, 204, 304          never touched (no body)
status 206, ``Content-Range`` never touched (a part of a document)
``Content-Type``              only ``text/html`` (any charset but UTF-16/32)
``Content-Encoding``          never touched (the body is compressed)
``Content-Disposition``       ``attachment``: never touched (a download)
the body                      only a full document: ``<!doctype html``, ``<html``
                              or ``<body`` in it (htmx and Turbo fragments stay
                              as they are)
============================  ==================================================

A document whose length is known gets the script before its last ``</body>``
(or at its end) and a corrected ``Content-Length``; a streamed one (no
``Content-Length``) is judged by its first chunk and gets the script after its
last chunk. A ``Content-Security-Policy`` (and its ``-Report-Only`` twin) gets
exactly what the script needs, see :func:`allow_script`, and so does a policy
in a ``<meta http-equiv>`` tag (:func:`allow_in_meta`; of a streamed document,
in its first chunk). A changed document
loses its ``ETag`` and ``Last-Modified``: they describe the app's bytes, and a
browser that revalidated with them would get a 304 and show its cached copy,
whose script names the process that served it then (and reload again, for
ever).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from importlib import resources

#: Statuses whose responses have no body to add to.
NO_BODY_STATUSES = frozenset({204, 304})
#: A document is "full" when its start holds one of these (case-insensitive).
_DOCUMENT = re.compile(rb"<!doctype\s+html|<html[\s>]|<body[\s>]", re.IGNORECASE)
_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)
#: Charsets whose bytes an ASCII script would corrupt.
_WIDE_CHARSETS = re.compile(r"charset\s*=\s*\"?utf-?(16|32)", re.IGNORECASE)
#: Headers that describe the app's own bytes, dropped from a changed body.
VALIDATORS = frozenset({"etag", "last-modified"})
#: Headers whose policy the script must satisfy.
CSP_HEADERS = frozenset(
    {"content-security-policy", "content-security-policy-report-only"}
)


def _load_script() -> str:
    source = resources.files(__package__).joinpath("shared").joinpath("live.js")
    lines = (line.strip() for line in source.read_text("utf-8").splitlines())
    # Indentation and comment lines cost bytes in every page, nothing else.
    return "\n".join(line for line in lines if line and not line.startswith("//"))


#: The script's source, the same in every page (its settings are attributes).
SCRIPT = _load_script()
#: The CSP source that allows exactly :data:`SCRIPT` inline.
SCRIPT_HASH = (
    "'sha256-"
    + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    + "'"
)


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (any case), or ``None``."""
    lower = name.lower()
    for key, value in headers:
        if key.lower() == lower:
            return value
    return None


def eligible(method: str, status: str, headers: list[tuple[str, str]]) -> bool:
    """Whether a response may get the script, from what precedes its body."""
    if method.upper() == "HEAD":
        return False
    try:
        code = int(status.split(None, 1)[0])
    except (ValueError, IndexError):
        return False
    if code < 200 or code in NO_BODY_STATUSES or code == 206:
        return False
    if header(headers, "Content-Range") is not None:
        return False
    content_type = header(headers, "Content-Type") or ""
    if content_type.split(";", 1)[0].strip().lower() != "text/html":
        return False
    if _WIDE_CHARSETS.search(content_type):
        return False
    encoding = header(headers, "Content-Encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        return False
    disposition = header(headers, "Content-Disposition") or ""
    return disposition.split(";", 1)[0].strip().lower() != "attachment"


def is_document(start: bytes) -> bool:
    """Whether a body that begins with ``start`` is a full HTML document."""
    return _DOCUMENT.search(start) is not None


def script_tag(settings: dict[str, str]) -> bytes:
    """The ``<script>`` element, with ``settings`` as ``data-`` attributes."""
    attrs = "".join(
        f' data-{name}="{html.escape(value, quote=True)}"'
        for name, value in settings.items()
    )
    return f"<script{attrs}>{SCRIPT}</script>".encode()


def insert(body: bytes, tag: bytes) -> bytes:
    """``body`` with ``tag`` before its last ``</body>``, else at its end."""
    last = None
    for last in _BODY_END.finditer(body):  # noqa: B007 (the last one counts)
        pass
    if last is None:
        return body + tag
    return body[: last.start()] + tag + body[last.start() :]


#: A ``<meta>`` tag, and the attributes of one (name, then a quoted or bare value).
_META = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(
    rb"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"""
)
#: The ``http-equiv`` values of a policy in a ``<meta>`` tag (browsers ignore
#: the report-only one there).
_META_CSP = b"content-security-policy"


def allow_in_meta(body: bytes, repeat: bool = False) -> bytes:
    """``body`` with each ``<meta http-equiv="Content-Security-Policy">``
    policy allowing the script (:func:`allow_script`); the rest of the bytes,
    the tag's other attributes and its quotes included, stay as they are."""
    if _META_CSP not in body.lower():
        return body

    def change(tag: re.Match[bytes]) -> bytes:
        text = tag.group(0)
        content: re.Match[bytes] | None = None
        is_policy = False
        for attribute in _ATTRIBUTE.finditer(text, 5):
            name = attribute.group(1).lower()
            value = next((v for v in attribute.groups()[1:] if v is not None), b"")
            if name == b"http-equiv":
                is_policy = value.strip().lower() == _META_CSP
            elif name == b"content":
                content = attribute
        if not is_policy or content is None:
            return text
        group = next(i for i in (2, 3, 4) if content.group(i) is not None)
        policy = html.unescape(content.group(group).decode("utf-8", "replace"))
        changed = allow_script(policy, repeat)
        if changed == policy:
            return text
        value = changed.replace("&", "&amp;")
        if group == 3:
            value = value.replace("'", "&#39;")
        else:
            value = value.replace('"', "&quot;")
        if group == 4:
            value = f'"{value}"'  # a bare value cannot hold the spaces it gains
        start, end = content.span(group)
        return text[:start] + value.encode() + text[end:]

    return _META.sub(change, body)


def with_headers(
    headers: list[tuple[str, str]], length: int | None, repeat: bool = False
) -> list[tuple[str, str]]:
    """The response headers for the changed body: ``Content-Length`` set to
    ``length`` (when the original had one), no validators (``ETag``,
    ``Last-Modified``) and each policy allowing the script (and, with
    ``repeat``, its form; see :func:`allow_script`)."""
    result: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower in VALIDATORS:
            continue
        if lower == "content-length":
            if length is not None:
                result.append((name, str(length)))
            continue
        if lower in CSP_HEADERS:
            value = allow_script(value, repeat)
        result.append((name, value))
    return result


# --- Content-Security-Policy ---------------------------------------------------


def _directives(policy: str) -> list[list[str]]:
    """A policy as ``[name, source, ...]`` lists (empty ones dropped)."""
    return [part.split() for part in policy.split(";") if part.strip()]


def _find(directives: list[list[str]], name: str) -> list[str] | None:
    for directive in directives:
        if directive[0].lower() == name:
            return directive
    return None


def _inline_allowed(sources: list[str]) -> bool:
    """Whether a script directive already runs every inline script: with
    ``'unsafe-inline'`` and no nonce, hash or ``'strict-dynamic'`` (which
    would make browsers ignore it)."""
    lowered = [s.lower() for s in sources]
    if "'unsafe-inline'" not in lowered:
        return False
    return not any(
        s.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-"))
        or s == "'strict-dynamic'"
        for s in lowered
    )


def _add(directive: list[str], source: str) -> None:
    sources = directive[1:]
    lowered = [s.lower() for s in sources]
    if "'none'" in lowered:
        directive[1:] = [s for s in sources if s.lower() != "'none'"]
    directive.append(source)


def allow_script(policy: str, repeat: bool = False) -> str:
    """``policy`` with what the live-reload script needs, and nothing more.

    A header may hold several policies, separated by commas (as when a
    server joins repeated headers); each one is enforced on its own, so each
    is changed on its own:

    - scripts: the script's hash is added to ``script-src-elem``, else
      ``script-src``; when only ``default-src`` governs scripts, a
      ``script-src`` with its sources and the hash is added (``default-src``
      itself is left alone). A directive that already runs any inline
      script is left as it is (a hash would turn ``'unsafe-inline'`` off);
    - the event stream: ``'self'`` is added to ``connect-src`` the same way,
      unless ``'self'`` or ``*`` is there already;
    - with ``repeat`` (a page answering a request other than GET, which the
      script offers to send again as a form, to the page's own URL):
      ``'self'`` is added to a ``form-action`` that lacks it.
    """
    if "," in policy:
        return ",".join(_allow_one(part, repeat) for part in policy.split(","))
    return _allow_one(policy, repeat)


def _allow_one(policy: str, repeat: bool) -> str:
    """One policy of a header (no commas) changed as :func:`allow_script` says."""
    directives = _directives(policy)
    default = _find(directives, "default-src")
    script = _find(directives, "script-src-elem") or _find(directives, "script-src")
    if script is None and default is not None:
        script = ["script-src", *default[1:]]
        directives.append(script)
    if script is not None and not _inline_allowed(script[1:]):
        if SCRIPT_HASH not in script:
            _add(script, SCRIPT_HASH)
    connect = _find(directives, "connect-src")
    if connect is None and default is not None:
        connect = ["connect-src", *default[1:]]
        directives.append(connect)
    if connect is not None:
        lowered = [s.lower() for s in connect[1:]]
        if "'self'" not in lowered and "*" not in lowered:
            _add(connect, "'self'")
    action = _find(directives, "form-action")
    if repeat and action is not None:
        lowered = [s.lower() for s in action[1:]]
        if "'self'" not in lowered and "*" not in lowered:
            _add(action, "'self'")
    if not directives:
        return policy
    lead = " " if policy[:1].isspace() else ""
    return lead + "; ".join(" ".join(d) for d in directives)
