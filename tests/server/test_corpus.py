"""The request corpus (``tests/http``) through the sans-IO core and a real server.

Each file is fed to :class:`citus.serving.http11.Connection` whole, line by
line, byte by byte and in random chunks: the outcome must not depend on how
the bytes were split. Then it goes over a socket to a running server.
"""

from __future__ import annotations

import json
import random
import re
import typing as t
from pathlib import Path

import pytest
from serverkit import read_all, statuses

from citus.serving import http11
from citus.serving.http11 import (
    CONNECTION_CLOSED,
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    RemoteProtocolError,
)

HERE = Path(__file__).parent.parent / "http"
VALID = sorted((HERE / "valid").glob("*.http"))
INVALID = sorted((HERE / "invalid").glob("*.http"))

_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|r|n|\\)")


def load(path: Path) -> bytes:
    """The raw bytes of a corpus file (escapes decoded, file newlines dropped)."""
    text = path.read_bytes().replace(b"\n", b"")

    def decode(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code == b"r":
            return b"\r"
        if code == b"n":
            return b"\n"
        if code == b"\\":
            return b"\\"
        return bytes([int(code[1:], 16)])

    return _ESCAPE.sub(decode, text)


def expectation(path: Path) -> dict[str, t.Any]:
    namespace: dict[str, t.Any] = {}
    exec(path.with_suffix(".py").read_text(), namespace)
    return namespace


def splits(data: bytes) -> dict[str, list[bytes]]:
    rng = random.Random(len(data))
    chunks = []
    index = 0
    while index < len(data):
        size = rng.randint(1, 64)
        chunks.append(data[index : index + size])
        index += size
    return {
        "whole": [data],
        "lines": data.splitlines(keepends=True),
        "bytes": [data[i : i + 1] for i in range(len(data))],
        "random": chunks,
    }


def parse(chunks: list[bytes]) -> tuple[list[dict[str, t.Any]], int | None]:
    """Feed ``chunks``; answer each request; return the requests and any error."""
    conn = http11.Connection()
    requests: list[dict[str, t.Any]] = []
    current: dict[str, t.Any] = {}

    def finish() -> None:
        current["complete"] = True
        conn.send_response("200 OK", [], 0)
        conn.send_end()
        conn.start_next_cycle()

    def pump() -> bool:
        nonlocal current
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return True
            if event is PAUSED or event is CONNECTION_CLOSED:
                return False
            if isinstance(event, http11.Request):
                current = {
                    "method": event.method.decode(),
                    "target": event.target.decode("latin-1"),
                    "version": event.http_version,
                    "headers": [
                        (n.decode("latin-1"), v.decode("latin-1"))
                        for n, v in event.headers
                    ],
                    "body": b"",
                    "keep_alive": event.keep_alive and not event.upgrade,
                    "chunked": event.chunked,
                    "expect_continue": event.expect_continue,
                    "upgrade": event.upgrade,
                }
                requests.append(current)
                if not event.has_body:
                    finish()
            elif type(event) is bytes:
                current["body"] += event
            elif event is END_OF_MESSAGE:
                finish()

    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            if not pump():
                break
        conn.receive_data(b"")
        pump()
    except RemoteProtocolError as error:
        return requests, error.status_hint
    return requests, None


def check_request(seen: dict[str, t.Any], wanted: dict[str, t.Any]) -> None:
    for key, value in wanted.items():
        if key in ("path", "query", "environ"):
            continue
        assert seen[key] == value, (key, seen[key], value)


@pytest.mark.parametrize("mode", ["whole", "lines", "bytes", "random"])
@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_sans_io(path: Path, mode: str) -> None:
    wanted = expectation(path)["requests"]
    requests, error = parse(splits(load(path))[mode])
    assert error is None
    assert len(requests) == len(wanted)
    for seen, want in zip(requests, wanted, strict=True):
        check_request(seen, want)


@pytest.mark.parametrize("mode", ["whole", "lines", "bytes", "random"])
@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_sans_io(path: Path, mode: str) -> None:
    spec = expectation(path)
    requests, error = parse(splits(load(path))[mode])
    assert error == spec["status"]
    complete = [request for request in requests if request.get("complete")]
    assert len(complete) == spec.get("requests_before", 0)


def echo_app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    seen = {
        "method": environ["REQUEST_METHOD"],
        "target": environ["RAW_URI"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "body": body.decode("latin-1"),
        "environ": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
    }
    data = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


@pytest.mark.live_server
def test_corpus_through_a_server(serve: t.Any) -> None:
    run = serve(echo_app)
    for path in VALID:
        wanted = expectation(path)["requests"]
        with run.connect() as sock:
            sock.sendall(load(path))
            if wanted[-1].get("keep_alive", True) and not wanted[-1].get("upgrade"):
                sock.sendall(
                    b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
            data = read_all(sock)
        bodies = re.findall(rb"\r\n\r\n(\{.*?\})(?=HTTP/|$)", data, re.S)
        assert len(bodies) >= len(wanted), (path, data)
        for raw, want in zip(bodies[: len(wanted)], wanted, strict=True):
            seen = json.loads(raw)
            for key in ("method", "target", "path", "query"):
                if key in want:
                    assert seen[key] == want[key], (path, key)
            if "body" in want:
                assert seen["body"].encode("latin-1") == want["body"], path
            for key, value in want.get("environ", {}).items():
                assert seen["environ"].get(key) == value, (path, key)
            if "environ" in want:
                assert set(seen["environ"]) <= {"HTTP_HOST", *want["environ"]}
    for path in INVALID:
        spec = expectation(path)
        with run.connect() as sock:
            sock.sendall(load(path))
            data = read_all(sock)  # the server closes the connection
        codes = statuses(data)
        assert codes == [200] * spec.get("requests_before", 0) + [spec["status"]], (
            path,
            data[:300],
        )
    # and it still serves everyone else
    with run.connect() as sock:
        sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert statuses(read_all(sock)) == [200]
