"""URL converters: what ``<int:id>`` in a rule matches and how it turns into a
Python value and back.

Each converter has a regular expression for the part of the URL it matches,
``to_python`` (URL text -> value; ``ValueError`` makes the rule not match) and
``to_url`` (value -> URL text, percent-encoded). ``weight`` orders rules:
more specific converters are tried before more general ones.
"""

from __future__ import annotations

import decimal
import math
import typing as t
import uuid
from urllib.parse import quote

__all__ = [
    "DEFAULT_CONVERTERS",
    "BaseConverter",
    "FloatConverter",
    "IntegerConverter",
    "PathConverter",
    "StringConverter",
    "UUIDConverter",
]


class BaseConverter:
    """The base of all converters; subclass it to add your own.

    Register a subclass with ``app.url_map.converters["name"] = MyConverter``
    before adding rules that use ``<name:var>``.
    """

    #: The regular expression for the matched part (no groups).
    regex: str = "[^/]+"
    #: Rules whose variables have lower weights are tried first.
    weight: int = 100
    #: True when the value may contain ``/``.
    part_isolating: bool = True

    def to_python(self, value: str) -> t.Any:
        """Turn the matched text into the view's argument."""
        return value

    def to_url(self, value: t.Any) -> str:
        """Turn a value into URL text (percent-encoded)."""
        return quote(str(value), safe="!$&'()*+,;=:@")


class StringConverter(BaseConverter):
    """``<name>`` or ``<string:name>``: any text without a slash."""

    def to_url(self, value: t.Any) -> str:
        """Percent-encode the value.

        :raises ValueError: the value holds a slash: servers decode ``%2F``
            before routing, so the URL could never match this rule again.
        """
        text = str(value)
        if "/" in text:
            raise ValueError(
                f"<string> matches no slash, and {text!r} has one; use"
                " <path:name> in the rule for values with slashes"
            )
        return super().to_url(text)


class PathConverter(BaseConverter):
    """``<path:name>``: any text, slashes included."""

    regex = "[^/].*?"
    weight = 200
    part_isolating = False

    def to_url(self, value: t.Any) -> str:
        """Percent-encode the value, keeping its slashes."""
        return quote(str(value), safe="/!$&'()*+,;=:@")


class IntegerConverter(BaseConverter):
    """``<int:name>``: a non-negative integer written with digits only."""

    regex = r"\d+"
    weight = 50

    def to_python(self, value: str) -> int:
        """The integer."""
        return int(value)

    def to_url(self, value: t.Any) -> str:
        """The integer's digits.

        :raises ValueError: ``value`` is not a non-negative integer.
        """
        number = int(value)
        if number < 0:
            raise ValueError(f"<int> does not accept negative numbers: {value!r}.")
        return str(number)


class FloatConverter(BaseConverter):
    """``<float:name>``: a non-negative decimal number such as ``1.5``."""

    regex = r"\d+\.\d+"
    weight = 50

    def to_python(self, value: str) -> float:
        """The number (too many digits to be finite: no match)."""
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{value!r} overflows a float")
        return number

    def to_url(self, value: t.Any) -> str:
        """The number written with a decimal point and no exponent
        (``1e-07`` becomes ``0.0000001``), so that the rule matches it back.

        :raises ValueError: ``value`` is negative, infinite or not a number.
        """
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"<float> accepts finite numbers only: {value!r}.")
        if number < 0:
            raise ValueError(f"<float> does not accept negative numbers: {value!r}.")
        text = format(decimal.Decimal(repr(number)), "f")
        return text if "." in text else text + ".0"


class UUIDConverter(BaseConverter):
    """``<uuid:name>``: a UUID such as ``0b5a1c2e-...``, given as :class:`uuid.UUID`."""

    regex = (
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    )
    weight = 40

    def to_python(self, value: str) -> uuid.UUID:
        """The UUID."""
        return uuid.UUID(value)

    def to_url(self, value: t.Any) -> str:
        """The UUID's canonical text."""
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


#: The converters every map knows, by name.
DEFAULT_CONVERTERS: dict[str, type[BaseConverter]] = {
    "default": StringConverter,
    "string": StringConverter,
    "path": PathConverter,
    "int": IntegerConverter,
    "float": FloatConverter,
    "uuid": UUIDConverter,
}
