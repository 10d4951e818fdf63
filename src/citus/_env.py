"""Configuration from the environment: debug mode and ``.env`` files.

Shared by the command line and :meth:`citus.API.run`.
"""

from __future__ import annotations

import os

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def get_debug_flag() -> bool:
    """Whether debug mode is on, from ``CITUS_DEBUG`` then ``CITUS_ENV``.

    Reads ``CITUS_DEBUG`` (``1``/``0``, ``true``/``false``, ``yes``/``no``), which
    wins over ``CITUS_ENV`` (``development`` turns debug mode on).
    """
    value = os.environ.get("CITUS_DEBUG")
    if value is not None and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return os.environ.get("CITUS_ENV", "production").strip().lower() == "development"
