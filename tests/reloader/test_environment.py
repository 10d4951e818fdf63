"""Cold restarts (issue 12, part 3): the dependencies and the environment are
part of the code.

Real ``citus run --debug`` processes, real files and a real ``pip install``
into a real virtual environment: editing an env file applies its new values
(with the precedence of SPEC.md), editing a dependency declaration or
installing a package restarts cold (a new process, never the warm spare that
holds the old environment), each with a line that says why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import typing as t
import zipfile
from pathlib import Path

import pytest

from .conftest import (
    CITUS_SRC,
    count,
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

pytestmark = pytest.mark.live_server

APP = """\
import os

from citus import API

app = API(__name__)


@app.route("/")
def hello():
    names = ("GREETING", "REAL", "GONE")
    values = " ".join("%s=%s" % (n, os.environ.get(n, "unset")) for n in names)
    return "%s pid=%d" % (values, os.getpid())
"""


def fresh(name: str) -> str:
    """The line that announces a cold restart because of ``name``."""
    return re.escape(
        f" * Detected change in '{name}', restarting with a fresh environment"
    )


def served(url: str, text: str) -> t.Callable[[int, str], bool]:
    return lambda status, body: status == 200 and body.startswith(text + " ")


def test_env_files_apply_with_their_precedence(
    run_citus: Runner, tmp_path: Path, backend: str
) -> None:
    write(tmp_path / "hello.py", APP)
    dotenv = tmp_path / ".env"
    citusenv = tmp_path / ".citusenv"
    custom = tmp_path / "custom.env"
    write(dotenv, "GREETING=from-dotenv\nREAL=from-dotenv\nGONE=soon\n")
    write(citusenv, "GREETING=from-citusenv\n")
    write(custom, "# nothing yet\n")
    proc, url = run_debug(
        run_citus, backend, group=("--env-file", "custom.env"), env={"REAL": "real"}
    )
    wait_for_body(url, served(url, "GREETING=from-dotenv REAL=real GONE=soon"))

    write(dotenv, "GREETING=edited\nREAL=from-dotenv\n")
    proc.wait_for_log(fresh(".env"))
    wait_for_body(url, served(url, "GREETING=edited REAL=real GONE=unset"))

    write(custom, "GREETING=from-env-file\n")  # --env-file is above .env
    proc.wait_for_log(fresh("custom.env"))
    wait_for_body(url, served(url, "GREETING=from-env-file REAL=real GONE=unset"))

    write(custom, "# nothing again\n")
    write(dotenv, "REAL=from-dotenv\n")  # .citusenv is below .env
    wait_for_body(url, served(url, "GREETING=from-citusenv REAL=real GONE=unset"))
    citusenv.unlink()
    proc.wait_for_log(fresh(".citusenv"))
    wait_for_body(url, served(url, "GREETING=unset REAL=real GONE=unset"))
    assert "Traceback" not in proc.log.text


def test_an_unreadable_env_file_keeps_the_environment(
    run_citus: Runner, tmp_path: Path
) -> None:
    write(tmp_path / "hello.py", APP)
    dotenv = tmp_path / ".env"
    write(dotenv, "GREETING=one\n")
    proc, url = run_debug(run_citus, "watchdog")
    wait_for_body(url, served(url, "GREETING=one"))
    dotenv.write_bytes(b"GREETING=\xff\n")
    proc.wait_for_log(r"Could not load '.*\.env': it is not UTF-8 text")
    assert get(url)[1].startswith("GREETING=one ")
    write(dotenv, "GREETING=two\n")
    wait_for_body(url, served(url, "GREETING=two"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_dependency_change_restarts_cold_without_the_spare(
    run_citus: Runner, tmp_path: Path, backend: str
) -> None:
    write(tmp_path / "hello.py", APP)
    pyproject = tmp_path / "pyproject.toml"
    write(pyproject, '[project]\nname = "hello"\ndependencies = []\n')
    proc, url = run_debug(run_citus, backend)
    first = pid_of(wait_for_body(url, served(url, "GREETING=unset"))[1])
    spares: list[int] = []
    wait_until(lambda: bool(spares.extend(spare_children(proc.pid)) or spares))

    os.utime(pyproject)  # touched only: no restart
    write(pyproject, '[project]\nname = "hello"\ndependencies = ["six"]\n')
    proc.wait_for_log(fresh("pyproject.toml"))
    _, body = wait_for_body(url, lambda s, b: s == 200 and pid_of(b) != first)
    assert pid_of(body) not in spares  # a new process, not the warm spare
    proc.wait_for_log(r" \* Reloaded in")
    assert count(proc.log.lines, "Detected change") == 1, proc.log.text

    write(tmp_path / "requirements-dev.txt", "pytest\n")  # a new declaration
    proc.wait_for_log(fresh("requirements-dev.txt"))


WHEEL_FILES = {
    "citus_probe_pkg/__init__.py": "VALUE = 1\n",
    "citus_probe_pkg-{version}.dist-info/METADATA": (
        "Metadata-Version: 2.1\nName: citus-probe-pkg\nVersion: {version}\n"
    ),
    "citus_probe_pkg-{version}.dist-info/WHEEL": (
        "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    ),
}


def make_wheel(folder: Path, version: str) -> Path:
    """A tiny pure-Python wheel, made by hand (no build tool, no network)."""
    path = folder / f"citus_probe_pkg-{version}-py3-none-any.whl"
    record = f"citus_probe_pkg-{version}.dist-info/RECORD"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in WHEEL_FILES.items():
            wheel.writestr(name.format(version=version), text.format(version=version))
        wheel.writestr(record, "")
    return path


PACKAGE_APP = """\
import os
from importlib import metadata

from citus import API

app = API(__name__)


@app.route("/")
def hello():
    try:
        version = metadata.version("citus-probe-pkg")
    except metadata.PackageNotFoundError:
        version = "none"
    return "probe=%s pid=%d" % (version, os.getpid())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX virtualenv layout")
def test_installing_a_package_restarts_cold(
    run_python: Runner, tmp_path: Path, backend: str
) -> None:
    # A real virtual environment, seeing citus's own through a .pth file.
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # addsitedir: the outer environment's own .pth files (citus installed
    # in editable mode) are read too.
    ours = sysconfig.get_path("purelib")
    Path(site, "outer.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    project = tmp_path / "project"
    project.mkdir()
    write(project / "hello.py", PACKAGE_APP)

    def pip(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), *args],
            check=True,
            capture_output=True,
            env={
                **os.environ,
                "PIP_NO_INDEX": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            },
        )

    # The test's interpreter becomes the environment's (same process).
    execv = "import os, sys; os.execv(sys.argv[1], sys.argv[1:])"
    args = [execv, str(python), "-m", "citus", "--app", "hello", "run", "--debug"]
    args += ["--port", "0", "--reloader-type", backend]
    with run_python("-c", *args, cwd=project) as proc:
        url = proc.wait_for_url()
        wait_for_body(url, lambda s, b: b.startswith("probe=none "))

        pip("install", "--no-deps", str(make_wheel(tmp_path, "1.0")))
        proc.wait_for_log(
            re.escape(
                " * Detected 'citus_probe_pkg' 1.0 installed, restarting with a"
                " fresh environment"
            )
        )
        wait_for_body(url, lambda s, b: b.startswith("probe=1.0 "))

        pip("install", "--no-deps", str(make_wheel(tmp_path, "2.0")))
        proc.wait_for_log(re.escape("'citus_probe_pkg' upgraded from 1.0 to 2.0"))
        wait_for_body(url, lambda s, b: b.startswith("probe=2.0 "))

        pip("uninstall", "--yes", "citus-probe-pkg")
        proc.wait_for_log(re.escape("'citus_probe_pkg' 2.0 removed"))
        wait_for_body(url, lambda s, b: b.startswith("probe=none "))
        assert count(proc.log.lines, "fresh environment") == 3, proc.log.text


@pytest.mark.parametrize(
    ("before", "after", "words"),
    [
        ((), ("rich-13.9.4.dist-info",), "'rich' 13.9.4 installed"),
        (("six-1.16.0.dist-info",), (), "'six' 1.16.0 removed"),
        (
            ("requests-2.31.0.dist-info",),
            ("requests-2.32.3.dist-info",),
            "'requests' upgraded from 2.31.0 to 2.32.3",
        ),
        (
            (),
            ("__editable__.mylib-0.1.pth", "mylib-0.1.dist-info"),
            "'mylib' 0.1 installed, change in '__editable__.mylib-0.1.pth'",
        ),
        (
            (),
            tuple(f"p{i}-1.0.dist-info" for i in range(5)),
            "'p0' 1.0 installed, 'p1' 1.0 installed, 3 more package changes",
        ),
    ],
)
def test_package_changes_in_words(
    before: tuple[str, ...], after: tuple[str, ...], words: str
) -> None:
    from citus.reloader.environment import describe_packages

    assert describe_packages(frozenset(before), frozenset(after)) == words


def save_after(path: Path, text: str, than_ns: int) -> None:
    """Write ``text`` to ``path`` until its modification time is past
    ``than_ns`` (a file system's clock may be coarser than the system's)."""
    import time

    deadline = time.monotonic() + 5
    path.write_text(text)
    while os.stat(path).st_mtime_ns <= than_ns:
        assert time.monotonic() < deadline
        path.write_text(text)


def test_an_env_file_saved_while_the_watcher_starts_is_not_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The save lands between the watcher's clock reading and its look at the
    # file (a busy machine): the first snapshot already holds the new file, so
    # only the "changed since the supervisor read it" check can catch it.
    import time

    from citus.reloader import environment

    dotenv = tmp_path / ".env"
    dotenv.write_text("GREETING=one\n")
    since = time.time()
    real_stamp = environment.stamp
    saved: list[str] = []

    def stamp_after_a_save(path: str) -> t.Any:
        if path == str(dotenv) and not saved:
            saved.append(path)
            # Its modification time is after the watcher's clock reading.
            save_after(dotenv, "GREETING=two\n", time.time_ns())
        return real_stamp(path)

    monkeypatch.setattr(environment, "stamp", stamp_after_a_save)
    watcher = environment.EnvironmentWatcher(
        [str(dotenv)], project=str(tmp_path), packages=[], since=since
    )
    changes = watcher.snapshot()
    assert saved
    assert [change.path for change in changes] == [str(dotenv)]


def test_an_env_file_saved_while_the_watcher_reads_it_is_not_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A save of the same size lands between the watcher's look at the file's
    # time and its reading of the bytes: the old time must not be kept with
    # the new bytes, or the change looks like a mere touch forever.
    import time

    from citus.reloader import environment

    dotenv = tmp_path / ".env"
    dotenv.write_text("GREETING=one\n")
    since = time.time()
    real_digest = environment.digest
    saved: list[str] = []

    def digest_after_a_save(path: str) -> t.Any:
        if path == str(dotenv) and not saved:
            saved.append(path)
            # The same size, a new time.
            save_after(dotenv, "GREETING=two\n", os.stat(dotenv).st_mtime_ns)
        return real_digest(path)

    monkeypatch.setattr(environment, "digest", digest_after_a_save)
    watcher = environment.EnvironmentWatcher(
        [str(dotenv)], project=str(tmp_path), packages=[], since=since
    )
    changes = watcher.snapshot() or watcher.check(None)
    assert saved
    assert [change.path for change in changes] == [str(dotenv)]


def test_the_project_folder_is_the_nearest_with_a_marker(tmp_path: Path) -> None:
    from citus.reloader.environment import dependency_files, project_folder

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "base.txt").write_text("")
    (tmp_path / "requirements-dev.txt").write_text("")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    assert project_folder(str(deep)) == str(tmp_path)
    files = dependency_files(str(tmp_path))
    assert str(tmp_path / "requirements" / "base.txt") in files
    assert str(tmp_path / "requirements-dev.txt") in files
    assert str(tmp_path / "uv.lock") in files  # absent: one created counts


SCRIPT_APP = """\
import os

from citus import API

app = API(__name__)


@app.route("/")
def hello():
    return "GREETING=%s pid=%d" % (os.environ.get("GREETING", "unset"), os.getpid())


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=0, debug=True, reloader_type={backend!r},
            exclude_patterns=[{exclude!r}])
"""


def test_a_script_calling_app_run_applies_its_env_file(
    run_python: Runner, tmp_path: Path, backend: str
) -> None:
    script = tmp_path / "serve.py"
    write(script, SCRIPT_APP.format(backend=backend, exclude=CITUS_SRC + os.sep + "*"))
    dotenv = tmp_path / ".env"
    write(dotenv, "GREETING=one\n")
    proc = run_python(script.name)
    url = proc.wait_for_url()
    wait_for_body(url, lambda s, b: b.startswith("GREETING=one "))
    write(dotenv, "GREETING=two\n")
    proc.wait_for_log(fresh(".env"))
    wait_for_body(url, lambda s, b: b.startswith("GREETING=two "))
