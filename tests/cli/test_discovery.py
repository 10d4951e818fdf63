"""Finding the app: every form of ``--app`` and every way it can go wrong.

Each test runs the real ``citus`` executable against apps written to a
temporary folder. ``citus shell`` with a script on standard input tells which
object was found; ``citus routes`` is the cheapest command that loads an app.
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

Runner = t.Callable[..., subprocess.CompletedProcess[str]]
Writer = t.Callable[[str, str], Path]

HELLO = """
    from citus import API

    app = API("hello-app")

    def create_app(env="default", debug=False):
        return API(f"factory-{env}-{debug}")
"""

WHO = 'print("FOUND", getattr(app, "import_name", app))\n'


def found(result: subprocess.CompletedProcess[str]) -> str:
    """The ``FOUND ...`` line that ``WHO`` printed, after checking success."""
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "FOUND" in line]
    assert lines, result.stdout + result.stderr
    return lines[-1].split("FOUND ", 1)[1]


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one-line message of a usage error, after checking its form."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("hello", "hello-app"),
        ("hello.py", "hello-app"),
        ("hello:app", "hello-app"),
        ("hello:create_app", "factory-default-False"),
        ("hello:create_app()", "factory-default-False"),
        ('hello:create_app("dev", debug=True)', "factory-dev-True"),
        ("hello:create_app('dev', **{})", None),
    ],
)
def test_app_forms(
    cli: Runner, write: Writer, reference: str, expected: str | None
) -> None:
    write("hello.py", HELLO)
    result = cli("--app", reference, "shell", input=WHO)
    if expected is None:
        assert "use '**'" in usage_error(result)
    else:
        assert found(result) == expected


def test_paths_and_packages(cli: Runner, write: Writer, project: Path) -> None:
    write("src/hello.py", 'from citus import API\napp = API("in-src")\n')
    write("pkg/__init__.py", "")
    write("pkg/module.py", 'from citus import API\napp = API("in-pkg")\n')
    assert found(cli("--app", "src/hello", "shell", input=WHO)) == "in-src"
    assert found(cli("--app", "src/hello.py", "shell", input=WHO)) == "in-src"
    assert found(cli("--app", "pkg.module", "shell", input=WHO)) == "in-pkg"
    # A path into a package imports it under its dotted name.
    assert found(cli("--app", "pkg/module.py", "shell", input=WHO)) == "in-pkg"
    # From a sub-folder, a relative path still works.
    sub = project / "elsewhere"
    sub.mkdir()
    result = cli("--app", "../src/hello.py", "shell", input=WHO, cwd=sub)
    assert found(result) == "in-src"


def test_env_var_names_the_app(cli: Runner, write: Writer) -> None:
    write("hello.py", HELLO)
    result = cli("shell", input=WHO, env={"CITUS_APP": "hello:create_app('env')"})
    assert found(result) == "factory-env-False"
    # The option wins over the variable.
    result = cli("--app", "hello", "shell", input=WHO, env={"CITUS_APP": "nope"})
    assert found(result) == "hello-app"
    # CMD's "set CITUS_APP=hello " keeps the space, which is not part of the name.
    result = cli("shell", input=WHO, env={"CITUS_APP": " hello:app "})
    assert found(result) == "hello-app"


def test_default_files(cli: Runner, write: Writer, project: Path) -> None:
    write("app.py", 'from citus import API\napp = API("from-app-py")\n')
    assert found(cli("shell", input=WHO)) == "from-app-py"
    write("wsgi.py", 'from citus import API\napp = API("from-wsgi-py")\n')
    assert found(cli("shell", input=WHO)) == "from-wsgi-py"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('from citus import API\napplication = API("named-application")\n',
         "named-application"),
        ('from citus import API\nserver = API("the-one-instance")\n',
         "the-one-instance"),
        ('from citus import API\ndef create_app():\n    return API("created")\n',
         "created"),
        ('from citus import API\ndef make_app():\n    return API("made")\n',
         "made"),
        ("def app(environ, start_response):\n    return []\n", "<function app"),
    ],
)  # fmt: skip
def test_search_inside_module(
    cli: Runner, write: Writer, source: str, expected: str
) -> None:
    write("hello.py", source)
    assert found(cli("--app", "hello", "shell", input=WHO)).startswith(expected)


def test_current_folder_is_importable(cli: Runner, write: Writer) -> None:
    write("helpers.py", 'NAME = "helped"\n')
    write(
        "hello.py", "from citus import API\nimport helpers\napp = API(helpers.NAME)\n"
    )
    assert found(cli("--app", "hello", "shell", input=WHO)) == "helped"


def test_cts_is_the_same_program(cli: Runner, write: Writer) -> None:
    write("hello.py", HELLO)
    assert found(cli("--app", "hello", "shell", input=WHO, exe="cts")) == "hello-app"
    assert usage_error(cli("--app", "nope", "routes", exe="cts")).startswith(
        "Error: Could not import 'nope'"
    )


# Every way it can go wrong: one line, exit status 2, no traceback.


def test_no_app_and_no_default_file(cli: Runner, project: Path) -> None:
    message = usage_error(cli("routes"))
    assert "no --app given" in message
    assert (
        "neither 'wsgi.py' nor 'app.py' nor a Django project's 'manage.py'" in message
    )
    assert str(project) in message
    assert message.endswith("Name one with --app hello (or CITUS_APP=hello).")


def test_module_not_found(cli: Runner) -> None:
    message = usage_error(cli("--app", "nope", "routes"))
    assert message.startswith("Error: Could not import 'nope': no module named 'nope'")
    assert message.endswith("give the file's path: --app path/to/hello.py.")
    message = usage_error(cli("--app", "pkgnope.module:app", "routes"))
    assert "no module named 'pkgnope'" in message


def test_dot_instead_of_colon(cli: Runner, write: Writer) -> None:
    write("hello.py", HELLO)
    expected = (
        "Error: Could not import 'hello.app': 'hello' is a module, not a package,"
        " so it has no submodule 'app'. To name its app, put a colon before the"
        " name: --app 'hello:app'."
    )
    assert usage_error(cli("--app", "hello.app", "routes")) == expected
    # The reloader's supervisor, which imports nothing, says the same.
    assert usage_error(cli("--app", "hello.app", "run", "--debug")) == expected


def test_path_not_found(cli: Runner) -> None:
    message = usage_error(cli("--app", "src/nope.py", "routes"))
    assert message.startswith("Error: Could not import 'src/nope.py': there is no file")
    assert "nope.py" in message and "Check the path" in message


def test_root_folder_is_not_a_module(cli: Runner) -> None:
    message = usage_error(cli("--app", "/", "routes"))
    assert "is the root folder, not a module" in message


def test_symlinked_app_file(cli: Runner, write: Writer, project: Path) -> None:
    """A hello.py that links to another file is still the user's module."""
    write("real_hello.py", HELLO)
    try:
        (project / "hello.py").symlink_to("real_hello.py")
    except OSError:
        pytest.skip("no symbolic links here")
    assert found(cli("--app", "hello", "shell", input=WHO)) == "hello-app"
    assert found(cli("--app", "hello.py", "shell", input=WHO)) == "hello-app"


def test_bad_module_name(cli: Runner) -> None:
    message = usage_error(cli("--app", "my-app", "routes"))
    assert "'my-app' is not a module name" in message


def test_file_name_with_a_dot(cli: Runner, write: Writer, project: Path) -> None:
    write("my.app.py", HELLO)
    message = usage_error(cli("--app", "my.app.py", "routes"))
    assert message == (
        "Error: Could not import 'my.app.py': 'my.app' has a dot in its name,"
        " which Python reads as a package and its module. Rename it (my_app.py)."
    )
    # A missing one is named as written, and a dot in a folder is fine.
    message = usage_error(cli("--app", "no.such.py", "routes"))
    assert f"there is no file {str((project / 'no.such.py').resolve())!r}" in message
    write("v1.0/web.py", HELLO)
    assert found(cli("--app", "v1.0/web.py", "shell", input=WHO)) == "hello-app"


def test_attribute_not_found(cli: Runner, write: Writer) -> None:
    write("hello.py", HELLO)
    message = usage_error(cli("--app", "hello:nope", "routes"))
    assert message == (
        "Error: Module 'hello' has no attribute 'nope'. It defines: app,"
        " create_app. Use 'hello:NAME' with the name of the application."
    )


def test_several_apps(cli: Runner, write: Writer) -> None:
    write("two.py", "from citus import API\nfirst = API('a')\nsecond = API('b')\n")
    message = usage_error(cli("--app", "two", "routes"))
    assert message == (
        "Error: Found several applications in module 'two': 'two:first',"
        " 'two:second'. Use 'two:NAME' to pick one."
    )


def test_no_app_in_module(cli: Runner, write: Writer) -> None:
    write("empty.py", "x = 1\n")
    message = usage_error(cli("--app", "empty", "routes"))
    assert message.startswith("Error: Could not find an application in module 'empty'")
    assert message.endswith("Use 'empty:NAME' to name it.")


def test_no_app_in_a_package_with_a_wsgi_module(cli: Runner, write: Writer) -> None:
    """A Django project named without '.wsgi' is pointed at its wsgi module."""
    write("mysite/__init__.py", "")
    write(
        "mysite/wsgi.py", "def application(environ, start_response):\n    return []\n"
    )
    message = usage_error(cli("--app", "mysite", "routes"))
    assert message.endswith(
        "factory. Its wsgi module may hold it: --app mysite.wsgi."
        " Use 'mysite:NAME' to name it."
    )


def test_package_whose_app_is_a_submodule(cli: Runner, write: Writer) -> None:
    """``proj.app`` the module is not taken for the app; it is suggested."""
    write("proj/__init__.py", "from . import app\n")
    write("proj/app.py", "from citus import API\napp = API('in-submodule')\n")
    message = usage_error(cli("--app", "proj", "routes"))
    assert "'proj:app' is a" not in message
    assert message.endswith(
        "Its submodule may hold it: --app proj.app. Use 'proj:NAME' to name it."
    )
    assert found(cli("--app", "proj.app", "shell", input=WHO)) == "in-submodule"


def test_factory_needs_arguments(cli: Runner, write: Writer) -> None:
    write(
        "fac.py", "from citus import API\ndef create_app(env):\n    return API(env)\n"
    )
    for reference in ("fac", "fac:create_app", "fac:create_app()"):
        message = usage_error(cli("--app", reference, "routes"))
        assert message.startswith(
            "Error: The factory 'fac:create_app' cannot be called with ():"
            " missing a required argument: 'env'."
        ), message
        assert message.endswith("""--app 'fac:create_app("dev")', for example.""")
    message = usage_error(cli("--app", "fac:create_app(1, 2)", "routes"))
    assert "cannot be called with (1, 2): too many positional" in message


def test_factory_arguments_are_literals_only(
    cli: Runner, write: Writer, project: Path
) -> None:
    write("hello.py", HELLO)
    witness = project / "evaluated"
    reference = f"hello:create_app(open({str(witness)!r}, 'w'))"
    message = usage_error(cli("--app", reference, "routes"))
    assert "are not all literal values" in message
    assert not witness.exists()


@pytest.mark.parametrize(
    "reference", ["hello:create_app(", "hello:app.name", "hello:app[0]", "hello:1"]
)
def test_unreadable_attribute(cli: Runner, write: Writer, reference: str) -> None:
    write("hello.py", HELLO)
    message = usage_error(cli("--app", reference, "routes"))
    assert message.startswith("Error: Could not read")
    assert "Use 'module:name'" in message


def test_not_a_wsgi_callable(cli: Runner, write: Writer) -> None:
    write("bad.py", "app = 'hello'\ndef make(): return 42\nlater = 3\n")
    message = usage_error(cli("--app", "bad", "routes"))
    assert message.startswith(
        "Error: 'bad:app' is a str, not a WSGI application (a callable taking"
        " environ and start_response)."
    )
    message = usage_error(cli("--app", "bad:make()", "routes"))
    assert message.startswith("Error: 'bad:make()' returned an int, not a WSGI")
    message = usage_error(cli("--app", "bad:later()", "routes"))
    assert message.startswith("Error: 'bad:later' is an int, which cannot be called.")


def test_calling_an_app_that_is_not_a_factory(cli: Runner, write: Writer) -> None:
    write("hello.py", HELLO)
    message = usage_error(cli("--app", "hello:app()", "routes"))
    assert message == (
        "Error: 'hello:app' is already an application (a citus.app.API), not a"
        " factory to call. Drop the parentheses: --app 'hello:app'."
    )


def test_import_error_inside_the_module_shows_its_traceback(
    cli: Runner, write: Writer
) -> None:
    write("broken.py", "import os\nimport no_such_dependency_xyz\napp = None\n")
    result = cli("--app", "broken", "routes")
    assert result.returncode == 1
    assert "Traceback (most recent call last):" in result.stderr
    assert 'broken.py", line 2, in <module>' in result.stderr
    assert "ModuleNotFoundError: No module named 'no_such_dependency_xyz'" in (
        result.stderr
    )
    # The traceback starts in the user's code, not in citus or importlib.
    assert "citus" not in result.stderr.split("Traceback")[1].splitlines()[1]


def test_syntax_error_shows_the_file(cli: Runner, write: Writer) -> None:
    write("typo.py", "def app(:\n")
    result = cli("--app", "typo", "routes")
    assert result.returncode == 1
    assert 'typo.py", line 1' in result.stderr
    assert "SyntaxError" in result.stderr
    # Only the file, the line and the caret: no frames of citus or importlib.
    assert "Traceback" not in result.stderr
    assert "importlib" not in result.stderr and "citus" not in result.stderr


def test_exception_in_factory_shows_its_traceback(cli: Runner, write: Writer) -> None:
    write("fac.py", "def create_app():\n    raise RuntimeError('no database')\n")
    result = cli("--app", "fac", "routes")
    assert result.returncode == 1
    assert 'fac.py", line 2, in create_app' in result.stderr
    assert "RuntimeError: no database" in result.stderr


def test_module_exists_runs_no_code(
    project: Path, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reloader's supervisor checks --app without importing anything."""
    from citus.cli.discovery import module_exists

    witness = project / "ran"
    write("pkgx/__init__.py", f"open({str(witness)!r}, 'w').close()\n")
    write("pkgx/sub.py", f"open({str(witness)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(project))
    assert module_exists("pkgx.sub")
    assert not module_exists("pkgx.nothere")
    assert not module_exists("nothere_at_all.sub")
    assert not witness.exists()
    # Installed and standard-library modules are found too.
    assert module_exists("flask") and module_exists("email.mime.text")


def test_version(cli: Runner) -> None:
    import sys

    import citus

    for exe in ("citus", "cts"):
        result = cli("--version", exe=exe)
        assert result.returncode == 0
        assert result.stdout.splitlines() == [
            f"citus {citus.__version__}",
            f"Python {sys.version.split()[0]}",
        ]


def test_python_dash_m_citus(write: Writer, project: Path) -> None:
    write("hello.py", HELLO)
    result = subprocess.run(
        [sys.executable, "-m", "citus", "--app", "hello", "shell"],
        input=WHO,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found(result) == "hello-app"


def test_file_named_like_a_loaded_module(cli: Runner, write: Writer) -> None:
    # citus itself has imported the standard library's logging by then.
    write("logging.py", "def app(environ, start_response):\n    return []\n")
    for reference in ("logging", "logging.py"):
        message = usage_error(cli("--app", reference, "routes"))
        assert message.startswith(
            f"Error: Could not import your {reference!r}: the name 'logging' is"
            " already taken by"
        )
        assert message.endswith("Rename your file (e.g. logging_app.py).")


@pytest.mark.skipif(sys.platform == "win32", reason="Windows keeps a busy folder")
def test_current_folder_deleted(project: Path) -> None:
    """A shell left in a deleted folder gets a sentence, not a traceback."""
    gone = project / "gone"
    gone.mkdir()
    script = 'cd "$1" && rmdir "$1" && exec "$2" routes'
    citus = str(Path(sys.executable).with_name("citus"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITUS_")}
    result = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(gone), citus],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "NO_COLOR": "1"},
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: The current folder no longer exists (it was deleted or moved"
        " away). Go to your project's folder and run citus again.\n"
    )
