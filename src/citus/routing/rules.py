"""One URL rule: its pattern, endpoint, methods and virtual host.

A :class:`Rule` parses ``/users/<int:id>`` into static text and variables,
compiles a regular expression for matching (using the map's converters) and
builds URLs back from values. The ``host`` and ``subdomain`` patterns are parsed
the same way, so ``subdomain="<user>"`` works as well as ``subdomain="api"``.
"""

from __future__ import annotations

import re
import typing as t

from .converters import BaseConverter, StringConverter

__all__ = ["Rule"]

_VARIABLE = re.compile(
    r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*):)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>"
)

_Part = tuple[str, str, str]  # ("static", text, "") or ("var", converter, name)


def _parse(pattern: str) -> list[_Part]:
    parts: list[_Part] = []
    position = 0
    for match in _VARIABLE.finditer(pattern):
        if match.start() > position:
            parts.append(("static", pattern[position : match.start()], ""))
        parts.append(
            ("var", match.group("converter") or "default", match.group("name"))
        )
        position = match.end()
    if position < len(pattern):
        parts.append(("static", pattern[position:], ""))
    for kind, text, _ in parts:
        if kind == "static" and ("<" in text or ">" in text):
            raise ValueError(
                f"Malformed variable in {pattern!r} near {text!r}: write variables"
                " as <name> or <converter:name>, e.g. <int:id>."
            )
    return parts


class _HostLabel(StringConverter):
    regex = "[^./]+"


class Rule:
    """A URL rule, as made by ``@app.route(rule, ...)``.

    :param rule: the path pattern, starting with ``/``.
    :param endpoint: the name used by ``url_for`` (the view function's name).
    :param methods: the methods it answers; ``GET`` when ``None``. ``HEAD`` is
        added to ``GET`` and ``OPTIONS`` is answered automatically.
    :param host: match the whole ``Host`` header (may hold variables).
    :param subdomain: match the part of the host before ``SERVER_NAME``.
    :param strict_slashes: redirect ``/rule`` to ``/rule/`` (308) when the rule
        ends with a slash; ``False``: the path with or without its trailing
        slash matches, without a redirect.
    :param defaults: values passed to the view that the URL does not hold.
    """

    def __init__(
        self,
        rule: str,
        endpoint: str | None = None,
        methods: t.Iterable[str] | None = None,
        host: str | None = None,
        subdomain: str | None = None,
        strict_slashes: bool = True,
        defaults: t.Mapping[str, t.Any] | None = None,
    ) -> None:
        if not isinstance(rule, str) or not rule.startswith("/"):
            raise ValueError(
                f"URL rule {rule!r} must start with a slash: write '/{rule}'."
            )
        if host is not None and subdomain is not None:
            raise ValueError(
                f"Rule {rule!r} has both host={host!r} and subdomain={subdomain!r}:"
                " give only one of them."
            )
        if isinstance(methods, str):
            raise TypeError(
                f"methods={methods!r} must be a list of method names, e.g."
                f" methods=[{methods!r}]."
            )
        self.rule = rule
        self.endpoint = endpoint or rule
        given = {m.upper() for m in methods} if methods is not None else {"GET"}
        if not given:
            raise ValueError(f"Rule {rule!r} has an empty list of methods.")
        #: True when OPTIONS was not given and citus answers it itself.
        self.provide_automatic_options = "OPTIONS" not in given
        if "GET" in given:
            given.add("HEAD")
        given.add("OPTIONS")
        #: The methods this rule answers (upper-case).
        self.methods: frozenset[str] = frozenset(given)
        self.host = host.lower() if host else None
        self.subdomain = subdomain.lower() if subdomain is not None else None
        self.strict_slashes = strict_slashes
        self.defaults = dict(defaults or {})
        self._parts = _parse(rule)
        self._host_parts = _parse(self.host or self.subdomain or "")
        #: The names of the rule's variables (path, host and subdomain).
        self.arguments: frozenset[str] = frozenset(
            name for kind, _, name in self._parts + self._host_parts if kind == "var"
        )
        names = [n for k, _, n in self._parts + self._host_parts if k == "var"]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(
                f"Rule {rule!r} uses the variable name {sorted(duplicates)[0]!r}"
                " twice: give each variable its own name."
            )
        self._converters: dict[str, BaseConverter] = {}
        self._regex: re.Pattern[str] | None = None
        self._host_regex: re.Pattern[str] | None = None

    def __repr__(self) -> str:
        where = ""
        if self.host:
            where = f" host={self.host!r}"
        elif self.subdomain is not None:
            where = f" subdomain={self.subdomain!r}"
        methods = ", ".join(sorted(self.methods))
        return f"<Rule {self.rule!r} ({methods}) -> {self.endpoint}{where}>"

    def bind(self, converters: t.Mapping[str, type[BaseConverter]]) -> None:
        """Compile the patterns with ``converters`` (done by the map)."""
        self._converters = {}
        self._regex = re.compile(
            self._compile(self._parts, converters, host=False), re.DOTALL
        )
        if self.host is not None or self.subdomain is not None:
            self._host_regex = re.compile(
                self._compile(self._host_parts, converters, host=True),
                re.IGNORECASE,
            )

    def _compile(
        self,
        parts: list[_Part],
        converters: t.Mapping[str, type[BaseConverter]],
        host: bool,
    ) -> str:
        regex = ["^"]
        for kind, text, name in parts:
            if kind == "static":
                regex.append(re.escape(text))
                continue
            cls = converters.get(text)
            if cls is None:
                raise LookupError(
                    f"Rule {self.rule!r} uses the unknown converter {text!r} in"
                    f" <{text}:{name}>: use one of {', '.join(sorted(converters))}"
                    " or register it in app.url_map.converters first."
                )
            if host and cls is StringConverter:
                cls = _HostLabel
            converter = cls()
            self._converters[name] = converter
            regex.append(f"(?P<{name}>{converter.regex})")
        regex.append("$")
        return "".join(regex)

    @property
    def weights(self) -> tuple[bool, tuple[int, ...], int]:
        """The sort key that tries specific rules before general ones."""
        segments: list[int] = []
        weight = 0
        for kind, text, name in self._parts:
            if kind == "static":
                for _ in range(text.count("/")):
                    segments.append(weight)
                    weight = 0
            else:
                weight = max(weight, self._converters[name].weight)
        segments.append(weight)
        # Rules for a given host or subdomain come before rules for any host.
        any_host = self.host is None and self.subdomain is None
        return any_host, tuple(segments), -len(self.rule)

    def _convert(self, match: re.Match[str]) -> dict[str, t.Any] | None:
        values: dict[str, t.Any] = {}
        for name, text in match.groupdict().items():
            try:
                values[name] = self._converters[name].to_python(text)
            except ValueError:
                return None
        return values

    def match_path(self, path: str) -> dict[str, t.Any] | None:
        """The converted variables when ``path`` matches, else ``None``."""
        assert self._regex is not None, "bind() the rule first"
        match = self._regex.match(path)
        return None if match is None else self._convert(match)

    def match_host(self, host: str, subdomain: str | None) -> dict[str, t.Any] | None:
        """The host's variables when the rule accepts this host, else ``None``.

        :param host: the request's host, lower-case, without the default port.
        :param subdomain: the part before ``SERVER_NAME`` (``""`` for none), or
            ``None`` when ``SERVER_NAME`` is not set or does not match.
        """
        if self.host is not None:
            assert self._host_regex is not None
            match = self._host_regex.match(host)
            return None if match is None else self._convert(match)
        if self.subdomain is not None:
            if subdomain is None:
                return None
            assert self._host_regex is not None
            match = self._host_regex.match(subdomain)
            return None if match is None else self._convert(match)
        if subdomain:
            return None  # a plain rule answers the main host only
        return {}

    def build(self, values: t.Mapping[str, t.Any]) -> tuple[str, str | None] | None:
        """``(path, host or subdomain)`` for ``values``, or ``None`` if some are
        missing or do not convert."""
        if not self.arguments <= {k for k, v in values.items() if v is not None}:
            return None
        try:
            path = self._fill(self._parts, values)
            where = None
            if self.host is not None or self.subdomain is not None:
                where = self._fill(self._host_parts, values)
        except ValueError:
            return None
        return path, where

    def _fill(self, parts: list[_Part], values: t.Mapping[str, t.Any]) -> str:
        out = []
        for kind, text, name in parts:
            out.append(
                text
                if kind == "static"
                else self._converters[name].to_url(values[name])
            )
        return "".join(out)
