"""A port already in use, run as a user would meet it: a real process holds the
port, ``run_simple`` runs in another and must exit 1 with the OS message, the
holder's PID and a free port, never a traceback."""

from __future__ import annotations

import errno
import os
import re
import socket
import sys
import typing as t
from pathlib import Path

import pytest

from citus.serving.sockets import bind_sockets, release_sockets

if t.TYPE_CHECKING:
    from conftest import CitusProcess

    RunPython = t.Callable[..., CitusProcess]

#: Holds a listening socket until killed, after printing its port.
HOLDER = """
import socket, sys, threading
family = socket.AF_INET6 if sys.argv[1] == "::1" else socket.AF_INET
sock = socket.create_server((sys.argv[1], 0), family=family)
print("HOLDING", sock.getsockname()[1], flush=True)
threading.Event().wait()
"""

#: Serves a trivial app with run_simple on the given host and port.
SERVE = """
import sys
from citus.serving import run_simple

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

run_simple(sys.argv[1], int(sys.argv[2]), app)
"""

UNPRIVILEGED_PORT_START = "/proc/sys/net/ipv4/ip_unprivileged_port_start"

IN_USE_LINE = f"OSError: [Errno {errno.EADDRINUSE}] {os.strerror(errno.EADDRINUSE)}"


def _hold(run_python: RunPython, host: str) -> tuple[CitusProcess, int]:
    holder = run_python("-c", HOLDER, host)
    port = int(holder.wait_for_log(r"^HOLDING (\d+)$").group(1))
    return holder, port


@pytest.mark.live_server
@pytest.mark.parametrize("held", ["127.0.0.1", "::1"])
def test_port_in_use_exits_1_with_the_holder_and_a_free_port(
    run_python: RunPython, held: str
) -> None:
    if held == "::1":
        from citus.serving.sockets import has_ipv6

        if not has_ipv6():
            pytest.skip("this machine cannot listen on ::1 (no IPv6 loopback)")
    holder, port = _hold(run_python, held)
    server = run_python("-c", SERVE, "localhost", str(port))
    status = server.wait()
    output = server.log.text
    assert status == 1, output
    assert "Traceback" not in output
    lines = output.splitlines()
    if sys.platform.startswith("linux"):
        assert lines[0] == "OSError: [Errno 98] Address already in use"
    else:
        assert lines[0] == IN_USE_LINE
    assert f"Port {port} is in use by another program: PID {holder.pid} (" in (lines[1])
    assert "HOLDING" not in lines[1]  # the command line, not the output
    assert "-c" in lines[1]
    match = re.fullmatch(
        r"Either stop that program, or use another port: app\.run\(port=(\d+)\)",
        lines[2],
    )
    assert match, output
    suggested = int(match.group(1))
    assert suggested > port
    # The suggestion is a port that is really free on every localhost address.
    sockets = bind_sockets("localhost", suggested)
    release_sockets(sockets)
    assert "Running on" not in output


@pytest.mark.live_server
def test_the_suggested_port_skips_taken_ones(run_python: RunPython) -> None:
    # Hold a port and the next one that can be bound after it: the hint must
    # skip both (and anything between them that could not be bound either).
    first = socket.create_server(("127.0.0.1", 0))
    port = first.getsockname()[1]
    second = None
    for candidate in range(port + 1, min(port + 50, 65536)):
        try:
            second = socket.create_server(("127.0.0.1", candidate))
        except OSError:
            continue
        break
    if second is None:  # pragma: no cover
        first.close()
        pytest.skip("no free port found just above a free port")
    held = second.getsockname()[1]
    try:
        server = run_python("-c", SERVE, "127.0.0.1", str(port))
        assert server.wait() == 1
        output = server.log.text
        assert f"Port {port} is in use by another program: PID {os.getpid()}" in output
        suggested = int(re.findall(r"app\.run\(port=(\d+)\)", output)[0])
        assert suggested > held
    finally:
        first.close()
        second.close()


#: Drops root's privileges (to "nobody") before serving, as a plain user runs;
#: everything is imported first, as "nobody" may not read the interpreter's files.
AS_NOBODY = """
import os, sys
from citus.serving import run_simple
import citus.serving.sockets, citus._log, citus._compat

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
run_simple(sys.argv[1], int(sys.argv[2]), app)
"""


@pytest.mark.live_server
@pytest.mark.skipif(
    sys.platform == "win32", reason="privileged ports are a POSIX notion"
)
def test_permission_denied_on_a_low_port(run_python: RunPython) -> None:
    if os.geteuid() == 0 and os.path.exists(UNPRIVILEGED_PORT_START):
        with open(UNPRIVILEGED_PORT_START) as file:
            if int(file.read()) <= 80:
                pytest.skip("this machine lets every user listen on port 80")
    server = run_python("-c", AS_NOBODY, "127.0.0.1", "80", cwd="/")
    status = server.wait()
    output = server.log.text
    assert status == 1, output
    assert "Traceback" not in output
    lines = output.splitlines()
    assert lines[0] == "PermissionError: [Errno 13] Permission denied", output
    assert "Port 80 is a privileged port (below 1024)" in lines[1]
    assert re.fullmatch(
        r"Use a port above 1024 instead: app\.run\(port=\d{4,5}\)", lines[2]
    ), output


@pytest.mark.live_server
def test_unknown_host_exits_1_without_traceback(run_python: RunPython) -> None:
    server = run_python("-c", SERVE, "no-such-host.invalid", "0")
    assert server.wait() == 1
    output = server.log.text
    assert "Traceback" not in output
    assert output.splitlines()[0].startswith("socket.gaierror: [Errno")
    assert "host name 'no-such-host.invalid'" in output


@pytest.mark.live_server
def test_citus_run_port_in_use(
    run_python: RunPython, run_citus: t.Callable[..., CitusProcess], tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n"
    )
    holder, port = _hold(run_python, "127.0.0.1")
    proc = run_citus("run", "--port", str(port))
    assert proc.wait() == 1
    output = proc.log.text
    assert "Traceback" not in output
    assert IN_USE_LINE in output.splitlines()
    assert f"PID {holder.pid}" in output
    assert re.search(r"or use another port: citus run --port \d+$", output, re.M)
