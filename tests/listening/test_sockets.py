"""bind_sockets, release_sockets, sockets_from_env and the banner, on real sockets.

Only loopback addresses are bound; the banner for 0.0.0.0 and :: is checked
with addresses passed in.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

import pytest
from listening_util import connect_and_accept

from citus.serving.sockets import (
    FDS_ENV,
    AddressInUseError,
    BindError,
    bind_sockets,
    describe_addresses,
    describe_urls,
    machine_address,
    release_sockets,
    sockets_from_env,
)

unix_only = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX") or sys.platform == "win32",
    reason="Unix domain sockets are tested on POSIX only",
)


def test_localhost_binds_ipv4_and_ipv6_on_one_port(ipv6: None) -> None:
    sockets = bind_sockets("localhost", 0)
    try:
        families = [sock.family for sock in sockets]
        assert families == [socket.AF_INET, socket.AF_INET6]
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(ports) == 1 and 0 not in ports
        port = ports.pop()
        assert connect_and_accept(sockets[0], ("127.0.0.1", port))[0] == "127.0.0.1"
        assert connect_and_accept(sockets[1], ("::1", port))[0] == "::1"
        assert describe_urls(sockets, "http") == [
            f" * Running on http://127.0.0.1:{port}",
            f" * Running on http://[::1]:{port}",
        ]
    finally:
        release_sockets(sockets)


def test_localhost_ipv4_half_always_there() -> None:
    sockets = bind_sockets("localhost", 0)
    try:
        assert sockets[0].family == socket.AF_INET
        port = sockets[0].getsockname()[1]
        assert connect_and_accept(sockets[0], ("127.0.0.1", port))[0] == "127.0.0.1"
    finally:
        release_sockets(sockets)


def test_fixed_port_localhost(ipv6: None) -> None:
    # Find a port free on both families, then ask for it by number.
    probe = bind_sockets("localhost", 0)
    port = probe[0].getsockname()[1]
    release_sockets(probe)
    try:
        sockets = bind_sockets("localhost", port)
    except BindError:  # pragma: no cover - another process took it meanwhile
        pytest.skip("the port was taken by another process between two binds")
    try:
        assert [sock.getsockname()[1] for sock in sockets] == [port, port]
    finally:
        release_sockets(sockets)


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_ipv6_literal(ipv6: None, host: str) -> None:
    sockets = bind_sockets(host, 0)
    try:
        assert len(sockets) == 1
        assert sockets[0].family == socket.AF_INET6
        port = sockets[0].getsockname()[1]
        assert connect_and_accept(sockets[0], ("::1", port))[0] == "::1"
        assert describe_urls(sockets, "https") == [
            f" * Running on https://[::1]:{port}"
        ]
    finally:
        release_sockets(sockets)


def test_ipv4_literal_only_ipv4() -> None:
    sockets = bind_sockets("127.0.0.1", 0)
    try:
        assert [sock.family for sock in sockets] == [socket.AF_INET]
    finally:
        release_sockets(sockets)


def test_sockets_are_listening_with_reuseaddr_on_posix() -> None:
    sockets = bind_sockets("127.0.0.1", 0)
    try:
        sock = sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        reuse = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert bool(reuse) is (sys.platform != "win32")
        assert not sock.get_inheritable()
        sock.set_inheritable(True)  # the reloader does this; it must work
        assert sock.get_inheritable()
    finally:
        release_sockets(sockets)


def test_port_in_use_raises_bind_error_and_binds_nothing(ipv6: None) -> None:
    holder = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(BindError) as info:
            bind_sockets("localhost", port)
        assert info.value.errno == errno.EADDRINUSE
        assert info.value.address_in_use
        assert isinstance(info.value, AddressInUseError)
        # The 127.0.0.1 half that did bind was closed again: it binds now.
        again = bind_sockets("127.0.0.1", port)
        release_sockets(again)
    finally:
        holder.close()


def test_unknown_host_name() -> None:
    with pytest.raises(BindError) as info:
        bind_sockets("no-such-host.invalid", 0)
    lines = info.value.explain()
    assert lines[0].startswith("socket.gaierror: [Errno")
    assert "'no-such-host.invalid'" in lines[1]
    assert "app.run(host='localhost')" in lines[2]


def test_address_not_on_this_machine() -> None:
    # 192.0.2.0/24 is reserved for documentation: no machine should own .77.
    with pytest.raises(BindError) as info:
        bind_sockets("192.0.2.77", 0)
    lines = info.value.explain()
    assert lines[0].startswith("OSError: [Errno")
    assert "'192.0.2.77' is not an address of this machine" in lines[1]


@pytest.mark.parametrize("port", [-1, 65536, 10**6])
def test_port_out_of_range(port: int) -> None:
    with pytest.raises(BindError) as info:
        bind_sockets("127.0.0.1", port)
    assert str(port) in info.value.explain()[0]
    assert "app.run(port=8000)" in info.value.explain()[1]


def _loopback_only_name() -> str | None:
    """A host name (not the literal ``localhost``) that resolves to loopback only."""
    for name in (
        "localhost.",
        "ip6-localhost",
        "localhost.localdomain",
        socket.gethostname(),
    ):
        try:
            infos = socket.getaddrinfo(name, 0, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            continue
        if infos and all(str(info[4][0]) in ("127.0.0.1", "::1") for info in infos):
            return name
    return None


def test_host_name_resolves() -> None:
    name = _loopback_only_name()
    if name is None:
        pytest.skip("no host name here resolves to loopback addresses only")
    sockets = bind_sockets(name, 0)
    try:
        assert sockets
        assert all(sock.getsockname()[0] in ("127.0.0.1", "::1") for sock in sockets)
        assert len({sock.getsockname()[1] for sock in sockets}) == 1
    finally:
        release_sockets(sockets)


def test_localhost_is_case_insensitive() -> None:
    sockets = bind_sockets("LocalHost", 0)
    try:
        assert sockets[0].getsockname()[0] == "127.0.0.1"
    finally:
        release_sockets(sockets)


@unix_only
def test_unix_socket_bound_and_removed_on_release(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    sockets = bind_sockets(f"unix://{path}", 0)
    try:
        assert path.is_socket()
        assert describe_urls(sockets, "http") == [f" * Running on unix://{path}"]
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
    finally:
        release_sockets(sockets)
    assert not path.exists()
    release_sockets(sockets)  # twice is harmless


@unix_only
def test_stale_unix_socket_replaced(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # a server that died: the file stays, nobody listens
    assert path.is_socket()
    # Binding over the file fails (EADDRINUSE) unless the stale file is removed.
    sockets = bind_sockets(f"unix://{path}", 0)
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
    finally:
        release_sockets(sockets)


@unix_only
def test_live_unix_socket_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    first = bind_sockets(f"unix://{path}", 0)
    try:
        with pytest.raises(BindError) as info:
            bind_sockets(f"unix://{path}", 0)
        lines = info.value.explain()
        assert lines[0] == "OSError: [Errno 98] Address already in use" or (
            lines[0].startswith("OSError: [Errno") and "in use" in lines[0]
        )
        assert "Another server is listening" in lines[1]
        assert isinstance(info.value, AddressInUseError)
        assert path.is_socket()  # the live server's file was left alone
    finally:
        release_sockets(first)


@unix_only
def test_unix_path_that_is_not_a_socket_is_refused_and_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("precious")
    with pytest.raises(BindError) as info:
        bind_sockets(f"unix://{path}", 0)
    lines = info.value.explain()
    assert lines[0].startswith("FileExistsError: [Errno")
    assert f"{str(path)!r} exists and is not a socket" in lines[1]
    assert path.read_text() == "precious"


@unix_only
def test_unix_socket_in_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BindError) as info:
        bind_sockets(f"unix://{tmp_path}/missing/app.sock", 0)
    lines = info.value.explain()
    assert lines[0].startswith("FileNotFoundError")
    assert "folder exists" in lines[2]


@unix_only
def test_inherited_unix_socket_never_unlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.sock"
    sockets = bind_sockets(f"unix://{path}", 0)
    try:
        # What a reloader child sees: the same socket under another file number.
        monkeypatch.setenv(FDS_ENV, str(os.dup(sockets[0].fileno())))
        inherited = sockets_from_env()
        assert inherited is not None
        assert inherited[0].family == socket.AF_UNIX
        release_sockets(inherited)
        assert path.is_socket()
    finally:
        release_sockets(sockets)
    assert not path.exists()


@unix_only
def test_unix_file_replaced_by_someone_else_is_not_unlinked(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    sockets = bind_sockets(f"unix://{path}", 0)
    path.unlink()
    path.write_text("someone else's file")
    release_sockets(sockets)
    assert path.read_text() == "someone else's file"


def test_sockets_from_env_keeps_families(
    ipv6: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sockets = bind_sockets("localhost", 0)
    try:
        fds = [os.dup(sock.fileno()) for sock in sockets]
        monkeypatch.setenv(FDS_ENV, ",".join(map(str, fds)))
        inherited = sockets_from_env()
        assert inherited is not None
        try:
            assert [sock.family for sock in inherited] == [
                socket.AF_INET,
                socket.AF_INET6,
            ]
            port = sockets[0].getsockname()[1]
            assert connect_and_accept(inherited[1], ("::1", port))[0] == "::1"
        finally:
            release_sockets(inherited)
    finally:
        release_sockets(sockets)


def test_sockets_from_env_absent_or_bad(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FDS_ENV, raising=False)
    assert sockets_from_env() is None
    monkeypatch.setenv(FDS_ENV, "not-a-number")
    with pytest.raises(RuntimeError, match="CITUS_SERVER_FDS='not-a-number'"):
        sockets_from_env()


def test_banner_for_all_ipv4_addresses() -> None:
    lines = describe_addresses(
        [(socket.AF_INET, ("0.0.0.0", 8000))], "http", lambda family: "192.0.2.10"
    )
    assert lines == [
        " * Running on all addresses (0.0.0.0): reachable from your network",
        " * Running on http://127.0.0.1:8000",
        " * Running on http://192.0.2.10:8000",
    ]


def test_banner_for_all_ipv6_addresses() -> None:
    def own(family: int) -> str:
        return "2001:db8::5" if family == socket.AF_INET6 else "192.0.2.10"

    lines = describe_addresses([(socket.AF_INET6, ("::", 8443, 0, 0))], "https", own)
    assert lines[0] == " * Running on all addresses (::): reachable from your network"
    assert " * Running on https://[::1]:8443" in lines
    assert " * Running on https://[2001:db8::5]:8443" in lines
    if socket.has_dualstack_ipv6():
        assert " * Running on https://127.0.0.1:8443" in lines
        assert " * Running on https://192.0.2.10:8443" in lines


def test_banner_without_a_network_address() -> None:
    lines = describe_addresses(
        [(socket.AF_INET, ("0.0.0.0", 8000))], "http", lambda family: None
    )
    assert lines[1:] == [" * Running on http://127.0.0.1:8000"]


def test_banner_scoped_ipv6_and_unix() -> None:
    lines = describe_addresses(
        [
            (socket.AF_INET6, ("fe80::1%eth0", 8000, 0, 2)),
            (getattr(socket, "AF_UNIX", 1), "/run/app.sock"),
        ],
        "https",
    )
    assert lines == [
        " * Running on https://[fe80::1%25eth0]:8000",
        " * Running on unix:///run/app.sock (HTTPS)",
    ]


def test_machine_address_is_not_loopback() -> None:
    address = machine_address(socket.AF_INET)
    assert address is None or not address.startswith("127.")


@pytest.mark.parametrize(
    ("host", "hint"),
    [
        ("localhost:5000", "app.run(host='localhost', port=5000)"),
        ("http://localhost:5000/", "app.run(host='localhost', port=5000)"),
        ("https://[::1]/", "app.run(host='::1', port=8000)"),
        ("[::1]:5000", "app.run(host='::1', port=5000)"),
    ],
)
def test_url_or_port_given_as_host(host: str, hint: str) -> None:
    with pytest.raises(BindError) as info:
        bind_sockets(host, 0)
    lines = info.value.explain()
    assert lines[0].startswith(f"ValueError: the host {host!r}")
    assert lines[1].endswith(hint)
