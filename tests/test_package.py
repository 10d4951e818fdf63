"""The package installs and exposes its public names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import citus
from citus import serving


def test_public_names() -> None:
    for name in citus.__all__:
        assert getattr(citus, name) is not None or name == "request"
    for name in serving.__all__:
        assert callable(getattr(serving, name))


def test_console_scripts_are_the_same_program() -> None:
    suffix = ".exe" if sys.platform == "win32" else ""
    scripts = Path(sys.executable).parent
    out = [
        subprocess.run(
            [str(scripts / f"{name}{suffix}"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        for name in ("citus", "cts")
    ]
    assert out[0].returncode == out[1].returncode == 0
    assert citus.__version__ in out[0].stdout
    assert out[0].stdout == out[1].stdout
    assert sys.version.split()[0] in out[0].stdout
