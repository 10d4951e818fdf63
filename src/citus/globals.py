"""The context-local ``request`` proxy (placeholder until the framework lands)."""

from __future__ import annotations

from typing import Any

request: Any = None
