"""Shared fixtures: real servers in threads and real ``citus`` processes.

Nothing here sleeps to synchronise: every wait polls a condition (a log line,
a connectable socket, a queue) until a deadline and fails the test past it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest

#: Generous deadline for a process to report readiness on a loaded 2-core box.
START_DEADLINE = 20.0

# A shell without job control starts a background job with SIGINT ignored,
# and every process the tests start would inherit that: the Ctrl+C tests need
# it delivered. A handler (unlike SIG_IGN) is reset to the default at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

RUNNING_ON = re.compile(
    r"Running on (?P<url>(?P<scheme>https?)://(?P<host>\[[^\]]+\]|[^:/\s]+):(?P<port>\d+))"
)


class ProcessLog:
    """Collects a process's merged stdout/stderr lines in a background thread."""

    def __init__(self, stream: t.IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: t.IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        stream.close()  # at end of file: no ResourceWarning for the pipe
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(
        self,
        pattern: str | re.Pattern[str],
        timeout: float = START_DEADLINE,
        start: int = 0,
    ) -> re.Match[str]:
        """Wait for a line (from index ``start``) matching ``pattern``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self.lines):
                    match = regex.search(self.lines[index])
                    if match:
                        return match
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
        raise AssertionError(
            f"no line matching {regex.pattern!r} in {timeout}s; output:\n{self.text}"
        )

    def wait_closed(self, timeout: float = START_DEADLINE) -> None:
        self._thread.join(timeout)


class CitusProcess:
    """A real process (``citus run``, a script) that owns its log and cleans up.

    Use as a context manager; the process is started in its own session so that
    ``interrupt()`` can deliver Ctrl+C like a terminal would, and everything it
    started is killed by PID on exit.
    """

    def __init__(
        self,
        args: list[str],
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        full_env = dict(os.environ)
        full_env.pop("CITUS_RUN_MAIN", None)
        full_env.pop("CITUS_SERVER_FDS", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.setdefault("NO_COLOR", "1")
        if env:
            full_env.update(env)
        self.args = args
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=sys.platform != "win32",
        )
        assert self.proc.stdout is not None
        self.log = ProcessLog(self.proc.stdout)

    def __enter__(self) -> CitusProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for_log(
        self, pattern: str, timeout: float = START_DEADLINE, start: int = 0
    ) -> re.Match[str]:
        return self.log.wait_for(pattern, timeout, start)

    def wait_for_url(self, timeout: float = START_DEADLINE) -> str:
        """Wait for the first `` * Running on URL`` line and return the URL."""
        return self.log.wait_for(RUNNING_ON, timeout).group("url")

    def interrupt(self) -> None:
        """Send Ctrl+C to the whole process group, as a terminal does."""
        if sys.platform == "win32":
            self.proc.send_signal(signal.CTRL_C_EVENT)  # type: ignore[attr-defined]
        else:
            os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = START_DEADLINE) -> int:
        code = self.proc.wait(timeout)
        self.log.wait_closed(5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                if sys.platform == "win32":
                    self.proc.kill()
                else:
                    os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        if sys.platform != "win32":
            # The process group may hold children (the reloader's); kill them too.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.wait_closed(5)


def citus_exe() -> str:
    """The ``citus`` console script of the interpreter running the tests."""
    exe = Path(sys.executable).with_name(
        "citus.exe" if sys.platform == "win32" else "citus"
    )
    return str(exe)


@pytest.fixture
def run_citus(tmp_path: Path) -> t.Iterator[t.Callable[..., CitusProcess]]:
    """Start ``citus ARGS`` processes, in ``tmp_path`` by default."""
    started: list[CitusProcess] = []

    def start(
        *args: str,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> CitusProcess:
        proc = CitusProcess([citus_exe(), *args], cwd=cwd or tmp_path, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def run_python(tmp_path: Path) -> t.Iterator[t.Callable[..., CitusProcess]]:
    """Start ``python ARGS`` processes, in ``tmp_path`` by default."""
    started: list[CitusProcess] = []

    def start(
        *args: str,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> CitusProcess:
        proc = CitusProcess([sys.executable, *args], cwd=cwd or tmp_path, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
