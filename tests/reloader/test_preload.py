"""Preloading in the spare child, end to end: real ``citus run --debug``
processes, real file edits, real requests.

The "libraries" are small modules in a user site-packages folder
(``PYTHONUSERBASE``, put on the path with ``PYTHONPATH``): citus counts them as
third-party code, as it would a pip-installed package. Each test checks both
that preloading happened (the app sees a library already imported before its
own import) and that the app behaves as after a cold start.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import time
import typing as t
from pathlib import Path

import pytest

from .conftest import (
    get,
    pid_of,
    run_debug,
    spare_children,
    wait_for_body,
    wait_until,
    write,
)

if t.TYPE_CHECKING:
    from conftest import CitusProcess  # type: ignore[import-not-found]

    Runner = t.Callable[..., CitusProcess]

pytestmark = [
    pytest.mark.live_server,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

LIBRARIES = {
    # Module-level state that the project changes.
    "statelib.py": "CALLS = []\n",
    # Reads a variable that the project sets before importing it.
    "envlib.py": "import os\nVALUE = os.environ.get('H4A_FLAVOUR', 'unset')\n",
    # Fails unless the project prepared something first.
    "needslib.py": (
        "import sys\n"
        "if not getattr(sys, 'h4a_ready', False):\n"
        "    raise RuntimeError('import the project first')\n"
        "READY = True\n"
    ),
    # Shows a warning when imported: the user must see it after each reload.
    "warnlib.py": "import warnings\nwarnings.warn('warnlib is old', UserWarning)\n",
    # Changes the environment when imported.
    "setenvlib.py": "import os\nos.environ['H4A_SET_BY_LIB'] = 'yes'\n",
}

#: The line of warnlib's warning in the output.
WARNED = "UserWarning: warnlib is old"

APP = """\
import os
import sys

PRELOADED = sorted(
    name for name in ("statelib", "envlib", "needslib", "warnlib", "setenvlib")
    if name in sys.modules
)
import statelib

statelib.CALLS.append(1)
sys.h4a_ready = True
import needslib
import warnlib
SEEN_BEFORE = os.environ.get("H4A_SET_BY_LIB", "-")
import setenvlib
os.environ["H4A_FLAVOUR"] = "set-by-project"
import envlib
import __main__

MESSAGE = {message!r}


def app(environ, start_response):
    main = "%s:%s" % (__main__.__name__, os.path.basename(__main__.__file__))
    body = " ".join([
        MESSAGE,
        "preloaded=" + ",".join(PRELOADED),
        "calls=%d" % len(statelib.CALLS),
        "env=" + envlib.VALUE,
        "ready=%s" % needslib.READY,
        "seen_before=" + SEEN_BEFORE,
        "main=" + main,
        "pid=%d" % os.getpid(),
    ]).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def user_site(base: Path) -> Path:
    scheme = "posix_user"
    return Path(sysconfig.get_path("purelib", scheme, vars={"userbase": str(base)}))


def fields(body: str) -> dict[str, str]:
    words = body.split()
    return dict(w.split("=", 1) for w in words[1:])


def cpu_ns(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as file:
            total += int(file.read().split()[0])
    return total


def wait_parked(proc: CitusProcess, url: str) -> None:
    """Wait until a spare exists and has stopped working (imports done)."""
    serving = pid_of(get(url)[1])

    def parked() -> bool:
        # A spare that was called in still shows its first environment.
        spares = [pid for pid in spare_children(proc.pid) if pid != serving]
        if len(spares) != 1:
            return False
        try:
            before = cpu_ns(spares[0])
            time.sleep(0.3)
            return cpu_ns(spares[0]) == before
        except OSError:
            return False

    wait_until(parked, timeout=30)


def start(run_citus: Runner, tmp_path: Path, *args: str) -> tuple[CitusProcess, str]:
    base = tmp_path / "userbase"
    site = user_site(base)
    site.mkdir(parents=True)
    for name, source in LIBRARIES.items():
        (site / name).write_text(source)
    project = tmp_path / "project"
    project.mkdir()
    write(project / "hello.py", APP.format(message="gen0"))
    env = {"PYTHONUSERBASE": str(base), "PYTHONPATH": str(site)}
    proc, url = run_debug(run_citus, None, *args, cwd=project, env=env)
    wait_for_body(url, lambda s, b: b.startswith("gen0"))
    return proc, url


def test_preloaded_libraries_behave_as_after_a_cold_start(
    run_citus: Runner, tmp_path: Path
) -> None:
    proc, url = start(run_citus, tmp_path)
    cold = fields(get(url)[1])
    assert cold["preloaded"] == ""
    assert cold["calls"] == "1"
    assert cold["env"] == "set-by-project"
    assert cold["seen_before"] == "-"
    assert proc.log.text.count(WARNED) == 1, proc.log.text

    preloaded_once = False
    for number in range(1, 4):
        wait_parked(proc, url)
        message = f"gen{number}"
        write(tmp_path / "project" / "hello.py", APP.format(message=message))
        status, body = wait_for_body(url, lambda s, b, m=message: b.startswith(m))
        warm = fields(body)
        # Only the well-behaved library is ever imported ahead of time.
        assert warm["preloaded"] in ("", "statelib"), body
        preloaded_once |= warm["preloaded"] == "statelib"
        for key in ("calls", "env", "ready", "seen_before", "main"):
            assert warm[key] == cold[key], (key, body, cold)
        proc.wait_for_log(r"Reloaded in")
        # The warning is shown by each generation, as after a cold start.
        wait_until(lambda n=number: proc.log.text.count(WARNED) == n + 1)
    assert preloaded_once, proc.log.text
    assert "Traceback" not in proc.log.text


def test_no_preload_imports_nothing_ahead(run_citus: Runner, tmp_path: Path) -> None:
    proc, url = start(run_citus, tmp_path, "--no-preload")
    for number in range(1, 3):
        wait_parked(proc, url)
        message = f"gen{number}"
        write(tmp_path / "project" / "hello.py", APP.format(message=message))
        status, body = wait_for_body(url, lambda s, b, m=message: b.startswith(m))
        assert fields(body)["preloaded"] == "", body


def test_no_preload_from_the_environment(run_citus: Runner, tmp_path: Path) -> None:
    os.environ["CITUS_RUN_PRELOAD"] = "false"
    try:
        proc, url = start(run_citus, tmp_path)
    finally:
        del os.environ["CITUS_RUN_PRELOAD"]
    wait_parked(proc, url)
    write(tmp_path / "project" / "hello.py", APP.format(message="gen1"))
    status, body = wait_for_body(url, lambda s, b: b.startswith("gen1"))
    assert fields(body)["preloaded"] == "", body


DJANGO_SETTINGS = """\
SECRET_KEY = "not secret"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {}
USE_TZ = True
GREETING = "configured-by-the-project"
"""

DJANGO_APP = """\
import sys

WARM = "django.core.wsgi" in sys.modules
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysettings")
django_app = get_wsgi_application()

from django.apps import apps
from django.conf import settings
from django.db.models import signals

MESSAGE = {message!r}


def app(environ, start_response):
    state = [
        settings.GREETING,
        str(len(apps.get_models())),
        str(len(signals.post_migrate.receivers)),
        str(len(signals.class_prepared.receivers)),
        str(len(signals.pre_delete.receivers)),
        settings.SETTINGS_MODULE,
    ]
    body = "%s warm=%s %s pid=%d" % (MESSAGE, WARM, "|".join(state), os.getpid())
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def test_django_configured_by_the_project(run_citus: Runner, tmp_path: Path) -> None:
    pytest.importorskip("django")
    (tmp_path / "mysettings.py").write_text(DJANGO_SETTINGS)
    write(tmp_path / "hello.py", DJANGO_APP.format(message="gen0"))
    proc, url = run_debug(run_citus)
    cold = wait_for_body(url, lambda s, b: b.startswith("gen0"))[1]
    assert "warm=False" in cold
    warm_once = False
    for number in range(1, 3):
        wait_parked(proc, url)
        message = f"gen{number}"
        write(tmp_path / "hello.py", DJANGO_APP.format(message=message))
        body = wait_for_body(url, lambda s, b, m=message: b.startswith(m))[1]
        warm_once |= "warm=True" in body
        assert body.split()[2] == cold.split()[2], (body, cold)
    assert warm_once, proc.log.text
    assert "Traceback" not in proc.log.text
