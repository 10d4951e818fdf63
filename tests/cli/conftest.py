"""Fixtures for the command-line tests: the real ``citus`` executable.

``cli`` runs ``citus ARGS`` (or ``cts``) to completion in a temporary folder
and returns the finished process; ``project`` is that folder, where tests
write their apps. Long-running servers use ``run_citus`` from the top-level
conftest instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest

#: A deadline for one short ``citus`` command (no server).
COMMAND_TIMEOUT = 30


def executable(name: str = "citus") -> str:
    """The console script ``name`` next to the interpreter running the tests."""
    suffix = ".exe" if sys.platform == "win32" else ""
    return str(Path(sys.executable).with_name(name + suffix))


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any ``CITUS_*`` variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITUS_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


class Runner(t.Protocol):
    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        exe: str = "citus",
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder for the test's apps."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def cli(project: Path) -> Runner:
    """Run the real ``citus`` (or ``cts``) in ``project`` and wait for it."""

    def run(
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        exe: str = "citus",
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [executable(exe), *args],
            cwd=cwd or project,
            env=clean_env(env),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )

    return run


class Writer(t.Protocol):
    def __call__(self, name: str, source: str) -> Path: ...


@pytest.fixture
def write(project: Path) -> Writer:
    """Write ``source`` (dedented) to ``project/name``, making parent folders."""

    def write_file(name: str, source: str) -> Path:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def run_cts(
    request: pytest.FixtureRequest, project: Path
) -> t.Iterator[t.Callable[..., t.Any]]:
    """Like ``run_citus``, with the ``cts`` executable, in ``project``."""
    root = Path(__file__).resolve().parents[1] / "conftest.py"
    module = next(
        plugin
        for plugin in request.config.pluginmanager.get_plugins()
        if Path(getattr(plugin, "__file__", "") or "").resolve() == root
    )
    started: list[t.Any] = []

    def start(*args: str, env: dict[str, str] | None = None) -> t.Any:
        proc = module.CitusProcess([executable("cts"), *args], cwd=project, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
