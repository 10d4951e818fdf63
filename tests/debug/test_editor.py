"""Editor links: ``CITUS_EDITOR``, ``CITUS_EDITOR_PATH_MAP``, on the page, in
the JSON document, and as OSC 8 hyperlinks in tracebacks on a terminal."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import threading
import typing as t
from pathlib import Path

import pytest

from citus.debug import DebuggedApplication
from citus.debug.editor import EDITORS, Editor, osc8_traceback, terminal_links
from citus.serving import make_server

from .conftest import BROWSER_ACCEPT, Caller, failing_app
from .test_browser import browser_page as browser_page

CONFTEST = str(Path(__file__).with_name("conftest.py"))


@pytest.fixture
def no_editor_env(monkeypatch: pytest.MonkeyPatch, isolated_state: None) -> None:
    for name in ("CITUS_EDITOR", "CITUS_EDITOR_PATH_MAP", "TERM_PROGRAM"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("vscode", "vscode://file/home/me/shop/app.py:12"),
        ("vscode-insiders", "vscode-insiders://file/home/me/shop/app.py:12"),
        ("cursor", "cursor://file/home/me/shop/app.py:12"),
        ("pycharm", "pycharm://open?file=/home/me/shop/app.py&line=12"),
        ("idea", "idea://open?file=/home/me/shop/app.py&line=12"),
        ("sublime", "subl://open?url=file:///home/me/shop/app.py&line=12"),
        ("textmate", "txmt://open?url=file:///home/me/shop/app.py&line=12"),
        ("zed", "zed://file/home/me/shop/app.py:12"),
        ("VSCode", "vscode://file/home/me/shop/app.py:12"),
        (
            "myeditor://open?file={path}&line={line}",
            "myeditor://open?file=/home/me/shop/app.py&line=12",
        ),
    ],
)
def test_named_editors_and_templates(name: str, url: str) -> None:
    editor = Editor.from_env({"CITUS_EDITOR": name})
    assert editor.warnings == []
    assert editor.url("/home/me/shop/app.py", 12) == url


def test_every_named_editor_is_tested() -> None:
    assert set(EDITORS) == {
        "vscode",
        "vscode-insiders",
        "cursor",
        "pycharm",
        "idea",
        "sublime",
        "textmate",
        "zed",
    }


def test_unset_means_no_links_except_in_vscode_terminal() -> None:
    assert Editor.from_env({}).url("/srv/app.py", 1) is None
    assert Editor.from_env({"TERM_PROGRAM": "iTerm.app"}).url("/srv/app.py", 1) is None
    in_vscode = Editor.from_env({"TERM_PROGRAM": "vscode"})
    assert in_vscode.url("/srv/app.py", 3) == "vscode://file/srv/app.py:3"
    assert in_vscode.warnings == []


def test_unknown_name_warns_once_and_links_nothing() -> None:
    editor = Editor.from_env({"CITUS_EDITOR": "notepad++"})
    assert editor.url("/srv/app.py", 1) is None
    assert len(editor.warnings) == 1
    (warning,) = editor.warnings
    assert warning.startswith("WARNING: CITUS_EDITOR='notepad++' names no editor")
    assert "vscode" in warning and "{path}" in warning
    assert "\n" not in warning


def test_paths_are_encoded_and_pseudo_files_get_no_link() -> None:
    editor = Editor.from_env({"CITUS_EDITOR": "pycharm"})
    url = editor.url("/home/me/my shop/a&b.py", 7)
    assert url == "pycharm://open?file=/home/me/my%20shop/a%26b.py&line=7"
    assert editor.url("<string>", 1) is None
    assert editor.url("<frozen runpy>", 1) is None
    # A "+" in a query parameter reads as a space (JetBrains, TextMate, Sublime
    # handlers decode it so); encoded, it reads as "+" in a path too.
    assert editor.url("/home/me/c++/app.py", 3) == (
        "pycharm://open?file=/home/me/c%2B%2B/app.py&line=3"
    )
    windows = Editor.from_env({"CITUS_EDITOR": "vscode"}).url(r"C:\work\app.py", 2)
    assert windows == "vscode://file/C:/work/app.py:2"


def test_path_map_turns_server_paths_into_the_editors() -> None:
    editor = Editor.from_env(
        {
            "CITUS_EDITOR": "vscode",
            "CITUS_EDITOR_PATH_MAP": "/app=/home/me/shop, /app/vendor=/opt/vendor,"
            "/srv/=/Users/me/srv/",
        }
    )
    assert editor.warnings == []
    assert editor.url("/app/views.py", 4) == "vscode://file/home/me/shop/views.py:4"
    # The longest prefix wins, and only whole path components match.
    assert editor.url("/app/vendor/x.py", 1) == "vscode://file/opt/vendor/x.py:1"
    assert editor.url("/application/x.py", 1) == "vscode://file/application/x.py:1"
    assert editor.url("/srv/a.py", 1) == "vscode://file/Users/me/srv/a.py:1"


def test_a_malformed_path_map_pair_is_named() -> None:
    editor = Editor.from_env(
        {"CITUS_EDITOR": "zed", "CITUS_EDITOR_PATH_MAP": "/app,/x=/y"}
    )
    assert len(editor.warnings) == 1
    assert "'/app'" in editor.warnings[0]
    assert editor.url("/x/a.py", 1) == "zed://file/y/a.py:1"


def test_page_links_every_frame_to_the_editor(
    monkeypatch: pytest.MonkeyPatch, no_editor_env: None
) -> None:
    monkeypatch.setenv("CITUS_EDITOR", "vscode")
    monkeypatch.setenv("CITUS_EDITOR_PATH_MAP", f"{Path(CONFTEST).parent}=/mapped")
    client = Caller(DebuggedApplication(failing_app))
    page = client.get("/", headers={"Accept": BROWSER_ACCEPT}).text
    links = [
        html.unescape(h)
        for h in re.findall(r'class="editor-link" href="([^"]+)"', page)
    ]
    assert "vscode://file/mapped/conftest.py:" + _line_of("raise Boom") in links
    # Every frame, and the failing place at the top.
    assert len(links) == page.count('<li class="frame') + 1


def test_the_header_links_the_failing_place_too(
    monkeypatch: pytest.MonkeyPatch, no_editor_env: None
) -> None:
    monkeypatch.setenv("CITUS_EDITOR", "zed")
    page = Caller(DebuggedApplication(failing_app)).get(
        "/", headers={"Accept": BROWSER_ACCEPT}
    )
    where = re.search(r'<p class="where">(.*?)</p>', page.text)
    assert where, page.text
    url = f"zed://file{CONFTEST}:{_line_of('raise Boom')}"
    assert f'href="{url}"' in where.group(1)


@pytest.mark.browser
@pytest.mark.live_server
def test_editor_links_look_like_links_in_chromium(
    monkeypatch: pytest.MonkeyPatch, no_editor_env: None, browser_page: t.Any
) -> None:
    monkeypatch.setenv("CITUS_EDITOR", "vscode")
    server = make_server("127.0.0.1", 0, DebuggedApplication(failing_app))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser_page
        assert page.goto(f"http://localhost:{server.port}/").status == 500
        link = page.locator("li.frame:not(.library) a.editor-link").last
        style = "el => getComputedStyle(el).textDecorationLine"
        # Underlined before any hover, so that a reader sees it can be clicked.
        assert "underline" in link.locator(".file").evaluate(style)
        assert page.locator("header .where a.editor-link").count() == 1
        page.locator("header .where a.editor-link").hover()
        assert "underline" in page.locator("header .where a.editor-link").evaluate(
            style
        )
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def test_page_has_no_links_without_an_editor(no_editor_env: None) -> None:
    page = Caller(DebuggedApplication(failing_app)).get(
        "/", headers={"Accept": BROWSER_ACCEPT}
    )
    assert "editor-link" not in page.text


def test_json_carries_the_editor_url(
    monkeypatch: pytest.MonkeyPatch, no_editor_env: None
) -> None:
    monkeypatch.setenv("CITUS_EDITOR", "myeditor://open?f={path}&l={line}")
    result = Caller(DebuggedApplication(failing_app)).get(
        "/", headers={"Accept": "application/json"}
    )
    frames = result.json()["chain"][-1]["frames"]
    assert frames[-1]["editor_url"] == (
        f"myeditor://open?f={CONFTEST}&l={_line_of('raise Boom')}"
    )
    monkeypatch.delenv("CITUS_EDITOR")
    result = Caller(DebuggedApplication(failing_app)).get(
        "/", headers={"Accept": "application/json"}
    )
    assert result.json()["chain"][-1]["frames"][-1]["editor_url"] is None


def test_unknown_editor_is_one_banner_warning(
    monkeypatch: pytest.MonkeyPatch, no_editor_env: None
) -> None:
    monkeypatch.setenv("CITUS_EDITOR", "ed")
    lines = DebuggedApplication(failing_app).banner_lines([])
    assert [line for line in lines if "CITUS_EDITOR" in line] == [
        line for line in lines if line.startswith("WARNING: CITUS_EDITOR='ed'")
    ]
    assert len([line for line in lines if "CITUS_EDITOR" in line]) == 1


def _line_of(text: str) -> str:
    for number, line in enumerate(Path(CONFTEST).read_text().splitlines(), 1):
        if text in line:
            return str(number)
    raise AssertionError(text)


# --- OSC 8 in the terminal ---------------------------------------------------


def test_osc8_wraps_file_and_line() -> None:
    text = 'Traceback (most recent call last):\n  File "/srv/app.py", line 3, in f\n'
    linked = osc8_traceback(text, Editor.from_env({"CITUS_EDITOR": "vscode"}))
    assert (
        '  File "\x1b]8;;vscode://file/srv/app.py:3\x1b\\/srv/app.py", line 3'
        "\x1b]8;;\x1b\\, in f" in linked
    )
    plain = osc8_traceback(text, Editor.from_env({}))
    assert "\x1b]8;;file:///srv/app.py\x1b\\" in plain
    assert osc8_traceback('  File "<string>", line 1\n', Editor(None)) == (
        '  File "<string>", line 1\n'
    )


def test_known_terminals() -> None:
    assert terminal_links({"TERM_PROGRAM": "vscode"})
    assert terminal_links({"TERM": "xterm-kitty"})
    assert terminal_links({"VTE_VERSION": "7600"})
    assert terminal_links({"WT_SESSION": "x"})
    assert not terminal_links({"TERM": "xterm-256color"})
    assert not terminal_links({"VTE_VERSION": "4000"})
    assert not terminal_links({"TERM_PROGRAM": "vscode", "FORCE_HYPERLINK": "0"})
    assert terminal_links({"FORCE_HYPERLINK": "1"})


# A process whose view fails once; the debugger prints the traceback.
FAIL_ONCE = """
import io
from citus.debug import DebuggedApplication

def view(environ, start_response):
    raise ValueError("boom")

app = DebuggedApplication(view)
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "HTTP_HOST": "localhost",
           "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
           "SERVER_NAME": "localhost", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1"}
list(app(environ, lambda status, headers, exc_info=None: None))
print("done", flush=True)
"""

pty_only = pytest.mark.skipif(
    sys.platform == "win32", reason="pseudo-terminals are POSIX only"
)


def _run_in_pty(tmp_path: Path, env: dict[str, str]) -> str:
    sys.path.insert(0, str(Path(__file__).parents[1] / "listening"))
    try:
        from listening_util import PtyProcess
    finally:
        sys.path.pop(0)
    script = tmp_path / "fail_once.py"
    script.write_text(FAIL_ONCE)
    base = {
        "TMPDIR": str(tmp_path),
        "CITUS_EDITOR": "",
        "CITUS_EDITOR_PATH_MAP": "",
        "TERM_PROGRAM": "",
        "TERM": "xterm-256color",
        "VTE_VERSION": "",
        "WT_SESSION": "",
        "KONSOLE_VERSION": "",
        "FORCE_HYPERLINK": "",
        "CITUS_DEBUGGER_STATE": "",
    }
    with PtyProcess([sys.executable, str(script)], {**base, **env}) as proc:
        assert proc.wait() == 0
        return t.cast(bytes, proc.output).decode()


@pty_only
@pytest.mark.live_server
def test_traceback_on_a_known_terminal_has_hyperlinks(tmp_path: Path) -> None:
    output = _run_in_pty(tmp_path, {"TERM_PROGRAM": "vscode", "CITUS_EDITOR": "zed"})
    script = tmp_path / "fail_once.py"
    assert (
        f'File "\x1b]8;;zed://file{script}:6\x1b\\{script}", line 6\x1b]8;;\x1b\\'
        in output
    ), output
    assert "ValueError: boom" in output


@pty_only
@pytest.mark.live_server
@pytest.mark.parametrize(
    "env",
    [{}, {"TERM_PROGRAM": "vscode", "NO_COLOR": "1"}],
    ids=["unknown-terminal", "NO_COLOR"],
)
def test_traceback_stays_plain_elsewhere_on_a_terminal(
    tmp_path: Path, env: dict[str, str]
) -> None:
    output = _run_in_pty(tmp_path, env)
    assert "\x1b]8;" not in output
    assert f'File "{tmp_path / "fail_once.py"}", line 6' in output


@pytest.mark.live_server
def test_traceback_piped_is_plain(tmp_path: Path) -> None:
    script = tmp_path / "fail_once.py"
    script.write_text(FAIL_ONCE)
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    env.update(TERM_PROGRAM="vscode", CITUS_EDITOR="vscode", FORCE_COLOR="1")
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "\x1b]8;" not in done.stderr
    assert "ValueError: boom" in done.stderr


def test_the_warning_is_not_repeated_after_a_reload(
    monkeypatch: pytest.MonkeyPatch, no_editor_env: None
) -> None:
    monkeypatch.setenv("CITUS_EDITOR", "ed")
    monkeypatch.setenv("CITUS_RUN_GENERATION", "0")
    assert any(
        "CITUS_EDITOR" in line
        for line in DebuggedApplication(failing_app).banner_lines([])
    )
    monkeypatch.setenv("CITUS_RUN_GENERATION", "3")
    assert not any(
        "CITUS_EDITOR" in line
        for line in DebuggedApplication(failing_app).banner_lines([])
    )


@pytest.mark.live_server
def test_citus_run_warns_once_about_an_unknown_editor(
    tmp_path: Path, run_citus: t.Callable[..., t.Any]
) -> None:
    (tmp_path / "app.py").write_text(
        "def app(environ, start_response):\n    raise ValueError('x')\n"
    )
    private = tmp_path / "tmp"
    private.mkdir(mode=0o700)
    env = {
        "CITUS_EDITOR": "notepad",
        "CITUS_EDITOR_PATH_MAP": "",
        "CITUS_DEBUGGER_STATE": "",
        "TMPDIR": str(private),
    }
    proc = run_citus("run", "--debug", "--port", "0", env=env)
    proc.wait_for_log(r"Debugger PIN")
    proc.wait_for_log(r"^WARNING: CITUS_EDITOR='notepad' names no editor")
    assert sum("CITUS_EDITOR" in line for line in proc.log.lines) == 1


# A logged exception (as the server logs an error after a response started).
LOGGED = """
import logging
from citus._log import echo
from citus.debug import DebuggedApplication

DebuggedApplication(lambda environ, start_response: [])
echo("start")
try:
    raise OSError("half-sent")
except OSError:
    logging.getLogger("citus").exception("Error in the response of GET /x:")
"""


@pty_only
@pytest.mark.live_server
def test_tracebacks_the_server_logs_have_hyperlinks_too(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "listening"))
    try:
        from listening_util import PtyProcess
    finally:
        sys.path.pop(0)
    script = tmp_path / "logged.py"
    script.write_text(LOGGED)
    env = {"TMPDIR": str(tmp_path), "CITUS_DEBUGGER_STATE": "", "CITUS_EDITOR": ""}
    with PtyProcess(
        [sys.executable, str(script)], {**env, "TERM_PROGRAM": "vscode"}
    ) as proc:
        assert proc.wait() == 0
        output = t.cast(bytes, proc.output).decode()
    assert f'File "\x1b]8;;vscode://file{script}:9\x1b\\{script}", line 9' in output
    with PtyProcess([sys.executable, str(script)], {**env, "TERM_PROGRAM": ""}) as proc:
        assert proc.wait() == 0
        output = t.cast(bytes, proc.output).decode()
    assert "\x1b]8;" not in output and f'File "{script}", line 9' in output
