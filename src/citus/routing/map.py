"""The URL map: every rule of an application, matched against requests and
used to build URLs, with virtual hosts.

:class:`Map` holds the rules, kept sorted so that specific rules win over general
ones (``/users/new`` before ``/users/<name>``, whatever the order they were
added in). :meth:`Map.bind` gives a :class:`MapAdapter` for one request's host,
which matches the path (raising ``NotFound``, ``MethodNotAllowed`` or a 308
``RequestRedirect`` to the slash-ended URL) and builds URLs back.

Virtual hosts: with ``SERVER_NAME`` set (``localhost:8000``), a request for
``api.localhost:8000`` has the subdomain ``api``; rules with ``subdomain="api"``
match it, plain rules match the bare ``localhost:8000`` (and any host that is
not under ``SERVER_NAME``, such as ``127.0.0.1:8000``). Rules with ``host=``
match the whole ``Host`` header whatever ``SERVER_NAME`` says.
"""

from __future__ import annotations

import typing as t
from urllib.parse import quote, urlencode

from ..exceptions import MethodNotAllowed, NotFound, RequestRedirect
from .converters import DEFAULT_CONVERTERS, BaseConverter
from .rules import Rule

__all__ = ["BuildError", "Map", "MapAdapter", "normalize_host"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}


class BuildError(LookupError):
    """``url_for`` found no rule for the endpoint and values it was given."""


def normalize_host(host: str, scheme: str = "http") -> str:
    """``host`` lower-cased, without the scheme's default port."""
    host = host.strip().lower().rstrip(".")
    default = _DEFAULT_PORTS.get(scheme)
    if default and host.endswith(":" + default) and not host.endswith("]"):
        host = host[: -len(default) - 1]
    return host


def _split_port(host: str) -> tuple[str, str | None]:
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        return host[: end + 1], rest[1:] if rest.startswith(":") else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, port
    return host, None


def subdomain_of(host: str, server_name: str | None) -> str | None:
    """The part of ``host`` before ``server_name`` (``""`` for the bare name).

    ``None`` when there is no ``server_name`` or ``host`` is not under it. Ports
    must agree, unless ``server_name`` has none.
    """
    if not server_name:
        return None
    server_name = server_name.lower().rstrip(".")
    name, port = _split_port(host)
    server, server_port = _split_port(server_name)
    if server_port is not None and port != server_port:
        return None
    if name == server:
        return ""
    if name.endswith("." + server):
        return name[: -len(server) - 1]
    return None


class Map:
    """The rules of an application.

    ``app.url_map.iter_rules()`` lists them (this is what ``citus routes``
    prints): each :class:`~citus.routing.rules.Rule` has ``endpoint``,
    ``methods``, ``rule``, ``host`` and ``subdomain``.
    """

    def __init__(self, rules: t.Iterable[Rule] = ()) -> None:
        #: Converter name -> class; add your own before adding rules.
        self.converters: dict[str, type[BaseConverter]] = dict(DEFAULT_CONVERTERS)
        self._rules: list[Rule] = []
        self._sorted: list[Rule] | None = None
        self._by_endpoint: dict[str, list[Rule]] = {}
        for rule in rules:
            self.add(rule)

    def add(self, rule: Rule) -> None:
        """Add a rule (compiled now, so a bad pattern fails at once)."""
        rule.bind(self.converters)
        self._rules.append(rule)
        self._by_endpoint.setdefault(rule.endpoint, []).append(rule)
        self._sorted = None

    def iter_rules(self, endpoint: str | None = None) -> t.Iterator[Rule]:
        """The rules, in the order they were added (only ``endpoint``'s if given)."""
        if endpoint is not None:
            return iter(list(self._by_endpoint.get(endpoint, ())))
        return iter(list(self._rules))

    def __iter__(self) -> t.Iterator[Rule]:
        return self.iter_rules()

    def __len__(self) -> int:
        return len(self._rules)

    @property
    def sorted_rules(self) -> list[Rule]:
        """The rules in matching order: specific before general."""
        if self._sorted is None:
            self._sorted = sorted(self._rules, key=lambda rule: rule.weights)
        return self._sorted

    def bind(
        self,
        host: str,
        server_name: str | None = None,
        script_name: str = "",
        scheme: str = "http",
    ) -> MapAdapter:
        """An adapter that matches and builds URLs for requests to ``host``."""
        return MapAdapter(self, host, server_name, script_name, scheme)


class MapAdapter:
    """The map bound to one host: :meth:`match` and :meth:`build`."""

    def __init__(
        self,
        url_map: Map,
        host: str,
        server_name: str | None,
        script_name: str,
        scheme: str,
    ) -> None:
        self.map = url_map
        self.scheme = scheme
        self.host = normalize_host(host, scheme) if host else ""
        self.server_name = normalize_host(server_name, scheme) if server_name else None
        self.subdomain = subdomain_of(self.host, self.server_name)
        self.script_name = script_name.rstrip("/")
        # The name URLs to other subdomains are built on: SERVER_NAME, with the
        # request's port when SERVER_NAME has none (it matches any port).
        self._url_server_name = self.server_name
        if self.server_name and self.host:
            port = _split_port(self.host)[1]
            if port is not None and _split_port(self.server_name)[1] is None:
                self._url_server_name = f"{self.server_name}:{port}"

    def match(
        self, path: str, method: str = "GET", query_string: str = ""
    ) -> tuple[Rule, dict[str, t.Any]]:
        """The rule for ``method path`` and its converted variables.

        :raises NotFound: no rule matches the path.
        :raises MethodNotAllowed: rules match the path, not the method.
        :raises RequestRedirect: the path lacks the slash its rule ends with.
        """
        method = method.upper()
        allowed: set[str] = set()
        redirect_to: str | None = None
        for rule in self.map.sorted_rules:
            host_values = rule.match_host(self.host, self.subdomain)
            if host_values is None:
                continue
            values = _match_path(rule, path)
            if values is None:
                if (
                    redirect_to is None
                    and rule.strict_slashes
                    and rule.rule.endswith("/")
                    and not path.endswith("/")
                    and rule.match_path(path + "/") is not None
                    and (method in rule.methods)
                ):
                    redirect_to = path + "/"
                continue
            if method not in rule.methods:
                allowed |= rule.methods
                continue
            return rule, {**rule.defaults, **host_values, **values}
        if redirect_to is not None:
            url = quote(self.script_name + redirect_to, safe="/:@!$&'()*+,;=~")
            if url.startswith("//"):
                # "//host/..." would send the browser to another site.
                url = "/" + url.lstrip("/")
            if query_string:
                url += "?" + query_string
            raise RequestRedirect(url)
        if allowed:
            raise MethodNotAllowed(allowed)
        raise NotFound()

    def allowed_methods(self, path: str) -> set[str]:
        """Every method some rule answers for ``path`` on this host."""
        methods: set[str] = set()
        for rule in self.map.sorted_rules:
            if (
                rule.match_host(self.host, self.subdomain) is not None
                and _match_path(rule, path) is not None
            ):
                methods |= rule.methods
        return methods

    def all_methods(self) -> set[str]:
        """Every method some rule answers on this host (for ``OPTIONS *``)."""
        methods = {"OPTIONS"}
        for rule in self.map.sorted_rules:
            if rule.match_host(self.host, self.subdomain) is not None:
                methods |= rule.methods
        return methods

    def build(
        self,
        endpoint: str,
        values: t.Mapping[str, t.Any] | None = None,
        method: str | None = None,
        force_external: bool = False,
        scheme: str | None = None,
        anchor: str | None = None,
    ) -> str:
        """The URL for ``endpoint`` with ``values``; unused values go to the query.

        The URL is relative (``/users/42``) unless ``force_external`` or the
        rule is on another host or subdomain than the current one.

        :raises BuildError: no rule of ``endpoint`` takes these values.
        """
        values = {k: v for k, v in (values or {}).items() if v is not None}
        rules = self.map._by_endpoint.get(endpoint)
        if not rules:
            raise BuildError(
                f"Could not build a URL for endpoint {endpoint!r}: no such"
                " endpoint. Check the view function's name (or the endpoint=)"
                " given to @app.route."
            )
        candidates = []
        for rule in rules:
            if method is not None and method.upper() not in rule.methods:
                continue
            built = rule.build(values)
            if built is not None:
                candidates.append((rule, built))
        # Prefer a rule on the current host: relative URLs where possible.
        candidates.sort(
            key=lambda item: self._host_for(item[0], item[1][1]) != self.host
        )
        for rule, (path, where) in candidates[:1]:
            leftover = {
                k: v
                for k, v in values.items()
                if k not in rule.arguments
                and not (k in rule.defaults and rule.defaults[k] == v)
            }
            url = self.script_name + path
            if leftover:
                url += "?" + urlencode(
                    [
                        (k, item)
                        for k, v in leftover.items()
                        for item in (v if isinstance(v, (list, tuple)) else [v])
                    ]
                )
            if anchor:
                url += "#" + quote(anchor)
            host = self._host_for(rule, where)
            if force_external or host != self.host:
                if not host:
                    raise BuildError(
                        f"Cannot build an external URL for {endpoint!r} without a"
                        " host: set app.config['SERVER_NAME'] (e.g."
                        " 'localhost:8000') or build it during a request."
                    )
                url = f"{scheme or self.scheme}://{host}{url}"
            return url
        if method is not None and not any(
            method.upper() in rule.methods for rule in rules
        ):
            methods = sorted({m for rule in rules for m in rule.methods})
            raise BuildError(
                f"Could not build a URL for endpoint {endpoint!r} with the method"
                f" {method.upper()!r}: its rules answer {', '.join(methods)}. Drop"
                " _method, or pass one of these."
            )
        for rule in rules:
            if method is not None and method.upper() not in rule.methods:
                continue
            if rule.arguments <= set(values):
                # Every value is there; one of them does not convert.
                reasons = []
                for name in sorted(rule.arguments):
                    try:
                        rule._converters[name].to_url(values[name])
                    except ValueError as error:
                        reason = str(error).rstrip(".")
                        reasons.append(f"{name}={values[name]!r} ({reason})")
                if reasons:
                    raise BuildError(
                        f"Could not build a URL for endpoint {endpoint!r}: the"
                        f" rule {rule.rule!r} does not accept "
                        + ", ".join(reasons)
                        + ". Pass a value its converter takes."
                    )
        needed = sorted(
            {name for rule in rules for name in rule.arguments} - set(values)
        )
        raise BuildError(
            f"Could not build a URL for endpoint {endpoint!r} with values"
            f" {sorted(values)!r}: the rule needs {needed!r}. Pass them to"
            " url_for, e.g. url_for("
            + repr(endpoint)
            + ", "
            + ", ".join(f"{name}=..." for name in needed)
            + ")."
        )

    def _host_for(self, rule: Rule, where: str | None) -> str:
        if rule.host is not None:
            return where or rule.host
        if rule.subdomain is not None:
            if not self._url_server_name:
                return self.host
            name = self._url_server_name
            return f"{where}.{name}" if where else name
        if self.subdomain and self._url_server_name:
            return self._url_server_name  # from a subdomain back to the main host
        return self.host


def _match_path(rule: Rule, path: str) -> dict[str, t.Any] | None:
    """``rule.match_path(path)``; for a rule with ``strict_slashes=False``, the
    path with its trailing slash added or removed matches too (no redirect)."""
    values = rule.match_path(path)
    if values is None and not rule.strict_slashes and path not in ("", "/"):
        other = path[:-1] if path.endswith("/") else path + "/"
        values = rule.match_path(other)
    return values
