"""Option and environment parsing of ``citus run``, checked in process.

``run_simple`` is replaced by a recorder here: these tests are about what the
command line hands to the server, not about serving (``test_run.py`` starts
real servers). Bad values must give click's usage error, exit status 2.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import citus.serving
from citus.cli import main

_names = itertools.count()


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> t.Callable[..., Result]:
    """Run ``citus ARGS`` in process against a fresh WSGI app module."""
    name = f"optapp_{os.getpid()}_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(
        "def app(environ, start_response):\n    return [b'hi']\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for var in list(os.environ):
        if var.startswith("CITUS_"):
            monkeypatch.delenv(var)
    for var in ("CITUS_DEBUG", "CITUS_RUN_FROM_CLI", "CITUS_APP"):
        # Recorded so that monkeypatch removes what the command sets.
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    calls: list[dict[str, t.Any]] = []

    def record(hostname: str, port: int, application: t.Any, **kw: t.Any) -> None:
        calls.append({"host": hostname, "port": port, "app": application, **kw})

    monkeypatch.setattr(citus.serving, "run_simple", record)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(main, ["--app", name, *args], env=env)

    run.calls = calls  # type: ignore[attr-defined]
    return run


def last(invoke: t.Any) -> dict[str, t.Any]:
    assert invoke.calls, "run_simple was not called"
    return t.cast("dict[str, t.Any]", invoke.calls[-1])


def test_defaults(invoke: t.Any) -> None:
    result = invoke("run")
    assert result.exit_code == 0, result.output
    call = last(invoke)
    assert (call["host"], call["port"]) == ("localhost", 8000)
    assert call["use_reloader"] is False
    assert call["use_debugger"] is False
    assert call["threaded"] is True
    assert call["reloader_type"] == "auto"
    assert call["ssl_context"] is None
    assert callable(call["app"])
    assert os.environ["CITUS_RUN_FROM_CLI"] == str(os.getpid())
    assert os.environ["CITUS_DEBUG"] == "0"


def test_short_options(invoke: t.Any) -> None:
    assert invoke("run", "-h", "127.0.0.1", "-p", "0").exit_code == 0
    call = last(invoke)
    assert (call["host"], call["port"]) == ("127.0.0.1", 0)


def test_environment_sets_every_option(invoke: t.Any) -> None:
    env = {
        "CITUS_RUN_HOST": "::1",
        "CITUS_RUN_PORT": "8001",
        "CITUS_RUN_RELOAD": "no",
        "CITUS_RUN_DEBUGGER": "yes",
        "CITUS_RUN_WITH_THREADS": "false",
        "CITUS_RUN_RELOADER_TYPE": "stat",
        "CITUS_RUN_EXTRA_FILES": os.pathsep.join(["a.cfg", "b.cfg"]),
        "CITUS_RUN_EXCLUDE_PATTERNS": os.pathsep.join(["*.tmp", "*~"]),
        "CITUS_RUN_EAGER_LOADING": "1",
        "CITUS_RUN_CERT": "adhoc",
    }
    result = invoke("run", env=env)
    assert result.exit_code == 0, result.output
    call = last(invoke)
    assert (call["host"], call["port"]) == ("::1", 8001)
    assert call["use_reloader"] is False
    assert call["use_debugger"] is True
    assert call["threaded"] is False
    assert call["reloader_type"] == "stat"
    assert call["extra_files"] == ["a.cfg", "b.cfg"]
    assert call["exclude_patterns"] == ["*.tmp", "*~"]
    assert call["ssl_context"] == "adhoc"


def test_command_line_wins_over_environment(invoke: t.Any) -> None:
    env = {"CITUS_RUN_PORT": "8001", "CITUS_RUN_WITH_THREADS": "0"}
    assert invoke("run", "--port", "9000", "--with-threads", env=env).exit_code == 0
    assert last(invoke)["port"] == 9000
    assert last(invoke)["threaded"] is True


def test_extra_files_split_on_pathsep(invoke: t.Any) -> None:
    value = os.pathsep.join(["one.txt", "", "two.txt"])
    assert invoke("run", "--extra-files", value).exit_code == 0
    assert last(invoke)["extra_files"] == ["one.txt", "two.txt"]


@pytest.mark.parametrize(
    ("args", "env", "debug"),
    [
        ([], {}, False),
        ([], {"CITUS_ENV": "development"}, True),
        ([], {"CITUS_ENV": "development", "CITUS_DEBUG": "0"}, False),
        ([], {"CITUS_DEBUG": "true"}, True),
        (["--no-debug"], {"CITUS_DEBUG": "1"}, False),
        (["--debug"], {"CITUS_DEBUG": "0"}, True),
        (["--debug", "AFTER"], {"CITUS_DEBUG": "0"}, True),
        (["--no-debug", "AFTER"], {"CITUS_ENV": "development"}, False),
        (["--debug", "--no-debug", "AFTER"], {}, False),
        ([], {"CITUS_RUN_DEBUG": "yes"}, True),
    ],
)
def test_debug_precedence(
    invoke: t.Any, args: list[str], env: dict[str, str], debug: bool
) -> None:
    # "AFTER" moves the flags before it to after "run".
    if "AFTER" in args:
        cut = args.index("AFTER")
        argv = ["run", *args[:cut]]
    else:
        argv = [*args, "run"]
    # Debug mode's reloader is turned off so that the app loads in process.
    result = invoke(*argv, "--no-reload", env=env)
    assert result.exit_code == 0, result.output
    assert last(invoke)["use_debugger"] is debug


def test_debug_turns_on_reloader_and_debugger(invoke: t.Any) -> None:
    assert invoke("--debug", "run").exit_code == 0
    call = last(invoke)
    assert call["use_reloader"] is True and call["use_debugger"] is True
    # The supervisor gets a stand-in: it must never import or serve the app.
    with pytest.raises(RuntimeError, match="supervisor does not serve"):
        call["app"]({}, lambda *a: None)
    assert invoke("--debug", "run", "--no-reload").exit_code == 0
    call = last(invoke)
    assert call["use_reloader"] is False and call["use_debugger"] is True
    assert invoke("--debug", "run", "--no-debugger").exit_code == 0
    call = last(invoke)
    assert call["use_reloader"] is True and call["use_debugger"] is False


def test_cert_and_key(invoke: t.Any, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    assert invoke("run", "--cert", "adhoc").exit_code == 0
    assert last(invoke)["ssl_context"] == "adhoc"
    assert invoke("run", "--cert", str(cert), "--key", str(key)).exit_code == 0
    assert last(invoke)["ssl_context"] == (str(cert), str(key))
    env = {"CITUS_RUN_CERT": str(cert), "CITUS_RUN_KEY": str(key)}
    assert invoke("run", env=env).exit_code == 0
    assert last(invoke)["ssl_context"] == (str(cert), str(key))


def usage_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return result.output.strip().splitlines()[-1]


def test_cert_and_key_errors(invoke: t.Any, tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    message = usage_error(invoke("run", "--key", str(cert)))
    assert message.startswith(f"Error: --key {str(cert)!r} needs --cert")
    message = usage_error(invoke("run", "--cert", "adhoc", "--key", str(cert)))
    assert message.startswith("Error: --key cannot be used with --cert adhoc")
    message = usage_error(invoke("run", "--cert", str(cert)))
    assert message.startswith(f"Error: --cert {str(cert)!r} needs --key")
    message = usage_error(invoke("run", "--cert", str(tmp_path / "missing.pem")))
    assert "missing.pem' does not exist" in message


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--port", "http"], {}, "'http' is not a valid integer range"),
        (["--port", "70000"], {}, "70000 is not in the range 0<=x<=65535"),
        (["-p", "-1"], {}, "-1 is not in the range 0<=x<=65535"),
        (["--reloader-type", "inotify"], {}, "'inotify' is not one of 'auto',"),
        ([], {"CITUS_RUN_PORT": "x"}, "(from the environment variable CITUS_RUN_PORT"),
        ([], {"CITUS_RUN_RELOAD": "maybe"}, "CITUS_RUN_RELOAD; fix or unset it)"),
        ([], {"CITUS_DEBUG": "maybe"}, "CITUS_DEBUG='maybe' is neither on nor off"),
        (["--bogus"], {}, "No such option '--bogus'"),
    ],
)
def test_bad_values_are_usage_errors(
    invoke: t.Any, args: list[str], env: dict[str, str], expected: str
) -> None:
    message = usage_error(invoke("run", *args, env=env))
    assert message.startswith("Error: ")
    assert expected in message
    assert not invoke.calls


def test_group_option_after_the_command(invoke: t.Any) -> None:
    message = usage_error(invoke("run", "--app", "hello"))
    assert message == (
        "Error: --app is an option of citus itself, so it goes before the"
        " command: citus --app VALUE run ..."
    )
    message = usage_error(invoke("routes", "--env-file=x.env"))
    assert message.startswith("Error: --env-file is an option of citus itself")


def test_help_reads_well() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for word in ("--app IMPORT", "--debug / --no-debug", "--env-file", "--version",
                 "run ", "routes ", "shell "):  # fmt: skip
        assert word in top.output
    # The group's options are listed in the order SPEC.md writes them.
    where = [top.output.index(option) for option in
             ("--app", "--debug", "--env-file", "--version")]  # fmt: skip
    assert where == sorted(where)
    run = runner.invoke(main, ["run", "--help"])
    assert run.exit_code == 0
    for word in ("-h, --host HOST", "-p, --port PORT", "[default: localhost]",
                 "[default: 8000", "--cert PATH|adhoc", "--key PATH",
                 "--reload / --no-reload",
                 "--debugger / --no-debugger", "--eager-loading / --lazy-loading",
                 "--with-threads / --without-threads", "[auto|stat|watchdog]",
                 "--extra-files", "--exclude-patterns",
                 "CITUS_RUN_PORT=8001"):  # fmt: skip
        assert word in run.output, word
    # Bare "citus" shows the help, successfully.
    bare = runner.invoke(main, [])
    assert bare.exit_code == 0
    assert bare.output == top.output
    # -h is help too, except in run, where it is the host.
    assert runner.invoke(main, ["-h"]).output == top.output
    assert "routes [OPTIONS]" in runner.invoke(main, ["routes", "-h"]).output
    assert "-h, --help" not in run.output
    message = usage_error(runner.invoke(main, ["run", "-h"]))
    assert message == (
        "Error: Option '-h' requires an argument. In citus run, -h is --host:"
        " for help, use citus run --help."
    )


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_help_examples_are_valid_shell() -> None:
    # Each example of "citus --help" must paste into a POSIX shell as is: an
    # unquoted "create_app()" is a syntax error there.
    top = CliRunner().invoke(main, ["--help"])
    examples = top.output.split("Examples:")[1].split("Options:")[0]
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    assert any("create_app(" in line for line in lines)
    for line in lines:
        check = subprocess.run(
            ["bash", "-n", "-c", line], capture_output=True, text=True, timeout=10
        )
        assert check.returncode == 0, (line, check.stderr)
