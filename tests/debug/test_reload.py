"""Across the reloads of one ``citus run``: same PIN, same wrong-PIN count."""

from __future__ import annotations

import http.client
import os
import re
import typing as t
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from citus.debug import MAX_PIN_ATTEMPTS, PREFIX

from .conftest import BROWSER_ACCEPT, page_secret

pytestmark = pytest.mark.live_server

APP = """\
from citus import API

app = API(__name__)


@app.route("/")
def index():
    basket = []
    return str(sum(basket) / len(basket))
"""


def fetch(
    url: str, method: str = "GET", body: bytes | None = None, **headers: str
) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, parts.path or "/", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def try_pin(url: str, secret: str, pin: str) -> int:
    body = urlencode({"s": secret, "pin": pin}).encode()
    status, _ = fetch(
        url + PREFIX + "/pin",
        "POST",
        body,
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    return status


def test_reload_keeps_pin_and_lockout(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    source = tmp_path / "app.py"
    source.write_text(APP)
    env = {"CITUS_DEBUGGER_STATE": "", "CITUS_DEBUGGER_PIN": ""}
    proc = run_citus("run", "--debug", "--host", "127.0.0.1", "--port", "0", env=env)
    url = proc.wait_for_url()
    restart = proc.wait_for_log(r" \* Restarting with ")
    assert restart
    first = proc.wait_for_log(r" \* Debugger PIN: (\d{3}-\d{3}-\d{3})").group(1)
    lines = proc.log.lines
    active = next(i for i, line in enumerate(lines) if "Debugger is active!" in line)
    assert active > next(i for i, line in enumerate(lines) if "Restarting with" in line)

    status, page = fetch(url + "/", Accept=BROWSER_ACCEPT)
    assert status == 500 and b"ZeroDivisionError" in page
    secret = page_secret(page.decode())
    for attempt in range(MAX_PIN_ATTEMPTS - 1):
        assert try_pin(url, secret, f"{attempt:09d}") == 403

    mark = len(proc.log.lines)
    source.write_text(APP + "\n# edited\n")
    stat = source.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 2))
    again = proc.wait_for_log(r" \* Debugger PIN: (\S+)", start=mark).group(1)
    assert again == first

    # The new child counts on from 9: one more wrong PIN locks everyone out.
    status, page = fetch(url + "/", Accept=BROWSER_ACCEPT)
    secret = page_secret(page.decode())
    assert try_pin(url, secret, "999999999") == 429
    assert try_pin(url, secret, first) == 429
    proc.wait_for_log(re.escape(f"{MAX_PIN_ATTEMPTS} wrong PINs"), start=mark)


def test_load_error_page_points_into_the_users_file(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    source = tmp_path / "app.py"
    source.write_text(APP + "\nbroken = (1 +\n")
    env = {"CITUS_DEBUGGER_STATE": "", "CITUS_DEBUGGER_PIN": ""}
    proc = run_citus(
        "run",
        "--debug",
        "--lazy-loading",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        env=env,
    )
    url = proc.wait_for_url()
    proc.wait_for_log(r" \* Debugger PIN: ")
    status, page = fetch(url + "/", Accept=BROWSER_ACCEPT)
    assert status == 500
    html = page.decode()
    assert "SyntaxError" in html
    assert f'<span class="file">{source}</span>' in html
    where = html.split('<p class="where">', 1)[1].split("</p>", 1)[0]
    assert str(source) in where
    status, text = fetch(url + "/")
    assert status == 500 and str(source).encode() in text

    mark = len(proc.log.lines)
    source.write_text(APP.replace("sum(basket) / len(basket)", "len(basket)"))
    stat = source.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 2))
    proc.wait_for_log(r" \* Debugger PIN: ", start=mark)
    status, body = fetch(url + "/")
    assert (status, body) == (200, b"0")


def test_import_error_after_a_reload_is_shown_until_fixed(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    source = tmp_path / "app.py"
    good = APP.replace("sum(basket) / len(basket)", "len(basket)")
    source.write_text(good)
    env = {"CITUS_DEBUGGER_STATE": "", "CITUS_DEBUGGER_PIN": ""}
    proc = run_citus("run", "--debug", "--host", "127.0.0.1", "--port", "0", env=env)
    url = proc.wait_for_url()
    proc.wait_for_log(r" \* Debugger PIN: ")
    assert fetch(url + "/") == (200, b"0")

    def save(text: str) -> int:
        mark = len(proc.log.lines)
        source.write_text(text)
        stat = source.stat()
        os.utime(source, (stat.st_atime, stat.st_mtime + 2))
        return mark

    mark = save(good + "\nraise RuntimeError('settings missing at import')\n")
    proc.wait_for_log(r"settings missing at import", start=mark)
    for _ in range(2):
        status, page = fetch(url + "/", Accept=BROWSER_ACCEPT)
        assert status == 500
        html = page.decode()
        assert "settings missing at import" in html
        assert f'<span class="file">{source}</span>' in html
    mark = save(good)
    proc.wait_for_log(r" \* Debugger PIN: ", start=mark)
    assert fetch(url + "/") == (200, b"0")


@pytest.mark.skipif(os.name != "posix", reason="the sweep of stale files is POSIX only")
def test_state_of_a_killed_run_is_removed_by_the_next(
    run_citus: t.Callable[..., t.Any], tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(APP)
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o700)
    folder = temp / f"citus-debugger-{os.getuid()}"
    env = {"CITUS_DEBUGGER_STATE": "", "CITUS_DEBUGGER_PIN": "", "TMPDIR": str(temp)}
    args = ("run", "--debug", "--host", "127.0.0.1", "--port", "0")

    killed = run_citus(*args, env=env)
    killed.wait_for_log(r" \* Debugger PIN: ")
    left = sorted(folder.iterdir())
    # The state file, and the serving process's record for citus errors.
    assert [p.name.split("-")[0] for p in left] == [str(killed.pid)] * 2
    assert sorted(p.suffix for p in left) == [".json", ".server"]
    killed.stop()  # SIGKILL: no chance to clean up
    assert all(p.exists() for p in left)

    second = run_citus(*args, env=env)
    second.wait_for_log(r" \* Debugger PIN: ")
    now = sorted(folder.iterdir())
    assert [p.name.split("-")[0] for p in now] == [str(second.pid)] * 2
    assert folder.stat().st_mode & 0o077 == 0

    # A run stopped with Ctrl+C removes its own file.
    second.interrupt()
    assert second.wait() == 0
    assert list(folder.iterdir()) == []
