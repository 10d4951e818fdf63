"""``citus errors`` against a real running ``citus run``.

Each test gives the server and ``citus errors`` a temporary folder of its own
(``TMPDIR``), so the debugger's private state folder, and so the servers
found, are the test's only: other ``citus run`` processes on this machine are
never seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

import pytest

COMMAND_TIMEOUT = 30


def executable() -> str:
    suffix = ".exe" if sys.platform == "win32" else ""
    return str(Path(sys.executable).with_name("citus" + suffix))


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITUS_")}
    env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", **extra)
    return env


pytestmark = pytest.mark.live_server

APP = """
    from citus import API

    app = API(__name__)

    @app.route("/orders/<int:number>")
    def order(number):
        items = []
        return str(sum(items) / len(items))

    @app.route("/login")
    def login():
        raise KeyError("no user")
"""


@pytest.fixture
def private_tmp(tmp_path: Path) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def env(private_tmp: Path) -> dict[str, str]:
    # run_citus starts from this process's environment: a state file that
    # the debugger's in-process tests left named there must not be reused.
    return clean_env(
        {
            "TMPDIR": str(private_tmp),
            "TEMP": str(private_tmp),
            "CITUS_DEBUGGER_STATE": "",
            "CITUS_DEBUGGER_PIN": "",
            "CITUS_EDITOR": "",
        }
    )


def errors(
    *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [executable(), "errors", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


def fail(url: str, path: str, accept: str = "text/plain") -> int:
    request = urllib.request.Request(url + path, headers={"Accept": accept})
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        error.close()
        return error.code
    return 200


@pytest.fixture
def server(
    project: Path, env: dict[str, str], run_citus: t.Callable[..., t.Any]
) -> str:
    (project / "app.py").write_text(textwrap.dedent(APP).lstrip())
    proc = run_citus("run", "--debug", "--port", "0", cwd=project, env=env)
    url = t.cast(str, proc.wait_for_url())
    proc.wait_for_log(r"Debugger PIN")
    return url


def test_no_server_is_one_line(project: Path, env: dict[str, str]) -> None:
    done = errors(cwd=project, env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "No citus run of yours with the debugger on serves" in lines[0]
    assert "Traceback" not in done.stderr
    with_port = errors("--port", "8123", cwd=project, env=env)
    assert with_port.returncode == 1
    assert "serves port 8123" in with_port.stderr


def test_recent_errors_newest_last_as_python_prints_them(
    server: str, project: Path, env: dict[str, str]
) -> None:
    done = errors(cwd=project, env=env)
    assert done.returncode == 0
    assert done.stdout == ""
    assert "No errors yet from the server on 127.0.0.1:" in done.stderr

    assert fail(server, "/orders/7") == 500
    assert fail(server, "/login?token=s3cr3t&next=/") == 500
    done = errors(cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("Traceback (most recent call last):") == 2
    assert out.index("ZeroDivisionError: division by zero") < out.index(
        "KeyError: 'no user'"
    )
    assert f'File "{project / "app.py"}", line 8, in order' in out
    assert "/login?token=********&next=/" in out
    assert "s3cr3t" not in out
    # --last N: only the newest.
    last = errors("--last", "1", cwd=project, env=env).stdout
    assert "KeyError" in last and "ZeroDivisionError" not in last
    # From a folder below the project, and from anywhere with --port.
    (project / "pkg").mkdir()
    assert "KeyError" in errors(cwd=project / "pkg", env=env).stdout
    port = server.rsplit(":", 1)[1]
    elsewhere = errors("--port", port, cwd=project.parent, env=env)
    assert "KeyError" in elsewhere.stdout
    assert errors(cwd=project.parent, env=env).returncode == 1


def test_json_gives_the_debuggers_documents(
    server: str, project: Path, env: dict[str, str]
) -> None:
    request = urllib.request.Request(
        server + "/orders/3", headers={"Accept": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    served = json.loads(caught.value.read())
    caught.value.close()
    done = errors("--json", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    document = json.loads(line)
    for key in ("error", "chain", "traceback", "markdown"):
        assert document[key] == served[key], key
    assert document["request"]["method"] == "GET"
    assert document["request"]["url"].endswith("/orders/3")
    assert isinstance(document["time"], float) and document["id"]


def test_follow_streams_new_errors(
    server: str,
    project: Path,
    env: dict[str, str],
    run_citus: t.Callable[..., t.Any],
) -> None:
    assert fail(server, "/orders/1") == 500
    follower = run_citus("errors", "--follow", "--last", "0", cwd=project, env=env)
    follower.wait_for_log(r"^Following the errors of the server on 127\.0\.0\.1:")
    # Nothing old is shown; each new error is, as it happens.
    assert fail(server, "/login") == 500
    follower.wait_for_log(r"^KeyError: 'no user'$")
    assert fail(server, "/orders/2") == 500
    follower.wait_for_log(r"\] GET http://127\.0\.0\.1:\d+/orders/2$")
    follower.wait_for_log(r"^ZeroDivisionError: division by zero$")
    assert "/orders/1" not in follower.log.text


def test_files_are_private_and_removed_at_exit(
    project: Path, env: dict[str, str], private_tmp: Path, run_citus: t.Any
) -> None:
    (project / "app.py").write_text(textwrap.dedent(APP).lstrip())
    proc = run_citus("run", "--debug", "--port", "0", cwd=project, env=env)
    url = proc.wait_for_url()
    proc.wait_for_log(r"Debugger PIN")
    assert fail(url, "/orders/5") == 500
    (folder,) = private_tmp.iterdir()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    files = sorted(p.suffix for p in folder.iterdir())
    assert files == [".errors", ".json", ".server"]
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    follower = run_citus("errors", "--follow", cwd=project, env=env)
    follower.wait_for_log(r"^ZeroDivisionError: division by zero$")
    proc.interrupt()
    assert proc.wait() == 0
    follower.wait_for_log(r"^The server stopped\.$")
    assert follower.wait() == 0
    assert list(folder.iterdir()) == []
    assert errors(cwd=project, env=env).returncode == 1
    assert os.listdir(private_tmp) == [folder.name]


def test_each_project_folder_finds_its_own_server(
    server: str,
    project: Path,
    env: dict[str, str],
    tmp_path: Path,
    run_citus: t.Callable[..., t.Any],
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "app.py").write_text(textwrap.dedent(APP).lstrip())
    proc = run_citus("run", "--debug", "--port", "0", cwd=other, env=env)
    other_url = proc.wait_for_url()
    proc.wait_for_log(r"Debugger PIN")
    assert fail(server, "/orders/1") == 500
    assert fail(other_url, "/login") == 500
    mine = errors(cwd=project, env=env).stdout
    theirs = errors(cwd=other, env=env).stdout
    assert "ZeroDivisionError" in mine and "KeyError" not in mine
    assert "KeyError" in theirs and "ZeroDivisionError" not in theirs


def _errors_on_a_terminal(port: str, env: dict[str, str]) -> str:
    sys.path.insert(0, str(Path(__file__).parents[1] / "listening"))
    try:
        from listening_util import PtyProcess
    finally:
        sys.path.pop(0)
    with PtyProcess([executable(), "errors", "--port", port], env) as proc:
        assert proc.wait() == 0
        return t.cast(bytes, proc.output).decode()


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals: POSIX only")
def test_on_a_terminal_the_traceback_links_to_the_editor(
    project: Path, env: dict[str, str], run_citus: t.Callable[..., t.Any]
) -> None:
    (project / "app.py").write_text(textwrap.dedent(APP).lstrip())
    server_env = {**env, "CITUS_EDITOR": "zed"}
    server_env["CITUS_EDITOR_PATH_MAP"] = f"{project}=/home/me/shop"
    proc = run_citus("run", "--debug", "--port", "0", cwd=project, env=server_env)
    url = proc.wait_for_url()
    proc.wait_for_log(r"Debugger PIN")
    assert fail(url, "/orders/7") == 500
    port = url.rsplit(":", 1)[1]
    # The links are the server's (its editor and its path map).
    env = {k: v for k, v in env.items() if k != "NO_COLOR"}
    terminal = {"TERM_PROGRAM": "vscode", "TERM": "xterm-256color"}
    output = _errors_on_a_terminal(port, {**env, **terminal})
    assert (
        f'File "\x1b]8;;zed://file/home/me/shop/app.py:8\x1b\\{project / "app.py"}"'
        ", line 8\x1b]8;;\x1b\\, in order"
    ) in output, output
    # Plain on a terminal not known to show them, with NO_COLOR, and piped.
    plain = _errors_on_a_terminal(port, {**env, "TERM_PROGRAM": "", "TERM": "xterm"})
    assert "\x1b]8;" not in plain and f'File "{project / "app.py"}", line 8' in plain
    no_color = _errors_on_a_terminal(port, {**env, **terminal, "NO_COLOR": "1"})
    assert "\x1b]8;" not in no_color
    piped = errors("--port", port, cwd=project, env={**env, **terminal})
    assert "\x1b]8;" not in piped.stdout and "ZeroDivisionError" in piped.stdout


def test_a_refused_cross_origin_request_points_to_citus_errors(
    server: str, project: Path, env: dict[str, str]
) -> None:
    request = urllib.request.Request(
        server + "/orders/4", headers={"Origin": "http://evil.test"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    body = caught.value.read().decode()
    caught.value.close()
    assert "Traceback" not in body and "ZeroDivisionError" not in body
    assert "The traceback is in the terminal and in 'citus errors'." in body
    assert "ZeroDivisionError" in errors(cwd=project, env=env).stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--last", "-1"], "'--last' / '-n': -1 is not in the range x>=0"),
        (["--last", "many"], "'--last' / '-n': 'many' is not a valid integer"),
        (["--port", "0"], "'--port' / '-p': 0 is not in the range 1<=x<=65535"),
        (["--port", "http"], "'--port' / '-p': 'http' is not a valid integer"),
    ],
)
def test_bad_values_are_one_error_line_and_status_2(
    project: Path, env: dict[str, str], args: list[str], said: str
) -> None:
    done = errors(*args, cwd=project, env=env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("Error:")]
    assert said in line, done.stderr
