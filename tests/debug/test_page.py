"""The error page: what it shows, what it hides, and how it is served."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import typing as t

import pytest

from citus.debug import PREFIX, DebuggedApplication

from .conftest import BROWSER_ACCEPT, Caller, failing_app


def display_name(qualname: str) -> str:
    """How the page names a function: its qualified name where Python records it
    on the code object (3.11+), else its plain name."""
    if sys.version_info >= (3, 11):
        return qualname.replace("<", "&lt;").replace(">", "&gt;")
    return qualname.rsplit(".", 1)[-1]


if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def browser_get(client: Caller, path: str = "/boom", **kwargs: t.Any) -> str:
    result = client.get(path, headers={"Accept": BROWSER_ACCEPT}, **kwargs)
    assert result.status == 500
    assert result.header("Content-Type") == "text/html; charset=utf-8"
    return result.text


def test_page_shows_type_message_and_frame(client: Caller) -> None:
    html = browser_get(client)
    assert "conftest.Boom</h1>" in html
    assert "answer=42" in html
    # file, line, function and the source around the line
    assert "conftest.py</span>, line <span" in html
    assert '<span class="function">failing_app</span>' in html
    assert 'class="line current"' in html
    assert "raise Boom(" in html
    # copy button and the plain text it copies
    assert 'id="copy-traceback"' in html
    assert 'id="plain-traceback"' in html


def test_everything_is_escaped_and_no_inline_script(client: Caller) -> None:
    html = browser_get(client)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)
    assert "style=" not in html
    assert " on" + "click=" not in html


def test_strict_content_security_policy(client: Caller) -> None:
    result = client.get("/boom", headers={"Accept": BROWSER_ACCEPT})
    csp = result.header("Content-Security-Policy")
    assert csp is not None
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert result.header("X-Content-Type-Options") == "nosniff"


def test_secrets_in_locals_are_redacted(client: Caller) -> None:
    html = browser_get(client)
    assert "hunter2-very-secret" not in html
    assert "ak-0123456789" not in html
    assert "<th>password</th><td>********</td>" in html
    assert "<th>api_key</th><td>********</td>" in html
    assert "<th>answer</th><td>42</td>" in html


def test_request_section_shows_and_redacts(client: Caller) -> None:
    result = client.post_form(
        "/boom?page=2&token=abc",
        {"username": "ann", "password": "pw-in-form"},
        headers={
            "Accept": BROWSER_ACCEPT,
            "Authorization": "Bearer sekrit-bearer",
            "Cookie": "theme=dark; sessionid=sess-value",
            "X-Custom": "visible-header",
        },
    )
    html = result.text
    assert result.status == 500
    assert (
        "POST <code>http://localhost:8000/boom?page=2&amp;token=********</code>" in html
    )
    for shown in ("visible-header", "<th>username</th><td>ann</td>", "dark"):
        assert shown in html
    for hidden in ("pw-in-form", "sekrit-bearer", "sess-value"):
        assert hidden not in html, hidden
    assert "<th>page</th><td>2</td>" in html
    assert "<th>token</th><td>********</td>" in html


def test_secret_query_parameters_are_redacted_everywhere_on_the_page(
    isolated_state: None,
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        url = "https://api.example.test/v1?api_key=" + "-".join(["from", "a", "local"])
        url += "&limit=5"
        raise RuntimeError(f"failed with {len(url)}")

    # Secrets built at run time, so that the source shown on the page lacks them.
    pw, tok, coded, ref = (
        f"{w}-in-{x}"
        for w, x in [("pw", "url"), ("tok", "url"), ("pw", "coded"), ("tok", "referer")]
    )
    query = f"q=shoes&password={pw}&access_token={tok}&pass%77ord={coded}"
    client = Caller(DebuggedApplication(app))
    referer = f"http://localhost:8000/login?token={ref}&next=/"
    result = client.get(
        "/search?" + query, headers={"Accept": BROWSER_ACCEPT, "Referer": referer}
    )
    html = result.text
    for hidden in (pw, tok, coded, ref, "from-a-local"):
        assert hidden not in html, hidden
    # The URL line, the query table and the locals (environ's QUERY_STRING and
    # a URL held in a variable) all hide the values and keep the rest.
    assert (
        "GET <code>http://localhost:8000/search?q=shoes&amp;password=********"
        "&amp;access_token=********&amp;pass%77ord=********</code>"
    ) in html
    assert "<th>q</th><td>shoes</td>" in html
    assert "&#x27;q=shoes&amp;password=********&amp;access_token=********" in html
    assert "v1?api_key=********&amp;limit=5" in html
    assert "login?token=********&amp;next=/" in html
    # Plain text and JSON hold no URL at all.
    text = client.get("/search?" + query).text
    data = client.get("/search?" + query, headers={"Accept": "application/json"})
    for hidden in (pw, tok):
        assert hidden not in text and hidden not in data.text


def test_app_config_section_redacts_secret_keys(isolated_state: None) -> None:
    class ConfiguredApp:
        # built at run time so that the source shown on the page doesn't hold it
        config = {
            "SECRET_KEY": "-".join(["very", "secret", "config"]),
            "NAME": "demo",
            "DATABASE_URL": "postgres://app:" + "db-pass-word" + "@db:5432/shop",
        }

        def __call__(
            self, environ: WSGIEnvironment, start_response: StartResponse
        ) -> list[bytes]:
            raise RuntimeError("configured app failed")

    html = browser_get(Caller(DebuggedApplication(ConfiguredApp())))
    assert "App config" in html
    assert "<th>NAME</th><td>&#x27;demo&#x27;</td>" in html
    assert "<th>SECRET_KEY</th><td>********</td>" in html
    assert "very-secret-config" not in html
    # A password inside a URL is redacted whatever the key is called.
    assert "db-pass-word" not in html
    assert "postgres://app:********@db:5432/shop" in html


def test_library_frames_are_folded(isolated_state: None) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        json.loads("{not json")
        return []

    html = browser_get(Caller(DebuggedApplication(app)))
    user_frame = html.index('<span class="function">')
    group = html.index('<li class="library-group"><details><summary>')
    assert user_frame < group
    assert "from the standard library or installed packages" in html
    assert "json" in html[group:]
    # folded: the <details> is closed until the user opens it
    assert "<details open" not in html


def test_chained_exceptions(isolated_state: None) -> None:
    def lookup() -> object:
        return {}["missing-key"]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        try:
            lookup()
        except KeyError:
            try:
                raise ValueError("while handling")
            except ValueError as error:
                raise RuntimeError("outermost") from error
        return []

    html = browser_get(Caller(DebuggedApplication(app)))
    assert '<h1 class="exc-type">RuntimeError</h1>' in html
    keyerror = html.index("<strong>KeyError</strong>")
    valueerror = html.index("<strong>ValueError</strong>")
    runtime = html.index("<strong>RuntimeError</strong>")
    assert keyerror < valueerror < runtime
    assert "During handling of the above exception" in html
    # The headline points at the newest exception's frame, not the oldest's.
    where = html.split('<p class="where">', 1)[1].split("</p>", 1)[0]
    assert (
        f"{display_name('test_chained_exceptions.<locals>.app')}</code>" in where
        and "lookup" not in where
    )
    assert "was the direct cause of the following exception" in html


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_exception_group_members(isolated_state: None) -> None:
    def fail_one() -> None:
        raise ValueError("first member")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        errors: list[Exception] = [TypeError("second member")]
        try:
            fail_one()
        except ValueError as error:
            errors.insert(0, error)
        raise ExceptionGroup("two things failed", errors)  # noqa: F821

    client = Caller(DebuggedApplication(app))
    html = browser_get(client)
    assert "ExceptionGroup" in html
    assert "Sub-exception 1 of 2" in html and "Sub-exception 2 of 2" in html
    assert "first member" in html and "second member" in html
    # A member raised nowhere (no frames) gets no empty "Traceback" heading.
    assert html.count('<p class="tb-title">') == 2
    assert "fail_one</span>" in html
    data = client.get("/", headers={"Accept": "application/json"}).json()
    members = data["chain"][-1]["exceptions"]
    assert [m[-1]["type"] for m in members] == ["ValueError", "TypeError"]


def test_syntax_error_points_into_the_users_file(
    isolated_state: None, tmp_path: t.Any
) -> None:
    source = tmp_path / "broken_module.py"
    source.write_text("x = 1\ndef oops(:\n    pass\n")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        compile(source.read_text(), str(source), "exec")
        return []

    client = Caller(DebuggedApplication(app))
    html = browser_get(client)
    assert "SyntaxError" in html
    assert (
        f'<span class="file">{source}</span>, line <span class="lineno">2</span>'
        in (html)
    )
    assert "def oops(:" in html
    text = client.get("/").text
    assert str(source) in text and "SyntaxError" in text


def test_only_recent_tracebacks_are_kept(isolated_state: None) -> None:
    app = DebuggedApplication(failing_app, max_tracebacks=3)
    client = Caller(app)
    ids = []
    for _ in range(5):
        html = browser_get(client)
        ids.append(re.search(r'data-traceback="([^"]+)"', html).group(1))  # type: ignore[union-attr]
    assert list(app.tracebacks) == ids[-3:]
    assert len(set(ids)) == 5


def test_max_tracebacks_must_be_positive(isolated_state: None) -> None:
    with pytest.raises(ValueError, match="max_tracebacks=0"):
        DebuggedApplication(failing_app, max_tracebacks=0)


def test_traceback_printed_to_terminal(
    client: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="citus"):
        client.get("/boom", headers={"Accept": BROWSER_ACCEPT})
    text = caplog.text
    assert "Error on request GET '/boom'" in text
    assert "Traceback (most recent call last)" in text
    assert "conftest.Boom: failed at" in text
    assert "citus/debug" not in text  # the debugger's own frames are hidden


def test_error_before_first_chunk_gets_the_page(isolated_state: None) -> None:
    def app(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        raise LookupError("failed before any body")

    result = Caller(DebuggedApplication(app)).get(
        "/", headers={"Accept": BROWSER_ACCEPT}
    )
    assert result.status == 500
    assert "failed before any body" in result.text
    assert result.exc_info is not None  # start_response got exc_info (PEP 3333)


def test_error_while_streaming_is_logged_and_reraised(
    isolated_state: None, caplog: pytest.LogCaptureFixture
) -> None:
    closed = []

    class Body:
        def __iter__(self) -> t.Iterator[bytes]:
            yield b"first chunk"
            raise OSError("disk went away mid-stream")

        def close(self) -> None:
            closed.append(True)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    with caplog.at_level(logging.ERROR, logger="citus"):
        with pytest.raises(OSError, match="disk went away"):
            Caller(DebuggedApplication(app)).get("/stream")
    # Re-raised for the server, which logs it while closing the connection;
    # the debugger does not log it a second time.
    assert "disk went away mid-stream" not in caplog.text
    assert closed == [True]


def test_successful_responses_pass_through(client: Caller) -> None:
    result = client.get("/ok")
    assert (result.status, result.body) == (200, b"fine")
    assert result.header("Content-Security-Policy") is None


def test_untrusted_host_gets_a_page_that_reveals_nothing(client: Caller) -> None:
    for accept in (BROWSER_ACCEPT, "*/*", "application/json"):
        result = client.get(
            "/boom", host="attacker.example", headers={"Accept": accept}
        )
        assert result.status == 500
        for leak in ("conftest.py", "failing_app", "raise Boom", "data-secret"):
            assert leak not in result.text
        assert "CITUS_DEBUGGER_TRUSTED_HOSTS" in result.text


def test_no_host_header_gets_a_page_that_says_so(client: Caller) -> None:
    result = client.get("/boom", host="", headers={"Accept": "*/*"})
    assert result.status == 500
    assert "raise Boom" not in result.text
    assert "had no Host header" in result.text and "Host: localhost" in result.text


def test_dns_rebinding_name_is_not_trusted(client: Caller) -> None:
    for host in ("localhost.attacker.example", "127.0.0.1.nip.io:8000", "evil"):
        html = client.get("/boom", host=host, headers={"Accept": BROWSER_ACCEPT}).text
        assert "failing_app" not in html


def test_trusted_local_names(client: Caller) -> None:
    for host in ("localhost", "127.0.0.1:8000", "[::1]:8000", "app.localhost:8000"):
        html = client.get("/boom", host=host, headers={"Accept": BROWSER_ACCEPT}).text
        assert "failing_app" in html, host


def test_configured_trusted_hosts(
    isolated_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITUS_DEBUGGER_TRUSTED_HOSTS", "devbox.lan, .example.test")
    client = Caller(DebuggedApplication(failing_app, trusted_hosts=["myvm:8000"]))
    for host in ("devbox.lan:8000", "myvm", "api.example.test", "example.test"):
        html = client.get("/boom", host=host, headers={"Accept": BROWSER_ACCEPT}).text
        assert "failing_app" in html, host
    html = client.get(
        "/boom", host="other.lan", headers={"Accept": BROWSER_ACCEPT}
    ).text
    assert "failing_app" not in html


def test_prefix_is_not_passed_to_the_app(client: Caller) -> None:
    result = client.get(PREFIX + "/nothing-here")
    assert result.status == 404
    assert result.json() == {"error": "Not found."}


def test_flask_app_in_debug_mode(isolated_state: None) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask("flaskdemo")
    app.debug = True
    app.config["SECRET_KEY"] = "-".join(["flask", "signing", "key"])

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> str:
        stock = {"apples": 3}
        return str(stock["pears"] + item_id)

    client = Caller(DebuggedApplication(app))
    html = browser_get(client, "/items/5")
    assert "KeyError" in html and "&#x27;pears&#x27;" in html
    assert (
        '<span class="function">'
        + display_name("test_flask_app_in_debug_mode.<locals>.item")
        in html
    )
    assert "<th>SECRET_KEY</th><td>********</td>" in html
    assert "flask-signing-key" not in html
    data = client.get("/items/5", headers={"Accept": "application/json"}).json()
    assert data["error"]["type"] == "KeyError"
    assert data["chain"][-1]["frames"][-1]["function"].endswith("item")


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        (BROWSER_ACCEPT, "html"),
        ("text/html", "html"),
        ("application/json", "json"),
        ("application/problem+json", "json"),
        ("application/json, text/plain, */*", "json"),
        ("text/html;q=0.5, application/json", "json"),
        ("application/json;q=0.1, text/html", "html"),
        ("*/*", "text"),
        ("", "text"),
        ("text/plain", "text"),
        ("text/html;q=0", "text"),
        ("image/png", "text"),
    ],
)
def test_negotiation(accept: str, kind: str) -> None:
    from citus.debug._http import negotiate

    assert negotiate(accept) == kind


def test_text_for_curl_and_json_chain(isolated_state: None) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        try:
            int("not a number")
        except ValueError as error:
            raise LookupError("no such order") from error
        return []

    client = Caller(DebuggedApplication(app))
    text = client.get("/", headers={"Accept": "*/*", "User-Agent": "curl/8.5.0"})
    assert text.header("Content-Type") == "text/plain; charset=utf-8"
    assert text.text.startswith("Traceback (most recent call last):")
    assert "direct cause" in text.text and text.text.rstrip().endswith(
        "LookupError: no such order"
    )
    data = client.get("/", headers={"Accept": "application/json"}).json()
    assert data["error"] == {"type": "LookupError", "message": "no such order"}
    assert [b["type"] for b in data["chain"]] == ["ValueError", "LookupError"]
    assert [b["relation"] for b in data["chain"]] == ["cause", None]
    frame = data["chain"][0]["frames"][0]
    assert set(frame) >= {"file", "line", "function"}
    assert frame["file"] == __file__ and frame["function"].endswith("app")


def test_a_page_that_cannot_render_still_answers_500(
    isolated_state: None, caplog: pytest.LogCaptureFixture
) -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str() is broken too")

    class Weird:
        @property
        def config(self) -> dict[str, object]:
            return {1: object(), "b": 2}  # keys that don't sort together

        def __call__(
            self, environ: WSGIEnvironment, start_response: StartResponse
        ) -> list[bytes]:
            raise Hostile()

    client = Caller(DebuggedApplication(Weird()))
    with caplog.at_level(logging.ERROR, logger="citus"):
        result = client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert result.status == 500
    assert "Hostile" in result.text


def test_renderer_failure_falls_back_to_plain_500(
    client: Caller, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import citus.debug

    def broken_renderer(*args: object, **kwargs: object) -> str:
        raise MemoryError("renderer ran out")

    monkeypatch.setattr(citus.debug, "render_page", broken_renderer)
    with caplog.at_level(logging.ERROR, logger="citus"):
        result = client.get("/boom", headers={"Accept": BROWSER_ACCEPT})
    assert result.status == 500
    assert result.text == "Internal Server Error: the traceback is in the terminal.\n"
    assert "conftest.Boom" in caplog.text
    assert "could not render its page: MemoryError: renderer ran out" in caplog.text


def test_sys_exit_in_a_view_gets_the_page(isolated_state: None) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        sys.exit(3)

    client = Caller(DebuggedApplication(app))
    html = browser_get(client, "/")
    assert '<h1 class="exc-type">SystemExit</h1>' in html
    assert "sys.exit(3)" in html
    text = client.get("/", headers={"Accept": "*/*"})
    assert text.status == 500 and text.text.rstrip().endswith("SystemExit: 3")


def test_plain_text_escapes_terminal_control_characters(isolated_state: None) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        raise ValueError("order \x1b]0;pwned\x07 \x1b[2J\x9b\tend")

    client = Caller(DebuggedApplication(app))
    text = client.get("/", headers={"Accept": "*/*"}).text
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "ValueError: order \\x1b]0;pwned\\x07 \\x1b[2J\\x9b\tend" in text
    assert "Traceback (most recent call last):\n" in text


def test_a_deep_recursion_is_folded_after_three_frames(isolated_state: None) -> None:
    def countdown(n: int) -> int:
        return countdown(n - 1) if n else 1 // n

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        countdown(50)
        return []

    html = browser_get(Caller(DebuggedApplication(app)), "/")
    # 51 calls on one line: 3 shown, like Python's "[Previous line repeated 48
    # more times]".
    assert "The frame above repeated 48 more times" in html
    shown, folded = html.split('<li class="repeat-group">', 1)
    assert shown.count('<span class="function">') == 4  # app and 3 countdowns
    # The folded frames are still there, each with its console.
    assert (
        folded.count(
            '<span class="function">'
            + display_name(
                "test_a_deep_recursion_is_folded_after_three_frames.<locals>.countdown"
            )
            + "</span>"
        )
        == 48
    )


def test_undecodable_file_names_do_not_break_the_page(isolated_state: None) -> None:
    # os.fsdecode() of a file name that is not UTF-8 holds lone surrogates.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        name = os.fsdecode(b"report-\xff.txt")
        raise FileNotFoundError(f"no such file: {name}")

    client = Caller(DebuggedApplication(app))
    html = browser_get(client, "/")
    assert '<h1 class="exc-type">FileNotFoundError</h1>' in html
    assert "no such file: report-\\udcff.txt" in html
    text = client.get("/", headers={"Accept": "*/*"}).text
    assert "FileNotFoundError: no such file: report-\\udcff.txt" in text
    data = client.get("/", headers={"Accept": "application/json"}).json()
    assert data["error"]["message"] == "no such file: report-\udcff.txt"


def test_an_error_without_frames_offers_no_console(isolated_state: None) -> None:
    """An error whose every frame is hidden (a failed Django system check,
    raised by citus's stand-in app) has no console and no library frames to
    speak of: the page says neither."""

    def checks_failed(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> list[bytes]:
        __traceback_hide__ = True  # read by the debugger
        raise RuntimeError("System check identified 1 issue (0 silenced).")

    html = browser_get(Caller(DebuggedApplication(checks_failed, evalex=True)))
    assert "System check identified 1 issue" in html
    assert "Traceback (most recent call last)" not in html
    assert "Each frame has a Python console" not in html
    assert 'id="toggle-library"' not in html


def test_library_frames_button_only_with_library_frames(client: Caller) -> None:
    # failing_app raises in the test's own code: no library frame to unfold.
    html = browser_get(client)
    assert "Each frame has a Python console" in html
    assert 'id="toggle-library"' not in html

    def parses(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        return [json.loads("{not json")]

    html = browser_get(Caller(DebuggedApplication(parses, evalex=True)))
    assert 'id="toggle-library">Show library frames</button>' in html
    assert 'class="library-group"' in html
