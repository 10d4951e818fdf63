"""The watcher's decisions, driven by a scripted backend (watchfiles' MockRustNotify
idea): which files count, when a change is real, and how a multi-step save
settles into one change. Real files, no processes.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest

from citus.reloader import ReloaderError, resolve_backend
from citus.reloader.base import (
    Watcher,
    files_of_error,
    files_of_traceback_text,
    is_excluded,
    is_ignored_name,
    module_files,
)
from citus.reloader.stat_backend import StatBackend

Step = tuple[t.Callable[[], None] | None, set[str] | None]


class ScriptedBackend:
    """Answers :meth:`wait` from a script of ``(action, answer)`` steps.

    Each call runs the step's action (a file edit) first, then returns its
    answer; past the script it answers "nothing happened" without blocking.
    """

    name = "scripted"

    def __init__(self, steps: list[Step]) -> None:
        self.steps = list(steps)
        self.calls = 0
        self.updates: list[tuple[list[str], list[str]]] = []
        self.closed = False

    def update(self, files: t.Collection[str], dirs: t.Collection[str]) -> None:
        self.updates.append((sorted(files), sorted(dirs)))

    def wait(self, timeout: float) -> set[str] | None:
        self.calls += 1
        if not self.steps:
            return set()
        action, answer = self.steps.pop(0)
        if action is not None:
            action()
        return None if answer is None else set(answer)

    def close(self) -> None:
        self.closed = True


def bump(path: Path, text: str | None = None) -> None:
    """Rewrite ``path`` (or only touch it) and move its mtime forward."""
    if text is not None:
        path.write_text(text)
    ns = os.stat(path).st_mtime_ns + 5_000_000
    os.utime(path, ns=(ns, ns))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text("MESSAGE = 'one'\n")
    return path


def watcher_for(path: Path, steps: list[Step]) -> tuple[Watcher, ScriptedBackend]:
    backend = ScriptedBackend(steps)
    watcher = Watcher(backend, [str(path)], scan_modules=False)
    watcher.prepare()
    return watcher, backend


def test_touch_and_same_bytes_are_not_changes(source: Path) -> None:
    watcher, _ = watcher_for(source, [])
    bump(source)  # touched
    assert watcher.check({str(source)}) == []
    temp = source.with_name("app.py.tmp")
    temp.write_text(source.read_text())
    os.replace(temp, source)  # same bytes, new inode
    bump(source)
    assert watcher.check({str(source)}) == []
    assert watcher.check(None) == []


def test_same_size_new_content_is_a_change(source: Path) -> None:
    watcher, _ = watcher_for(source, [])
    bump(source, "MESSAGE = 'two'\n")
    assert watcher.check({str(source)}) == [str(source)]


def test_truncate_then_write_settles_into_one_change(source: Path) -> None:
    steps: list[Step] = [
        (lambda: bump(source, "MESSAGE = 'three, longer'\n"), {str(source)}),
        (None, set()),
    ]
    watcher, backend = watcher_for(source, steps)
    bump(source, "")  # step one: truncated
    assert watcher.check({str(source)}) == [str(source)]
    # The answer came only after the second step, and from the final content.
    assert backend.calls == 2


def test_unrelated_writes_do_not_hold_settling(source: Path) -> None:
    log = str(source.with_name("server.log"))  # written on every request
    steps: list[Step] = [(None, {log}) for _ in range(1000)]
    watcher, backend = watcher_for(source, steps)
    bump(source, "MESSAGE = 'new'\n")
    assert watcher.check({str(source)}) == [str(source)]
    assert backend.calls <= 2


def test_settling_gives_up_after_the_limit(source: Path) -> None:
    counter = iter(range(1000))

    def keep_writing() -> None:
        bump(source, f"MESSAGE = {next(counter)}\n")

    steps: list[Step] = [(keep_writing, {str(source)}) for _ in range(1000)]
    watcher, _ = watcher_for(source, steps)
    bump(source, "MESSAGE = 'x'\n")
    started = time.monotonic()
    assert watcher.check({str(source)}) == [str(source)]
    assert time.monotonic() - started < 2


def test_new_python_file_in_a_project_folder(tmp_path: Path) -> None:
    package = tmp_path / "newpkg_for_watcher"
    package.mkdir()
    (package / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        import newpkg_for_watcher  # noqa: F401

        backend = ScriptedBackend([])
        watcher = Watcher(backend, scan_modules=True)
        watcher.prepare()
        assert str(package / "__init__.py") in watcher.files
        (package / ".hidden.py").write_text("")
        (package / "notes.txt").write_text("")
        assert watcher.check({str(package)}) == []
        (package / "views.py").write_text("X = 1\n")
        assert watcher.check({str(package / "views.py")}) == [str(package / "views.py")]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("newpkg_for_watcher", None)


def test_run_returns_the_change_and_stop_ends_it(source: Path) -> None:
    steps: list[Step] = [
        (None, set()),
        (lambda: bump(source, "MESSAGE = 'changed'\n"), {str(source)}),
    ]
    backend = ScriptedBackend(steps)
    watcher = Watcher(None, [str(source)], scan_modules=False)
    assert watcher.run(backend) == [str(source)]
    assert backend.updates and str(source) in backend.updates[0][0]

    idle = Watcher(StatBackend(30), [str(source)], scan_modules=False)
    result: list[list[str]] = []
    thread = threading.Thread(target=lambda: result.append(idle.run()))
    thread.start()
    idle.stop()
    thread.join(5)
    assert result == [[]]


def test_files_changed_while_starting_are_stale(source: Path) -> None:
    since = time.time() - 10
    watcher = Watcher(
        ScriptedBackend([]), [str(source)], since=since, scan_modules=False
    )
    assert watcher.prepare() == [str(source)]
    assert watcher.stale_at_start

    future = time.time() + 3600  # clock skew on a network mount: no loop
    os.utime(source, (future, future))
    skewed = Watcher(
        ScriptedBackend([]), [str(source)], since=since, scan_modules=False
    )
    assert skewed.prepare() == []


@pytest.mark.parametrize(
    "name",
    [
        "app.pyc",
        ".app.py.swp",
        "app.py~",
        ".#app.py",
        "#app.py#",
        "4913",
        "app.py.tmp",
        "app.py___jb_tmp___",
        ".goutputstream-XYZ12",
        "__pycache__/app.cpython-311.pyc",
        ".git/index",
        ".hg/store",
    ],
)
def test_editor_and_vcs_files_are_ignored(name: str) -> None:
    assert is_ignored_name(os.path.join("/project", name))


@pytest.mark.parametrize("name", ["app.py", "templates/index.html", "config.toml"])
def test_ordinary_files_are_not_ignored(name: str) -> None:
    assert not is_ignored_name(os.path.join("/project", name))


def test_exclude_patterns_match_path_or_name() -> None:
    assert is_excluded("/project/skip_me.py", ["skip_*"])
    assert is_excluded("/project/build/out.py", ["*/build/*"])
    assert not is_excluded("/project/app.py", ["skip_*", "*/build/*"])
    assert not is_excluded("/project/app.py", [])


def test_module_files_leave_out_stdlib_and_site_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import _pytest

    mine = tmp_path / "mine.py"
    mine.write_text("")

    class Module:
        __file__ = str(mine)

    found = module_files([json, _pytest, Module(), sys])
    assert found == {str(mine)}
    monkeypatch.setenv("CITUS_RELOADER_WATCH_SITE_PACKAGES", "1")
    opted_in = module_files([_pytest])
    assert any("_pytest" in path for path in opted_in)


def test_files_of_a_failed_import(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    with pytest.raises(SyntaxError) as syntax:
        compile(broken.read_text(), str(broken), "exec")
    assert str(broken) in files_of_error(syntax.value)

    failing = tmp_path / "failing.py"
    failing.write_text("raise RuntimeError('at import')\n")
    with pytest.raises(RuntimeError) as runtime:
        exec(compile(failing.read_text(), str(failing), "exec"), {})
    assert str(failing) in files_of_error(runtime.value)

    text = f'Traceback (most recent call last):\n  File "{failing}", line 1\n'
    text += '  File "/nowhere/gone.py", line 3\n'
    assert files_of_traceback_text(text) == {str(failing)}


def test_reloader_type_names() -> None:
    assert resolve_backend("stat") == "stat"
    assert resolve_backend("watchdog") == "watchdog"
    assert resolve_backend("auto") == "watchdog"
    with pytest.raises(ValueError, match="Unknown reloader_type 'poll'"):
        resolve_backend("poll")


def test_without_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "watchdog.observers", None)
    assert resolve_backend("auto") == "stat"
    with pytest.raises(ReloaderError, match=r"citus\[watchdog\]"):
        resolve_backend("watchdog")


def test_stat_backend_rejects_a_bad_interval() -> None:
    with pytest.raises(ValueError, match="reloader_interval"):
        StatBackend(0)


def test_watchdog_backend_reports_events(tmp_path: Path) -> None:
    from citus.reloader.watchdog_backend import WatchdogBackend

    target = tmp_path / "app.py"
    target.write_text("a")
    backend = WatchdogBackend(0.1)
    try:
        backend.update([str(target)], [])
        (tmp_path / "app.py.swp").write_text("swap")  # ignored
        target.write_text("b")
        deadline = time.monotonic() + 5
        seen: set[str] = set()
        while str(target) not in seen and time.monotonic() < deadline:
            seen |= backend.wait(0.2) or set()
        assert str(target) in seen
        assert not any(path.endswith(".swp") for path in seen)
        backend.events_lost()
        assert backend.wait(0.1) is None  # lost events: check everything
    finally:
        backend.close()


def test_watch_limit_falls_back_to_polling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citus.reloader.base import WARNED_ENV
    from citus.reloader.watchdog_backend import WatchdogBackend

    monkeypatch.setenv(WARNED_ENV, "")  # restored after the test
    target = tmp_path / "app.py"
    target.write_text("a")
    backend = WatchdogBackend(0.05)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    backend._observer.schedule = full  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.INFO, logger="citus"):
            backend.update([str(target)], [])
            backend.update([str(target), str(tmp_path / "sub" / "x.py")], [])
        lines = [r.getMessage() for r in caplog.records if "inotify" in r.getMessage()]
        assert len(lines) == 1
        assert "sysctl fs.inotify.max_user_watches=" in lines[0]
        deadline = time.monotonic() + 5
        seen: set[str] = set()
        while str(target) not in seen and time.monotonic() < deadline:
            seen |= backend.wait(0.5) or set()
        assert str(target) in seen  # polled instead
    finally:
        backend.close()
    # The next serving process of the same run (it inherits the variable)
    # polls as well, without saying it again.
    again = WatchdogBackend(0.05)
    again._observer.schedule = full  # type: ignore[method-assign]
    try:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="citus"):
            again.update([str(target)], [])
        assert not [r for r in caplog.records if "inotify" in r.getMessage()]
        assert os.environ[WARNED_ENV] == f"inotify-limit-{errno.ENOSPC}"
    finally:
        again.close()


def test_watchdog_overflow_warning_asks_for_a_full_check() -> None:
    from citus.reloader.watchdog_backend import WatchdogBackend

    backend = WatchdogBackend(1)
    try:
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        assert backend.wait(1) is None
    finally:
        backend.close()
