"""The code stays typed and tidy: ``mypy --strict`` and ruff run as tests.

Both tools are pinned in the ``test`` extra so a new release cannot turn CI red
on its own; the tests skip when the tools are not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_mypy_strict_is_clean() -> None:
    result = _run(_tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_mypy_strict_is_clean_for_the_other_platforms(platform: str) -> None:
    """The branches that only run elsewhere (citus._compat) type-check too."""
    result = _run(_tool("mypy"), "--platform", platform)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check_is_clean() -> None:
    result = _run(_tool("ruff"), "check", "src", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(
        _tool("ruff"), "format", "--check", "src", "tests", "bench", "examples"
    )
    assert result.returncode == 0, result.stdout + result.stderr
