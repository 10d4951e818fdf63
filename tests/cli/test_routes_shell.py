"""``citus routes`` and ``citus shell`` against real apps, via the real ``citus``."""

from __future__ import annotations

import subprocess
import textwrap
import typing as t
from pathlib import Path

import pytest

Runner = t.Callable[..., subprocess.CompletedProcess[str]]
Writer = t.Callable[[str, str], Path]

ROUTES = """
    from citus import API

    app = API(__name__)

    @app.route("/")
    def index():
        return "home"

    @app.route("/users/<int:user_id>", methods=["GET", "POST"])
    def user(user_id):
        return "user"

    @app.post("/zebra")
    def add():
        return "added"
"""


def table(result: subprocess.CompletedProcess[str]) -> list[list[str]]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert set(lines[1].replace(" ", "")) == {"-"}
    return [[cell.strip() for cell in line.split("  ") if cell.strip()]
            for line in [lines[0], *lines[2:]]]  # fmt: skip


def test_routes_table_and_sorting(cli: Runner, write: Writer) -> None:
    write("hello.py", ROUTES)
    rows = table(cli("--app", "hello", "routes"))
    assert rows == [
        ["Endpoint", "Methods", "Rule"],
        ["add", "POST", "/zebra"],
        ["index", "GET", "/"],
        ["user", "GET, POST", "/users/<int:user_id>"],
    ]
    rows = table(cli("--app", "hello", "routes", "--sort", "rule"))
    assert [row[2] for row in rows[1:]] == ["/", "/users/<int:user_id>", "/zebra"]
    rows = table(cli("--app", "hello", "routes", "--sort", "methods"))
    assert [row[1] for row in rows[1:]] == ["GET", "GET, POST", "POST"]
    rows = table(cli("--app", "hello", "routes", "--all-methods"))
    assert ["index", "GET, HEAD, OPTIONS", "/"] in rows


def test_routes_bad_sort_is_a_usage_error(cli: Runner, write: Writer) -> None:
    write("hello.py", ROUTES)
    result = cli("--app", "hello", "routes", "--sort", "size")
    assert result.returncode == 2
    assert "'size' is not one of 'endpoint', 'methods', 'rule'" in result.stderr


def test_routes_host_and_subdomain_columns(cli: Runner, write: Writer) -> None:
    write(
        "hosts.py",
        """
        from citus import API

        app = API(__name__)
        app.config["SERVER_NAME"] = "example.test"

        @app.route("/")
        def index():
            return "home"

        @app.route("/", subdomain="api", endpoint="api_index")
        def api_index():
            return "api"

        @app.route("/", host="admin.example.test", endpoint="admin")
        def admin():
            return "admin"
        """,
    )
    result = cli("--app", "hosts", "routes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Endpoint", "Methods", "Rule", "Host", "Subdomain"]
    assert lines[2].split() == ["admin", "GET", "/", "admin.example.test"]
    assert lines[3].split() == ["api_index", "GET", "/", "api"]
    # The subdomain sits in its own column, after the (empty) host column.
    assert lines[3].rindex("api") == lines[0].index("Subdomain")


def test_routes_of_an_app_without_routes(cli: Runner, write: Writer) -> None:
    write("bare.py", "from citus import API\napp = API(__name__)\n")
    result = cli("--app", "bare", "routes")
    assert result.returncode == 0
    assert result.stdout.strip() == (
        "The app 'bare' has no routes yet. Add one with @app.route."
    )


def test_routes_of_a_plain_wsgi_app(cli: Runner, write: Writer) -> None:
    write("other.py", "def app(environ, start_response):\n    return []\n")
    result = cli("--app", "other", "routes")
    assert result.returncode == 0
    assert result.stdout.strip() == (
        "The app 'other' (function) is a WSGI application of no framework citus"
        " knows (citus, Flask, Django, Bottle, Falcon, Pyramid), so citus has no"
        " route table to show for it."
    )


def test_shell_has_the_app(cli: Runner, write: Writer) -> None:
    write("hello.py", ROUTES)
    code = "x = 20\nprint(x + 1, app, __name__)\n"
    result = cli("--app", "hello", "shell", input=code)
    assert result.returncode == 0, result.stderr
    assert "21 <API 'hello'> __console__" in result.stdout
    assert "App: 'hello' (citus.app.API), in the variable 'app'." in result.stderr
    assert "Python " in result.stderr
    # Multi-line statements work as in the standard console.
    result = cli(
        "--app", "hello", "shell", input="for i in range(2):\n    print('n', i)\n\n"
    )
    assert "n 0" in result.stdout and "n 1" in result.stdout


def test_shell_runs_pythonstartup(cli: Runner, write: Writer, project: Path) -> None:
    write("hello.py", ROUTES)
    startup = write("startup.py", "GREETING = 'from startup'\n")
    result = cli(
        "--app", "hello", "shell", input="print(GREETING)\n",
        env={"PYTHONSTARTUP": str(startup)},
    )  # fmt: skip
    assert "from startup" in result.stdout


def test_shell_opens_despite_an_error_in_pythonstartup(
    cli: Runner, write: Writer
) -> None:
    """As in python's console: the startup file's traceback, then the shell."""
    write("hello.py", ROUTES)
    startup = write("startup.py", "app = 'replaced'\nraise ValueError('bad startup')\n")
    result = cli(
        "--app", "hello", "shell", input="print('STILL', app)\n",
        env={"PYTHONSTARTUP": str(startup)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "STILL <API 'hello'>" in result.stdout
    assert 'startup.py", line 2, in <module>' in result.stderr
    assert "ValueError: bad startup" in result.stderr
    assert "commands.py" not in result.stderr  # citus's own frames are left out


def test_shell_sees_debug_and_run_from_cli(cli: Runner, write: Writer) -> None:
    write("hello.py", ROUTES)
    code = "import os\nprint('ENV', os.environ.get('CITUS_DEBUG'))\n"
    result = cli("--app", "hello", "--debug", "shell", input=code)
    assert "ENV 1" in result.stdout


def test_shell_with_a_broken_app(cli: Runner, write: Writer) -> None:
    write("hello.py", "raise ValueError('cannot start')\n")
    result = cli("--app", "hello", "shell")
    assert result.returncode == 1
    assert "ValueError: cannot start" in result.stderr
    assert 'hello.py", line 1' in result.stderr


def test_unguarded_app_run_names_the_command(cli: Runner, write: Writer) -> None:
    """``app.run()`` at import time is ignored, and the note says which command."""
    write("hello.py", ROUTES + "\n    app.run()\n")
    result = cli("--app", "hello", "routes")
    assert result.returncode == 0, result.stderr
    assert (
        " * Ignoring a call to 'app.run()': 'citus routes' loaded this app, and does"
        " not serve it (that is 'citus run')."
    ) in result.stderr
    assert "is already serving" not in result.stderr
    result = cli("--app", "hello", "shell", input="print('SHELL')\n")
    assert "'citus shell' loaded this app" in result.stderr


CHILD = """
    import citus.serving
    from citus import API

    def serve(host, port, app, **options):
        print("CHILD SERVES", app.name, flush=True)

    citus.serving.run_simple = serve  # record the call instead of serving
    app = API("child")
    app.run(host="127.0.0.1", port=0)
"""


def test_a_program_started_from_the_shell_may_call_app_run(
    cli: Runner, write: Writer
) -> None:
    """Only the ``citus`` process ignores ``app.run()``, not the programs it
    starts, which inherit its environment."""
    write("hello.py", ROUTES)
    write("child.py", CHILD)
    code = (
        "import subprocess, sys\n"
        "r = subprocess.run([sys.executable, 'child.py'], capture_output=True,"
        " text=True, timeout=20)\n"
        "print('OUT', r.stdout, r.stderr)\n"
        "app.run()\n"
    )
    result = cli("--app", "hello", "shell", input=code)
    assert result.returncode == 0, result.stderr
    assert "CHILD SERVES child" in result.stdout
    assert "Ignoring" not in result.stdout
    # In the shell's own process, app.run() is still ignored.
    assert "'citus shell' loaded this app" in result.stderr


SLOW = """
    import sys, time
    print("importing", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.05)
"""


@pytest.mark.live_server
@pytest.mark.parametrize("command", ["routes", "shell"])
def test_ctrl_c_while_the_app_loads_exits_quietly(
    run_citus: t.Callable[..., t.Any], tmp_path: Path, command: str
) -> None:
    """Ctrl+C ends ``routes`` and ``shell`` as it ends ``citus run``: status 0,
    no ``Aborted!``, no traceback."""
    (tmp_path / "slow.py").write_text(textwrap.dedent(SLOW), encoding="utf-8")
    with run_citus("--app", "slow", command) as proc:
        proc.wait_for_log("importing")
        proc.interrupt()
        assert proc.wait() == 0
    assert "Aborted" not in proc.log.text
    assert "Traceback" not in proc.log.text


def test_shell_ends_at_end_of_input_and_survives_ctrl_c(
    cli: Runner, write: Writer
) -> None:
    """Ctrl+D (end of input) leaves with status 0, as python's console does; a
    KeyboardInterrupt inside it only ends that statement."""
    write("hello.py", ROUTES)
    code = "raise KeyboardInterrupt\nprint('still here')\n"
    result = cli("--app", "hello", "shell", input=code)
    assert result.returncode == 0, result.stderr
    assert "KeyboardInterrupt" in result.stderr
    assert "still here" in result.stdout
    assert "Aborted" not in result.stderr
