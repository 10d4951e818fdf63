"""A watcher to trust on any file system (issue 12, part 4), end to end.

Real ``citus run`` processes and real files: a modification time in the
future, the line that says what is watched, the inotify watch limit (made to
fail in the child through a ``sitecustomize`` module, never by changing the
machine's settings), mounts whose change events never arrive (an injected
mount table) and the start-up self-test.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import typing as t
from pathlib import Path

import pytest

from .conftest import CITUS_HELLO as APP
from .conftest import count, wait_for_body, write
from .conftest import run_debug as run_app

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

pytestmark = pytest.mark.live_server


@pytest.mark.parametrize("skew", [1.0, 3600.0])
def test_a_future_mtime_alone_never_reloads(
    run_citus: Runner, tmp_path: Path, backend: str, skew: float
) -> None:
    app = tmp_path / "hello.py"
    write(app, APP.format(message="one"))
    ahead = time.time() + skew  # clock skew, or unpacked from an archive
    os.utime(app, (ahead, ahead))
    proc, url = run_app(run_citus, backend)
    wait_for_body(url, lambda s, b: b == "one")
    if skew < 5:
        # Wait for the file's time to come (the subject of this test, not a
        # synchronisation): its passing must not count as a change either.
        while time.time() < ahead + 0.3:
            time.sleep(0.05)
    write(app, APP.format(message="two"))  # a real change: one reload
    wait_for_body(url, lambda s, b: b == "two")
    assert count(proc.log.lines, "Detected change") == 1, proc.log.text


def test_one_line_says_what_is_watched(
    run_citus: Runner, tmp_path: Path, backend: str
) -> None:
    app = tmp_path / "hello.py"
    write(app, APP.format(message="one"))
    proc, url = run_app(run_citus, backend)
    how = "stat, every 1 s" if backend == "stat" else r"watchdog \(inotify\)"
    # hello.py and the ``citus`` script itself (``__main__``), in their folders.
    proc.wait_for_log(rf"^ \* Watching 2 files in 2 folders with {how}$")
    write(app, APP.format(message="two"))
    wait_for_body(url, lambda s, b: b == "two")
    proc.wait_for_log(r" \* Reloaded in")
    assert count(proc.log.lines, "Watching") == 1  # once per run


def test_the_watching_line_is_news_not_an_error(
    run_citus: Runner, tmp_path: Path
) -> None:
    # Where the log is coloured, errors are red; what is watched is not one.
    write(tmp_path / "hello.py", APP.format(message="one"))
    colour = {"FORCE_COLOR": "1", "NO_COLOR": ""}
    proc, url = run_app(run_citus, "stat", env=colour)
    line = proc.wait_for_log(r".*\* Watching 2 files in 2 folders.*").group(0)
    assert "\x1b[31m" not in line, repr(line)


# Loaded by the children through PYTHONPATH: faults a test cannot cause for
# real (a file system that sends no events, inotify's limit), without
# touching the machine's settings.
SITECUSTOMIZE = """\
import errno
import os

deaf = os.environ.get("CITUS_TEST_DEAF")
limit = os.environ.get("CITUS_TEST_WATCH_LIMIT")
if deaf or limit:
    from watchdog.observers import api

if deaf:
    queue_event = api.EventEmitter.queue_event

    def deaf_queue_event(self, event):
        if not os.fsdecode(event.src_path).startswith(deaf):
            queue_event(self, event)

    api.EventEmitter.queue_event = deaf_queue_event

if limit:
    schedule = api.BaseObserver.schedule
    calls = []

    def limited_schedule(self, *args, **kwargs):
        calls.append(args)
        if len(calls) > int(limit):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return schedule(self, *args, **kwargs)

    api.BaseObserver.schedule = limited_schedule
"""

VIEWS_APP = """\
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "sub"))

from citus import API

import views

app = API(__name__)


@app.route("/")
def hello():
    return views.TEXT
"""


def faulty_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """``proj/hello.py`` importing ``proj/sub/views.py``, and the environment
    that loads :data:`SITECUSTOMIZE` from ``site/``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    project = tmp_path / "proj"
    (project / "sub").mkdir(parents=True)
    write(project / "hello.py", VIEWS_APP)
    write(project / "sub" / "views.py", "TEXT = 'one'\n")
    return project, {"PYTHONPATH": str(site)}


def test_watch_limit_polls_the_rest_and_names_the_sysctl(
    run_citus: Runner, tmp_path: Path
) -> None:
    project, env = faulty_project(tmp_path)
    env["CITUS_TEST_WATCH_LIMIT"] = "1"  # one folder watched, then ENOSPC
    proc, url = run_app(run_citus, "watchdog", env=env, cwd=project)
    wait_for_body(url, lambda s, b: b == "one")
    proc.wait_for_log(
        r" \* Cannot watch '.*' (and \d+ more folders? )?with inotify: the system's"
        r" limit is reached \(No space left on device\); polling (it|them) every"
        r" 1 s instead\. Raise the limit: sudo sysctl"
        r" fs\.inotify\.max_user_watches=524288$"
    )
    # hello.py, views.py, sitecustomize.py and the ``citus`` script.
    proc.wait_for_log(r" \* Watching 4 files in 4 folders with watchdog \(inotify\),")
    write(project / "sub" / "views.py", "TEXT = 'two'\n")  # in a polled folder
    wait_for_body(url, lambda s, b: b == "two")
    assert count(proc.log.lines, "the system's limit is reached") == 1


def test_a_mount_without_events_is_polled(
    run_citus: Runner, tmp_path: Path, backend: str
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    write(project / "hello.py", APP.format(message="one"))
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 0:21 / / rw,relatime - ext4 /dev/vda rw\n"
        f"97 22 0:63 / {project} rw,relatime - nfs4 server:/export rw,vers=4.2\n"
    )
    env = {"CITUS_RELOADER_MOUNTINFO": str(table)}
    proc, url = run_app(run_citus, backend, env=env, cwd=project)
    wait_for_body(url, lambda s, b: b == "one")
    if backend == "watchdog":
        proc.wait_for_log(
            re.escape(
                f" * Polling '{project}' every 1 s instead of waiting for events:"
                " it is a nfs4 mount (a network file system), where changes made"
                " outside this system send none."
            )
        )
        proc.wait_for_log(
            r" \* Watching 2 files in 2 folders with watchdog \(inotify\), 1 of them"
            r" polled every 1 s$"
        )
    write(project / "hello.py", APP.format(message="two"))
    wait_for_body(url, lambda s, b: b == "two")
    assert count(proc.log.lines, "Polling '") == (backend == "watchdog")


def test_a_mount_whose_events_never_arrive_is_found_and_polled(
    run_citus: Runner, tmp_path: Path
) -> None:
    project, env = faulty_project(tmp_path)
    env["CITUS_TEST_DEAF"] = str(tmp_path)  # inotify hears nothing there
    proc, url = run_app(run_citus, "watchdog", env=env, cwd=project)
    wait_for_body(url, lambda s, b: b == "one")
    proc.wait_for_log(
        r" \* No change event arrived within 2 s for a test file in '.*': polling"
        r" the folders on .* every 1 s instead\.$"
    )
    write(project / "sub" / "views.py", "TEXT = 'two'\n")  # heard by polling
    wait_for_body(url, lambda s, b: b == "two")
    assert not list(project.glob(".citus-probe-*"))  # the probe is gone
    assert count(proc.log.lines, "No change event arrived") == 1, proc.log.text


def test_where_events_arrive_nothing_is_said_and_no_probe_remains(
    run_citus: Runner, tmp_path: Path
) -> None:
    project, env = faulty_project(tmp_path)
    proc, url = run_app(run_citus, "watchdog", env=env, cwd=project)
    wait_for_body(url, lambda s, b: b == "one")
    write(project / "sub" / "views.py", "TEXT = 'two'\n")
    wait_for_body(url, lambda s, b: b == "two")
    proc.wait_for_log(r" \* Watching 4 files in 4 folders with watchdog \(inotify\)$")
    assert "No change event" not in proc.log.text
    assert "Polling" not in proc.log.text
    assert not list(tmp_path.rglob(".citus-probe-*"))


def test_after_the_limit_no_watch_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from citus.reloader.base import WARNED_ENV
    from citus.reloader.watchdog_backend import WatchdogBackend

    monkeypatch.setenv(WARNED_ENV, "")
    folders = [tmp_path / name for name in ("a", "b", "c", "d")]
    for folder in folders:
        folder.mkdir()
    backend = WatchdogBackend(0.05)
    tried: list[str] = []
    schedule = backend._observer.schedule

    def limited(handler: t.Any, path: str, **kwargs: t.Any) -> t.Any:
        tried.append(path)
        if len(tried) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return schedule(handler, path, **kwargs)

    backend._observer.schedule = limited  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.INFO, logger="citus"):
            backend.update([], [str(f) for f in folders])
        assert tried == [str(folders[0]), str(folders[1])]  # then no more tries
        assert backend.polled == 3
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1, lines
        assert lines[0].endswith(
            "and 2 more folders with inotify: the system's limit is reached (No"
            " space left on device); polling them every 0.05 s instead. Raise the"
            " limit: sudo sysctl fs.inotify.max_user_watches=524288"
        )
        (folders[3] / "new.py").write_text("x")  # polled: seen all the same
        deadline = time.monotonic() + 5
        seen: set[str] = set()
        while str(folders[3]) not in seen and time.monotonic() < deadline:
            seen |= backend.wait(0.2) or set()
        assert str(folders[3]) in seen
    finally:
        backend.close()


MOUNTINFO = r"""22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 22 0:40 / /mnt/c rw,noatime - 9p drvfs rw,aname=drvfs;path=C:\134
41 22 0:41 / /srv/my\040share rw - cifs //nas/share rw
42 22 0:42 / /srv/my\040share/local rw - ext4 /dev/vdb rw
43 22 0:43 / /home/me/remote rw - fuse.sshfs me@host:/code rw
44 22 0:44 / /workspace rw - virtiofs mount0 rw
45 22 0:45 / /data rw - nfs4 server:/data rw
not a mount line
"""


@pytest.mark.parametrize(
    ("path", "point", "why"),
    [
        ("/home/me/project", "/", None),
        ("/mnt/c/Users/me/project", "/mnt/c", "a Windows drive under WSL"),
        ("/srv/my share/app", "/srv/my share", "a Windows (SMB) network share"),
        ("/srv/my share/local/app", "/srv/my share/local", None),
        ("/home/me/remote/app", "/home/me/remote", "a folder mounted over SSH"),
        ("/workspace", "/workspace", "a folder shared by a VM host, such as"),
        ("/data/x", "/data", "a network file system"),
        ("/datax", "/", None),
    ],
)
def test_the_mount_table_says_where_events_fail(
    path: str, point: str, why: str | None
) -> None:
    from citus.reloader.mounts import mount_of, parse_mountinfo, why_no_events

    table = parse_mountinfo(MOUNTINFO)
    assert len(table) == 7
    mount = mount_of(path, table)
    assert mount is not None and mount.point == point
    reason = why_no_events(mount)
    assert (reason is None) == (why is None)
    if why is not None:
        assert reason is not None and reason.startswith(why)
