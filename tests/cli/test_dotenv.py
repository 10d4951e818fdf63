"""``.env``, ``.citusenv`` and ``--env-file`` through the real ``citus``.

Precedence, highest first: the command line, the real environment,
``--env-file``, the nearest ``.env``, the nearest ``.citusenv``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import typing as t
from pathlib import Path

Runner = t.Callable[..., subprocess.CompletedProcess[str]]
Writer = t.Callable[[str, str], Path]

SHOW = "import os\nprint('VALUES', [os.environ.get(k) for k in ('A', 'B', 'C', 'D')])\n"
APP = "def app(environ, start_response):\n    return []\n"


def values(result: subprocess.CompletedProcess[str]) -> list[str | None]:
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "VALUES" in x)
    return t.cast("list[str | None]", ast.literal_eval(line.split("VALUES ", 1)[1]))


def test_precedence(cli: Runner, write: Writer, project: Path) -> None:
    write("wsgi.py", APP)
    write(".citusenv", "A=citusenv\nB=citusenv\nC=citusenv\nD=citusenv\n")
    write(".env", "A=env\nB=env\nC=env\n")
    write("custom.env", "A=custom\nB=custom\n")
    result = cli("--env-file", "custom.env", "shell", input=SHOW, env={"A": "real"})
    assert values(result) == ["real", "custom", "env", "citusenv"]
    # Without --env-file, .env is next; CITUS_ENV_FILE names the file too.
    assert values(cli("shell", input=SHOW)) == ["env", "env", "env", "citusenv"]
    result = cli("shell", input=SHOW, env={"CITUS_ENV_FILE": "custom.env"})
    assert values(result) == ["custom", "custom", "env", "citusenv"]


def test_nearest_files_from_a_subfolder(
    cli: Runner, write: Writer, project: Path
) -> None:
    write(".env", "A=top-env\n")
    write("sub/.citusenv", "A=sub-citusenv\nB=sub-citusenv\n")
    write("sub/deeper/wsgi.py", APP)
    result = cli("shell", input=SHOW, cwd=project / "sub" / "deeper")
    assert values(result) == ["top-env", "sub-citusenv", None, None]


def test_env_file_sets_the_app_and_run_options(cli: Runner, write: Writer) -> None:
    write("hello.py", 'from citus import API\napp = API("from-dotenv")\n')
    write(".env", "CITUS_APP=hello\n")
    result = cli("shell", input="print('FOUND', app.import_name)\n")
    assert result.returncode == 0, result.stderr
    assert "FOUND from-dotenv" in result.stdout
    # A bad value read from .env is named as coming from the environment.
    write(".citusenv", "CITUS_RUN_PORT=eighty\n")
    result = cli("run")
    assert result.returncode == 2
    assert "CITUS_RUN_PORT" in result.stderr


def test_app_named_by_a_file_in_a_folder_above(
    cli: Runner, write: Writer, project: Path
) -> None:
    """The nearest .citusenv may be above the current folder, but the module it
    names is found from that file's folder: the message says where to go."""
    write("hello.py", APP)
    write(".citusenv", "CITUS_APP=hello\n")
    (project / "sub").mkdir()
    result = cli("routes", cwd=project / "sub")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: Could not import 'hello'")
    citusenv = str((project / ".citusenv").resolve())
    assert message.endswith(
        f" CITUS_APP='hello' was set by {citusenv!r}: run citus in that file's"
        f" folder ({str(project.resolve())!r}), or give --app a path from here."
    )
    # From the file's own folder the app is found; set by hand, no hint.
    assert cli("routes").returncode == 0
    result = cli("routes", cwd=project / "sub", env={"CITUS_APP": "hello"})
    assert result.returncode == 2
    assert "was set by" not in result.stderr


def test_a_file_that_is_not_utf8_is_one_line(
    cli: Runner, write: Writer, project: Path
) -> None:
    write("wsgi.py", APP)
    (project / ".env").write_bytes(b"GREETING=caf\xe9\n")
    result = cli("routes")
    assert result.returncode == 2
    assert result.stderr == (
        f"Error: Could not load {str((project / '.env').resolve())!r}: it is not"
        " UTF-8 text (byte 0xe9 at offset 12). Save it as UTF-8.\n"
    )


def test_missing_env_file_is_a_usage_error(cli: Runner) -> None:
    result = cli("--env-file", "nope.env", "routes")
    assert result.returncode == 2
    assert "'nope.env' does not exist" in result.stderr


def run_without_dotenv(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``citus ARGS`` in ``project``, as if python-dotenv were not installed."""
    code = (
        "import sys; sys.modules['dotenv'] = None\n"
        "from citus.cli import main\n"
        f"main({list(args)!r}, prog_name='citus')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "", "NO_COLOR": "1"},
    )


def test_hint_without_python_dotenv(write: Writer, project: Path) -> None:
    write(".env", "CITUS_APP=hello\n")
    write("wsgi.py", APP)
    result = run_without_dotenv(project, "routes")
    assert result.returncode == 0, result.stderr
    assert "python-dotenv is not installed" in result.stderr
    assert ".env" in result.stderr
    assert "pip install 'citus[dotenv]'" in result.stderr
    # The file was not loaded: the default wsgi.py was used, not CITUS_APP.
    assert "'wsgi'" in result.stdout


def test_env_file_without_python_dotenv_is_a_usage_error(
    write: Writer, project: Path
) -> None:
    """A file named on the command line is not skipped with a mere tip."""
    write("wsgi.py", APP)
    write("custom.env", "CITUS_APP=hello\n")
    result = run_without_dotenv(project, "--env-file", "custom.env", "routes")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: Invalid value for '--env-file' / '-e': 'custom.env' cannot be"
        " read without python-dotenv. Install it: pip install 'citus[dotenv]'."
    )
