"""Helpers shared by the framework tests (imported by name, like serverkit)."""

from __future__ import annotations

import importlib.util
import sys
import typing as t
import uuid
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(relative: str) -> t.Any:
    """Import ``examples/<relative>`` afresh, as its own module (new state)."""
    path = EXAMPLES / relative
    name = f"citus_example_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module
