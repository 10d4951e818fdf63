"""TLS set-up: devcerts on disk, adhoc contexts and the errors for bad input.

Handshakes here run over real loopback sockets against a minimal TLS echo
thread, so that the certificates are checked by Python's own client; the
server's TLS path is tested end to end in ``test_serving.py``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import sys
import threading
import typing as t
from pathlib import Path

import pytest
from cryptography import x509

from citus.serving import make_ssl_devcert
from citus.serving.tls import TLSConfigError, load_ssl_context

if t.TYPE_CHECKING:
    from conftest import CitusProcess

    RunPython = t.Callable[..., CitusProcess]


def _handshake(
    context: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str, ip: str
) -> str:
    """Serve one TLS connection with ``context``; return the client's TLS version."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    listener = socket.create_server((ip, 0), family=family)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        except (OSError, ssl.SSLError) as error:
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname()[:2], timeout=10) as raw:
            with client.wrap_socket(raw, server_hostname=server_hostname) as tls:
                assert tls.recv(5) == b"hello"
                return str(tls.version())
    finally:
        thread.join(10)
        listener.close()


def test_devcert_files_key_mode_and_names(tmp_path: Path) -> None:
    cert_file, key_file = make_ssl_devcert(tmp_path / "dev")
    assert (cert_file, key_file) == (f"{tmp_path}/dev.crt", f"{tmp_path}/dev.key")
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is False


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST"])
def test_devcert_for_localhost_covers_both_loopback_addresses(
    tmp_path: Path, host: str
) -> None:
    # citus serves localhost on 127.0.0.1 and ::1 and the banner prints those
    # URLs: a certificate made for "localhost" must be good for them too.
    cert_file, _ = make_ssl_devcert(tmp_path / "dev", host=host)
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


def test_devcert_for_a_host_and_cn(tmp_path: Path) -> None:
    cert_file, _ = make_ssl_devcert(str(tmp_path / "site"), host="dev.example", cn="X")
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["dev.example"]
    assert san.get_values_for_type(x509.IPAddress) == []
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert names[0].value == "X"


def test_devcert_for_an_ip_carries_it_as_an_address(tmp_path: Path) -> None:
    cert_file, _ = make_ssl_devcert(tmp_path / "ip", host="127.0.0.1")
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1")
    ]
    assert san.get_values_for_type(x509.DNSName) == []  # not a DNS name


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_devcert_tightens_an_existing_key_file(tmp_path: Path) -> None:
    key = tmp_path / "dev.key"
    key.write_text("old")
    key.chmod(0o644)
    make_ssl_devcert(tmp_path / "dev")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")


@pytest.mark.live_server
@pytest.mark.parametrize(
    ("name", "ip"), [("localhost", "127.0.0.1"), ("127.0.0.1", "127.0.0.1")]
)
def test_devcert_verified_by_a_client_that_trusts_it(
    tmp_path: Path, name: str, ip: str
) -> None:
    cert_file, key_file = make_ssl_devcert(tmp_path / "dev")
    context = load_ssl_context((cert_file, key_file))
    assert context is not None
    client = ssl.create_default_context(cafile=cert_file)
    assert _handshake(context, client, name, ip) in ("TLSv1.2", "TLSv1.3")


def test_swapped_certificate_and_key_are_named(tmp_path: Path) -> None:
    cert_file, key_file = make_ssl_devcert(tmp_path / "dev")
    with pytest.raises(TLSConfigError) as caught:
        load_ssl_context((key_file, cert_file))
    message = str(caught.value)
    assert "look swapped" in message
    assert f"--cert {cert_file} --key {key_file}" in message
    assert "_ssl.c" not in message


@pytest.mark.live_server
def test_devcert_refused_for_another_name(tmp_path: Path) -> None:
    cert_file, key_file = make_ssl_devcert(tmp_path / "dev")
    context = load_ssl_context((cert_file, key_file))
    assert context is not None
    client = ssl.create_default_context(cafile=cert_file)
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        _handshake(context, client, "example.com", "127.0.0.1")


@pytest.mark.live_server
def test_adhoc_context_serves_tls(ipv6: None) -> None:
    context = load_ssl_context("adhoc")
    assert isinstance(context, ssl.SSLContext)
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    assert _handshake(context, client, "localhost", "::1") in ("TLSv1.2", "TLSv1.3")
    # Two adhoc contexts carry different certificates.
    assert load_ssl_context("adhoc") is not context


def test_context_passes_through() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert load_ssl_context(context) is context
    assert load_ssl_context(None) is None


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match=r"certificate file '.*nope.crt' does"):
        load_ssl_context((str(tmp_path / "nope.crt"), str(tmp_path / "nope.key")))
    cert_file, _ = make_ssl_devcert(tmp_path / "dev")
    with pytest.raises(TLSConfigError, match=r"key file '.*nope.key' does not exist"):
        load_ssl_context((cert_file, str(tmp_path / "nope.key")))


def test_key_that_does_not_match(tmp_path: Path) -> None:
    cert_file, _ = make_ssl_devcert(tmp_path / "one")
    _, other_key = make_ssl_devcert(tmp_path / "two")
    with pytest.raises(TLSConfigError, match="the key belongs to the certificate"):
        load_ssl_context((cert_file, other_key))


def test_key_with_a_passphrase_is_one_sentence(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cert_file, key_file = make_ssl_devcert(tmp_path / "dev")
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"hunter2"),
        )
    )
    # OpenSSL would prompt on the terminal, or fail with a bare EINVAL.
    with pytest.raises(TLSConfigError, match="protected by a passphrase") as info:
        load_ssl_context((cert_file, str(locked)))
    assert str(locked) in str(info.value)
    assert "openssl pkey -in" in str(info.value)


def test_not_pem(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="Check that both are PEM files"):
        load_ssl_context((str(junk), str(junk)))


@pytest.mark.parametrize("value", ["adhok", ("one",), 42])
def test_values_not_understood(value: t.Any) -> None:
    with pytest.raises(TLSConfigError, match="is not understood: pass 'adhoc'"):
        load_ssl_context(value)


SERVE_TLS = """
import sys
{prelude}
from citus.serving import run_simple

def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]

run_simple("127.0.0.1", 0, app, ssl_context={value})
"""


@pytest.mark.live_server
def test_adhoc_without_cryptography_is_one_line(run_python: RunPython) -> None:
    # None in sys.modules makes "import cryptography" fail as if not installed.
    script = SERVE_TLS.format(
        prelude="sys.modules['cryptography'] = None", value="'adhoc'"
    )
    proc = run_python("-c", script)
    assert proc.wait() == 1
    output = proc.log.text
    assert "Traceback" not in output
    assert output.splitlines() == [
        "ssl_context='adhoc' needs the 'cryptography' package, which is not"
        " installed: install 'citus[ssl]' (pip install 'citus[ssl]')."
    ]


@pytest.mark.live_server
def test_missing_cert_file_is_one_line(run_python: RunPython, tmp_path: Path) -> None:
    value = repr((str(tmp_path / "a.crt"), str(tmp_path / "a.key")))
    proc = run_python("-c", SERVE_TLS.format(prelude="", value=value))
    assert proc.wait() == 1
    output = proc.log.text
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1
    assert "a.crt' does not exist" in output
