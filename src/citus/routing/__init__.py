"""URL routing: rules with converters, the URL map, virtual hosts.

:class:`Map` holds :class:`Rule` objects; ``app.url_map`` is the application's.
"""

from __future__ import annotations

from .converters import BaseConverter as BaseConverter
from .map import BuildError as BuildError
from .map import Map as Map
from .map import MapAdapter as MapAdapter
from .rules import Rule as Rule

__all__ = ["BaseConverter", "BuildError", "Map", "MapAdapter", "Rule"]
