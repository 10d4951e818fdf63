"""Multipart form fields on the error page: listed, secrets redacted, files
named but never shown, whatever the application read of the body."""

from __future__ import annotations

import html
import io
import re
import typing as t

import pytest

from citus import API, request
from citus.debug import DebuggedApplication
from citus.debug._multipart import MAX_FIELD_VALUE, MultipartTap, boundary_of

from .conftest import BROWSER_ACCEPT, Caller

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

BOUNDARY = "----citusBoundary7MA4YWxkTrZu0gW"
FILE_BYTES = b"\x89PNG\r\n" + b"SECRET-PIXELS" * 5000


def multipart_body(fields: list[tuple[str, str | tuple[str, str, bytes]]]) -> bytes:
    out = io.BytesIO()
    for name, value in fields:
        out.write(f"--{BOUNDARY}\r\n".encode())
        if isinstance(value, tuple):
            filename, kind, data = value
            out.write(
                f'Content-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {kind}\r\n\r\n'.encode()
            )
            out.write(data)
        else:
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
            out.write(value.encode())
        out.write(b"\r\n")
    out.write(f"--{BOUNDARY}--\r\n".encode())
    return out.getvalue()


BODY = multipart_body(
    [
        ("title", "Holiday photos"),
        ("password", "hunter2"),
        ("photo", ("beach.png", "image/png", FILE_BYTES)),
        ("comment", "caf\xe9 \u65e5\u672c"),
    ]
)
HEADERS = {
    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    "Accept": BROWSER_ACCEPT,
}


def form_rows(page: str) -> dict[str, str]:
    section = page.split("<summary>Form</summary>", 1)[1].split("</details>", 1)[0]
    rows = re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", section)
    return {html.unescape(k): html.unescape(v) for k, v in rows}


def reads_all(environ: WSGIEnvironment, start_response: StartResponse) -> t.Any:
    environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    raise RuntimeError("after reading the upload")


def reads_nothing(environ: WSGIEnvironment, start_response: StartResponse) -> t.Any:
    raise RuntimeError("before reading anything")


def reads_lines(environ: WSGIEnvironment, start_response: StartResponse) -> t.Any:
    for _line in environ["wsgi.input"]:
        pass
    raise RuntimeError("after reading line by line")


citus_app = API(__name__)
citus_app.config["PROPAGATE_EXCEPTIONS"] = True


@citus_app.route("/upload", methods=["POST"])
def upload() -> str:
    assert request.files["photo"].read() == FILE_BYTES  # the app gets every byte
    raise RuntimeError(f"saving {request.form['title']!r} failed")


@pytest.mark.parametrize(
    "app",
    [reads_all, reads_nothing, reads_lines, citus_app],
    ids=["reads-all", "reads-nothing", "reads-lines", "citus-api"],
)
def test_fields_are_listed_and_files_only_named(
    isolated_state: None, app: t.Any
) -> None:
    client = Caller(DebuggedApplication(app))
    result = client.request("POST", "/upload", headers=HEADERS, body=BODY)
    assert result.status == 500
    assert "RuntimeError" in result.text
    rows = form_rows(result.text)
    assert rows["title"] == "Holiday photos"
    assert rows["password"] == "********"
    assert rows["comment"] == "caf\xe9 \u65e5\u672c"
    assert rows["photo"] == (
        f"file 'beach.png', image/png, {len(FILE_BYTES)} bytes, not shown"
    )
    assert "hunter2" not in result.text
    assert "SECRET-PIXELS" not in result.text


def test_the_parser_in_any_chunking() -> None:
    for size in (1, 7, 64, 4096, len(BODY)):
        tap = MultipartTap(io.BytesIO(BODY), BOUNDARY.encode())
        received = b""
        while True:
            data = tap.read(size)
            if not data:
                break
            received += data
        assert received == BODY
        names = [(name, is_file) for name, _, is_file in tap.fields()]
        assert names == [
            ("title", False),
            ("password", False),
            ("photo", True),
            ("comment", False),
        ], size


def test_long_values_are_cut_and_a_cut_body_says_so() -> None:
    body = multipart_body([("notes", "x" * (MAX_FIELD_VALUE + 10))])
    tap = MultipartTap(io.BytesIO(body[:-40]), BOUNDARY.encode())
    tap.drain()
    ((name, value, is_file),) = tap.fields()
    assert name == "notes" and not is_file
    assert value.startswith("x" * MAX_FIELD_VALUE + "... (")
    assert "the body was not read to its end" in value


def test_boundary_of() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"
    assert boundary_of("multipart/form-data; charset=utf-8; boundary=xyz") == b"xyz"
    assert boundary_of("application/x-www-form-urlencoded") is None
    assert boundary_of("multipart/form-data") is None
