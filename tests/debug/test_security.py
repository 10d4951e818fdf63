"""Attacks on the debugger: each test plays someone who should not get in."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path

import pytest

from citus.debug import (
    LOCKOUT_SECONDS,
    MAX_PIN_ATTEMPTS,
    PREFIX,
    DebuggedApplication,
)

from .conftest import BROWSER_ACCEPT, Caller, Result, failing_app, page_secret, unlock


def open_page(client: Caller) -> tuple[str, str]:
    html = client.get("/boom", headers={"Accept": BROWSER_ACCEPT}).text
    secret = page_secret(html)
    tb = html.split('data-traceback="', 1)[1].split('"', 1)[0]
    return secret, tb


def evaluate(client: Caller, secret: str, tb: str, cmd: str, **kw: t.Any) -> Result:
    fields = {"s": secret, "tb": tb, "frame": "0", "cmd": cmd}
    return client.post_form(PREFIX + "/eval", fields, **kw)


def test_console_is_locked_without_pin(client: Caller) -> None:
    secret, tb = open_page(client)
    result = evaluate(client, secret, tb, "answer")
    assert result.status == 403
    assert result.json()["locked"] is True
    assert "output" not in result.json()


def test_right_pin_unlocks_with_a_strict_cookie(
    client: Caller, debugged: DebuggedApplication
) -> None:
    secret, tb = open_page(client)
    result = unlock(client, debugged, secret)
    assert result.status == 200 and result.json() == {"ok": True}
    cookie = result.header("Set-Cookie")
    assert cookie is not None
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes
    assert "SameSite=Strict" in attributes
    assert f"Path={PREFIX}/" in attributes
    assert any(a.startswith("Max-Age=") and int(a[8:]) > 0 for a in attributes)
    token = attributes[0].split("=", 1)[1]
    assert debugged.pin is not None
    assert debugged.pin.replace("-", "") not in token
    assert evaluate(client, secret, tb, "answer + 1").json()["output"] == "43\n"


def test_secure_cookie_over_https(
    client: Caller, debugged: DebuggedApplication
) -> None:
    html = client.get("/boom", headers={"Accept": BROWSER_ACCEPT}, scheme="https").text
    fields = {"s": page_secret(html), "pin": debugged.pin or ""}
    result = client.post_form(PREFIX + "/pin", fields, scheme="https")
    assert "Secure" in (result.header("Set-Cookie") or "")


def test_wrong_pin_is_refused(client: Caller) -> None:
    secret, tb = open_page(client)
    result = client.post_form(PREFIX + "/pin", {"s": secret, "pin": "000-000-000"})
    assert result.status == 403
    assert result.header("Set-Cookie") is None
    assert result.json()["error"].startswith("Wrong PIN. 9 attempts left;")
    assert evaluate(client, secret, tb, "answer").status == 403
    for _ in range(8):
        result = client.post_form(PREFIX + "/pin", {"s": secret, "pin": "0"})
    assert result.json()["error"].startswith("Wrong PIN. 1 attempt left;")


def test_pin_needs_the_page_secret(
    client: Caller, debugged: DebuggedApplication
) -> None:
    open_page(client)
    for fields in (
        {"pin": debugged.pin or ""},
        {"s": "guess", "pin": debugged.pin or ""},
    ):
        result = client.post_form(PREFIX + "/pin", fields)
        assert result.status == 403
        assert result.header("Set-Cookie") is None


def test_console_needs_the_page_secret_even_when_unlocked(
    client: Caller, debugged: DebuggedApplication
) -> None:
    secret, tb = open_page(client)
    unlock(client, debugged, secret)
    for bad in ("", "x" * len(secret), secret[:-1]):
        result = evaluate(client, bad, tb, "answer")
        assert result.status == 403
        assert "secret" in result.json()["error"]


def test_forged_cookies_are_refused(
    client: Caller, debugged: DebuggedApplication
) -> None:
    secret, tb = open_page(client)
    good = unlock(Caller(debugged), debugged, secret).header("Set-Cookie") or ""
    name = good.split("=", 1)[0]
    pin = debugged.pin or ""
    forgeries = [
        pin,
        pin.replace("-", ""),
        "0" * 43,
        good.split("=", 1)[1].split(";")[0][:-2] + "AA",
    ]
    for value in forgeries:
        headers = {"Cookie": f"{name}={value}"}
        result = evaluate(client, secret, tb, "answer", headers=headers)
        assert result.status == 403, value


def test_pin_and_code_never_travel_in_urls(
    client: Caller, debugged: DebuggedApplication
) -> None:
    secret, tb = open_page(client)
    pin = debugged.pin or ""
    assert client.get(f"{PREFIX}/pin?s={secret}&pin={pin}").status == 405
    result = client.request(
        "POST",
        f"{PREFIX}/pin?s={secret}&pin={pin}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert result.status == 403 and result.header("Set-Cookie") is None
    assert client.get(f"{PREFIX}/eval?s={secret}&tb={tb}&frame=0&cmd=1").status == 405


def test_only_form_bodies_are_read(client: Caller) -> None:
    secret, _ = open_page(client)
    body = json.dumps({"s": secret, "pin": "1"}).encode()
    result = client.request(
        "POST", PREFIX + "/pin", headers={"Content-Type": "application/json"}, body=body
    )
    assert result.status == 415


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "localhost.attacker.example:8000",
        "10.0.0.5:8000",
        "",
        # Malformed values that a lax parser would read as "localhost".
        "localhost:80@attacker.example",
        "attacker.example, localhost",
        "localhost attacker.example",
        "[::1]attacker.example",
        "localhost:8000:8000",
        "::1",
    ],
)
@pytest.mark.parametrize(
    "endpoint", ["/shared/debugger.js", "/pin", "/eval", "/status"]
)
def test_foreign_host_gets_400(
    client: Caller, debugged: DebuggedApplication, host: str, endpoint: str
) -> None:
    secret, tb = open_page(client)
    fields = {
        "s": secret,
        "pin": debugged.pin or "",
        "tb": tb,
        "frame": "0",
        "cmd": "1",
    }
    if endpoint.startswith("/shared/"):
        result = client.get(PREFIX + endpoint, host=host)
    else:
        result = client.post_form(PREFIX + endpoint, fields, host=host)
    assert result.status == 400
    assert result.header("Set-Cookie") is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://attacker.example"},
        {"Origin": "null"},
        {"Origin": "https://localhost:8000"},
        {"Origin": "http://localhost:9999"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
    ],
)
def test_cross_site_requests_get_403(
    client: Caller, debugged: DebuggedApplication, headers: dict[str, str]
) -> None:
    secret, _ = open_page(client)
    fields = {"s": secret, "pin": debugged.pin or ""}
    result = client.post_form(PREFIX + "/pin", fields, headers=headers)
    assert result.status == 403
    assert result.header("Set-Cookie") is None


def test_same_origin_requests_pass(
    client: Caller, debugged: DebuggedApplication
) -> None:
    secret, tb = open_page(client)
    headers = {"Origin": "http://localhost:8000", "Sec-Fetch-Site": "same-origin"}
    fields = {"s": secret, "pin": debugged.pin or ""}
    assert client.post_form(PREFIX + "/pin", fields, headers=headers).status == 200
    result = evaluate(client, secret, tb, "answer", headers=headers)
    assert result.json()["output"] == "42\n"


def test_remote_peer_gets_no_console_whatever_it_forwards(
    client: Caller, debugged: DebuggedApplication
) -> None:
    secret, tb = open_page(client)
    unlock(client, debugged, secret)
    forwarded = {"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1"}
    html = client.get(
        "/boom",
        headers={"Accept": BROWSER_ACCEPT, **forwarded},
        remote_addr="10.1.2.3",
    ).text
    assert "The console is off: this request came from 10.1.2.3" in html
    assert "open-console" not in html
    result = evaluate(
        client, secret, tb, "answer", headers=forwarded, remote_addr="10.1.2.3"
    )
    assert result.status == 403
    fields = {"s": secret, "pin": debugged.pin or ""}
    pin = client.post_form(PREFIX + "/pin", fields, remote_addr="10.1.2.3")
    assert pin.status == 403 and pin.header("Set-Cookie") is None


def test_listing_a_local_name_does_not_open_the_console_to_others(
    isolated_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Anyone can send "Host: localhost"; trusting it explicitly must not turn
    # it into a way round the loopback rule.
    monkeypatch.setenv("CITUS_DEBUGGER_TRUSTED_HOSTS", "localhost, 127.0.0.1,*.")
    app = DebuggedApplication(failing_app, trusted_hosts=["[::1]", "x.localhost"])
    client = Caller(app)
    secret, tb = open_page(client)
    unlock(client, app, secret)
    assert evaluate(client, secret, tb, "answer").status == 200
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "x.localhost", "%"):
        result = evaluate(
            client, secret, tb, "answer", host=host, remote_addr="10.9.8.7"
        )
        assert result.status in (400, 403), host
        assert "42" not in result.text


@pytest.mark.parametrize("frame", ["-1", "-2", "1e0", " 0", "0x0", "", "99"])
def test_frame_numbers_are_plain_indexes(
    client: Caller, debugged: DebuggedApplication, frame: str
) -> None:
    secret, tb = open_page(client)
    unlock(client, debugged, secret)
    fields = {"s": secret, "tb": tb, "frame": frame, "cmd": "answer"}
    result = client.post_form(PREFIX + "/eval", fields)
    assert result.status == 404
    assert "No frame" in result.json()["error"]


@pytest.mark.parametrize("peer", ["", "unix:/run/app.sock", "localhost", "10.0.0.1"])
def test_peers_that_are_not_a_loopback_ip_get_no_console(
    client: Caller, debugged: DebuggedApplication, peer: str
) -> None:
    # A server behind a reverse proxy on a Unix socket may give REMOTE_ADDR ""
    # for everyone the proxy forwards.
    secret, tb = open_page(client)
    unlock(client, debugged, secret)
    result = evaluate(client, secret, tb, "answer", remote_addr=peer)
    assert result.status == 403 and "The console is off" in result.json()["error"]


def test_ipv6_loopback_and_mapped_peers_are_local(
    client: Caller, debugged: DebuggedApplication
) -> None:
    secret, tb = open_page(client)
    unlock(client, debugged, secret)
    for peer in ("::1", "::ffff:127.0.0.1"):
        assert evaluate(client, secret, tb, "answer", remote_addr=peer).status == 200


def test_console_off_with_evalex_false(isolated_state: None) -> None:
    app = DebuggedApplication(failing_app, evalex=False)
    client = Caller(app)
    html = client.get("/boom", headers={"Accept": BROWSER_ACCEPT}).text
    assert "The console is off" in html and "use_evalex=False" in html
    assert "open-console" not in html
    secret, tb = page_secret(html), html.split('data-traceback="')[1].split('"')[0]
    assert evaluate(client, secret, tb, "answer").status == 403
    result = client.post_form(PREFIX + "/pin", {"s": secret, "pin": app.pin or ""})
    assert result.status == 403 and result.header("Set-Cookie") is None
    assert app.banner_lines([]) == [" * Debugger is active!"]


def test_standalone_console_only_when_enabled(
    client: Caller, debugged: DebuggedApplication
) -> None:
    secret, _ = open_page(client)
    unlock(client, debugged, secret)
    assert client.get(PREFIX + "/console").status == 404
    result = evaluate(client, secret, "console", "1 + 1")
    assert result.status == 404


def test_standalone_console_when_enabled(isolated_state: None) -> None:
    app = DebuggedApplication(failing_app, console_page=True)
    client = Caller(app)
    page = client.get(PREFIX + "/console", headers={"Sec-Fetch-Site": "none"})
    assert page.status == 200
    assert page.header("Content-Security-Policy") is not None
    secret = page_secret(page.text)
    assert evaluate(client, secret, "console", "app").status == 403
    unlock(client, app, secret)
    result = evaluate(client, secret, "console", "app.__name__")
    assert result.json()["output"] == "'failing_app'\n"


def test_assets_are_served_and_nothing_else(client: Caller) -> None:
    js = client.get(PREFIX + "/shared/debugger.js")
    assert js.status == 200
    assert js.header("Content-Type") == "text/javascript; charset=utf-8"
    assert b"innerHTML" not in js.body
    css = client.get(PREFIX + "/shared/debugger.css")
    assert css.header("Content-Type") == "text/css; charset=utf-8"
    assert b"http" not in css.body  # no external fonts or images
    for name in ("../__init__.py", "..%2F__init__.py", "__init__.py", "nope.js"):
        assert client.get(PREFIX + "/shared/" + name).status == 404
    assert client.request("POST", PREFIX + "/shared/debugger.js").status == 405


def test_brute_force_is_locked_out_across_reloads(
    isolated_state: None, caplog: pytest.LogCaptureFixture
) -> None:
    first = DebuggedApplication(failing_app)
    # A reloaded child: a new instance that inherits CITUS_DEBUGGER_STATE.
    assert os.environ["CITUS_DEBUGGER_STATE"]
    second = DebuggedApplication(failing_app)
    assert second.pin == first.pin
    clients = [Caller(first), Caller(second)]
    secrets_ = [open_page(c)[0] for c in clients]
    # The developer's own browser, unlocked before the attack.
    mine = Caller(second)
    my_secret, my_tb = open_page(mine)
    assert unlock(mine, second, my_secret).status == 200
    with caplog.at_level(logging.INFO, logger="citus"):
        for attempt in range(MAX_PIN_ATTEMPTS):
            which = attempt % 2
            fields = {"s": secrets_[which], "pin": f"{attempt:09d}"}
            result = clients[which].post_form(PREFIX + "/pin", fields)
            expected = 429 if attempt == MAX_PIN_ATTEMPTS - 1 else 403
            assert result.status == expected, attempt
        started = time.time()
        for which in (0, 1):
            fields = {"s": secrets_[which], "pin": first.pin or ""}
            result = clients[which].post_form(PREFIX + "/pin", fields)
            assert result.status == 429
            assert result.header("Set-Cookie") is None
            assert result.json()["locked_out"] is True
    assert f"{MAX_PIN_ATTEMPTS} wrong PINs" in caplog.text
    assert "refused until" in caplog.text
    with open(os.environ["CITUS_DEBUGGER_STATE"]) as file:
        state = json.load(file)
    # SPEC: after 10 wrong PINs, refused for at least 5 minutes.
    assert MAX_PIN_ATTEMPTS == 10
    assert state["locked_until"] - started >= 5 * 60 - 1
    assert LOCKOUT_SECONDS >= 5 * 60
    # The page says so too.
    html = clients[0].get("/boom", headers={"Accept": BROWSER_ACCEPT}).text
    assert "after 10 wrong PINs, unlocking is refused" in html
    status = clients[0].post_form(PREFIX + "/status", {"s": secrets_[0]}).json()
    assert status["locked_out"] is True and status["unlocked"] is False
    # A browser that unlocked before the lockout keeps its console.
    assert evaluate(mine, my_secret, my_tb, "answer").json()["output"] == "42\n"


def test_wrong_pins_are_counted_atomically_across_threads(isolated_state: None) -> None:
    apps = [DebuggedApplication(failing_app), DebuggedApplication(failing_app)]
    clients = [Caller(a) for a in apps]
    secrets_ = [open_page(c)[0] for c in clients]
    statuses: list[int] = []
    lock = threading.Lock()

    def attack(index: int) -> None:
        which = index % 2
        fields = {"s": secrets_[which], "pin": "999-999-999"}
        status = Caller(apps[which]).post_form(PREFIX + "/pin", fields).status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(statuses).count(403) == MAX_PIN_ATTEMPTS - 1
    assert sorted(statuses).count(429) == 24 - (MAX_PIN_ATTEMPTS - 1)
    with open(os.environ["CITUS_DEBUGGER_STATE"]) as file:
        assert json.load(file)["failures"] == MAX_PIN_ATTEMPTS


def test_state_file_is_private(debugged: DebuggedApplication) -> None:
    path = os.environ["CITUS_DEBUGGER_STATE"]
    if os.name == "posix":
        assert os.stat(path).st_mode & 0o077 == 0
        assert os.stat(os.path.dirname(path)).st_mode & 0o077 == 0


def test_pin_is_random(isolated_state: None, monkeypatch: pytest.MonkeyPatch) -> None:
    pins = set()
    for _ in range(3):
        monkeypatch.delenv("CITUS_DEBUGGER_STATE", raising=False)
        pin = DebuggedApplication(failing_app).pin
        assert pin is not None
        assert len(pin) == 11 and pin[3] == pin[7] == "-"
        pins.add(pin)
    assert len(pins) == 3


def test_pin_from_environment(
    isolated_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITUS_DEBUGGER_PIN", "123-456-789")
    app = DebuggedApplication(failing_app)
    assert " * Debugger PIN: 123-456-789" in app.banner_lines([])
    client = Caller(app)
    secret, tb = open_page(client)
    result = client.post_form(PREFIX + "/pin", {"s": secret, "pin": "123456789"})
    assert result.status == 200
    assert evaluate(client, secret, tb, "answer").json()["output"] == "42\n"


@pytest.mark.parametrize("value", ["   ", "--", " - "])
def test_blank_pin_from_environment_means_a_random_one(
    isolated_state: None, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # A PIN nobody can type would lock the console for good; " * Debugger PIN: "
    # with nothing after it would puzzle the user.
    monkeypatch.setenv("CITUS_DEBUGGER_PIN", value)
    app = DebuggedApplication(failing_app)
    assert app.pin is not None
    assert re.fullmatch(r"\d{3}-\d{3}-\d{3}", app.pin)
    assert f" * Debugger PIN: {app.pin}" in app.banner_lines([])


def test_pin_off_warns_loudly_and_still_needs_the_secret(
    isolated_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITUS_DEBUGGER_PIN", "off")
    app = DebuggedApplication(failing_app)
    lines = app.banner_lines([])
    assert lines[0] == " * Debugger is active!"
    assert lines[1].startswith("WARNING: The debugger PIN is off")
    assert not any("Debugger PIN: " in line for line in lines)
    client = Caller(app)
    secret, tb = open_page(client)
    assert evaluate(client, secret, tb, "answer").json()["output"] == "42\n"
    assert evaluate(client, "", tb, "answer").status == 403
    assert evaluate(client, secret, tb, "answer", host="evil.example").status == 400


def test_banner(debugged: DebuggedApplication) -> None:
    with socket.socket() as local, socket.socket() as unbound:
        local.bind(("127.0.0.1", 0))
        lines = debugged.banner_lines([local])
        assert lines == [" * Debugger is active!", f" * Debugger PIN: {debugged.pin}"]
        # An unbound socket reports 0.0.0.0: every interface, so warn.
        lines = debugged.banner_lines([local, unbound])
        assert lines[2].startswith("WARNING: The debugger is on and the server")
        assert "0.0.0.0" in lines[2]


def test_state_file_removed_under_the_server(
    client: Caller, debugged: DebuggedApplication
) -> None:
    path = os.environ["CITUS_DEBUGGER_STATE"]
    os.remove(path)
    os.rmdir(os.path.dirname(path))
    secret, tb = open_page(client)
    assert unlock(client, debugged, secret).status == 200
    assert evaluate(client, secret, tb, "answer").json()["output"] == "42\n"
    # Made again in the same place, private, with the PIN already printed (a
    # reloaded child reads it from there).
    assert os.environ["CITUS_DEBUGGER_STATE"] == path
    with open(path) as file:
        assert json.load(file)["pin"] == debugged.pin
    if os.name == "posix":
        assert os.stat(path).st_mode & 0o077 == 0
        assert os.stat(os.path.dirname(path)).st_mode & 0o077 == 0


def state_folder() -> Path:
    name = "citus-debugger" if os.name == "nt" else f"citus-debugger-{os.getuid()}"
    return Path(tempfile.gettempdir(), name)


def dead_pid() -> int:
    """The id of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="the sweep is POSIX only")
def test_files_of_dead_processes_are_swept_and_nothing_else(
    isolated_state: None,
) -> None:
    folder = state_folder()
    folder.mkdir(mode=0o700)
    gone = dead_pid()
    stale = folder / f"{gone}-0123abcd.json"
    alive = folder / f"{os.getppid()}-0123abcd.json"  # pytest's parent runs on
    loose = folder / f"{gone}-loose.json"  # readable by others: not ours to judge
    other = folder / "notes.txt"
    for path in (stale, alive, loose, other):
        path.write_text("{}")
        path.chmod(0o600)
    loose.chmod(0o644)
    link = folder / f"{gone}-link.json"
    link.symlink_to(other)
    app = DebuggedApplication(failing_app)
    assert not stale.exists()
    for kept in (alive, loose, other, link):
        assert os.path.lexists(kept), kept
    # The new file is named after this process, in the same private folder.
    path = Path(os.environ["CITUS_DEBUGGER_STATE"])
    assert path.parent == folder
    assert path.name.startswith(f"{os.getpid()}-")
    assert path.stat().st_mode & 0o077 == 0
    assert app.pin is not None


@pytest.mark.skipif(os.name != "posix", reason="owners and modes are POSIX")
@pytest.mark.parametrize("attack", ["world-writable", "symlink"])
def test_a_shared_folder_that_is_not_private_is_not_used(
    isolated_state: None, tmp_path: Path, attack: str
) -> None:
    folder = state_folder()
    planted = tmp_path / "planted"
    planted.mkdir()
    if attack == "symlink":
        folder.symlink_to(planted, target_is_directory=True)
    else:
        folder.mkdir()
        folder.chmod(0o777)
    bait = (folder / f"{dead_pid()}-0123abcd.json").resolve()
    bait.write_text("{}")
    bait.chmod(0o600)
    DebuggedApplication(failing_app)
    path = Path(os.environ["CITUS_DEBUGGER_STATE"])
    assert path.parent.resolve() not in (folder.resolve(), planted.resolve())
    assert path.stat().st_mode & 0o077 == 0
    assert path.parent.stat().st_mode & 0o077 == 0
    assert bait.exists()  # nothing is removed from a folder others control


@pytest.mark.skipif(os.name != "posix", reason="owners and modes are POSIX")
def test_an_inherited_state_file_in_an_open_folder_is_not_trusted(
    isolated_state: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file this user owns, mode 0600, but in a folder anyone can write to:
    # someone else could swap it for one holding their own PIN and tokens.
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    planted = open_folder / "state.json"
    known = {"pin": "111-111-111", "failures": 0, "locked_until": 0, "tokens": {}}
    planted.write_text(json.dumps(known))
    planted.chmod(0o600)
    monkeypatch.setenv("CITUS_DEBUGGER_STATE", str(planted))
    app = DebuggedApplication(failing_app)
    assert app.pin != "111-111-111"
    assert os.environ["CITUS_DEBUGGER_STATE"] != str(planted)


@pytest.mark.skipif(os.name != "posix", reason="owners and modes are POSIX")
def test_a_state_file_made_public_is_replaced(
    client: Caller, debugged: DebuggedApplication
) -> None:
    path = os.environ["CITUS_DEBUGGER_STATE"]
    os.chmod(path, 0o666)
    secret, tb = open_page(client)
    assert unlock(client, debugged, secret).status == 200
    now = os.environ["CITUS_DEBUGGER_STATE"]
    assert os.stat(now).st_mode & 0o077 == 0
    assert evaluate(client, secret, tb, "answer").json()["output"] == "42\n"


def test_trusts_request_is_the_endpoints_rule(debugged: DebuggedApplication) -> None:
    # Public: the reloader's page uses it while the app's process is down.
    def environ(**extra: str) -> dict[str, t.Any]:
        base = {"REQUEST_METHOD": "GET", "wsgi.url_scheme": "http"}
        return {**base, "HTTP_HOST": "localhost:8000", **extra}

    assert debugged.trusts_request(environ())
    assert debugged.trusts_request(environ(HTTP_ORIGIN="http://localhost:8000"))
    assert debugged.trusts_request(environ(HTTP_SEC_FETCH_SITE="none"))
    assert not debugged.trusts_request(environ(HTTP_HOST="attacker.example"))
    assert not debugged.trusts_request(environ(HTTP_HOST="localhost:1@attacker.test"))
    assert not debugged.trusts_request(environ(HTTP_ORIGIN="http://attacker.example"))
    assert not debugged.trusts_request(environ(HTTP_SEC_FETCH_SITE="cross-site"))


@pytest.mark.skipif(os.name != "posix", reason="symbolic links as on POSIX")
def test_a_state_file_swapped_for_a_link_is_not_followed(
    client: Caller, debugged: DebuggedApplication, tmp_path: Path
) -> None:
    # A private file of the user's (a key) must never be read or overwritten.
    precious = tmp_path / "id_key"
    precious.write_text("PRIVATE KEY")
    precious.chmod(0o600)
    path = os.environ["CITUS_DEBUGGER_STATE"]
    os.remove(path)
    os.symlink(precious, path)
    secret, tb = open_page(client)
    for attempt in range(3):
        client.post_form(PREFIX + "/pin", {"s": secret, "pin": f"{attempt:09d}"})
    assert unlock(client, debugged, secret).status == 200
    assert precious.read_text() == "PRIVATE KEY"
    now = os.environ["CITUS_DEBUGGER_STATE"]
    assert now != path and not os.path.islink(now)


# --- the page of an error in a view: same origin only -------------------------

VIEW_SHOWN = {
    "no Origin": {},
    "same Origin": {"Origin": "http://localhost:8000"},
    "same-origin fetch": {"Sec-Fetch-Site": "same-origin"},
    "typed URL": {"Sec-Fetch-Site": "none"},
}
VIEW_REFUSED = {
    "cross-site Origin": {"Origin": "http://evil.example"},
    "null Origin": {"Origin": "null"},
    "other port": {"Origin": "http://localhost:9"},
    "other scheme": {"Origin": "https://localhost:8000"},
    "cross-site fetch": {"Sec-Fetch-Site": "cross-site"},
    "same-site fetch": {"Sec-Fetch-Site": "same-site"},
}


@pytest.mark.parametrize("accept", ["text/plain", "application/json", BROWSER_ACCEPT])
def test_view_error_page_checks_origin_and_fetch_site(
    client: Caller, accept: str
) -> None:
    for name, headers in VIEW_SHOWN.items():
        result = client.get("/boom", headers={**headers, "Accept": accept})
        assert result.status == 500, name
        assert "Boom" in result.text, name
    for name, headers in VIEW_REFUSED.items():
        result = client.get("/boom", headers={**headers, "Accept": accept})
        assert result.status == 500, name
        for leak in ("Boom", "failing_app", "conftest.py", "Traceback", "hunter2"):
            assert leak not in result.text, (name, accept, leak)
        assert "another origin" in result.text, (name, accept)


def test_a_form_posted_from_another_site_gets_no_traceback(client: Caller) -> None:
    result = client.post_form(
        "/boom",
        {"q": "1"},
        headers={
            "Accept": BROWSER_ACCEPT,
            "Origin": "http://evil.example",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert result.status == 500
    assert "Boom" not in result.text
    assert "data-secret" not in result.text
