"""Throughput of citus's development server against other WSGI servers.

Serves ``bench_app.app`` with citus (``threaded=True``, request log written to
a file), Werkzeug's ``run_simple(threaded=True)``, waitress, gunicorn
(gthread, 1 worker, 8 threads) and granian (``--interface wsgi``, 1 worker),
one at a time on 127.0.0.1, and loads each with ``wrk`` (1 thread, 50
connections) in three scenarios: keep-alive hello, ``Connection: close``
hello, and 256 KiB request bodies. Prints requests/s, p99 latency and the
ratios that ``bench/README.md`` records.

Needs ``wrk`` on PATH and ``pip install 'citus[bench]'``. Run it from the
repository root::

    python bench/throughput.py                 # every server, 2 rounds of 5 s
    python bench/throughput.py --rounds 3 --servers citus,waitress

All servers run at once, each on its own port, and the runs are interleaved
(round 1: every scenario on every server, then round 2 ...) so that they share
the machine's background load; each server's best round counts. Servers that
are not installed are skipped. Every server process is stopped before the
script exits.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
BIN = Path(PY).parent

SCENARIOS = {
    "keep-alive": [],
    "close": ["-H", "Connection: close"],
    "body-256k": ["-s", "POST_SCRIPT"],
}

POST_LUA = """
wrk.method = "POST"
wrk.body = string.rep("x", 262144)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(name: str, port: int) -> list[str] | None:
    """The command that serves ``bench_app:app`` on ``port`` with ``name``."""
    if name == "citus":
        code = (
            "import logging, bench_app;"
            "from citus.serving import run_simple;"
            f"run_simple('127.0.0.1', {port}, bench_app.app, threaded=True)"
        )
        return [PY, "-c", code]
    if name == "werkzeug":
        code = (
            "import logging, bench_app;"
            "from werkzeug.serving import run_simple;"
            f"run_simple('127.0.0.1', {port}, bench_app.app, threaded=True)"
        )
        return [PY, "-c", code]
    if name == "waitress":
        exe = BIN / "waitress-serve"
        return [str(exe), f"--listen=127.0.0.1:{port}", "bench_app:app"]
    if name == "gunicorn":
        exe = BIN / "gunicorn"
        return [
            str(exe),
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            "8",
            "--bind",
            f"127.0.0.1:{port}",
            "bench_app:app",
        ]
    if name == "granian":
        exe = BIN / "granian"
        return [
            str(exe),
            "--interface",
            "wsgi",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "bench_app:app",
        ]
    raise ValueError(f"Unknown server {name!r}.")


def available(name: str) -> bool:
    cmd = server_command(name, 1)
    assert cmd is not None
    if cmd[0] != PY:
        return Path(cmd[0]).exists()
    module = "citus" if name == "citus" else "werkzeug"
    probe = subprocess.run([PY, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def run_wrk(port: int, args: list[str], duration: float, lua: str) -> tuple[float, str]:
    args = [lua if a == "POST_SCRIPT" else a for a in args]
    cmd = [
        "wrk",
        "-t1",
        "-c50",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "5s",
        *args,
        f"http://127.0.0.1:{port}/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    text = out.stdout
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99_match = re.search(r"^\s*99%\s+(\S+)", text, re.M)
    errors = re.search(r"Socket errors:.*|Non-2xx.*", text)
    rps = float(rps_match.group(1)) if rps_match else 0.0
    p99 = p99_match.group(1) if p99_match else "?"
    if errors:
        p99 += f" ({errors.group(0).strip()})"
    return rps, p99


class Running:
    """One server process under test, on its own port, logging to a file."""

    def __init__(self, name: str, logdir: str) -> None:
        self.name = name
        self.port = free_port()
        cmd = server_command(name, self.port)
        assert cmd is not None
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONPATH=str(HERE), NO_COLOR="1")
        self.proc = subprocess.Popen(
            cmd,
            cwd=HERE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="runs per server and scenario, interleaved; the best one counts",
    )
    parser.add_argument(
        "--servers",
        # citus last: a Connection: close run leaves tens of thousands of
        # sockets in TIME_WAIT that slow the next one down; going last in
        # every round, citus never profits from a quieter start.
        default="werkzeug,waitress,gunicorn,granian,citus",
        help="comma-separated servers to measure",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated scenarios: " + ", ".join(SCENARIOS),
    )
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not on PATH: install it (apt install wrk) and retry.")
    scenarios = options.scenarios.split(",")
    table: dict[str, dict[str, tuple[float, str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lua = os.path.join(tmp, "post.lua")
        Path(lua).write_text(POST_LUA)
        servers: list[Running] = []
        try:
            for name in options.servers.split(","):
                if not available(name):
                    print(f"  {name}: not installed, skipped")
                    continue
                servers.append(Running(name, tmp))
            for server in servers:
                wait_listening(server.port, server.proc, 20)
                run_wrk(server.port, [], 1, lua)  # warm up
                table[server.name] = {}
            # Interleave the servers so that each sees the same background load,
            # and keep each one's best run out of the rounds.
            for round_number in range(1, options.rounds + 1):
                for scenario in scenarios:
                    for server in servers:
                        rps, p99 = run_wrk(
                            server.port, SCENARIOS[scenario], options.duration, lua
                        )
                        print(
                            f"  round {round_number} {server.name:9} {scenario:11}"
                            f" {rps:10.0f} req/s  p99 {p99}",
                            flush=True,
                        )
                        best = table[server.name].get(scenario)
                        if best is None or rps > best[0]:
                            table[server.name][scenario] = (rps, p99)
        finally:
            for server in servers:
                server.stop()
        for server in servers:
            if server.name == "citus":
                lines = Path(server.log_path).read_text(errors="replace").count("\n")
                print(f"  (citus wrote {lines} request-log lines to its log file)")
    print()
    print(f"{'scenario':11} {'server':9} {'req/s':>10} {'p99':>10} {'citus/this':>10}")
    for scenario in scenarios:
        base = table.get("citus", {}).get(scenario, (0.0, ""))[0]
        for name, results in table.items():
            rps, p99 = results.get(scenario, (0.0, "?"))
            ratio = f"{base / rps:.2f}x" if rps else "-"
            print(f"{scenario:11} {name:9} {rps:10.0f} {p99:>10} {ratio:>10}")


if __name__ == "__main__":
    main()
